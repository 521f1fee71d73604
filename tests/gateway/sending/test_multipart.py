"""Multipart messages whose parts get different answers, over real SMPP to the simulator: each part is answered,
written and retried on its own, so the handset gets every part exactly once, and the message's state comes from
all its parts."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from pathlib import Path

import pytest
from smpplib import consts

from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import new_customer, wait_for
from tests.procs import Stack

THREE_PARTS = "a" * 153 + "b" * 153 + "c" * 94  # GSM-7: 3 parts, each recognizable by its text


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    client = await aiohttp_client(create_app(migrated))
    client.sim = sim
    client.customer = await new_customer(client, sessionmaker, "acme")
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


async def send(gw, to: str, body: str = THREE_PARTS) -> str:
    resp = await gw.post("/v1/messages", json={"to": to, "body": body}, headers=gw.customer.headers)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def final(gw, mid: str, status: str, timeout: float = 10.0) -> dict:
    got: dict = {}

    async def done() -> bool:
        nonlocal got
        got = await (await gw.get(f"/v1/messages/{mid}", headers=gw.customer.headers)).json()
        return got["status"] == status

    await wait_for(done, timeout)
    return got


def parts_at_smsc(sim, destination: str) -> list[tuple[int, int, int]]:
    """(ref, total, seq) of each part the SMSC accepted for a destination."""
    return sorted(s.concat for s in sim.received if s.destination == destination)


async def test_a_throttled_part_is_the_only_one_submitted_again(gw):
    """One part in three throttled: only that part goes again, with the message's reference and its own part
    number; every part reaches the SMSC exactly once and every message is delivered (today the whole message is
    submitted again, and a carrier refusing one part in three keeps it from ever finishing)."""
    gw.sim.handler.every_nth_part, gw.sim.handler.nth_part_status = 3, consts.SMPP_ESME_RTHROTTLED
    numbers = [f"+1415555{n:04d}" for n in range(200, 220)]
    ids = await asyncio.gather(*(send(gw, n) for n in numbers))
    messages = [await final(gw, mid, "delivered") for mid in ids]
    assert len(gw.sim.refusals) >= 20  # one part in three was throttled (parts of messages sent side by side)
    assert len({sub.destination for sub, _ in gw.sim.refusals}) >= 5
    for number, message in zip(numbers, messages):
        parts = parts_at_smsc(gw.sim, number)
        assert [seq for _, _, seq in parts] == [1, 2, 3], parts  # each part once
        assert {(ref, total) for ref, total, _ in parts} == {(parts[0][0], 3)}  # one concatenated message
        refused = [sub.concat for sub, status in gw.sim.refusals if sub.destination == number]
        assert all(c[0] == parts[0][0] for c in refused)  # a refused part went again with its reference
        assert {p["seq"]: p["attempts"] for p in message["parts"]} == {
            seq: 1 + sum(c[2] == seq for c in refused) for seq in (1, 2, 3)}
        assert {p["answer"] for p in message["parts"]} == {"accepted"} and len(message["carrier_message_ids"]) == 3
        assert [e["type"] for e in message["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]


@pytest.mark.postgres
async def test_a_throttled_part_on_postgresql(aiohttp_client, tmp_path, postgres_url, sim):
    """The same on PostgreSQL (a part's answer is written with its dialect's INSERT ... ON CONFLICT)."""
    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade
    from tests.conftest import make_settings

    await upgrade(postgres_url)
    settings = make_settings(tmp_path)
    settings.database.url, settings.carriers[0].port = postgres_url, sim.port
    engine = create_engine(postgres_url)
    try:
        gw = await aiohttp_client(create_app(settings))
        gw.sim, gw.customer = sim, await new_customer(gw, create_sessionmaker(engine), "acme")
        sim.handler.every_nth_part, sim.handler.nth_part_status = 3, consts.SMPP_ESME_RTHROTTLED
        got = await final(gw, await send(gw, "+14155550240"), "delivered")
        assert [seq for _, _, seq in parts_at_smsc(sim, "+14155550240")] == [1, 2, 3]
        assert [p["attempts"] for p in got["parts"]] == [1, 1, 2]
    finally:
        await engine.dispose()


async def test_a_part_refused_for_good_fails_the_message_and_keeps_the_accepted_parts(gw):
    # the 2nd part refused
    gw.sim.handler.every_nth_part, gw.sim.handler.nth_part_status = 2, consts.SMPP_ESME_RINVDSTADR
    number = "+14155550230"
    got = await final(gw, await send(gw, number), "failed")
    await asyncio.sleep(0.5)  # anything resent would have arrived by now
    assert [seq for _, _, seq in parts_at_smsc(gw.sim, number)] == [1, 3]  # nothing resent
    assert [sub.concat[2] for sub, _ in gw.sim.refusals] == [2]
    assert got["error_code"] == "smpp_0x0b"
    assert got["error_message"].startswith("Part 2 of 3:") and "1, 3 accepted" in got["error_message"]
    accepted = {s.message_id for s in gw.sim.received}
    assert set(got["carrier_message_ids"]) == accepted and len(accepted) == 2
    assert [(p["seq"], p["answer"]) for p in got["parts"]] == [(1, "accepted"), (2, "smpp_0x0b"), (3, "accepted")]
    assert got["events"][-1]["type"] == "TEXT_CARRIER_UNREACHABLE"


async def test_one_undeliverable_part_makes_the_message_undelivered_naming_it(gw):
    gw.sim.handler.outcome = lambda destination, text: "UNDELIV" if text.startswith("b") else "DELIVRD"
    got = await final(gw, await send(gw, "+14155550231"), "undelivered")
    assert got["error_code"] == "receipt_undeliv"
    assert got["error_message"] == "Part 2 of 3: the carrier could not deliver it (receipt stat UNDELIV, err 001)."
    assert [p["stat"] for p in got["parts"]] == ["DELIVRD", "UNDELIV", "DELIVRD"]
    assert got["events"][-1]["type"] == "TEXT_UNREACHABLE"


async def test_a_multipart_message_is_sent_only_once_every_part_is_accepted(gw):
    """The first two parts are taken, the third throttled while the carrier sends no receipts: the message
    waits (not `sent`) with the two parts' ids kept, and is `sent` once the third is taken."""
    gw.sim.handler.outcome = "ENROUTE"  # receipts that end nothing
    hold = asyncio.Event()

    def status(sim, sub):
        return consts.SMPP_ESME_RMSGQFUL if sub.concat[2] == 3 and not hold.is_set() else consts.SMPP_ESME_ROK

    gw.sim.handler.submit_status = status
    mid = await send(gw, "+14155550232")
    await wait_for(lambda: asyncio.sleep(0, len(gw.sim.refusals) >= 3))
    got = await (await gw.get(f"/v1/messages/{mid}", headers=gw.customer.headers)).json()
    assert got["status"] in ("queued", "sending") and len(got["carrier_message_ids"]) == 2
    hold.set()
    got = await final(gw, mid, "sent")
    assert [seq for _, _, seq in parts_at_smsc(gw.sim, "+14155550232")] == [1, 2, 3]


def _parts_in(db: Path) -> list[tuple[int, str | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, carrier_message_id FROM message_parts ORDER BY seq").fetchall()
    conn.close()
    return rows


@pytest.mark.faults
async def test_parts_accepted_before_a_crash_are_not_submitted_again(tmp_path: Path) -> None:
    """The SMSC takes parts 1 and 2 and never answers part 3; once the first two are stored the gateway dies
    (SIGKILL) and starts again on its SQLite database: only part 3 is submitted again."""
    async with Stack(tmp_path, {"GATEWAY_PACING_ENABLED": "false"}) as stack:
        await stack.scenario(every_nth_part={"n": 3, "status": None})
        number = "+14155550233"
        [mid] = await stack.send_batch([number], THREE_PARTS)

        async def two_stored() -> bool:
            return [seq for seq, cid in _parts_in(stack.db_path) if cid] == [1, 2]

        await wait_for(two_stored, timeout=20)
        assert (await stack.sim_stats())["stats"]["unanswered"] == 1
        stored = dict(_parts_in(stack.db_path))
        stack.gateway.kill()
        await stack.start_gateway()
        [got] = (await stack.settle([mid], timeout=60)).values()
        submitted = await stack.sim_api("GET", f"/messages?destination=%2B{number[1:]}")
    assert got["status"] == "delivered"
    accepted = collections.Counter(m["concat"][2] for m in submitted)
    assert accepted == {1: 1, 2: 1, 3: 1}  # part 3's first submit was never answered, so never accepted
    assert {m["concat"][2]: m["message_id"] for m in submitted if m["concat"][2] < 3} == {
        seq: cid for seq, cid in stored.items() if cid}
