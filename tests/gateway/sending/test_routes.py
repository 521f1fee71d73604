"""Routes over real sockets: two SMPP simulators play two carriers, a and b, and the gateway's [[routes]] decide
which one takes each message."""

from __future__ import annotations

import asyncio

import pytest

from carriers.simulator import SmscSimulator
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.settings_routes import CarrierSettings, RouteSettings
from registry.models import Number
from tests.conftest import ADMIN, new_customer, verify_toll_free, wait_for

UK = "+447911123456"


@pytest.fixture
async def sims():
    a, b = (SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.02) for _ in range(2))
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def _gateway(aiohttp_client, migrated, sessionmaker, sims, *routes: RouteSettings):
    a, b = sims
    migrated.carriers = [CarrierSettings(name="a", port=a.port, enquire_link_interval=5.0),
                         CarrierSettings(name="b", port=b.port, enquire_link_interval=5.0)]
    migrated.routes = list(routes)
    client = await aiohttp_client(create_app(migrated))
    pool = client.app[app_keys.CARRIERS]
    await wait_for(lambda: asyncio.sleep(0, all(c.ready for c in pool.carriers)))
    customer = await new_customer(client, sessionmaker, "acme")
    async with sessionmaker() as session, session.begin():  # a long code that may send abroad
        session.add(Number(number="+14155550100", type="long_code", country="US", capabilities="sms",
                           status="active", international=True, account_id=customer.account_id))
    return client, customer


async def _send(client, customer, to: list[str], **fields) -> list[str]:
    resp = await client.post("/v1/messages/batch", json={"messages": [{"to": n, "body": "hi", **fields} for n in to]},
                             headers=customer.headers)
    data = await resp.json()
    assert resp.status in (200, 202, 207) and data["failed"] == 0, data
    return [r["message"]["id"] for r in data["results"]]


async def _taken(sims, total: int) -> tuple[int, int]:
    a, b = sims

    async def all_there() -> bool:
        return len(a.received) + len(b.received) >= total

    await wait_for(all_there, timeout=30)
    return len(a.received), len(b.received)


async def test_a_prefix_route_sends_to_its_carrier(aiohttp_client, migrated, sessionmaker, sims):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="uk", prefixes=["+4479"], carrier="b"))
    await _send(client, customer, [UK] * 10, **{"from": "+14155550100"})
    assert await _taken(sims, 10) == (0, 10)
    assert {s.destination.lstrip("+") for s in sims[1].received} == {UK.lstrip("+")}
    # no route matches a US number: any ready carrier in turn, as without routes
    await _send(client, customer, ["+14155550123"] * 10)
    a_count, b_count = await _taken(sims, 20)
    assert a_count > 0 and b_count > 10


async def test_a_failover_list_takes_the_first_carrier_that_is_up(aiohttp_client, migrated, sessionmaker, sims):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="fo", failover=["a", "b"]))
    first = await _send(client, customer, ["+14155550123"] * 10)
    assert await _taken(sims, 10) == (10, 0)
    a, b = sims
    await a.stop()  # carrier a's bind goes down and cannot come back
    pool = client.app[app_keys.CARRIERS]
    await wait_for(lambda: asyncio.sleep(0, not pool.by_name("a").ready))
    later = await _send(client, customer, ["+14155550124"] * 10)
    assert await _taken(sims, 20) == (10, 10)
    assert {s.destination.lstrip("+") for s in b.received} == {"14155550124"}

    async def delivered() -> bool:
        views = [await (await client.get(f"/v1/messages/{m}", headers=customer.headers)).json() for m in later]
        return all(v["status"] == "delivered" and v["carrier"] == "b" for v in views)

    await wait_for(delivered, timeout=15)
    view = await (await client.get(f"/v1/messages/{first[0]}", headers=customer.headers)).json()
    assert view["carrier"] == "a"


async def test_a_weighted_split_spreads_the_traffic(aiohttp_client, migrated, sessionmaker, sims):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="half", split=["a=50", "b=50"]))
    await _send(client, customer, [f"+141555501{i % 100:02d}" for i in range(200)])
    a_count, b_count = await _taken(sims, 200)
    assert a_count + b_count == 200
    assert a_count > 40 and b_count > 40  # binomial(200, 0.5) below 41: about 1e-18


async def test_a_single_carrier_route_waits_for_its_carrier(aiohttp_client, migrated, sessionmaker, sims):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="only-a", carrier="a"))
    a, b = sims
    await a.stop()
    pool = client.app[app_keys.CARRIERS]
    await wait_for(lambda: asyncio.sleep(0, not pool.by_name("a").ready))
    [mid] = await _send(client, customer, ["+14155550123"])

    async def retried() -> bool:
        view = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return view["status"] == "queued" and view["error_code"] == "no_carrier" and view["attempts"] >= 1

    await wait_for(retried, timeout=10)
    view = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
    assert "route only-a" in view["error_message"]
    assert not b.received  # never moved to the other carrier


async def test_a_routes_cost_is_the_price_in_answers_and_dry_runs(aiohttp_client, migrated, sessionmaker, sims):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="uk", prefixes=["+4479"], carrier="b", cost_per_segment=0.035),
                                      RouteSettings(name="rest", failover=["a", "b"]))
    long_body = "x" * 200  # two segments
    for dry_run, expect in ((True, 200), (False, 202)):
        resp = await client.post("/v1/messages", headers=customer.headers, json={
            "to": UK, "from": "+14155550100", "body": long_body, "dry_run": dry_run})
        data = await resp.json()
        assert resp.status == expect, data
        assert data["price"] == {"amount": 0.07, "currency": "USD", "per_segment": 0.035, "route": "uk"}
    resp = await client.post("/v1/messages", headers=customer.headers, json={
        "to": "+14155550123", "body": long_body, "dry_run": True})  # route "rest" has no cost: the flat price
    flat = migrated.pricing.short_code
    assert (await resp.json())["price"] == {"amount": round(2 * flat, 6), "currency": "USD", "per_segment": flat}


async def test_a_carrier_failing_deliveries_is_deprioritized_then_comes_back(aiohttp_client, migrated, sessionmaker,
                                                                             sims, caplog):
    migrated.health.window_s, migrated.health.min_samples, migrated.health.probe_share = 3.0, 10, 0.2
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="fo", failover=["a", "b"]))
    a, b = sims
    a.handler.outcome = "UNDELIV"  # carrier a takes messages but fails to deliver them
    health = client.app[app_keys.DISPATCHER].health
    await _send(client, customer, [f"+141555501{i:02d}" for i in range(12)])
    await wait_for(lambda: asyncio.sleep(0, not health.is_healthy("a")), timeout=15)
    assert "carrier a is degraded: undelivered or rejected receipts 100% over 50%" in caplog.text
    resp = await client.get("/admin/carriers", headers=ADMIN)
    views = {c["name"]: c for c in (await resp.json())["carriers"]}
    assert resp.status == 200 and views["a"]["health"]["state"] == "degraded" and views["a"]["ready"]
    assert views["a"]["binds"] == [{"name": "a#0", "bound": True}] and views["b"]["health"]["state"] == "healthy"
    before = len(a.received), len(b.received)
    await _send(client, customer, [f"+141555502{i:02d}" for i in range(50)])
    a_count, b_count = await _taken(sims, sum(before) + 50)
    assert b_count - before[1] > 25  # most of it to b; a only probes (20 %)
    a.handler.outcome = "DELIVRD"  # a recovers: its probes are delivered, the bad receipts leave the window

    sent = sum(before) + 50

    async def recovered() -> bool:
        nonlocal sent
        if not health.is_healthy("a"):
            sent += len(await _send(client, customer, [f"+141555503{i:02d}" for i in range(20)]))
            await asyncio.sleep(0.3)
        return health.is_healthy("a")

    await wait_for(recovered, timeout=60, interval=0.1)
    assert "carrier a is healthy again" in caplog.text
    await _taken(sims, sent)  # nothing routed before the recovery is still on its way
    before = len(a.received), len(b.received)
    await _send(client, customer, [f"+141555504{i:02d}" for i in range(10)])
    await _taken(sims, sum(before) + 10)
    assert len(a.received) - before[0] == 10  # the failover list's first carrier again


async def test_pacing_holds_across_the_carriers_of_a_split(aiohttp_client, migrated, sessionmaker, sims):
    """A toll-free number's 3 messages a second hold for what both carriers take together, not for each."""
    migrated.pacing.enabled = True
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, sims,
                                      RouteSettings(name="half", split=["a=50", "b=50"]))
    async with sessionmaker() as session, session.begin():
        session.add(Number(number="+18005550100", type="toll_free", country="US", capabilities="sms",
                           status="active", account_id=customer.account_id))
    await verify_toll_free(sessionmaker, customer.account_id, "+18005550100")
    await _send(client, customer, [f"+141555501{i:02d}" for i in range(20)], **{"from": "+18005550100"})
    a_count, b_count = await _taken(sims, 20)
    assert a_count and b_count  # both carriers took some (all on one: 2 in a million)
    a, b = sims
    together = a.per_second + b.per_second
    assert max(together.values()) <= 3, together
