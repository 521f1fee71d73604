"""Signed webhooks to customers, delivered at least once from a durable outbox.

Each delivery is a row of ``webhook_deliveries`` written in the same transaction as the change it reports.
The sender POSTs it with::

    X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
    X-Gateway-Event: TEXT_DELIVERED
    X-Gateway-Delivery: whd_...

and retries with exponential backoff (1 s doubling to 10 min, configurable in ``[webhooks]``) until a 2xx
answer or until ``give_up_at`` (24 h after the first attempt, by default). Every attempt is recorded.
A failed delivery can be replayed. Connections reach only the addresses ``[webhooks]`` allows
(gateway.webhooks.egress): a delivery whose host leads elsewhere fails at once, its reason recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.backoff import backoff
from gateway.metrics import Metrics
from gateway.settings import WebhookSettings
from gateway.store.models import WebhookAttempt, WebhookDelivery
from gateway.webhooks.egress import AddressPolicy
from gateway.webhooks.outbox import receiver_of
from gateway.webhooks.posting import LocalPoster, Poster
from gateway.webhooks.signing import SIGNATURE_HEADER, batch_body, sign
from registry.db import utcnow
from registry.models import Account

LEASE = dt.timedelta(seconds=60)  # a claimed delivery is not claimed again for this long
HOLD_S = 20.0  # a claimed delivery not sent within this is handed back, well before its lease runs out
MAX_BATCH = 100  # the largest webhook_batch_size
RECORD_EVERY_S = 0.05  # outcomes wait at most this long (plus a transaction) to be recorded together
GATHER_S = 0.02  # a claim waits this long after a wake-up, so that one claims many deliveries rather than one each


class Claimed(NamedTuple):
    id: int
    public_id: str
    account_id: int
    kind: str
    url: str
    payload: str
    event_type: str
    attempts: int  # before this one
    give_up_at: dt.datetime
    receiver: str
    claimed: float  # monotonic
    lease: dt.datetime  # its next_attempt_at while claimed: an outcome is written only while it is still this


@dataclass
class Receiver:
    """One receiver's deliveries in this process: claimed and waiting, POSTs in flight, and its backoff."""

    waiting: deque[Claimed] = field(default_factory=deque)
    active: int = 0
    failures: int = 0  # consecutive failed POSTs
    paused_until: float = 0.0  # monotonic: put aside (nothing claimed or sent) until then
    resume_at: dt.datetime | None = None  # the same time, as the deliveries handed back are due again

    def paused(self, now: float) -> bool:
        return self.paused_until > now


class WebhookSender:
    """Delivers the outbox as a bulk job.

    One statement claims up to ``claim_batch`` due deliveries (leased for LEASE) for the receivers that are not
    put aside or full; they wait per receiver and go out at most ``per_receiver_concurrency`` POSTs at a time
    per receiver (and ``concurrency`` in all) over one keep-alive session. A receiver whose POST fails is put aside
    with its own backoff: what it still had waiting is handed back until then, and nothing more of it is claimed,
    while other receivers keep flowing. An account may take its events ``webhook_batch_size`` to a POST (a JSON
    array, signed as one body). Outcomes and attempts are written by one transaction for all that ended meanwhile
    (one UPDATE and one INSERT of the attempts, not a transaction per delivery)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: WebhookSettings | None = None,
                 policy: AddressPolicy | None = None, *, metrics: Metrics | None = None,
                 poster: Poster | None = None):
        settings = settings or WebhookSettings()
        self._metrics = metrics or Metrics()
        # who makes the POSTs: this process (one keep-alive session), or worker processes (gateway.webhooks.posting)
        self._poster = poster or LocalPoster(settings, policy or AddressPolicy.of(settings))
        self._sm = sessionmaker
        self._settings = settings
        self._concurrency = settings.concurrency
        self._per_receiver = settings.per_receiver_concurrency
        self._claim_batch = settings.claim_batch
        self._timeout = settings.timeout_s
        self._poll = settings.poll_interval_ms / 1000
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._recorder: asyncio.Task | None = None
        self._accounts: dict[int, tuple[str, int, float]] = {}  # id -> (secret, batch size, valid until)
        self._receivers: dict[str, Receiver] = {}
        self._held: set[int] = set()  # claimed, not yet ended
        self._active = 0
        self._inflight: set[asyncio.Task] = set()
        self._outcomes: list[dict[str, Any]] = []  # for the next record: updates of deliveries...
        self._attempts: list[dict[str, Any]] = []  # ... and their attempts
        self._to_record = asyncio.Event()
        self._stop = asyncio.Event()

    async def start(self) -> None:
        await self._poster.start()
        self._task = asyncio.create_task(self._loop(), name="webhook-sender")
        self._recorder = asyncio.create_task(self._record_loop(), name="webhook-recorder")

    async def stop(self) -> None:
        """Stop claiming and let deliveries in flight record their outcome (never cancelled mid-transaction)."""
        self._stop.set()
        self._wakeup.set()
        if self._task:
            await asyncio.wait([self._task], timeout=10)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self._timeout + 5)
        for receiver in self._receivers.values():  # claimed, never sent: due again at once
            self._hand_back(receiver, utcnow())
        self._to_record.set()
        if self._recorder:
            await asyncio.wait([self._recorder], timeout=10)
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
        await self._poster.close()

    @property
    def poster(self) -> Poster:
        """Who makes the POSTs (a LocalPoster, or WorkerPosters with their pids)."""
        return self._poster

    def notify(self) -> None:
        self._wakeup.set()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()  # before the claim: a wake-up meanwhile is not lost
            now = time.monotonic()
            # not claimed for: receivers put aside, and those with a claim's worth waiting already
            skip = [name for name, r in self._receivers.items()
                    if r.paused(now) or len(r.waiting) >= self._claim_batch]
            room = min(self._claim_batch, 4 * self._claim_batch - len(self._held))
            batch: list[Claimed] = []
            if room > 0:
                try:
                    batch = await self._claim(room, skip)
                    await self._load_accounts({d.account_id for d in batch})
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - an alert; claimed or not, what was not received is due
                    # again when its lease ends
                    self._metrics.alerts.failed("claiming webhook deliveries", exc)
            for d in batch:
                receiver = self._receivers.setdefault(d.receiver, Receiver())
                if receiver.paused(now) and receiver.resume_at:  # (a delivery queued before receivers were kept)
                    self._release([d], receiver.resume_at)
                elif d.id not in self._held:
                    self._held.add(d.id)
                    receiver.waiting.append(d)
            self._pump()
            if len(batch) < room or room <= 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll)
                    await asyncio.sleep(GATHER_S)  # woken by one event: let those close behind it join the claim
            else:
                await asyncio.sleep(0)  # a full claim: others run before the next one

    async def _claim(self, limit: int, skip: list[str]) -> list[Claimed]:
        now = utcnow()
        lease = now + LEASE
        due = (select(WebhookDelivery.id).where(WebhookDelivery.status == "pending",
                                                WebhookDelivery.next_attempt_at <= now)
               .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
        if skip:
            due = due.where(or_(WebhookDelivery.receiver.is_(None), WebhookDelivery.receiver.not_in(skip)))
        async with self._sm() as session, session.begin():
            if session.bind.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = (await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=lease,
                        give_up_at=func.coalesce(WebhookDelivery.give_up_at,
                                                 now + dt.timedelta(hours=self._settings.max_age_h)))
                .returning(WebhookDelivery.id, WebhookDelivery.public_id, WebhookDelivery.account_id,
                           WebhookDelivery.kind, WebhookDelivery.url, WebhookDelivery.payload,
                           WebhookDelivery.event_type, WebhookDelivery.attempts, WebhookDelivery.give_up_at,
                           WebhookDelivery.receiver)
                .execution_options(synchronize_session=False)
            )).all()
        claimed = time.monotonic()
        rows.sort(key=lambda r: r.id)  # RETURNING has no order: the oldest first
        return [Claimed(*r[:-1], r.receiver or receiver_of(r.url), claimed, lease) for r in rows]

    async def _load_accounts(self, ids: set[int]) -> None:
        """The secret and batch size of these accounts, read in one query for those not known lately."""
        now = time.monotonic()
        missing = [i for i in ids if i not in self._accounts or self._accounts[i][2] <= now]
        if not missing:
            return
        async with self._sm() as session:
            rows = (await session.execute(select(Account.id, Account.webhook_secret, Account.webhook_batch_size)
                                          .where(Account.id.in_(missing)))).all()
        for r in rows:
            self._accounts[r.id] = (r.webhook_secret or "", r.webhook_batch_size or 1, now + 30)

    def _pump(self) -> None:
        """Start POSTs for the receivers with deliveries waiting, within both bounds of concurrency. A receiver
        whose last POST failed gets one at a time (a probe) until one succeeds: after its pause it is not sent a
        full window of POSTs that would fail together, each an attempt of its delivery."""
        if self._stop.is_set():
            return  # what waits is handed back
        now = time.monotonic()
        for receiver in list(self._receivers.values()):
            limit = 1 if receiver.failures else self._per_receiver
            while (receiver.waiting and receiver.active < limit and self._active < self._concurrency
                   and not receiver.paused(now)):
                group, batched = self._take(receiver, now)
                if not group:
                    break
                receiver.active += 1
                self._active += 1
                task = asyncio.create_task(self._post(receiver, group, batched))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        for name in [n for n, r in self._receivers.items()
                     if not (r.waiting or r.active or r.failures or r.paused(now))]:
            del self._receivers[name]

    def _take(self, receiver: Receiver, now: float) -> tuple[list[Claimed], bool]:
        """The next POST's deliveries, and whether they go as a batch: the first waiting one, and with it, for an
        account that takes batches, the next events waiting for the same URL. Deliveries claimed too long ago (the
        lease would run out) are handed back instead."""
        group: list[Claimed] = []
        skipped: list[Claimed] = []
        size = 1
        while receiver.waiting:
            d = receiver.waiting.popleft()
            if now - d.claimed > HOLD_S:
                self._release([d], utcnow())
                continue
            if not group:
                group.append(d)
                size = self._accounts.get(d.account_id, ("", 1, 0))[1] if d.kind == "event" else 1
                if size <= 1:
                    break
            elif (d.account_id, d.url, d.kind) == (group[0].account_id, group[0].url, "event"):
                group.append(d)
                if len(group) >= size:
                    break
            else:
                skipped.append(d)
        receiver.waiting.extendleft(reversed(skipped))
        return group, size > 1

    async def _secret(self, account_id: int) -> str:
        await self._load_accounts({account_id})  # reads nothing when the account is known lately
        return self._accounts.get(account_id, ("", 1, 0.0))[0]

    async def _post(self, receiver: Receiver, group: list[Claimed], batched: bool) -> None:
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        not_allowed = False
        first = group[0]
        try:
            body = batch_body(group) if batched else first.payload.encode()
            headers = {"Content-Type": "application/json",
                       SIGNATURE_HEADER: sign(await self._secret(first.account_id), int(time.time()), body)}
            headers |= {"X-Gateway-Event": "batch", "X-Gateway-Batch-Size": str(len(group))} if batched else {
                "X-Gateway-Event": first.event_type, "X-Gateway-Delivery": first.public_id}
            # not_allowed: refused by the address policy; retrying cannot help (it fails now, and can be replayed)
            status_code, error, not_allowed = await self._poster.post(first.url, body, headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            receiver.active -= 1
            self._active -= 1
            self._held.difference_update(d.id for d in group)
        self._outcome(receiver, group, status_code, error, not_allowed, int((time.monotonic() - started) * 1000))
        if not receiver.waiting:
            self._wakeup.set()  # room to claim more for it
        self._pump()

    def _outcome(self, receiver: Receiver, group: list[Claimed], status_code: int | None, error: str | None,
                 not_allowed: bool, duration_ms: int) -> None:
        now = utcnow()
        ok = status_code is not None and 200 <= status_code < 300
        (self._metrics.webhook_deliveries if ok else self._metrics.webhook_failures).inc(len(group))
        alerts = self._metrics.alerts
        if not ok:  # the alert names the receiver's host, never its URL (a query may hold the customer's token)
            reason = f"HTTP {status_code}" if status_code is not None else (error or "").split(":", 1)[0]
            for d in group:
                alerts.webhook_failed(d.account_id, d.url, reason)
        if ok:
            receiver.failures = 0
        elif not not_allowed:
            self._put_aside(receiver, now)
        for d in group:
            attempts = d.attempts + 1
            values: dict[str, Any] = {"last_status_code": status_code, "last_error": error, "attempts": attempts}
            if ok:
                values.update(status="delivered", delivered_at=now, last_error=None)  # even if reading the body failed
            elif now >= d.give_up_at or not_allowed:
                values["status"] = "failed"
                alerts.webhook_given_up(d.account_id, d.url, d.public_id, attempts,
                                        ": its address is not allowed" if not_allowed else "")
            else:
                pause = dt.timedelta(seconds=backoff(attempts, self._settings.retry_base_s,
                                                     self._settings.retry_max_s))
                values["next_attempt_at"] = min(now + pause, d.give_up_at)
            self._outcomes.append({"id_": d.id, "lease_": d.lease, **values})
            self._attempts.append({"delivery_id": d.id, "at": now, "status_code": status_code, "error": error,
                                   "duration_ms": duration_ms})
        self._to_record.set()

    def _put_aside(self, receiver: Receiver, now: dt.datetime) -> None:
        """A failed POST: the receiver waits for its next attempt time (backoff by its failures in a row) and
        hands back what it had waiting until then; POSTs to it already in flight end as they end."""
        if receiver.paused(time.monotonic()):
            return  # one pause for the POSTs that were in flight together
        receiver.failures += 1
        pause = dt.timedelta(seconds=backoff(receiver.failures, self._settings.retry_base_s,
                                             self._settings.retry_max_s))
        receiver.paused_until = time.monotonic() + pause.total_seconds()
        receiver.resume_at = now + pause
        self._hand_back(receiver, receiver.resume_at)

    def _hand_back(self, receiver: Receiver, at: dt.datetime) -> None:
        waiting = list(receiver.waiting)
        receiver.waiting.clear()
        self._release(waiting, at)

    def _release(self, deliveries: list[Claimed], at: dt.datetime) -> None:
        """Claimed but not tried: due again at ``at`` (no attempt is counted)."""
        for d in deliveries:
            self._held.discard(d.id)
            self._outcomes.append({"id_": d.id, "lease_": d.lease, "next_attempt_at": min(at, d.give_up_at)})
        if deliveries:
            self._to_record.set()

    async def _record_loop(self) -> None:
        while True:
            await self._to_record.wait()
            if not self._stop.is_set():
                await asyncio.sleep(RECORD_EVERY_S)  # the outcomes of a moment go in one transaction
            self._to_record.clear()
            if not self._outcomes and self._stop.is_set():
                return
            await self._record()
            if self._stop.is_set() and not self._inflight and not self._outcomes:
                return

    async def _record(self) -> None:
        """One transaction for every outcome since the last: the deliveries' new state (an executemany for each
        kind of outcome) and the attempts. A delivery replayed or claimed again meanwhile is no longer under the
        lease its outcome names, and keeps its new state (its attempt is recorded all the same)."""
        outcomes, attempts = self._outcomes, self._attempts
        self._outcomes, self._attempts = [], []
        if not outcomes:
            return
        kinds: dict[frozenset[str], list[dict[str, Any]]] = {}
        for outcome in outcomes:
            kinds.setdefault(frozenset(outcome), []).append(outcome)
        try:
            async with self._sm() as session, session.begin():
                for names, rows in kinds.items():
                    await session.execute(_fenced_update(names), rows)
                if attempts:
                    await session.execute(insert(WebhookAttempt.__table__), attempts)  # Core: no ORM bulk-insert steps
        except Exception as exc:  # noqa: BLE001 - an alert
            # the leases run out and the deliveries are tried again: at least once
            self._metrics.alerts.failed("recording webhook attempts", exc)


_UPDATES: dict[frozenset[str], Any] = {}


def _fenced_update(names: frozenset[str]) -> Any:
    """UPDATE webhook_deliveries SET <names> WHERE id = :id_ AND next_attempt_at = :lease_ (built once a shape)."""
    statement = _UPDATES.get(names)
    if statement is None:
        table = WebhookDelivery.__table__
        statement = _UPDATES[names] = update(table).where(
            table.c.id == bindparam("id_"), table.c.next_attempt_at == bindparam("lease_")).values(
            {name: bindparam(name) for name in sorted(names - {"id_", "lease_"})})
    return statement


__all__ = ["MAX_BATCH", "WebhookSender"]
