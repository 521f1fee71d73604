"""What the customer (/v1) and operator (/admin/accounts/{account}) routes of one resource share."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from gateway.api import app_keys
from gateway.store import accounts
from gateway.validation import row_id

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPERATOR = "operator"  # the actor recorded for a registry change made through an /admin route


async def acting_account(request: web.Request) -> int:
    """The account a request acts for: the caller's (/v1) or the one in the path (/admin; 404 if there is none)."""
    if app_keys.ACCOUNT_ID in request:
        return request[app_keys.ACCOUNT_ID]
    shown = request.match_info["account"]
    return (await accounts.get_account(request.app[app_keys.SESSIONMAKER], row_id(shown), shown)).id


def both(routes: web.RouteTableDef, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler under /v1{path} and /admin/accounts/{account}{path}."""
    def register(handler: Handler) -> Handler:
        routes.route(method, "/v1" + path)(handler)
        routes.route(method, "/admin/accounts/{account}" + path)(handler)
        return handler
    return register
