"""The console's sign-in: a session cookie signed with HMAC-SHA256 under a key derived from the operator token (a
new token ends every session), with an expiry, and a per-session CSRF token that every form carries.

The cookie is ``<expires>.<nonce>.<signature>``; the CSRF token is an HMAC of the nonce under the same key, so
neither needs server-side storage and every instance of a cluster accepts the other's sessions. Signing out
forgets the nonce on this instance (and drops the cookie); the expiry bounds a copied cookie elsewhere."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Callable

COOKIE = "gateway_console"
LIFETIME_S = 8 * 3600


class Sessions:
    def __init__(self, operator_token: str, *, lifetime_s: int = LIFETIME_S,
                 clock: Callable[[], float] = time.time):
        # a key of its own: the operator token itself is never what the cookie is signed with
        self._key = hmac.new(operator_token.encode(), b"gateway console session v1", hashlib.sha256).digest()
        self._token = operator_token.encode()
        self.lifetime_s, self.clock = lifetime_s, clock
        self._ended: dict[str, float] = {}  # nonce -> its expiry: sessions signed out on this instance

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def start(self) -> str:
        """A new session's cookie value."""
        payload = f"{int(self.clock()) + self.lifetime_s}.{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._sign(payload)}"

    def nonce(self, cookie: str | None) -> str | None:
        """The session's nonce when ``cookie`` is a session this key signed, not expired and not signed out."""
        expires, _, rest = (cookie or "").partition(".")
        nonce, _, signature = rest.partition(".")
        if not (expires.isdigit() and nonce and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{expires}.{nonce}")):
            return None
        if int(expires) <= self.clock() or nonce in self._ended:
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._sign("csrf." + nonce)

    def csrf_matches(self, nonce: str, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self.csrf(nonce).encode())

    def end(self, cookie: str | None) -> None:
        nonce = self.nonce(cookie)
        if nonce is None:
            return
        now = self.clock()
        self._ended = {n: t for n, t in self._ended.items() if t > now}
        self._ended[nonce] = now + self.lifetime_s
