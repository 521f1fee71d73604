"""What an inbound message answers (the last message the account sent the person from the number) is found by an
index search, not by a scan of the account's messages: with the destination indexed alone, SQLite's planner took
the account's index for a batch of people, a cost that grew with the table (bench soak saw the gateway's CPU creep
up over time). Checked on the query plan of the statement the gateway runs, over a migrated database that holds
many messages of one account (without ANALYZE's statistics, as the gateway runs)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text
from sqlalchemy.dialects import sqlite

from gateway.store.models import Message
from gateway.two_way.inbound import _LAST_SENT
from registry.db import utcnow
from registry.models import Account

ROWS = 2_000


@pytest.mark.parametrize("people", [1, 5, 40])
async def test_the_reply_lookup_searches_an_index_whatever_the_batch(sessionmaker, people: int) -> None:
    async with sessionmaker() as session, session.begin():
        session.add(Account(id=1, name="acme"))
        await session.flush()
        await session.execute(insert(Message), [
            {"public_id": f"msg_{i}", "account_id": 1, "source": "12345", "destination": f"+1415555{i:04d}",
             "body": "hi", "status": "delivered", "encoding": "gsm7", "segments": 1, "characters": 2,
             "expires_at": utcnow()} for i in range(ROWS)])
        persons = [f"+1415555{i:04d}" for i in range(people)]
        stmt = _LAST_SENT.params(account=1, number="12345", persons=persons)
        sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in (await session.execute(text("EXPLAIN QUERY PLAN " + sql))).all()]
        found = (await session.execute(stmt)).all()
    assert sorted(found) == [(p, f"msg_{int(p[-4:])}") for p in persons]
    inner = [step for step in plan if "messages" in step and "PRIMARY KEY" not in step]
    assert inner and all("ix_messages_conversation" in step for step in inner), plan
    assert not any(step.startswith("SCAN") or "ix_messages_account" in step for step in plan), plan
