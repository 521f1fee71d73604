"""Counts and rates of an account's traffic (or every account's) over a time range, by hour or day and
optionally by sending number, 10DLC campaign or carrier: messages by final state, delivery rate, segments, cost,
opt-outs and inbound messages.

A message counts in the hour or day (UTC) it was accepted; an inbound message (and an opt-out, a STOP keyword
received) in the one it arrived. The bucket is computed by the database as text, the same on both dialects
("YYYY-MM-DD" or "YYYY-MM-DD HH"), over the (account, time) indexes; the rows are few (buckets x keys x
states) and summed here. Message bodies play no part, so purged rows (gateway.store.retention) count as before.
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import String, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from gateway.settings import PricingSettings
from gateway.store.models import InboundMessage, Message, MessageStatus as S
from registry.models import Account, Number

GROUPS = ("day", "hour")
BY = ("number", "campaign", "carrier")
STEP = {"day": dt.timedelta(days=1), "hour": dt.timedelta(hours=1)}
MAX_RANGE = {"day": dt.timedelta(days=400), "hour": dt.timedelta(days=31)}  # at most some 750 buckets
DEFAULT_RANGE = {"day": dt.timedelta(days=7), "hour": dt.timedelta(hours=24)}
FINAL_UNDELIVERED = ("undelivered", "failed", "expired")  # with delivered: what the delivery rate divides by
COUNTS = ("messages", "pending", "delivered", "undelivered", "failed", "expired", "blocked", "segments",
          "opt_outs", "inbound")
_STATE = {S.QUEUED.value: "pending", S.SENDING.value: "pending", S.SENT.value: "pending",
          S.DELIVERED.value: "delivered", S.UNDELIVERED.value: "undelivered", S.FAILED.value: "failed",
          S.EXPIRED.value: "expired", S.BLOCKED.value: "blocked"}


@dataclass(frozen=True)
class Range:
    start: dt.datetime  # inclusive
    end: dt.datetime  # exclusive
    group_by: str = "day"
    by: str | None = None


def _bucket(column: Any, group_by: str, dialect: str) -> ColumnElement:
    """The UTC day or hour of a timestamp column as text. Literal arguments, not bound parameters: PostgreSQL
    must see the SELECT's expression and the GROUP BY's as one."""
    if dialect == "postgresql":
        fmt = "'YYYY-MM-DD'" if group_by == "day" else "'YYYY-MM-DD HH24'"
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column(fmt), type_=String)
    return func.substr(column, literal_column("1"), literal_column("10" if group_by == "day" else "13"),
                       type_=String)  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"


def _start(bucket: str) -> dt.datetime:
    day = dt.datetime.strptime(bucket[:10], "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    return day + dt.timedelta(hours=int(bucket[11:13])) if len(bucket) > 10 else day


def floor(moment: dt.datetime, group_by: str) -> dt.datetime:
    moment = moment.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if group_by == "day" else moment


async def _account_rows(session: AsyncSession, account_id: int, r: Range, pricing: PricingSettings,
                        totals: dict[tuple[str, Any], collections.Counter]) -> None:
    dialect = session.bind.dialect.name
    keys = {"number": Message.source, "carrier": Message.carrier, "campaign": Number.campaign_id}
    bucket = _bucket(Message.created_at, r.group_by, dialect)
    key, grouped = (keys[r.by], [keys[r.by]]) if r.by else (literal_column("NULL"), [])
    charged = func.sum(case((Message.sent_at.is_not(None), Message.segments), else_=0))
    stmt = (select(bucket, key, Number.type, Message.status, func.count(), func.sum(Message.segments), charged)
            .select_from(Message).outerjoin(Number, Number.number == Message.source)
            .where(Message.account_id == account_id, Message.created_at >= r.start, Message.created_at < r.end)
            .group_by(bucket, *grouped, Number.type, Message.status))
    for day, k, kind, status, n, segments, charged_segments in (await session.execute(stmt)).all():
        c = totals[(day, k)]
        c["messages"] += n
        c[_STATE.get(status, "pending")] += n
        c["segments"] += segments or 0
        c["cost"] += (charged_segments or 0) * float(getattr(pricing, kind or "long_code", pricing.long_code))
    keys = {"number": InboundMessage.number, "carrier": InboundMessage.carrier, "campaign": Number.campaign_id}
    bucket = _bucket(InboundMessage.received_at, r.group_by, dialect)
    key, grouped = (keys[r.by], [keys[r.by]]) if r.by else (literal_column("NULL"), [])
    opt_out = func.sum(case((InboundMessage.action == "opt_out", 1), else_=0))
    stmt = (select(bucket, key, func.count(), opt_out).select_from(InboundMessage)
            .where(InboundMessage.account_id == account_id, InboundMessage.received_at >= r.start,
                   InboundMessage.received_at < r.end).group_by(bucket, *grouped))
    if r.by == "campaign":
        stmt = stmt.outerjoin(Number, Number.number == InboundMessage.number)
    for day, k, n, opt_outs in (await session.execute(stmt)).all():
        c = totals[(day, k)]
        c["inbound"] += n
        c["opt_outs"] += opt_outs or 0


def _shape(c: collections.Counter) -> dict[str, Any]:
    out: dict[str, Any] = {name: int(c[name]) for name in COUNTS}
    out["cost"] = round(c["cost"], 6)
    done = c["delivered"] + sum(c[s] for s in FINAL_UNDELIVERED)
    out["delivered_pct"] = round(100 * c["delivered"] / done, 2) if done else None
    return out


async def stats(sessions: async_sessionmaker[AsyncSession], account_ids: Iterable[int] | None, r: Range,
                pricing: PricingSettings) -> dict[str, Any]:
    """Rows (one per bucket, or per bucket and key with ``r.by``; without ``by`` every bucket of the range, empty
    ones too) and totals, for these accounts (None: every account). Each row: start (datetime), key (with
    ``by``: the number, carrier name or campaign id; None for messages that have none), and the counts."""
    totals: dict[tuple[str, Any], collections.Counter] = collections.defaultdict(collections.Counter)
    async with sessions() as session:
        if account_ids is None:
            account_ids = list((await session.scalars(select(Account.id).order_by(Account.id))).all())
        for account_id in account_ids:  # one indexed range per account
            await _account_rows(session, account_id, r, pricing, totals)
    rows = [{"start": _start(day), **({"key": None if k is None else str(k)} if r.by else {}), **_shape(c)}
            for (day, k), c in totals.items()]
    if not r.by:
        seen = {row["start"] for row in rows}
        at = floor(r.start, r.group_by)
        while at < r.end:
            if at not in seen:
                rows.append({"start": at, **_shape(collections.Counter())})
            at += STEP[r.group_by]
    rows.sort(key=lambda row: (row["start"], row.get("key") is None, row.get("key") or ""))
    return {"rows": rows, "totals": _shape(sum(totals.values(), collections.Counter()))}
