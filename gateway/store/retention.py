"""Customers' data is kept only as long as it is needed.

* The purge (``[retention] days``, 90 by default): message bodies, inbound message bodies, call scripts and
  webhook payloads older than that are blanked. The rows stay (states, segments, times), so stats count them as
  before. Only what is finished is blanked: a message still to be sent, a call still to be placed, a webhook
  still to be delivered keep theirs. ``Purger`` runs it every ``interval_s`` on each instance; the statements
  are idempotent UPDATEs in short batches, so several instances running it at once do the work once.
* Erasure (DELETE /v1/data?phone=...): everything an account holds about one person goes at once: messages to
  the number (with their parts and events), messages from it (and their parts still being reassembled), calls to
  it, and the webhook deliveries whose payload names the number. The opt-out records stay: they are what keeps
  the number from being messaged again after STOP.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from typing import Any

from sqlalchemy import Update, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers.voice_http import FINAL_CALL_STATUSES
from gateway.errors import Conflict
from gateway.settings import RetentionSettings
from gateway.store.models import (
    FINAL_STATUSES,
    InboundMessage,
    InboundPart,
    Message,
    MessageEvent,
    VoiceMessage,
    WebhookDelivery,
)
from registry.db import utcnow
from registry.models import Account, Number, OptOut

log = logging.getLogger(__name__)
_FINAL = sorted(s.value for s in FINAL_STATUSES)


async def _batches(sessions: async_sessionmaker[AsyncSession], table: Any, column: Any, *where: Any,
                   batch_size: int) -> int:
    """Blank ``column`` of the rows ``where`` selects, ``batch_size`` rows a transaction; how many were blanked."""
    total = 0
    while True:
        ids = select(table.id).where(*where, column != "").limit(batch_size).scalar_subquery()
        stmt: Update = update(table).where(table.id.in_(ids), column != "").values({column.key: ""})
        async with sessions() as session, session.begin():
            done = (await session.execute(stmt.execution_options(synchronize_session=False))).rowcount
        total += done
        if done < batch_size:
            return total


async def purge(sessions: async_sessionmaker[AsyncSession], days: int, *, batch_size: int = 2000,
                now: dt.datetime | None = None) -> dict[str, int]:
    """Blank what is older than ``days`` (0: nothing); how many rows of each kind were blanked now."""
    if days <= 0:
        return {}
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    async with sessions() as session:
        account_ids: list[int | None] = list((await session.scalars(select(Account.id))).all())
    counts: collections.Counter[str] = collections.Counter()
    for account_id in account_ids:  # each over the (account, time) index
        counts["messages"] += await _batches(
            sessions, Message, Message.body, Message.account_id == account_id, Message.created_at < cutoff,
            Message.status.in_(_FINAL), batch_size=batch_size)
    for account_id in [*account_ids, None]:  # None: inbound messages to numbers leased to no account
        owner = InboundMessage.account_id == account_id if account_id else InboundMessage.account_id.is_(None)
        counts["inbound_messages"] += await _batches(
            sessions, InboundMessage, InboundMessage.body, owner, InboundMessage.received_at < cutoff,
            batch_size=batch_size)
    counts["voice_messages"] += await _batches(
        sessions, VoiceMessage, VoiceMessage.script, VoiceMessage.created_at < cutoff,
        VoiceMessage.status.in_(sorted(FINAL_CALL_STATUSES)), batch_size=batch_size)
    counts["webhook_deliveries"] += await _batches(
        sessions, WebhookDelivery, WebhookDelivery.payload, WebhookDelivery.created_at < cutoff,
        WebhookDelivery.status != "pending", batch_size=batch_size)
    return {kind: n for kind, n in counts.items() if n}


class Purger:
    """Runs ``purge`` now and then every ``interval_s`` until stopped; a failed run is logged and tried again
    at the next interval."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: RetentionSettings):
        self._sessions, self._settings = sessions, settings
        self._task: asyncio.Task | None = None
        self.runs = 0

    def start(self) -> None:
        if self._settings.days > 0:
            self._task = asyncio.create_task(self._run(), name="retention-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                blanked = await purge(self._sessions, self._settings.days, batch_size=self._settings.batch_size)
                if blanked:
                    log.info("retention: blanked what was older than %d days: %s", self._settings.days,
                             ", ".join(f"{n} {kind}" for kind, n in sorted(blanked.items())),
                             extra={"purged": blanked})
            except Exception:  # the next interval tries again
                log.exception("retention: the purge failed; it runs again in %s s", self._settings.interval_s)
            self.runs += 1
            await asyncio.sleep(self._settings.interval_s)


async def erase(sessions: async_sessionmaker[AsyncSession], account_id: int, phone: str) -> dict[str, Any]:
    """Remove what ``account_id`` holds about ``phone`` (E.164) in one transaction; counts per kind. 409
    messages_in_flight (nothing removed) while a message to the number is being handed to a carrier."""
    async with sessions() as session, session.begin():
        to_phone = (Message.account_id == account_id, Message.destination == phone)
        sending = await session.scalar(select(func.count()).where(*to_phone, Message.status == "sending"))
        if sending:
            raise Conflict(f"{sending} message(s) to {phone} are being handed to a carrier right now; ask again "
                           "in a few seconds.", code="messages_in_flight", details={"messages": sending})
        ids = select(Message.id).where(*to_phone).scalar_subquery()
        removed = {"message_events": await _count(session, MessageEvent.message_id.in_(ids)),
                   "messages": await _delete(session, Message, *to_phone, Message.status != "sending")}
        removed["inbound_messages"] = await _delete(session, InboundMessage, InboundMessage.account_id == account_id,
                                                    InboundMessage.source == phone)
        own_numbers = select(Number.number).where(Number.account_id == account_id).scalar_subquery()
        removed["inbound_parts"] = await _delete(session, InboundPart, InboundPart.source == phone,
                                                 InboundPart.destination.in_(own_numbers))
        removed["voice_messages"] = await _delete(session, VoiceMessage, VoiceMessage.account_id == account_id,
                                                  VoiceMessage.destination == phone)
        # every payload quotes the number as a JSON string ("to", "from"); E.164 holds no LIKE wildcard
        removed["webhook_deliveries"] = await _delete(session, WebhookDelivery,
                                                      WebhookDelivery.account_id == account_id,
                                                      WebhookDelivery.payload.contains(f'"{phone}"'))
        kept = await _count(session, OptOut.account_id == account_id, OptOut.phone == phone)
    return {"phone": phone, "removed": removed, "kept": {"opt_outs": kept}}


async def _count(session: AsyncSession, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).where(*where)) or 0)


async def _delete(session: AsyncSession, table: Any, *where: Any) -> int:
    """Delete the rows; their children go with them (ON DELETE CASCADE: parts, events, attempts)."""
    result = await session.execute(delete(table).where(*where).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
