"""The durable send queue and the receipt path.

Messages wait in the ``messages`` table (status ``queued``). The claim loop moves a batch to ``sending``
and submits each through a carrier, at most ``concurrency`` in flight. Outcomes and delivery receipts are
written by ONE writer task in batches, so that storing a submit result and matching a receipt never race:
a receipt that arrives before its submit_sm_resp is kept as unmatched and matched as soon as the part is
stored (and again by the periodic sweep). Every accepted message ends in exactly one final state.

The Dispatcher runs three tasks and wires the parts they use: the claim loop (gateway.sending.queue claims,
gateway.sending.sender paces and sends), the writer (outcomes from the sender, receipts through
gateway.sending.receipts, in one transaction) and the sweep (gateway.sending.sweep, with this instance's lease in
gateway.sending.leases).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import Receipt
from carriers.pool import CarrierPool
from gateway.cluster.coordination import new_instance_id
from gateway.metrics import Metrics
from gateway.metrics.activity import RECEIPTS
from gateway.sending import route_store
from gateway.sending.health import Health
from gateway.sending.leases import Leases
from gateway.sending.pacing import MemoryLimiter, RedisLimiter, SendWindows
from gateway.sending.policy import CampaignGate, PacingPolicy
from gateway.sending.queue import Queue, forget_reservations
from gateway.sending.receipts import ReceiptMatcher
from gateway.sending.routing import Route, Router
from gateway.sending.sender import Sender
from gateway.sending.sweep import Sweep
from gateway.settings import DispatcherSettings
from gateway.store.models import MessagePart, MessageStatus as S
from gateway.store.statements import insert_new
from gateway.webhooks.record import record as record_events
from registry.db import utcnow

PART_COLUMNS = ("carrier", "carrier_message_id", "carrier_id_norm", "attempts", "answer")


class Dispatcher:
    """Runs the claim loop, the writer and the sweep as tasks of the app; also the carriers' event sink."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pool: CarrierPool,
                 settings: DispatcherSettings, *, on_webhooks: Callable[[], None] = lambda: None,
                 receipt_id_bases: dict[str, str] | None = None, policy: PacingPolicy | None = None,
                 limiter: MemoryLimiter | RedisLimiter | None = None, instance_id: str | None = None,
                 routes: Sequence[Route] = (), health: Health | None = None, metrics: Metrics | None = None,
                 gate: CampaignGate | None = None):
        self._sm = sessionmaker
        metrics = metrics or Metrics()
        self.alerts = metrics.alerts  # a task's failure is an alert: an outage of the database gives one line
        self._activity = metrics.activity
        limiter = limiter or MemoryLimiter()
        self._shared_limits = isinstance(limiter, RedisLimiter)
        windows = SendWindows()
        self.instance_id = instance_id or new_instance_id()
        self._on_webhooks = on_webhooks
        self._settings = settings
        self._wakeup = asyncio.Event()
        self._write_signal = asyncio.Event()
        self._receipts: list[tuple[str, Receipt]] = []
        self._receipt_waiters: list[asyncio.Future] = []  # one per receipt in _receipts, resolved once stored
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()
        self._min_claim = max(1, min(settings.batch_size, settings.concurrency) // 4)
        self.stats = {"claimed": 0, "sent": 0, "retried": 0, "failed": 0, "receipts": 0, "unmatched": 0}
        self.queue = Queue(sessionmaker, pool, self.instance_id, policy, self.stats)
        self.leases = Leases(sessionmaker, settings, self.instance_id, self.notify)
        self.health = health
        self.router = Router(routes, pool, lookup=pool.lookup, sessionmaker=sessionmaker, health=health)
        self.sender = Sender(sessionmaker, pool, settings, self.queue, policy=policy, limiter=limiter,
                             windows=windows, stats=self.stats, wakeup=self._wakeup, write_signal=self._write_signal,
                             record=self._record, notify=self.notify, router=self.router, metrics=metrics,
                             gate=gate)
        self.gate = gate if gate is not None else (policy.gate if policy is not None else None)
        self.matcher = ReceiptMatcher(sessionmaker, settings, receipt_id_bases or {}, self.stats, self._record,
                                      metrics=metrics)
        self.sweeper = Sweep(sessionmaker, settings, leases=self.leases, matcher=self.matcher, limiter=limiter,
                             windows=windows, record=self._record, metrics=metrics)

    @property
    def paused(self) -> str | None:
        """Why sending is paused (the shared limits cannot be reached), or None."""
        return self.sender.paused

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        now = utcnow()
        async with self._sm() as session, session.begin():
            await self.leases.register(session, now)
            if not self._shared_limits:
                # pacing reservations lived in that process's memory: let those messages ask the limits again
                await forget_reservations(session)
        await route_store.reload(self._sm, self.router)  # the routes added through the API
        self._tasks = [asyncio.create_task(self._claim_loop(), name="dispatcher-claim"),
                       asyncio.create_task(self._writer_loop(), name="dispatcher-writer"),
                       asyncio.create_task(self._sweep_loop(), name="dispatcher-sweep")]

    async def stop(self) -> None:
        """Stop claiming, let sends in flight finish, write their outcomes. No task is cancelled inside a
        transaction (a cancelled SQLite connection could keep its write lock)."""
        self._stop.set()
        self._wakeup.set()
        self.sender.slot_freed.set()
        self._write_signal.set()
        await asyncio.wait([self._tasks[0]], timeout=15)
        if self.sender.inflight:
            await asyncio.wait(self.sender.inflight, timeout=10)
        self._write_signal.set()  # the writer writes what they left and ends
        await asyncio.wait(self._tasks[1:], timeout=15)
        for task in self._tasks:  # only reached if something hung
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush()  # whatever came in last
        with contextlib.suppress(Exception):  # a clean stop: what it held (nothing, normally) is free at once
            await self.leases.release()

    def notify(self) -> None:
        """A message was queued: wake the claim loop now rather than at the next poll."""
        self._wakeup.set()

    # --- CarrierEvents ---------------------------------------------------------------------------------------
    async def on_receipt(self, carrier: str, receipt: Receipt) -> None:
        """Returns once the receipt is stored (the carrier acknowledges it then); raises when it could not be,
        so that the carrier asks the SMSC to send it again rather than lose it."""
        if self.health is not None:
            self.health.receipt(carrier, receipt.stat)
        self._activity.count(carrier, RECEIPTS)
        stored = asyncio.get_running_loop().create_future()
        self._receipts.append((carrier, receipt))
        self._receipt_waiters.append(stored)
        self._write_signal.set()
        await stored

    # --- the claim loop: claim, then pace and send -----------------------------------------------------------
    async def _claim_loop(self) -> None:
        poll = self._settings.poll_interval_ms / 1000
        while not self._stop.is_set():
            free = self._settings.concurrency - len(self.sender.inflight)
            # every slot busy, or so many that a claim would fetch a handful: go on when more have finished
            # (one claim transaction per few messages costs more than the sends it feeds)
            if free <= 0 or (free < self._min_claim and len(self.sender.inflight) >= self._min_claim):
                self.sender.slot_freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # the poll bounds the wait, whatever happens
                    await asyncio.wait_for(self.sender.slot_freed.wait(), poll)
                continue
            limit = min(self._settings.batch_size, free)
            try:
                batch = await self.queue.claim(limit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self.alerts.failed("claiming queued messages", exc)
                batch = []
                await asyncio.sleep(poll)
            try:
                await self.sender.pace(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self.alerts.failed("pacing a batch (its messages are queued again)", exc)
                await self.queue.requeue([{"id": b.id, "status": S.QUEUED.value, "attempts": b.attempts - 1,
                                          "paced": False, "claimed_by": None} for b in batch])
            if len(batch) == limit:
                continue  # there may be more due right now
            if not self._stop.is_set():
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll)

    # --- the writer ------------------------------------------------------------------------------------------
    async def _writer_loop(self) -> None:
        pause = self._settings.receipt_batch_ms / 1000
        while not self._stop.is_set() or self.sender.inflight:
            await self._write_signal.wait()
            await asyncio.sleep(pause)  # let a batch gather
            self._write_signal.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self.alerts.failed("writing send outcomes and receipts (tried again)", exc)
                self._write_signal.set()
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        outcomes, self.sender.outcomes = self.sender.outcomes, []
        part_rows, self.sender.part_rows = self.sender.part_rows, []
        receipts, self._receipts = self._receipts, []
        waiters, self._receipt_waiters = self._receipt_waiters, []
        if not outcomes and not receipts and not part_rows:
            return
        try:
            async with self._sm() as session, session.begin():
                if part_rows:  # before the outcomes: a message is `sent` only with all its parts
                    # a part's answer is written whether or not an earlier attempt wrote the part
                    await session.execute(insert_new(session, MessagePart, ("message_id", "seq"),
                                                     update=PART_COLUMNS), part_rows)
                parts = await self.sender.write_outcomes(session, outcomes)
                await self.matcher.apply(session, receipts)
                if self.matcher.unmatched:  # receipts that came before these parts
                    norms = {r["carrier_id_norm"] for r in part_rows if r["carrier_id_norm"]}
                    norms.update(r["carrier_id_norm"] for r in parts)
                    if norms:
                        await self.matcher.rematch(session, norms)
        except BaseException as exc:
            # put the outcomes back: nothing is lost; the receipts are refused, and the SMSC sends them again
            self.sender.outcomes[:0] = outcomes
            self.sender.part_rows[:0] = part_rows
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RuntimeError(f"storing the receipt failed: {type(exc).__name__}"))
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _record(self, session: AsyncSession, events: list[dict]) -> None:
        if await record_events(session, events):
            # after the commit would be exact; a wake-up a moment early only finds nothing due yet
            self._on_webhooks()

    # --- the sweep -------------------------------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 2.0)
            if self._stop.is_set():
                return
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self.alerts.failed("the sweep", exc)

    async def sweep(self) -> None:
        """One sweep now (see gateway.sending.sweep), and the routes other instances stored read again."""
        await self.sweeper.run()
        await route_store.reload(self._sm, self.router)
