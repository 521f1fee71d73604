"""The SQLite connection under SQLAlchemy (gateway.store.db): one trip to the connection's thread per statement, with
everything a DB-API cursor gives still right (rows, RETURNING, rowcount, executemany, errors, rollback)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gateway.store import db

meta = MetaData()
items = Table("items", meta, Column("id", Integer, primary_key=True), Column("name", String(20), unique=True))


@pytest.fixture
async def engine(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    yield engine
    await engine.dispose()


async def test_statements_rows_and_errors(engine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(items), [{"name": f"n{i}"} for i in range(250)])  # executemany
        returned = (await conn.execute(insert(items).values(name="solo").returning(items.c.id))).scalar_one()
        assert returned == 251
        changed = await conn.execute(update(items).where(items.c.id <= 10).values(name=func.upper(items.c.name)))
        assert changed.rowcount == 10
    async with engine.connect() as conn:
        rows = (await conn.execute(select(items.c.id, items.c.name).order_by(items.c.id))).all()
        assert len(rows) == 251 and rows[0] == (1, "N0") and rows[-1] == (251, "solo")
        streamed = [r async for r in await conn.stream(select(items.c.id).order_by(items.c.id))]
        assert [r.id for r in streamed] == list(range(1, 252))
        assert (await conn.execute(text("SELECT 1 WHERE 0"))).first() is None
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(items).values(name="other"))
            await conn.execute(insert(items).values(name="solo"))  # unique: the transaction is rolled back
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(items)) == 251
        assert await conn.scalar(select(items.c.id).where(items.c.name == "other")) is None


async def test_one_trip_to_the_thread_per_statement(engine, monkeypatch) -> None:
    trips: list[str] = []
    original = db._Connection._execute

    async def counted(self, fn, *args, **kwargs):
        trips.append(getattr(fn, "__name__", "?"))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(db._Connection, "_execute", counted)
    async with engine.connect() as conn:
        trips.clear()
        rows = (await conn.execute(select(items.c.id))).all()
        await conn.execute(insert(items), [{"name": "a"}, {"name": "b"}])
        await conn.execute(update(items).values(name="c").where(items.c.name == "a"))
        assert rows == [] and trips == ["_run", "_run_many", "_run"]
