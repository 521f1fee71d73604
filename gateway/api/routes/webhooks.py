"""Webhook deliveries: list, show, replay (the customer's, and for operators any account's)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_choice, query_limit
from gateway.api.routes._scope import acting_account, both
from gateway.store.models import WebhookAttempt, WebhookDelivery
from gateway.webhooks import deliveries
from registry.db import iso

routes = web.RouteTableDef()


def _delivery_view(d: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> dict:
    view = {"id": d.public_id, "kind": d.kind, "event_type": d.event_type, "url": d.url, "status": d.status,
            "attempts": d.attempts, "last_status_code": d.last_status_code, "last_error": d.last_error,
            "created_at": iso(d.created_at), "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending"
            else None, "delivered_at": iso(d.delivered_at)}
    if attempts is not None:
        view["attempt_log"] = [{"at": iso(a.at), "status_code": a.status_code, "error": a.error,
                                "duration_ms": a.duration_ms} for a in attempts]
    return view


@both(routes, "GET", "/webhooks/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    limit = query_limit(request)
    account_id = await acting_account(request)
    status = query_choice(request, "status", deliveries.STATUSES)
    rows = await deliveries.list_deliveries(request.app[app_keys.SESSIONMAKER], account_id, status=status,
                                            limit=limit)
    return web.json_response({"deliveries": [_delivery_view(d) for d in rows]})


@both(routes, "GET", "/webhooks/deliveries/{id}")
async def get_delivery(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    delivery, attempts = await deliveries.get_delivery(request.app[app_keys.SESSIONMAKER], account_id,
                                                       request.match_info["id"])
    return web.json_response(_delivery_view(delivery, attempts))


@both(routes, "POST", "/webhooks/deliveries/{id}/replay")
async def replay_delivery(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    await deliveries.replay_delivery(request.app[app_keys.SESSIONMAKER], account_id, request.match_info["id"])
    request.app[app_keys.WEBHOOKS].notify()
    return web.json_response({"id": request.match_info["id"], "status": "pending"}, status=202)
