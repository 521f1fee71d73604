"""The registry simulator's webhook sender and clock ticker.

The sender POSTs each event of the state's outbox, one at a time and in the outbox's order, to the URL subscribed
for the event's category then (none: the event stays undelivered, state ``unsubscribed``). Any answer but a 2xx,
a timeout or a connection error is tried again after a jittered exponential backoff, up to ``webhook_attempts``
attempts (then state ``failed``): at least once. With the ``webhook_duplicate_rate`` fault a delivered event is
POSTed a second time, with the same eventId. The ticker does the work that comes due on the clock in real time
(a brand's identity result ``score_delay_s`` after its registration, anything due after ``advance``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from registry.csp.client import jittered_backoff
from registry.csp.state import SimState

log = logging.getLogger(__name__)


class Background:
    """The sender and the ticker of one SimState, as two tasks between ``start`` and ``stop``."""

    def __init__(self, state: SimState):
        self.state = state
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.state.webhook_timeout_s))
        self._tasks = [asyncio.create_task(self._send_loop(), name="registry-sim-webhooks"),
                       asyncio.create_task(self._tick_loop(), name="registry-sim-clock")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.state.save()

    async def _tick_loop(self) -> None:
        state = self.state
        while True:
            state.due_changed.clear()
            wait = state.seconds_to_next_due()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(state.due_changed.wait(), timeout=1.0 if wait is None else min(wait, 1.0))
            if state.process_due():
                state.save()

    async def _send_loop(self) -> None:
        state = self.state
        while True:
            if not state.log.outbox:
                state.log.ready.clear()
                await state.log.ready.wait()
                continue
            record = state.log.outbox.popleft()
            await self.deliver(record)
            if not state.log.outbox:
                state.save()

    async def deliver(self, record: dict[str, Any]) -> None:
        """POST one event until a 2xx or out of attempts; then, by the duplicate fault's dice, once more."""
        state, event = self.state, record["event"]
        url = state.log.subscriptions.get(event["eventCategory"])
        if url is None:
            record["state"] = "unsubscribed"
            return
        record["state"] = "sending"
        for attempt in range(1, state.webhook_attempts + 1):
            if await self._post(record, url):
                record.update(state="delivered", delivered=True)
                rate = state.log.faults["webhook_duplicate_rate"]
                if rate > 0 and state.log.rng.random() < rate:
                    record["duplicates"] += 1
                    await self._post(record, url)
                return
            if attempt < state.webhook_attempts:
                await asyncio.sleep(jittered_backoff(attempt, *state.webhook_backoff))
        record["state"] = "delivered" if record["delivered"] else "failed"

    async def _post(self, record: dict[str, Any], url: str) -> bool:
        record["attempts"] += 1
        try:
            async with self._session.post(url, json=record["event"]) as resp:
                await resp.read()
                record.update(lastStatus=resp.status, lastError=None)
                return 200 <= resp.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            record.update(lastStatus=None, lastError=type(exc).__name__)
            log.info("registry simulator: event %s to its webhook failed: %s", record["event"]["eventId"],
                     type(exc).__name__)
            return False
