"""What the customer (/v1) and operator (/admin/accounts/{account}) routes of one resource share."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web

from gateway.api import app_keys
from gateway.errors import Conflict, NotFound, Unprocessable
from gateway.validation import row_id
from registry import tcr
from registry.models import Account

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def acting_account(request: web.Request) -> int:
    """The account a request acts for: the caller's (/v1) or the one in the path (/admin)."""
    if app_keys.ACCOUNT_ID in request:
        return request[app_keys.ACCOUNT_ID]
    account_id = row_id(request.match_info["account"])
    async with request.app[app_keys.SESSIONMAKER]() as session:
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {request.match_info['account']}.", code="account_not_found")
    return account_id


def both(routes: web.RouteTableDef, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler under /v1{path} and /admin/accounts/{account}{path}."""
    def register(handler: Handler) -> Handler:
        routes.route(method, "/v1" + path)(handler)
        routes.route(method, "/admin/accounts/{account}" + path)(handler)
        return handler
    return register


def raise_registry_error(exc: tcr.RegistryError) -> None:
    cls = {"conflict": Conflict, "not_found": NotFound, "invalid": Unprocessable}[exc.kind]
    raise cls(str(exc), code=exc.code) from None
