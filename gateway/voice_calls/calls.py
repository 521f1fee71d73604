"""Calls as the API takes and shows them: accepting a call request (validated, a calling number chosen, stored
for the worker in gateway.voice_calls.worker), reading one with its events, and an account's call metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Label, Row, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound, Unprocessable
from gateway.sending.origination import choose_voice
from gateway.store.idempotency import in_progress, reused, same_request
from gateway.store.models import Message, VoiceEvent, VoiceMessage
from gateway.validation import Fields, origination as parse_origination, parse_phone
from gateway.voice_calls.worker import VoiceCalls, new_voice_id, voice_view
from gateway.webhooks.egress import AddressPolicy
from registry.db import utcnow
from registry.models import Number
from voice import markup as vm

VOICE_FIELDS = {"to", "from", "script", "markup", "voice", "language", "variables", "status_callback", "dry_run"}


async def accept_call(sessions: async_sessionmaker[AsyncSession], calls: VoiceCalls, urls: AddressPolicy,
                      data: dict, account_id: int, *, default_region: str, idempotency_key: str | None = None,
                      request_hash: str | None = None) -> tuple[dict, bool]:
    """Validate, choose a voice-capable number, store the call for the worker (a dry run stores nothing and
    places no call). Returns the call's view and whether it was created now (not found by its idempotency key).
    Raises 4xx errors (bad script input: voice.markup.VoiceInputError)."""
    f = Fields(data, VOICE_FIELDS | {"body", "channel", "ttl", "message_type"})
    dry_run = bool(f.boolean("dry_run"))
    to, _ = parse_phone(f.text("to", required=True, max_length=40) or "", default_region=default_region)
    script, markup_text = f.text("script"), f.text("markup")
    if script is None and markup_text is None:
        script = f.text("body")  # channel auto: the SMS body is the script
    if (script is None) == (markup_text is None):
        raise Unprocessable("Give either 'script' (plain text) or 'markup'.", code="missing_field",
                            details={"field": "script"})
    variables = data.get("variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(v, (str, int, float)) for v in variables.values()):
        raise Unprocessable("variables must be an object of strings or numbers.", code="invalid_field",
                            details={"field": "variables"})
    text = markup_text if markup_text is not None else script
    vm.parse(text, variables, markup=markup_text is not None)  # refuses what cannot be spoken
    voice = await calls.renderer.resolve_voice(f.text("voice"), f.text("language"))
    filled = vm._substitute(text, variables, markup_text is not None)  # the script as it is rendered
    source = f.text("from")
    callback = (await urls.fields(f, "status_callback")).get("status_callback")
    async with sessions() as session, session.begin():
        if idempotency_key is not None:
            first = await _keyed(session, account_id, idempotency_key, request_hash)
            if first is not None:
                return {**voice_view(first), "channel": "voice"}, False
        numbers = (await session.scalars(select(Number).where(Number.account_id == account_id,
                                                              Number.status == "active"))).all()
        if source is not None:
            source = parse_origination(source, default_region=default_region)
        number = choose_voice(numbers, source)
        v = VoiceMessage(public_id=new_voice_id(), account_id=account_id, source=number.number, destination=to,
                         script=filled, markup=markup_text is not None, voice=voice, status="queued",
                         status_callback=callback, idempotency_key=idempotency_key,
                         request_hash=request_hash if idempotency_key is not None else None,
                         created_at=utcnow(), updated_at=utcnow())
        if dry_run:  # validated, number chosen: nothing stored, no call placed
            return {**voice_view(v), "id": None, "status": "dry_run", "channel": "voice"}, False
        session.add(v)
        try:
            await session.flush()
        except IntegrityError:
            raise in_progress() from None
        view = voice_view(v)
    calls.notify()
    return {**view, "channel": "voice"}, True


async def _keyed(session: AsyncSession, account_id: int, key: str, request_hash: str | None) -> VoiceMessage | None:
    """The call stored with this idempotency key, or None; 422 when the key was given with another request
    (or names an SMS)."""
    first = await session.scalar(select(VoiceMessage).where(VoiceMessage.account_id == account_id,
                                                            VoiceMessage.idempotency_key == key))
    if first is not None:
        if not same_request(first.request_hash, request_hash):
            raise reused(key)
        return first
    if await session.scalar(select(Message.id).where(Message.account_id == account_id,
                                                     Message.idempotency_key == key)) is not None:
        raise reused(key)
    return None


async def get_call(sessions: async_sessionmaker[AsyncSession], account_id: int,
                   public_id: str) -> tuple[VoiceMessage, list[VoiceEvent]]:
    """The call and its events, oldest first; 404 voice_message_not_found."""
    async with sessions() as session:
        v = await session.scalar(select(VoiceMessage).where(VoiceMessage.public_id == public_id,
                                                            VoiceMessage.account_id == account_id))
        if v is None:
            raise NotFound("No such voice message in this account.", code="voice_message_not_found")
        events = (await session.scalars(select(VoiceEvent).where(VoiceEvent.voice_message_id == v.id)
                                        .order_by(VoiceEvent.id))).all()
    return v, list(events)


async def call_metrics(sessions: async_sessionmaker[AsyncSession], account_id: int) -> dict[str, Any]:
    """Calls per number and for the account: completed, failed, busy, no answer, minutes."""
    def count(status: str) -> Label[int]:
        return func.sum(case((VoiceMessage.status == status, 1), else_=0)).label(status)

    cols = [count(s) for s in ("completed", "failed", "busy", "no_answer")]
    minutes = (func.coalesce(func.sum(VoiceMessage.call_seconds), 0) / 60).label("minutes")
    async with sessions() as session:
        rows = (await session.execute(select(VoiceMessage.source, func.count().label("calls"), *cols, minutes)
                                      .where(VoiceMessage.account_id == account_id)
                                      .group_by(VoiceMessage.source))).all()

    def view(r: Row) -> dict:
        return {"calls": r.calls, "completed": r.completed or 0, "failed": r.failed or 0, "busy": r.busy or 0,
                "no_answer": r.no_answer or 0, "minutes": round(float(r.minutes or 0), 2)}

    per_number = {r.source: view(r) for r in rows}
    total = {k: sum(v[k] for v in per_number.values()) for k in ("calls", "completed", "failed", "busy", "no_answer")}
    total["minutes"] = round(sum(v["minutes"] for v in per_number.values()), 2)
    return {"account": total, "numbers": per_number}

