"""UTCDateTime's one-step SQLite processors write exactly the text SQLAlchemy's own SQLite DATETIME writes (so
stored values and SQL comparisons do not change) and read back aware UTC datetimes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select
from sqlalchemy.dialects import sqlite

from registry.db import UTCDateTime

UTC = dt.timezone.utc
VALUES = [dt.datetime(2026, 11, 23, 18, 40, 0, 0, tzinfo=UTC),  # no microseconds: still six digits
          dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
          dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]


@pytest.mark.parametrize("value", VALUES)
def test_same_text_as_the_dialect(value: dt.datetime) -> None:
    reference = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert UTCDateTime().bind_processor(sqlite.dialect())(value) == reference(
        value.astimezone(UTC).replace(tzinfo=None))


def test_round_trip_and_comparison_on_sqlite() -> None:
    engine = create_engine("sqlite://")
    meta = MetaData()
    table = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": v} for v in VALUES])
        got = conn.execute(select(table.c.at).order_by(table.c.id)).scalars().all()
        assert got == VALUES and all(v.tzinfo is UTC for v in got)
        assert conn.execute(select(table.c.id).where(table.c.at <= VALUES[0]).order_by(table.c.id)
                            ).scalars().all() == [1, 2, 3]
        with pytest.raises(Exception, match="naive datetime"):
            conn.execute(table.insert(), [{"at": dt.datetime(2026, 1, 1)}])


def test_the_remembered_last_value_never_answers_for_another() -> None:
    process = UTCDateTime().bind_processor(sqlite.dialect())
    reference = sqlite.DATETIME().bind_processor(sqlite.dialect())
    a, b = VALUES[0], VALUES[1]
    texts = [process(v) for v in (a, a, b, a, b, b, a.replace(microsecond=1))]
    assert texts == [reference(v.astimezone(UTC).replace(tzinfo=None)) for v in (a, a, b, a, b, b,
                                                                                  a.replace(microsecond=1))]
    assert texts[0] != texts[2] and texts[-1].endswith(".000001")
