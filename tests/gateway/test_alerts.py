"""The WARNINGs an operator acts on ([alerts], gateway.metrics.alerts), rate-limited: a storm gives a line and a
summary, a spell a line when it begins and one when it ends. Each over the real parts: the SMSC simulator over
SMPP (and its control API over HTTP), a webhook receiver over HTTP, SQLite, PostgreSQL behind a TCP proxy that
can be cut, a redis-server process that is stopped and started again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import subprocess

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.bench.processes import free_port
from gateway.metrics.alerts import Alerts, outage, receiver_host
from gateway.settings import AlertSettings
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.migrate import upgrade
from gateway.store.models import Message
from tests.conftest import IN_CI, new_customer, wait_for


def lines(caplog: pytest.LogCaptureFixture, kind: str | None = None, subject: str | None = None) -> list[str]:
    """The alert lines logged so far (of one kind, and subject)."""
    return [r.getMessage() for r in caplog.records if r.name == "gateway.alerts"
            and (kind is None or r.alert == kind) and (subject is None or r.subject == subject)]


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="gateway.alerts")
    return caplog


async def start(aiohttp_client, settings, smpp_port: int):
    """The gateway on the simulator, its monitor looking often."""
    settings.carriers[0].port = smpp_port
    settings.alerts.sample_s = 0.05
    client = await aiohttp_client(create_app(settings))
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


async def send(client, customer, n: int, **fields) -> list[str]:
    resp = await client.post("/v1/messages/batch", headers=customer.headers, json={
        "messages": [{"to": f"+1415555{n0:04d}", "body": f"m{n0}", **fields} for n0 in range(n)]})
    data = await resp.json()
    assert resp.status == 200 and data["accepted"] == n, data
    return [r["message"]["id"] for r in data["results"]]


async def statuses(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        got: dict[str, int] = {}
        for status in (await session.scalars(select(Message.status))).all():
            got[status] = got.get(status, 0) + 1
        return got


# --- the helper itself ------------------------------------------------------------------------------------------

def test_a_storm_is_one_line_then_one_summary_an_interval(caplog):
    caplog.set_level(logging.WARNING, logger="gateway.alerts")
    now = [1000.0]
    alerts = Alerts(AlertSettings(interval_s=60.0, recent=5), clock=lambda: now[0])
    for _ in range(10_000):
        alerts.webhook_failed(3, "https://hooks.example.com:8443/in?token=s3cr3t", "HTTP 500")
    assert lines(caplog) == ["webhook deliveries of account 3 to hooks.example.com:8443 failing (HTTP 500); tried "
                             "again with backoff"]
    now[0] += 30
    alerts.tick()
    assert len(lines(caplog)) == 1  # the interval has not ended
    now[0] += 30
    alerts.tick()
    assert lines(caplog)[1] == "webhook deliveries failed (account 3, hooks.example.com:8443): 9,999 more in the " \
                               "last 60 s"
    now[0] += 60
    alerts.tick()  # an interval without any ends the run: the next one is said at once
    alerts.webhook_failed(3, "https://hooks.example.com:8443/in?token=s3cr3t", "ClientConnectorError")
    assert len(lines(caplog)) == 3 and "(ClientConnectorError)" in lines(caplog)[2]
    assert "s3cr3t" not in caplog.text and "/in" not in caplog.text
    # the recent alerts, newest first, as many as [alerts] recent
    for n in range(10):
        alerts.expired(n)
    recent = alerts.recent()
    assert [a.subject for a in recent] == [f"account {n}" for n in (9, 8, 7, 6, 5)]
    assert recent[0].kind == "expired" and recent[0].to_json()["at"].endswith("Z")


def test_alert_settings_are_checked_and_an_alert_line_carries_its_kind_and_subject(caplog):
    from gateway.logs import JsonFormatter
    from gateway.settings import SettingsError, load_settings

    assert load_settings(env={"GATEWAY_ALERTS_QUEUE_DEPTH": "5"}).alerts.queue_depth == 5
    for env, where in (({"GATEWAY_ALERTS_INTERVAL_S": "0"}, "alerts: interval_s"),
                       ({"GATEWAY_ALERTS_UNDELIVERED_RATE": "1.5"}, "alerts.undelivered_rate")):
        with pytest.raises(SettingsError, match=where):
            load_settings(env=env)
    caplog.set_level(logging.WARNING, logger="gateway.alerts")
    Alerts().throttled("sim")
    [record] = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert (line["logger"], line["level"], line["alert"], line["subject"], line["carrier"]) == (
        "gateway.alerts", "WARNING", "throttling", "sim", "sim")


def test_outages_are_told_from_other_failures():
    import sqlite3

    from sqlalchemy import exc as sa_exc

    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    assert outage(refused) == "database"
    gone = sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file"))
    assert outage(gone) == "database"
    locked = sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    assert outage(locked) is None  # busy, not away
    assert outage(sa_exc.TimeoutError("QueuePool limit")) is None
    assert outage(ValueError("a bug")) is None
    import redis.exceptions

    assert outage(redis.exceptions.ConnectionError("Error 111 connecting")) == "redis"
    assert receiver_host("http://user:pw@10.0.0.5:81/x?key=1") == "10.0.0.5:81"


# --- a carrier throttling ----------------------------------------------------------------------------------------

async def test_a_throttling_spell_is_one_line_when_it_starts_and_one_with_its_count_when_it_ends(
        aiohttp_client, migrated, sessionmaker, sim, caught):
    migrated.alerts.throttle_quiet_s = 0.5
    client = await start(aiohttp_client, migrated, sim.port)
    metrics = client.app[app_keys.METRICS]
    customer = await new_customer(client, sessionmaker, "acme")
    sim.handler.throttle_all = True
    await send(client, customer, 5)
    await wait_for(lambda: asyncio.sleep(0, sim.stats["throttled"] >= 30), timeout=20)
    sim.handler.throttle_all = False
    await wait_for(lambda: _all(sessionmaker, "delivered", 5), timeout=20)
    await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "throttling")) == 2), timeout=20)
    begun, ended = lines(caught, "throttling", "sim")
    assert begun.startswith("carrier sim is throttling")
    throttles = metrics.registry.get_sample_value("gateway_carrier_throttles_total", {"carrier": "sim"})
    assert throttles == sim.stats["throttled"] >= 30
    assert ended.startswith(f"carrier sim throttling ended: {int(throttles):,} throttle(s) in ")
    assert ended.endswith(" s")  # how long the spell lasted


async def _all(sessionmaker, status: str, n: int) -> bool:
    return (await statuses(sessionmaker)).get(status, 0) == n


# --- a webhook receiver failing ---------------------------------------------------------------------------------

async def test_a_storm_of_webhook_failures_is_one_line_and_a_summary_with_the_count(
        aiohttp_client, aiohttp_server, migrated, sessionmaker, sim, caught):
    failing = [True]
    posts = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        posts.append(failing[0])
        return web.Response(status=500 if failing[0] else 200)

    receiver = web.Application()
    receiver.router.add_post("/hooks/in", hook)
    server = await aiohttp_server(receiver)
    migrated.webhooks.retry_base_s, migrated.webhooks.retry_max_s = 0.01, 0.02
    client = await start(aiohttp_client, migrated, sim.port)
    metrics = client.app[app_keys.METRICS]
    customer = await new_customer(client, sessionmaker, "acme")
    url = f"http://127.0.0.1:{server.port}/hooks/in?token=hook-secret-123"
    await send(client, customer, 10, status_callback=url)
    # a failing receiver is tried one POST at a time (each after its backoff): failures keep coming, a few at a time
    await wait_for(lambda: asyncio.sleep(0, len(posts) >= 100), timeout=60)
    failing[0] = False  # back: what is still pending gets through, and the count stops growing
    failed = metrics.registry.get_sample_value("gateway_webhook_failures_total")

    async def settled() -> bool:
        nonlocal failed
        await asyncio.sleep(0.3)
        now, failed = failed, metrics.registry.get_sample_value("gateway_webhook_failures_total")
        return now == failed and posts[-1] is False

    await wait_for(settled, timeout=30)
    subject = f"account {customer.account_id}, 127.0.0.1:{server.port}"
    assert lines(caught, "webhook_failing") == [
        f"webhook deliveries of account {customer.account_id} to 127.0.0.1:{server.port} failing (HTTP 500); tried "
        "again with backoff"]  # a hundred failures and more: one line while the interval lasts
    await client.close()  # the app stops: what was counted is summed up
    first, summary = lines(caught, "webhook_failing", subject)
    assert summary.startswith(f"webhook deliveries failed ({subject}): {int(failed) - 1:,} more in the last ")
    assert failed == posts.count(True) >= 100
    assert "hook-secret-123" not in caught.text and "/hooks/in" not in caught.text


# --- a bind lost and regained; the queue past its threshold and back ---------------------------------------------

async def test_a_carrier_away_is_a_bind_lost_and_regained_and_the_queue_over_its_threshold_and_back(
        aiohttp_client, migrated, sessionmaker, caught):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    control = f"http://127.0.0.1:{services.http_port}"
    try:
        migrated.alerts.queue_depth = 5
        client = await start(aiohttp_client, migrated, services.smpp_port)
        customer = await new_customer(client, sessionmaker, "acme")
        async with aiohttp.ClientSession() as http:
            assert (await http.post(control + "/stop")).status == 200
            await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "bind_down")) == 1))
            assert lines(caught, "bind_down", "sim/sim#0")[0].startswith("carrier sim: bind sim#0 lost")
            await send(client, customer, 8)  # no bind: they wait in the queue
            await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "queue")) == 1))
            assert lines(caught, "queue")[0].startswith("queue over 5 messages: 8 waiting (")
            assert (await http.post(control + "/start")).status == 200
            await wait_for(lambda: _all(sessionmaker, "delivered", 8), timeout=30)
            await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "queue")) == 2))
        lost, regained = lines(caught, "bind_down")
        assert regained.startswith("carrier sim: bind sim#0 up again after ") and regained.endswith(" down")
        assert lines(caught, "queue")[1].startswith("queue back under 4 messages: 0 waiting, after ")
        assert lines(caught, "queue")[1].endswith("over 5 (at most 8)")
        assert lines(caught, "bind_flap") == []
    finally:
        await services.stop()


# --- messages expired, undelivered receipts over their rate -----------------------------------------------------

async def test_expired_messages_are_counted_by_account(aiohttp_client, migrated, sessionmaker, sim, caught):
    migrated.messages.min_ttl_s = 1
    client = await start(aiohttp_client, migrated, sim.port)
    a = await new_customer(client, sessionmaker, "a", numbers=(("12345", "short_code"),))
    b = await new_customer(client, sessionmaker, "b", numbers=(("12346", "short_code"),))
    sim.handler.throttle_all = True  # nothing is taken: they run out of time
    await send(client, a, 6, ttl=1)
    await send(client, b, 2, ttl=1)
    await wait_for(lambda: _all(sessionmaker, "expired", 8), timeout=30)
    assert sorted(lines(caught, "expired")) == [
        f"messages of account {x.account_id} expire: their time to live ran out before a carrier took them"
        for x in (a, b)]  # one line an account, however many expire
    await client.close()  # the app stops: the counts are summed up
    for x, more in ((a, 5), (b, 1)):
        assert lines(caught, "expired", f"account {x.account_id}")[1].startswith(
            f"messages expired (account {x.account_id}): {more} more in the last ")


async def test_undelivered_receipts_over_the_rate_and_back_under(aiohttp_client, migrated, sessionmaker, sim,
                                                                   caught):
    migrated.alerts.interval_s, migrated.alerts.undelivered_min = 1.0, 5
    client = await start(aiohttp_client, migrated, sim.port)
    customer = await new_customer(client, sessionmaker, "acme")
    sim.handler.outcome = "UNDELIV"
    await send(client, customer, 12)
    await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "undelivered")) == 1), timeout=20)
    over = lines(caught, "undelivered", "sim")[0]
    assert over.startswith("carrier sim: 100% of its final receipts undelivered in the last ")
    assert over.endswith("over alerts.undelivered_rate (20%)")
    sim.handler.outcome = "DELIVRD"
    await send(client, customer, 12)
    await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "undelivered")) == 2), timeout=20)
    assert lines(caught, "undelivered")[1].startswith("carrier sim: undelivered receipts back under 20% (0% of ")


# --- the database and Redis unreachable ---------------------------------------------------------------------------

class Proxy:
    """A TCP proxy to a server, that can be cut (every connection dropped, the port closed) and restored."""

    def __init__(self, port: int):
        self.target, self.port = port, free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()


async def test_the_database_unreachable_is_one_line_and_one_when_it_is_back(aiohttp_client, migrated, postgres_url,
                                                                            sim, caught):
    await upgrade(postgres_url)
    url = postgres_url.rsplit("@", 1)
    host_port, database = url[1].split("/", 1)
    proxy = Proxy(int(host_port.rsplit(":", 1)[1]))
    await proxy.start()
    migrated.database.url = f"{url[0]}@127.0.0.1:{proxy.port}/{database}"
    client = await start(aiohttp_client, migrated, sim.port)
    engine = create_engine(postgres_url)  # straight to the server: what the test reads
    try:
        sm = create_sessionmaker(engine)
        customer = await new_customer(client, sm, "acme")
        await send(client, customer, 3)
        await wait_for(lambda: _all(sm, "delivered", 3), timeout=20)
        caught.clear()
        caught.set_level(logging.WARNING)  # every logger: nothing else may fill the log either
        await proxy.cut()
        await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "unreachable")) == 1), timeout=20)
        await asyncio.sleep(1.0)  # the dispatcher's claim, the sweep and the webhook sender meet it meanwhile
        assert lines(caught, "unreachable", "database")[0].startswith("The database is unreachable: ")
        await proxy.start()
        await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "unreachable")) == 2), timeout=20)
        back = lines(caught, "unreachable", "database")[1]
        assert back.startswith("The database is reachable again after ")
        assert int(back.split("(")[1].split()[0].replace(",", "")) >= 10  # the claim loop alone tried 20 times
        gateway = [r for r in caught.records if r.name.startswith("gateway") and r.name != "gateway.alerts"]
        assert [r.getMessage() for r in gateway] == []  # the claim loop, the sweep, LISTEN, ...: all in the spell
        assert [r.getMessage() for r in caught.records if r.name == "gateway.alerts"] == \
            lines(caught, "unreachable")  # and no other alert
        await send(client, customer, 3)  # all goes on
        await wait_for(lambda: _all(sm, "delivered", 6), timeout=20)
    finally:
        await client.close()
        await engine.dispose()
        with contextlib.suppress(Exception):
            await proxy.cut()


async def test_redis_unreachable_is_one_line_and_one_when_it_is_back(aiohttp_client, migrated, sim, caught):
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server must be installed in CI (.ci/run installs it)")
        pytest.skip("redis-server is not installed")
    port = free_port()

    def redis_server() -> subprocess.Popen:
        return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def answers() -> bool:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except Exception:  # noqa: BLE001 - not yet
            return False
        finally:
            await client.aclose()

    server = redis_server()
    try:
        await wait_for(answers, timeout=10)
        migrated.redis.url, migrated.redis.timeout_s = f"redis://127.0.0.1:{port}/0", 0.3
        migrated.pacing.enabled = True
        client = await start(aiohttp_client, migrated, sim.port)
        customer = await new_customer(client, client.app[app_keys.SESSIONMAKER], "acme")
        server.terminate()
        server.wait(10)
        await send(client, customer, 2)  # sending waits for the shared limits: it meets the outage too
        await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "unreachable")) == 1), timeout=20)
        assert lines(caught, "unreachable", "redis")[0].startswith("Redis is unreachable: ")
        await asyncio.sleep(1.0)
        assert len(lines(caught)) == 1
        server = redis_server()
        await wait_for(lambda: asyncio.sleep(0, len(lines(caught, "unreachable")) == 2), timeout=20)
        assert lines(caught, "unreachable", "redis")[1].startswith("Redis is reachable again after ")
        await wait_for(lambda: _all(client.app[app_keys.SESSIONMAKER], "delivered", 2), timeout=20)
    finally:
        server.terminate()
        server.wait(10)
