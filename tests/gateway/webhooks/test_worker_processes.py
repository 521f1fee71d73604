"""Webhook POSTs from worker processes (``[webhooks] processes``): real processes, real HTTP to receivers on
loopback. The POSTs come from the workers' sockets, not the gateway's; a worker killed with POSTs in flight is
started again and every event still arrives; stopping the gateway lets the workers finish and record what they
hold. (The rest of the webhook suite runs both ways: tests/gateway/webhooks/test_webhooks.py's ``client``.)"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.models import WebhookDelivery
from gateway.webhooks.posting import WorkerPosters
from tests.conftest import ADMIN, new_customer, wait_for
from tests.gateway.webhooks.test_webhook_delivery import Receiver, _all_delivered, _receiver, _send


def _connections(pid: int) -> set[tuple[int, int]]:
    """(local port, remote port) of the TCP sockets process ``pid`` holds (from /proc). Both ports, not the local
    one alone: Linux gives one ephemeral port to several connections when they go to different destinations."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    connections = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                connections.add((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)))
    return connections


class PeerReceiver(Receiver):
    """A Receiver that notes each request's connection as its sender sees it: (the sender's port, this port)."""

    def __init__(self) -> None:
        super().__init__()
        self.connections: set[tuple[int, int]] = set()

    async def handle(self, request: web.Request) -> web.Response:
        transport = request.transport
        self.connections.add((transport.get_extra_info("peername")[1], transport.get_extra_info("sockname")[1]))
        return await super().handle(request)


async def _app(aiohttp_client, settings, sessionmaker, processes: int):
    settings.webhooks.processes = processes
    settings.webhooks.retry_base_s = 0.05
    settings.webhooks.retry_max_s = 0.5
    settings.webhooks.poll_interval_ms = 50
    client = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    return client


async def _held(client, aiohttp_server, messages: int, in_flight: int) -> tuple[Receiver, list[str]]:
    """A receiver that takes requests and does not answer yet, and ``messages`` sent with it as their status
    callback: returns once ``in_flight`` POSTs wait in the worker for its answer."""
    rec = await _receiver(aiohttp_server)
    rec.gate.clear()
    ids = await _send(client, messages, status_callback=rec.url)

    async def waiting() -> bool:
        return len(rec.requests) >= in_flight

    await wait_for(waiting, timeout=10)
    return rec, ids


def _posters(client) -> WorkerPosters:
    poster = client.app[app_keys.WEBHOOKS].poster
    assert isinstance(poster, WorkerPosters)
    return poster


async def test_the_posts_come_from_the_worker_processes(aiohttp_client, aiohttp_server, migrated, sessionmaker):
    from tests.gateway.webhooks.test_webhooks import serve

    client = await _app(aiohttp_client, migrated, sessionmaker, 2)
    posters = _posters(client)
    assert len(posters.pids) == 2 and os.getpid() not in posters.pids
    rec = await serve(aiohttp_server, PeerReceiver())
    ids = await _send(client, 60, status_callback=rec.url)

    async def everything() -> bool:
        return len({(e["message_id"], e["event_type"]) for _, e in rec.events()}) == 180

    await wait_for(everything, timeout=20)
    await wait_for(lambda: _all_delivered(client), timeout=10)
    assert len(rec.events()) == 180 and {e["message_id"] for _, e in rec.events()} == set(ids)
    workers = set().union(*(_connections(pid) for pid in posters.pids))  # their kept-alive connections
    assert rec.connections and rec.connections <= workers, "every POST from a worker's socket"
    assert not rec.connections & _connections(os.getpid()), "none from the gateway's own"
    # their outcomes are counted by the gateway as its own
    metrics = await (await client.get("/metrics", headers=ADMIN)).text()
    assert "gateway_webhook_deliveries_total 180.0" in metrics


async def test_a_worker_killed_mid_stream_is_started_again_and_every_event_arrives(
        aiohttp_client, aiohttp_server, migrated, sessionmaker, caplog):
    client = await _app(aiohttp_client, migrated, sessionmaker, 1)
    posters = _posters(client)
    [first] = posters.pids
    rec, ids = await _held(client, aiohttp_server, 20, 5)  # POSTs in flight in the worker
    with caplog.at_level(logging.WARNING):
        os.kill(first, signal.SIGKILL)

        async def restarted() -> bool:
            return posters.restarts == 1 and len(posters.pids) == 1 and posters.pids != [first]

        await wait_for(restarted, timeout=10)
    # what the receiver holds unanswered now: whatever the killed worker had sent (it keeps sending up to the
    # receiver's window until it dies, and the receiver reads what reached it before the restart, a second later)
    in_flight = {d for d, _ in rec.events()}
    rec.gate.set()

    async def everything() -> bool:
        return len({(e["message_id"], e["event_type"]) for _, e in rec.events()}) == 60 \
            and await _all_delivered(client)

    await wait_for(everything, timeout=30)
    received = [d for d, _ in rec.events()]
    assert {e["message_id"] for _, e in rec.events()} == set(ids)
    # at least once: only what was in flight when the worker died can have come twice
    assert {d for d in received if received.count(d) > 1} <= in_flight
    assert any("webhook worker process" in r.getMessage() and "exited with code -9" in r.getMessage()
               for r in caplog.records)
    async with client.app[app_keys.SESSIONMAKER]() as session:
        lost = (await session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.public_id.in_(in_flight)))).all()
    assert lost and all(d.status == "delivered" and d.attempts >= 2 for d in lost), "failed once, then sent again"


async def test_stopping_lets_the_workers_finish_and_record_what_they_hold(aiohttp_client, aiohttp_server, migrated,
                                                                          sessionmaker):
    client = await _app(aiohttp_client, migrated, sessionmaker, 1)
    [worker] = _posters(client).pids
    rec, _ = await _held(client, aiohttp_server, 5, 3)
    answered = {d for d, _ in rec.events()}
    asyncio.get_running_loop().call_later(0.5, rec.gate.set)  # answered while the gateway stops
    await client.close()  # the app's cleanup: the sender stops, then its workers
    assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()
    engine = create_engine(migrated.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = {d.public_id: d for d in (await session.scalars(select(WebhookDelivery))).all()}
    finally:
        await engine.dispose()
    assert all(rows[d].status == "delivered" and rows[d].attempts == 1 for d in answered), \
        "a POST answered during the stop is recorded as delivered, not tried again"


async def test_a_worker_outlives_ctrl_c_and_a_service_stop_signal(aiohttp_client, aiohttp_server, migrated,
                                                                  sessionmaker):
    """Ctrl+C reaches the whole process group (and a service manager's stop may signal every process): a worker
    keeps its POSTs in flight and ends only when the gateway closes its stdin."""
    client = await _app(aiohttp_client, migrated, sessionmaker, 1)
    posters = _posters(client)
    [worker] = posters.pids
    rec, _ = await _held(client, aiohttp_server, 3, 1)
    os.kill(worker, signal.SIGINT)
    os.kill(worker, signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert posters.pids == [worker] and posters.restarts == 0
    rec.gate.set()

    async def everything() -> bool:
        return len(rec.events()) >= 9 and await _all_delivered(client)

    await wait_for(everything, timeout=20)
    async with client.app[app_keys.SESSIONMAKER]() as session:
        attempts = {d.attempts for d in (await session.scalars(select(WebhookDelivery))).all()}
    assert attempts == {1}, "nothing was cut off and tried again"


async def test_a_worker_that_worked_between_two_deaths_is_started_again_after_the_first_pause(
        aiohttp_client, aiohttp_server, migrated, sessionmaker):
    """The pause before a restart doubles only while a worker keeps failing: one that answered POSTs since its last
    death is started again after 1 s (not 2 s) when it dies again."""
    client = await _app(aiohttp_client, migrated, sessionmaker, 1)
    posters = _posters(client)
    rec = await _receiver(aiohttp_server)
    loop = asyncio.get_running_loop()
    pauses = []
    for round_ in range(2):
        [worker] = posters.pids
        await _send(client, 2, status_callback=rec.url)

        async def answered() -> bool:
            return await _all_delivered(client)

        await wait_for(answered, timeout=20)  # this worker answered its POSTs
        killed_at = loop.time()
        os.kill(worker, signal.SIGKILL)

        async def restarted(deaths: int = round_ + 1) -> bool:
            return posters.restarts == deaths and len(posters.pids) == 1

        await wait_for(restarted, timeout=10)
        pauses.append(loop.time() - killed_at)
    assert all(0.8 < p < 1.6 for p in pauses), pauses  # 1 s ± 10% each time; a doubled pause would be 1.8 s or more
