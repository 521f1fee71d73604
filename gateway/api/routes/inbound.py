"""Inbound messages: the customer's (/v1) and, for operators, any account's."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_limit, query_phone
from gateway.api.routes._scope import acting_account, both
from gateway.two_way import inbox
from gateway.two_way.inbound import inbound_view

routes = web.RouteTableDef()


@both(routes, "GET", "/inbound")
async def list_inbound(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    q = request.query
    to = query_phone(request, "to", short_codes=True)
    source = query_phone(request, "from", short_codes=True)
    limit = query_limit(request)
    rows = await inbox.list_inbound(request.app[app_keys.SESSIONMAKER], account_id, to=to, source=source,
                                    keyword=q.get("keyword"), before=q.get("before"), limit=limit)
    items = [inbound_view(m) for m in rows]
    return web.json_response({"inbound": items, "next": items[-1]["id"] if len(items) == limit else None})


@both(routes, "GET", "/inbound/{id}")
async def get_inbound(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    message = await inbox.get_inbound(request.app[app_keys.SESSIONMAKER], account_id, request.match_info["id"])
    return web.json_response(inbound_view(message))
