"""The CSP's client for The Campaign Registry's API (``<base>/v1``), the DCA's number association
(``<base>/dca/v1``) and, for tests and the CLI, the registry simulator's control API (``<base>/control``).

Every call is JSON over HTTP with basic auth (the CSP's API key and secret). An attempt that ends in a 5xx, a 429,
a timeout or a connection error is tried again after an exponential backoff with jitter, up to ``retries`` more
times; a 4xx is never tried again. Submissions carry the caller's ``referenceId``, so a retried registration
answers the brand, campaign or order the first attempt made instead of a second one.

After every attempt ``on_call(method, path, request_json, status, answer_json, error)`` is awaited: ``status`` is
the HTTP status (None when no answer came), ``error`` None on success, else the code the call failed with (the
registry's code, ``registry_timeout``, ``registry_unavailable``). The API key and secret travel only in the
Authorization header and never reach ``on_call``, errors or logs.

A failed call raises :class:`CspError` with a stable ``code``: the registry's own (``BRAND_NOT_VERIFIED``,
``BRAND_NOT_FOUND``, ...) for a 4xx that names one, ``registry_rejected`` for a 4xx that does not,
``registry_unavailable`` (retryable) after 5xx or connection errors on every attempt, ``registry_timeout``
(retryable) when the last attempt timed out, ``registry_bad_answer`` for a 2xx that is not JSON.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.parse
from typing import Any, Awaitable, Callable

import aiohttp
import yarl

OnCall = Callable[[str, str, Any, "int | None", Any, "str | None"], Awaitable[None]]


class CspError(Exception):
    """A registry call that failed: ``code`` stable and machine-readable, ``message`` for people, ``status`` the
    HTTP status (None without an answer), ``retryable`` whether the same call may succeed later."""

    def __init__(self, code: str, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.status, self.retryable = code, message, status, retryable

    def __repr__(self) -> str:
        return f"CspError({self.code!r}, {self.message!r}, status={self.status}, retryable={self.retryable})"


def jittered_backoff(attempts: int, first: float, longest: float, jitter: float = 0.2) -> float:
    """Seconds to wait after ``attempts`` failed attempts: ``first``, doubling each time up to ``longest``, times a
    random factor within ±``jitter`` so that callers that failed together do not come back together."""
    pause = min(longest, first * 2.0 ** min(max(attempts - 1, 0), 32))
    return pause * random.uniform(1 - jitter, 1 + jitter)


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


class CspClient:
    """The registry's CSP API over aiohttp. Methods answer the registry's JSON (a dict, or a list where the
    registry answers one) or raise :class:`CspError`. ``dca_base_url`` defaults to ``<base_url>/dca``."""

    def __init__(self, base_url: str, api_key: str, api_secret: str, *, timeout_s: float = 10,
                 retries: int = 4, backoff: tuple[float, float] = (0.2, 5.0),
                 session: aiohttp.ClientSession | None = None, on_call: OnCall | None = None,
                 dca_base_url: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.dca_base_url = (dca_base_url or f"{self.base_url}/dca").rstrip("/")
        self._headers = {"Authorization": aiohttp.encode_basic_auth(api_key, api_secret)}
        self.timeout_s, self.retries, self.backoff = timeout_s, max(0, retries), backoff
        self._session, self._own_session = session, session is None
        self.on_call = on_call

    async def __aenter__(self) -> CspClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _report(self, method: str, path: str, body: Any, status: int | None, answer: Any,
                      error: str | None) -> None:
        if self.on_call is not None:
            await self.on_call(method, path, body, status, answer, error)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One registry call with its retries. ``path`` (ids in it already quoted) starts with ``/v1/`` or
        ``/control/`` under the base URL, or with ``/dca/`` for the DCA (``/dca/v1/...`` is
        ``<dca_base_url>/v1/...``)."""
        base, rest = (self.dca_base_url, path[4:]) if path.startswith("/dca/") else (self.base_url, path)
        url = yarl.URL(f"{base}{rest}", encoded=True)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        attempt = 0
        while True:
            attempt += 1
            failure = await self._attempt(method, path, url, body, timeout)
            if not isinstance(failure, CspError):
                return failure
            if not failure.retryable or attempt > self.retries:
                raise failure
            await asyncio.sleep(jittered_backoff(attempt, *self.backoff))

    async def _attempt(self, method: str, path: str, url: yarl.URL, body: Any,
                       timeout: aiohttp.ClientTimeout) -> Any:
        """One attempt: the answer's JSON, or the CspError it failed with (retryable or not)."""
        try:
            async with self._client().request(method, url, json=body, headers=self._headers, timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            await self._report(method, path, body, None, None, "registry_timeout")
            return CspError("registry_timeout", f"The registry did not answer {method} {path} within "
                            f"{self.timeout_s:g} s.", None, retryable=True)
        except aiohttp.ClientError as exc:
            await self._report(method, path, body, None, None, "registry_unavailable")
            return CspError("registry_unavailable", f"The registry could not be reached for {method} {path}: "
                            f"{type(exc).__name__}.", None, retryable=True)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = None
        if 200 <= status < 300:
            if answer is None:
                await self._report(method, path, body, status, None, "registry_bad_answer")
                return CspError("registry_bad_answer", f"The registry's answer to {method} {path} is not JSON.",
                                status)
            await self._report(method, path, body, status, answer, None)
            return answer
        given = answer if isinstance(answer, dict) else {}
        description = str(given.get("description") or given.get("message") or f"HTTP {status}")
        if status >= 500 or status == 429:
            await self._report(method, path, body, status, answer, "registry_unavailable")
            return CspError("registry_unavailable", f"The registry answered {method} {path} with {status}: "
                            f"{description}", status, retryable=True)
        code = str(given.get("code") or "registry_rejected")
        await self._report(method, path, body, status, answer, code)
        return CspError(code, description, status)

    # brands
    async def register_brand(self, fields: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/v1/brand/nonBlocking", fields)

    async def get_brand(self, brand_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/brand/{_q(brand_id)}")

    async def update_brand(self, brand_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PUT", f"/v1/brand/{_q(brand_id)}", fields)

    async def revet_brand(self, brand_id: str) -> dict[str, Any]:
        return await self.call("PUT", f"/v1/brand/{_q(brand_id)}/revet")

    async def order_vetting(self, brand_id: str, evp_id: str = "AEGIS",
                            vetting_class: str = "STANDARD") -> dict[str, Any]:
        return await self.call("POST", f"/v1/brand/{_q(brand_id)}/externalVetting",
                               {"evpId": evp_id, "vettingClass": vetting_class})

    async def brand_feedback(self, brand_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/brand/feedback/{_q(brand_id)}")

    async def delete_brand(self, brand_id: str) -> dict[str, Any]:
        return await self.call("DELETE", f"/v1/brand/{_q(brand_id)}")

    # campaigns
    async def create_campaign(self, fields: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/v1/campaignBuilder", fields)

    async def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/campaign/{_q(campaign_id)}")

    async def share_campaign(self, campaign_id: str, cnp_id: str) -> dict[str, Any]:
        return await self.call("PUT", f"/v1/campaign/{_q(campaign_id)}/sharing/{_q(cnp_id)}")

    async def operation_status(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/v1/campaign/{_q(campaign_id)}/operationStatus")

    async def renew_campaign(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("PUT", f"/v1/campaign/{_q(campaign_id)}/renew")

    async def deactivate_campaign(self, campaign_id: str) -> dict[str, Any]:
        return await self.call("DELETE", f"/v1/campaign/{_q(campaign_id)}")

    # webhooks
    async def subscribe(self, category: str, url: str) -> dict[str, Any]:
        return await self.call("PUT", "/v1/webhook/subscription", {"eventCategory": category, "webhookEndpoint": url})

    async def subscriptions(self) -> list[dict[str, Any]]:
        """The subscriptions, one ``{"eventCategory", "webhookEndpoint"}`` per category."""
        return await self.call("GET", "/v1/webhook/subscription")

    async def unsubscribe(self, category: str) -> dict[str, Any]:
        return await self.call("DELETE", f"/v1/webhook/subscription/{_q(category)}")

    # the DCA's number association
    async def associate_numbers(self, campaign_id: str, numbers: list[str], reference_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/dca/v1/campaigns/{_q(campaign_id)}/numbers",
                               {"numbers": list(numbers), "referenceId": reference_id})

    async def disassociate_number(self, campaign_id: str, number: str) -> dict[str, Any]:
        return await self.call("DELETE", f"/dca/v1/campaigns/{_q(campaign_id)}/numbers/{_q(number)}")

    async def get_order(self, order_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/dca/v1/orders/{_q(order_id)}")

    # the simulator's control API (tests and the CLI)
    async def advance(self, days: float) -> dict[str, Any]:
        return await self.call("POST", "/control/advance", {"days": days})

    async def clock(self) -> dict[str, Any]:
        return await self.call("GET", "/control/clock")

    async def review_campaign(self, campaign_id: str, mno: str, status: str, description: str = "") -> dict[str, Any]:
        return await self.call("POST", f"/control/review/campaign/{_q(campaign_id)}",
                               {"mno": mno, "status": status, "description": description})

    async def review_brand(self, brand_id: str, identity_status: str, score: int | None) -> dict[str, Any]:
        return await self.call("POST", f"/control/review/brand/{_q(brand_id)}",
                               {"identityStatus": identity_status, "brandScore": score})

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change the named faults (the others stay as they are); answers all of them."""
        return await self.call("POST", "/control/faults", faults)

    async def faults(self) -> dict[str, Any]:
        return await self.call("GET", "/control/faults")

    async def events(self) -> list[dict[str, Any]]:
        """Every event the simulator generated, oldest first, each ``{"event", "delivered", "dropped", ...}``."""
        return (await self.call("GET", "/control/events"))["events"]

    async def redeliver(self) -> dict[str, Any]:
        return await self.call("POST", "/control/redeliver")
