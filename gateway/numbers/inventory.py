"""Importing numbers into the inventory from CSV."""

from __future__ import annotations

from typing import Any, Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.statements import insert_new
from gateway.validation import csv_chunks, paced
from registry import inventory
from registry.models import Number


async def import_csv(sessions: async_sessionmaker[AsyncSession], raw: bytes,
                     carriers: Collection[str]) -> dict[str, Any]:
    """CSV: number,type,country,capabilities,carrier,monthly_price (a header may name them in another order; without
    one, this order). Every row that is not blank is counted once: added, or rejected with its line and why.
    Written IMPORT_CHUNK rows to a short transaction. A header that cannot be read raises inventory.RowError."""
    columns: list[str] = list(inventory.COLUMNS)
    added, errors, counted = 0, [], 0
    async with sessions() as session:
        have = set((await session.scalars(select(Number.number))).all())
    async for chunk in csv_chunks(raw):
        new: dict[str, tuple[int, list[str], dict[str, Any]]] = {}
        async for line_no, row in paced(chunk):
            if line_no == 1 and inventory.is_header(row):
                columns = inventory.header_columns(row)  # missing_columns, unknown_columns: the whole file is refused
                continue
            counted += 1
            try:
                fields = inventory.number_fields(row, columns, carriers)
                if fields["number"] in have:
                    raise inventory.RowError("duplicate", f"{fields['number']} is in the inventory already")
            except inventory.RowError as exc:  # a row's error, counted: the import goes on
                errors.append(_row_error(line_no, row, exc.code, str(exc)))
                continue
            new[fields["number"]] = (line_no, row, {**fields, "status": "active", "account_id": None})
            have.add(fields["number"])
        if new:
            async with sessions() as session, session.begin():
                stored = set((await session.scalars(insert_new(session, Number, ("number",)).returning(Number.number),
                                                    [v for _, _, v in new.values()])).all())
            added += len(stored)
            errors += [_row_error(line_no, row, "duplicate", f"{n} is in the inventory already")
                       for n, (line_no, row, _) in new.items() if n not in stored]  # added meanwhile by another
    errors.sort(key=lambda e: e["line"])
    return {"rows": counted, "added": added, "rejected": len(errors), "errors": errors[:1000]}


def _row_error(line_no: int, row: list[str], code: str, message: str) -> dict[str, Any]:
    return {"line": line_no, "value": ",".join(row)[:80], "error": code, "message": message}
