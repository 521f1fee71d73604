"""Engine and session factory. Created in the app's cleanup context, never at import time."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class _NoValues(logging.Filter):
    """Database values stay out of the logs at any level (webhook secrets are among them): aiosqlite logs every
    call with its arguments at DEBUG (only the call's name is kept), SQLAlchemy every result row (hidden);
    SQL parameters are hidden by the engines' ``hide_parameters``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Row %r":
            record.args = ("(hidden)",)
        elif isinstance(record.args, tuple):
            record.args = tuple(getattr(a.func, "__name__", "call") if isinstance(a, functools.partial) else a
                                for a in record.args)
        return True


for _name in ("aiosqlite", "sqlalchemy.engine.Engine"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _NoValues) for f in _logger.filters):
        _logger.addFilter(_NoValues())


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """``hide_parameters``: SQL logging (echo, or logging at INFO) and errors never show values, which include
    webhook secrets."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time, and writers that contend through several connections
        # wait in SQLite's busy handler, which sleeps up to 100 ms a turn. Queued in asyncio instead, a writer
        # starts the moment the previous one commits. Code must not hold a session while opening another.
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, pool_size=1, max_overflow=0,
                                     pool_timeout=60, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               hide_parameters=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
