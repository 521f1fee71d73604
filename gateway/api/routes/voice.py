"""Voice messages: send a script as a call, read its progress, the signed audio, carrier callbacks, metrics."""

from __future__ import annotations

import time

from aiohttp import web

from carriers.voice_http import CALL_STATUSES
from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.errors import BadRequest, NotFound, ServiceUnavailable, Unauthorized, Unprocessable
from gateway.store.idempotency import fingerprint, request_key
from gateway.validation import Fields
from gateway.voice_calls import calls
from gateway.voice_calls.worker import VoiceCalls, voice_view
from voice.signing import verify

routes = web.RouteTableDef()


def _calls(request: web.Request) -> VoiceCalls:
    worker = request.app.get(app_keys.VOICE)
    if worker is None:
        raise ServiceUnavailable("Voice is not enabled on this gateway.", code="voice_disabled")
    return worker


async def accept_call(request: web.Request, data: dict, *, idempotency_key: str | None = None,
                      request_hash: str | None = None) -> tuple[dict, bool]:
    """The call that ``data`` asks for, for the caller's account (gateway.voice_calls.calls.accept_call): its view,
    and whether it was created now."""
    return await calls.accept_call(request.app[app_keys.SESSIONMAKER], _calls(request),
                                   request.app[app_keys.URL_POLICY], data, request[app_keys.ACCOUNT_ID],
                                   default_region=request.app[app_keys.SETTINGS].messages.default_country,
                                   idempotency_key=idempotency_key, request_hash=request_hash)


@routes.post("/v1/voice-messages")
async def send_voice(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    Fields(data, calls.VOICE_FIELDS)
    key = request_key(request)
    view, created = await accept_call(request, data, idempotency_key=key,
                                      request_hash=fingerprint(request.path, data) if key else None)
    return web.json_response(view, status=202 if created else 200)


@routes.get("/v1/voice-messages/{id}")
async def get_voice(request: web.Request) -> web.Response:
    v, events = await calls.get_call(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID],
                                     request.match_info["id"])
    return web.json_response(voice_view(v, events))


@routes.get("/v1/voice-metrics")
async def voice_metrics(request: web.Request) -> web.Response:
    """Calls per number and for the account: completed, failed, busy, no answer, minutes."""
    return web.json_response(await calls.call_metrics(request.app[app_keys.SESSIONMAKER],
                                                      request[app_keys.ACCOUNT_ID]))


@routes.get("/audio/{key}.wav")
async def audio(request: web.Request) -> web.StreamResponse:
    """Rendered audio for carriers: public, but only with a valid, unexpired signature."""
    worker = _calls(request)
    key = request.match_info["key"]
    if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
        raise NotFound("No such audio.", code="audio_not_found")
    if not verify(key, request.query.get("expires"), request.query.get("sig", ""), worker._secret, time.time()):
        raise Unauthorized("The audio link is invalid or has expired.", code="invalid_signature")
    path = worker.renderer.path(key)
    if not path.exists():
        raise NotFound("No such audio.", code="audio_not_found")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=60"})


@routes.post("/callbacks/voice/{token}")
async def voice_callback(request: web.Request) -> web.Response:
    """Status callbacks from the voice carrier (the token in the path authenticates them)."""
    worker = _calls(request)
    token = request.match_info["token"]
    public_id = worker.check_token(token) if token.isascii() else None  # hmac compares ASCII text only
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
    await worker.advance(public_id, status, duration_s=float(duration) if usable else None,
                        error=error[:500] if isinstance(error, str) else None)
    return web.json_response({"ok": True})
