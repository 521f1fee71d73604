"""Webhooks as a bulk job, over real HTTP to receivers on loopback: every event once to a healthy receiver with
batched bookkeeping, the events each customer chose, batched POSTs, and a slow receiver that holds back no other."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiohttp import web
from sqlalchemy import event, func, select

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.store.models import WebhookAttempt, WebhookDelivery
from gateway.webhooks.signing import SIGNATURE_HEADER, verify
from tests.conftest import new_customer, wait_for
from tests.gateway.webhooks.test_webhooks import client, serve  # client: the app with quick retries


class Receiver:
    """A customer's endpoint: keeps every request; while ``gate`` is closed it does not answer at all."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        await self.gate.wait()
        return web.Response(status=204)

    def events(self) -> list[tuple[str, dict]]:
        """(delivery id, event) for every event received, batched or not."""
        found = []
        for headers, raw in self.requests:
            body = json.loads(raw)
            if isinstance(body, list):
                found.extend((e["delivery_id"], e["event"]) for e in body)
            else:
                found.append((headers["X-Gateway-Delivery"], body))
        return found


async def _receiver(aiohttp_server) -> Receiver:
    return await serve(aiohttp_server, Receiver())


async def _send(client, count: int, **fields) -> list[str]:
    resp = await client.post("/v1/messages/batch", headers=client.customer.headers, json={"messages": [
        {"to": f"+1415555{1000 + i:04d}", "body": "hi", **fields} for i in range(count)]})
    assert resp.status == 200, await resp.text()
    return [r["message"]["id"] for r in (await resp.json())["results"]]


async def _deliveries(client, **where) -> list[WebhookDelivery]:
    async with client.app[app_keys.SESSIONMAKER]() as session:
        return list((await session.scalars(select(WebhookDelivery).filter_by(**where))).all())


async def _all_delivered(client) -> bool:
    return all(d.status == "delivered" for d in await _deliveries(client))


async def test_healthy_receiver_gets_every_event_once_recorded_in_batches(client, aiohttp_server):
    rec = await _receiver(aiohttp_server)
    updates = Counter()

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE WEBHOOK_DELIVERIES"):
            updates["statements"] += 1

    engine = client.app[app_keys.ENGINE].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    ids = await _send(client, 40, status_callback=rec.url)

    async def everything() -> bool:
        return len({(e["message_id"], e["event_type"]) for _, e in rec.events()}) == 120

    await wait_for(everything, timeout=20)
    await wait_for(lambda: _all_delivered(client), timeout=10)
    event.remove(engine, "before_cursor_execute", count)
    received = rec.events()
    assert len(received) == 120 and len({d for d, _ in received}) == 120, "each event exactly once"
    assert {e["message_id"] for _, e in received} == set(ids)
    assert Counter(e["event_type"] for _, e in received) == {"TEXT_QUEUED": 40, "TEXT_SENT": 40,
                                                              "TEXT_DELIVERED": 40}
    deliveries = await _deliveries(client)
    assert len(deliveries) == 120 and {d.attempts for d in deliveries} == {1}
    async with client.app[app_keys.SESSIONMAKER]() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookAttempt)) == 120
    # claimed and recorded in batches: a statement per delivery would be 120 updates at least
    assert updates["statements"] <= 40, updates


async def test_events_are_chosen_per_account_and_per_callback(client, aiohttp_server):
    account_hook, callback = await _receiver(aiohttp_server), await _receiver(aiohttp_server)
    headers = client.customer.headers
    for bad in ("some", [], ["TEXT_SENT", "TEXT_NOPE"], 3):
        resp = await client.patch("/v1/account", json={"webhook_events": bad}, headers=headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field"), bad
    resp = await client.patch("/v1/account", json={"event_webhook_url": account_hook.url, "webhook_events": "final"},
                              headers=headers)
    assert (await resp.json())["webhook_events"] == "final"
    resp = await client.post("/v1/messages", headers=headers, json={
        "to": "+14155550123", "body": "hi", "status_callback": callback.url, "status_callback_events": ["TEXT_SENT"]})
    assert resp.status == 202, await resp.text()
    first = (await resp.json())["id"]
    resp = await client.post("/v1/messages", headers=headers, json={
        "to": "+14155550124", "body": "hi", "status_callback": callback.url, "status_callback_events": "nope"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field")
    second = (await _send(client, 1, status_callback=callback.url, status_callback_events="final"))[0]

    async def finals() -> bool:
        return len(account_hook.events()) == 2 and len(callback.events()) == 2

    await wait_for(finals, timeout=10)
    await wait_for(lambda: _all_delivered(client), timeout=10)
    assert sorted((e["message_id"], e["event_type"]) for _, e in account_hook.events()) == sorted(
        [(first, "TEXT_DELIVERED"), (second, "TEXT_DELIVERED")])
    assert sorted((e["message_id"], e["event_type"]) for _, e in callback.events()) == sorted(
        [(first, "TEXT_SENT"), (second, "TEXT_DELIVERED")])
    # the events nobody chose were never queued
    assert sorted((d.url == callback.url, d.event_type) for d in await _deliveries(client)) == [
        (False, "TEXT_DELIVERED"), (False, "TEXT_DELIVERED"), (True, "TEXT_DELIVERED"), (True, "TEXT_SENT")]
    resp = await client.patch("/v1/account", json={"webhook_events": ["TEXT_QUEUED", "TEXT_SENT"]}, headers=headers)
    assert (await resp.json())["webhook_events"] == ["TEXT_QUEUED", "TEXT_SENT"]
    resp = await client.patch("/v1/account", json={"webhook_events": "all"}, headers=headers)
    assert (await resp.json())["webhook_events"] == "all"


async def test_batched_delivery_signs_the_array(client, aiohttp_server):
    rec = await _receiver(aiohttp_server)
    headers = client.customer.headers
    resp = await client.patch("/v1/account", json={"webhook_batch_size": 0}, headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field")
    resp = await client.patch("/v1/account", json={"event_webhook_url": rec.url, "webhook_batch_size": 10},
                              headers=headers)
    account = await resp.json()
    assert account["webhook_batch_size"] == 10
    ids = await _send(client, 30)

    async def everything() -> bool:
        return len(rec.events()) >= 90

    await wait_for(everything, timeout=20)
    await wait_for(lambda: _all_delivered(client), timeout=10)
    sizes = []
    for request_headers, raw in rec.requests:
        body = json.loads(raw)
        assert isinstance(body, list) and 1 <= len(body) <= 10
        assert request_headers["X-Gateway-Event"] == "batch"
        assert request_headers["X-Gateway-Batch-Size"] == str(len(body))
        assert verify(account["webhook_secret"], request_headers[SIGNATURE_HEADER], raw)
        assert not verify(account["webhook_secret"], request_headers[SIGNATURE_HEADER], raw[:-1] + b",{}]")
        sizes.append(len(body))
    assert max(sizes) > 1 and len(rec.requests) < 90
    received = rec.events()
    assert len(received) == 90 and len({d for d, _ in received}) == 90
    assert {e["message_id"] for _, e in received} == set(ids)
    listing = await (await client.get("/v1/webhooks/deliveries", headers=headers)).json()
    assert {d["id"] for d in listing["deliveries"]} <= {d for d, _ in received}


async def test_a_stalled_receiver_holds_back_no_other(aiohttp_client, migrated, sessionmaker,
                                                      aiohttp_server):
    migrated.webhooks.retry_base_s = 0.05
    migrated.webhooks.retry_max_s = 0.5
    migrated.webhooks.poll_interval_ms = 50
    migrated.webhooks.timeout_s = 1.0
    migrated.webhooks.concurrency = 4
    migrated.webhooks.per_receiver_concurrency = 2
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    slow, fast = await _receiver(aiohttp_server), await _receiver(aiohttp_server)
    slow.gate.clear()  # it takes requests and never answers: each one times out
    slow_ids = await _send(client, 30, status_callback=slow.url)
    fast_ids = await _send(client, 30, status_callback=fast.url)

    async def fast_done() -> bool:
        return len({(e["message_id"], e["event_type"]) for _, e in fast.events()}) == 90

    await wait_for(fast_done, timeout=10)  # while the slow one has answered nothing
    assert {e["message_id"] for _, e in fast.events()} == set(fast_ids)
    assert len(fast.events()) == 90, "a healthy receiver gets each event once"
    # put aside: at most its own share of POSTs at a time, not a retry of every delivery it has
    assert len(slow.requests) < 90
    slow.gate.set()

    async def slow_done() -> bool:
        return len({(e["message_id"], e["event_type"]) for _, e in slow.events()}) == 90 \
            and await _all_delivered(client)

    await wait_for(slow_done, timeout=30)  # nothing lost: each at least once
    assert {e["message_id"] for _, e in slow.events()} == set(slow_ids)


async def test_every_event_once_on_postgresql(aiohttp_client, aiohttp_server, settings, postgres_url):
    """The claim (FOR UPDATE SKIP LOCKED) and the outcomes written under their lease, on PostgreSQL."""
    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade

    settings.database.url = postgres_url
    settings.webhooks.poll_interval_ms = 50
    await upgrade(postgres_url)
    engine = create_engine(postgres_url)
    try:
        client = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
        client.customer = await new_customer(client, create_sessionmaker(engine), "acme")
        rec = await _receiver(aiohttp_server)
        ids = await _send(client, 20, status_callback=rec.url, status_callback_events=["TEXT_SENT", "TEXT_DELIVERED"])

        async def everything() -> bool:
            return len(rec.events()) >= 40 and await _all_delivered(client)

        await wait_for(everything, timeout=20)
        received = rec.events()
        assert len(received) == 40 and len({d for d, _ in received}) == 40
        assert Counter(e["event_type"] for _, e in received) == {"TEXT_SENT": 20, "TEXT_DELIVERED": 20}
        assert {e["message_id"] for _, e in received} == set(ids)
        assert {d.attempts for d in await _deliveries(client)} == {1}
    finally:
        await engine.dispose()
