"""One SMS all the way: HTTP request, durable queue, SMPP submit to the simulator over TCP, delivery receipt,
status delivered; with the simulator embedded as `make run` has it, and as a separate server."""

from __future__ import annotations

import asyncio
import time

import pytest

from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import new_customer, wait_for


async def _delivered(client, customer, **body) -> dict:
    """Send one message and wait until it reads back delivered. How fast is measured by `gatewayctl bench sms`,
    not here: the timeout only bounds a hang on a loaded machine."""
    resp = await client.post("/v1/messages", json={"to": "+14155550123", "body": "Hello", **body},
                             headers=customer.headers)
    assert resp.status == 202, await resp.text()
    mid = (await resp.json())["id"]
    got: dict = {}

    async def delivered() -> bool:
        nonlocal got
        got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return got["status"] == "delivered"

    await wait_for(delivered, timeout=60, interval=0.01)
    return got


async def test_embedded_simulator_delivers(aiohttp_client, migrated, sessionmaker):
    migrated.simulator.embedded = True
    migrated.simulator.smpp_port = 0
    migrated.simulator.http_port = 0
    migrated.carriers[0].port = 0  # the embedded simulator's: the app follows the port it gets
    migrated.pacing.enabled = True  # as make run has it
    client = await aiohttp_client(create_app(migrated))
    customer = await new_customer(client, sessionmaker, "demo")
    got = await _delivered(client, customer)
    services = client.app[app_keys.SIMULATOR]
    assert [m.text for m in services.sim.received] == ["Hello"]
    assert got["carrier_message_id"] == services.sim.received[0].message_id
    assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]


@pytest.fixture
async def services():
    s = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02, id_format="decimal")
    await s.start()
    yield s
    await s.stop()


async def test_separate_simulator_multipart_and_outcomes(aiohttp_client, migrated, sessionmaker, services):
    migrated.carriers[0].port = services.smpp_port
    client = await aiohttp_client(create_app(migrated))
    customer = await new_customer(client, sessionmaker, "acme")
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    got = await _delivered(client, customer, body="ü" * 300)
    assert (got["segments"], len(got["carrier_message_ids"])) == (2, 2)
    assert sorted(m.concat[2] for m in services.sim.received) == [1, 2]
    services.sim.handler.outcomes_by_destination = {"+14155550124": "UNDELIV"}
    resp = await client.post("/v1/messages", json={"to": "+14155550124", "body": "x"}, headers=customer.headers)
    mid = (await resp.json())["id"]

    async def undelivered() -> bool:
        got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return got["status"] == "undelivered"

    await wait_for(undelivered)


async def test_messages_survive_a_carrier_outage(aiohttp_client, migrated, sessionmaker, services):
    migrated.carriers[0].port = services.smpp_port
    client = await aiohttp_client(create_app(migrated))
    customer = await new_customer(client, sessionmaker, "acme")
    services.sim.handler.throttle_all = True
    ids = []
    for i in range(5):
        resp = await client.post("/v1/messages", json={"to": f"+1415555012{i}", "body": f"m{i}"},
                                 headers=customer.headers)
        ids.append((await resp.json())["id"])
    await asyncio.sleep(0.3)
    services.sim.disconnect()
    services.sim.handler.throttle_all = False

    async def all_delivered() -> bool:
        for mid in ids:
            got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
            if got["status"] != "delivered":
                return False
        return True

    await wait_for(all_delivered, timeout=10)
    texts = [m.text for m in services.sim.received]
    assert sorted(texts) == [f"m{i}" for i in range(5)]  # each accepted exactly once
