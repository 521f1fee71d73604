"""Leases: each instance has a row in ``gateway_instances`` and beats its heart there (the sweep); the messages an
instance holds in ``sending`` are its lease, and an instance whose heart stopped loses them: they are queued again
(at-least-once to the carrier)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from typing import Callable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.settings import DispatcherSettings
from gateway.store.models import GatewayInstance, Message, MessageStatus as S
from registry.db import utcnow

log = logging.getLogger(__name__)
FORGET_AFTER_LEASES = 10  # an instance silent this many leases is no longer one (its row is removed)


class Leases:
    """This instance's row and heartbeat, and the recovery of what stopped instances held."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: DispatcherSettings,
                 instance_id: str, on_recovered: Callable[[], None]):
        self._sm = sessionmaker
        self._settings = settings
        self.instance_id = instance_id
        self._on_recovered = on_recovered  # messages were queued again: wake the claim loop

    async def register(self, session: AsyncSession, now: dt.datetime) -> None:
        """At start: this instance's row, and the messages left in `sending` queued again (all of them on SQLite,
        which one process owns; on PostgreSQL only those of instances that stopped beating)."""
        session.add(self._instance_row(now))
        if session.bind.dialect.name == "sqlite":
            # one process owns an embedded database: whatever is still `sending` was in flight when an
            # earlier process died; send it again (at-least-once to the carrier)
            await session.execute(update(Message).where(Message.status == S.SENDING.value)
                                  .values(status=S.QUEUED.value, claimed_by=None)
                                  .execution_options(synchronize_session=False))
        else:  # several instances may share the queue: take back only what dead instances held
            await self._recover(session, now)

    def _instance_row(self, now: dt.datetime) -> GatewayInstance:
        return GatewayInstance(id=self.instance_id, host=socket.gethostname()[:255], pid=os.getpid(),
                               started_at=now, heartbeat_at=now)

    async def _recover(self, session: AsyncSession, now: dt.datetime) -> int:
        """Queue again the messages that instances without a fresh heartbeat left in `sending`."""
        alive = select(GatewayInstance.id).where(GatewayInstance.heartbeat_at > self._dead_before(now))
        result = await session.execute(
            update(Message).where(Message.status == S.SENDING.value,
                                  or_(Message.claimed_by.is_(None), Message.claimed_by.not_in(alive)))
            .values(status=S.QUEUED.value, claimed_by=None, updated_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount:
            log.warning("%d message(s) held by a stopped instance queued again", result.rowcount)
            self._on_recovered()
        await session.execute(delete(GatewayInstance).where(
            GatewayInstance.heartbeat_at < self._forgotten_before(now)))
        return result.rowcount

    async def heartbeat(self) -> None:
        now = utcnow()
        async with self._sm() as session, session.begin():
            beat = await session.execute(update(GatewayInstance).where(GatewayInstance.id == self.instance_id)
                                         .values(heartbeat_at=now))
            if not beat.rowcount:  # removed as dead while it was stalled: register again
                session.add(self._instance_row(now))
            if session.bind.dialect.name != "sqlite":
                await self._recover(session, now)

    def _dead_before(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(seconds=self._settings.lease_s)

    def alive(self, instance: GatewayInstance, now: dt.datetime) -> bool:
        """Whether the instance's lease holds: its last heartbeat is less than ``lease_s`` old."""
        return instance.heartbeat_at > self._dead_before(now)

    def _forgotten_before(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(seconds=FORGET_AFTER_LEASES * self._settings.lease_s)

    async def known(self) -> list[GatewayInstance]:
        """The instances (this one too) that beat their heart within the last FORGET_AFTER_LEASES leases, the
        first started first; whether each is alive is the age of its heartbeat against ``lease_s``."""
        async with self._sm() as session:
            return list((await session.scalars(
                select(GatewayInstance).where(GatewayInstance.heartbeat_at >= self._forgotten_before(utcnow()))
                .order_by(GatewayInstance.started_at, GatewayInstance.id))).all())

    async def release(self) -> None:
        """A clean stop: what this instance held (nothing, normally) is free at once."""
        async with self._sm() as session, session.begin():
            await session.execute(delete(GatewayInstance).where(GatewayInstance.id == self.instance_id))
