"""Webhook deliveries: list, show, replay (the customer's, and for operators any account's)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gateway.api import app_keys
from gateway.api.routes._scope import acting_account as _acting_account
from gateway.errors import NotFound
from gateway.sending.messages import iso
from gateway.store.models import WebhookAttempt, WebhookDelivery
from gateway.validation import query_choice, query_limit
from gateway.webhooks.sender import replay

routes = web.RouteTableDef()
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _delivery_view(d: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> dict:
    view = {"id": d.public_id, "kind": d.kind, "event_type": d.event_type, "url": d.url, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": iso(d.created_at), "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending"
            else None, "delivered_at": iso(d.delivered_at)}
    if attempts is not None:
        view["attempt_log"] = [{"at": iso(a.at), "status_code": a.status_code, "error": a.error,
                                "duration_ms": a.duration_ms} for a in attempts]
    return view



@routes.get("/v1/webhooks/deliveries")
@routes.get("/admin/accounts/{account}/webhooks/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    limit = query_limit(request)
    stmt = select(WebhookDelivery).where(WebhookDelivery.account_id == await _acting_account(request))
    if (status := query_choice(request, "status", DELIVERY_STATUSES)) is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))).all()
    return web.json_response({"deliveries": [_delivery_view(d) for d in rows]})


@routes.get("/v1/webhooks/deliveries/{id}")
@routes.get("/admin/accounts/{account}/webhooks/deliveries/{id}")
async def get_delivery(request: web.Request) -> web.Response:
    account_id = await _acting_account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session:
        d = await session.scalar(select(WebhookDelivery).where(
            WebhookDelivery.public_id == request.match_info["id"], WebhookDelivery.account_id == account_id))
        if d is None:
            raise NotFound("No such webhook delivery in this account.", code="delivery_not_found")
        attempts = (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.id)
                                          .order_by(WebhookAttempt.id))).all()
        return web.json_response(_delivery_view(d, list(attempts)))


@routes.post("/v1/webhooks/deliveries/{id}/replay")
@routes.post("/admin/accounts/{account}/webhooks/deliveries/{id}/replay")
async def replay_delivery(request: web.Request) -> web.Response:
    account_id = await _acting_account(request)
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        if not await replay(session, account_id, request.match_info["id"]):
            raise NotFound("No such webhook delivery in this account.", code="delivery_not_found")
    request.app[app_keys.WEBHOOKS].notify()
    return web.json_response({"id": request.match_info["id"], "status": "pending"}, status=202)
