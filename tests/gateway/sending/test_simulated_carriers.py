"""Named simulated carriers' behaviours (``[[simulator.carriers]]``: throughput, disconnect_every,
receipt_delay_ms), each over real sockets to the gateway, and each changing what the gateway sees: throttling it
retries, binds it makes again, receipts that come late."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

import pytest

from carriers.simulator import SimulatorServices
from carriers.simulator.fleet import SimulatedCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.settings_routes import CarrierSettings
from tests.conftest import new_customer, wait_for


@pytest.fixture
async def fleet():
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.01, carriers=[
        SimulatedCarrier(name="slow", throughput=5),
        SimulatedCarrier(name="flaky", disconnect_every=0.3, receipt_delay_ms=200),
        SimulatedCarrier(name="late", receipt_delay_ms=400),
    ])
    await services.start()
    yield services
    await services.stop()


async def _gateway(aiohttp_client, migrated, sessionmaker, fleet, name: str, **carrier):
    """A gateway whose only carrier is the named simulated carrier."""
    migrated.carriers = [CarrierSettings(name=name, port=fleet.carriers[name].port, enquire_link_interval=5.0,
                                         **carrier)]
    client = await aiohttp_client(create_app(migrated))
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client, await new_customer(client, sessionmaker, "acme")


async def _send(client, customer, numbers: list[str]) -> list[str]:
    resp = await client.post("/v1/messages/batch", headers=customer.headers,
                             json={"messages": [{"to": n, "body": f"hello {n}"} for n in numbers]})
    data = await resp.json()
    assert resp.status in (200, 202) and data["failed"] == 0, data
    return [r["message"]["id"] for r in data["results"]]


async def _all_delivered(client, customer, ids: list[str], timeout: float = 60) -> list[dict]:
    got: dict[str, dict] = {}

    async def done() -> bool:
        for mid in ids:
            if got.get(mid, {}).get("status") != "delivered":
                got[mid] = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return all(m["status"] == "delivered" for m in got.values()) and len(got) == len(ids)

    try:
        await wait_for(done, timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(collections.Counter(m["status"] for m in got.values())) from None
    return [got[mid] for mid in ids]


def _at(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_throughput_throttles_above_it_and_the_gateway_retries(aiohttp_client, migrated, sessionmaker, fleet):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, fleet, "slow")  # pacing off: a burst
    numbers = [f"+14155551{i:03d}" for i in range(20)]
    messages = await _all_delivered(client, customer, await _send(client, customer, numbers))
    slow = fleet.carriers["slow"]
    assert slow.stats["throttled"] > 0  # the burst went above 5 a second: answered ESME_RTHROTTLED ...
    assert max(m["attempts"] for m in messages) >= 2  # ... and sent again
    assert collections.Counter(s.destination for s in slow.received) == {n: 1 for n in numbers}  # none lost, once
    assert max(slow.per_second.values()) <= 5
    assert {e["type"] for m in messages for e in m["events"]} == {"TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"}


async def test_disconnect_every_rebinds_and_each_message_is_delivered_once(aiohttp_client, migrated, sessionmaker,
                                                                           fleet):
    migrated.pacing.enabled = True  # spread the sends over several disconnects: 40 a second
    migrated.pacing.account_per_s = migrated.pacing.short_code_per_s = 40
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, fleet, "flaky", window=10)
    numbers = [f"+14155552{i:03d}" for i in range(80)]
    messages = await _all_delivered(client, customer, await _send(client, customer, numbers))
    flaky = fleet.carriers["flaky"]
    [bind] = client.app[app_keys.CARRIERS].carriers[0].clients
    assert flaky.stats["disconnects"] >= 3 and bind.binds >= 4  # dropped again and again, bound again each time
    for m in messages:  # one final state each, whatever was in flight when a bind dropped
        assert [e["type"] for e in m["events"]].count("TEXT_DELIVERED") == 1, m
    seen = collections.Counter(s.destination for s in flaky.received)
    assert set(seen) == set(numbers)
    # only what was in flight when a bind dropped may have reached the carrier twice: at most a window a drop
    assert sum(n - 1 for n in seen.values()) <= 10 * flaky.stats["disconnects"]


async def test_receipt_delay_ms_holds_receipts_back(aiohttp_client, migrated, sessionmaker, fleet):
    client, customer = await _gateway(aiohttp_client, migrated, sessionmaker, fleet, "late")
    numbers = [f"+14155553{i:03d}" for i in range(5)]
    messages = await _all_delivered(client, customer, await _send(client, customer, numbers))
    taken = {s.destination: s.received_at for s in fleet.carriers["late"].received}
    for m in messages:  # delivered (the receipt stored) no earlier than 400 ms after the carrier took it
        assert _at(m["done_at"]) - taken[m["to"]] >= 0.4, m
    assert fleet.carriers["late"].receipt_delay == 0.4 and fleet.sim.receipt_delay == 0.01
