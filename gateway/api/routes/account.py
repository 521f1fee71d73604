"""The customer's own account: settings, the event webhook URL, the secret that signs webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.errors import Unprocessable
from gateway.store import accounts
from gateway.validation import Fields
from gateway.webhooks.catalog import parse_selection, selection_view
from gateway.webhooks.sender import MAX_BATCH
from registry.models import Account

routes = web.RouteTableDef()


def _view(account: Account) -> dict:
    return {"id": account.id, "name": account.name, "max_rate_per_s": account.max_rate_per_s,
            "event_webhook_url": account.event_webhook_url, "webhook_secret": account.webhook_secret,
            "program_name": account.program_name, "support_contact": account.support_contact,
            "message_frequency": account.message_frequency, "smart_encoding": account.smart_encoding,
            "quiet_hours": account.quiet_hours, "queue_policy": account.queue_policy,
            "max_queued": account.max_queued, "webhook_events": selection_view(account.webhook_events),
            "webhook_batch_size": account.webhook_batch_size}


@routes.get("/v1/account")
async def get_account(request: web.Request) -> web.Response:
    account = await accounts.get_account(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID])
    return web.json_response(_view(account))


@routes.patch("/v1/account")
async def update_account(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, {"event_webhook_url", "program_name", "support_contact", "message_frequency", "smart_encoding",
                      "quiet_hours", "queue_policy", "max_queued", "webhook_events", "webhook_batch_size"})
    f.not_null("smart_encoding", "quiet_hours", "queue_policy", "max_queued", "webhook_events", "webhook_batch_size")
    webhook_events = parse_selection(data.get("webhook_events"), "webhook_events")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "event_webhook_url")
    changes: dict[str, Any] = {}
    if "event_webhook_url" in data:
        changes["event_webhook_url"] = urls["event_webhook_url"]
    changes.update({name: f.text(name, max_length=200) or None for name in ("program_name", "support_contact")
                    if name in data})
    if "message_frequency" in data:
        changes["message_frequency"] = f.text("message_frequency", max_length=100) or None
    changes.update({name: bool(f.boolean(name)) for name in ("smart_encoding", "quiet_hours") if name in data})
    if "queue_policy" in data:
        policy = f.text("queue_policy")
        if policy not in ("queue", "reject"):
            raise Unprocessable("queue_policy must be queue or reject.", code="invalid_field",
                                details={"field": "queue_policy"})
        changes["queue_policy"] = policy
    if "max_queued" in data:
        changes["max_queued"] = f.integer("max_queued", minimum=1, maximum=100_000_000)
    if "webhook_events" in data:
        changes["webhook_events"] = webhook_events
    if "webhook_batch_size" in data:
        changes["webhook_batch_size"] = f.integer("webhook_batch_size", minimum=1, maximum=MAX_BATCH)
    account = await accounts.update_account(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID], changes)
    return web.json_response(_view(account))


@routes.post("/v1/account/webhook-secret")
async def rotate_secret(request: web.Request) -> web.Response:
    account = await accounts.rotate_webhook_secret(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID])
    return web.json_response(_view(account))
