"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.store import db

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = {"database": await db.ready(request.app[app_keys.ENGINE]), "carrier": request.app[app_keys.CARRIERS].ready}
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)
