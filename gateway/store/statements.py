"""Statements every part of the gateway writes alike, on SQLite and PostgreSQL: long ``IN (...)`` lists in chunks,
INSERT ... ON CONFLICT (skip or update the rows whose key exists), UPDATE by id for many rows at once, and the
page of an account's rows below a cursor."""

from __future__ import annotations

import functools
from typing import Any, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import BadRequest

T = TypeVar("T")

IN_LIST = 400  # values in one IN (...) list: well under SQLite's limit of bound parameters per statement


def chunks(items: Sequence[T], size: int = IN_LIST) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``: one query each, for an ``IN (...)`` list of any length."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def insert_new(session: AsyncSession, model: Any, key: Iterable[str] | None, *, update: Iterable[str] = (),
               returning: Iterable[str] = ()) -> Any:
    """INSERT ... ON CONFLICT (key) into the model's (or table's) table, on SQLite or PostgreSQL, to execute with a
    list of rows. A row whose key exists is skipped (DO NOTHING; with ``key`` None, whatever unique key it breaks),
    or, given ``update``, has those columns set to the new row's values (DO UPDATE). ``returning`` (column names)
    tells which rows were written. Built once per dialect and shape, and cached: building it costs more than
    SQLite takes to run a small one, and values() in the statement would be compiled at every call."""
    return _insert(session.bind.dialect.name, getattr(model, "__table__", model),
                   None if key is None else tuple(key), tuple(update), tuple(returning))


@functools.lru_cache(maxsize=64)
def _insert(dialect: str, table: Table, key: tuple[str, ...] | None, set_: tuple[str, ...],
            returning: tuple[str, ...]) -> Any:
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    index = None if key is None else list(key)
    if set_:
        statement = ins.on_conflict_do_update(index_elements=index, set_={c: ins.excluded[c] for c in set_})
    else:
        statement = ins.on_conflict_do_nothing(index_elements=index)
    return statement.returning(*(table.c[c] for c in returning)) if returning else statement


_UPDATES: dict[tuple[str, frozenset[str]], Any] = {}


SAME_VALUES = 8  # rows setting the same values, from this many on, are updated by one statement


async def update_by_id(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """``UPDATE table SET ... WHERE id = :id`` for each row (a dict with ``id`` and the columns to set).

    Rows that set the same values (a batch of receipts: status delivered, done now) become one
    ``UPDATE ... WHERE id IN (...)``; the others one executemany per set of columns. Core, not the ORM's bulk
    UPDATE by primary key: the same effect without the ORM's bookkeeping and type processing for each row."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    for names, group in groups.items():
        columns = sorted(names - {"id"})
        alike: dict[tuple, list[int]] = {}
        first, second = group[0], group[-1]  # a cheap look first: do two rows set the same values?
        if (len(group) >= SAME_VALUES and all(first[c] == second[c] for c in columns)
                and len({row["id"] for row in group}) == len(group)):  # and each id comes once
            for row in group:
                alike.setdefault(tuple(row[c] for c in columns), []).append(row["id"])
        if alike and len(alike) * SAME_VALUES <= len(group):  # worth it only when most rows share their values
            group = []
            for values, ids in alike.items():
                if len(ids) < SAME_VALUES:
                    group.extend({"id": i, **dict(zip(columns, values))} for i in ids)
                    continue
                for chunk in chunks(ids):
                    await session.execute(update(table).where(table.c.id.in_(chunk))
                                          .values(dict(zip(columns, values))))
            if not group:
                continue
        key = (table.name, names)
        statement = _UPDATES.get(key)
        if statement is None:
            statement = _UPDATES[key] = update(table).where(table.c.id == bindparam("id_")).values(
                {name: bindparam(name) for name in columns})
        params = []
        for row in group:
            row = dict(row)  # the key is renamed: an "id" among the parameters would be SET as well
            row["id_"] = row.pop("id")
            params.append(row)
        await session.execute(statement, params)


async def page_below(session: AsyncSession, stmt: Select, model: Any, account_id: int, before: str | None,
                     limit: int, *, what: str) -> list[Any]:
    """``stmt``'s rows newest first, below the account's row whose public id is ``before`` (a cursor from a previous
    page; ``what`` names it in the 400 invalid_query when the account has no such row)."""
    if before is not None:
        cursor = await session.scalar(select(model.id).where(model.public_id == before,
                                                             model.account_id == account_id))
        if cursor is None:
            raise BadRequest(f"before must be {what} from a previous page.", code="invalid_query")
        stmt = stmt.where(model.id < cursor)
    return list((await session.scalars(stmt.order_by(model.id.desc()).limit(limit))).all())
