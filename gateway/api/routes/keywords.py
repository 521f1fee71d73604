"""A number's keywords (the customer's, and for operators any account's): list, set, delete."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.api.routes._scope import acting_account, both
from gateway.store.models import NumberKeyword
from gateway.two_way import keywords
from gateway.validation import Fields
from registry.db import iso

routes = web.RouteTableDef()


def keyword_view(k: NumberKeyword) -> dict:
    return {"keyword": k.keyword, "action": k.action, "message": k.message, "created_at": iso(k.created_at)}


@both(routes, "GET", "/numbers/{number}/keywords")
async def list_keywords(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    rows = await keywords.number_keywords(request.app[app_keys.SESSIONMAKER], account_id,
                                          request.match_info["number"])
    return web.json_response({"keywords": [keyword_view(k) for k in rows], "reserved": keywords.RESERVED})


@both(routes, "PUT", "/numbers/{number}/keywords/{keyword}")
async def set_keyword(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    f = Fields(await read_json_object(request), {"action", "message"})
    action = f.text("action", required=True) or ""
    keyword = await keywords.set_keyword(request.app[app_keys.SESSIONMAKER], account_id, request.match_info["number"],
                                         request.match_info["keyword"], action, f.text("message"))
    return web.json_response(keyword_view(keyword), status=200)


@both(routes, "DELETE", "/numbers/{number}/keywords/{keyword}")
async def delete_keyword(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    word = await keywords.delete_keyword(request.app[app_keys.SESSIONMAKER], account_id, request.match_info["number"],
                                         request.match_info["keyword"])
    return web.json_response({"deleted": word})
