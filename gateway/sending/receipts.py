"""Receipt matching: a delivery receipt names the carrier's message id; it is matched to the part that id was given
to (normalized, under the carrier's ``receipt_id_base``), the part takes the receipt's stat, and a message whose
parts are all final ends delivered, undelivered or failed, with its event. A receipt that matches nothing yet (it
overtook its submit_sm_resp, or another instance stores the part) is kept as unmatched and matched again when
parts are written and by the sweep; one that never matches is dropped after ``unmatched_receipt_ttl_h``. The alerts
(gateway.metrics.alerts, rate-limited there): receipts still unmatched after ``[alerts] unmatched_after_s``, those
that would match under another receipt_id_base (naming the setting that fits), and those dropped."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from typing import Any, Awaitable, Callable

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import Receipt
from carriers.ids import RECEIPT_ID_BASES, receipt_lookup_id
from gateway.metrics import Metrics
from gateway.metrics.alerts import RECEIPT_ID_BASE, UNMATCHED
from gateway.settings import DispatcherSettings
from gateway.store.models import Message, MessagePart, MessageStatus as S, UnmatchedReceipt
from gateway.store.statements import chunks, update_by_id
from gateway.webhooks import catalog as ev
from registry.db import utcnow

log = logging.getLogger(__name__)

# receipts of one carrier that matched nothing but would under another receipt_id_base: warned about once this
# many of them came within BASE_WARNING_S (a few coincidences spread over days are not a pattern)
BASE_MISMATCHES, BASE_WARNING_S = 5, 300.0
# the sweep matches again the receipts of this last while (a part stored by another instance while the receipt
# was being stored); older ones are matched when their part is written, through the index on lookup_id
REMATCH_RECENT = dt.timedelta(minutes=10)


def _receipt_error(parts: list[Any], stat: str) -> str:
    """The sentence for a message that a receipt ended badly: what happened, the receipt's stat and err, and
    for a multipart message which part (the first of the worst)."""
    part = min((p for p in parts if p.stat == stat), key=lambda p: p.seq)
    err = f", err {part.error_code}" if part.error_code else ""
    what = f"{ev.RECEIPT_SENTENCES[stat]} (receipt stat {stat}{err})."
    return f"Part {part.seq} of {len(parts)}: {what[0].lower()}{what[1:]}" if len(parts) > 1 else what


class ReceiptMatcher:
    """Applies receipts to their parts and messages inside the writer's transaction; keeps and rematches those
    that match nothing yet."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: DispatcherSettings,
                 id_bases: dict[str, str], stats: dict[str, int],
                 record: Callable[[AsyncSession, list[dict]], Awaitable[None]], metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._metrics = metrics or Metrics()
        self._settings = settings
        self._id_bases = id_bases
        self.stats = stats
        self._record = record
        self.unmatched = True  # there may be unmatched receipts in the table
        # carrier -> (when its count began, receipt_id_base -> unmatched receipts that would match under it)
        self._base_fits: dict[str, tuple[float, collections.Counter[str]]] = {}
        self._base_checked = 0  # the last unmatched receipt looked at for another receipt_id_base
        self._settled_until: dt.datetime | None = None  # unmatched receipts received before this were counted

    async def apply(self, session: AsyncSession, receipts: list[tuple[str, Receipt]],
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
                self._metrics.unmatched.labels(carrier).inc()
                log.debug("receipt for unknown message id %s from %s kept for later matching",
                          receipt.carrier_message_id, carrier)
            await session.execute(insert(UnmatchedReceipt), [
                {"carrier": carrier, "carrier_message_id": receipt.carrier_message_id, "lookup_id": lookup,
                 "stat": receipt.stat.upper(), "error_code": receipt.error_code, "raw": receipt.raw[:1000],
                 "received_at": now} for carrier, receipt, lookup in unmatched])
            self.unmatched = True
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
        current = select(Message.id, Message.account_id, Message.status, Message.carrier, Message.source,
                         Message.sent_at).where(Message.id.in_(list(finals)))
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
            self._metrics.final(status.value, row, now)
            self._metrics.alerts.receipt(row.carrier, status.value)
        if updates:
            await update_by_id(session, Message.__table__, updates)
            await self._record(session, new_events)

    async def rematch(self, session: AsyncSession, norms: set[str] | None = None) -> None:
        """Apply stored unmatched receipts whose part now exists: those of ``norms`` (the normalized ids of parts
        just written; the join checks the carrier), through the index on lookup_id; when None, those of the last
        REMATCH_RECENT (through the index on received_at). Either way cheap, however many receipts wait."""
        query = (select(UnmatchedReceipt)
                 .join(MessagePart, (MessagePart.carrier_id_norm == UnmatchedReceipt.lookup_id)
                       & (MessagePart.carrier == UnmatchedReceipt.carrier))
                 .order_by(UnmatchedReceipt.id)
                 .with_for_update(of=UnmatchedReceipt, skip_locked=True))  # one instance applies each (PostgreSQL)
        if norms is None:
            rows = list((await session.execute(
                query.where(UnmatchedReceipt.received_at >= utcnow() - REMATCH_RECENT))).scalars())
        else:
            rows = []
            for chunk in chunks(sorted(norms)):
                rows.extend((await session.execute(query.where(UnmatchedReceipt.lookup_id.in_(chunk)))).scalars())
        if not rows:
            return
        receipts = [(u.carrier, Receipt(carrier_message_id=u.carrier_message_id, stat=u.stat,
                                        error_code=u.error_code, raw=u.raw)) for u in rows]
        await self.apply(session, receipts, unmatched_ids={i: u.id for i, u in enumerate(rows)})

    async def refresh(self, session: AsyncSession) -> None:
        """Look whether receipts wait unmatched (stored by any instance). The sweep asks, every two seconds; the
        writer only reads ``unmatched`` (and sets it when it stores one), so no write batch pays a query for it."""
        self.unmatched = await session.scalar(select(UnmatchedReceipt.id).limit(1)) is not None

    async def count_settled(self, session: AsyncSession, now: dt.datetime | None = None) -> None:
        """Alert about the receipts, per carrier, that are still unmatched ``[alerts] unmatched_after_s`` after
        they came (a receipt that overtook its submit_sm_resp is matched within moments: not these), each once.
        In the sweep, through the index on received_at."""
        alerts = self._metrics.alerts
        after = alerts.settings.unmatched_after_s
        until = (now or utcnow()) - dt.timedelta(seconds=after)
        since, self._settled_until = self._settled_until, until
        query = (select(UnmatchedReceipt.carrier, func.count()).where(UnmatchedReceipt.received_at < until)
                 .group_by(UnmatchedReceipt.carrier))
        if since is not None:
            query = query.where(UnmatchedReceipt.received_at >= since)
        for carrier, count in (await session.execute(query)).all():
            alerts.unmatched(carrier, count, after)

    async def check_id_bases(self, session: AsyncSession) -> None:
        """Count the receipts that stayed unmatched (since the last sweep) but would match under another
        ``receipt_id_base`` of their carrier (a carrier set up with the wrong one leaves every message `sent`
        until the receipt timeout), and warn once they keep coming, naming the setting that fits (an alert:
        repeats are summed up once an interval). In the sweep, off the path of receipts."""
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
            if count >= BASE_MISMATCHES:
                self._metrics.alerts.note(
                    RECEIPT_ID_BASE, f"carrier {carrier}", f"carrier {carrier}: {count} delivery receipt(s) in the "
                    f"last {max(1, (now - since) / 60):.0f} min matched no message but would with receipt_id_base = "
                    f"\"{base}\" (it is \"{self._id_bases.get(carrier, 'same')}\"): set it in the carrier's "
                    "configuration, or these messages stay `sent` until the receipt timeout", n=count,
                    what=f"receipts that would match with receipt_id_base = \"{base}\"", fields={"carrier": carrier})
                del self._base_fits[carrier]

    async def expire_unmatched(self, now: dt.datetime | None = None) -> int:
        """Drop the unmatched receipts older than ``unmatched_receipt_ttl_h``: their message never came (or
        their ids will never match), and the table must not grow without end."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(hours=self._settings.unmatched_ttl_h)
        async with self._sm() as session, session.begin():
            dropped = (await session.execute(delete(UnmatchedReceipt).where(UnmatchedReceipt.received_at < cutoff)
                                             .execution_options(synchronize_session=False))).rowcount
        if dropped:
            self._metrics.alerts.note(UNMATCHED, "dropped", f"{dropped} receipt(s) that matched no message within "
                                      f"{self._settings.unmatched_ttl_h:g} h dropped", n=dropped,
                                      what="unmatched receipts dropped")
        return dropped
