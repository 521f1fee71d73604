"""The durable send queue and the receipt path.

Messages wait in the ``messages`` table (status ``queued``). The claim loop moves a batch to ``sending``
and submits each through a carrier, at most ``concurrency`` in flight. Outcomes and delivery receipts are
written by ONE writer task in batches, so that storing a submit result and matching a receipt never race:
a receipt that arrives before its submit_sm_resp is kept as unmatched and matched as soon as the part is
stored (and again by the periodic sweep). Every accepted message ends in exactly one final state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import (
    Carrier,
    CarrierError,
    CarrierRejected,
    CarrierRetryable,
    OutboundSms,
    PartResult,
    Receipt,
    Segment,
)
from carriers.encoding import encode
from carriers.ids import RECEIPT_ID_BASES, normalize_message_id, receipt_lookup_id
from carriers.pool import CarrierPool
from gateway.backoff import backoff
from gateway.cluster.coordination import new_instance_id
from gateway.sending.pacing import SEND_GUARD_S, LimiterUnavailable, MemoryLimiter, RedisLimiter, SendWindows
from gateway.sending.policy import PacingPolicy
from gateway.settings import DispatcherSettings
from gateway.store.models import (
    GatewayInstance,
    Message,
    MessagePart,
    MessageStatus as S,
    UnmatchedReceipt,
)
from gateway.store.statements import chunks, insert_new, update_by_id
from gateway.webhooks import catalog as ev
from gateway.webhooks.record import record as record_events
from registry.db import utcnow

log = logging.getLogger(__name__)

# receipts of one carrier that matched nothing but would under another receipt_id_base: warned about once this
# many of them came within BASE_WARNING_S, and then at most once every BASE_WARNING_S per carrier
BASE_MISMATCHES, BASE_WARNING_S = 5, 300.0
# the sweep matches again the receipts of this last while (a part stored by another instance while the receipt
# was being stored); older ones are matched when their part is written, through the index on lookup_id
REMATCH_RECENT = dt.timedelta(minutes=10)
PART_COLUMNS = ("carrier", "carrier_message_id", "carrier_id_norm", "attempts", "answer")


@dataclass(slots=True)
class _Claimed:
    id: int
    account_id: int
    source: str
    destination: str
    body: str
    attempts: int
    expires_at: dt.datetime
    segments: int
    paced: bool
    next_attempt_at: dt.datetime


@dataclass(slots=True)
class _Outcome:
    message_id: int
    account_id: int
    kind: str  # sent | retry | failed
    carrier: str | None = None
    carrier_ids: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    expires_at: dt.datetime | None = None
    source: str = ""
    at: dt.datetime = field(default_factory=utcnow)


def _error_code(exc: CarrierError) -> str:
    """The stable code of a carrier's refusal: the SMPP command_status of a permanent one."""
    if isinstance(exc, CarrierRejected) and exc.command_status is not None:
        return f"smpp_{exc.command_status:#04x}"
    return exc.code


def _receipt_error(parts: list[Any], stat: str) -> str:
    """The sentence for a message that a receipt ended badly: what happened, the receipt's stat and err, and
    for a multipart message which part (the first of the worst)."""
    part = min((p for p in parts if p.stat == stat), key=lambda p: p.seq)
    err = f", err {part.error_code}" if part.error_code else ""
    what = f"{ev.RECEIPT_SENTENCES[stat]} (receipt stat {stat}{err})."
    return f"Part {part.seq} of {len(parts)}: {what[0].lower()}{what[1:]}" if len(parts) > 1 else what


class Dispatcher:
    """Runs the claim loop, the writer and the sweep as tasks of the app; also the carriers' event sink."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pool: CarrierPool,
                 settings: DispatcherSettings, *, on_webhooks: Callable[[], None] = lambda: None,
                 receipt_id_bases: dict[str, str] | None = None, policy: PacingPolicy | None = None,
                 limiter: MemoryLimiter | RedisLimiter | None = None, instance_id: str | None = None):
        self._sm = sessionmaker
        self._policy = policy
        self._limiter = limiter or MemoryLimiter()
        self._shared_limits = isinstance(self._limiter, RedisLimiter)
        self._windows = SendWindows()
        self.instance_id = instance_id or new_instance_id()
        self.paused: str | None = None  # why sending is paused (the shared limits cannot be reached)
        self._id_bases = receipt_id_bases or {}
        self._on_webhooks = on_webhooks
        self._pool = pool
        self._settings = settings
        self._wakeup = asyncio.Event()
        self._write_signal = asyncio.Event()
        self._outcomes: list[_Outcome] = []
        self._part_rows: list[dict] = []  # the answers to parts of multipart messages, written as they come
        self._receipts: list[tuple[str, Receipt]] = []
        self._receipt_waiters: list[asyncio.Future] = []  # one per receipt in _receipts, resolved once stored
        self._inflight: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._unmatched = True  # there may be unmatched receipts in the table
        # carrier -> (when its count began, receipt_id_base -> unmatched receipts that would match under it)
        self._base_fits: dict[str, tuple[float, collections.Counter[str]]] = {}
        self._base_warned: dict[str, float] = {}  # carrier -> when the gateway last warned about its base
        self._base_checked = 0  # the last unmatched receipt looked at for another receipt_id_base
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._min_claim = max(1, min(settings.batch_size, settings.concurrency) // 4)
        self._next_receipt_check = 0.0
        self._claim_sql = self._claim_statement()
        self.stats = {"claimed": 0, "sent": 0, "retried": 0, "failed": 0, "receipts": 0, "unmatched": 0}

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        now = utcnow()
        async with self._sm() as session, session.begin():
            session.add(self._instance_row(now))
            if session.bind.dialect.name == "sqlite":
                # one process owns an embedded database: whatever is still `sending` was in flight when an
                # earlier process died; send it again (at-least-once to the carrier)
                await session.execute(update(Message).where(Message.status == S.SENDING.value)
                                      .values(status=S.QUEUED.value, claimed_by=None)
                                      .execution_options(synchronize_session=False))
            else:  # several instances may share the queue: take back only what dead instances held
                await self._recover(session, now)
            if not self._shared_limits:
                # pacing reservations lived in that process's memory: let those messages ask the limits again
                await self._forget_reservations(session)
        self._tasks = [asyncio.create_task(self._claim_loop(), name="dispatcher-claim"),
                       asyncio.create_task(self._writer_loop(), name="dispatcher-writer"),
                       asyncio.create_task(self._sweep_loop(), name="dispatcher-sweep")]

    def _instance_row(self, now: dt.datetime) -> GatewayInstance:
        return GatewayInstance(id=self.instance_id, host=socket.gethostname()[:255], pid=os.getpid(),
                               started_at=now, heartbeat_at=now)

    async def _recover(self, session: AsyncSession, now: dt.datetime) -> int:
        """Queue again the messages that instances without a fresh heartbeat left in `sending`."""
        cutoff = now - dt.timedelta(seconds=self._settings.lease_s)
        alive = select(GatewayInstance.id).where(GatewayInstance.heartbeat_at > cutoff)
        result = await session.execute(
            update(Message).where(Message.status == S.SENDING.value,
                                  or_(Message.claimed_by.is_(None), Message.claimed_by.not_in(alive)))
            .values(status=S.QUEUED.value, claimed_by=None, updated_at=now)
            .execution_options(synchronize_session=False))
        if result.rowcount:
            log.warning("%d message(s) held by a stopped instance queued again", result.rowcount)
            self.notify()
        await session.execute(delete(GatewayInstance).where(
            GatewayInstance.heartbeat_at < now - dt.timedelta(seconds=10 * self._settings.lease_s)))
        return result.rowcount

    @staticmethod
    async def _forget_reservations(session: AsyncSession) -> None:
        await session.execute(update(Message).where(Message.paced.is_(True), Message.status == S.QUEUED.value)
                              .values(paced=False).execution_options(synchronize_session=False))

    async def _heartbeat(self) -> None:
        now = utcnow()
        async with self._sm() as session, session.begin():
            beat = await session.execute(update(GatewayInstance).where(GatewayInstance.id == self.instance_id)
                                         .values(heartbeat_at=now))
            if not beat.rowcount:  # removed as dead while it was stalled: register again
                session.add(self._instance_row(now))
            if session.bind.dialect.name != "sqlite":
                await self._recover(session, now)

    async def stop(self) -> None:
        """Stop claiming, let sends in flight finish, write their outcomes. No task is cancelled inside a
        transaction (a cancelled SQLite connection could keep its write lock)."""
        self._stop.set()
        self._wakeup.set()
        self._slot_freed.set()
        self._write_signal.set()
        await asyncio.wait([self._tasks[0]], timeout=15)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        self._write_signal.set()  # the writer writes what they left and ends
        await asyncio.wait(self._tasks[1:], timeout=15)
        for task in self._tasks:  # only reached if something hung
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush()  # whatever came in last
        with contextlib.suppress(Exception):  # a clean stop: what it held (nothing, normally) is free at once
            async with self._sm() as session, session.begin():
                await session.execute(delete(GatewayInstance).where(GatewayInstance.id == self.instance_id))

    def notify(self) -> None:
        """A message was queued: wake the claim loop now rather than at the next poll."""
        self._wakeup.set()

    # --- CarrierEvents ---------------------------------------------------------------------------------------
    async def on_receipt(self, carrier: str, receipt: Receipt) -> None:
        """Returns once the receipt is stored (the carrier acknowledges it then); raises when it could not be,
        so that the carrier asks the SMSC to send it again rather than lose it."""
        stored = asyncio.get_running_loop().create_future()
        self._receipts.append((carrier, receipt))
        self._receipt_waiters.append(stored)
        self._write_signal.set()
        await stored

    # --- claim and send --------------------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        poll = self._settings.poll_interval_ms / 1000
        while not self._stop.is_set():
            free = self._settings.concurrency - len(self._inflight)
            # every slot busy, or so many that a claim would fetch a handful: go on when more have finished
            # (one claim transaction per few messages costs more than the sends it feeds)
            if free <= 0 or (free < self._min_claim and len(self._inflight) >= self._min_claim):
                self._slot_freed.clear()
                with contextlib.suppress(asyncio.TimeoutError):  # the poll bounds the wait, whatever happens
                    await asyncio.wait_for(self._slot_freed.wait(), poll)
                continue
            limit = min(self._settings.batch_size, free)
            try:
                batch = await self._claim(limit)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming queued messages failed; retrying")
                batch = []
                await asyncio.sleep(poll)
            try:
                await self._pace(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pacing a batch failed; its messages are queued again")
                await self._requeue([{"id": b.id, "status": S.QUEUED.value, "attempts": b.attempts - 1,
                                      "paced": False, "claimed_by": None} for b in batch])
            if len(batch) == limit:
                continue  # there may be more due right now
            if not self._stop.is_set():
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll)

    def _claim_statement(self):  # noqa: ANN202
        """The claim as one statement with bound parameters (now, early, limit), built once: building it costs
        more than SQLite takes to run it. FOR UPDATE SKIP LOCKED lets PostgreSQL instances claim side by side;
        SQLite, with its one writer, renders none (as in _rematch)."""
        m = Message.__table__.c
        # one range of the queue index (status, next_attempt_at, id), read in its order: the LIMIT stops the scan
        # after ``limit`` rows, where ORDER BY id alone would collect and sort the whole due backlog
        due = (select(m.id).where(m.status == S.QUEUED.value, m.next_attempt_at <= bindparam("early"),
                                  or_(m.next_attempt_at <= bindparam("now"), m.paced.is_(True)))
               .order_by(m.next_attempt_at, m.id).limit(bindparam("limit")).with_for_update(skip_locked=True))
        return (update(Message.__table__).where(m.id.in_(due.scalar_subquery()))
                .values(status=S.SENDING.value, attempts=m.attempts + 1, updated_at=bindparam("claimed_at"),
                        claimed_by=self.instance_id)
                .returning(m.id, m.account_id, m.source, m.destination, m.body, m.attempts, m.expires_at,
                           m.segments, m.paced, m.next_attempt_at))

    async def _claim(self, limit: int) -> list[_Claimed]:
        if limit <= 0 or not self._pool.ready:
            return []
        now = utcnow()
        # a message with a reserved slot is taken up to one horizon early and sent exactly at its slot
        early = now + dt.timedelta(seconds=self._policy.settings.horizon_s if self._policy else 0.0)
        async with self._sm() as session, session.begin():
            rows = (await session.execute(self._claim_sql, {"now": now, "early": early, "limit": limit,
                                                            "claimed_at": now})).all()
        self.stats["claimed"] += len(rows)
        claimed = [_Claimed(*row) for row in rows]
        claimed.sort(key=lambda c: c.id)
        return claimed

    async def _pace(self, batch: list[_Claimed]) -> None:
        """Send each claimed message now, at its reserved slot, or put it back in the queue for later."""
        policy = self._policy
        if policy is not None and batch:
            await policy.prepare({b.account_id for b in batch}, {b.source for b in batch if not b.paced})
        horizon = policy.settings.horizon_s if policy is not None else 0.0
        now = time.time()
        later: list[dict] = []
        slots: dict[int, float | None] = {}
        if policy is not None:
            asking = [item for item in batch if not item.paced]
            try:
                reserved = await self._limiter.reserve_many(
                    [(policy.limits(item.account_id, item.source, item.destination), item.segments,
                      max(item.expires_at.timestamp() - now, 0.0)) for item in asking], now)
            except LimiterUnavailable as exc:
                # the shared limits cannot be reached: send nothing that needs them (never exceed a limit);
                # those messages wait in the queue and the dispatcher asks again shortly
                if self.paused is None:
                    log.warning("sending paused: the shared limits cannot be reached (%s)", exc)
                self.paused = "limits_unreachable"
                retry = dt.datetime.fromtimestamp(now + 1.0, dt.timezone.utc)
                later.extend({"id": item.id, "status": S.QUEUED.value, "attempts": item.attempts - 1,
                              "paced": False, "next_attempt_at": retry, "claimed_by": None} for item in asking)
                batch = [item for item in batch if item.paced]
                reserved = []
                asking = []
            else:
                if self.paused is not None:
                    log.warning("sending resumed: the shared limits answer again")
                    self.paused = None
                    # reservations taken before the outage may be gone with a restarted Redis: take new ones
                    async with self._sm() as session, session.begin():
                        await self._forget_reservations(session)
            slots = {item.id: at for item, at in zip(asking, reserved)}
        # a multipart message tried before may have parts the carrier took: only the others go again (one query
        # per claim, and only when there are such messages: none for a single-part message)
        known = await self._known_parts([b.id for b in batch if b.segments > 1 and b.attempts > 1])
        for item in batch:
            at = item.next_attempt_at.timestamp() if item.paced else now
            if policy is not None and not item.paced:
                at = slots[item.id]
                if at is None:  # no slot before it expires: it waits, and the sweep expires it
                    later.append({"id": item.id, "status": S.QUEUED.value, "attempts": item.attempts - 1,
                                  "paced": False, "next_attempt_at": item.expires_at, "claimed_by": None})
                    continue
                if at - now > horizon:  # its slot is reserved; it waits in the queue until then
                    later.append({"id": item.id, "status": S.QUEUED.value, "attempts": item.attempts - 1,
                                  "paced": True, "claimed_by": None,
                                  "next_attempt_at": dt.datetime.fromtimestamp(at, dt.timezone.utc)})
                    continue
            # at most ``concurrency`` in flight: the claim took no more than the free places (_inflight)
            task = asyncio.create_task(self._send(item, delay=at - now, slot=at if policy is not None else None,
                                                  parts=known.get(item.id)))
            self._inflight.add(task)
            task.add_done_callback(self._sent)
        if later:
            await self._requeue(later)
            slots = [row["next_attempt_at"].timestamp() for row in later if row["paced"]]
            if slots:  # wake the claim loop when the first reserved slot is a horizon away, not at the next poll
                delay = max(0.0, min(slots) - horizon - time.time())
                asyncio.get_running_loop().call_later(delay, self._wakeup.set)

    def _sent(self, task: asyncio.Task) -> None:
        # the claim loop counts free slots from _inflight: it is woken only once the task has left it (woken by
        # _send itself, it could count sends that have just ended as busy and wait for a wake-up none will give)
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _known_parts(self, message_ids: list[int]) -> dict[int, dict[int, Any]]:
        """message id -> part number -> that part's row (carrier, carrier_message_id, attempts)."""
        known: dict[int, dict[int, Any]] = {}
        for chunk in chunks(message_ids):
            async with self._sm() as session:
                for row in (await session.execute(
                    select(MessagePart.message_id, MessagePart.seq, MessagePart.carrier,
                           MessagePart.carrier_message_id, MessagePart.attempts)
                    .where(MessagePart.message_id.in_(chunk)))).all():
                    known.setdefault(row.message_id, {})[row.seq] = row
        return known

    async def _requeue(self, rows: list[dict]) -> None:
        async with self._sm() as session, session.begin():
            await update_by_id(session, Message.__table__, rows)

    async def _wait_for_slot(self, item: _Claimed, slot: float) -> None:
        """Sleep until the message's reserved slot, then until what this process sent in the last second leaves
        room for it under each of its limits (see SendWindows): sends that come late together never put more
        into a carrier's second than it takes."""
        assert self._policy is not None
        delay = slot - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        limits = self._policy.limits(item.account_id, item.source, item.destination)
        if self._shared_limits:  # the window counts the sends of every instance
            assert isinstance(self._limiter, RedisLimiter)
            try:
                while True:
                    now = time.time()
                    if now % 1 > 1 - SEND_GUARD_S:  # too close to the next second: go in that one
                        await asyncio.sleep(1 - now % 1 + 0.001)
                    wait, second = await self._limiter.take_send(limits, item.segments)
                    if wait > 0:
                        self.stats["held"] = self.stats.get("held", 0) + 1
                        await asyncio.sleep(wait)
                    elif int(time.time() + SEND_GUARD_S) == second:
                        break
                    else:
                        # its second is (nearly) over after a busy moment: the carrier would count it in the
                        # next, so it takes a place there (the one it leaves only makes that second less full)
                        self.stats["retaken"] = self.stats.get("retaken", 0) + 1
            except LimiterUnavailable as exc:
                raise CarrierRetryable(f"The shared limits cannot be reached: {exc}",
                                       code="limits_unreachable") from None
            return
        while (wait := self._windows.wait(limits, item.segments, time.time())) > 0:
            self.stats["held"] = self.stats.get("held", 0) + 1
            await asyncio.sleep(wait)
        self._windows.record(limits, item.segments, time.time())

    async def _send(self, item: _Claimed, delay: float = 0.0, slot: float | None = None,
                    parts: dict[int, Any] | None = None) -> None:
        outcome = _Outcome(item.id, item.account_id, "retry", attempts=item.attempts, expires_at=item.expires_at,
                           source=item.source)
        try:
            if slot is not None:
                await self._wait_for_slot(item, slot)
            elif delay > 0:
                await asyncio.sleep(delay)
            carrier = self._pool.pick(next((p.carrier for p in parts.values() if p.carrier_message_id), None)
                                      if parts else None)
            if carrier is None:
                outcome.error_code, outcome.error_message = "no_carrier", "No carrier is connected."
            else:
                encoded = encode(item.body)
                sms = OutboundSms(source=item.source, destination=item.destination,
                                  data_coding=encoded.data_coding,
                                  segments=tuple(Segment(p) for p in encoded.segments),
                                  reference=item.id & 0xFFFF)
                if item.segments == 1:
                    outcome.carrier_ids = (await carrier.send_sms(sms)).message_ids
                else:
                    await self._send_parts(item, carrier, sms, parts or {})
                outcome.kind, outcome.carrier, outcome.at = "sent", carrier.name, utcnow()
        except CarrierRetryable as exc:
            outcome.error_code, outcome.error_message = exc.code, str(exc)
            if exc.code in ("throttled", "queue_full") and self._policy is not None:
                # the carrier says slow down although its limit was kept: give this sender a pause
                with contextlib.suppress(LimiterUnavailable):
                    await self._limiter.penalize(f"num:{item.source}", self._policy.settings.throttle_penalty_s,
                                                 time.time())
        except CarrierRejected as exc:
            outcome.kind, outcome.error_code, outcome.error_message = "failed", _error_code(exc), str(exc)
        except Exception as exc:  # a bug or an unexpected carrier error: retry, never lose the message
            log.exception("sending message %s failed unexpectedly", item.id)
            outcome.error_code, outcome.error_message = "internal_error", type(exc).__name__
        self._outcomes.append(outcome)
        self._write_signal.set()

    async def _send_parts(self, item: _Claimed, carrier: Carrier, sms: OutboundSms, known: dict[int, Any]) -> None:
        """Submit the parts of a multipart message that the carrier has not taken yet, each on its own, and
        queue each answer for writing as it comes: an accepted part is never submitted again, not even after a
        crash between parts. Returns when every part is accepted; raises the refusal of a part otherwise:
        CarrierRejected (the message fails, nothing is resent) before CarrierRetryable (the refused parts go
        again after the pause, with the same reference and part numbers)."""
        total = carrier.submit_count(sms)
        todo = [seq for seq in range(1, total + 1) if seq not in known or not known[seq].carrier_message_id]
        refused: list[PartResult] = []
        last: dict | None = None  # the last answer is written with the message's outcome (in one transaction,
        # so that no receipt of that part can be applied while the message is not yet `sent`)

        def answered(answer: PartResult) -> None:
            nonlocal last
            if last is not None:
                self._part_rows.append(last)
                self._write_signal.set()
            prior = known.get(answer.seq)
            last = {"message_id": item.id, "seq": answer.seq, "carrier": carrier.name,
                    "carrier_message_id": answer.message_id,
                    "carrier_id_norm": normalize_message_id(answer.message_id) if answer.message_id else None,
                    "attempts": prior.attempts + 1 if prior is not None else 1,
                    "answer": "accepted" if answer.error is None else _error_code(answer.error)}
            if answer.error is not None:
                refused.append(answer)

        done: set[int] = set()
        try:
            try:
                async for answer in carrier.send_parts(sms, todo):
                    done.add(answer.seq)
                    answered(answer)
            except CarrierError as exc:  # no answer for the parts left (not bound, say): each refused so
                for seq in todo:
                    if seq not in done:
                        answered(PartResult(seq, error=exc))
        finally:
            if last is not None:
                self._part_rows.append(last)
        if not refused:
            return
        first = min(refused, key=lambda a: (not isinstance(a.error, CarrierRejected), a.seq))
        exc = first.error
        taken = [seq for seq in range(1, total + 1) if seq not in {a.seq for a in refused}]
        note = f" (part(s) {', '.join(map(str, taken))} accepted)" if taken else ""
        raise type(exc)(f"Part {first.seq} of {total}: {exc}{note}", code=exc.code,
                        command_status=exc.command_status)

    def _retry_at(self, attempts: int, now: dt.datetime) -> dt.datetime:
        low, high = self._settings.retry_min_ms, self._settings.retry_max_ms
        return now + dt.timedelta(milliseconds=backoff(attempts, low, high, jitter=0.2))

    # --- the writer ------------------------------------------------------------------------------------------
    async def _writer_loop(self) -> None:
        pause = self._settings.receipt_batch_ms / 1000
        while not self._stop.is_set() or self._inflight:
            await self._write_signal.wait()
            await asyncio.sleep(pause)  # let a batch gather
            self._write_signal.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing outcomes failed; will retry")
                self._write_signal.set()
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        part_rows, self._part_rows = self._part_rows, []
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
                await self._write_outcomes(session, outcomes)
                await self._apply_receipts(session, receipts)
                if self._unmatched and (outcomes or part_rows):  # receipts that came before these parts
                    await self._rematch(session, {(r["carrier"], r["carrier_id_norm"]) for r in part_rows
                                                  if r["carrier_id_norm"]}
                                        | {(o.carrier, normalize_message_id(cid)) for o in outcomes
                                           for cid in o.carrier_ids})
        except BaseException as exc:
            # put the outcomes back: nothing is lost; the receipts are refused, and the SMSC sends them again
            self._outcomes[:0] = outcomes
            self._part_rows[:0] = part_rows
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(RuntimeError(f"storing the receipt failed: {type(exc).__name__}"))
            raise
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _write_outcomes(self, session: AsyncSession, outcomes: list[_Outcome]) -> None:
        if not outcomes:
            return
        now = utcnow()
        msg_updates, parts, events = [], [], []
        for o in outcomes:
            if o.kind == "sent":
                self.stats["sent"] += 1
                msg_updates.append({"id": o.message_id, "status": S.SENT.value, "carrier": o.carrier,
                                    "sent_at": o.at, "updated_at": now, "error_code": None,
                                    "error_message": None})
                parts.extend({"message_id": o.message_id, "seq": i + 1, "carrier": o.carrier,
                              "carrier_message_id": cid, "carrier_id_norm": normalize_message_id(cid),
                              "attempts": o.attempts, "answer": "accepted"}
                             for i, cid in enumerate(o.carrier_ids))
                events.append((o, ev.TEXT_SENT, S.SENT, None))
            elif o.kind == "failed":
                self.stats["failed"] += 1
                msg_updates.append({"id": o.message_id, "status": S.FAILED.value, "error_code": o.error_code,
                                    "error_message": o.error_message, "updated_at": now, "done_at": now})
                events.append((o, ev.TEXT_CARRIER_UNREACHABLE, S.FAILED, o.error_code))
            else:
                self.stats["retried"] += 1
                at = self._retry_at(o.attempts, now)
                if o.expires_at is not None and at >= o.expires_at:
                    msg_updates.append({"id": o.message_id, "status": S.EXPIRED.value, "error_code": "ttl_expired",
                                        "error_message": f"Time to live ran out while retrying ({o.error_code}).",
                                        "updated_at": now, "done_at": now})
                    events.append((o, ev.TEXT_TTL_EXPIRED, S.EXPIRED, "ttl_expired"))
                else:
                    msg_updates.append({"id": o.message_id, "status": S.QUEUED.value, "next_attempt_at": at,
                                        "error_code": o.error_code, "error_message": o.error_message,
                                        "updated_at": now, "paced": False})
        await update_by_id(session, Message.__table__, msg_updates)  # it groups the rows by the columns they set
        # a single-part message's part is written with its outcome (a multipart message's parts as they come)
        resent = [o.message_id for o in outcomes if o.kind == "sent" and o.attempts > 1 and o.carrier_ids]
        if resent:  # parts of a superseded attempt (a crash between submit and write): the new ones replace them
            await session.execute(delete(MessagePart).where(MessagePart.message_id.in_(resent)))
        if parts:
            await session.execute(insert(MessagePart.__table__), parts)
        await self._record(session, [
            {"message_id": o.message_id, "account_id": o.account_id, "type": t, "status": s.value,
             "error_code": code, "created_at": now} for o, t, s, code in events])
        if any(o.kind == "retry" for o in outcomes):
            self.notify()

    async def _apply_receipts(self, session: AsyncSession, receipts: list[tuple[str, Receipt]],
                              unmatched_ids: dict[int, int] | None = None) -> None:
        """Apply receipts to their parts; keep those that match nothing. ``unmatched_ids`` maps a receipt's
        index to the unmatched row it came from (deleted once applied)."""
        if not receipts:
            return
        self.stats["receipts"] += len(receipts) if unmatched_ids is None else 0
        lookups = [receipt_lookup_id(r.carrier_message_id, self._id_bases.get(carrier, "same"))
                   for carrier, r in receipts]
        by_norm: dict[tuple[str, str], tuple[int, int, str | None]] = {}
        for chunk in chunks(sorted(set(lookups))):
            for row in (await session.execute(
                select(MessagePart.id, MessagePart.message_id, MessagePart.carrier, MessagePart.carrier_id_norm,
                       MessagePart.stat).where(MessagePart.carrier_id_norm.in_(chunk))
            )).all():
                by_norm[(row.carrier, row.carrier_id_norm)] = (row.id, row.message_id, row.stat)
        now = utcnow()
        part_updates: dict[int, dict] = {}
        touched: set[int] = set()
        unmatched, applied_rows = [], []
        for idx, ((carrier, receipt), lookup) in enumerate(zip(receipts, lookups)):
            hit = by_norm.get((carrier, lookup))
            if hit is None:
                if unmatched_ids is None:
                    unmatched.append((carrier, receipt, lookup))
                continue
            part_id, message_id, old_stat = hit
            if unmatched_ids is not None:
                applied_rows.append(unmatched_ids[idx])
            if old_stat in ev.SEVERITY:  # already final: a duplicate receipt changes nothing
                continue
            stat = receipt.stat.upper()
            part_updates[part_id] = {"id": part_id, "stat": stat, "error_code": receipt.error_code,
                                     "done_at": receipt.done_at or now}
            if stat in ev.SEVERITY:
                touched.add(message_id)
                by_norm[(carrier, lookup)] = (part_id, message_id, stat)  # a later duplicate in this batch is ignored
        if part_updates:
            await update_by_id(session, MessagePart.__table__, list(part_updates.values()))
        if touched:
            await self._finish_messages(session, sorted(touched), now)
        if unmatched:
            self.stats["unmatched"] += len(unmatched)
            for carrier, receipt, _lookup in unmatched:
                log.info("receipt for unknown message id %s from %s kept for later matching",
                         receipt.carrier_message_id, carrier)
            await session.execute(insert(UnmatchedReceipt), [
                {"carrier": carrier, "carrier_message_id": receipt.carrier_message_id, "lookup_id": lookup,
                 "stat": receipt.stat.upper(), "error_code": receipt.error_code, "raw": receipt.raw[:1000],
                 "received_at": now} for carrier, receipt, lookup in unmatched])
            self._unmatched = True
        if applied_rows:
            await session.execute(delete(UnmatchedReceipt).where(UnmatchedReceipt.id.in_(applied_rows)))

    async def _finish_messages(self, session: AsyncSession, message_ids: list[int], now: dt.datetime) -> None:
        parts: dict[int, list[Any]] = {}
        for chunk in chunks(message_ids):
            for row in (await session.execute(
                select(MessagePart.message_id, MessagePart.seq, MessagePart.stat, MessagePart.error_code)
                .where(MessagePart.message_id.in_(chunk))
            )).all():
                parts.setdefault(row.message_id, []).append(row)
            # the parts just updated are in the session's pending UPDATEs, flushed by execute above
        finals = {mid: ev.combine([p.stat for p in ps]) for mid, ps in parts.items()}
        finals = {mid: stat for mid, stat in finals.items() if stat is not None}
        if not finals:
            return
        current = select(Message.id, Message.account_id, Message.status).where(Message.id.in_(list(finals)))
        if session.bind.dialect.name == "postgresql":
            # two instances may apply receipts for one message at once (a carrier's repeated receipt on
            # another bind): the second waits here and then finds it final, so it is told about once
            current = current.order_by(Message.id).with_for_update(of=Message)
        rows = (await session.execute(current)).all()
        updates, new_events = [], []
        for row in rows:
            if row.status != S.SENT.value:
                continue  # already final (or not yet marked sent in this very batch: handled below)
            stat = finals[row.id]
            status, event = ev.RECEIPT_OUTCOMES[stat]
            code = None if status == S.DELIVERED else f"receipt_{stat.lower()}"
            updates.append({"id": row.id, "status": status.value, "done_at": now, "updated_at": now,
                            "error_code": code,
                            "error_message": None if code is None else _receipt_error(parts[row.id], stat)})
            new_events.append({"message_id": row.id, "account_id": row.account_id, "type": event,
                               "status": status.value, "error_code": code, "created_at": now})
        if updates:
            await update_by_id(session, Message.__table__, updates)
            await self._record(session, new_events)

    async def _check_id_bases(self, session: AsyncSession) -> None:
        """Count the receipts that stayed unmatched (since the last sweep) but would match under another
        ``receipt_id_base`` of their carrier (a carrier set up with the wrong one leaves every message `sent`
        until the receipt timeout), and warn once they keep coming: at most once every BASE_WARNING_S per
        carrier, naming the setting that fits. In the sweep, off the path of receipts."""
        unmatched = (await session.execute(
            select(UnmatchedReceipt.id, UnmatchedReceipt.carrier, UnmatchedReceipt.carrier_message_id,
                   UnmatchedReceipt.lookup_id).where(UnmatchedReceipt.id > self._base_checked)
            .order_by(UnmatchedReceipt.id).limit(1000))).all()
        if not unmatched:
            return
        self._base_checked = unmatched[-1].id
        fits: dict[tuple[str, str], list[str]] = {}  # (carrier, id under another base) -> those bases
        for _, carrier, receipt_id, lookup in unmatched:
            for base in RECEIPT_ID_BASES:
                other = receipt_lookup_id(receipt_id, base)
                if base != self._id_bases.get(carrier, "same") and other != lookup:
                    fits.setdefault((carrier, other), []).append(base)
        if not fits:
            return
        hits: list[tuple[str, str]] = []
        for chunk in chunks(sorted({other for _, other in fits})):
            hits.extend((await session.execute(
                select(MessagePart.carrier, MessagePart.carrier_id_norm)
                .where(MessagePart.carrier_id_norm.in_(chunk), MessagePart.stat.is_(None))  # awaiting a receipt
            )).all())
        now = time.monotonic()
        for carrier, other in hits:
            for base in fits.get((carrier, other), ()):
                since, counts = self._base_fits.get(carrier, (now, collections.Counter()))
                if now - since > BASE_WARNING_S:  # a few coincidences spread over days are not a pattern
                    since, counts = now, collections.Counter()
                counts[base] += 1
                self._base_fits[carrier] = (since, counts)
        for carrier, (since, counts) in list(self._base_fits.items()):
            base, count = counts.most_common(1)[0]
            if count >= BASE_MISMATCHES and now - self._base_warned.get(carrier, -BASE_WARNING_S) >= BASE_WARNING_S:
                log.warning("carrier %s: %d delivery receipt(s) in the last %.0f min matched no message but would with "
                            "receipt_id_base = \"%s\" (it is \"%s\"): set it in the carrier's configuration, or "
                            "these messages stay `sent` until the receipt timeout", carrier, count,
                            max(1, (now - since) / 60), base, self._id_bases.get(carrier, "same"))
                self._base_warned[carrier] = now
                del self._base_fits[carrier]

    async def _rematch(self, session: AsyncSession, parts: set[tuple[str, str]] | None = None) -> None:
        """Apply stored unmatched receipts whose part now exists: those of ``parts`` (carrier, normalized id),
        just written, through the index on lookup_id; when None, those of the last REMATCH_RECENT (through the
        index on received_at). Either way cheap, however many receipts wait."""
        query = (select(UnmatchedReceipt)
                 .join(MessagePart, (MessagePart.carrier_id_norm == UnmatchedReceipt.lookup_id)
                       & (MessagePart.carrier == UnmatchedReceipt.carrier))
                 .order_by(UnmatchedReceipt.id)
                 .with_for_update(of=UnmatchedReceipt, skip_locked=True))  # one instance applies each (PostgreSQL)
        if parts is None:
            rows = list((await session.execute(
                query.where(UnmatchedReceipt.received_at >= utcnow() - REMATCH_RECENT))).scalars())
        else:
            rows = []
            for chunk in chunks(sorted({norm for _, norm in parts})):
                rows.extend((await session.execute(query.where(UnmatchedReceipt.lookup_id.in_(chunk)))).scalars())
        if not rows:
            self._unmatched = await session.scalar(select(UnmatchedReceipt.id).limit(1)) is not None
            return
        receipts = [(u.carrier, Receipt(carrier_message_id=u.carrier_message_id, stat=u.stat,
                                        error_code=u.error_code, raw=u.raw)) for u in rows]
        await self._apply_receipts(session, receipts, unmatched_ids={i: u.id for i, u in enumerate(rows)})

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
            except Exception:
                log.exception("sweep failed")

    async def expire_unreceipted(self, now: dt.datetime | None = None) -> int:
        """End as 'undelivered' the messages the carrier took longer than ``receipt_timeout_h`` ago without ever
        sending their receipt: every accepted message reaches a final state. (One instance wins each row.)"""
        now = now or utcnow()
        cutoff = now - dt.timedelta(hours=self._settings.receipt_timeout_h)
        async with self._sm() as session, session.begin():
            ended = (await session.execute(
                update(Message).where(Message.status == S.SENT.value, Message.sent_at <= cutoff)
                .values(status=S.UNDELIVERED.value, error_code="receipt_timeout", done_at=now, updated_at=now,
                        error_message=f"No delivery receipt within {self._settings.receipt_timeout_h:g} h.")
                .returning(Message.id, Message.account_id).execution_options(synchronize_session=False)
            )).all()
            await self._record(session, [
                {"message_id": r.id, "account_id": r.account_id, "type": ev.TEXT_UNKNOWN,
                 "status": S.UNDELIVERED.value, "error_code": "receipt_timeout", "created_at": now} for r in ended])
        if ended:
            log.warning("%d message(s) without a delivery receipt after %g h ended undelivered", len(ended),
                        self._settings.receipt_timeout_h)
        return len(ended)

    async def expire_unmatched(self, now: dt.datetime | None = None) -> int:
        """Drop the unmatched receipts older than ``unmatched_receipt_ttl_h``: their message never came (or
        their ids will never match), and the table must not grow without end."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(hours=self._settings.unmatched_ttl_h)
        async with self._sm() as session, session.begin():
            dropped = (await session.execute(delete(UnmatchedReceipt).where(UnmatchedReceipt.received_at < cutoff)
                                             .execution_options(synchronize_session=False))).rowcount
        if dropped:
            log.warning("%d receipt(s) that matched no message within %g h dropped", dropped,
                        self._settings.unmatched_ttl_h)
        return dropped

    async def sweep(self) -> None:
        """Beat this instance's heart (and take back what dead instances held); expire queued messages whose
        time to live ran out; match receipts that arrived early; once a minute, end messages whose receipt
        never came and drop receipts that never matched."""
        await self._heartbeat()
        if time.monotonic() >= self._next_receipt_check:
            self._next_receipt_check = time.monotonic() + 60
            await self.expire_unreceipted()
            await self.expire_unmatched()
        now = utcnow()
        self._limiter.forget_before(time.time() - 60)
        self._windows.forget_before(time.time())
        async with self._sm() as session, session.begin():
            expired = (await session.execute(
                update(Message).where(Message.status == S.QUEUED.value, Message.expires_at <= now)
                .values(status=S.EXPIRED.value, error_code="ttl_expired", done_at=now, updated_at=now,
                        error_message="Time to live ran out before the message could be sent.")
                .returning(Message.id, Message.account_id).execution_options(synchronize_session=False)
            )).all()
            await self._record(session, [
                {"message_id": r.id, "account_id": r.account_id, "type": ev.TEXT_TTL_EXPIRED,
                 "status": S.EXPIRED.value, "error_code": "ttl_expired", "created_at": now} for r in expired])
            if self._unmatched:
                await self._rematch(session)
                await self._check_id_bases(session)
