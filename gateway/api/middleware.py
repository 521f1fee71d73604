"""Errors to JSON (the gateway's own, and the leaves' errors mapped to an HTTP status here, in one place), and
authentication by path: /v1/* needs an API key, /admin/* the operator token, /console its own session
(gateway.console.auth: no API key nor bearer token opens it); repeated
authentication failures from one client IP (or with one key prefix) are answered 429 for a while, though never
a request whose credentials are valid. Access log lines never carry secrets (query strings, path tokens, bearer
credentials)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hmac
import ipaddress
import logging
import math
import re
import time
import weakref
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from sqlalchemy import exc as sa_exc

import keywords as kw
from gateway.api import app_keys
from gateway.errors import (
    BadRequest,
    Conflict,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from gateway.webhooks import egress
from registry import inventory, states
from voice import markup as vm

log = logging.getLogger(__name__)

_SECRETS = (
    (re.compile(r"\?[^\s\"']*"), "?<redacted>"),  # query strings: signatures (?sig=), mistaken ?api_key=
    (re.compile(r"(/callbacks/voice/)[^\s/?\"']+"), r"\1<token>"),  # the token that authenticates a callback
    (re.compile(r"(/registry/events/)[^\s/?\"']+"), r"\1<token>"),  # the registry's event URL token
    (re.compile(r"\b(Bearer|Basic)\s+[^\s\"',]+", re.IGNORECASE), r"\1 <redacted>"),
)


def redact(text: str) -> str:
    """A request line, URL or header value with its secrets replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """On aiohttp's access logger, whatever its format: the line and its structured extras, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        for name, value in list(vars(record).items()):
            if name.startswith(("first_request_line", "request_header")):
                setattr(record, name, _redact_value(value))
        return True


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    return value


_ACCESS_LOG = logging.getLogger("aiohttp.access")
if not any(isinstance(f, RedactSecrets) for f in _ACCESS_LOG.filters):
    _ACCESS_LOG.addFilter(RedactSecrets())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
              415: "unsupported_media_type"}


# The leaves (registry, keywords, voice) know nothing of HTTP: each error class has a stable ``code`` and a sentence,
# and is answered with the status chosen here. (The carriers' errors never reach a handler: the dispatcher and the
# voice worker handle them; an SMS body that cannot be encoded is answered by gateway.sending.messages, which
# also reports it per message in a batch.)
_REGISTRY_KINDS: dict[str, type[GatewayError]] = {"conflict": Conflict, "not_found": NotFound,
                                                  "invalid": Unprocessable}
LEAF_ERRORS: dict[type[Exception], Callable[[Any], type[GatewayError]]] = {
    states.RegistryError: lambda exc: _REGISTRY_KINDS[exc.kind],  # an illegal state change, a missing thing
    inventory.RowError: lambda exc: BadRequest,  # raised to a route only for a header that cannot be read
    kw.KeywordError: lambda exc: Conflict if exc.code == "too_many_keywords" else Unprocessable,
    vm.VoiceInputError: lambda exc: Unprocessable,  # a script or voice that cannot be spoken
}


def leaf_error(exc: Exception) -> GatewayError:
    """A leaf's error as the API answers it: its code and sentence, with the status of its class."""
    status = next(to_status for cls, to_status in LEAF_ERRORS.items() if isinstance(exc, cls))
    return status(exc)(str(exc), code=exc.code)


def database_busy() -> ServiceUnavailable:
    return ServiceUnavailable("The database did not answer in time; the request changed nothing. Send it again.",
                              code="database_busy", headers={"Retry-After": "1"})


def _route_of(request: web.Request) -> str:
    """The route's pattern for logs: a path may carry a token."""
    route = request.match_info.route.resource
    return route.canonical if route else redact(request.path)


def error_response(exc: GatewayError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status, headers=exc.headers)


DRAIN_IDLE_S, DRAIN_MAX_S = 0.5, 2.0


async def _answer_and_close(request: web.Request, resp: web.Response, *, drain: bool = False) -> web.Response:
    """Send the answer, then close the connection: aiohttp would otherwise wait (lingering_time, 10 s) for the rest
    of a body that is not coming. With ``drain`` (a body refused as too large, which the client may still be
    sending), what keeps arriving is read and dropped for a moment first, as servers' lingering close does:
    closing a socket with unread data in it resets the connection, and the client would lose the answer."""
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    if drain:
        loop = asyncio.get_running_loop()
        end = loop.time() + DRAIN_MAX_S
        with contextlib.suppress(Exception):
            while not request.content.at_eof() and loop.time() < end:
                async with asyncio.timeout(min(DRAIN_IDLE_S, end - loop.time())):
                    if not await request.content.readany():
                        break
    if request.transport is not None:
        request.transport.close()
    return resp


METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each request by method, route pattern (never the raw path: it may carry ids or tokens) and status."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"  # a bounded label set
        request.app[app_keys.METRICS].http_requests.labels(method, route, str(status)).inc()


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        if exc.close_connection:
            return await _answer_and_close(request, error_response(exc), drain=exc.status == 413)
        return error_response(exc)
    except tuple(LEAF_ERRORS) as exc:
        return error_response(leaf_error(exc))
    except (sa_exc.TimeoutError, sa_exc.OperationalError) as exc:  # no connection in time; SQLite's lock held
        request.app[app_keys.METRICS].alerts.database_busy(f"{request.method} {_route_of(request)}", exc)
        return error_response(database_busy())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        message = {404: "No such route.", 405: f"Method {request.method} is not allowed here."}.get(
            exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        if exc.status == 405:
            headers["Allow"] = _allowed(request) or headers.get("Allow", "")
        return web.json_response({"error": {"code": code, "message": message}}, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, _route_of(request))
        return web.json_response({"error": {"code": "internal_error", "message": "Internal error."}},
                                 status=500)


PARSER_CODES = {413: "body_too_large", 500: "internal_error"}  # any other status: malformed_request
_JSON_ERRORS = web.AppKey("json_parser_errors", bool)


def json_parser_errors(app: web.Application) -> None:
    """Errors that aiohttp answers itself, before any middleware (a request it cannot parse: duplicate
    Content-Length, a request line or header too long, a bad method; or an exception outside the middlewares),
    answered for ``app`` in the API's JSON error format with a code. aiohttp offers no hook for these but
    RequestHandler.handle_error (the same name and arguments since aiohttp 3.0), so it is wrapped once; servers
    of other applications (simulators, test receivers) keep aiohttp's plain text."""
    app[_JSON_ERRORS] = True
    if getattr(RequestHandler.handle_error, "_gateway_json", False):
        return
    plain = RequestHandler.handle_error

    def handle_error(self: RequestHandler, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        resp = plain(self, request, status, exc, message)  # aiohttp's logging and checks, as they are
        owner = getattr(getattr(getattr(self, "_manager", None), "request_handler", None), "__self__", None)
        if not (isinstance(owner, web.Application) and owner.get(_JSON_ERRORS)):
            return resp
        sentence = ("Internal error." if status >= 500 else
                    "The request line or a header is too long." if isinstance(exc, LineTooLong) else
                    f"The request cannot be read as HTTP: {_first_line(getattr(exc, 'message', None) or message)}")
        answer = web.json_response({"error": {"code": PARSER_CODES.get(status, "malformed_request"),
                                              "message": sentence}}, status=status)
        answer.force_close()
        return answer

    handle_error._gateway_json = True
    RequestHandler.handle_error = handle_error


def _first_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return redact(lines[0])[:200] if lines else "bad request."


def _allowed(request: web.Request) -> str | None:
    """The methods of the most specific routes matching the path: aiohttp's Allow also lists those of looser
    patterns that happen to match (/v1/messages/batch is not /v1/messages/{id})."""
    best: tuple[int, set[str]] = (1 << 30, set())
    for resource in request.app.router.resources():
        info = resource.get_info()
        if info.get("path") != request.path and not ("pattern" in info and info["pattern"].fullmatch(request.path)):
            continue
        looseness = resource.canonical.count("{")
        if looseness < best[0]:
            best = (looseness, set())
        if looseness == best[0]:
            best[1].update(route.method for route in resource)
    return ",".join(sorted(best[1])) or None


@functools.cache
def _query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(method, route pattern) -> the query parameters the OpenAPI document gives it."""
    from gateway.api.openapi import PATHS

    return {(method.upper(), path): frozenset(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            for path, ops in PATHS.items() for method, op in ops.items()}


def _check_query(request: web.Request) -> None:
    """Query parameters a route does not know are refused, as unknown body fields are (a typo filters nothing)."""
    resource = request.match_info.route.resource
    if not request.query or resource is None:
        return
    known = _query_parameters().get((request.method, resource.canonical))
    unknown = sorted(set(request.query) - known) if known is not None else []
    if unknown:
        raise BadRequest(f"Unknown query parameter(s): {', '.join(unknown)}.", code="unknown_query_parameter",
                         details={"parameters": unknown})


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AuthFailures:
    """Failed authentications per key ("ip:<address>", "key:<first 10 characters>") in a sliding window: a key
    with ``limit`` failures in the last ``window_s`` seconds must wait until the oldest of them leaves it."""

    MAX_TRACKED = 100_000  # keys remembered at most; beyond that expired ones are dropped (then all, failing open)

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, collections.deque[float]] = {}

    def retry_after(self, *names: str) -> int | None:
        """Whole seconds until all of ``names`` may try again, or None when none of them is over the limit."""
        if self.limit <= 0:
            return None
        now, wait = self.clock(), 0.0
        for name in names:
            times = self._failures.get(name)
            if times is not None and len(times) >= self.limit and times[0] > now - self.window_s:
                wait = max(wait, times[0] + self.window_s - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, *names: str) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        if len(self._failures) >= self.MAX_TRACKED:
            self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - self.window_s}
            if len(self._failures) >= self.MAX_TRACKED:
                self._failures.clear()
        for name in names:
            times = self._failures.get(name)
            if times is None:
                times = self._failures[name] = collections.deque(maxlen=self.limit)
            times.append(now)


_AUTH_FAILURES: weakref.WeakKeyDictionary[web.Application, AuthFailures] = weakref.WeakKeyDictionary()
_PROXIES: weakref.WeakKeyDictionary[web.Application, tuple] = weakref.WeakKeyDictionary()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return egress.address(text.strip())
    except ValueError:
        return None


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, unless the peer is a proxy the operator trusts ([security]
    trusted_proxies); then the right-most address of X-Forwarded-For that is no trusted proxy (what the proxy
    nearest to us saw; anything left of it the client may have written itself)."""
    proxies = _PROXIES.get(request.app)
    if proxies is None:
        proxies = _PROXIES[request.app] = tuple(ipaddress.ip_network(n, strict=False)
                                                for n in request.app[app_keys.SETTINGS].security.trusted_proxies)

    def trusted(address: str | None) -> bool:
        ip = _address(address or "")
        return ip is not None and any(ip in network for network in proxies)

    client = request.remote or ""
    if not proxies or not trusted(client):
        return client
    for hop in reversed(",".join(request.headers.getall("X-Forwarded-For", [])).split(",")):
        hop = hop.strip()
        if hop and not trusted(hop):
            return hop
        client = hop or client
    return client  # every hop is a trusted proxy: the left-most of them


def auth_failures(app: web.Application) -> AuthFailures:
    """The app's record of failed authentications, made on first use from its [security] settings."""
    failures = _AUTH_FAILURES.get(app)
    if failures is None:
        security = app[app_keys.SETTINGS].security
        failures = _AUTH_FAILURES[app] = AuthFailures(security.auth_failure_limit, security.auth_failure_window_s)
    return failures


def _too_many(retry_after: int) -> TooManyRequests:
    return TooManyRequests(f"Too many failed authentication attempts; try again in {retry_after} s.",
                           code="too_many_auth_failures", headers={"Retry-After": str(retry_after)})


def _matches(token: str | None, expected: str) -> bool:
    return token is not None and bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


async def _authenticate(request: web.Request, token: str | None, admin: bool) -> None:
    if admin:
        if _matches(token, request.app[app_keys.OPERATOR_TOKEN]):
            return
        if request.path == METRICS_PATH:  # the scrape token opens /metrics and nothing else
            if _matches(token, request.app[app_keys.SETTINGS].metrics.scrape_token):
                return
            raise Unauthorized("This route needs the operator token or the metrics scrape token.",
                               code="invalid_operator_token")
        raise Unauthorized("This route needs the operator token.", code="invalid_operator_token")
    if token is None:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.", code="missing_api_key")
    request[app_keys.ACCOUNT_ID] = await request.app[app_keys.AUTH].account_id(token)


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Credentials are checked first, so that valid ones always pass, however many failures others caused from
    the same address (an office behind one NAT, the operator's CLI). Only failing requests are slowed down: a
    lucky guess is no worry with keys of 256 random bits, and a failure costs one indexed lookup either way."""
    path = request.path
    if path == "/console" or path.startswith("/console/"):  # a realm of its own: signed in (gateway.console.auth)
        return await handler(request)
    admin = path.startswith("/admin/") or path == METRICS_PATH
    if not admin and not path.startswith("/v1/"):
        _check_query(request)
        return await handler(request)
    token = _bearer(request)
    try:
        await _authenticate(request, token, admin)
    except Unauthorized:
        failures = auth_failures(request.app)
        names = (f"ip:{client_ip(request)}",) + ((f"key:{token[:10]}",) if token else ())
        wait = failures.retry_after(*names)  # a client over the limit, or a wrong key tried too often anywhere
        if wait is not None:
            raise _too_many(wait) from None
        failures.failed(*names)
        raise
    _check_query(request)
    return await handler(request)
