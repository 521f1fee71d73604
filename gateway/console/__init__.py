"""The operator's web console at /console: server-rendered pages (aiohttp-jinja2) over the gateway's own services,
signed in with the operator token (gateway.console.session). ``setup(app, wiring)`` adds it to an app; the app
says through a :class:`Wiring` where its database, carriers and webhook sender are, so that the console imports
nothing of gateway.api."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Wiring:
    sessionmaker: web.AppKey  # async_sessionmaker of the app's database
    operator_token: web.AppKey
    carriers: web.AppKey  # the CarrierPool
    webhooks: web.AppKey  # the WebhookSender (notified after a replay)
    auth_failures: Callable[[web.Application], Any]  # the app's record of failed sign-ins (AuthFailures)
    client_ip: Callable[[web.Request], str]


WIRING = web.AppKey("console_wiring", Wiring)


def setup(app: web.Application, wiring: Wiring) -> None:
    from gateway.console import auth, views
    from gateway.console.session import Sessions

    app[WIRING] = wiring
    app[auth.SESSIONS] = Sessions(app[wiring.operator_token])
    app[views.BOARD] = views.LatestBoard()
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined)
    env.filters["when"] = views.when
    app.add_routes(auth.routes)
    app.add_routes(views.routes)
