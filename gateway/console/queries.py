"""What the console reads from the database, across accounts: the dashboard's series and queue, message search and
one message's timeline, webhook deliveries, opt-outs. (Numbers, brands and campaigns come from gateway.numbers and
gateway.tendlc; a delivery's replay from gateway.webhooks.deliveries.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound
from gateway.store.models import (
    FINAL_STATUSES,
    Message,
    MessageEvent,
    MessagePart,
    MessageStatus,
    UnmatchedReceipt,
    WebhookAttempt,
    WebhookDelivery,
)
from registry.limits import carrier_limits_for_campaign
from registry.models import Account, OptOut

Sessions = async_sessionmaker[AsyncSession]
QUEUE_STATUSES = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value, MessageStatus.SENT.value)
PAGE = 100


@dataclass
class CarrierSeries:
    """Messages a carrier took per time bucket, and how those that reached a final status ended."""

    sent: list[int]
    delivered: list[int]
    settled: list[int]  # reached a final status (delivered, undelivered, failed, expired, blocked)

    def rate(self) -> list[float | None]:
        """Delivered of settled, per bucket (None where none settled)."""
        return [d / s if s else None for d, s in zip(self.delivered, self.settled)]


@dataclass
class Dashboard:
    since: dt.datetime
    bucket_s: int
    carriers: dict[str, CarrierSeries]
    queue: dict[str, int]
    oldest_queued: dt.datetime | None
    webhooks_pending: int
    oldest_pending_webhook: dt.datetime | None
    failing_webhooks: list[dict[str, Any]] = field(default_factory=list)  # account, host, failed (last hour)
    unmatched_receipts: int = 0


async def dashboard(sessions: Sessions, now: dt.datetime, *, minutes: int = 60, buckets: int = 12) -> Dashboard:
    """Messages sent per carrier in ``buckets`` slices of the last ``minutes``, by their outcome; what is queued;
    the webhook backlog and the receivers failing in that time."""
    since = now - dt.timedelta(minutes=minutes)
    step = dt.timedelta(minutes=minutes) / buckets
    bucket = case(*[(Message.sent_at < since + step * (i + 1), i) for i in range(buckets - 1)], else_=buckets - 1)
    async with sessions() as session:
        rows = (await session.execute(
            select(Message.carrier, bucket, Message.status, func.count())
            .where(Message.sent_at >= since, Message.carrier.is_not(None))
            .group_by(Message.carrier, bucket, Message.status))).all()
        queue = dict((await session.execute(select(Message.status, func.count()).where(
            Message.status.in_(QUEUE_STATUSES)).group_by(Message.status))).all())
        oldest_queued = await session.scalar(select(func.min(Message.created_at)).where(
            Message.status == MessageStatus.QUEUED.value))
        pending, oldest_pending = (await session.execute(select(func.count(), func.min(WebhookDelivery.created_at))
                                                         .where(WebhookDelivery.status == "pending"))).one()
        failing = (await session.execute(
            select(Account.id, Account.name, WebhookDelivery.url, func.count())
            .join(Account, Account.id == WebhookDelivery.account_id)
            .where(WebhookDelivery.created_at >= since,
                   or_(WebhookDelivery.status == "failed",
                       (WebhookDelivery.status == "pending") & (WebhookDelivery.attempts > 0)))
            .group_by(Account.id, Account.name, WebhookDelivery.url).order_by(func.count().desc()).limit(20))).all()
        unmatched = await session.scalar(select(func.count()).select_from(UnmatchedReceipt)
                                         .where(UnmatchedReceipt.received_at >= since))
    carriers: dict[str, CarrierSeries] = {}
    for carrier, index, status, count in rows:
        series = carriers.setdefault(carrier, CarrierSeries([0] * buckets, [0] * buckets, [0] * buckets))
        series.sent[index] += count
        if status in FINAL_STATUSES:
            series.settled[index] += count
        if status == MessageStatus.DELIVERED.value:
            series.delivered[index] += count
    return Dashboard(since, int(step.total_seconds()), dict(sorted(carriers.items())),
                     {s: queue.get(s, 0) for s in QUEUE_STATUSES}, oldest_queued, pending or 0, oldest_pending,
                     [{"account_id": a, "account": name, "url": url, "count": n} for a, name, url, n in failing],
                     unmatched or 0)


@dataclass
class Search:
    phone: str | None = None  # the recipient (its column is indexed: no scan of every message)
    id: str | None = None
    account: str | None = None  # an account's id or name
    status: str | None = None
    error: str | None = None  # an error code
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def search_messages(sessions: Sessions, q: Search, *, limit: int = PAGE) -> list[tuple[Message, str]]:
    """Messages of any account matching every filter given, newest first, with their account's name."""
    stmt = select(Message, Account.name).join(Account, Account.id == Message.account_id)
    if q.phone:
        stmt = stmt.where(Message.destination == q.phone)
    if q.id:
        stmt = stmt.where(Message.public_id == q.id)
    if q.account:
        stmt = stmt.where(Account.id == int(q.account) if q.account.isdigit() else Account.name == q.account)
    if q.status:
        stmt = stmt.where(Message.status == q.status)
    if q.error:
        stmt = stmt.where(Message.error_code == q.error)
    if q.since:
        stmt = stmt.where(Message.created_at >= q.since)
    if q.until:
        stmt = stmt.where(Message.created_at < q.until)
    async with sessions() as session:
        return [(m, name) for m, name in (await session.execute(stmt.order_by(Message.id.desc()).limit(limit))).all()]


@dataclass
class Timeline:
    message: Message
    account: str
    events: list[MessageEvent]
    parts: list[MessagePart]
    unmatched: list[UnmatchedReceipt]  # receipts that came for its parts' carrier ids without matching
    webhooks: list[tuple[WebhookDelivery, list[WebhookAttempt]]]


async def message_timeline(sessions: Sessions, public_id: str) -> Timeline:
    """One message of any account with everything recorded about it; 404 message_not_found."""
    async with sessions() as session:
        found = (await session.execute(select(Message, Account.name).join(Account, Account.id == Message.account_id)
                                       .where(Message.public_id == public_id))).first()
        if found is None:
            raise NotFound(f"No message {public_id}.", code="message_not_found")
        message, account = found
        events = (await session.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)
                                        .order_by(MessageEvent.id))).all()
        parts = (await session.scalars(select(MessagePart).where(MessagePart.message_id == message.id)
                                       .order_by(MessagePart.seq))).all()
        ids = [p.carrier_id_norm for p in parts if p.carrier_id_norm]
        unmatched = (await session.scalars(select(UnmatchedReceipt).where(UnmatchedReceipt.lookup_id.in_(ids))
                                           .order_by(UnmatchedReceipt.id))).all() if ids else []
        deliveries = (await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.account_id == message.account_id,
                                          WebhookDelivery.payload.contains(f'"{public_id}"'))
            .order_by(WebhookDelivery.id))).all()
        attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
        if deliveries:
            for a in (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(attempts))
                                            .order_by(WebhookAttempt.id))).all():
                attempts[a.delivery_id].append(a)
    return Timeline(message, account, list(events), list(parts), list(unmatched),
                    [(d, attempts[d.id]) for d in deliveries])


async def webhook_deliveries(sessions: Sessions, *, status: str | None, account: str | None,
                             limit: int = PAGE) -> list[tuple[WebhookDelivery, str]]:
    """Deliveries of any account, newest first, with their account's name."""
    stmt = select(WebhookDelivery, Account.name).join(Account, Account.id == WebhookDelivery.account_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    if account:
        stmt = stmt.where(Account.id == int(account) if account.isdigit() else Account.name == account)
    async with sessions() as session:
        return [(d, name) for d, name in
                (await session.execute(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))).all()]


async def delivery_account(sessions: Sessions, public_id: str) -> int:
    """The account a webhook delivery belongs to; 404 delivery_not_found."""
    async with sessions() as session:
        account_id = await session.scalar(select(WebhookDelivery.account_id)
                                          .where(WebhookDelivery.public_id == public_id))
    if account_id is None:
        raise NotFound("No such webhook delivery.", code="delivery_not_found")
    return account_id


async def opt_outs(sessions: Sessions, *, account: str | None, phone: str | None, list_name: str | None,
                   limit: int = PAGE) -> list[tuple[OptOut, str]]:
    """Opt-outs of any account, newest first, with their account's name."""
    stmt = select(OptOut, Account.name).join(Account, Account.id == OptOut.account_id)
    if account:
        stmt = stmt.where(Account.id == int(account) if account.isdigit() else Account.name == account)
    if phone:
        stmt = stmt.where(OptOut.phone == phone)
    if list_name:
        stmt = stmt.where(OptOut.list_name == list_name)
    async with sessions() as session:
        return [(o, name) for o, name in (await session.execute(stmt.order_by(OptOut.id.desc()).limit(limit))).all()]


async def account_names(sessions: Sessions) -> dict[int, str]:
    async with sessions() as session:
        return dict((await session.execute(select(Account.id, Account.name))).all())


async def campaign_limits(sessions: Sessions, campaign_id: int) -> dict[str, Any] | None:
    """The carrier limits the send path enforces for the campaign, and the carriers it may not reach now."""
    async with sessions() as session:
        limits = await carrier_limits_for_campaign(session, campaign_id)
    return limits.to_json() if limits is not None else None
