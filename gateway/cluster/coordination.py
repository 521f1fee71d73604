"""What several gateway instances share beyond the database: wake-ups over PostgreSQL LISTEN/NOTIFY, and
SMPP bind slots leased in Redis so that all instances together stay within a carrier's maximum of binds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Callable

log = logging.getLogger(__name__)

QUEUE_CHANNEL = "gateway_queue"  # a message was queued (see migration 0005)
WEBHOOK_CHANNEL = "gateway_webhooks"  # a webhook delivery was queued


def _log_error(where: str, exc: BaseException) -> None:
    log.warning("%s failed: %s", where, type(exc).__name__)


def new_instance_id() -> str:
    """A name for this gateway process, unique among instances: host, pid and a random part."""
    return f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(4)}"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq URL asyncpg takes, from a ``postgresql+asyncpg://`` SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PgListener:
    """Holds one connection that LISTENs on channels and calls a function per notification; reconnects with
    backoff when the connection is lost. Notifications only hurry things up: every loop also polls, so one
    that is missed while reconnecting delays work by a poll interval at most."""

    def __init__(self, sqlalchemy_url: str, handlers: dict[str, Callable[[], None]], *,
                 on_error: Callable[[str, BaseException], None] | None = None):
        self._dsn = asyncpg_dsn(sqlalchemy_url)
        self._handlers = handlers
        self._on_error = on_error or _log_error  # the app's alerts: an outage of the database is one line
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pg-listener")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _on_notify(self, _conn, _pid, channel: str, _payload: str) -> None:  # noqa: ANN001
        handler = self._handlers.get(channel)
        if handler is not None:
            handler()

    async def _run(self) -> None:
        import asyncpg

        pause = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())  # this connection's, not a later one's
                for channel in self._handlers:
                    await conn.add_listener(channel, self._on_notify)
                self.connected.set()
                pause = 0.5
                for handler in self._handlers.values():  # anything queued while we were not listening
                    handler()
                while not lost.is_set():  # a dead TCP connection does not always end the listener by itself
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), 15)
                    if not lost.is_set():
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
                self._on_error(f"listening for queue notifications (retried in {pause:.1f} s)", exc)
            self.connected.clear()
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)


# Take the first free slot of a carrier's bind slots, or renew the ones this instance holds.
CLAIM_SLOT_LUA = """
for slot = 0, tonumber(ARGV[1]) - 1 do
  local key = KEYS[1] .. slot
  if redis.call('SET', key, ARGV[2], 'NX', 'PX', ARGV[3]) then return slot end
end
return -1
"""
RENEW_SLOT_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE_SLOT_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BindSlots:
    """Leases of SMPP bind slots in Redis: a carrier's ``max_binds`` is shared by every instance."""

    def __init__(self, url: str, instance_id: str, *, prefix: str = "gw:", lease_s: float = 30.0,
                 timeout: float = 2.0, on_error: Callable[[str, BaseException], None] | None = None):
        import redis.asyncio as aioredis

        self._on_error = on_error or _log_error  # the app's alerts: an outage of Redis is one line
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._owner = instance_id
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._claim = self._redis.register_script(CLAIM_SLOT_LUA)
        self._renew = self._redis.register_script(RENEW_SLOT_LUA)
        self._release = self._redis.register_script(RELEASE_SLOT_LUA)
        self.held: dict[str, list[int]] = {}
        self._task: asyncio.Task | None = None

    def _key(self, carrier: str, slot: int | str = "") -> str:
        return f"{self._prefix}binds:{carrier}:{slot}"

    async def acquire(self, carrier: str, wanted: int, maximum: int) -> int:
        """Lease up to ``wanted`` of the carrier's ``maximum`` slots; returns how many this instance got."""
        got = self.held.setdefault(carrier, [])
        while len(got) < wanted:
            slot = int(await self._claim(keys=[self._key(carrier)], args=[maximum, self._owner, self._lease_ms]))
            if slot < 0:
                break
            got.append(slot)
        return len(got)

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew_loop(), name="bind-slots")

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                for carrier, slots in self.held.items():
                    for slot in slots:
                        if not int(await self._renew(keys=[self._key(carrier, slot)],
                                                     args=[self._owner, self._lease_ms])):
                            log.warning("bind slot %s of %s was lost; taking it again", slot, carrier)
                            if not await self._redis.set(self._key(carrier, slot), self._owner,
                                                         px=self._lease_ms, nx=True):
                                log.error("bind slot %s of %s is held by another instance now", slot, carrier)
            except Exception as exc:  # noqa: BLE001 - Redis away: the binds stay open, renewal retries
                self._on_error("renewing bind slots", exc)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            for carrier, slots in self.held.items():
                for slot in slots:
                    await self._release(keys=[self._key(carrier, slot)], args=[self._owner])
        await self._redis.aclose()
