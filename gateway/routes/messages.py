"""Customer routes for outbound SMS."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gateway import keys
from gateway.errors import BadRequest
from gateway.models import Message
from gateway.services import messages as svc
from gateway.validation import query_limit, read_json_object

routes = web.RouteTableDef()


@routes.post("/v1/messages")
async def send_message(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    data = await read_json_object(request)
    req = svc.parse_send(data, settings.messages)
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not 1 <= len(idem) <= 200:
        raise BadRequest("Idempotency-Key must have 1 to 200 characters.", code="invalid_idempotency_key")
    account_id = request[keys.ACCOUNT_ID]
    async with request.app[keys.SESSIONMAKER]() as session, session.begin():
        message, created = await svc.accept(session, account_id, req, idempotency_key=idem)
        body = svc.message_summary(message)
    if req.dry_run:
        body.update(id=None, status="dry_run")
        return web.json_response(body, status=200)
    if created:
        request.app[keys.DISPATCHER].notify()
        request.app[keys.WEBHOOKS].notify()
    return web.json_response(body, status=202 if created else 200)


@routes.get("/v1/messages/{id}")
async def get_message(request: web.Request) -> web.Response:
    async with request.app[keys.SESSIONMAKER]() as session:
        message = await svc.get_message(session, request[keys.ACCOUNT_ID], request.match_info["id"])
        return web.json_response(await svc.message_view(session, message))


@routes.get("/v1/messages")
async def list_messages(request: web.Request) -> web.Response:
    q = request.query
    limit = query_limit(request)
    stmt = select(Message).where(Message.account_id == request[keys.ACCOUNT_ID])
    if "status" in q:
        stmt = stmt.where(Message.status == q["status"])
    if "to" in q:
        stmt = stmt.where(Message.destination == q["to"])
    if "before" in q:
        async with request.app[keys.SESSIONMAKER]() as session:
            before = await session.scalar(select(Message.id).where(Message.public_id == q["before"]))
        if before is None:
            raise BadRequest("before must be a message id from a previous page.", code="invalid_query")
        stmt = stmt.where(Message.id < before)
    async with request.app[keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(stmt.order_by(Message.id.desc()).limit(limit))).all()
    items = [svc.message_summary(m) for m in rows]
    return web.json_response({"messages": items, "next": items[-1]["id"] if len(items) == limit else None})
