"""Engine and session factory. Created in the app's cleanup context, never at import time."""

from __future__ import annotations

import collections
import functools
import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterable

import aiosqlite
from sqlalchemy import event, text
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


class _Cursor(aiosqlite.Cursor):
    """An aiosqlite cursor that costs one trip to the connection's thread per statement instead of three or four.

    SQLAlchemy drives an aiosqlite cursor as: create it, execute, fetch all, close, each a trip to the thread
    that owns the sqlite3 connection, and each trip waits for a turn of the event loop to come back (about a
    millisecond when the gateway is busy, for work of a few microseconds). Here the sqlite3 cursor is made on
    that thread by each statement, a statement's rows are fetched in the same trip as the statement (what
    SQLAlchemy does next anyway; every cursor it makes on this connection is read to the end), and the sqlite3
    cursor is closed in that trip too (no work queued for the thread, and no wake-up of it, to close it later).
    It uses the connection's queue as SQLAlchemy's own aiosqlite dialect does (``_conn``, ``_execute``)."""

    def __init__(self, conn: "_Connection") -> None:  # aiosqlite.Cursor's own would need a cursor
        self.iter_chunk_size = conn._iter_chunk_size
        self._conn = conn
        self._cursor = None  # type: ignore[assignment]
        self._rows: collections.deque = collections.deque()

    def _sqlite_cursor(self) -> sqlite3.Cursor:  # on the connection's thread
        # one per statement, closed in the statement's trip; kept for its rowcount, lastrowid and description,
        # which a closed sqlite3 cursor still gives
        self._cursor = self._conn._conn.cursor()
        return self._cursor

    def _run(self, sql: str, parameters: Any) -> list:  # on the connection's thread
        cursor = self._sqlite_cursor()
        try:
            cursor.execute(sql, parameters)
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def _run_many(self, sql: str, parameters: Iterable[Any]) -> None:  # on the connection's thread
        cursor = self._sqlite_cursor()
        try:
            cursor.executemany(sql, parameters)
        finally:
            cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> "_Cursor":
        self._rows = collections.deque(await self._conn._execute(self._run, sql, [] if parameters is None
                                                                 else parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "_Cursor":
        self._rows.clear()
        await self._conn._execute(self._run_many, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list:
        n = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(n, len(self._rows)))]

    async def fetchall(self) -> list:
        rows, self._rows = list(self._rows), collections.deque()
        return rows

    async def close(self) -> None:
        self._rows.clear()  # the sqlite3 cursor was closed by its statement's trip


class _Connection(aiosqlite.Connection):
    def cursor(self) -> _Cursor:  # type: ignore[override] - SQLAlchemy only enters it (``async with``)
        return _Cursor(self)


def _sqlite_connector(database: str, busy_timeout_s: float):  # noqa: ANN202
    async def connect() -> _Connection:
        conn = _Connection(lambda: sqlite3.connect(database, timeout=busy_timeout_s), 64)
        conn._thread.daemon = True  # as SQLAlchemy's dialect does: an unclosed connection never blocks exit
        return await conn

    return connect


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10,
                  busy_timeout_s: float = 30.0) -> AsyncEngine:
    """``hide_parameters``: SQL logging (echo, or logging at INFO) and errors never show values, which include
    webhook secrets. ``busy_timeout_s``: how long a statement waits for SQLite's write lock, or for a connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite has one writer at a time, and writers that contend through several connections
        # wait in SQLite's busy handler, which sleeps up to 100 ms a turn. Queued in asyncio instead, a writer
        # starts the moment the previous one commits. Code must not hold a session while opening another.
        connector = _sqlite_connector(database or ":memory:", busy_timeout_s)
        engine = create_async_engine(url, echo=echo, async_creator=connector,
                                     pool_size=1, max_overflow=0, pool_timeout=2 * busy_timeout_s, hide_parameters=True,
                                     # no ROLLBACK on each return to the pool (a trip to the thread for every
                                     # transaction): a Session or Connection ends its own transaction first
                                     pool_reset_on_return=None)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.close()

        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               pool_timeout=busy_timeout_s, hide_parameters=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


async def ready(engine: AsyncEngine) -> bool:
    """Whether the database answers and its schema is migrated (readiness reports, it does not raise)."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1 FROM alembic_version"))
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        return False
    return True
