"""The sweep, every two seconds: this instance's heartbeat (and the recovery of what stopped instances held), the
expiry of queued messages whose time to live ran out, the rematch of receipts that arrived early; once a minute,
the end of messages whose receipt never came (``receipt_timeout_h``) and of receipts that never matched."""

from __future__ import annotations

import datetime as dt
import time
from typing import Awaitable, Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.metrics import Metrics
from gateway.metrics.alerts import RECEIPT_TIMEOUT
from gateway.sending.leases import Leases
from gateway.sending.pacing import MemoryLimiter, RedisLimiter, SendWindows
from gateway.sending.receipts import ReceiptMatcher
from gateway.settings import DispatcherSettings
from gateway.store.models import Message, MessageStatus as S
from gateway.webhooks import catalog as ev
from registry.db import utcnow


class Sweep:
    """What runs now and then rather than for each message: every accepted message reaches a final state."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: DispatcherSettings, *,
                 leases: Leases, matcher: ReceiptMatcher, limiter: MemoryLimiter | RedisLimiter,
                 windows: SendWindows, record: Callable[[AsyncSession, list[dict]], Awaitable[None]],
                 metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._metrics = metrics or Metrics()
        self._settings = settings
        self._leases = leases
        self._matcher = matcher
        self._limiter = limiter
        self._windows = windows
        self._record = record
        self._next_receipt_check = 0.0

    async def run(self) -> None:
        """Beat this instance's heart (and take back what dead instances held); expire queued messages whose
        time to live ran out; match receipts that arrived early; once a minute, end messages whose receipt
        never came and drop receipts that never matched; look whether receipts wait unmatched."""
        await self._leases.heartbeat()
        if time.monotonic() >= self._next_receipt_check:
            self._next_receipt_check = time.monotonic() + 60
            await self.expire_unreceipted()
            await self._matcher.expire_unmatched()
        now = utcnow()
        self._limiter.forget_before(time.time() - 60)
        self._windows.forget_before(time.time())
        async with self._sm() as session, session.begin():
            expired = (await session.execute(
                update(Message).where(Message.status == S.QUEUED.value, Message.expires_at <= now)
                .values(status=S.EXPIRED.value, error_code="ttl_expired", done_at=now, updated_at=now,
                        error_message="Time to live ran out before the message could be sent.")
                .returning(Message.id, Message.account_id, Message.carrier, Message.source)
                .execution_options(synchronize_session=False)
            )).all()
            await self._record(session, [
                {"message_id": r.id, "account_id": r.account_id, "type": ev.TEXT_TTL_EXPIRED,
                 "status": S.EXPIRED.value, "error_code": "ttl_expired", "created_at": now} for r in expired])
            for r in expired:
                self._metrics.final(S.EXPIRED.value, r)
            if self._matcher.unmatched:
                await self._matcher.rematch(session)
                await self._matcher.check_id_bases(session)
                await self._matcher.count_settled(session)
            await self._matcher.refresh(session)

    async def expire_unreceipted(self, now: dt.datetime | None = None) -> int:
        """End as 'undelivered' the messages the carrier took longer than ``receipt_timeout_h`` ago without ever
        sending their receipt: every accepted message reaches a final state. (One instance wins each row.)"""
        now = now or utcnow()
        cutoff = now - dt.timedelta(hours=self._settings.receipt_timeout_h)
        async with self._sm() as session, session.begin():
            ended = (await session.execute(
                update(Message).where(Message.status == S.SENT.value, Message.sent_at <= cutoff)
                .values(status=S.UNDELIVERED.value, error_code="receipt_timeout", done_at=now, updated_at=now,
                        error_message=f"No delivery receipt within {self._settings.receipt_timeout_h:g} h.")
                .returning(Message.id, Message.account_id, Message.carrier, Message.source)
                .execution_options(synchronize_session=False)
            )).all()
            await self._record(session, [
                {"message_id": r.id, "account_id": r.account_id, "type": ev.TEXT_UNKNOWN,
                 "status": S.UNDELIVERED.value, "error_code": "receipt_timeout", "created_at": now} for r in ended])
            for r in ended:
                self._metrics.final(S.UNDELIVERED.value, r)
        if ended:
            self._metrics.alerts.note(RECEIPT_TIMEOUT, "receipts", f"{len(ended)} message(s) without a delivery "
                                      f"receipt after {self._settings.receipt_timeout_h:g} h ended undelivered",
                                      n=len(ended),
                                      what="messages ended undelivered without a receipt")
        return len(ended)
