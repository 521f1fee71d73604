"""The operator's route table: the configured routes and those added here (kept in the database), and which route
and carrier a message would take."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.sending import route_store

routes = web.RouteTableDef()


@routes.get("/admin/routes")
async def list_routes(request: web.Request) -> web.Response:
    return web.json_response({"routes": route_store.table_view(request.app[app_keys.DISPATCHER].router)})


@routes.post("/admin/routes")
async def add_route(request: web.Request) -> web.Response:
    view = await route_store.add(request.app[app_keys.SESSIONMAKER], request.app[app_keys.DISPATCHER].router,
                                 await read_json_object(request))
    return web.json_response(view, status=201)


@routes.delete("/admin/routes/{name}")
async def remove_route(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await route_store.remove(request.app[app_keys.SESSIONMAKER], request.app[app_keys.DISPATCHER].router, name)
    return web.json_response({"deleted": name})


@routes.post("/admin/routes/test")
async def test_route(request: web.Request) -> web.Response:
    answer = await route_store.test(request.app[app_keys.SESSIONMAKER], request.app[app_keys.DISPATCHER].router,
                                    await read_json_object(request))
    return web.json_response(answer)
