"""Numbers: the customer's numbers and their two-way settings; operators' inventory, leases, lifecycle."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway.api import app_keys
from gateway.api.routes._scope import acting_account as _account, both, raise_registry_error as _raise
from gateway.errors import BadRequest, NotFound, Unprocessable
from gateway.store.db import insert_new
from gateway.validation import (
    Fields,
    csv_chunks,
    paced,
    read_body,
    read_json_object,
    row_id,
    valid_list_name,
)
from registry import inventory, tcr
from registry.models import Account, Number

routes = web.RouteTableDef()


OPERATOR = "operator"


async def _admin_number(session, value: str, account_id: int | None = None) -> Number:  # noqa: ANN001
    number = await session.scalar(select(Number).where(Number.number == value))
    if number is None or (account_id is not None and number.account_id != account_id):
        raise NotFound(f"No number {value}.", code="number_not_found")
    return number


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


@both(routes, "GET", "/numbers")
async def list_numbers(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Number).where(Number.account_id == account_id,
                                                           Number.status != "released").order_by(Number.id))).all()
    return web.json_response({"numbers": [number_view(n) for n in rows]})


@both(routes, "PATCH", "/numbers/{number}")
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


@routes.get("/admin/numbers/{number}")
async def admin_number(request: web.Request) -> web.Response:
    """A number and the account leasing it (what the CLI looks up before acting on a number)."""
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await session.scalar(select(Number).where(Number.number == request.match_info["number"],
                                                      Number.status != "released"))
    if n is None:
        raise NotFound(f"No number {request.match_info['number']}.", code="number_not_found")
    return web.json_response({**number_view(n), "account_id": n.account_id})


def full_number_view(n: Number) -> dict[str, Any]:
    return {**number_view(n), "id": n.id, "account_id": n.account_id, "carrier": n.carrier,
            "monthly_price": n.monthly_price, "deletion_protection": n.deletion_protection,
            "campaign_id": n.campaign_id, "international": n.international,
            "registry_due_at": n.registry_due_at.isoformat().replace("+00:00", "Z") if n.registry_due_at else None}


# --- inventory -----------------------------------------------------------------------------------------------------
@routes.post("/admin/inventory/import")
async def import_inventory(request: web.Request) -> web.Response:
    """CSV: number,type,country,capabilities,carrier,monthly_price (a header may name them in another order; without
    one, this order). Every row that is not blank is counted once: added, or rejected with its line and why.
    Written IMPORT_CHUNK rows to a short transaction."""
    raw = await read_body(request)
    carriers = {c.name for c in request.app[app_keys.SETTINGS].carriers}
    columns: list[str] = list(inventory.COLUMNS)
    added, errors, counted = 0, [], 0
    async with request.app[app_keys.SESSIONMAKER]() as session:
        have = set((await session.scalars(select(Number.number))).all())
    async for chunk in csv_chunks(raw):
        new: dict[str, tuple[int, list[str], dict[str, Any]]] = {}
        async for line_no, row in paced(chunk):
            if line_no == 1 and inventory.is_header(row):
                try:
                    columns = inventory.header_columns(row)
                except inventory.RowError as exc:
                    raise BadRequest(str(exc), code=exc.code) from None  # missing_columns, unknown_columns
                continue
            counted += 1
            try:
                fields = inventory.number_fields(row, columns, carriers)
                if fields["number"] in have:
                    raise inventory.RowError("duplicate", f"{fields['number']} is in the inventory already")
            except inventory.RowError as exc:
                errors.append(_row_error(line_no, row, exc.code, str(exc)))
                continue
            new[fields["number"]] = (line_no, row, {**fields, "status": "active", "account_id": None})
            have.add(fields["number"])
        if new:
            async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
                stored = set((await session.scalars(insert_new(session, Number, ("number",)).returning(Number.number),
                                                    [v for _, _, v in new.values()])).all())
            added += len(stored)
            errors += [_row_error(line_no, row, "duplicate", f"{n} is in the inventory already")
                       for n, (line_no, row, _) in new.items() if n not in stored]  # added meanwhile by another
    errors.sort(key=lambda e: e["line"])
    return web.json_response({"rows": counted, "added": added, "rejected": len(errors), "errors": errors[:1000]})


def _row_error(line_no: int, row: list[str], code: str, message: str) -> dict[str, Any]:
    return {"line": line_no, "value": ",".join(row)[:80], "error": code, "message": message}


# --- numbers -------------------------------------------------------------------------------------------------------
@routes.get("/admin/numbers")
async def admin_list_numbers(request: web.Request) -> web.Response:
    q = request.query
    stmt = select(Number).order_by(Number.id)
    if "account" in q:
        account_id = row_id(q["account"])
        stmt = stmt.where(Number.account_id == account_id if account_id is not None else Number.id < 0)
    if q.get("free", "true") not in ("true", "false"):
        raise BadRequest("free is true or false.", code="invalid_query")
    if q.get("free") == "true":
        stmt = stmt.where(Number.account_id.is_(None), Number.status != "released")
    if "type" in q:
        stmt = stmt.where(Number.type == q["type"])
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(stmt)).all()
    return web.json_response({"numbers": [full_number_view(n) for n in rows]})


@routes.post("/admin/numbers/lease")
async def lease_number(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"account_id", "type", "country", "capabilities"})
    account_id = f.integer("account_id", minimum=1)
    kind = f.text("type", required=True) or ""
    if kind not in tcr.NUMBER_TYPES:
        raise Unprocessable(f"type must be one of {', '.join(tcr.NUMBER_TYPES)}.", code="invalid_field")
    caps = set((f.text("capabilities") or "sms").split(","))
    if not caps <= set(tcr.CAPABILITIES):
        raise Unprocessable("capabilities are sms and/or voice.", code="invalid_field")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        try:
            number = await tcr.lease(session, account_id, kind, (f.text("country") or "US").upper(), caps, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        await session.flush()
        return web.json_response(full_number_view(number), status=201)


@routes.get("/admin/numbers/{number}/registry")
async def show_number(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await _admin_number(session, request.match_info["number"])
        return web.json_response({**full_number_view(n), "history": await tcr.history(session, "number", n.id)})


@routes.patch("/admin/numbers/{number}")
async def admin_update_number(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, {"two_way_enabled", "two_way_webhook_url", "message_type", "opt_out_list",
                      "deletion_protection", "international"})
    f.not_null("two_way_enabled", "deletion_protection", "international", "message_type")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "two_way_webhook_url")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _admin_number(session, request.match_info["number"])
        for name in ("two_way_enabled", "deletion_protection", "international"):
            if name in data:
                setattr(n, name, bool(f.boolean(name)))
        if "two_way_webhook_url" in data:
            n.two_way_webhook_url = urls["two_way_webhook_url"]
        if "message_type" in data:
            mt = f.text("message_type")
            if mt not in ("transactional", "promotional"):
                raise Unprocessable("message_type is transactional or promotional.", code="invalid_field")
            n.message_type = mt
        if "opt_out_list" in data:
            n.opt_out_list = valid_list_name(f.text("opt_out_list") or None, field="opt_out_list", default=None)
        return web.json_response(full_number_view(n))


@routes.post("/admin/numbers/{number}/{action:activate|release}")
async def number_action(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _admin_number(session, request.match_info["number"])
        try:
            if request.match_info["action"] == "activate":
                await tcr.activate(session, n, OPERATOR)
            else:
                await tcr.release(session, n, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(full_number_view(n))

