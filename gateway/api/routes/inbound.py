"""Inbound messages: the customer's (/v1) and, for operators, any account's."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gateway.api import app_keys
from gateway.api.routes._scope import acting_account as _account, both
from gateway.errors import BadRequest, NotFound
from gateway.store.models import InboundMessage
from gateway.two_way.inbound import inbound_view
from gateway.validation import (
    query_limit,
    query_phone,
)

routes = web.RouteTableDef()



@both(routes, "GET", "/inbound")
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


@both(routes, "GET", "/inbound/{id}")
async def get_inbound(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        m = await session.scalar(select(InboundMessage).where(InboundMessage.public_id == request.match_info["id"],
                                                              InboundMessage.account_id == account_id))
    if m is None:
        raise NotFound("No such inbound message in this account.", code="inbound_not_found")
    return web.json_response(inbound_view(m))

