"""Keywords of a number: list, set, delete."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, func, select

import keywords as kw
from gateway.api import app_keys
from gateway.api.routes._scope import acting_account as _account, both
from gateway.api.routes.numbers import _number
from gateway.errors import Conflict, NotFound, Unprocessable
from gateway.sending.messages import iso
from gateway.store.models import NumberKeyword
from gateway.validation import (
    Fields,
    read_json_object,
)

routes = web.RouteTableDef()



def keyword_view(k: NumberKeyword) -> dict:
    return {"keyword": k.keyword, "action": k.action, "message": k.message, "created_at": iso(k.created_at)}


@both(routes, "GET", "/numbers/{number}/keywords")
async def list_keywords(request: web.Request) -> web.Response:
    account_id = await _account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await _number(session, account_id, request.match_info["number"])
        rows = (await session.scalars(select(NumberKeyword).where(NumberKeyword.number_id == n.id)
                                      .order_by(NumberKeyword.keyword))).all()
    reserved = {"opt_out": sorted(kw.OPT_OUT_WORDS), "opt_in": sorted(kw.OPT_IN_WORDS), "help": sorted(kw.HELP_WORDS)}
    return web.json_response({"keywords": [keyword_view(k) for k in rows], "reserved": reserved})


@both(routes, "PUT", "/numbers/{number}/keywords/{keyword}")
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


@both(routes, "DELETE", "/numbers/{number}/keywords/{keyword}")
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

