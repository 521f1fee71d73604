"""Several gateway instances on one PostgreSQL queue and one Redis: shared limits (GCRA in Lua, daily caps that
expire at local midnight), LISTEN/NOTIFY wake-ups, receipts on any instance's bind, messages of dead instances
taken back, bind slots within a carrier's maximum, and sending that pauses while Redis is away.

Each test runs real servers: PostgreSQL and Redis on loopback, the SMSC simulator over TCP, and two gateway
applications with their own dispatchers, binds and HTTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.bench.processes import free_port
from gateway.sending.pacing import DailyCap, LimiterUnavailable, Rate, RedisLimiter
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.migrate import upgrade
from gateway.store.models import GatewayInstance, Message
from registry.db import utcnow
from registry.models import Account
from tests.conftest import IN_CI, make_settings, new_customer, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FINAL = {"delivered", "undelivered", "failed", "expired", "blocked"}


def us(n: int) -> str:
    return f"+1212555{n:04d}"


@pytest.fixture
async def pg(postgres_url):
    await upgrade(postgres_url)
    engine = create_engine(postgres_url)
    yield postgres_url, create_sessionmaker(engine)
    await engine.dispose()


def instance_settings(tmp_path: Path, name: str, db_url: str, sim_port: int, redis_url: str = "",
                      prefix: str = "gw:", **dispatcher):
    settings = make_settings(tmp_path / name)
    settings.database.url = db_url
    settings.redis.url = redis_url
    settings.redis.key_prefix = prefix
    settings.redis.timeout_s = 0.5
    settings.pacing.enabled = bool(redis_url)
    settings.carriers[0].port = sim_port
    settings.voice.enabled = False
    for key, value in dispatcher.items():
        setattr(settings.dispatcher, key, value)
    return settings


async def start_instances(aiohttp_client, tmp_path, pg, sim, redis_url="", prefix="gw:", n=2, **dispatcher):
    url, _ = pg
    clients = []
    for i in range(n):
        client = await aiohttp_client(create_app(instance_settings(tmp_path, f"gw{i}", url, sim.port, redis_url,
                                                                   prefix, **dispatcher)))
        clients.append(client)
    return clients


async def send(client, customer, to: str, **extra) -> dict:
    resp = await client.post("/v1/messages", json={"to": to, "body": "hello", **extra}, headers=customer.headers)
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def statuses(sm, ids: list[str]) -> dict[str, str]:
    async with sm() as session:
        rows = (await session.execute(select(Message.public_id, Message.status)
                                      .where(Message.public_id.in_(ids)))).all()
    return dict(rows)


async def all_final(sm, ids: list[str], timeout: float = 20.0) -> dict[str, str]:
    async def done() -> bool:
        return all(s in FINAL for s in (await statuses(sm, ids)).values())

    await wait_for(done, timeout=timeout, interval=0.1)
    return await statuses(sm, ids)


# --- the limiter in Redis ------------------------------------------------------------------------------------

async def test_two_limiters_share_one_rate(redis_url, redis_prefix):
    a = RedisLimiter(redis_url, prefix=redis_prefix)
    b = RedisLimiter(redis_url, prefix=redis_prefix)
    try:
        limits = [Rate("acct:1", 10.0)]
        now = time.time()
        slots: list[float] = []
        trip = 0.0  # slots come back on this process's clock, read when Redis's answer arrives: each is known
        for i in range(10):  # to within that round trip. The two instances take turns, each with a batch of three.
            asked = time.monotonic()
            slots += await (a if i % 2 else b).reserve_many([(limits, 1, 60.0)] * 3, now)
            trip = max(trip, time.monotonic() - asked)
        assert None not in slots
        ordered = sorted(slots)
        gaps = [y - x for x, y in zip(ordered, ordered[1:])]
        assert min(gaps) >= 0.1 - 0.002 - trip  # never two within one interval, whichever instance asked
        assert ordered[-1] - ordered[0] >= 29 * 0.1 - 0.01
        # beyond the horizon nothing is reserved, and the schedule is untouched
        assert await a.reserve_many([(limits, 1, 0.5)], time.time()) == [None]
        nxt = (await b.reserve_many([(limits, 1, 60.0)], time.time()))[0]
        assert nxt == pytest.approx(ordered[-1] + 0.1, abs=0.05)
    finally:
        await a.close()
        await b.close()


async def test_daily_cap_is_a_counter_that_expires_at_local_midnight(redis_url, redis_prefix):
    import redis.asyncio as aioredis

    limiter = RedisLimiter(redis_url, prefix=redis_prefix)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        cap = [DailyCap("tmo:b1", 3, "America/Los_Angeles")]
        now = time.time()
        assert None not in await limiter.reserve_many([(cap, 1, 5.0)] * 3, now)
        assert await limiter.reserve_many([(cap, 1, 5.0)], now) == [None]  # today's 3 are spent
        zone = ZoneInfo("America/Los_Angeles")
        local = dt.datetime.fromtimestamp(now, zone)
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), zone).timestamp()
        day_key = f"{redis_prefix}day:tmo:b1:{local.date()}"
        assert float(await raw.get(day_key)) == 3
        assert await raw.pttl(day_key) / 1000 == pytest.approx(midnight - time.time(), abs=3)
        # a message that may wait until tomorrow gets tomorrow's first slot, counted on tomorrow's key
        (slot,) = await limiter.reserve_many([(cap, 2, 2 * 86400.0)], now)
        assert slot == pytest.approx(midnight, abs=2)
        assert float(await raw.get(f"{redis_prefix}day:tmo:b1:{local.date() + dt.timedelta(days=1)}")) == 2
        assert await limiter.reserve_many([(cap, 4, 3 * 86400.0)], now) == [None]  # more than a day's cap
    finally:
        await limiter.close()
        await raw.aclose()


async def test_throttle_pause_in_redis_is_one_pause(redis_url, redis_prefix):
    limiter = RedisLimiter(redis_url, prefix=redis_prefix)
    try:
        for _ in range(50):
            await limiter.penalize("num:12345", 1.0, time.time())
        (slot,) = await limiter.reserve_many([([Rate("num:12345", 100.0)], 1, 60.0)], time.time())
        assert 0.8 < slot - time.time() <= 1.01
    finally:
        await limiter.close()


async def test_send_window_is_shared_by_instances(redis_url, redis_prefix):
    a = RedisLimiter(redis_url, prefix=redis_prefix)
    b = RedisLimiter(redis_url, prefix=redis_prefix)
    try:
        limits = [Rate("acct:7", 5 * 0.98)]  # a cap of 5 a second
        while time.time() % 1 > 0.5:  # start early in a second, so that all ten asks fall in it
            await asyncio.sleep(0.05)
        second = int(time.time())
        answers = [await (a if i % 2 else b).take_send(limits, 1) for i in range(10)]
        assert answers[:5] == [(0.0, second)] * 5  # five places in this second, whichever instance took them
        assert all(0 < w <= 1.0 and s is None for w, s in answers[5:])  # the rest wait for the next second
    finally:
        await a.close()
        await b.close()


async def test_unreachable_redis_is_reported_not_guessed():
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(LimiterUnavailable):
        await limiter.reserve_many([([Rate("acct:1", 10.0)], 1, 10.0)], time.time())
    await limiter.close()


# --- several instances ---------------------------------------------------------------------------------------

async def test_two_instances_keep_the_account_rate_together(aiohttp_client, tmp_path, pg, sim, redis_url,
                                                            redis_prefix):
    _, sm = pg
    a, b = await start_instances(aiohttp_client, tmp_path, pg, sim, redis_url, redis_prefix)
    for client in (a, b):
        await wait_for(lambda c=client: asyncio.sleep(0, c.app[app_keys.CARRIERS].ready))
    customer = await new_customer(a, sm, "acme")
    async with sm() as session, session.begin():
        await session.execute(update(Account).where(Account.id == customer.account_id).values(max_rate_per_s=8))
    ids = []
    for n in range(40):  # both instances accept, both send
        ids.append((await send(a if n % 2 else b, customer, us(n)))["id"])
    final = await all_final(sm, ids, timeout=30)
    assert set(final.values()) == {"delivered"}
    assert len(sim.received) == 40 and len({s.destination for s in sim.received}) == 40  # each once
    assert max(sim.per_second.values()) <= 8  # the combined rate, per calendar second
    dispatchers = [c.app[app_keys.DISPATCHER] for c in (a, b)]
    assert sum(d.stats["sent"] for d in dispatchers) == 40
    assert all(d.stats["sent"] > 0 for d in dispatchers)  # the queue is shared, not split by who accepted
    # the SMSC hands receipts to any bind of the system id: each instance matched some it had not sent
    assert all(d.stats["receipts"] > 0 for d in dispatchers)
    assert sum(d.stats["receipts"] for d in dispatchers) == 40


async def test_notify_wakes_an_idle_instance(aiohttp_client, tmp_path, pg, sim):
    url, sm = pg
    (gw,) = await start_instances(aiohttp_client, tmp_path, pg, sim, n=1, poll_interval_ms=60_000)
    await wait_for(lambda: asyncio.sleep(0, gw.app[app_keys.CARRIERS].ready))
    customer = await new_customer(gw, sm, "acme")
    await asyncio.sleep(0.5)  # the first claim after start has passed; the next poll is a minute away
    now = utcnow()
    async with sm() as session, session.begin():  # another instance accepts a message
        await session.execute(insert(Message).values(
            public_id="msg_from_elsewhere", account_id=customer.account_id, source="12345", destination=us(1),
            body="hi", encoding="gsm7", segments=1, characters=2, status="queued", attempts=0, paced=False,
            message_type="transactional", created_at=now, updated_at=now, next_attempt_at=now,
            expires_at=now + dt.timedelta(hours=1)))
    assert await all_final(sm, ["msg_from_elsewhere"], timeout=10) == {"msg_from_elsewhere": "delivered"}


async def test_messages_of_a_dead_instance_are_sent_by_another(aiohttp_client, tmp_path, pg, sim):
    url, sm = pg
    (gw,) = await start_instances(aiohttp_client, tmp_path, pg, sim, n=1, lease_s=5)
    customer = await new_customer(gw, sm, "acme")
    now = utcnow()
    async with sm() as session, session.begin():
        session.add_all([GatewayInstance(id="dead", host="h", pid=1, started_at=now,
                                         heartbeat_at=now - dt.timedelta(seconds=60)),
                         GatewayInstance(id="alive", host="h", pid=2, started_at=now, heartbeat_at=now)])
        for mid, owner in (("msg_dead", "dead"), ("msg_alive", "alive")):
            await session.execute(insert(Message).values(
                public_id=mid, account_id=customer.account_id, source="12345", destination=us(2), body="hi",
                encoding="gsm7", segments=1, characters=2, status="sending", attempts=1, paced=False,
                claimed_by=owner, message_type="transactional", created_at=now, updated_at=now,
                next_attempt_at=now, expires_at=now + dt.timedelta(hours=1)))
    assert await all_final(sm, ["msg_dead"], timeout=10) == {"msg_dead": "delivered"}
    assert (await statuses(sm, ["msg_alive"]))["msg_alive"] == "sending"  # its owner's lease still runs
    # the other instance stops beating: once its lease has run out, its message is taken back too
    assert await all_final(sm, ["msg_alive"], timeout=20) == {"msg_alive": "delivered"}
    async with sm() as session:
        left = set((await session.scalars(select(GatewayInstance.id))).all())
    assert gw.app[app_keys.DISPATCHER].instance_id in left


async def test_bind_slots_keep_a_carriers_maximum_across_instances(aiohttp_client, tmp_path, pg, sim, redis_url,
                                                                   redis_prefix):
    url, sm = pg
    apps = []
    for i in range(2):
        settings = instance_settings(tmp_path, f"gw{i}", url, sim.port, redis_url, redis_prefix)
        settings.carriers[0].binds = 2
        settings.carriers[0].max_binds = 3
        apps.append(await aiohttp_client(create_app(settings)))
    pools = [c.app[app_keys.CARRIERS] for c in apps]
    opened = [len(pool.carriers[0].clients) if pool.carriers else 0 for pool in pools]
    assert sorted(opened) == [1, 2]
    await wait_for(lambda: asyncio.sleep(0, len(sim.connections) == 3))
    # a message accepted by either instance is sent over the binds that exist
    customer = await new_customer(apps[0], sm, "acme")
    ids = [(await send(apps[n % 2], customer, us(n)))["id"] for n in range(6)]
    assert set((await all_final(sm, ids)).values()) == {"delivered"}


def _start_redis(port: int) -> subprocess.Popen:
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_sending_pauses_while_redis_is_away_and_resumes(aiohttp_client, tmp_path, pg, sim, redis_url):
    if shutil.which("redis-server") is None:  # the test stops and starts a server of its own
        if IN_CI:
            pytest.fail("redis-server must be installed in CI (.ci/run installs it)")
        pytest.skip("redis-server is not installed")
    url, sm = pg
    port = free_port()
    server = _start_redis(port)
    own = f"redis://127.0.0.1:{port}/0"
    try:
        limiter = RedisLimiter(own)
        for _ in range(50):
            if await limiter.ping():
                break
            await asyncio.sleep(0.1)
        await limiter.close()
        (gw,) = await start_instances(aiohttp_client, tmp_path, pg, sim, own, n=1)
        await wait_for(lambda: asyncio.sleep(0, gw.app[app_keys.CARRIERS].ready))
        customer = await new_customer(gw, sm, "acme")
        first = [(await send(gw, customer, us(n)))["id"] for n in range(5)]
        assert set((await all_final(sm, first)).values()) == {"delivered"}

        server.terminate()
        server.wait(10)
        before = len(sim.received)
        during = [(await send(gw, customer, us(100 + n)))["id"] for n in range(5)]  # accepted: the queue is durable
        dispatcher = gw.app[app_keys.DISPATCHER]
        await wait_for(lambda: asyncio.sleep(0, dispatcher.paused == "limits_unreachable"), timeout=10)
        await asyncio.sleep(2.0)
        assert len(sim.received) == before  # nothing left without its limits
        assert set((await statuses(sm, during)).values()) <= {"queued", "sending"}

        server = _start_redis(port)  # back, empty: it resumes by itself
        assert set((await all_final(sm, during, timeout=20)).values()) == {"delivered"}
        assert dispatcher.paused is None
    finally:
        with contextlib.suppress(Exception):
            server.terminate()
            server.wait(10)
