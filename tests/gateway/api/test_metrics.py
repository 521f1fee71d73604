"""GET /metrics over real HTTP: messages sent through the embedded SMSC simulator move the counters by the right
amounts, histograms get observations, queue depth comes from the database, and only the operator token or the
scrape token opens it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from smpplib import consts
from sqlalchemy import func, select

from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import ADMIN, new_customer, wait_for

SCRAPE = {"Authorization": "Bearer scrape-only-token"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(got: dict, name: str, **labels: str) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client, headers=ADMIN) -> dict:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return samples(await resp.text())


async def _embedded(aiohttp_client, migrated):
    migrated.simulator.embedded = True
    migrated.carriers[0].port = 0  # the embedded simulator's: the app follows the port it gets
    migrated.metrics.scrape_token = "scrape-only-token"
    client = await aiohttp_client(create_app(migrated))
    await wait_for(lambda: _ready(client))
    return client


async def _ready(client) -> bool:
    return client.app[app_keys.CARRIERS].ready


async def _final(client, customer, ids: list[str]) -> bool:
    for mid in ids:
        got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        if got["status"] not in ("delivered", "undelivered", "failed", "expired"):
            return False
    return True


async def test_counters_follow_messages_through_the_simulator(aiohttp_client, migrated, sessionmaker):
    client = await _embedded(aiohttp_client, migrated)
    customer = await new_customer(client, sessionmaker, "acme")
    account = str(customer.account_id)
    handler = client.app[app_keys.SIMULATOR].sim.handler
    handler.outcomes_by_destination["+14155550102"] = "UNDELIV"
    handler.fail["+14155550103"] = consts.SMPP_ESME_RINVDSTADR
    before = await scrape(client)

    ids = []
    for to in ("+14155550101", "+14155550101", "+14155550101", "+14155550102", "+14155550103"):
        resp = await client.post("/v1/messages", json={"to": to, "body": "hi"}, headers=customer.headers)
        assert resp.status == 202, await resp.text()
        ids.append((await resp.json())["id"])
    await wait_for(lambda: _final(client, customer, ids), timeout=10)
    got = await scrape(client)

    mine = {"carrier": "sim", "account": account, "number_kind": "short_code"}
    assert value(got, "gateway_messages_accepted_total", account=account, number_kind="short_code") == 5
    assert value(got, "gateway_messages_submitted_total", **mine) == 4
    assert value(got, "gateway_messages_delivered_total", **mine) == 3
    assert value(got, "gateway_messages_undelivered_total", **mine) == 1
    assert value(got, "gateway_messages_failed_total", **mine) == 1
    assert value(got, "gateway_messages_expired_total", **mine) == 0
    # every submit answered and every receipt is an observation in its histogram
    assert value(got, "gateway_submit_answer_seconds_count", carrier="sim") == 4
    assert value(got, "gateway_submit_answer_seconds_sum", carrier="sim") > 0
    assert value(got, "gateway_receipt_latency_seconds_count", carrier="sim") == 4
    assert value(got, "gateway_bind_up", carrier="sim", bind="sim#0") == 1
    assert value(got, "gateway_bind_window_size", carrier="sim", bind="sim#0") == migrated.carriers[0].window
    assert value(got, "gateway_bind_window_in_use", carrier="sim", bind="sim#0") == 0  # all answered
    # the requests are counted by their route's pattern, never by the raw path (it holds the message id)
    route = {"method": "GET", "route": "/v1/messages/{id}", "status": "200"}
    assert value(got, "gateway_http_requests_total", **route) >= 5
    assert value(got, "gateway_http_requests_total", method="POST", route="/v1/messages", status="202") == 5
    assert value(got, "gateway_http_requests_total", method="GET", route="/metrics", status="200") == \
        value(before, "gateway_http_requests_total", method="GET", route="/metrics", status="200") + 1
    assert not any(mid in name or any(mid in v for _, v in labels) for mid in ids for name, labels in got)
    assert not any("+1415" in v for _, labels in got for _, v in labels)  # no phone number as a label


async def test_throttles_and_retries_are_counted(aiohttp_client, migrated, sessionmaker):
    client = await _embedded(aiohttp_client, migrated)
    customer = await new_customer(client, sessionmaker, "acme")
    handler = client.app[app_keys.SIMULATOR].sim.handler
    handler.throttle_all = True
    resp = await client.post("/v1/messages", json={"to": "+14155550101", "body": "hi"}, headers=customer.headers)
    mid = (await resp.json())["id"]

    async def throttled_twice() -> bool:
        return value(await scrape(client, SCRAPE), "gateway_carrier_throttles_total", carrier="sim") >= 2

    await wait_for(throttled_twice, timeout=10)
    handler.throttle_all = False
    await wait_for(lambda: _final(client, customer, [mid]), timeout=10)
    got = await scrape(client, SCRAPE)
    throttles = value(got, "gateway_carrier_throttles_total", carrier="sim")
    assert value(got, "gateway_send_retries_total", carrier="sim") == throttles  # each throttle: one retry
    assert value(got, "gateway_messages_delivered_total", carrier="sim", account=str(customer.account_id),
                 number_kind="short_code") == 1


async def test_queue_depth_comes_from_the_database(aiohttp_client, migrated, sessionmaker):
    client = await aiohttp_client(create_app(migrated, carriers=[]))  # no carrier: messages wait in the queue
    customer = await new_customer(client, sessionmaker, "acme")
    for _ in range(3):
        resp = await client.post("/v1/messages", json={"to": "+14155550101", "body": "hi"},
                                 headers=customer.headers)
        assert resp.status == 202
    got = await scrape(client)
    assert value(got, "gateway_queue_messages", status="queued") == 3  # nothing claims while no carrier is ready
    assert value(got, "gateway_queue_messages", status="sending") == 0
    assert value(got, "gateway_queue_messages", status="sent") == 0
    assert value(got, "gateway_messages_accepted_total", account=str(customer.account_id),
                 number_kind="short_code") == 3
    assert value(got, "gateway_messages_submitted_total", carrier="none", account=str(customer.account_id),
                 number_kind="short_code") == 0


async def test_metrics_need_the_operator_token_or_the_scrape_token(aiohttp_client, migrated, sessionmaker):
    migrated.metrics.scrape_token = "scrape-only-token"
    client = await aiohttp_client(create_app(migrated, carriers=[]))
    customer = await new_customer(client, sessionmaker, "acme")
    for headers in ({}, {"Authorization": "Bearer wrong"}, customer.headers):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_operator_token"
    assert (await client.get("/metrics", headers=SCRAPE)).status == 200
    assert (await client.get("/metrics", headers=ADMIN)).status == 200
    # the scrape token opens /metrics and nothing else
    assert (await client.get("/admin/accounts", headers=SCRAPE)).status == 401


async def test_without_a_scrape_token_only_the_operator_token_opens_it(aiohttp_client, migrated):
    assert migrated.metrics.scrape_token == ""
    client = await aiohttp_client(create_app(migrated, carriers=[]))
    assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status == 401
    assert (await client.get("/metrics", headers=ADMIN)).status == 200


async def test_each_app_has_its_own_registry(aiohttp_client, migrated, sessionmaker):
    first = await aiohttp_client(create_app(migrated, carriers=[]))
    second = await aiohttp_client(create_app(migrated, carriers=[]))
    customer = await new_customer(first, sessionmaker, "acme")
    assert (await first.post("/v1/messages", json={"to": "+14155550101", "body": "hi"},
                             headers=customer.headers)).status == 202
    labels = {"account": str(customer.account_id), "number_kind": "short_code"}
    assert value(await scrape(first), "gateway_messages_accepted_total", **labels) == 1
    assert value(await scrape(second), "gateway_messages_accepted_total", **labels) == 0


async def test_expired_messages_are_counted(aiohttp_client, migrated, sessionmaker):
    migrated.messages.min_ttl_s = 1
    client = await aiohttp_client(create_app(migrated, carriers=[]))  # no carrier: the message waits until it expires
    customer = await new_customer(client, sessionmaker, "acme")
    resp = await client.post("/v1/messages", json={"to": "+14155550101", "body": "hi", "ttl": 1},
                             headers=customer.headers)
    assert resp.status == 202, await resp.text()
    mid = (await resp.json())["id"]
    await wait_for(lambda: _final(client, customer, [mid]), timeout=10)
    got = await scrape(client)
    assert value(got, "gateway_messages_expired_total", carrier="none", account=str(customer.account_id),
                 number_kind="short_code") == 1


async def test_webhooks_inbound_and_unmatched_receipts_are_counted(aiohttp_client, aiohttp_server, migrated,
                                                                   sessionmaker):
    from carriers import Receipt
    from gateway.store.models import WebhookAttempt, WebhookDelivery
    from tests.gateway.webhooks.test_webhooks import Receiver, serve

    migrated.webhooks.retry_base_s = 0.05
    migrated.webhooks.poll_interval_ms = 50
    client = await _embedded(aiohttp_client, migrated)
    customer = await new_customer(client, sessionmaker, "acme")
    receiver = await serve(aiohttp_server, Receiver(fail=2))  # 500 to the first two POSTs, then 204
    resp = await client.patch("/v1/account", json={"event_webhook_url": receiver.url}, headers=customer.headers)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/messages", json={"to": "+14155550101", "body": "hi"}, headers=customer.headers)
    mid = (await resp.json())["id"]
    sim = client.app[app_keys.SIMULATOR].sim
    for text in ("STOP", "HELP", "hello there"):
        await sim.inject_mo("+14155550109", "12345", text)
    # a receipt for a message id no carrier gave out: kept unmatched
    await client.app[app_keys.DISPATCHER].on_receipt("sim", Receipt(carrier_message_id="feedface", stat="DELIVRD"))

    async def settled() -> bool:
        async with sessionmaker() as session:
            pending = await session.scalar(select(func.count()).select_from(WebhookDelivery)
                                           .where(WebhookDelivery.status != "delivered"))
        got = await scrape(client)
        return (await _final(client, customer, [mid]) and pending == 0
                and sum(v for (name, _), v in got.items() if name == "gateway_inbound_messages_total") == 3)

    await wait_for(settled, timeout=15)
    got = await scrape(client)
    async with sessionmaker() as session:
        delivered = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        failed = await session.scalar(select(func.count()).select_from(WebhookAttempt)
                                      .where(WebhookAttempt.status_code >= 300))
    assert failed >= 2 and delivered >= 3  # the message's queued, sent and delivered events at least
    assert value(got, "gateway_webhook_deliveries_total") == delivered
    assert value(got, "gateway_webhook_failures_total") == failed
    assert value(got, "gateway_inbound_messages_total", action="opt_out") == 1
    assert value(got, "gateway_inbound_messages_total", action="help") == 1
    assert value(got, "gateway_inbound_messages_total", action="none") == 1
    assert value(got, "gateway_receipts_unmatched_total", carrier="sim") == 1
    assert ("gateway_webhook_oldest_pending_seconds", ()) in got


async def test_oldest_pending_webhook_age(aiohttp_client, aiohttp_server, migrated, sessionmaker):
    from tests.gateway.webhooks.test_webhooks import Receiver, serve

    migrated.webhooks.retry_base_s = 0.05
    migrated.webhooks.poll_interval_ms = 50
    client = await aiohttp_client(create_app(migrated, carriers=[]))
    customer = await new_customer(client, sessionmaker, "acme")
    receiver = await serve(aiohttp_server, Receiver(fail=10**6))  # always 500: its deliveries stay pending
    await client.patch("/v1/account", json={"event_webhook_url": receiver.url}, headers=customer.headers)
    got = await scrape(client)
    assert value(got, "gateway_webhook_oldest_pending_seconds") == value(got, "gateway_webhook_pending_deliveries") == 0
    client.app[app_keys.METRICS].read_at = float("-inf")  # the test does not wait out the few seconds' cache
    resp = await client.post("/v1/messages", json={"to": "+14155550101", "body": "hi"}, headers=customer.headers)
    assert resp.status == 202

    async def failed_once() -> bool:
        return value(await scrape(client), "gateway_webhook_failures_total") >= 1

    await wait_for(failed_once)
    client.app[app_keys.METRICS].read_at = float("-inf")  # a fresh read, which the status below shares
    got = await scrape(client)
    assert value(got, "gateway_webhook_oldest_pending_seconds") > 0
    assert value(got, "gateway_webhook_pending_deliveries") >= 1
    assert value(got, "gateway_webhook_failures_total") >= 1
    assert value(got, "gateway_webhook_deliveries_total") == 0
    # the operator's status shows the same read (no second query within the cache's few seconds)
    backlog = (await (await client.get("/admin/status", headers=ADMIN)).json())["webhooks"]
    assert backlog["pending"] == value(got, "gateway_webhook_pending_deliveries")
    assert backlog["oldest_pending_age_s"] == round(value(got, "gateway_webhook_oldest_pending_seconds"), 3)
