"""Signed status webhooks, delivered to a real HTTP receiver on loopback, retried until it answers 2xx."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.webhooks.signing import SIGNATURE_HEADER, sign, verify
from tests.conftest import new_customer, wait_for


class Receiver:
    """A customer's webhook endpoint: records requests; answers 500 for the first ``fail`` of them."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.requests: list[tuple[dict, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.fail:
            return web.Response(status=500)
        return web.Response(status=204)


async def serve(aiohttp_server, rec):
    """Serve a receiver's ``handle`` at ``rec.url`` (a free port on loopback)."""
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/hook"))
    return rec


@pytest.fixture
async def receiver(aiohttp_server):
    return await serve(aiohttp_server, Receiver())


@pytest.fixture(params=[0, 2], ids=["posts in process", "posts from 2 workers"])
async def client(request, aiohttp_client, migrated, sessionmaker):
    """The app with quick retries; its webhooks POSTed from its own process, or from worker processes."""
    migrated.webhooks.processes = request.param
    migrated.webhooks.retry_base_s = 0.05
    migrated.webhooks.poll_interval_ms = 50
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    return client


async def test_status_callback_is_signed_and_retried(client, receiver):
    receiver.fail = 2
    account = await (await client.get("/v1/account", headers=client.customer.headers)).json()
    resp = await client.post("/v1/messages", json={"to": "+14155550123", "body": "hi",
                                                   "status_callback": receiver.url}, headers=client.customer.headers)
    mid = (await resp.json())["id"]

    async def got_all() -> bool:
        bodies = [json.loads(b) for _, b in receiver.requests[receiver.fail:]]
        return {b["event_type"] for b in bodies} >= {"TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"}

    await wait_for(got_all, timeout=10)
    for headers, body in receiver.requests:
        assert verify(account["webhook_secret"], headers[SIGNATURE_HEADER], body)
        assert not verify("wrong secret", headers[SIGNATURE_HEADER], body)
        assert not verify(account["webhook_secret"], headers[SIGNATURE_HEADER], body + b" ")
    delivered = [json.loads(b) for _, b in receiver.requests if json.loads(b)["event_type"] == "TEXT_DELIVERED"]
    assert delivered[0]["message_id"] == mid and delivered[0]["status"] == "delivered"
    assert delivered[0]["segments"] == 1 and delivered[0]["to"] == "+14155550123"

    async def recorded() -> bool:  # the receiver answers before the sender records the outcome
        listing = await (await client.get("/v1/webhooks/deliveries", headers=client.customer.headers)).json()
        return {d["status"] for d in listing["deliveries"]} == {"delivered"}

    await wait_for(recorded)
    listing = await (await client.get("/v1/webhooks/deliveries", headers=client.customer.headers)).json()
    assert len(listing["deliveries"]) == 3
    retried = [d for d in listing["deliveries"] if d["attempts"] > 1]
    assert retried, "the first deliveries failed and were retried"
    detail = await (await client.get(f"/v1/webhooks/deliveries/{retried[0]['id']}",
                                     headers=client.customer.headers)).json()
    assert [a["status_code"] for a in detail["attempt_log"]][-1] == 204
    assert 500 in [a["status_code"] for a in detail["attempt_log"]]


async def test_account_event_webhook_and_replay(client, receiver):
    resp = await client.patch("/v1/account", json={"event_webhook_url": receiver.url},
                              headers=client.customer.headers)
    assert resp.status == 200
    await client.post("/v1/messages", json={"to": "+14155550123", "body": "hi"}, headers=client.customer.headers)

    async def delivered() -> bool:
        return any(json.loads(b)["event_type"] == "TEXT_DELIVERED" for _, b in receiver.requests)

    await wait_for(delivered)
    listing = await (await client.get("/v1/webhooks/deliveries", headers=client.customer.headers)).json()
    first = listing["deliveries"][-1]
    before = len(receiver.requests)
    resp = await client.post(f"/v1/webhooks/deliveries/{first['id']}/replay", headers=client.customer.headers)
    assert resp.status == 202

    async def replayed() -> bool:
        return len(receiver.requests) > before

    await wait_for(replayed)
    other = await new_customer(client, client.app[app_keys.SESSIONMAKER], "other", numbers=())
    resp = await client.post(f"/v1/webhooks/deliveries/{first['id']}/replay", headers=other.headers)
    assert resp.status == 404


async def test_bad_webhook_url_is_refused(client):
    resp = await client.patch("/v1/account", json={"event_webhook_url": "javascript:alert(1)"},
                              headers=client.customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field")


def test_signature_rejects_old_timestamps():
    body = b'{"a":1}'
    old = int(time.time()) - 3600
    assert not verify("s", sign("s", old, body), body)
    assert verify("s", sign("s", int(time.time()), body), body)
    assert not verify("s", "garbage", body)


async def test_account_settings(client):
    h = client.customer.headers
    resp = await client.patch("/v1/account", json={
        "program_name": "Acme Alerts", "support_contact": "help@acme.example", "smart_encoding": True,
        "quiet_hours": True, "queue_policy": "reject", "max_queued": 10}, headers=h)
    body = await resp.json()
    assert resp.status == 200 and body["program_name"] == "Acme Alerts" and body["queue_policy"] == "reject"
    resp = await client.patch("/v1/account", json={"queue_policy": "sometimes"}, headers=h)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field")
