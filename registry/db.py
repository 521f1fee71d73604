"""Declarative base and column types shared by every table of the project."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    """A stored time as every answer and event writes it: ISO 8601 in UTC with a Z."""
    return value.isoformat().replace("+00:00", "Z") if value else None


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)

    # SQLite keeps timestamps as text. The general path converts twice (this class, then the dialect's DATETIME
    # with a format string one way and a parser the other); on the hot path one step each way does, writing the
    # very text the dialect writes ("YYYY-MM-DD HH:MM:SS.ffffff", so stored values and comparisons are the same).
    def bind_processor(self, dialect):  # noqa: ANN001, ANN201
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = dt.timezone.utc
        # the last value and its text, as one tuple (replaced in one step): a batch's rows mostly share one ``now``
        last: list[tuple] = [(None, None)]

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            seen, seen_text = last[0]
            if value is seen:  # the very object (kept alive here, so its id is not reused)
                return seen_text
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            text = value.astimezone(utc).replace(tzinfo=None).isoformat(" ", "microseconds")
            last[0] = (value, text)
            return text

        return process

    def result_processor(self, dialect, coltype):  # noqa: ANN001, ANN201
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        utc = dt.timezone.utc
        parse = dt.datetime.fromisoformat

        def process(value: str | None) -> dt.datetime | None:
            if value is None:
                return None
            parsed = parse(value)
            return parsed.replace(tzinfo=utc) if parsed.tzinfo is None else parsed.astimezone(utc)

        return process


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
