"""Operator routes (the operator token): accounts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.errors import NotFound, Unprocessable
from gateway.store import accounts
from gateway.validation import Fields, row_id
from registry.db import iso
from registry.models import Account

routes = web.RouteTableDef()


def account_view(account: Account) -> dict:
    return {"id": account.id, "name": account.name, "status": account.status,
            "max_rate_per_s": account.max_rate_per_s, "event_webhook_url": account.event_webhook_url,
            "created_at": iso(account.created_at)}


@routes.post("/admin/accounts")
async def create_account(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"name", "max_rate_per_s"})
    name = f.text("name", required=True, max_length=200, allow_empty=False) or ""
    rate = f.integer("max_rate_per_s", minimum=1, maximum=10_000)
    account, key = await accounts.open_account(request.app[app_keys.SESSIONMAKER], name, rate=rate)
    return web.json_response({**account_view(account), "api_key": key}, status=201)


@routes.get("/admin/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    rows = await accounts.list_accounts(request.app[app_keys.SESSIONMAKER])
    return web.json_response({"accounts": [account_view(a) for a in rows]})


@routes.patch("/admin/accounts/{id}")
async def update_account(request: web.Request) -> web.Response:
    """The operator's account settings: the send rate (raised on request) and whether the account is active."""
    account_id = _int_id(request)
    data = await read_json_object(request)
    f = Fields(data, {"max_rate_per_s", "status"})
    f.not_null("max_rate_per_s", "status")
    changes: dict[str, Any] = {}
    if "max_rate_per_s" in data:
        changes["max_rate_per_s"] = f.integer("max_rate_per_s", minimum=1, maximum=10_000)
    if "status" in data:
        status = f.text("status")
        if status not in ("active", "suspended"):
            raise Unprocessable("status is active or suspended.", code="invalid_field")
        changes["status"] = status
    account = await accounts.update_account(request.app[app_keys.SESSIONMAKER], account_id, changes)
    request.app[app_keys.AUTH].forget()
    return web.json_response(account_view(account))


@routes.post("/admin/accounts/{id}/keys")
async def new_key(request: web.Request) -> web.Response:
    account_id = _int_id(request)
    key = await accounts.new_api_key(request.app[app_keys.SESSIONMAKER], account_id)
    return web.json_response({"account_id": account_id, "api_key": key}, status=201)


def _int_id(request: web.Request, name: str = "id") -> int:
    value = row_id(request.match_info[name])
    if value is None:
        raise NotFound(f"No account {request.match_info[name]}.", code="account_not_found")
    return value
