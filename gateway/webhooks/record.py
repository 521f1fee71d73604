"""Recording message events: the history row, and an outbox row per webhook that wants it (same transaction)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Message, MessageEvent
from gateway.store.statements import chunks
from gateway.webhooks.catalog import wanted
from gateway.webhooks.outbox import enqueue, new_delivery
from registry.db import iso
from registry.models import Account


class EventTarget(NamedTuple):
    """What an event's webhook payload and URLs need of its message (the columns ``record`` would select)."""

    id: int
    public_id: str
    source: str
    destination: str
    segments: int
    status_callback: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    carrier: str | None
    event_webhook_url: str | None
    status_callback_events: str | None = None  # which events each URL wants (gateway.webhooks.catalog.wanted)
    webhook_events: str | None = None

    @classmethod
    def of(cls, message: Any, event_webhook_url: str | None, webhook_events: str | None = None) -> "EventTarget":
        return cls(message.id, message.public_id, message.source, message.destination, message.segments,
                   message.status_callback, message.created_at, message.sent_at, message.carrier, event_webhook_url,
                   message.status_callback_events, webhook_events)


async def record(session: AsyncSession, events: list[dict[str, Any]], *,
                 known: dict[int, EventTarget] | None = None) -> int:
    """Insert events ({message_id, account_id, type, status, error_code, created_at}); queue their webhooks.

    ``known``, when the caller already holds them: the messages with a webhook to tell (a status callback or their
    account's event webhook URL); the others have none, and nothing is read back from the database.
    Returns how many webhook deliveries were queued."""
    if not events:
        return 0
    await session.execute(insert(MessageEvent.__table__), events)
    if known is not None:
        return await _deliveries(session, events, known)
    ids = sorted({e["message_id"] for e in events})
    rows: dict[int, Any] = {}
    for chunk in chunks(ids):
        result = await session.execute(
            select(Message.id, Message.public_id, Message.source, Message.destination, Message.segments,
                   Message.status_callback, Message.created_at, Message.sent_at, Message.carrier,
                   Account.event_webhook_url, Message.status_callback_events, Account.webhook_events)
            .join(Account, Account.id == Message.account_id)
            .where(Message.id.in_(chunk),
                   (Message.status_callback.is_not(None)) | (Account.event_webhook_url.is_not(None))))
        rows.update({r.id: r for r in result.all()})
    return await _deliveries(session, events, rows)


async def _deliveries(session: AsyncSession, events: list[dict[str, Any]], rows: dict[int, Any]) -> int:
    if not rows:
        return 0
    deliveries = []
    for e in events:
        m = rows.get(e["message_id"])
        if m is None:
            continue
        # the events a URL did not choose are not queued at all
        urls = {url for url, chosen in ((m.status_callback, m.status_callback_events),
                                        (m.event_webhook_url, m.webhook_events)) if url and wanted(chosen, e["type"])}
        if not urls:
            continue
        payload = {
            "event_type": e["type"], "message_id": m.public_id, "status": e["status"],
            "error_code": e.get("error_code"), "from": m.source, "to": m.destination, "segments": m.segments,
            "carrier": m.carrier, "timestamp": iso(e["created_at"]), "created_at": iso(m.created_at),
            "sent_at": iso(m.sent_at),
        }
        for url in urls:
            deliveries.append(new_delivery(e["account_id"], url, "event", e["type"], payload, e["created_at"]))
    return await enqueue(session, deliveries)
