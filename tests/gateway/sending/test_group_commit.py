"""Single-message requests stored together (group commit, gateway.sending.accepting) over real HTTP and a real database:
each is answered with its own message or its own error, only once its row is committed; a key given twice in a
group makes one message; a database error fails its whole group, which stores nothing.

To make a group for sure, a test holds SQLite's write lock from another connection while the requests come in:
the writer waits for the lock with the group it took, and the requests arriving meanwhile wait together for
the next transaction."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy.engine import make_url

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import new_customer, wait_for


@pytest.fixture
async def api(aiohttp_client, migrated, sessionmaker):
    # the key stays known (no lookup while a test holds the database's lock), once a first request has read it
    migrated.security.key_cache_seconds = 600
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    assert (await client.get("/v1/messages", headers=client.customer.headers)).status == 200
    client.db = make_url(migrated.database_url).database
    return client


@contextlib.asynccontextmanager
async def write_locked(path: str) -> AsyncIterator[None]:
    """SQLite's write lock, held by another connection until the block ends (taken on a thread: the gateway,
    on this event loop, may be finishing a transaction)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def execute(path: str, sql: str) -> None:
    """DDL through a connection of its own, on a thread (it may wait for the gateway's write lock)."""
    def run() -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
            conn.execute(sql)

    await asyncio.to_thread(run)


def stored(path: str, public_ids: list[str]) -> dict[str, tuple]:
    """public id -> (destination, body, status), read through a connection of its own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        marks = ",".join("?" * len(public_ids))
        return {row[0]: row[1:] for row in conn.execute(
            f"SELECT public_id, destination, body, status FROM messages WHERE public_id IN ({marks})", public_ids)}


async def post(api, body: dict[str, Any], key: str | None = None) -> tuple[int, dict]:
    headers = {**api.customer.headers, **({"Idempotency-Key": key} if key else {})}
    async with api.post("/v1/messages", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def joined(api, count: int) -> Callable[[], Awaitable[None]]:
    """Waits until ``count`` more requests than now have joined a group (parsed, validated, waiting)."""
    stats = api.app[app_keys.ACCEPTOR].stats
    target = stats["joined"] + count
    return lambda: wait_for(lambda: asyncio.sleep(0, stats["joined"] >= target), timeout=20)


async def grouped(api, bodies: list[tuple[dict, str | None]], valid: int | None = None
                  ) -> list[tuple[int, dict]]:
    """Send the requests side by side while the database is locked, so that they wait together: the writer
    waits for the lock with those it took first, and all the others make the next group."""
    until = joined(api, len(bodies) if valid is None else valid)
    async with write_locked(api.db):
        tasks = [asyncio.create_task(post(api, body, key)) for body, key in bodies]
        await until()  # every request that passes validation parsed and waiting
    return await asyncio.gather(*tasks)


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


async def test_concurrent_requests_are_stored_together_each_answered_with_its_own(api):
    acceptor = api.app[app_keys.ACCEPTOR]
    answers = await grouped(api, [({"to": phone(i), "body": f"hello {i}"}, None) for i in range(40)])
    assert [status for status, _ in answers] == [202] * 40
    assert [(a["to"], a["body"]) for _, a in answers] == [(phone(i), f"hello {i}") for i in range(40)]
    rows = stored(api.db, [a["id"] for _, a in answers])
    assert {pid: (to, body) for pid, (to, body, _) in rows.items()} == {
        a["id"]: (phone(i), f"hello {i}") for i, (_, a) in enumerate(answers)}
    assert acceptor.stats["requests"] == 40 and acceptor.stats["groups"] <= 3  # not one transaction each


async def test_a_refused_request_does_not_fail_the_others_of_its_group(api, sessionmaker):
    from registry.models import OptOut

    async with sessionmaker() as session, session.begin():
        session.add(OptOut(account_id=api.customer.account_id, phone=phone(3), list_name="default"))
    assert (await post(api, {"to": phone(99), "body": "first"}, key="used"))[0] == 202
    api.app[app_keys.ACCEPTOR].stats.update(groups=0, requests=0)
    answers = await grouped(api, [({"to": phone(i), "body": "x"}, None) for i in range(8)]
                            + [({"to": phone(99), "body": "another"}, "used"), ({"to": "12", "body": "x"}, None)],
                            valid=9)  # the last is refused before it joins
    codes = [(status, a.get("error", {}).get("code")) for status, a in answers]
    assert codes == [(202, None)] * 3 + [(409, "recipient_opted_out")] + [(202, None)] * 4 + [
        (422, "idempotency_key_reused"), (422, "invalid_destination")]
    assert api.app[app_keys.ACCEPTOR].stats["groups"] <= 2
    ids = [a["id"] for _, a in answers[:8] if "id" in a] + [answers[3][1]["error"]["details"]["message_id"]]
    rows = stored(api.db, ids)
    assert len(rows) == 8 and [pid for pid, (_, _, status) in rows.items() if status == "blocked"] == ids[-1:]


async def test_one_key_twice_in_a_group_makes_one_message(api):
    same = {"to": phone(1), "body": "once"}
    answers = await grouped(api, [(same, "k1")] * 5 + [({"to": phone(2), "body": "other"}, "k1")]
                            + [({"to": phone(3), "body": "no key"}, None)])
    statuses = [status for status, _ in answers]
    assert statuses == [202, 200, 200, 200, 200, 422, 202]
    assert len({a["id"] for _, a in answers[:5]}) == 1
    assert answers[5][1]["error"]["code"] == "idempotency_key_reused"
    with contextlib.closing(sqlite3.connect(api.db)) as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE idempotency_key = 'k1'").fetchone() == (1,)


async def test_a_database_error_fails_the_whole_group_and_stores_none_of_it(api):
    # a trigger refuses the event of one message: its group's messages are inserted, then the transaction fails
    await execute(api.db, """CREATE TRIGGER refuse_boom BEFORE INSERT ON message_events
                        WHEN (SELECT body FROM messages WHERE id = NEW.message_id) = 'boom'
                        BEGIN SELECT RAISE(ABORT, 'refused by the test'); END""")
    async with write_locked(api.db):
        until = joined(api, 5)
        first = [asyncio.create_task(post(api, {"to": phone(i), "body": "early"})) for i in range(5)]
        await until()  # the writer has taken some of these and waits for the lock
        await asyncio.sleep(0.1)
        until = joined(api, 5)
        second = [asyncio.create_task(post(api, {"to": phone(10 + i), "body": "boom" if i == 2 else "late"}))
                  for i in range(5)]
        await until()
    answers = await asyncio.gather(*first, *second)
    failed = [a for status, a in answers if status == 503]
    assert all(status in (202, 503) for status, _ in answers)
    assert len(failed) >= 5  # the boom request and the ones that came with it
    assert {a["error"]["code"] for a in failed} == {"not_stored"}
    with contextlib.closing(sqlite3.connect(api.db)) as conn:
        bodies = sorted(b for (b,) in conn.execute("SELECT body FROM messages"))
        assert bodies == ["early"] * (10 - len(failed))  # only the groups without the failure
    await execute(api.db, "DROP TRIGGER refuse_boom")
    assert (await post(api, {"to": phone(12), "body": "boom"}))[0] == 202  # and the next group is fine


async def test_a_database_locked_past_its_busy_timeout_is_a_503_that_changes_nothing(aiohttp_client, migrated,
                                                                                   sessionmaker):
    """Another process holds SQLite's write lock longer than ``[database] busy_timeout_s``: a batch (which is
    not grouped) and a single message are both answered 503 with Retry-After, nothing is stored, and the same
    requests succeed once the lock is gone."""
    migrated.database.busy_timeout_s = 0.5
    migrated.security.key_cache_seconds = 600
    api = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    api.customer = await new_customer(api, sessionmaker, "acme")
    assert (await api.get("/v1/messages", headers=api.customer.headers)).status == 200
    path = make_url(migrated.database_url).database
    batch = {"messages": [{"to": phone(i), "body": "locked out"} for i in range(3)]}
    async with write_locked(path):
        async with api.post("/v1/messages/batch", json=batch, headers=api.customer.headers) as resp:
            assert resp.status == 503, await resp.text()
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["error"]["code"] == "database_busy"
        status, answer = await post(api, {"to": phone(9), "body": "locked out"})
        assert status == 503 and answer["error"]["code"] in {"not_stored", "database_busy"}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    async with api.post("/v1/messages/batch", json=batch, headers=api.customer.headers) as resp:
        assert resp.status == 200 and (await resp.json())["accepted"] == 3
    assert (await post(api, {"to": phone(9), "body": "unlocked"}))[0] == 202


async def test_a_message_is_stored_before_its_202(api):
    seen: list[str] = []

    async def send(i: int) -> None:
        status, answer = await post(api, {"to": phone(i), "body": "durable"})
        assert status == 202
        assert answer["id"] in stored(api.db, [answer["id"]])  # at once, through another connection
        seen.append(answer["id"])

    await asyncio.gather(*(send(i) for i in range(64)))
    assert len(set(seen)) == 64


@pytest.mark.postgres
async def test_on_postgresql_two_instances_group_their_own_requests(aiohttp_client, tmp_path, postgres_url):
    """Two instances on one database, the same keys sent to both at once: one message per key (the other answer
    is that message, or 409 while it is being stored), and the requests without a key beside them all stored."""
    from sqlalchemy import func, select

    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade
    from gateway.store.models import Message
    from tests.conftest import make_settings

    await upgrade(postgres_url)
    settings = make_settings(tmp_path)
    settings.database.url = postgres_url
    engine = create_engine(postgres_url)
    one = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
    two = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
    try:
        one.customer = two.customer = await new_customer(one, create_sessionmaker(engine), "acme")
        sends = []
        for i in range(30):
            same = {"to": phone(i), "body": f"keyed {i}"}
            sends += [post(one, same, f"key-{i}"), post(two, same, f"key-{i}"),
                      post(one if i % 2 else two, {"to": phone(100 + i), "body": "plain"})]
        answers = await asyncio.gather(*sends)
        for i in range(30):
            (s1, a1), (s2, a2), (s3, _) = answers[3 * i:3 * i + 3]
            assert sorted((s1, s2)) in ([200, 202], [202, 409]), (a1, a2)
            if {s1, s2} == {200, 202}:
                assert a1["id"] == a2["id"]
            else:
                assert (a1 if s1 == 409 else a2)["error"]["code"] == "idempotency_conflict"
            assert s3 == 202
        async with create_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Message)) == 60
            assert await session.scalar(select(func.count(func.distinct(Message.idempotency_key)))) == 30
    finally:  # both stopped before their database is dropped
        await one.close()
        await two.close()
        await engine.dispose()


@pytest.mark.postgres
async def test_on_postgresql_a_key_stored_meanwhile_fails_only_its_own_message(aiohttp_client, tmp_path,
                                                                              postgres_url):
    """Another transaction (another instance) stores a key while a group or a batch holding it is being written:
    that message alone answers 409 idempotency_conflict, the others of the group or batch are stored."""
    import datetime as dt

    from sqlalchemy import insert, select

    from gateway.sending.messages import NewMessage
    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade
    from gateway.store.models import Message
    from tests.conftest import make_settings

    await upgrade(postgres_url)
    settings = make_settings(tmp_path)
    settings.database.url = postgres_url
    engine = create_engine(postgres_url)
    gw = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
    try:
        gw.customer = await new_customer(gw, create_sessionmaker(engine), "acme")
        now = dt.datetime.now(dt.timezone.utc)
        async with create_sessionmaker(engine)() as other:
            async with other.begin():  # the other instance's rows, not committed yet
                for key in ("single-2", "batch:1"):
                    await other.execute(insert(Message.__table__).values(NewMessage(
                        public_id=f"msg_other_{key}", account_id=gw.customer.account_id, source="12345",
                        destination=phone(0), body="other", encoding="gsm7", segments=1, characters=5,
                        status="queued", idempotency_key=key, status_callback=None, message_type="transactional",
                        created_at=now, updated_at=now, next_attempt_at=now, expires_at=now).row()))
                singles = [asyncio.create_task(post(gw, {"to": phone(i), "body": f"single {i}"}, f"single-{i}"))
                           for i in range(1, 4)]
                batch = asyncio.create_task(gw.post("/v1/messages/batch", headers={
                    **gw.customer.headers, "Idempotency-Key": "batch"}, json={"messages": [
                        {"to": phone(10 + i), "body": f"batch {i}"} for i in range(3)]}))
                await asyncio.sleep(1.0)  # their inserts wait for this transaction's keys
        answers = await asyncio.gather(*singles)
        assert [(s, a.get("error", {}).get("code")) for s, a in answers] == [
            (202, None), (409, "idempotency_conflict"), (202, None)]
        results = (await (await batch).json())["results"]
        assert [(r["status_code"], r.get("error", {}).get("code")) for r in results] == [
            (202, None), (409, "idempotency_conflict"), (202, None)]
        async with create_sessionmaker(engine)() as session:
            bodies = sorted((await session.scalars(select(Message.body))).all())
        assert bodies == ["batch 0", "batch 2", "other", "other", "single 1", "single 3"]
    finally:  # stopped before its database is dropped
        await gw.close()
        await engine.dispose()
