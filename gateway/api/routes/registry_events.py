"""The registry's events (webhooks): ``POST /registry/events/<token>``, the URL the gateway subscribes the
registry to. The token (an HMAC of ``[registry] webhook_secret``) authenticates the registry; it never reaches a
log (the access log writes the route's pattern). An event is checked, stored and applied in one transaction before
it is answered 200; the same eventId again changes nothing and is answered 200 too (the registry stops sending
it). What cannot be read is answered 4xx with a code: 401 invalid_token, 413 body_too_large (events are small),
400 invalid_json, 422 invalid_event (or invalid_field: a string that is not text)."""

from __future__ import annotations

import hmac
import json

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_body
from gateway.errors import BadRequest, PayloadTooLarge, Unauthorized, Unprocessable
from gateway.validation import check_text
from registry.events import EventError

routes = web.RouteTableDef()

MAX_EVENT_BYTES = 64 * 1024


@routes.post("/registry/events/{token}")
async def registry_event(request: web.Request) -> web.Response:
    csp = request.app[app_keys.REGISTRY].csp
    if not hmac.compare_digest(request.match_info["token"].encode(), csp.token.encode()):
        raise Unauthorized("The event URL's token is not this gateway's.", code="invalid_token")
    if request.content_length is not None and request.content_length > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"An event is at most {MAX_EVENT_BYTES} bytes.")
    raw = await read_body(request)
    if len(raw) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"An event is at most {MAX_EVENT_BYTES} bytes.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("The event is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The event must be a JSON object.", code="invalid_json")
    check_text(data)  # no lone surrogates nor NUL in what is stored: 422 invalid_field
    try:
        outcome, result = await csp.receive(data, json.dumps(data))
    except EventError as exc:
        raise Unprocessable(str(exc), code=exc.code) from None
    return web.json_response({"eventId": data["eventId"], "outcome": outcome,
                              "reason": result.reason if result is not None else None})
