"""The queue claim: messages wait in the ``messages`` table (status ``queued``); a claim moves a batch of those due
to ``sending``, held by this instance (FOR UPDATE SKIP LOCKED lets PostgreSQL instances claim side by side), and
what cannot be sent yet goes back to the queue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers.pool import CarrierPool
from gateway.sending.policy import PacingPolicy
from gateway.store.models import Message, MessagePart, MessageStatus as S
from gateway.store.statements import chunks, update_by_id
from registry.db import utcnow


@dataclass(slots=True)
class Claimed:
    """A message the claim moved to `sending`: what its send needs."""

    id: int
    account_id: int
    source: str
    destination: str
    body: str
    attempts: int
    expires_at: dt.datetime
    segments: int
    paced: bool
    next_attempt_at: dt.datetime
    message_type: str | None = None


async def forget_reservations(session: AsyncSession) -> None:
    """Let the queued messages that hold a pacing reservation ask the limits again (the reservations are gone)."""
    await session.execute(update(Message).where(Message.paced.is_(True), Message.status == S.QUEUED.value)
                          .values(paced=False).execution_options(synchronize_session=False))


class Queue:
    """Claims due messages for this instance, puts back what waits, and reads what earlier attempts left."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pool: CarrierPool, instance_id: str,
                 policy: PacingPolicy | None, stats: dict[str, int]):
        self._sm = sessionmaker
        self._pool = pool
        self.instance_id = instance_id
        self._policy = policy
        self.stats = stats
        self._claim_sql = self._claim_statement()

    def _claim_statement(self):  # noqa: ANN202
        """The claim as one statement with bound parameters (now, early, limit), built once: building it costs
        more than SQLite takes to run it. FOR UPDATE SKIP LOCKED lets PostgreSQL instances claim side by side;
        SQLite, with its one writer, renders none (as in ReceiptMatcher.rematch)."""
        m = Message.__table__.c
        # one range of the queue index (status, next_attempt_at, id), read in its order: the LIMIT stops the scan
        # after ``limit`` rows, where ORDER BY id alone would collect and sort the whole due backlog
        due = (select(m.id).where(m.status == S.QUEUED.value, m.next_attempt_at <= bindparam("early"),
                                  or_(m.next_attempt_at <= bindparam("now"), m.paced.is_(True)))
               .order_by(m.next_attempt_at, m.id).limit(bindparam("limit")).with_for_update(skip_locked=True))
        return (update(Message.__table__).where(m.id.in_(due.scalar_subquery()))
                .values(status=S.SENDING.value, attempts=m.attempts + 1, updated_at=bindparam("claimed_at"),
                        claimed_by=self.instance_id)
                .returning(m.id, m.account_id, m.source, m.destination, m.body, m.attempts, m.expires_at,
                           m.segments, m.paced, m.next_attempt_at, m.message_type))

    async def claim(self, limit: int) -> list[Claimed]:
        if limit <= 0 or not self._pool.ready:
            return []
        now = utcnow()
        # a message with a reserved slot is taken up to one horizon early and sent exactly at its slot
        early = now + dt.timedelta(seconds=self._policy.settings.horizon_s if self._policy else 0.0)
        async with self._sm() as session, session.begin():
            rows = (await session.execute(self._claim_sql, {"now": now, "early": early, "limit": limit,
                                                            "claimed_at": now})).all()
        self.stats["claimed"] += len(rows)
        claimed = [Claimed(*row) for row in rows]
        claimed.sort(key=lambda c: c.id)
        return claimed

    async def requeue(self, rows: list[dict]) -> None:
        async with self._sm() as session, session.begin():
            await update_by_id(session, Message.__table__, rows)

    async def known_parts(self, message_ids: list[int]) -> dict[int, dict[int, Any]]:
        """message id -> part number -> that part's row (carrier, carrier_message_id, attempts)."""
        known: dict[int, dict[int, Any]] = {}
        for chunk in chunks(message_ids):
            async with self._sm() as session:
                for row in (await session.execute(
                    select(MessagePart.message_id, MessagePart.seq, MessagePart.carrier,
                           MessagePart.carrier_message_id, MessagePart.attempts)
                    .where(MessagePart.message_id.in_(chunk)))).all():
                    known.setdefault(row.message_id, {})[row.seq] = row
        return known
