"""The webhook outbox: each delivery is a row of ``webhook_deliveries`` written in the same transaction as the
change it reports (``new_delivery`` + ``enqueue``); gateway.webhooks.sender delivers them. ``receiver_of`` names
where a URL connects: the unit the sender reuses connections, bounds concurrency and backs off by.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
from typing import Any, Iterable

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from gateway.store.models import WebhookDelivery


def new_delivery(account_id: int, url: str, kind: str, event_type: str, payload: dict[str, Any],
                 now: dt.datetime) -> dict[str, Any]:
    """A row for ``insert(WebhookDelivery)``. ``give_up_at`` is set when it is first claimed."""
    return {"public_id": "whd_" + secrets.token_hex(10), "account_id": account_id, "kind": kind,
            "event_type": event_type, "url": url, "receiver": receiver_of(url),
            "payload": json.dumps(payload, separators=(",", ":")), "status": "pending", "attempts": 0,
            "created_at": now, "next_attempt_at": now}


async def enqueue(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> int:
    rows = list(rows)
    if rows:
        await session.execute(insert(WebhookDelivery.__table__), rows)  # Core: no ORM bookkeeping per row
    return len(rows)


@functools.lru_cache(maxsize=4096)
def target_url(url: str) -> URL:
    """A delivery's URL, parsed once rather than at every POST to it."""
    return URL(url)


@functools.lru_cache(maxsize=4096)
def receiver_of(url: str) -> str:
    """Where a URL connects (scheme://host:port): the unit of connection reuse, concurrency and backoff."""
    try:
        return str(target_url(url).origin())
    except ValueError:
        return url
