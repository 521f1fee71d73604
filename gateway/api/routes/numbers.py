"""Numbers: the customer's numbers and their two-way settings (/v1, and /admin/accounts/{account}); operators'
inventory import, listing, leases, lifecycle and settings (/admin)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_body, read_json_object
from gateway.api.routes._scope import OPERATOR, acting_account, both
from gateway.errors import BadRequest, Unprocessable
from gateway.numbers import inventory, lifecycle
from gateway.two_way import numbers as two_way
from gateway.validation import Fields, row_id, valid_list_name
from registry import states
from registry.models import Number

routes = web.RouteTableDef()


def number_view(n: Number) -> dict:
    return {"number": n.number, "type": n.type, "country": n.country, "capabilities": n.capabilities.split(","),
            "status": n.status, "message_type": n.message_type, "two_way_enabled": n.two_way_enabled,
            "two_way_webhook_url": n.two_way_webhook_url, "opt_out_list": n.opt_out_list,
            "self_managed_opt_outs": n.self_managed_opt_outs, "help_message": n.help_message,
            "stop_message": n.stop_message}


def full_number_view(n: Number) -> dict[str, Any]:
    return {**number_view(n), "id": n.id, "account_id": n.account_id, "carrier": n.carrier,
            "monthly_price": n.monthly_price, "deletion_protection": n.deletion_protection,
            "campaign_id": n.campaign_id, "international": n.international}


# --- the customer's numbers --------------------------------------------------------------------------------------
@both(routes, "GET", "/numbers")
async def list_numbers(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    rows = await two_way.account_numbers(request.app[app_keys.SESSIONMAKER], account_id)
    return web.json_response({"numbers": [number_view(n) for n in rows]})


@both(routes, "PATCH", "/numbers/{number}")
async def update_number(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    data = await read_json_object(request)
    f = Fields(data, {"two_way_enabled", "two_way_webhook_url", "opt_out_list", "self_managed_opt_outs",
                      "help_message", "stop_message"})
    f.not_null("two_way_enabled", "self_managed_opt_outs")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "two_way_webhook_url")
    changes: dict[str, Any] = {name: bool(f.boolean(name)) for name in ("two_way_enabled", "self_managed_opt_outs")
                               if name in data}
    if "two_way_webhook_url" in data:
        changes["two_way_webhook_url"] = urls["two_way_webhook_url"]
    if "opt_out_list" in data:
        changes["opt_out_list"] = valid_list_name(f.text("opt_out_list") or None, field="opt_out_list", default=None)
    changes.update({name: f.text(name, max_length=1600) or None for name in ("help_message", "stop_message")
                    if name in data})
    number = await two_way.update_settings(request.app[app_keys.SESSIONMAKER], account_id,
                                           request.match_info["number"], changes)
    return web.json_response(number_view(number))


# --- operators: inventory -------------------------------------------------------------------------------------------
@routes.post("/admin/inventory/import")
async def import_inventory(request: web.Request) -> web.Response:
    """CSV: number,type,country,capabilities,carrier,monthly_price (gateway.numbers.inventory.import_csv)."""
    raw = await read_body(request)
    carriers = {c.name for c in request.app[app_keys.SETTINGS].carriers}
    return web.json_response(await inventory.import_csv(request.app[app_keys.SESSIONMAKER], raw, carriers))


@routes.get("/admin/numbers")
async def admin_list_numbers(request: web.Request) -> web.Response:
    q = request.query
    account_id = None
    if "account" in q:
        account_id = row_id(q["account"])
        if account_id is None:
            account_id = 0  # an id no account has: nothing matches
    if q.get("free", "true") not in ("true", "false"):
        raise BadRequest("free is true or false.", code="invalid_query")
    rows = await lifecycle.list_numbers(request.app[app_keys.SESSIONMAKER], account_id=account_id,
                                        free=q.get("free") == "true", kind=q.get("type"))
    return web.json_response({"numbers": [full_number_view(n) for n in rows]})


@routes.get("/admin/numbers/{number}")
async def admin_number(request: web.Request) -> web.Response:
    """A number and the account leasing it (what the CLI looks up before acting on a number)."""
    n = await lifecycle.get_number(request.app[app_keys.SESSIONMAKER], request.match_info["number"], released=False)
    return web.json_response({**number_view(n), "account_id": n.account_id})


@routes.post("/admin/numbers/lease")
async def lease_number(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"account_id", "type", "country", "capabilities"})
    account_id = f.integer("account_id", minimum=1)
    kind = f.text("type", required=True) or ""
    if kind not in states.NUMBER_TYPES:
        raise Unprocessable(f"type must be one of {', '.join(states.NUMBER_TYPES)}.", code="invalid_field")
    caps = set((f.text("capabilities") or "sms").split(","))
    if not caps <= set(states.CAPABILITIES):
        raise Unprocessable("capabilities are sms and/or voice.", code="invalid_field")
    number = await lifecycle.lease(request.app[app_keys.SESSIONMAKER], account_id, kind,
                                   (f.text("country") or "US").upper(), caps, OPERATOR)
    return web.json_response(full_number_view(number), status=201)


@routes.get("/admin/numbers/{number}/registry")
async def show_number(request: web.Request) -> web.Response:
    n, history = await lifecycle.number_history(request.app[app_keys.SESSIONMAKER], request.match_info["number"])
    return web.json_response({**full_number_view(n), "history": history})


@routes.patch("/admin/numbers/{number}")
async def admin_update_number(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, {"two_way_enabled", "two_way_webhook_url", "message_type", "opt_out_list",
                      "deletion_protection", "international"})
    f.not_null("two_way_enabled", "deletion_protection", "international", "message_type")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "two_way_webhook_url")
    changes: dict[str, Any] = {name: bool(f.boolean(name)) for name in
                               ("two_way_enabled", "deletion_protection", "international") if name in data}
    if "two_way_webhook_url" in data:
        changes["two_way_webhook_url"] = urls["two_way_webhook_url"]
    if "message_type" in data:
        mt = f.text("message_type")
        if mt not in ("transactional", "promotional"):
            raise Unprocessable("message_type is transactional or promotional.", code="invalid_field")
        changes["message_type"] = mt
    if "opt_out_list" in data:
        changes["opt_out_list"] = valid_list_name(f.text("opt_out_list") or None, field="opt_out_list", default=None)
    number = await lifecycle.update_number(request.app[app_keys.SESSIONMAKER], request.match_info["number"], changes)
    return web.json_response(full_number_view(number))


@routes.post("/admin/numbers/{number}/{action:activate|release}")
async def number_action(request: web.Request) -> web.Response:
    number = await lifecycle.change_state(request.app[app_keys.SESSIONMAKER], request.match_info["number"],
                                          request.match_info["action"], OPERATOR)
    return web.json_response(full_number_view(number))
