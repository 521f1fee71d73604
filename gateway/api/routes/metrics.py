"""GET /metrics: the app's metrics in Prometheus text format (the operator token or the scrape token opens it)."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.metrics import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    exported = request.app[app_keys.METRICS]
    await exported.refresh(request.app[app_keys.SESSIONMAKER])  # read from the database at most every few seconds
    return web.Response(body=exported.exposition(), headers={"Content-Type": CONTENT_TYPE})
