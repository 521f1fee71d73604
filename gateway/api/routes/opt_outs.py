"""Opt-out lists: list, add, remove, import, export."""

from __future__ import annotations

import csv
import io

from aiohttp import web
from sqlalchemy import delete, func, select

from gateway.api import app_keys
from gateway.api.routes._scope import acting_account as _account, both
from gateway.errors import BadRequest, NotFound, Unprocessable
from gateway.sending.messages import iso
from gateway.store.db import insert_new
from gateway.two_way.inbound import block_queued
from gateway.validation import (
    IMPORT_CHUNK,
    Fields,
    csv_cell,
    csv_chunks,
    e164,
    paced,
    query_limit,
    query_phone,
    read_body,
    read_json_object,
    row_id,
    valid_list_name,
)
from registry.models import OptOut

routes = web.RouteTableDef()



def optout_view(o: OptOut) -> dict:
    return {"phone": o.phone, "list": o.list_name, "source": o.source, "created_at": iso(o.created_at)}


@both(routes, "GET", "/opt-outs")
async def list_optouts(request: web.Request) -> web.Response:
    account_id = await _account(request)
    q = request.query
    filters = [OptOut.account_id == account_id]
    if "list" in q:
        filters.append(OptOut.list_name == q["list"])
    if (phone := query_phone(request, "phone")) is not None:
        filters.append(OptOut.phone == phone)
    stmt = select(OptOut).where(*filters)
    if "before" in q:
        cursor = row_id(q["before"])
        if cursor is None:
            raise BadRequest("before must be a cursor from a previous page.", code="invalid_query")
        stmt = stmt.where(OptOut.id < cursor)
    limit = query_limit(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(stmt.order_by(OptOut.id.desc()).limit(limit))).all()
        # the total of what the filters select, every page (the cursor only pages through it)
        total = await session.scalar(select(func.count()).select_from(OptOut).where(*filters))
    return web.json_response({"opt_outs": [optout_view(o) for o in rows], "total": total,
                              "next": str(rows[-1].id) if len(rows) == limit else None})




async def _add_optouts(request: web.Request, account_id: int, phones: list[str], list_name: str,
                       source: str) -> int:
    """Put the phones on the list (those on it already are left as they are) and block what is still queued
    to them; the number added. One transaction of at most IMPORT_CHUNK phones at a time."""
    added = 0
    for i in range(0, len(phones), IMPORT_CHUNK):
        rows = [{"account_id": account_id, "list_name": list_name, "phone": p, "source": source}
                for p in dict.fromkeys(phones[i:i + IMPORT_CHUNK])]
        async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
            new = (await session.scalars(insert_new(session, OptOut, ("account_id", "list_name", "phone"))
                                         .returning(OptOut.phone), rows)).all()
            await block_queued(session, account_id, *new)
        added += len(new)
    return added


@both(routes, "POST", "/opt-outs")
async def add_optout(request: web.Request) -> web.Response:
    account_id = await _account(request)
    f = Fields(await read_json_object(request), {"phone", "list"})
    phone = e164(f.text("phone", required=True) or "", field="phone")
    name = valid_list_name(f.text("list"))
    added = await _add_optouts(request, account_id, [phone], name, "api")
    return web.json_response({"phone": phone, "list": name, "added": bool(added)}, status=201 if added else 200)


@both(routes, "DELETE", "/opt-outs/{phone}")
async def remove_optout(request: web.Request) -> web.Response:
    account_id = await _account(request)
    phone = e164(request.match_info["phone"], field="phone")
    list_name = request.query.get("list", "default")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        result = await session.execute(delete(OptOut).where(OptOut.account_id == account_id,
                                                            OptOut.list_name == list_name, OptOut.phone == phone))
    if result.rowcount == 0:
        raise NotFound(f"{phone} is not on the list '{list_name}'.", code="opt_out_not_found")
    return web.json_response({"phone": phone, "list": list_name, "removed": True})


@both(routes, "POST", "/opt-outs/import")
async def import_optouts(request: web.Request) -> web.Response:
    """CSV with a phone column (a header row is optional; a second column may name the list). Every row that is
    not blank is counted once: added, already listed (also a repeat within the file) or rejected with its line."""
    account_id = await _account(request)
    raw = await read_body(request)
    default_list = valid_list_name(request.query.get("list"))
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
            except Unprocessable as exc:
                counts["rejected"] += 1
                errors.append({"line": line_no, "value": (row[0] if exc.code != "invalid_list_name" else row[1])[:40],
                               "error": exc.code})
                continue
            by_list.setdefault(name, []).append(phone)
        for list_name, phones in by_list.items():
            added = await _add_optouts(request, account_id, phones, list_name, "import")
            counts["added"] += added
            counts["already_listed"] += len(phones) - added
    return web.json_response({**counts, "errors": errors[:1000]})


@both(routes, "GET", "/opt-outs/export")
async def export_optouts(request: web.Request) -> web.StreamResponse:
    account_id = await _account(request)
    stmt = select(OptOut).where(OptOut.account_id == account_id)
    if "list" in request.query:
        stmt = stmt.where(OptOut.list_name == request.query["list"])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "list", "source", "created_at"])
    async with request.app[app_keys.SESSIONMAKER]() as session:
        for o in (await session.scalars(stmt.order_by(OptOut.id))).all():
            writer.writerow([csv_cell(o.phone), csv_cell(o.list_name), csv_cell(o.source), iso(o.created_at)])
    return web.Response(text=out.getvalue(), content_type="text/csv")

