"""Opt-out lists (the customer's, and for operators any account's): list, add, remove, import, export."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_limit, query_phone, read_body, read_json_object
from gateway.api.routes._scope import acting_account, both
from gateway.errors import BadRequest
from gateway.two_way import opt_outs
from gateway.validation import Fields, e164, row_id, valid_list_name
from registry.db import iso
from registry.models import OptOut

routes = web.RouteTableDef()


def optout_view(o: OptOut) -> dict:
    return {"phone": o.phone, "list": o.list_name, "source": o.source, "created_at": iso(o.created_at)}


@both(routes, "GET", "/opt-outs")
async def list_optouts(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    q = request.query
    phone = query_phone(request, "phone")
    before = None
    if "before" in q:
        before = row_id(q["before"])
        if before is None:
            raise BadRequest("before must be a cursor from a previous page.", code="invalid_query")
    limit = query_limit(request)
    rows, total = await opt_outs.list_opt_outs(request.app[app_keys.SESSIONMAKER], account_id,
                                               list_name=q.get("list"), phone=phone, before=before, limit=limit)
    return web.json_response({"opt_outs": [optout_view(o) for o in rows], "total": total,
                              "next": str(rows[-1].id) if len(rows) == limit else None})


@both(routes, "POST", "/opt-outs")
async def add_optout(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    f = Fields(await read_json_object(request), {"phone", "list"})
    phone = e164(f.text("phone", required=True) or "", field="phone")
    name = valid_list_name(f.text("list"))
    added = await opt_outs.add_opt_outs(request.app[app_keys.SESSIONMAKER], account_id, [phone], name, "api")
    return web.json_response({"phone": phone, "list": name, "added": bool(added)}, status=201 if added else 200)


@both(routes, "DELETE", "/opt-outs/{phone}")
async def remove_optout(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    phone = e164(request.match_info["phone"], field="phone")
    list_name = request.query.get("list", "default")
    await opt_outs.remove_opt_out(request.app[app_keys.SESSIONMAKER], account_id, phone, list_name)
    return web.json_response({"phone": phone, "list": list_name, "removed": True})


@both(routes, "POST", "/opt-outs/import")
async def import_optouts(request: web.Request) -> web.Response:
    """CSV with a phone column and, optionally, a list column (gateway.two_way.opt_outs.import_csv)."""
    account_id = await acting_account(request)
    raw = await read_body(request)
    default_list = valid_list_name(request.query.get("list"))
    return web.json_response(await opt_outs.import_csv(request.app[app_keys.SESSIONMAKER], account_id, raw,
                                                       default_list))


@both(routes, "GET", "/opt-outs/export")
async def export_optouts(request: web.Request) -> web.StreamResponse:
    account_id = await acting_account(request)
    text = await opt_outs.export_csv(request.app[app_keys.SESSIONMAKER], account_id, request.query.get("list"))
    return web.Response(text=text, content_type="text/csv")
