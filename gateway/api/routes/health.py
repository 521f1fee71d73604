"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from gateway.api import app_keys

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = {"database": False, "carrier": request.app[app_keys.CARRIERS].ready}
    try:
        async with request.app[app_keys.ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1 FROM alembic_version"))
        checks["database"] = True
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        pass
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503)
