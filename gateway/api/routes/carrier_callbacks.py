"""What HTTP SMS carriers send back: status reports (Kannel's dlr-url, a JSON provider's status callback) and
inbound messages (Kannel's sms-service get-url), each authenticated by a signed token in its URL; and, for the
operator, those URLs to configure at a provider.

The token is ``<expires>.<HMAC-SHA256 of "carrier:<name>:<kind>:<expires>">`` under
``[security] carrier_callback_secret``: it names one carrier and one kind of callback, and stops working when it
expires. The gateway gives a fresh one with every message, valid past the receipt timeout. The query string,
and so the token, never reaches a log (the access log redacts query strings).

A report is handed to the carrier (``HttpSmsCarrier.report``), which turns it into a receipt for the same sink
SMPP receipts reach; it is answered once the receipt is stored. A repeated report changes nothing: a part whose
receipt is final keeps it.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from aiohttp import web

from carriers.http_sms import KANNEL_INBOUND_PARAMS, HttpSmsCarrier, ReportError
from gateway.api import app_keys
from gateway.api.bodies import read_body, read_json_object
from gateway.errors import NotFound, Unauthorized, Unprocessable
from voice.signing import signature, verify

routes = web.RouteTableDef()

KINDS = ("reports", "inbound")
MAX_DAYS = 3660


def callback_token(secret: str, carrier: str, kind: str, expires: int) -> str:
    return f"{expires}.{signature(f'carrier:{carrier}:{kind}', expires, secret)}"


def callback_url(base_url: str, secret: str, carrier: str, kind: str, expires: int) -> str:
    query = urllib.parse.urlencode({"token": callback_token(secret, carrier, kind, expires)})
    return f"{base_url.rstrip('/')}/callbacks/carriers/{urllib.parse.quote(carrier, safe='')}/{kind}?{query}"


def _named(request: web.Request) -> HttpSmsCarrier | None:
    name = request.match_info["carrier"]
    return next((c for c in request.app[app_keys.CARRIERS].carriers
                 if c.name == name and isinstance(c, HttpSmsCarrier)), None)


def _carrier(request: web.Request, kind: str) -> HttpSmsCarrier:
    """The HTTP carrier the URL names, when its token is valid for it and this kind of callback."""
    name = request.match_info["carrier"]
    expires, _, sig = request.query.get("token", "").partition(".")
    carrier = _named(request)
    secret = request.app[app_keys.CARRIER_CALLBACK_SECRET]
    if carrier is None or not sig.isascii() or not verify(f"carrier:{name}:{kind}", expires, sig, secret,
                                                          time.time()):
        raise Unauthorized("The callback's token is invalid or has expired.", code="invalid_callback")
    return carrier


async def _fields(request: web.Request, *, raw: bool = False) -> dict[str, Any]:
    """The callback's fields: the query (without the token), then a JSON or form-encoded body. ``raw``: bytes of
    the query that are not UTF-8 are kept as surrogate escapes (Kannel sends a UCS-2 text as UTF-16BE bytes) for
    the carrier to decode by the message's coding."""
    if raw:
        pairs = urllib.parse.parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True,
                                       errors="surrogateescape")
    else:
        pairs = list(request.query.items())
    data: dict[str, Any] = {k: v for k, v in pairs if k != "token"}
    if request.method == "POST":
        if request.content_type == "application/json":
            data.update(await read_json_object(request))
        else:
            raw = await read_body(request)
            data.update(urllib.parse.parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
    return data


@routes.get("/callbacks/carriers/{carrier}/reports")
@routes.post("/callbacks/carriers/{carrier}/reports")
async def carrier_report(request: web.Request) -> web.Response:
    """A status report: 200 once its receipt is stored (``applied``: false for a status the carrier's mapping
    does not know, which is logged and dropped); 422 invalid_report when it names no message."""
    carrier = _carrier(request, "reports")
    try:
        receipt = await carrier.report(await _fields(request))
    except ReportError as exc:
        raise Unprocessable(str(exc), code=exc.code) from None
    return web.json_response({"ok": True, "applied": receipt is not None})


@routes.get("/callbacks/carriers/{carrier}/inbound")
@routes.post("/callbacks/carriers/{carrier}/inbound")
async def carrier_inbound(request: web.Request) -> web.Response:
    """An inbound message from Kannel's sms-service: 200 once it is stored (an empty body: Kannel sends no reply)."""
    carrier = _carrier(request, "inbound")
    try:
        await carrier.inbound(await _fields(request, raw=True))
    except ReportError as exc:
        raise Unprocessable(str(exc), code=exc.code) from None
    return web.Response(text="")


@routes.get("/admin/carriers/{carrier}/callback-urls")
async def callback_urls(request: web.Request) -> web.Response:
    """The URLs to configure at a provider that is not given them with each message (Kannel's sms-service
    get-url, a JSON provider whose status callback is set in its dashboard), valid ``days`` (default 365)."""
    name = request.match_info["carrier"]
    carrier = _named(request)
    if carrier is None:
        raise NotFound(f"No HTTP carrier is named {name!r}.", code="carrier_not_found")
    days = request.query.get("days", "365")
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        raise Unprocessable(f"days must be a whole number from 1 to {MAX_DAYS}.", code="invalid_query")
    expires = int(time.time()) + int(days) * 86400
    settings, secret = request.app[app_keys.SETTINGS], request.app[app_keys.CARRIER_CALLBACK_SECRET]
    urls = {kind: callback_url(settings.server.base_url, secret, name, kind, expires) for kind in KINDS}
    if carrier.profile == "kannel":  # the sms-service get-url, with Kannel's placeholders
        urls["kannel_get_url"] = urls["inbound"] + "".join(f"&{k}={v}" for k, v in KANNEL_INBOUND_PARAMS.items())
    return web.json_response({"carrier": name, **urls, "expires_at": expires})
