"""The sender: each claimed message is sent now, at its reserved pacing slot, or goes back to the queue for later;
a send waits for its slot and for room in this second's send window, submits through a ready carrier (a multipart
message part by part, each answer kept as it comes), and ends as an Outcome: sent, failed, or a retry after a
backoff with jitter. The outcomes are stored by the dispatcher's writer (write_outcomes)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import (
    Carrier,
    CarrierError,
    CarrierRejected,
    CarrierRetryable,
    OutboundSms,
    PartResult,
    Segment,
)
from carriers.encoding import encode
from carriers.ids import normalize_message_id
from carriers.pool import CarrierPool
from gateway.backoff import backoff
from gateway.metrics import NO_CARRIER, Metrics
from gateway.metrics.activity import SENT
from gateway.sending.health import SUBMIT_ERROR, SUBMIT_OK, THROTTLED
from gateway.sending.pacing import SEND_GUARD_S, LimiterUnavailable, MemoryLimiter, RedisLimiter, SendWindows
from gateway.sending.policy import CampaignGate, PacingPolicy
from gateway.sending.queue import Claimed, Queue, forget_reservations
from gateway.sending.routing import Router
from gateway.settings import DispatcherSettings
from gateway.store.models import Message, MessagePart, MessageStatus as S
from gateway.store.statements import update_by_id
from gateway.webhooks import catalog as ev
from registry.db import utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Outcome:
    """How a send ended: sent (with the carrier's ids), to retry, or failed; written by the writer."""

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


def error_code(exc: CarrierError) -> str:
    """The stable code of a carrier's refusal: the SMPP command_status of a permanent one."""
    if isinstance(exc, CarrierRejected) and exc.command_status is not None:
        return f"smpp_{exc.command_status:#04x}"
    return exc.code


class Sender:
    """Paces and sends claimed messages, at most ``concurrency`` in flight, and turns how each ended into rows."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pool: CarrierPool,
                 settings: DispatcherSettings, queue: Queue, *, policy: PacingPolicy | None,
                 limiter: MemoryLimiter | RedisLimiter, windows: SendWindows, stats: dict[str, int],
                 wakeup: asyncio.Event, write_signal: asyncio.Event,
                 record: Callable[[AsyncSession, list[dict]], Awaitable[None]], notify: Callable[[], None],
                 router: Router | None = None, metrics: Metrics | None = None, gate: CampaignGate | None = None):
        self._sm = sessionmaker
        self._pool = pool
        self._gate = gate if gate is not None else (policy.gate if policy is not None else None)
        self._router = router if router is not None else Router((), pool)
        self._settings = settings
        self._queue = queue
        self._policy = policy
        self._limiter = limiter
        self._shared_limits = isinstance(limiter, RedisLimiter)
        self._windows = windows
        self.stats = stats
        self._wakeup = wakeup  # the claim loop's: woken when the first reserved slot is near
        self._write_signal = write_signal  # the writer's: an outcome or a part's answer waits
        self._record = record
        self._notify = notify
        self._metrics = metrics or Metrics()
        self.paused: str | None = None  # why sending is paused (the shared limits cannot be reached)
        self.inflight: set[asyncio.Task] = set()
        self.slot_freed = asyncio.Event()
        self.outcomes: list[Outcome] = []
        self.part_rows: list[dict] = []  # the answers to parts of multipart messages, written as they come

    async def pace(self, batch: list[Claimed]) -> None:
        """Send each claimed message now, at its reserved slot, or put it back in the queue for later."""
        policy = self._policy
        if batch:
            await self._router.prepare({b.source for b in batch})
        if policy is not None and batch:
            await policy.prepare({b.account_id for b in batch}, {b.source for b in batch})
        elif self._gate is not None and batch:
            await self._gate.prepare({b.source for b in batch})
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
                self._metrics.alerts.unreachable("redis", "reading the shared pacing limits (sending waits)", exc)
                self.paused = "limits_unreachable"
                retry = dt.datetime.fromtimestamp(now + 1.0, dt.timezone.utc)
                later.extend({"id": item.id, "status": S.QUEUED.value, "attempts": item.attempts - 1,
                              "paced": False, "next_attempt_at": retry, "claimed_by": None} for item in asking)
                batch = [item for item in batch if item.paced]
                reserved = []
                asking = []
            else:
                if self.paused is not None and asking:  # (none asked: Redis was not asked either)
                    self._metrics.alerts.reachable("redis")
                    log.info("sending resumed: the shared limits answer again")
                    self.paused = None
                    # reservations taken before the outage may be gone with a restarted Redis: take new ones
                    async with self._sm() as session, session.begin():
                        await forget_reservations(session)
            slots = {item.id: at for item, at in zip(asking, reserved)}
        # a multipart message tried before may have parts the carrier took: only the others go again (one query
        # per claim, and only when there are such messages: none for a single-part message)
        known = await self._queue.known_parts([b.id for b in batch if b.segments > 1 and b.attempts > 1])
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
            # at most ``concurrency`` in flight: the claim took no more than the free places (inflight)
            task = asyncio.create_task(self._send(item, delay=at - now, slot=at if policy is not None else None,
                                                  parts=known.get(item.id)))
            self.inflight.add(task)
            task.add_done_callback(self._sent)
        if later:
            await self._queue.requeue(later)
            slots = [row["next_attempt_at"].timestamp() for row in later if row["paced"]]
            if slots:  # wake the claim loop when the first reserved slot is a horizon away, not at the next poll
                delay = max(0.0, min(slots) - horizon - time.time())
                asyncio.get_running_loop().call_later(delay, self._wakeup.set)

    def _sent(self, task: asyncio.Task) -> None:
        # the claim loop counts free slots from inflight: it is woken only once the task has left it (woken by
        # _send itself, it could count sends that have just ended as busy and wait for a wake-up none will give)
        self.inflight.discard(task)
        self.slot_freed.set()

    async def _wait_for_slot(self, item: Claimed, slot: float) -> None:
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
                        self._metrics.pacing_waits.inc()
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
            self._metrics.pacing_waits.inc()
            await asyncio.sleep(wait)
        self._windows.record(limits, item.segments, time.time())

    async def _send(self, item: Claimed, delay: float = 0.0, slot: float | None = None,
                    parts: dict[int, Any] | None = None) -> None:
        outcome = Outcome(item.id, item.account_id, "retry", attempts=item.attempts, expires_at=item.expires_at,
                           source=item.source)
        carrier: Carrier | None = None
        try:
            if slot is not None:
                await self._wait_for_slot(item, slot)
            elif delay > 0:
                await asyncio.sleep(delay)
            blocked = self._gate.blocked(item.source, item.destination) if self._gate is not None else None
            if blocked is not None:  # it waits (tried again with backoff) until the carrier takes it, or its TTL
                raise CarrierRetryable(f"The 10DLC campaign of {item.source} may not reach this recipient's carrier "
                                       f"now ({blocked}).", code="campaign_not_approved")
            router = self._router
            facts = router.facts(destination=item.destination, account_id=item.account_id, source=item.source,
                                 message_type=item.message_type) if router.routes else None
            carrier, route = router.pick(facts, next((p.carrier for p in parts.values() if p.carrier_message_id),
                                                     None) if parts else None)
            if carrier is None:
                outcome.error_code = "no_carrier"
                outcome.error_message = (f"No carrier of route {route.name} can take it now." if route is not None
                                         else "No carrier is connected.")
            else:
                outcome.carrier, started = carrier.name, time.monotonic()
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
                self._metrics.submit_seconds.labels(carrier.name).observe(time.monotonic() - started)
        except CarrierRetryable as exc:
            outcome.error_code, outcome.error_message = exc.code, str(exc)
            if exc.code in ("throttled", "queue_full"):
                self._metrics.throttled(outcome.carrier or NO_CARRIER)
            if exc.code in ("throttled", "queue_full") and self._policy is not None:
                # the carrier says slow down although its limit was kept: give this sender a pause
                with contextlib.suppress(LimiterUnavailable):
                    await self._limiter.penalize(f"num:{item.source}", self._policy.settings.throttle_penalty_s,
                                                 time.time())
        except CarrierRejected as exc:
            outcome.kind, outcome.error_code, outcome.error_message = "failed", error_code(exc), str(exc)
        except Exception as exc:  # a bug or an unexpected carrier error: retry, never lose the message
            log.exception("sending message %s failed unexpectedly", item.id)
            outcome.error_code, outcome.error_message = "internal_error", type(exc).__name__
        health = self._router.health
        if carrier is not None and health is not None:
            health.submitted(carrier.name, SUBMIT_OK if outcome.kind == "sent" else
                             THROTTLED if outcome.error_code in ("throttled", "queue_full") else SUBMIT_ERROR)
        if carrier is not None:  # the carrier's last minute and last errors, for the operator's status
            if outcome.kind == "sent":
                self._metrics.activity.count(carrier.name, SENT)
            else:
                self._metrics.activity.error(carrier.name, outcome.error_code or "error", outcome.error_message or "")
        self.outcomes.append(outcome)
        self._write_signal.set()

    async def _send_parts(self, item: Claimed, carrier: Carrier, sms: OutboundSms, known: dict[int, Any]) -> None:
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
                self.part_rows.append(last)
                self._write_signal.set()
            prior = known.get(answer.seq)
            last = {"message_id": item.id, "seq": answer.seq, "carrier": carrier.name,
                    "carrier_message_id": answer.message_id,
                    "carrier_id_norm": normalize_message_id(answer.message_id) if answer.message_id else None,
                    "attempts": prior.attempts + 1 if prior is not None else 1,
                    "answer": "accepted" if answer.error is None else error_code(answer.error)}
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
                self.part_rows.append(last)
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

    async def write_outcomes(self, session: AsyncSession, outcomes: list[Outcome]) -> list[dict]:
        """Store how sends ended (a retry at its backoff, or expired when that is past its time to live), with
        their events; returns the parts written (the receipts that came before them are matched next)."""
        if not outcomes:
            return []
        now = utcnow()
        msg_updates, parts, events = [], [], []
        for o in outcomes:
            if o.kind == "sent":
                self.stats["sent"] += 1
                self._metrics.message(self._metrics.submitted, o.carrier, o.account_id, o.source)
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
                self._metrics.message(self._metrics.failed, o.carrier, o.account_id, o.source)
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
                    self._metrics.message(self._metrics.expired, o.carrier, o.account_id, o.source)
                else:
                    self._metrics.retries.labels(o.carrier or NO_CARRIER).inc()
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
            self._notify()
        return parts
