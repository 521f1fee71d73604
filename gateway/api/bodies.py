"""Reading requests: any body whole (one size limit, one timeout), JSON objects, and query parameters. What
the values must be (fields, phone numbers, text, CSV) is gateway.validation's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.api import app_keys
from gateway.errors import BadRequest, PayloadTooLarge, RequestTimeout, Unprocessable
from gateway.validation import check_text, e164, origination

MAX_JSON_DEPTH = 32  # arrays and objects within each other; the API's own bodies use 3


async def read_body(request: web.Request) -> bytes:
    """The whole body, however it is sent (Content-Length, chunked, compressed): ``request.content.read(n)``
    returns only what has arrived so far. Above ``[http] max_body_bytes``: 413 body_too_large; nothing arriving
    for ``body_timeout_s`` (a body shorter than its Content-Length): 408 body_timeout, and the connection closes."""
    http = request.app[app_keys.SETTINGS].http
    if request.content_length is not None and request.content_length > http.max_body_bytes:
        raise _too_large(http.max_body_bytes)
    body = bytearray()
    while True:
        try:
            # what has arrived already (most bodies, whole, by the time the handler runs): no timer to set
            chunk = request.content.read_nowait()
            if not chunk and not request.content.at_eof():
                async with asyncio.timeout(http.body_timeout_s):
                    chunk = await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(f"Nothing of the request body arrived for {http.body_timeout_s:g} s.") from None
        except (web.RequestPayloadError, HttpProcessingError):  # a broken chunk or Content-Encoding
            error = BadRequest("The request body cannot be read (its chunks or its Content-Encoding are broken).",
                               code="malformed_request")
            error.close_connection = True  # the stream cannot go on
            raise error from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > http.max_body_bytes:
            raise _too_large(http.max_body_bytes)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {limit} bytes.")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep (level by level: no recursion to run out of)."""
    level, depth = [value], 0
    while level := [v for v in level if isinstance(v, (dict, list))]:
        depth += 1
        if depth > limit:
            return True
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
    return False


async def read_json_object(request: web.Request, *, text: bool = True) -> dict[str, Any]:
    """The body as a JSON object: 400 invalid_json when it is not one or nests too deep; with ``text``, 422
    invalid_field when a string in it is not text (a batch checks each message on its own instead)."""
    raw = await read_body(request)
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: json's own, on deep nesting
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    if _too_deep(data, MAX_JSON_DEPTH):
        raise BadRequest(f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} deep.",
                         code="invalid_json")
    if text:
        check_text(data)
    return data



def query_limit(request: web.Request, default: int = 50, maximum: int = 500) -> int:
    """The ``limit`` query parameter: a whole number from 1 (400 invalid_query otherwise), at most ``maximum``."""
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        raise BadRequest("limit must be a whole number.", code="invalid_query") from None
    if limit < 1:
        raise BadRequest("limit must be 1 or more.", code="invalid_query", details={"parameter": "limit"})
    return min(limit, maximum)


def query_choice(request: web.Request, name: str, choices: Collection[str]) -> str | None:
    """A query parameter that takes one of ``choices`` (a filter on an unknown value would silently match
    nothing), or None when absent; 400 invalid_query otherwise."""
    value = request.query.get(name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} is one of {', '.join(choices)}.", code="invalid_query",
                         details={"parameter": name})
    return value


def query_phone(request: web.Request, name: str, *, short_codes: bool = False,
                default_region: str = "US") -> str | None:
    """A phone number filter, normalized as numbers are stored (E.164; short codes' digits when
    ``short_codes``), or None when absent; 400 invalid_query for what is no phone number."""
    value = request.query.get(name)
    if value is None:
        return None
    try:
        if short_codes:
            return origination(value, default_region=default_region)
        return e164(value, field=name, default_region=default_region)
    except Unprocessable as exc:
        raise BadRequest(exc.message, code="invalid_query", details={"parameter": name}) from None
