"""Signed webhooks to customers, delivered at least once from a durable outbox.

Each delivery is a row of ``webhook_deliveries`` written in the same transaction as the change it reports.
The sender POSTs it with::

    X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    X-Gateway-Event: TEXT_DELIVERED
    X-Gateway-Delivery: whd_...

and retries with exponential backoff (1 s doubling to 10 min, configurable in ``[webhooks]``) until a 2xx
answer or until ``give_up_at`` (24 h after the first attempt, by default). Every attempt is recorded.
A failed delivery can be replayed. Connections reach only the addresses ``[webhooks]`` allows (gateway.egress): a
delivery whose host leads elsewhere fails at once, its reason recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
from typing import Any, Iterable

import aiohttp
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.egress import AddressPolicy, refused
from gateway.models import WebhookAttempt, WebhookDelivery
from gateway.settings import WebhookSettings
from registry.db import utcnow
from registry.models import Account

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gateway-Signature"
LEASE = dt.timedelta(seconds=60)  # a claimed delivery is not claimed again for this long


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a customer runs: check the signature header of a webhook request (the README shows it)."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def new_delivery(account_id: int, url: str, kind: str, event_type: str, payload: dict[str, Any],
                 now: dt.datetime) -> dict[str, Any]:
    """A row for ``insert(WebhookDelivery)``. ``give_up_at`` is set when it is first claimed."""
    return {"public_id": "whd_" + secrets.token_hex(10), "account_id": account_id, "kind": kind,
            "event_type": event_type, "url": url, "payload": json.dumps(payload, separators=(",", ":")),
            "status": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now}


async def enqueue(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> int:
    rows = list(rows)
    if rows:
        await session.execute(insert(WebhookDelivery), rows)
    return len(rows)


def backoff(attempts: int, base_s: float = 1.0, max_s: float = 600.0) -> dt.timedelta:
    seconds = min(max_s, base_s * 2.0 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=seconds * random.uniform(0.9, 1.1))


class WebhookSender:
    """Claims due deliveries and POSTs them, at most ``concurrency`` at once."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: WebhookSettings | None = None,
                 policy: AddressPolicy | None = None):
        settings = settings or WebhookSettings()
        self._policy = policy or AddressPolicy.of(settings)
        self._sm = sessionmaker
        self._settings = settings
        self._concurrency = concurrency = settings.concurrency
        self._timeout = settings.timeout_s
        self._poll = settings.poll_interval_ms / 1000
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._secrets: dict[int, tuple[str, float]] = {}
        self._inflight: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout),
                                           connector=self._policy.connector(self._concurrency))
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop claiming and let deliveries in flight record their outcome (never cancelled mid-transaction)."""
        self._stop.set()
        self._wakeup.set()
        if self._task:
            await asyncio.wait([self._task], timeout=10)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self._timeout + 5)
        if self._http:
            await self._http.close()

    def notify(self) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = await self._claim(self._concurrency)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming webhook deliveries failed")
                batch = []
            for delivery in batch:
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver(delivery))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if len(batch) < self._concurrency and not self._stop.is_set():
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll)

    async def _claim(self, limit: int) -> list[Any]:
        now = utcnow()
        async with self._sm() as session, session.begin():
            due = (select(WebhookDelivery.id).where(WebhookDelivery.status == "pending",
                                                    WebhookDelivery.next_attempt_at <= now)
                   .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
            if session.bind.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            return (await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=now + LEASE, attempts=WebhookDelivery.attempts + 1,
                        give_up_at=func.coalesce(WebhookDelivery.give_up_at,
                                                 now + dt.timedelta(hours=self._settings.max_age_h)))
                .returning(WebhookDelivery.id, WebhookDelivery.public_id, WebhookDelivery.account_id,
                           WebhookDelivery.url, WebhookDelivery.payload, WebhookDelivery.event_type,
                           WebhookDelivery.attempts, WebhookDelivery.give_up_at)
                .execution_options(synchronize_session=False)
            )).all()

    async def _secret(self, account_id: int) -> str:
        hit = self._secrets.get(account_id)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        async with self._sm() as session:
            secret = await session.scalar(select(Account.webhook_secret).where(Account.id == account_id)) or ""
        self._secrets[account_id] = (secret, time.monotonic() + 30)
        return secret

    async def _deliver(self, d: Any) -> None:
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        not_allowed = False
        try:
            body = d.payload.encode()
            headers = {"Content-Type": "application/json", "X-Gateway-Event": d.event_type,
                       "X-Gateway-Delivery": d.public_id,
                       SIGNATURE_HEADER: sign(await self._secret(d.account_id), int(time.time()), body)}
            assert self._http is not None
            async with self._http.post(d.url, data=body, headers=headers, allow_redirects=False) as resp:
                status_code = resp.status
                await resp.read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            error = f"{type(exc).__name__}: {exc}"[:500]
            not_allowed = refused(exc)  # retrying cannot help: it fails now, and can be replayed
        finally:
            self._slots.release()
        ok = status_code is not None and 200 <= status_code < 300
        now = utcnow()
        if ok:
            values = {"status": "delivered", "delivered_at": now, "last_status_code": status_code, "last_error": None}
        elif now >= d.give_up_at or not_allowed:
            values = {"status": "failed", "last_status_code": status_code, "last_error": error}
            log.warning("webhook %s to account %s given up after %s attempts%s", d.public_id, d.account_id,
                        d.attempts, ": its address is not allowed" if not_allowed else "")
        else:
            pause = backoff(d.attempts, self._settings.retry_base_s, self._settings.retry_max_s)
            values = {"next_attempt_at": min(now + pause, d.give_up_at),
                      "last_status_code": status_code, "last_error": error}
        try:
            async with self._sm() as session, session.begin():
                await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == d.id).values(**values))
                await session.execute(insert(WebhookAttempt).values(
                    delivery_id=d.id, at=now, status_code=status_code, error=error,
                    duration_ms=int((time.monotonic() - started) * 1000)))
        except Exception:
            # the lease runs out and the delivery is tried again: at least once
            log.exception("recording webhook attempt %s failed", d.public_id)


async def replay(session: AsyncSession, account_id: int | None, public_id: str) -> bool:
    """Queue a delivery again (delivered or failed), with a fresh window of retries from now."""
    now = utcnow()
    cond = [WebhookDelivery.public_id == public_id]
    if account_id is not None:
        cond.append(WebhookDelivery.account_id == account_id)
    result = await session.execute(update(WebhookDelivery).where(*cond).values(
        status="pending", next_attempt_at=now, give_up_at=None))
    return result.rowcount == 1


__all__ = ["SIGNATURE_HEADER", "WebhookSender", "enqueue", "new_delivery", "replay", "sign", "verify"]
