"""Errors to JSON, and authentication by path: /v1/* needs an API key, /admin/* the operator token."""

from __future__ import annotations

import hmac
import logging
from typing import Awaitable, Callable

from aiohttp import web

from gateway import keys
from gateway.errors import GatewayError, Unauthorized

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
              415: "unsupported_media_type"}


def error_response(exc: GatewayError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status, headers=exc.headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        message = {404: "No such route.", 405: f"Method {request.method} is not allowed here."}.get(
            exc.status, exc.reason)
        return web.json_response({"error": {"code": code, "message": message}}, status=exc.status,
                                 headers={k: v for k, v in exc.headers.items() if k.lower() == "allow"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": {"code": "internal_error", "message": "Internal error."}},
                                 status=500)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/v1/"):
        token = _bearer(request)
        if token is None:
            raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.", code="missing_api_key")
        request[keys.ACCOUNT_ID] = await request.app[keys.AUTH].account_id(token)
    elif path.startswith("/admin/"):
        token = _bearer(request)
        expected = request.app[keys.OPERATOR_TOKEN]
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Unauthorized("This route needs the operator token.", code="invalid_operator_token")
    return await handler(request)
