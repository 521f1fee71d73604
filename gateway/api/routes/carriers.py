"""The operator's view of the carriers: each one's binds and health."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.sending.health import carrier_views

routes = web.RouteTableDef()


@routes.get("/admin/carriers")
async def list_carriers(request: web.Request) -> web.Response:
    dispatcher = request.app[app_keys.DISPATCHER]
    return web.json_response({"carriers": carrier_views(request.app[app_keys.CARRIERS].carriers,
                                                        dispatcher.health)})
