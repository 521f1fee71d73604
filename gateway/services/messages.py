"""Accepting outbound SMS: validate, choose the sending number, encode, check compliance, store durably.

A message refused for compliance (opted-out recipient, public URL shortener in 10DLC traffic, an inactive
10DLC number, promotional traffic in quiet hours) is stored as ``blocked`` with a TEXT_BLOCKED event, so the
customer's webhooks hear of it, and the request is answered with the error.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carriers.encoding import EncodedText, EncodingError, encode
from gateway.errors import Conflict, GatewayError, NotFound, TooManyRequests, Unprocessable
from gateway.events import TEXT_BLOCKED, TEXT_QUEUED
from gateway.models import Message, MessageEvent, MessagePart, MessageStatus
from gateway.services import compliance, origination
from gateway.services.events import record as record_events
from gateway.settings import MessageSettings, PricingSettings
from gateway.validation import Fields, e164, origination as parse_origination, region_of
from registry.db import utcnow
from registry.models import Account, Number, NumberStatus, OptOut

SEND_FIELDS = {"to", "body", "from", "status_callback", "ttl", "dry_run", "message_type"}
MESSAGE_TYPES = ("transactional", "promotional")


@dataclass
class SendRequest:
    to: str
    body: str
    source: str | None
    status_callback: str | None
    ttl: int
    dry_run: bool
    message_type: str | None


@dataclass
class Accepted:
    message: Message
    created: bool
    price: dict[str, Any] = field(default_factory=dict)
    blocked: GatewayError | None = None  # stored as blocked: answer with this error after the commit


def new_public_id() -> str:
    return "msg_" + secrets.token_hex(12)


def parse_send(data: dict[str, Any], settings: MessageSettings) -> SendRequest:
    f = Fields(data, SEND_FIELDS)
    to = e164(f.text("to", required=True, max_length=40) or "", default_region=settings.default_country)
    body = f.text("body", required=True, max_length=10_000) or ""
    source = f.text("from", max_length=40)
    if source is not None:
        source = parse_origination(source, default_region=settings.default_country)
    ttl = f.integer("ttl", minimum=settings.min_ttl_s, maximum=settings.max_ttl_s) or settings.default_ttl_s
    message_type = f.text("message_type")
    if message_type is not None and message_type not in MESSAGE_TYPES:
        raise Unprocessable("message_type must be transactional or promotional.", code="invalid_field",
                            details={"field": "message_type"})
    return SendRequest(to, body, source, f.url("status_callback"), ttl, bool(f.boolean("dry_run")), message_type)


def _encode(body: str, smart: bool) -> EncodedText:
    try:
        return encode(body, smart_encoding=smart)
    except EncodingError as exc:
        raise Unprocessable(str(exc), code=exc.code, details={"field": "body"}) from None


async def _account_numbers(session: AsyncSession, account_id: int) -> list[Number]:
    return list((await session.scalars(select(Number).where(Number.account_id == account_id,
                                                            Number.status != NumberStatus.RELEASED.value))).all())


async def opted_out(session: AsyncSession, account_id: int, phone: str, number: Number) -> bool:
    lists = ["default"] + ([number.opt_out_list] if number.opt_out_list else [])
    return await session.scalar(select(OptOut.id).where(OptOut.account_id == account_id, OptOut.phone == phone,
                                                        OptOut.list_name.in_(lists)).limit(1)) is not None


def price(number: Number, segments: int, pricing: PricingSettings) -> dict[str, Any]:
    per_segment = float(getattr(pricing, number.type, pricing.long_code))
    return {"amount": round(per_segment * segments, 6), "currency": pricing.currency, "per_segment": per_segment}


async def _compliance(session: AsyncSession, account: Account, number: Number, req: SendRequest,
                      encoded: EncodedText, message_type: str, now: dt.datetime) -> GatewayError | None:
    if await opted_out(session, account.id, req.to, number):
        return Conflict(f"{req.to} opted out of messages from this account; it must opt in (START) again first.",
                        code="recipient_opted_out")
    if number.type == "ten_dlc":
        if number.status != NumberStatus.ACTIVE.value:
            return Conflict(f"The 10DLC number {number.number} is not active (status: {number.status}).",
                            code="number_not_active")
        shortener = compliance.public_shortener(encoded.text)
        if shortener:
            return Unprocessable(f"Carriers reject public URL shorteners ({shortener}) in 10DLC traffic; "
                                 "use links on the brand's own domain.", code="public_url_shortener")
    if message_type == "promotional" and account.quiet_hours and compliance.in_quiet_hours(req.to, now):
        return Conflict("Promotional messages are not sent between 21:00 and 08:00 in the recipient's local time.",
                        code="quiet_hours")
    return None


async def _queue_bound(session: AsyncSession, account: Account) -> None:
    if account.queue_policy != "reject":
        return
    queued = await session.scalar(select(func.count()).select_from(Message).where(
        Message.account_id == account.id, Message.status.in_((MessageStatus.QUEUED.value,
                                                               MessageStatus.SENDING.value))))
    if queued >= account.max_queued:
        wait = max(1, math.ceil(queued / max(account.max_rate_per_s, 0.1)))
        raise TooManyRequests(f"{queued} messages of this account are waiting to be sent; try again later.",
                              code="queue_full", headers={"Retry-After": str(wait)})


async def accept(session: AsyncSession, account_id: int, req: SendRequest, pricing: PricingSettings, *,
                 idempotency_key: str | None = None, now: dt.datetime | None = None) -> Accepted:
    """Validate and store one message (or find the one with the same idempotency key)."""
    if idempotency_key is not None:
        existing = await session.scalar(select(Message).where(
            Message.account_id == account_id, Message.idempotency_key == idempotency_key))
        if existing is not None:
            return Accepted(existing, False)
    account = await session.get(Account, account_id)
    numbers = await _account_numbers(session, account_id)
    named = next((n for n in numbers if n.number == req.source), None) if req.source else None
    if named is not None and named.type == "ten_dlc" and named.status != NumberStatus.ACTIVE.value:
        number = named  # refused below, as a blocked message from it
    else:
        number = origination.choose(numbers, req.to, region_of(req.to), req.source)
    encoded = _encode(req.body, account.smart_encoding)
    message_type = req.message_type or number.message_type or "transactional"
    now = now or utcnow()
    blocked = await _compliance(session, account, number, req, encoded, message_type, now)
    if blocked is None and not req.dry_run:
        await _queue_bound(session, account)
    message = Message(
        public_id=new_public_id(), account_id=account_id, source=number.number, destination=req.to,
        body=encoded.text, encoding=encoded.encoding, segments=len(encoded.segments),
        characters=encoded.characters, status=MessageStatus.QUEUED.value, idempotency_key=idempotency_key,
        status_callback=req.status_callback, message_type=message_type, created_at=now, updated_at=now,
        next_attempt_at=now, expires_at=now + dt.timedelta(seconds=req.ttl),
    )
    cost = price(number, len(encoded.segments), pricing)
    if req.dry_run:
        if blocked is not None:
            raise blocked
        return Accepted(message, False, cost)
    if blocked is not None:
        message.status, message.error_code, message.error_message = (MessageStatus.BLOCKED.value, blocked.code,
                                                                     blocked.message)
        message.done_at = now
    session.add(message)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()  # a concurrent request with the same idempotency key won
        existing = await session.scalar(select(Message).where(
            Message.account_id == account_id, Message.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return Accepted(existing, False)
    event = (TEXT_BLOCKED, MessageStatus.BLOCKED.value, blocked.code) if blocked else (
        TEXT_QUEUED, MessageStatus.QUEUED.value, None)
    await record_events(session, [{"message_id": message.id, "account_id": account_id, "type": event[0],
                                   "status": event[1], "error_code": event[2], "created_at": now}])
    if blocked is not None:
        blocked.details = {**blocked.details, "message_id": message.public_id}
    return Accepted(message, True, cost, blocked)


async def get_message(session: AsyncSession, account_id: int, public_id: str) -> Message:
    message = await session.scalar(select(Message).where(Message.public_id == public_id,
                                                         Message.account_id == account_id))
    if message is None:
        raise NotFound(f"No message {public_id} in this account.", code="message_not_found")
    return message


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


async def message_view(session: AsyncSession, message: Message) -> dict[str, Any]:
    parts = (await session.scalars(select(MessagePart).where(MessagePart.message_id == message.id)
                                   .order_by(MessagePart.seq))).all()
    events = (await session.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)
                                    .order_by(MessageEvent.id))).all()
    return {
        **message_summary(message),
        "carrier": message.carrier,
        "carrier_message_ids": [p.carrier_message_id for p in parts],
        "carrier_message_id": parts[0].carrier_message_id if parts else None,
        "attempts": message.attempts,
        "events": [{"type": e.type, "status": e.status, "error_code": e.error_code, "at": iso(e.created_at)}
                   for e in events],
    }


def message_summary(message: Message) -> dict[str, Any]:
    return {
        "id": message.public_id,
        "status": message.status,
        "from": message.source,
        "to": message.destination,
        "body": message.body,
        "encoding": message.encoding,
        "segments": message.segments,
        "characters": message.characters,
        "message_type": message.message_type,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
        "sent_at": iso(message.sent_at),
        "done_at": iso(message.done_at),
        "expires_at": iso(message.expires_at),
    }
