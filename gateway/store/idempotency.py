"""Idempotency-Key: one key names one request of an account, SMS or voice, on whichever route it came.

A key is stored with the message or call it created and with the request's fingerprint (route and canonical JSON
body). The same key with the same request answers the first message again; with another request (other body,
recipient, channel or route) it is refused, never silently answered with a message the caller did not ask for.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from gateway.errors import BadRequest, Conflict, Unprocessable


def request_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key header, or None; 400 invalid_idempotency_key unless it is 1 to 200 printable
    ASCII characters (a header's undecodable bytes would reach the database as lone surrogates)."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200 and key.isascii() and key.isprintable()):
        raise BadRequest("Idempotency-Key must have 1 to 200 printable ASCII characters.",
                         code="invalid_idempotency_key")
    return key


def fingerprint(route: str, body: Any) -> str:
    """sha256 of the route and the body as canonical JSON (sorted keys, no spaces): key order and spacing do not
    make another request; ASCII escapes keep a lone surrogate hashable."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{route}\n{canonical}".encode()).hexdigest()


def same_request(stored: str | None, given: str | None) -> bool:
    """Whether a stored key's request is the one given again (rows stored before fingerprints match any)."""
    return stored is None or given is None or stored == given


def in_progress() -> Conflict:
    """For the insert that lost the race to the key's unique index."""
    return Conflict("Another request with the same Idempotency-Key is being processed; retry it.",
                    code="idempotency_conflict")


def reused(key: str) -> Unprocessable:
    return Unprocessable(f"The Idempotency-Key '{key[:40]}' was used before with another request; use a new key "
                         "for a new message.", code="idempotency_key_reused")
