"""Opt-out lists: the phones an account may not text, per list; adding one blocks what is still queued to it."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound, Unprocessable
from gateway.store.statements import insert_new
from gateway.two_way.inbound import block_queued
from gateway.validation import IMPORT_CHUNK, csv_cell, csv_chunks, e164, paced, valid_list_name
from registry.db import iso
from registry.models import OptOut


async def list_opt_outs(sessions: async_sessionmaker[AsyncSession], account_id: int, *, list_name: str | None,
                        phone: str | None, before: int | None, limit: int) -> tuple[list[OptOut], int]:
    """A page of the account's opt-outs (newest first, below the cursor ``before``) and the total that the
    filters select on every page."""
    filters = [OptOut.account_id == account_id]
    if list_name is not None:
        filters.append(OptOut.list_name == list_name)
    if phone is not None:
        filters.append(OptOut.phone == phone)
    stmt = select(OptOut).where(*filters)
    if before is not None:
        stmt = stmt.where(OptOut.id < before)
    async with sessions() as session:
        rows = list((await session.scalars(stmt.order_by(OptOut.id.desc()).limit(limit))).all())
        total = await session.scalar(select(func.count()).select_from(OptOut).where(*filters))
    return rows, total or 0


async def add_opt_outs(sessions: async_sessionmaker[AsyncSession], account_id: int, phones: list[str],
                       list_name: str, source: str) -> int:
    """Put the phones on the list (those on it already are left as they are) and block what is still queued
    to them; the number added. One transaction of at most IMPORT_CHUNK phones at a time."""
    added = 0
    for i in range(0, len(phones), IMPORT_CHUNK):
        rows = [{"account_id": account_id, "list_name": list_name, "phone": p, "source": source}
                for p in dict.fromkeys(phones[i:i + IMPORT_CHUNK])]
        async with sessions() as session, session.begin():
            new = (await session.scalars(insert_new(session, OptOut, ("account_id", "list_name", "phone"))
                                         .returning(OptOut.phone), rows)).all()
            await block_queued(session, account_id, *new)
        added += len(new)
    return added


async def remove_opt_out(sessions: async_sessionmaker[AsyncSession], account_id: int, phone: str,
                         list_name: str) -> None:
    async with sessions() as session, session.begin():
        result = await session.execute(delete(OptOut).where(OptOut.account_id == account_id,
                                                            OptOut.list_name == list_name, OptOut.phone == phone))
    if result.rowcount == 0:
        raise NotFound(f"{phone} is not on the list '{list_name}'.", code="opt_out_not_found")


async def import_csv(sessions: async_sessionmaker[AsyncSession], account_id: int, raw: bytes,
                     default_list: str) -> dict[str, Any]:
    """CSV with a phone column (a header row is optional; a second column may name the list). Every row that is
    not blank is counted once: added, already listed (also a repeat within the file) or rejected with its line."""
    counts = {"rows": 0, "added": 0, "already_listed": 0, "rejected": 0}
    errors = []
    async for chunk in csv_chunks(raw):
        by_list: dict[str, list[str]] = {}
        async for line_no, row in paced(chunk):
            if line_no == 1 and row[0].strip().lower() in {"phone", "number"}:
                continue
            counts["rows"] += 1
            try:
                phone = e164(row[0].strip(), field="phone", cached=False)
                name = valid_list_name(row[1].strip() or None, default=default_list) if len(row) > 1 else default_list
            except Unprocessable as exc:  # a row's error, counted: the import goes on
                counts["rejected"] += 1
                errors.append({"line": line_no, "value": (row[0] if exc.code != "invalid_list_name" else row[1])[:40],
                               "error": exc.code})
                continue
            by_list.setdefault(name, []).append(phone)
        for list_name, phones in by_list.items():
            added = await add_opt_outs(sessions, account_id, phones, list_name, "import")
            counts["added"] += added
            counts["already_listed"] += len(phones) - added
    return {**counts, "errors": errors[:1000]}


async def export_csv(sessions: async_sessionmaker[AsyncSession], account_id: int, list_name: str | None) -> str:
    """The account's opt-outs (of one list, or all) as CSV: phone, list, source, created_at."""
    stmt = select(OptOut).where(OptOut.account_id == account_id)
    if list_name is not None:
        stmt = stmt.where(OptOut.list_name == list_name)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "list", "source", "created_at"])
    async with sessions() as session:
        for o in (await session.scalars(stmt.order_by(OptOut.id))).all():
            writer.writerow([csv_cell(o.phone), csv_cell(o.list_name), csv_cell(o.source), iso(o.created_at)])
    return out.getvalue()
