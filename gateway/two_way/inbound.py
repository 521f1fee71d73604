"""Inbound messages: reassembly, routing to the leased number's account, keywords, opt-outs, forwarding.

Every inbound message is stored before the carrier is answered (deliver_sm_resp), so none is lost; messages are
stored in batches, one transaction each, in the order the carriers handed them on. One handed again within
``inbound_dedupe_s`` (the SMSC sends a deliver_sm again when our answer was lost with a connection) is recognized
by its identity, stored in ``inbound_seen``, and handled once. Parts of a multipart message are kept in
``inbound_parts`` until the set is complete (repeated parts count once, any order); a set that never completes is
handed on with what arrived, marked incomplete, after a timeout.

Keywords (first word): opt-out words add the person to the number's opt-out list (the account's default list
unless the number has its own) and block what is still queued to them; opt-in words take them off; HELP gets
help. Replies leave from the number the person wrote to. HELP and STOP are processed even when two-way is off;
a number with self-managed opt-outs gets no automatic reply and no list change: its customer decides.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import bindparam, delete, func, select, text as sql_text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import keywords as kw
from carriers import InboundSms
from carriers.encoding import encode
from gateway.metrics import Metrics
from gateway.metrics.activity import INBOUND
from gateway.metrics.alerts import INBOUND_UNROUTED
from gateway.sending.messages import new_public_id
from gateway.store.group_commit import GroupCommit
from gateway.store.models import (
    InboundMessage,
    InboundPart,
    InboundSeen,
    Message,
    MessageStatus as S,
    NumberKeyword,
)
from gateway.store.statements import chunks
from gateway.webhooks import catalog as ev
from gateway.webhooks.outbox import enqueue, new_delivery
from gateway.webhooks.record import record as record_events
from registry.db import iso, utcnow
from registry.models import Account, Number, OptOut

log = logging.getLogger(__name__)

INBOUND_EVENT = "INBOUND_MESSAGE"
MAX_BATCH = 500  # inbound messages stored by one transaction; more wait for the next one
# errors that say the database cannot be written now (not that a message cannot be): the whole batch is refused
OUTAGES = (OperationalError, InterfaceError, SATimeoutError, asyncio.TimeoutError, OSError)


def inbound_view(m: InboundMessage) -> dict:
    return {"id": m.public_id, "from": m.source, "to": m.number, "body": m.body, "keyword": m.keyword,
            "action": m.action, "segments": m.segments, "complete": m.complete, "in_reply_to": m.in_reply_to,
            "reply_id": m.reply_id, "forwarded": m.forwarded, "received_at": iso(m.received_at)}


async def _lock_set(session: AsyncSession, *identity: object) -> None:
    """Several instances on PostgreSQL: parts of one set may arrive on different instances' binds at once;
    each transaction on a set waits for the one before it, so exactly one of them sees the set complete.
    (SQLite serializes writers anyway.)"""
    if session.bind.dialect.name == "postgresql":
        await session.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                              {"k": "inbound:" + "|".join(map(str, identity))})


@dataclass(slots=True)
class _Waiting:
    """An inbound message (or part) a carrier handed on, waiting for the batch that stores it."""

    carrier: str
    message: InboundSms
    stored: asyncio.Future  # resolved once stored (or known as a repeat); an exception when it could not be


@dataclass(slots=True)
class _Whole:
    """A whole message to route: one on its own, a reassembled set, or what arrived of an incomplete one."""

    carrier: str
    source: str
    destination: str
    text: str
    segments: int
    complete: bool
    received_at: dt.datetime


def inbound_key(carrier: str, m: InboundSms) -> str:
    """What makes a message the same one handed again: carrier, addresses, coding, concatenation and text (an
    SMPP 3.4 deliver_sm of a mobile-originated message carries no message id of the SMSC)."""
    fields = (carrier, m.source, m.destination, m.data_coding, m.concat_ref, m.concat_total, m.concat_seq, m.text)
    return hashlib.blake2b("\x1f".join(map(str, fields)).encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


@functools.lru_cache(maxsize=4)
def _first_seen_statement(dialect: str) -> Any:
    """INSERT the identities; one already there but older than the window (:cutoff) is seen anew; RETURNING the
    keys written: those not seen within the window. One statement, so that two instances handed the same message
    at once (on PostgreSQL) see it first once."""
    table = InboundSeen.__table__
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return (ins.on_conflict_do_update(index_elements=["key"], set_={"seen_at": ins.excluded.seen_at},
                                      where=table.c.seen_at < bindparam("cutoff"))
            .returning(table.c.key))


class InboundService:
    """Stores what carriers hand on in batches (group commit, as gateway.sending.accepting does for sends): each
    message joins the waiting batch, one writer task stores a whole batch in one transaction in arrival order, and
    each carrier call returns once its batch is committed (the carrier acknowledges the message then: stored before
    acknowledged). Messages that arrive while a batch is written make the next one."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, reassembly_timeout_s: float = 120.0,
                 dedupe_s: float = 300.0, on_reply: Callable[[], None] = lambda: None,
                 on_webhooks: Callable[[], None] = lambda: None, metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._metrics = metrics or Metrics()
        self.reassembly_timeout_s = reassembly_timeout_s
        self.dedupe_s = dedupe_s
        self._on_reply = on_reply
        self._on_webhooks = on_webhooks
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._batches: GroupCommit[_Waiting] = GroupCommit(self._write, MAX_BATCH, "inbound-writer")
        self.stats = {"batches": 0, "messages": 0, "repeats": 0, "failed_batches": 0}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_loop(), name="inbound-sweep")

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await asyncio.wait([self._task], timeout=10)
        await self._batches.drain(timeout=10)  # the batch being written (and those waiting) still get their answers

    # --- from the carrier ------------------------------------------------------------------------------------
    async def on_inbound(self, carrier: str, message: InboundSms) -> None:
        """Returns once the message is stored (or known as one handed before); raises when it could not be stored,
        so that the carrier asks for it again. Messages are taken in the order of the calls."""
        self._metrics.activity.count(carrier, INBOUND)
        stored = asyncio.get_running_loop().create_future()
        self._batches.add(_Waiting(carrier, message, stored))
        await stored

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self._sm() as session, session.begin():
                handled, repeats = await self._store(session, batch)
        except Exception as exc:  # noqa: BLE001 - refused (an alert), or each stored alone
            if len(batch) > 1 and not isinstance(exc, OUTAGES):
                # one message the batch cannot store (a bug it meets) must not refuse its neighbours each time
                # the SMSC sends them again: each is stored alone, and only that one is refused
                for w in batch:
                    await self._write([w])
                return
            self._failed(batch, exc)
        except BaseException as exc:  # cancelled: rolled back, none of the batch is stored
            self._failed(batch, exc)
            raise
        else:
            self.stats["batches"] += 1
            self.stats["messages"] += len(batch)
            if repeats:
                self.stats["repeats"] += sum(repeats.values())
                for carrier, n in repeats.items():
                    self._metrics.inbound_repeats.labels(carrier).inc(n)
                log.info("%d inbound message(s) handed again within %gs (an answer lost): acknowledged, handled "
                         "once", sum(repeats.values()), self.dedupe_s)
            self._handled(handled)
            for w in batch:
                if not w.stored.done():
                    w.stored.set_result(None)

    def _failed(self, batch: list[_Waiting], exc: BaseException) -> None:
        """Rolled back: none of the batch is stored; each carrier call raises, and the carrier asks for it again."""
        self.stats["failed_batches"] += 1
        if isinstance(exc, Exception):
            self._metrics.alerts.failed("storing inbound messages (the carrier sends them again)", exc)
        for w in batch:
            if not w.stored.done():
                w.stored.set_exception(RuntimeError(f"storing the inbound message failed: {type(exc).__name__}"))

    async def _store(self, session: AsyncSession, batch: list[_Waiting]
                     ) -> tuple[list[InboundMessage], collections.Counter[str]]:
        """The batch in arrival order: repeats set aside (counted by carrier), parts kept until their set is
        complete, whole messages routed."""
        now = utcnow()
        keys = [inbound_key(w.carrier, w.message) for w in batch]
        first = await self._first_seen(session, keys, now)
        wholes: list[_Whole] = []
        repeats: collections.Counter[str] = collections.Counter()
        for w, key in zip(batch, keys):
            m = w.message
            if first is not None:
                if key not in first:
                    repeats[w.carrier] += 1
                    continue
                first.discard(key)  # the same one twice in this batch: the second is a repeat
            # a part numbered 0 or beyond its total is no part of a set (GSM 03.40: such a header is ignored and
            # the message taken on its own), so it can never complete another set
            if m.concat_total and m.concat_total > 1 and m.concat_seq and m.concat_seq <= m.concat_total:
                whole = await self._store_part(session, w.carrier, m)
                if whole is not None:
                    wholes.append(_Whole(w.carrier, m.source, m.destination, whole[0], whole[1], True,
                                         m.received_at))
            else:
                wholes.append(_Whole(w.carrier, m.source, m.destination, m.text, 1, True, m.received_at))
        return await self._route(session, wholes), repeats

    async def _first_seen(self, session: AsyncSession, keys: list[str], now: dt.datetime) -> set[str] | None:
        """The keys not seen within the dedupe window, now stored as seen (with the batch); None when there is no
        such check (``dedupe_s`` 0)."""
        if self.dedupe_s <= 0:
            return None
        unique = list(dict.fromkeys(keys))
        cutoff = now - dt.timedelta(seconds=self.dedupe_s)
        statement = _first_seen_statement(session.bind.dialect.name)
        first: set[str] = set()
        for chunk in chunks(unique):
            first.update((await session.execute(
                statement, [{"key": k, "seen_at": now, "cutoff": cutoff} for k in chunk])).scalars())
        return first

    def _handled(self, handled: list[InboundMessage]) -> None:
        """After the commit: count them, wake the dispatcher for automatic replies, the webhook sender for
        forwarded messages."""
        for inbound in handled:
            self._metrics.inbound.labels(inbound.action or "none").inc()
        if any(i.reply_id for i in handled):
            self._on_reply()
        if any(i.forwarded for i in handled):
            self._on_webhooks()

    async def _store_part(self, session: AsyncSession, carrier: str, m: InboundSms) -> tuple[str, int] | None:
        key = (InboundPart.carrier == carrier, InboundPart.source == m.source,
               InboundPart.destination == m.destination, InboundPart.ref == m.concat_ref,
               InboundPart.total == m.concat_total)
        await _lock_set(session, carrier, m.source, m.destination, m.concat_ref, m.concat_total)
        seen = await session.scalar(select(InboundPart.id).where(*key, InboundPart.seq == m.concat_seq))
        if seen is not None:
            return None  # a repeated part (also of a set already handed on) counts once
        session.add(InboundPart(carrier=carrier, source=m.source, destination=m.destination,
                                ref=m.concat_ref, total=m.concat_total, seq=m.concat_seq, text=m.text,
                                received_at=m.received_at))
        await session.flush()
        parts = (await session.scalars(select(InboundPart).where(*key, InboundPart.assembled_at.is_(None))
                                       .order_by(InboundPart.seq))).all()
        if len({p.seq for p in parts}) < m.concat_total:
            return None
        await session.execute(update(InboundPart).where(*key).values(assembled_at=utcnow()))
        return "".join(p.text for p in parts), m.concat_total

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(5.0, self.reassembly_timeout_s / 2))
            if self._stop.is_set():
                return
            try:
                await self.flush_incomplete()
            except Exception as exc:  # noqa: BLE001 - an alert (the traceback in the first)
                self._metrics.alerts.failed("handing on incomplete inbound messages", exc)

    async def flush_incomplete(self, now: dt.datetime | None = None) -> int:
        """Hand on, marked incomplete, every set whose first part is older than the timeout; forget sets handed
        on longer ago than that, and identities older than the dedupe window."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=self.reassembly_timeout_s)
        async with self._sm() as session, session.begin():
            await session.execute(delete(InboundPart).where(InboundPart.assembled_at < cutoff))
            await session.execute(delete(InboundSeen).where(
                InboundSeen.seen_at < now - dt.timedelta(seconds=self.dedupe_s)))
            stale = (await session.execute(
                select(InboundPart.carrier, InboundPart.source, InboundPart.destination, InboundPart.ref,
                       InboundPart.total).where(InboundPart.assembled_at.is_(None))
                .group_by(InboundPart.carrier, InboundPart.source, InboundPart.destination, InboundPart.ref,
                          InboundPart.total)
                .having(func.min(InboundPart.received_at) < cutoff))).all()
            sets = []
            for carrier, source, destination, ref, total in stale:
                key = (InboundPart.carrier == carrier, InboundPart.source == source,
                       InboundPart.destination == destination, InboundPart.ref == ref, InboundPart.total == total)
                await _lock_set(session, carrier, source, destination, ref, total)
                taken = await session.execute(update(InboundPart).where(*key, InboundPart.assembled_at.is_(None))
                                              .values(assembled_at=now))
                if not taken.rowcount:  # another instance handed this set on meanwhile
                    continue
                parts = (await session.scalars(select(InboundPart).where(*key).order_by(InboundPart.seq))).all()
                sets.append(_Whole(carrier, source, destination, "".join(p.text for p in parts), total, False,
                                   parts[0].received_at))
                log.warning("inbound message from %s to %s incomplete after %ss; handed on with what arrived",
                            source, destination, self.reassembly_timeout_s)
            handled = await self._route(session, sets)  # in the transaction that took the sets
        self._handled(handled)
        return len(sets)

    # --- routing and keywords --------------------------------------------------------------------------------
    async def _route(self, session: AsyncSession, wholes: list[_Whole]) -> list[InboundMessage]:
        """Route whole messages to their numbers' accounts, in order: keywords acted on (a STOP before a message
        in the same batch takes effect first), replies queued, forwarded ones queued for the webhook sender.
        What every message needs (numbers, accounts, keywords, the last message sent to each person) is read
        once for the batch."""
        if not wholes:
            return []
        numbers, accounts = await _numbers(session, {w.destination for w in wholes})
        leased = {n.id for n in numbers.values() if n.account_id in accounts}
        custom: dict[int, list[kw.CustomKeyword]] = {}
        for chunk in chunks(sorted(leased)):
            for k in (await session.scalars(_KEYWORDS, {"ids": list(chunk)})).all():
                custom.setdefault(k.number_id, []).append(kw.CustomKeyword(k.keyword, k.action, k.message))
        last_sent = await _last_sent(session, [(numbers[w.destination], w.source) for w in wholes
                                               if w.destination in numbers and numbers[w.destination].id in leased])
        handled: list[InboundMessage] = []
        for w in wholes:
            inbound = InboundMessage(public_id="in_" + secrets.token_hex(12), number=w.destination, source=w.source,
                                     body=w.text, segments=w.segments, complete=w.complete, carrier=w.carrier,
                                     received_at=w.received_at, forwarded=False)
            handled.append(inbound)
            number = numbers.get(w.destination)
            account = accounts.get(number.account_id) if number is not None and number.account_id else None
            if number is None or account is None:
                self._metrics.alerts.note(INBOUND_UNROUTED, w.destination, f"inbound message to {w.destination}, "
                                          "which is leased to no account, kept unrouted",
                                          what="inbound messages kept unrouted")
                session.add(inbound)
                continue
            inbound.number, inbound.account_id = number.number, number.account_id
            found = kw.match(w.text, custom.get(number.id, ()))
            conversation = (number.account_id, number.number, w.source)
            inbound.in_reply_to = last_sent.get(conversation)
            reply: str | None = None
            if found is not None:
                inbound.keyword, inbound.action = found.keyword, found.action
                if not number.self_managed_opt_outs:
                    reply = await self._act(session, account, number, w.source, found)
            if reply:
                inbound.reply_id = last_sent[conversation] = await self._reply(session, number, w.source, reply)
            inbound.forwarded = bool(number.two_way_enabled and number.two_way_webhook_url)
            session.add(inbound)
        await session.flush()  # every row of the batch in one INSERT
        now = utcnow()
        await enqueue(session, [
            new_delivery(i.account_id, numbers[i.number].two_way_webhook_url, "inbound", INBOUND_EVENT,
                         {"event_type": INBOUND_EVENT, **inbound_view(i), "inbound_id": i.public_id}, now)
            for i in handled if i.forwarded])
        return handled

    async def _act(self, session: AsyncSession, account: Account, number: Number, person: str,
                   found: kw.Match) -> str | None:
        program = kw.Program(account.program_name or account.name, account.support_contact,
                             account.message_frequency or "Msg frequency varies")
        list_name = number.opt_out_list or "default"
        if found.action == "opt_out":
            exists = await session.scalar(select(OptOut.id).where(
                OptOut.account_id == account.id, OptOut.list_name == list_name, OptOut.phone == person))
            if exists is None:
                session.add(OptOut(account_id=account.id, list_name=list_name, phone=person, source="keyword"))
            await block_queued(session, account.id, person)
            return found.message or number.stop_message or kw.default_stop(program)
        if found.action == "opt_in":
            await session.execute(delete(OptOut).where(OptOut.account_id == account.id, OptOut.phone == person,
                                                       OptOut.list_name.in_({list_name, "default"})))
            return found.message or kw.default_opt_in(program)
        if found.action == "help":
            return number.help_message or kw.default_help(program)
        return found.message  # auto_response

    async def _reply(self, session: AsyncSession, number: Number, person: str, text: str) -> str:
        """Queue an automatic reply from the number the person wrote to (it goes even to an opted-out person:
        it is the confirmation)."""
        encoded = encode(text, smart_encoding=True)
        now = utcnow()
        message = Message(public_id=new_public_id(), account_id=number.account_id, source=number.number,
                          destination=person, body=encoded.text, encoding=encoded.encoding,
                          segments=len(encoded.segments), characters=encoded.characters,
                          status=S.QUEUED.value, message_type="transactional", created_at=now, updated_at=now,
                          next_attempt_at=now, expires_at=now + dt.timedelta(hours=72), attempts=0, paced=False)
        session.add(message)
        await session.flush()
        await record_events(session, [{"message_id": message.id, "account_id": number.account_id,
                                       "type": ev.TEXT_QUEUED, "status": S.QUEUED.value, "error_code": None,
                                       "created_at": now}])
        return message.public_id


async def block_queued(session: AsyncSession, account_id: int, *persons: str) -> int:
    """Messages still queued to people who opted out are blocked, not sent."""
    if not persons:
        return 0
    now = utcnow()
    rows = (await session.execute(
        update(Message).where(Message.account_id == account_id, Message.destination.in_(persons),
                              Message.status == S.QUEUED.value)
        .values(status=S.BLOCKED.value, error_code="recipient_opted_out", done_at=now, updated_at=now,
                error_message="The recipient opted out before the message was sent.")
        .returning(Message.id).execution_options(synchronize_session=False))).all()
    await record_events(session, [{"message_id": r.id, "account_id": account_id, "type": ev.TEXT_BLOCKED,
                                   "status": S.BLOCKED.value, "error_code": "recipient_opted_out",
                                   "created_at": now} for r in rows])
    return len(rows)


# what routing reads for a batch, built once (building a statement costs more than SQLite takes to run it); each
# expanding parameter takes a list (a chunk of at most IN_LIST values)
_NUMBERS = (select(Number, Account).outerjoin(Account, Account.id == Number.account_id)
            .where(Number.number.in_(bindparam("forms", expanding=True)), Number.status != "released"))
_KEYWORDS = select(NumberKeyword).where(NumberKeyword.number_id.in_(bindparam("ids", expanding=True)))
_LAST_SENT = (select(Message.destination, Message.public_id).where(Message.id.in_(
    select(func.max(Message.id))
    .where(Message.account_id == bindparam("account"), Message.source == bindparam("number"),
           Message.destination.in_(bindparam("persons", expanding=True)))
    .group_by(Message.destination))))


async def _numbers(session: AsyncSession, destinations: set[str]) -> tuple[dict[str, Number], dict[int, Account]]:
    """Each destination's number, in any of the forms carriers write it, when it is not released (by the form
    written, and by its own); and the accounts they are leased to."""
    found: dict[str, Number] = {}
    accounts: dict[int, Account] = {}
    for chunk in chunks(sorted({f for d in destinations for f in _forms(d)})):
        for number, account in (await session.execute(_NUMBERS, {"forms": list(chunk)})).all():
            found[number.number] = number
            if account is not None:
                accounts[account.id] = account
    out: dict[str, Number] = {}
    for d in destinations:
        number = next((found[f] for f in _forms(d) if f in found), None)
        if number is not None:
            out[d] = out[number.number] = number
    return out, accounts


async def _last_sent(session: AsyncSession, pairs: list[tuple[Number, str]]) -> dict[tuple[int, str, str], str]:
    """(account, number, person) -> the public id of the last message the account sent the person from the number:
    what an inbound message answers. One query per number of the batch."""
    people: dict[tuple[int, str], set[str]] = {}
    for number, person in pairs:
        people.setdefault((number.account_id, number.number), set()).add(person)
    out: dict[tuple[int, str, str], str] = {}
    for (account_id, number), persons in people.items():
        for chunk in chunks(sorted(persons)):
            for destination, public_id in (await session.execute(_LAST_SENT, {
                    "account": account_id, "number": number, "persons": list(chunk)})).all():
                out[(account_id, number, destination)] = public_id
    return out


def _forms(destination: str) -> list[str]:
    """A destination as carriers write it: with or without '+', national short code digits."""
    bare = destination.lstrip("+")
    return [destination, bare, "+" + bare]
