"""Voice messages: send a script as a call, read its progress, the signed audio, carrier callbacks, metrics."""

from __future__ import annotations

import time

from aiohttp import web
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carriers.voice_http import CALL_STATUSES
from gateway.api import app_keys
from gateway.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized, Unprocessable
from gateway.sending.origination import PRIORITY
from gateway.store.idempotency import fingerprint, in_progress, request_key, reused, same_request
from gateway.store.models import Message, VoiceEvent, VoiceMessage
from gateway.validation import Fields, origination as parse_origination, parse_phone, read_json_object
from gateway.voice_calls.worker import new_voice_id, voice_view
from registry.db import utcnow
from registry.models import Number
from voice import markup as vm
from voice.signing import verify

routes = web.RouteTableDef()
VOICE_FIELDS = {"to", "from", "script", "markup", "voice", "language", "variables", "status_callback", "dry_run"}


def _calls(request: web.Request):  # noqa: ANN202
    calls = request.app.get(app_keys.VOICE)
    if calls is None:
        raise ServiceUnavailable("Voice is not enabled on this gateway.", code="voice_disabled")
    return calls


async def create_voice_message(request: web.Request, data: dict, account_id: int, *,
                               idempotency_key: str | None = None, request_hash: str | None = None,
                               ) -> tuple[dict, bool]:
    """Validate, choose a voice-capable number, store the call for the worker (a dry run stores nothing and
    places no call). Returns the call's view and whether it was created now (not found by its idempotency key).
    Raises 4xx errors."""
    calls = _calls(request)
    settings = request.app[app_keys.SETTINGS]
    f = Fields(data, VOICE_FIELDS | {"body", "channel", "ttl", "message_type"})
    dry_run = bool(f.boolean("dry_run"))
    to, _ = parse_phone(f.text("to", required=True, max_length=40) or "",
                        default_region=settings.messages.default_country)
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
    try:
        text = markup_text if markup_text is not None else script
        chunks = vm.parse(text, variables, markup=markup_text is not None)
        voice = await calls.renderer.resolve_voice(f.text("voice"), f.text("language"))
    except vm.VoiceInputError as exc:
        raise Unprocessable(str(exc), code=exc.code) from None
    filled = vm._substitute(text, variables, markup_text is not None)  # the script as it is rendered
    source = f.text("from")
    callback = (await request.app[app_keys.URL_POLICY].fields(f, "status_callback")).get("status_callback")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        if idempotency_key is not None:
            first = await _keyed(session, account_id, idempotency_key, request_hash)
            if first is not None:
                return {**voice_view(first), "channel": "voice"}, False
        numbers = (await session.scalars(select(Number).where(Number.account_id == account_id,
                                                              Number.status == "active"))).all()
        capable = [n for n in numbers if "voice" in n.capability_set and n.type != "short_code"]
        if source is not None:
            source = parse_origination(source, default_region=settings.messages.default_country)
            number = next((n for n in capable if n.number == source), None)
            if number is None:
                raise Unprocessable(f"{source} is not an active voice number of this account.", code="invalid_from",
                                    details={"field": "from"})
        else:
            if not capable:
                raise Unprocessable("This account has no active number that can place calls.",
                                    code="no_voice_number")
            order = ["long_code", "ten_dlc", "toll_free"] + list(PRIORITY)
            number = sorted(capable, key=lambda n: (order.index(n.type) if n.type in order else 99, n.id))[0]
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
    del chunks
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


@routes.post("/v1/voice-messages")
async def send_voice(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    Fields(data, VOICE_FIELDS)
    key = request_key(request)
    view, created = await create_voice_message(request, data, request[app_keys.ACCOUNT_ID], idempotency_key=key,
                                               request_hash=fingerprint(request.path, data) if key else None)
    return web.json_response(view, status=202 if created else 200)


@routes.get("/v1/voice-messages/{id}")
async def get_voice(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        v = await session.scalar(select(VoiceMessage).where(VoiceMessage.public_id == request.match_info["id"],
                                                            VoiceMessage.account_id == request[app_keys.ACCOUNT_ID]))
        if v is None:
            raise NotFound("No such voice message in this account.", code="voice_message_not_found")
        events = (await session.scalars(select(VoiceEvent).where(VoiceEvent.voice_message_id == v.id)
                                        .order_by(VoiceEvent.id))).all()
        return web.json_response(voice_view(v, list(events)))


@routes.get("/v1/voice-metrics")
async def voice_metrics(request: web.Request) -> web.Response:
    """Calls per number and for the account: completed, failed, busy, no answer, minutes."""
    def count(status: str):  # noqa: ANN202
        return func.sum(case((VoiceMessage.status == status, 1), else_=0)).label(status)

    cols = [count(s) for s in ("completed", "failed", "busy", "no_answer")]
    minutes = (func.coalesce(func.sum(VoiceMessage.call_seconds), 0) / 60).label("minutes")
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.execute(select(VoiceMessage.source, func.count().label("calls"), *cols, minutes)
                                      .where(VoiceMessage.account_id == request[app_keys.ACCOUNT_ID])
                                      .group_by(VoiceMessage.source))).all()

    def view(r) -> dict:  # noqa: ANN001
        return {"calls": r.calls, "completed": r.completed or 0, "failed": r.failed or 0, "busy": r.busy or 0,
                "no_answer": r.no_answer or 0, "minutes": round(float(r.minutes or 0), 2)}

    per_number = {r.source: view(r) for r in rows}
    total = {k: sum(v[k] for v in per_number.values()) for k in ("calls", "completed", "failed", "busy", "no_answer")}
    total["minutes"] = round(sum(v["minutes"] for v in per_number.values()), 2)
    return web.json_response({"account": total, "numbers": per_number})


@routes.get("/audio/{key}.wav")
async def audio(request: web.Request) -> web.StreamResponse:
    """Rendered audio for carriers: public, but only with a valid, unexpired signature."""
    calls = _calls(request)
    key = request.match_info["key"]
    if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
        raise NotFound("No such audio.", code="audio_not_found")
    if not verify(key, request.query.get("expires"), request.query.get("sig", ""), calls._secret, time.time()):
        raise Unauthorized("The audio link is invalid or has expired.", code="invalid_signature")
    path = calls.renderer.path(key)
    if not path.exists():
        raise NotFound("No such audio.", code="audio_not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=60"})


@routes.post("/callbacks/voice/{token}")
async def voice_callback(request: web.Request) -> web.Response:
    """Status callbacks from the voice carrier (the token in the path authenticates them)."""
    calls = _calls(request)
    token = request.match_info["token"]
    public_id = calls.check_token(token) if token.isascii() else None  # hmac compares ASCII text only
    if public_id is None:
        raise Unauthorized("Unknown callback.", code="invalid_callback")
    data = await read_json_object(request)  # one size limit, timeout and depth for every body
    status = data.get("status")
    if status is None:
        raise BadRequest("A callback is JSON with a status.", code="invalid_json")
    if not isinstance(status, str) or status not in CALL_STATUSES:
        raise Unprocessable(f"Unknown call status {status!r}.", code="invalid_field")
    duration, error = data.get("duration_s"), data.get("error")
    usable = isinstance(duration, (int, float)) and not isinstance(duration, bool) and 0 <= duration < 1e7
    await calls.advance(public_id, status, duration_s=float(duration) if usable else None,
                        error=error[:500] if isinstance(error, str) else None)
    return web.json_response({"ok": True})
