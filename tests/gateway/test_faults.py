"""Faults, with real processes: a gateway (``python -m gateway run``) and an SMSC simulator on loopback, each in
its own process, driven only through the gateway's API and the simulator's control API. In every scenario
nothing accepted may be lost.

1. The gateway is killed (SIGKILL) in the middle of a 10,000-message burst, during a short stall of its database,
   and started again on that database.
2. The SMSC drops the SMPP connection about every second while a few thousand messages go out.
3. The SMSC answers ESME_RTHROTTLED to every submit_sm for 10 seconds (without pacing, and with it).
4. The customer's webhook receiver is down (its port closed) for 60 seconds while messages flow.

What is exact and what is a bound, after a SIGKILL: SMPP has no idempotency for submit_sm, so a message whose
submit_sm reached the SMSC but whose answer was not yet stored when the process died is submitted again after
the restart (at least once). Such messages are all in ``sending`` in the database at the kill: the SMSC must
have seen every other message exactly once, and those at most twice. The same holds for a dropped connection:
a submit whose answer was lost with the connection is sent again (never more often than the message's attempts,
and never more than one SMPP window per drop).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from gateway.bench.common import recipients
from gateway.settings_routes import CarrierSettings
from gateway.webhooks.signing import SIGNATURE_HEADER, verify
from tests.procs import Stack, Unavailable

pytestmark = pytest.mark.faults

NO_PACING = {"GATEWAY_PACING_ENABLED": "false"}  # a burst as fast as the SMSC takes it
WINDOW = CarrierSettings().window  # submit_sm in flight on one bind
STATUS_EVENTS = ("TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED")  # what a delivered message reports


def _database_at(path: Path) -> dict[str, str]:
    """Each message's destination -> status, read straight from the dead gateway's SQLite file."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT destination, status FROM messages").fetchall()
    db.close()
    return dict(rows)


# --- 1. SIGKILL during a burst -----------------------------------------------------------------------------------

BURST, BATCH = 10_000, 1_000


@dataclass
class KillRun:
    ids: list[str]  # every id the API accepted (202 the first time, 200 for a retried batch)
    messages: dict[str, dict | None]  # id -> the message after the restart, once settled
    at_kill: dict[str, str]  # destination -> status in the database when the process died
    smsc: dict[str, int]  # destination -> submit_sm the SMSC accepted, over both runs
    stats: dict

    @property
    def in_flight(self) -> set[str]:
        return {d for d, status in self.at_kill.items() if status == "sending"}


async def _kill_during_burst(tmp_path: Path) -> KillRun:
    numbers = recipients(BURST, start=5_000_000)
    # receipts a second after the submit, as carriers send them: at the kill, sent messages await theirs
    async with Stack(tmp_path, NO_PACING, receipt_delay_ms=1000) as stack:
        up = asyncio.Event()
        up.set()
        answered: dict[int, list[str]] = {}
        todo = list(range(BURST // BATCH))

        async def customer() -> None:
            """Sends the batches; a batch that got no answer is sent again with the same Idempotency-Key."""
            while todo:
                k = todo.pop(0)
                while k not in answered:
                    await up.wait()
                    try:
                        answered[k] = await stack.send_batch(numbers[k * BATCH:(k + 1) * BATCH], f"burst {k}",
                                                             idempotency_key=f"burst-{k}")
                    except (aiohttp.ClientError, asyncio.TimeoutError, Unavailable):
                        await asyncio.sleep(0.1)

        async def acknowledged() -> int:
            """Receipts (deliver_sm) the gateway answered ESME_ROK: the SMSC never sends those again."""
            return (await stack.sim_stats())["stats"].get("acknowledged", 0)

        async def receipts_sent() -> int:
            return (await stack.sim_stats())["stats"].get("receipts", 0)

        async def until(count: Callable[[], Awaitable[int]], at_least: int) -> None:
            async def wait() -> None:
                while await count() < at_least:
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(wait(), 60)  # a failure, not a hang, if they never come

        async def crash() -> dict[str, str]:
            """Once receipts flow (the customer is usually still sending then), the database stalls until the
            SMSC has sent 100 more receipts, which the gateway cannot store meanwhile, and the gateway dies:
            SIGKILL. Then it starts again on the same database."""
            await until(acknowledged, 100)
            stall = sqlite3.connect(stack.db_path, timeout=30, isolation_level=None)
            stall.execute("BEGIN IMMEDIATE")  # SQLite's write lock, as a slow disk or a long transaction holds it
            try:
                await until(receipts_sent, await receipts_sent() + 100)
                up.clear()
                stack.gateway.kill()
            finally:
                stall.execute("ROLLBACK")
                stall.close()
            at_kill = _database_at(stack.db_path)
            await stack.start_gateway()
            up.set()
            return at_kill

        at_kill, *_ = await asyncio.gather(crash(), customer(), customer())
        ids = [i for k in sorted(answered) for i in answered[k]]
        messages = await stack.settle(ids, timeout=240)
        smsc = (await stack.smsc_counts())["accepted"]
        stats = await stack.sim_stats()
    return KillRun(ids, messages, at_kill, smsc, stats)


@pytest.fixture(scope="module")
def kill_run(tmp_path_factory: pytest.TempPathFactory) -> KillRun:
    """One burst and one kill, looked at by the two tests below."""
    return asyncio.run(_kill_during_burst(tmp_path_factory.mktemp("sigkill")))


def test_sigkill_mid_burst_loses_nothing_and_resends_only_what_was_in_flight(kill_run: KillRun) -> None:
    run = kill_run
    at_kill = collections.Counter(run.at_kill.values())
    print(f"\nat the kill: {dict(at_kill)} of {len(run.at_kill)} accepted; SMSC stats {run.stats['stats']}")
    # the kill landed mid-burst: messages waiting, in flight, sent and awaiting their receipt
    assert at_kill["queued"] and at_kill["sending"] and at_kill["sent"]
    # the customer got an id for each of the 10,000 (a retried batch answers with the same messages)
    assert len(run.ids) == len(set(run.ids)) == BURST
    assert all(m is not None for m in run.messages.values())
    by_destination = {m["to"]: m for m in run.messages.values()}
    assert len(by_destination) == BURST
    # every one reached the carrier (none still queued or sending, none failed) ...
    assert {m["status"] for m in by_destination.values()} <= {"sent", "delivered"}
    assert set(run.smsc) == set(by_destination)
    # ... exactly once, except those in flight at the kill: sent again after the restart, at most twice
    again = {d: n for d, n in run.smsc.items() if n != 1}
    print(f"in flight (sending) at the kill: {len(run.in_flight)}; submitted twice: {len(again)}")
    assert set(again) <= run.in_flight
    assert set(again.values()) <= {2}
    # the SMSC has nothing left to send: the gateway answered every receipt (its own store decides the rest)
    assert run.stats["stats"]["acknowledged"] == run.stats["stats"]["receipts"] >= BURST


def test_sigkill_mid_burst_every_message_is_delivered(kill_run: KillRun) -> None:
    """A receipt is answered only once it is stored: those the dead gateway held unanswered, the SMSC sends
    again after the restart, so no message is left 'sent' for want of its receipt."""
    stuck = collections.Counter(m["status"] for m in kill_run.messages.values() if m["status"] != "delivered")
    print(f"\nnot delivered after the restart: {dict(stuck)}")
    assert not stuck


# --- 2. the SMSC drops the connection ----------------------------------------------------------------------------

async def test_smsc_dropping_the_connection_every_second_loses_nothing(tmp_path: Path) -> None:
    total, drops_wanted = 4000, 7
    numbers = recipients(total, start=6_000_000)
    async with Stack(tmp_path, NO_PACING) as stack:
        await stack.scenario(response_delay=0.05)  # an SMSC answering in 50 ms: a drop always meets submits
        sending = asyncio.gather(*(stack.send_batch(numbers[i:i + 1000], "dropped")
                                   for i in range(0, total, 1000)))
        drops = 0
        for k in range(1, drops_wanted + 1):  # a drop at each eighth of the submits: about one a second
            while (await stack.sim_stats())["received"] < k * total // (drops_wanted + 1):
                await asyncio.sleep(0.02)
            drops += (await stack.sim_api("POST", "/disconnect"))["dropped"]
        ids = [i for batch in await sending for i in batch]
        messages = await stack.settle(ids, timeout=120)
        smsc = (await stack.smsc_counts())["accepted"]
        stats = await stack.sim_stats()
        again = {d: n for d, n in smsc.items() if n != 1}
        attempts = {m["to"]: m["attempts"] for m in await asyncio.gather(
            *(stack.api("GET", f"/v1/messages/{m['id']}") for m in messages.values() if m and m["to"] in again))}
    print(f"\ndrops {drops}; submitted twice or more: {len(again)}; SMSC stats {stats['stats']}")
    assert drops >= drops_wanted - 1  # each drop found a bound connection (at most one may hit a reconnect)
    assert len(ids) == total
    assert collections.Counter(m["status"] for m in messages.values()) == {"delivered": total}
    assert set(smsc) == set(numbers)  # each reached the SMSC ...
    # ... and again only when the answer to an earlier submit was lost with a connection (as it was here)
    assert again
    assert all(attempts[d] >= n for d, n in again.items()), (again, attempts)
    assert sum(n - 1 for n in again.values()) <= drops * WINDOW


# --- 3. ESME_RTHROTTLED for 10 seconds ---------------------------------------------------------------------------

async def _throttled_for_ten_seconds(tmp_path: Path, env: dict[str, str], numbers: list[str], **fields: object
                                     ) -> None:
    """The SMSC answers ESME_RTHROTTLED to everything while the messages arrive, for 10 s, then takes them: each
    message is delivered, none fails or expires, and the SMSC took each exactly once."""
    # retries of a throttled message at most 2 s apart (not 30 s), so that they resume soon after the 10 s
    async with Stack(tmp_path, {"GATEWAY_DISPATCHER_RETRY_MAX_MS": "2000", **env}) as stack:
        await stack.scenario(throttle_all=True)
        ids = await stack.send_batch(numbers, "slow down", **fields)
        await asyncio.sleep(10)
        throttled = (await stack.smsc_counts())["refused"]
        await stack.scenario(throttle_all=False)
        messages = await stack.settle(ids, timeout=120)
        accepted = (await stack.smsc_counts())["accepted"]
    statuses = collections.Counter(m["status"] for m in messages.values())
    print(f"\nthrottled in 10 s: {sum(throttled.values())} submits to {len(throttled)} recipients; after: {statuses}")
    assert len(throttled) >= 20  # the throttle met the traffic
    assert statuses == {"delivered": len(numbers)}
    assert accepted == {n: 1 for n in numbers}  # taken once each, once the SMSC took anything


async def test_throttled_for_ten_seconds_nothing_fails(tmp_path: Path) -> None:
    await _throttled_for_ten_seconds(tmp_path, NO_PACING, recipients(1000, start=7_000_000))


async def test_throttled_for_ten_seconds_paced_messages_do_not_expire(tmp_path: Path) -> None:
    # the account's 20 msg/s: 5 s of traffic, met by the throttle; 40 s to live: 10 s of outage, then 5 s of
    # backlog at the account's rate leave ample time
    await _throttled_for_ten_seconds(tmp_path, {}, recipients(100, start=7_100_000), ttl=40)


# --- 4. the customer's webhook receiver is down for a minute -----------------------------------------------------

def _listen_port() -> int:
    """A free port below the ephemeral range, which no outgoing connection can take while it is closed."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(20_000, min(low, 32_768))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Receiver:
    """The customer's webhook endpoint: a real aiohttp server that can be taken down (its port closed)."""

    def __init__(self, secret_of: dict[str, str]):
        self.port = _listen_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.secret_of = secret_of  # filled in once the account's secret is known
        self.requests: list[tuple[str, dict]] = []  # (X-Gateway-Delivery, payload)
        self.bad_signatures: list[str] = []
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        delivery = request.headers["X-Gateway-Delivery"]
        if not verify(self.secret_of["secret"], request.headers.get(SIGNATURE_HEADER, ""), body):
            self.bad_signatures.append(delivery)
        self.requests.append((delivery, json.loads(body)))
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is None:
            return
        await self._runner.cleanup()  # stops listening and closes the gateway's kept-alive connections
        self._runner = None

    def events(self) -> set[tuple[str, str]]:
        return {(p["message_id"], p["event_type"]) for _, p in self.requests}


async def test_webhook_receiver_down_for_a_minute_gets_every_event_once(tmp_path: Path) -> None:
    secret: dict[str, str] = {}
    receiver = Receiver(secret)
    await receiver.up()
    numbers = iter(recipients(200, start=8_000_000))
    loop = asyncio.get_running_loop()
    # pauses between retries capped at 5 s, so that the first retry after the outage comes soon
    async with Stack(tmp_path, {"GATEWAY_WEBHOOKS_RETRY_MAX_S": "5"}) as stack:
        try:
            account = await stack.api("GET", "/v1/account")
            secret["secret"] = account["webhook_secret"]
            await stack.api("PATCH", "/v1/account", {"event_webhook_url": receiver.url})
            before = await stack.send_batch([next(numbers) for _ in range(10)], "before the outage")
            while len(receiver.events()) < len(before) * len(STATUS_EVENTS):
                await asyncio.sleep(0.1)

            await receiver.down()
            down_at = loop.time()
            during: list[str] = []
            while loop.time() - down_at < 55:  # a wave of messages every 5 s of the outage
                during += await stack.send_batch([next(numbers) for _ in range(10)], "during the outage")
                await asyncio.sleep(5)
            during_messages = await stack.settle(during, timeout=60)
            await asyncio.sleep(max(0.0, 60 - (loop.time() - down_at)))
            heard_during_outage = len(receiver.requests)
            await receiver.up()

            ids = before + during
            expected = {(i, e) for i in ids for e in STATUS_EVENTS}
            deadline = loop.time() + 120  # a failure timeout only
            while receiver.events() < expected and loop.time() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # let stragglers (a repeated delivery) arrive before counting
            deliveries = (await stack.api("GET", "/v1/webhooks/deliveries?limit=500"))["deliveries"]
        finally:
            await receiver.down()

    assert heard_during_outage == len(before) * len(STATUS_EVENTS)  # nothing got through while it was down
    assert {m["status"] for m in during_messages.values()} == {"delivered"}  # the messages themselves flowed
    assert receiver.bad_signatures == []
    assert receiver.events() == expected
    # after dedupe by delivery id, each event of each message arrived exactly once
    payloads: dict[str, dict] = {}
    for delivery, payload in receiver.requests:
        assert payloads.setdefault(delivery, payload) == payload  # a repeated delivery carries the same event
    per_event = collections.Counter((p["message_id"], p["event_type"]) for p in payloads.values())
    assert set(per_event.values()) == {1}
    # the events of the outage were retried until the receiver came back, and none is left pending or failed
    assert len(deliveries) == len(expected)
    assert {d["status"] for d in deliveries} == {"delivered"}
    outage_ids = set(during)
    retried = [d for d in deliveries if payloads[d["id"]]["message_id"] in outage_ids]
    # the receiver was put aside: tried again at its own backoff's times, not each of its deliveries every time
    assert retried and max(d["attempts"] for d in retried) >= 2
    assert sum(d["attempts"] for d in retried) < 3 * len(retried)
    print(f"\nwebhook requests {len(receiver.requests)} for {len(payloads)} deliveries; "
          f"attempts of outage deliveries: max {max(d['attempts'] for d in retried)}")
