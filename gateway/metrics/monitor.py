"""The monitor: a task of the app that looks, every ``[alerts] sample_s``, at what is a state rather than an event,
and hands it to the app's alerts (gateway.metrics.alerts), which log its changes:

- every bind of every carrier (up or down, and how many times it bound: a bind lost and bound again between two
  looks shows there), read from the carrier pool;
- the database: the messages waiting (queued and sending) are counted, one grouped count on the index of the
  status; a failure is the database unreachable, the next success the end of it; the queue over
  ``[alerts] queue_depth`` and back under;
- Redis, when ``[redis] url`` is set: a PING.

Then ``Alerts.tick`` ends what is over (summaries of repeated alerts, throttling spells gone quiet, the interval
of receipts). When the app stops, what was counted and not yet said is summed up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.metrics import Metrics
from gateway.store.models import Message, MessageStatus


class Monitor:
    def __init__(self, metrics: Metrics, sessionmaker: async_sessionmaker[AsyncSession], pool: Callable[[], Any], *,
                 redis_url: str = "", redis_timeout_s: float = 2.0):
        self._metrics = metrics
        self.alerts = metrics.alerts
        self._sm = sessionmaker
        self._pool = pool  # the app's carrier pool (None until it is built)
        self._redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(redis_url, socket_timeout=redis_timeout_s,
                                                  socket_connect_timeout=redis_timeout_s)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alerts-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        self.alerts.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an alert; it looks again at the next sample
                self.alerts.failed("the alerts monitor", exc)
            await asyncio.sleep(self.alerts.settings.sample_s)

    async def sample(self) -> None:
        """Look once at binds, the database and Redis; then end what is over."""
        self.binds()
        await self.database()
        await self.redis()
        self.alerts.tick()

    def binds(self) -> None:
        for carrier in getattr(self._pool(), "carriers", ()):
            clients = getattr(carrier, "clients", None)
            if not clients:  # a carrier without binds (HTTP, loopback): ready or not
                self.alerts.bind(carrier.name, carrier.name, bool(carrier.ready))
                continue
            for client in clients:
                self.alerts.bind(carrier.name, client.name, client.bound, getattr(client, "binds", None),
                                 getattr(client, "last_error", None))

    async def database(self) -> None:
        waiting = {MessageStatus.QUEUED.value: 0, MessageStatus.SENDING.value: 0}
        try:
            async with self._sm() as session:
                waiting.update(dict((await session.execute(
                    select(Message.status, func.count()).where(Message.status.in_(list(waiting)))
                    .group_by(Message.status))).all()))
        except Exception as exc:  # noqa: BLE001 - an alert: the database (or the query) failed
            self.alerts.failed("counting the queue", exc)
            return
        self.alerts.reachable("database")
        self.alerts.queue(sum(waiting.values()), waiting)

    async def redis(self) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.ping()
        except Exception as exc:  # noqa: BLE001 - an alert: Redis cannot be reached
            self.alerts.unreachable("redis", "PING", exc)
        else:
            self.alerts.reachable("redis")
