"""The operator's status of one instance (``GET /admin/status``, ``gatewayctl status``), as Kannel's status page
shows a bearerbox: the gateway's version, uptime and instance id; per carrier its kind, each bind's state and
since when, the window in use, messages sent and receipts and inbound messages received per second over the last
minute (``metrics.activity``, counted in memory), its last errors (submits refused or throttled, binds refused or
lost) and its health (``sending.health``); queue depth by status and the webhook backlog (the read ``GET /metrics``
makes, at most every ``DB_CACHE_S`` seconds); and the instances sharing the database, from their leases, with
their last heartbeat. Each instance answers for itself and lists its peers."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import os
import socket
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import Carrier
from carriers.pool import CarrierPool
from gateway.metrics import DB_CACHE_S, Metrics
from gateway.sending.dispatcher import Dispatcher
from gateway.store.models import GatewayInstance
from registry.db import iso, utcnow

RECENT_ALERTS = 20  # the newest alerts the status shows (gateway.metrics.alerts keeps [alerts] recent)

LAST_ERRORS = 5  # errors shown per carrier, its binds' and its submits' together, newest last


def gateway_version() -> str:
    try:
        return importlib.metadata.version("smsgateway")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _at(epoch: float | None) -> str | None:
    return iso(dt.datetime.fromtimestamp(epoch, dt.timezone.utc)) if epoch is not None else None


def _errors(entries: list[dict[str, Any]], **where: Any) -> list[tuple[float, dict[str, Any]]]:
    """RecentErrors' entries as the answer shows them, each after its time (to merge several in order)."""
    return [(e["at"], {**where, "code": e["code"], "message": e["message"], "count": e["count"],
                       "first_at": _at(e["first_at"]), "at": _at(e["at"])}) for e in entries]


class Status:
    """What this instance reports; holds nothing but its parts (and the peers read moments ago)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pool: CarrierPool, dispatcher: Dispatcher,
                 metrics: Metrics, *, started_at: float):
        self._sm = sessionmaker
        self._pool = pool
        self._dispatcher = dispatcher
        self._metrics = metrics
        self.started_at = started_at  # epoch seconds
        self.version = gateway_version()
        self._peers: list[GatewayInstance] = []
        self._peers_at = float("-inf")

    async def report(self) -> dict[str, Any]:
        now = time.time()
        await self._metrics.refresh(self._sm)  # queue depth and webhook backlog, read at most every few seconds
        backlog = self._metrics.backlog()
        return {"instance": {"id": self._dispatcher.instance_id, "host": socket.gethostname(), "pid": os.getpid(),
                             "version": self.version, "started_at": _at(self.started_at),
                             # uvloop or asyncio ([server] event_loop)
                             "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                             "uptime_s": round(now - self.started_at, 3), "sending_paused": self._dispatcher.paused},
                "carriers": [self._carrier(c, now) for c in self._pool.carriers],
                "queue": backlog["queue"], "webhooks": backlog["webhooks"], "read_age_s": backlog["read_age_s"],
                "instances": await self._instances(),
                "alerts": [a.to_json() for a in self._metrics.alerts.recent(limit=RECENT_ALERTS)]}

    def _carrier(self, carrier: Carrier, now: float) -> dict[str, Any]:
        activity = self._metrics.activity
        clients = getattr(carrier, "clients", None)  # an SMPP carrier's binds
        binds, errors = None, _errors(activity.errors(carrier.name), source="submit", bind=None)
        if clients is not None:
            binds = []
            for c in clients:
                binds.append({"name": c.name, "state": c.state, "since": _at(c.state_since),
                              "for_s": round(max(0.0, now - c.state_since), 3), "mode": c.bind_mode,
                              "window_in_use": c.window_in_use, "window": c.window, "binds": c.binds})
                errors += _errors(c.errors.view(), source="bind", bind=c.name)
        errors.sort(key=lambda pair: pair[0])
        health = self._dispatcher.health
        return {"name": carrier.name, "kind": carrier.kind, "ready": carrier.ready, "binds": binds,
                "last_minute": activity.last_minute(carrier.name),
                "last_errors": [view for _, view in errors[-LAST_ERRORS:]],
                "health": health.view(carrier.name) if health is not None else None}

    async def _instances(self) -> list[dict[str, Any]]:
        """The instances from their leases (read at most every DB_CACHE_S seconds), this one marked."""
        leases = self._dispatcher.leases
        if time.monotonic() - self._peers_at >= DB_CACHE_S:
            self._peers_at = time.monotonic()
            self._peers = await leases.known()
        now = utcnow()
        return [{"id": row.id, "self": row.id == leases.instance_id, "host": row.host, "pid": row.pid,
                 "started_at": iso(row.started_at), "heartbeat_at": iso(row.heartbeat_at),
                 "heartbeat_age_s": round(max(0.0, (now - row.heartbeat_at).total_seconds()), 3),
                 "alive": leases.alive(row, now)} for row in self._peers]
