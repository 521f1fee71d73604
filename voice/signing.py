"""Signed, expiring URLs for rendered audio (carriers fetch them without credentials)."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse


def signature(key: str, expires: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()


def sign_url(base_url: str, key: str, secret: str, expires: int) -> str:
    query = urllib.parse.urlencode({"expires": expires, "sig": signature(key, expires, secret)})
    return f"{base_url.rstrip('/')}/audio/{key}.wav?{query}"


def verify(key: str, expires: str | int, sig: str, secret: str, now: float) -> bool:
    try:
        expires = int(expires)
    except (TypeError, ValueError):
        return False
    if expires < now:
        return False
    return hmac.compare_digest(signature(key, expires, secret), sig or "")
