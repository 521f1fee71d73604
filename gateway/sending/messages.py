"""Accepting outbound SMS: validate, choose the sending number, encode, check compliance, store durably.

A message refused for compliance (opted-out recipient, public URL shortener in 10DLC traffic, an inactive
10DLC number, a toll-free number not verified, promotional traffic in quiet hours) is stored as ``blocked`` with a
TEXT_BLOCKED event, so the customer's webhooks hear of it, and the request is answered with the error.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carriers.encoding import EncodedText, EncodingError, encode
from gateway.errors import Conflict, GatewayError, NotFound, TooManyRequests, Unprocessable
from gateway.sending import compliance, origination
from gateway.sending.routing import Route, Router, route_cost
from gateway.settings import MessageSettings, PricingSettings
from gateway.store.idempotency import in_progress, reused, same_request
from gateway.store.models import Message, MessageEvent, MessagePart, MessageStatus, VoiceMessage
from gateway.store.statements import chunks, insert_new
from gateway.validation import Fields, origination as parse_origination, parse_phone, region_of
from gateway.webhooks.catalog import TEXT_BLOCKED, TEXT_QUEUED, parse_selection
from gateway.webhooks.record import EventTarget, record as record_events
from registry import toll_free
from registry.db import iso, utcnow
from registry.models import Account, Number, NumberStatus, OptOut

SEND_FIELDS = {"to", "body", "from", "status_callback", "status_callback_events", "ttl", "dry_run", "message_type"}
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
    region: str | None = None  # the destination's region, from the one parse of it
    status_callback_events: str | None = None  # stored form (gateway.webhooks.catalog.parse_selection)


@dataclass(slots=True)
class NewMessage:
    """A message accepted by this request, as stored: the columns of its row without an ORM identity, which is
    far cheaper on the hot path (``id`` is filled in once the row is inserted)."""

    public_id: str
    account_id: int
    source: str
    destination: str
    body: str
    encoding: str
    segments: int
    characters: int
    status: str
    idempotency_key: str | None
    status_callback: str | None
    message_type: str
    created_at: dt.datetime
    updated_at: dt.datetime
    next_attempt_at: dt.datetime
    expires_at: dt.datetime
    error_code: str | None = None
    error_message: str | None = None
    request_hash: str | None = None
    done_at: dt.datetime | None = None
    status_callback_events: str | None = None
    id: int | None = None
    carrier: str | None = None
    sent_at: dt.datetime | None = None
    attempts: int = 0
    paced: bool = False

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _ROW_COLUMNS}


_ROW_COLUMNS = tuple(name for name in NewMessage.__slots__ if name not in ("id", "sent_at"))
_MESSAGES = Message.__table__


@dataclass
class Accepted:
    message: Message | NewMessage
    created: bool
    price: dict[str, Any] = field(default_factory=dict)
    blocked: GatewayError | None = None  # stored as blocked: answer with this error after the commit
    hooked: bool = False  # a webhook delivery was queued with its event: wake the sender after the commit
    number_kind: str = "unknown"  # the sending number's type (the metrics' number_kind label)


def new_public_id() -> str:
    return "msg_" + secrets.token_hex(12)


def parse_send(data: dict[str, Any], settings: MessageSettings) -> SendRequest:
    f = Fields(data, SEND_FIELDS)
    to, region = parse_phone(f.text("to", required=True, max_length=40) or "", default_region=settings.default_country)
    body = f.text("body", required=True, max_length=10_000, allow_empty=False, empty_code="empty_body") or ""
    source = f.text("from", max_length=40)
    if source is not None:
        source = parse_origination(source, default_region=settings.default_country)
    ttl = f.integer("ttl", minimum=settings.min_ttl_s, maximum=settings.max_ttl_s) or settings.default_ttl_s
    message_type = f.text("message_type")
    if message_type is not None and message_type not in MESSAGE_TYPES:
        raise Unprocessable("message_type must be transactional or promotional.", code="invalid_field",
                            details={"field": "message_type"})
    return SendRequest(to, body, source, f.url("status_callback"), ttl, bool(f.boolean("dry_run")), message_type,
                       region, parse_selection(data.get("status_callback_events"), "status_callback_events"))


def _encode(body: str, smart: bool) -> EncodedText:
    try:
        return encode(body, smart_encoding=smart)
    except EncodingError as exc:
        raise Unprocessable(str(exc), code=exc.code, details={"field": "body"}) from None


async def _account_and_numbers(session: AsyncSession, account_id: int) -> tuple[Account | None, list[Number]]:
    """The account and the numbers it holds, read by one statement (one trip to SQLite's thread, not two)."""
    rows = (await session.execute(select(Account, Number).outerjoin(Number, and_(
        Number.account_id == Account.id, Number.status != NumberStatus.RELEASED.value)).where(
        Account.id == account_id))).all()
    return (rows[0][0] if rows else None), [number for _, number in rows if number is not None]


async def opted_out_phones(session: AsyncSession, account_id: int, phones: set[str]) -> dict[str, set[str]]:
    """phone -> the opt-out lists it is on, for these phones."""
    found: dict[str, set[str]] = {}
    for chunk in chunks(sorted(phones)):
        rows = await session.execute(select(OptOut.phone, OptOut.list_name).where(
            OptOut.account_id == account_id, OptOut.phone.in_(chunk)))
        for phone, list_name in rows.all():
            found.setdefault(phone, set()).add(list_name)
    return found


def price(number: Number, segments: int, pricing: PricingSettings, route: Route | None = None) -> dict[str, Any]:
    """What the message costs: its route's cost per segment when it has one, else the flat price of the sending
    number's kind."""
    if route is not None and route.cost_per_segment is not None:
        return {"amount": route_cost(route, segments), "currency": pricing.currency,
                "per_segment": route.cost_per_segment, "route": route.name}
    per_segment = float(getattr(pricing, number.type, pricing.long_code))
    return {"amount": round(per_segment * segments, 6), "currency": pricing.currency, "per_segment": per_segment}


def _compliance(account: Account, number: Number, req: SendRequest, encoded: EncodedText, message_type: str,
                now: dt.datetime, opt_lists: set[str], unverified: dict[str, str]) -> GatewayError | None:
    if opt_lists & {"default", number.opt_out_list}:
        return Conflict(f"{req.to} opted out of messages from this account; it must opt in (START) again first.",
                        code="recipient_opted_out")
    if number.number in unverified:
        return toll_free_not_verified(number.number, unverified[number.number])
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


# a toll-free number's verification status -> what it means, and what the customer does about it
_TOLL_FREE_STATES = {
    toll_free.NONE: ("is in no verification request", "submit one (POST /v1/toll-free-verifications)"),
    "submitted": ("has a verification request waiting for review", "send once it is verified"),
    "in_review": ("has its verification request in review", "send once it is verified"),
    "rejected": ("had its verification request rejected",
                 "edit and resubmit it (POST /v1/toll-free-verifications/{id}/resubmit)")}


def toll_free_not_verified(number: str, status: str) -> Conflict:
    """Carriers block SMS from toll-free numbers that are not verified (pending ones too, since 31 January 2024)."""
    state, fix = _TOLL_FREE_STATES[status]
    return Conflict(f"The toll-free number {number} is not verified: it {state}. US and Canadian carriers block SMS "
                    f"from unverified toll-free numbers; {fix}, or send from another number.",
                    code="toll_free_not_verified", details={"from": number, "verification_status": status})


async def _queued_count(session: AsyncSession, account: Account) -> int:
    return await session.scalar(select(func.count()).select_from(Message).where(
        Message.account_id == account.id, Message.status.in_((MessageStatus.QUEUED.value,
                                                               MessageStatus.SENDING.value))))


def _queue_full(queued: int, account: Account) -> TooManyRequests:
    wait = max(1, math.ceil(queued / max(account.max_rate_per_s, 0.1)))
    return TooManyRequests(f"{queued} messages of this account are waiting to be sent; try again later.",
                           code="queue_full", headers={"Retry-After": str(wait)})


async def accept_many(session: AsyncSession, account_id: int, reqs: list[SendRequest | GatewayError],
                      pricing: PricingSettings, *, idempotency_keys: list[str | None] | None = None,
                      fingerprints: list[str | None] | None = None, now: dt.datetime | None = None,
                      router: Router | None = None) -> list[Accepted | GatewayError]:
    """Validate and store messages in one go: what they share is read once, the new rows written together.
    Each entry of the answer is an Accepted or the error for that message (items given as errors stay so).
    A key already stored answers its message when given with the same request (``fingerprints``), else 422.
    ``router``: the route table, whose cost per segment the price shows when the message's route has one."""
    now = now or utcnow()
    keys = idempotency_keys or [None] * len(reqs)
    hashes = fingerprints or [None] * len(reqs)
    account, numbers = await _account_and_numbers(session, account_id)
    by_number = {n.number: n for n in numbers}
    unverified = await toll_free.unverified(session, numbers)  # no query without a toll-free number
    wanted = [k for k in keys if k is not None]
    existing: dict[str, Message | NewMessage | None] = {}  # None: the key of a call
    for chunk in chunks(wanted):
        for m in (await session.scalars(select(Message).where(
                Message.account_id == account_id, Message.idempotency_key.in_(chunk)))).all():
            existing[m.idempotency_key] = m
        calls = set((await session.scalars(select(VoiceMessage.idempotency_key).where(
            VoiceMessage.account_id == account_id, VoiceMessage.idempotency_key.in_(chunk)))).all())
        existing.update(dict.fromkeys(calls))  # a key of a call: another request (its channel) whatever the body
    valid = [r for r in reqs if isinstance(r, SendRequest)]
    opted = await opted_out_phones(session, account_id, {r.to for r in valid})
    queued = await _queued_count(session, account) if account.queue_policy == "reject" else 0
    results: list[Accepted | GatewayError] = []
    stored: list[Accepted] = []
    queued_status = MessageStatus.QUEUED.value
    for req, key, request_hash in zip(reqs, keys, hashes):
        if isinstance(req, GatewayError):
            results.append(req)
            continue
        try:
            if key is not None and key in existing:
                first = existing[key]
                if first is None or not same_request(first.request_hash, request_hash):
                    raise reused(key)
                results.append(Accepted(first, False))
                continue
            named = by_number.get(req.source) if req.source else None
            if named is not None and named.type == "ten_dlc" and named.status != NumberStatus.ACTIVE.value:
                number = named  # refused below, as a blocked message from it
            else:
                number = origination.choose(numbers, req.to, req.region or region_of(req.to), req.source,
                                            unverified)
            encoded = _encode(req.body, account.smart_encoding)
            message_type = req.message_type or number.message_type or "transactional"
            blocked = _compliance(account, number, req, encoded, message_type, now, opted.get(req.to, set()),
                                  unverified)
            if blocked is None and not req.dry_run and account.queue_policy == "reject":
                if queued >= account.max_queued:
                    raise _queue_full(queued, account)
                queued += 1
            message = NewMessage(
                public_id=new_public_id(), account_id=account_id, source=number.number, destination=req.to,
                body=encoded.text, encoding=encoded.encoding, segments=len(encoded.segments),
                characters=encoded.characters, status=queued_status, idempotency_key=key,
                request_hash=request_hash if key is not None else None, status_callback=req.status_callback,
                status_callback_events=req.status_callback_events, message_type=message_type, created_at=now,
                updated_at=now,
                next_attempt_at=now, expires_at=now + dt.timedelta(seconds=req.ttl))
            route = router.route_of(router.facts(
                destination=req.to, account_id=account_id, source=number.number, message_type=message_type,
                number_kind=number.type, region=req.region)) if router is not None and router.routes else None
            cost = price(number, len(encoded.segments), pricing, route)
            if req.dry_run:
                if blocked is not None:
                    raise blocked
                results.append(Accepted(message, False, cost))
                continue
            if blocked is not None:
                message.status, message.error_code = MessageStatus.BLOCKED.value, blocked.code
                message.error_message, message.done_at = blocked.message, now
            accepted = Accepted(message, True, cost, blocked, number_kind=number.type)
            if key is not None:
                existing[key] = message  # the same key twice in one batch: one message
            results.append(accepted)
            stored.append(accepted)
        except GatewayError as exc:
            results.append(exc)
    if stored:
        # a key another transaction stored meanwhile (another instance, on PostgreSQL): that message alone is
        # answered as in progress, the others of the batch or group are stored
        raced = await _insert(session, [a.message for a in stored])
        if raced:
            for i, result in enumerate(results):
                if isinstance(result, Accepted) and result.message.public_id in raced:
                    results[i] = in_progress()
            stored = [a for a in stored if a.message.public_id not in raced]
    if stored:
        hooks = account.event_webhook_url
        known = {a.message.id: EventTarget.of(a.message, hooks, account.webhook_events)
                 for a in stored if hooks or a.message.status_callback}
        if await record_events(session, [
                {"message_id": a.message.id, "account_id": account_id,
                 "type": TEXT_BLOCKED if a.blocked else TEXT_QUEUED, "status": a.message.status,
                 "error_code": a.blocked.code if a.blocked else None, "created_at": now}
                for a in stored], known=known):
            for a in stored:
                a.hooked = a.message.id in known
        for a in stored:
            if a.blocked is not None:
                a.blocked.details = {**a.blocked.details, "message_id": a.message.public_id}
    return results


async def _insert(session: AsyncSession, messages: list[NewMessage]) -> set[str]:
    """Insert new messages in multi-row statements (Core, not the ORM: the ORM inserts one row per statement
    on SQLite to learn each id) and set their ids from RETURNING, matched by public id. A row whose idempotency
    key is already stored is skipped (ON CONFLICT DO NOTHING) rather than failing the whole statement: the
    public ids of those are returned."""
    statement = insert_new(session, _MESSAGES, None, returning=("public_id", "id"))
    rows = [m.row() for m in messages]
    if session.bind.dialect.name == "postgresql":
        # keys in one order in every transaction: two instances' groups holding the same keys wait for each
        # other instead of deadlocking (SQLite has one writer)
        rows.sort(key=lambda row: (row["idempotency_key"] is not None, row["idempotency_key"] or ""))
    ids = dict((await session.execute(statement, rows)).all())
    for m in messages:
        m.id = ids.get(m.public_id)
    return {m.public_id for m in messages if m.id is None}


async def get_message(session: AsyncSession, account_id: int, public_id: str) -> Message:
    message = await session.scalar(select(Message).where(Message.public_id == public_id,
                                                         Message.account_id == account_id))
    if message is None:
        raise NotFound(f"No message {public_id} in this account.", code="message_not_found")
    return message



async def message_view(session: AsyncSession, message: Message) -> dict[str, Any]:
    parts = (await session.scalars(select(MessagePart).where(MessagePart.message_id == message.id)
                                   .order_by(MessagePart.seq))).all()
    events = (await session.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)
                                    .order_by(MessageEvent.id))).all()
    return {
        **message_summary(message),
        "carrier": message.carrier,
        # the ids of the parts the carrier took (a message that failed on one part keeps the others')
        "carrier_message_ids": [p.carrier_message_id for p in parts if p.carrier_message_id],
        "carrier_message_id": next((p.carrier_message_id for p in parts if p.carrier_message_id), None),
        "parts": [{"seq": p.seq, "carrier_message_id": p.carrier_message_id, "attempts": p.attempts,
                   "answer": p.answer, "stat": p.stat, "error_code": p.error_code} for p in parts],
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
