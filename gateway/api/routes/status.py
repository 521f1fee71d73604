"""GET /admin/status: this instance as an operator checks it (gateway.sending.status; gatewayctl status)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys

routes = web.RouteTableDef()


@routes.get("/admin/status")
async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[app_keys.STATUS].report())
