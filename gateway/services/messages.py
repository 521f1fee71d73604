"""Accepting outbound SMS: validate, choose the sending number, encode, store durably."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carriers.encoding import EncodedText, EncodingError, encode
from gateway.errors import NotFound, Unprocessable
from gateway.events import TEXT_QUEUED
from gateway.models import Message, MessageEvent, MessagePart, MessageStatus
from gateway.services.events import record as record_events
from gateway.settings import MessageSettings
from gateway.services import origination
from gateway.validation import Fields, e164, origination as parse_origination, region_of
from registry.db import utcnow
from registry.models import Number, NumberStatus

SEND_FIELDS = {"to", "body", "from", "status_callback", "ttl", "dry_run"}


@dataclass
class SendRequest:
    to: str
    body: str
    source: str | None
    status_callback: str | None
    ttl: int
    dry_run: bool
    encoded: EncodedText


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
    try:
        encoded = encode(body)
    except EncodingError as exc:
        raise Unprocessable(str(exc), code=exc.code, details={"field": "body"}) from None
    return SendRequest(to, body, source, f.url("status_callback"), ttl, bool(f.boolean("dry_run")), encoded)


async def choose_source(session: AsyncSession, account_id: int, destination: str, source: str | None) -> Number:
    numbers = (await session.scalars(select(Number).where(Number.account_id == account_id,
                                                          Number.status != NumberStatus.RELEASED.value))).all()
    return origination.choose(numbers, destination, region_of(destination), source)


async def accept(session: AsyncSession, account_id: int, req: SendRequest, *,
                 idempotency_key: str | None = None) -> tuple[Message, bool]:
    """Store a new queued message (or return the one with the same idempotency key). Returns (message, created)."""
    if idempotency_key is not None:
        existing = await session.scalar(select(Message).where(
            Message.account_id == account_id, Message.idempotency_key == idempotency_key))
        if existing is not None:
            return existing, False
    number = await choose_source(session, account_id, req.to, req.source)
    now = utcnow()
    message = Message(
        public_id=new_public_id(), account_id=account_id, source=number.number, destination=req.to,
        body=req.encoded.text, encoding=req.encoded.encoding, segments=len(req.encoded.segments),
        characters=req.encoded.characters, status=MessageStatus.QUEUED.value, idempotency_key=idempotency_key,
        status_callback=req.status_callback, created_at=now, updated_at=now, next_attempt_at=now,
        expires_at=now + dt.timedelta(seconds=req.ttl),
    )
    if req.dry_run:
        return message, False
    session.add(message)
    try:
        await session.flush()
    except IntegrityError:
        # a concurrent request with the same idempotency key won
        await session.rollback()
        existing = await session.scalar(select(Message).where(
            Message.account_id == account_id, Message.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return existing, False
    await record_events(session, [{"message_id": message.id, "account_id": account_id, "type": TEXT_QUEUED,
                                   "status": MessageStatus.QUEUED.value, "error_code": None, "created_at": now}])
    return message, True


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
        "error_code": message.error_code,
        "error_message": message.error_message,
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
        "sent_at": iso(message.sent_at),
        "done_at": iso(message.done_at),
        "expires_at": iso(message.expires_at),
    }
