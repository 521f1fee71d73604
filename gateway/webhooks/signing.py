"""How webhooks are signed, and how a receiver checks them (the README shows ``verify``)::

    X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A batched POST is signed as one body: ``batch_body`` builds it from the deliveries' own event bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

SIGNATURE_HEADER = "X-Gateway-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a customer runs: check the signature header of a webhook request (the README shows it)."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def batch_body(deliveries: list[Any]) -> bytes:
    """The body of a batched POST: ``[{"delivery_id": ..., "event": <the body it would have alone>}, ...]``
    (each payload is already the exact JSON of its event; delivery ids are ``whd_`` and hex)."""
    return ("[" + ",".join(f'{{"delivery_id":"{d.public_id}","event":{d.payload}}}' for d in deliveries)
            + "]").encode()
