"""Two-way messaging for customers: inbound messages, their numbers' two-way settings, keywords, opt-out lists.
Operators reach the same through /admin/accounts/{account}/... (what gatewayctl uses)."""

from __future__ import annotations

import csv
import io

from aiohttp import web
from sqlalchemy import delete, func, select

import keywords as kw
from gateway.api import app_keys
from gateway.errors import BadRequest, Conflict, NotFound, Unprocessable
from gateway.sending.messages import iso
from gateway.store.models import InboundMessage, NumberKeyword
from gateway.store.statements import insert_new
from gateway.two_way.inbound import block_queued, inbound_view
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
from registry.models import Account, Number, OptOut

routes = web.RouteTableDef()


async def _account(request: web.Request) -> int:
    """The account a request acts for: the caller's (/v1) or the one in the path (/admin)."""
    if app_keys.ACCOUNT_ID in request:
        return request[app_keys.ACCOUNT_ID]
    account_id = row_id(request.match_info["account"])
    async with request.app[app_keys.SESSIONMAKER]() as session:
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {request.match_info['account']}.", code="account_not_found")
    return account_id


def both(method: str, path: str):  # noqa: ANN201
    """Register a handler under /v1{path} and /admin/accounts/{account}{path}."""
    def register(handler):  # noqa: ANN001, ANN202
        routes.route(method, "/v1" + path)(handler)
        routes.route(method, "/admin/accounts/{account}" + path)(handler)
        return handler
    return register


# --- inbound ---------------------------------------------------------------------------------------------------
@both("GET", "/inbound")
async def list_inbound(request: web.Request) -> web.Response:
    account_id = await _account(request)
    q = request.query
    stmt = select(InboundMessage).where(InboundMessage.account_id == account_id)
    if (to := query_phone(request, "to", short_codes=True)) is not None:
        stmt = stmt.where(InboundMessage.number == to)
    if (source := query_phone(request, "from", short_codes=True)) is not None:
        stmt = stmt.where(InboundMessage.source == source)
    if "keyword" in q:
        stmt = stmt.where(InboundMessage.keyword == q["keyword"].upper())
    limit = query_limit(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        if "before" in q:
            before = await session.scalar(select(InboundMessage.id).where(InboundMessage.public_id == q["before"],
                                                                          InboundMessage.account_id == account_id))
            if before is None:
                raise BadRequest("before must be an id from a previous page.", code="invalid_query")
            stmt = stmt.where(InboundMessage.id < before)
        rows = (await session.scalars(stmt.order_by(InboundMessage.id.desc()).limit(limit))).all()
    items = [inbound_view(m) for m in rows]
    return web.json_response({"inbound": items, "next": items[-1]["id"] if len(items) == limit else None})


@both("GET", "/inbound/{id}")
async def get_inbound(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        m = await session.scalar(select(InboundMessage).where(InboundMessage.public_id == request.match_info["id"],
                                                              InboundMessage.account_id == account_id))
    if m is None:
        raise NotFound("No such inbound message in this account.", code="inbound_not_found")
    return web.json_response(inbound_view(m))


# --- numbers' two-way settings ---------------------------------------------------------------------------------
def number_view(n: Number) -> dict:
    return {"number": n.number, "type": n.type, "country": n.country, "capabilities": n.capabilities.split(","),
            "status": n.status, "message_type": n.message_type, "two_way_enabled": n.two_way_enabled,
            "two_way_webhook_url": n.two_way_webhook_url, "opt_out_list": n.opt_out_list,
            "self_managed_opt_outs": n.self_managed_opt_outs, "help_message": n.help_message,
            "stop_message": n.stop_message}


async def _number(session, account_id: int, value: str) -> Number:  # noqa: ANN001
    number = await session.scalar(select(Number).where(Number.account_id == account_id, Number.number == value,
                                                       Number.status != "released"))
    if number is None:
        raise NotFound(f"{value} is not a number of this account.", code="number_not_found")
    return number


@both("GET", "/numbers")
async def list_numbers(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Number).where(Number.account_id == account_id,
                                                           Number.status != "released").order_by(Number.id))).all()
    return web.json_response({"numbers": [number_view(n) for n in rows]})


@both("PATCH", "/numbers/{number}")
async def update_number(request: web.Request) -> web.Response:
    account_id = await _account(request)
    data = await read_json_object(request)
    f = Fields(data, {"two_way_enabled", "two_way_webhook_url", "opt_out_list", "self_managed_opt_outs",
                      "help_message", "stop_message"})
    f.not_null("two_way_enabled", "self_managed_opt_outs")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "two_way_webhook_url")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _number(session, account_id, request.match_info["number"])
        if "two_way_enabled" in data:
            n.two_way_enabled = bool(f.boolean("two_way_enabled"))
        if "self_managed_opt_outs" in data:
            n.self_managed_opt_outs = bool(f.boolean("self_managed_opt_outs"))
        if "two_way_webhook_url" in data:
            n.two_way_webhook_url = urls["two_way_webhook_url"]
        if "opt_out_list" in data:
            n.opt_out_list = valid_list_name(f.text("opt_out_list") or None, field="opt_out_list", default=None)
        for name in ("help_message", "stop_message"):
            if name in data:
                setattr(n, name, f.text(name, max_length=1600) or None)
        if n.two_way_enabled and not n.two_way_webhook_url:
            raise Unprocessable("Two-way needs a webhook URL to forward inbound messages to.",
                                code="missing_webhook_url", details={"field": "two_way_webhook_url"})
        return web.json_response(number_view(n))


# --- keywords --------------------------------------------------------------------------------------------------
def keyword_view(k: NumberKeyword) -> dict:
    return {"keyword": k.keyword, "action": k.action, "message": k.message, "created_at": iso(k.created_at)}


@both("GET", "/numbers/{number}/keywords")
async def list_keywords(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await _number(session, account_id, request.match_info["number"])
        rows = (await session.scalars(select(NumberKeyword).where(NumberKeyword.number_id == n.id)
                                      .order_by(NumberKeyword.keyword))).all()
    reserved = {"opt_out": sorted(kw.OPT_OUT_WORDS), "opt_in": sorted(kw.OPT_IN_WORDS), "help": sorted(kw.HELP_WORDS)}
    return web.json_response({"keywords": [keyword_view(k) for k in rows], "reserved": reserved})


@both("PUT", "/numbers/{number}/keywords/{keyword}")
async def set_keyword(request: web.Request) -> web.Response:
    account_id = await _account(request)
    f = Fields(await read_json_object(request), {"action", "message"})
    action = f.text("action", required=True) or ""
    message = f.text("message")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _number(session, account_id, request.match_info["number"])
        word = request.match_info["keyword"].strip().upper()
        existing = await session.scalar(select(NumberKeyword).where(NumberKeyword.number_id == n.id,
                                                                    NumberKeyword.keyword == word))
        count = await session.scalar(select(func.count()).select_from(NumberKeyword)
                                     .where(NumberKeyword.number_id == n.id))
        try:
            valid = kw.validate_keyword(word, action, message, count - (1 if existing else 0))
        except kw.KeywordError as exc:
            cls = Conflict if exc.code == "too_many_keywords" else Unprocessable
            raise cls(str(exc), code=exc.code) from None
        if existing is None:
            existing = NumberKeyword(number_id=n.id, keyword=valid.keyword)
            session.add(existing)
        existing.action, existing.message = valid.action, valid.message
        await session.flush()
        return web.json_response(keyword_view(existing), status=200)


@both("DELETE", "/numbers/{number}/keywords/{keyword}")
async def delete_keyword(request: web.Request) -> web.Response:
    account_id = await _account(request)
    word = request.match_info["keyword"].strip().upper()
    if word in kw.RESERVED:
        raise Conflict(f"{word} is a reserved keyword and cannot be removed.", code="reserved_keyword")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _number(session, account_id, request.match_info["number"])
        result = await session.execute(delete(NumberKeyword).where(NumberKeyword.number_id == n.id,
                                                                   NumberKeyword.keyword == word))
    if result.rowcount == 0:
        raise NotFound(f"{word} is not a keyword of this number.", code="keyword_not_found")
    return web.json_response({"deleted": word})


# --- opt-out lists ---------------------------------------------------------------------------------------------
def optout_view(o: OptOut) -> dict:
    return {"phone": o.phone, "list": o.list_name, "source": o.source, "created_at": iso(o.created_at)}


@both("GET", "/opt-outs")
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


@both("POST", "/opt-outs")
async def add_optout(request: web.Request) -> web.Response:
    account_id = await _account(request)
    f = Fields(await read_json_object(request), {"phone", "list"})
    phone = e164(f.text("phone", required=True) or "", field="phone")
    name = valid_list_name(f.text("list"))
    added = await _add_optouts(request, account_id, [phone], name, "api")
    return web.json_response({"phone": phone, "list": name, "added": bool(added)}, status=201 if added else 200)


@both("DELETE", "/opt-outs/{phone}")
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


@both("POST", "/opt-outs/import")
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


@both("GET", "/opt-outs/export")
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


@routes.get("/admin/numbers/{number}")
async def admin_number(request: web.Request) -> web.Response:
    """A number and the account leasing it (what the CLI looks up before acting on a number)."""
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await session.scalar(select(Number).where(Number.number == request.match_info["number"],
                                                      Number.status != "released"))
    if n is None:
        raise NotFound(f"No number {request.match_info['number']}.", code="number_not_found")
    return web.json_response({**number_view(n), "account_id": n.account_id})
