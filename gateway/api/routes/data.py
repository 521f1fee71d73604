"""Erasure: DELETE /v1/data?phone=... removes what the account holds about one person (gateway.store.retention),
and says what; operators do it for an account at /admin/accounts/{account}/data."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_phone
from gateway.api.routes._scope import acting_account, both
from gateway.errors import BadRequest
from gateway.store import retention

routes = web.RouteTableDef()


@both(routes, "DELETE", "/data")
async def erase_person(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    settings = request.app[app_keys.SETTINGS]
    phone = query_phone(request, "phone", default_region=settings.messages.default_country)
    if phone is None:
        raise BadRequest("Say whose data to remove: ?phone=<phone number>.", code="missing_parameter",
                         details={"parameter": "phone"})
    return web.json_response(await retention.erase(request.app[app_keys.SESSIONMAKER], account_id, phone))
