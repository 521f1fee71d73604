"""The gateway as a Campaign Service Provider: the requests it owes the registry, and the events it receives.

A request (register a brand, share a campaign, associate numbers, ...) is stored first (``RegistryRequest``, in
the transaction that changes the gateway's own state), then made through the ``CspClient`` (with its retries).
Its answer is applied in one transaction with the record of every call made for it (each attempt's method, path,
request, status and answer, never the credentials) in the entity's history. After a 5xx or a timeout on every
attempt the request stays pending and the reconciliation (gateway.tendlc.reconcile) sends it again later: nothing
is lost. A 4xx refuses it for good (``failed``), with the registry's code.

An answer is applied only when no event changed the same aspect while the call was on its way (the event is the
newer word: registry.events). Events are checked, stored and applied in one transaction before they are
acknowledged; a repeated eventId changes nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.backoff import backoff
from gateway.settings_registry import RegistrySettings
from gateway.tendlc import operations
from registry import events, states
from registry.csp.client import CspClient, CspError
from registry.db import utcnow
from registry.models import Brand, Campaign, NumberOrder, RegistryRequest

log = logging.getLogger(__name__)

CATEGORIES = ("BRAND", "CAMPAIGN", "VETTING", "NUMBER")
MODELS: dict[str, type] = {"brand": Brand, "campaign": Campaign, "order": NumberOrder}
MAX_RECORDED = 4000  # characters of a request or answer kept in the history
_CALLS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("registry_calls", default=None)


def events_token(secret: str) -> str:
    """The token in the event URL: an HMAC of the webhook secret, so the URL proves nothing else."""
    return hmac.new(secret.encode(), b"registry-events", hashlib.sha256).hexdigest()[:40]


def _clip(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= MAX_RECORDED else text[:MAX_RECORDED] + "..."


@dataclass
class Result:
    """How a request went: done (its answer applied), pending (to be sent again) or failed (refused)."""

    status: str
    request_id: int
    error: CspError | None = None


class Csp:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], client: CspClient, settings: RegistrySettings,
                 token: str, *, simulated: bool = False, events_base: str | None = None):
        self.sessions, self.client, self.settings, self.token = sessions, client, settings, token
        self.simulated = simulated  # the registry is the simulator: its control API answers
        self.on_campaigns: Callable[[set[int]], None] = lambda ids: None  # campaigns whose sending rules changed
        # where the registry reaches us: [registry] events_url, [server] public_url, or (neither set) the address
        # of the operator's first request that calls the registry
        self.events_base: str | None = (events_base or "").rstrip("/") or None
        self.subscribed: str | None = None  # the events URL the registry has
        self._in_flight: set[int] = set()
        client.on_call = self._on_call

    # --- calls and their record -------------------------------------------------------------------------------------
    async def _on_call(self, method: str, path: str, request: Any, status: int | None, answer: Any,
                       error: str | None) -> None:
        calls = _CALLS.get()
        if calls is not None:
            calls.append({"method": method, "path": path, "request": _clip(request), "status": status,
                          "answer": _clip(answer), "error": error})

    @staticmethod
    def record_calls(session: AsyncSession, entity: str, obj: Any, calls: list[dict[str, Any]]) -> None:
        for call in calls:
            outcome = call["status"] if call["status"] is not None else call["error"]
            states.record(session, entity, obj.id, obj.status, obj.status, "registry call",
                          f"{call['method']} {call['path']} -> {outcome}", call)

    async def calling(self, work: Callable[[], Any]) -> tuple[Any, CspError | None, list[dict[str, Any]]]:
        """Run ``work()`` (registry calls), collecting the record of every call: its answer (or the CspError it
        ended with) and that record."""
        calls: list[dict[str, Any]] = []
        token = _CALLS.set(calls)
        try:
            return await work(), None, calls
        except CspError as exc:
            return None, exc, calls
        finally:
            _CALLS.reset(token)

    # --- requests -----------------------------------------------------------------------------------------------------
    def lease(self) -> dt.datetime:
        """How long a request being sent is left alone by the reconciliation: all its attempts and then some."""
        return utcnow() + dt.timedelta(seconds=(self.settings.timeout_s + 5) * (self.settings.retries + 1) + 60)

    def request(self, session: AsyncSession, entity: str, entity_id: int, operation: str,
                body: dict[str, Any] | None = None) -> RegistryRequest:
        """A request stored in the caller's transaction (sent by ``send`` once that commits)."""
        row = RegistryRequest(entity=entity, entity_id=entity_id, operation=operation, status="pending",
                              body=json.dumps(body) if body is not None else None, next_try_at=self.lease())
        session.add(row)
        return row

    async def send(self, request_id: int) -> Result:
        """Make a stored request and store how it went."""
        if request_id in self._in_flight:
            return Result("pending", request_id)
        self._in_flight.add(request_id)
        try:
            return await self._send(request_id)
        finally:
            self._in_flight.discard(request_id)

    async def _send(self, request_id: int) -> Result:
        async with self.sessions() as session:
            req = await session.get(RegistryRequest, request_id)
            if req is None or req.status != "pending":
                return Result(req.status if req else "failed", request_id)
            op = operations.OPERATIONS[(req.entity, req.operation)]
            target = await session.get(MODELS[req.entity], req.entity_id)
            if target is None:
                return await self._finish(request_id, "failed", "its brand, campaign or order is gone")
            args = await op.arguments(session, target, json.loads(req.body) if req.body else {}, self.settings)
            marks = operations.marks(target)
        answer, error, calls = await self.calling(lambda: op.call(self.client, args))
        if error is not None:
            return await self._failed(request_id, error, calls)
        async with self.sessions() as session, session.begin():
            req = await session.get(RegistryRequest, request_id)
            target = await session.get(MODELS[req.entity], req.entity_id)
            self.record_calls(session, req.entity, target, calls)
            changed = await op.apply(session, target, answer, operations.marks(target) == marks, args)
            req.status, req.done_at, req.last_error = "done", utcnow(), None
        self.on_campaigns(changed)
        return Result("done", request_id)

    async def _failed(self, request_id: int, exc: CspError, calls: list[dict[str, Any]]) -> Result:
        async with self.sessions() as session, session.begin():
            req = await session.get(RegistryRequest, request_id)
            target = await session.get(MODELS[req.entity], req.entity_id)
            if target is not None:
                self.record_calls(session, req.entity, target, calls)
            req.attempts += 1
            req.last_error = f"{exc.code}: {exc.message}"
            if exc.retryable:
                pause = backoff(req.attempts, self.settings.reconcile_interval_s, 3600.0)
                req.next_try_at = utcnow() + dt.timedelta(seconds=pause)
                log.warning("registry request %d (%s %s) is pending: %s", request_id, req.entity, req.operation,
                            req.last_error)
                return Result("pending", request_id, exc)
            req.status, req.done_at = "failed", utcnow()
            changed = set()
            if target is not None:
                changed = await operations.OPERATIONS[(req.entity, req.operation)].refused(session, target, exc)
        self.on_campaigns(changed)
        return Result("failed", request_id, exc)

    async def _finish(self, request_id: int, status: str, why: str) -> Result:
        async with self.sessions() as session, session.begin():
            req = await session.get(RegistryRequest, request_id)
            req.status, req.done_at, req.last_error = status, utcnow(), why
        return Result(status, request_id)

    async def due(self, *, force: bool = False, limit: int = 100) -> list[int]:
        """The pending requests to send now (``force``: whatever their backoff), oldest first, leased to us."""
        async with self.sessions() as session, session.begin():
            stmt = select(RegistryRequest).where(RegistryRequest.status == "pending").with_for_update(skip_locked=True)
            if not force:
                stmt = stmt.where(RegistryRequest.next_try_at <= utcnow())
            rows = [r for r in (await session.scalars(stmt.order_by(RegistryRequest.id).limit(limit))).all()
                    if r.id not in self._in_flight]
            for row in rows:
                row.next_try_at = self.lease()
            return [r.id for r in rows]

    # --- events ------------------------------------------------------------------------------------------------------
    def events_url(self, base: str) -> str:
        return f"{base.rstrip('/')}/registry/events/{self.token}"

    async def subscribe(self, base: str | None = None) -> bool:
        """Have the registry post every category of events to us (once per URL); False when it cannot be told."""
        base = self.events_base or base
        if base is None:
            return False
        self.events_base = base
        url = self.events_url(base)
        if self.subscribed == url:
            return True
        try:
            for category in CATEGORIES:
                await self.client.subscribe(category, url)
        except CspError as exc:
            log.warning("the registry could not be subscribed to: %s (%s)", exc.message, exc.code)
            return False
        self.subscribed = url
        return True

    async def receive(self, data: dict[str, Any], payload: str) -> tuple[str, events.Outcome | None]:
        """Check, store and apply one event (events.EventError when it cannot be read); ``("duplicate", None)`` for
        an eventId stored before."""
        event = events.check(data)
        try:
            async with self.sessions() as session, session.begin():
                outcome = await events.store(session, event, payload)
        except IntegrityError:  # the same event stored at the same moment by another delivery
            return "duplicate", None
        if outcome is None:
            return "duplicate", None
        self.on_campaigns(outcome.campaigns)
        return outcome.outcome, outcome

    async def wait_for(self, model: type, ident: int, leave: tuple[str, ...], seconds: float) -> None:
        """Wait up to ``seconds`` for the row to leave the states ``leave`` (an event being applied)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            async with self.sessions() as session:
                status = await session.scalar(select(model.status).where(model.id == ident))
            if status not in leave:
                return
            await asyncio.sleep(0.05)

