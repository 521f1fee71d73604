"""Recording message events: the history row, and an outbox row per webhook that wants it (same transaction)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Message, MessageEvent
from gateway.webhooks import enqueue, new_delivery
from registry.models import Account


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


async def record(session: AsyncSession, events: list[dict[str, Any]]) -> int:
    """Insert events ({message_id, account_id, type, status, error_code, created_at}); queue their webhooks.

    Returns how many webhook deliveries were queued."""
    if not events:
        return 0
    await session.execute(insert(MessageEvent), events)
    ids = sorted({e["message_id"] for e in events})
    rows: dict[int, Any] = {}
    for i in range(0, len(ids), 400):
        result = await session.execute(
            select(Message.id, Message.public_id, Message.source, Message.destination, Message.segments,
                   Message.status_callback, Message.created_at, Message.sent_at, Message.carrier,
                   Account.event_webhook_url)
            .join(Account, Account.id == Message.account_id)
            .where(Message.id.in_(ids[i:i + 400]),
                   (Message.status_callback.is_not(None)) | (Account.event_webhook_url.is_not(None))))
        rows.update({r.id: r for r in result.all()})
    if not rows:
        return 0
    deliveries = []
    for e in events:
        m = rows.get(e["message_id"])
        if m is None:
            continue
        payload = {
            "event_type": e["type"], "message_id": m.public_id, "status": e["status"],
            "error_code": e.get("error_code"), "from": m.source, "to": m.destination, "segments": m.segments,
            "carrier": m.carrier, "timestamp": _iso(e["created_at"]), "created_at": _iso(m.created_at),
            "sent_at": _iso(m.sent_at),
        }
        for url in {m.status_callback, m.event_webhook_url} - {None}:
            deliveries.append(new_delivery(e["account_id"], url, "event", e["type"], payload, e["created_at"]))
    return await enqueue(session, deliveries)
