"""Inbound messages: reassembly, routing to the leased number's account, keywords, opt-outs, forwarding.

Every inbound message is stored before the carrier is answered (deliver_sm_resp), so none is lost. Parts of a
multipart message are kept in ``inbound_parts`` until the set is complete (repeated parts count once, any
order); a set that never completes is handed on with what arrived, marked incomplete, after a timeout.

Keywords (first word): opt-out words add the person to the number's opt-out list (the account's default list
unless the number has its own) and block what is still queued to them; opt-in words take them off; HELP gets
help. Replies leave from the number the person wrote to. HELP and STOP are processed even when two-way is off;
a number with self-managed opt-outs gets no automatic reply and no list change: its customer decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from typing import Callable

from sqlalchemy import delete, func, select, text as sql_text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import keywords as kw
from carriers import InboundSms
from carriers.encoding import encode
from gateway.metrics import Metrics
from gateway.metrics.activity import INBOUND
from gateway.metrics.alerts import INBOUND_UNROUTED
from gateway.sending.messages import new_public_id
from gateway.store.models import InboundMessage, InboundPart, Message, MessageStatus as S, NumberKeyword
from gateway.webhooks import catalog as ev
from gateway.webhooks.outbox import enqueue, new_delivery
from gateway.webhooks.record import record as record_events
from registry.db import iso, utcnow
from registry.models import Account, Number, OptOut

log = logging.getLogger(__name__)

INBOUND_EVENT = "INBOUND_MESSAGE"



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


class InboundService:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, reassembly_timeout_s: float = 120.0,
                 on_reply: Callable[[], None] = lambda: None, on_webhooks: Callable[[], None] = lambda: None,
                 metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._metrics = metrics or Metrics()
        self.reassembly_timeout_s = reassembly_timeout_s
        self._on_reply = on_reply
        self._on_webhooks = on_webhooks
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_loop(), name="inbound-sweep")

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await asyncio.wait([self._task], timeout=10)

    # --- from the carrier ------------------------------------------------------------------------------------
    async def on_inbound(self, carrier: str, message: InboundSms) -> None:
        self._metrics.activity.count(carrier, INBOUND)
        # a part numbered 0 or beyond its total is no part of a set (GSM 03.40: such a header is ignored and
        # the message taken on its own), so it can never complete another set
        if message.concat_total and message.concat_total > 1 and message.concat_seq \
                and message.concat_seq <= message.concat_total:
            whole = await self._store_part(carrier, message)
            if whole is None:
                return
            text, segments = whole
        else:
            text, segments = message.text, 1
        await self.handle(carrier, message.source, message.destination, text, segments, True, message.received_at)

    async def _store_part(self, carrier: str, m: InboundSms) -> tuple[str, int] | None:
        key = (InboundPart.carrier == carrier, InboundPart.source == m.source,
               InboundPart.destination == m.destination, InboundPart.ref == m.concat_ref,
               InboundPart.total == m.concat_total)
        async with self._sm() as session, session.begin():
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
        on longer ago than that."""
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=self.reassembly_timeout_s)
        async with self._sm() as session, session.begin():
            await session.execute(delete(InboundPart).where(InboundPart.assembled_at < cutoff))
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
                sets.append((carrier, source, destination, "".join(p.text for p in parts), total,
                             parts[0].received_at))
        for carrier, source, destination, text, total, received_at in sets:
            log.warning("inbound message from %s to %s incomplete after %ss; handed on with what arrived",
                        source, destination, self.reassembly_timeout_s)
            await self.handle(carrier, source, destination, text, total, False, received_at)
        return len(sets)

    # --- routing and keywords --------------------------------------------------------------------------------
    async def handle(self, carrier: str, source: str, destination: str, text: str, segments: int, complete: bool,
                     received_at: dt.datetime) -> InboundMessage:
        async with self._sm() as session, session.begin():
            number = await session.scalar(select(Number).where(Number.number.in_(_forms(destination)),
                                                               Number.status != "released"))
            inbound = InboundMessage(public_id="in_" + secrets.token_hex(12), number=destination, source=source,
                                     body=text, segments=segments, complete=complete, carrier=carrier,
                                     received_at=received_at)
            if number is None or number.account_id is None:
                self._metrics.alerts.note(INBOUND_UNROUTED, destination, f"inbound message to {destination}, which is "
                                          "leased to no account, kept unrouted", what="inbound messages kept unrouted")
                session.add(inbound)
                return inbound
            inbound.number, inbound.account_id = number.number, number.account_id
            account = await session.get(Account, number.account_id)
            custom = [kw.CustomKeyword(k.keyword, k.action, k.message) for k in (await session.scalars(
                select(NumberKeyword).where(NumberKeyword.number_id == number.id))).all()]
            found = kw.match(text, custom)
            inbound.in_reply_to = await session.scalar(
                select(Message.public_id).where(Message.account_id == number.account_id,
                                                Message.source == number.number, Message.destination == source)
                .order_by(Message.id.desc()).limit(1))
            reply: str | None = None
            if found is not None:
                inbound.keyword, inbound.action = found.keyword, found.action
                if not number.self_managed_opt_outs:
                    reply = await self._act(session, account, number, source, found)
            if reply:
                inbound.reply_id = await self._reply(session, number, source, reply)
            if number.two_way_enabled and number.two_way_webhook_url:
                inbound.forwarded = True
            session.add(inbound)
            await session.flush()
            if inbound.forwarded:
                payload = {"event_type": INBOUND_EVENT, **inbound_view(inbound), "inbound_id": inbound.public_id}
                await enqueue(session, [new_delivery(number.account_id, number.two_way_webhook_url, "inbound",
                                                     INBOUND_EVENT, payload, utcnow())])
        self._metrics.inbound.labels(inbound.action or "none").inc()
        if inbound.reply_id:
            self._on_reply()
        if inbound.forwarded:
            self._on_webhooks()
        return inbound

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


def _forms(destination: str) -> list[str]:
    """A destination as carriers write it: with or without '+', national short code digits."""
    bare = destination.lstrip("+")
    return [destination, bare, "+" + bare]
