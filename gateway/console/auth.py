"""Signing in and out of the console, the session every page needs, and the CSRF token every form carries.

Pages are registered with :func:`page`: without a valid session a GET is sent to the sign-in page (303) and any
other method refused (403 HTML); a POST without the session's CSRF token, or from another origin, is refused
(403); a service's error is answered as a page with its status. An Authorization header is never looked at here:
API keys and bearer tokens open no page."""

from __future__ import annotations

import functools
from typing import Awaitable, Callable
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from gateway.console import WIRING
from gateway.console.session import COOKIE, Sessions
from gateway.errors import GatewayError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()
SESSIONS = web.AppKey("console_sessions", Sessions)
NONCE = web.RequestKey("console_nonce", str)
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                      "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}


def sessions(app: web.Application) -> Sessions:
    """The app's console sessions, keyed from its operator token (made by gateway.console.setup)."""
    return app[SESSIONS]


def render(request: web.Request, template: str, context: dict, *, status: int = 200) -> web.Response:
    nonce = request.get(NONCE)
    context = {**context, "signed_in": nonce is not None,
               "csrf": sessions(request.app).csrf(nonce) if nonce else "", "path": request.path}
    resp = aiohttp_jinja2.render_template(template, request, context, status=status)
    resp.headers.update(HEADERS)
    return resp


def refuse(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def _same_origin(request: web.Request) -> bool:
    """No Origin (nor Referer) header, or one naming this host: browsers send Origin with every form POST."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.host


def page(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a console page that needs a signed-in session (and, unless GET, the CSRF token)."""
    def register(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            store = sessions(request.app)
            nonce = store.nonce(request.cookies.get(COOKIE))
            if nonce is None:
                if request.method == "GET":
                    target = request.path_qs if request.path != "/console/sign-in" else "/console"
                    raise web.HTTPSeeOther("/console/sign-in?next=" + quote(target, safe=""))
                return refuse(request, 403, "Sign in first.")
            request[NONCE] = nonce
            if request.method != "GET":
                form = await request.post()
                if not (_same_origin(request) and store.csrf_matches(nonce, str(form.get("csrf", "")))):
                    return refuse(request, 403, "This form has expired or did not come from the console; "
                                                "reload the page and try again.")
            try:
                return await handler(request)
            except GatewayError as exc:  # a service's refusal (no such message, number, ...) as a page
                return refuse(request, exc.status, str(exc))

        routes.route(method, path)(guarded)
        return handler
    return register


def _next(value: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


@routes.get("/console/sign-in")
async def sign_in_form(request: web.Request) -> web.Response:
    return render(request, "sign_in.html", {"next": _next(request.query.get("next")), "error": None})


@routes.post("/console/sign-in")
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = _next(str(form.get("next", "")))
    wiring, store = request.app[WIRING], sessions(request.app)
    failures, name = wiring.auth_failures(request.app), f"ip:{wiring.client_ip(request)}"
    if not _same_origin(request):
        return refuse(request, 403, "This form did not come from the console.")
    if store.token_matches(str(form.get("token", ""))):
        resp = web.HTTPSeeOther(target)
        resp.set_cookie(COOKIE, store.start(), max_age=store.lifetime_s, path="/console", httponly=True,
                        samesite="Strict", secure=request.secure)
        raise resp
    wait = failures.retry_after(name)
    if wait is not None:
        return render(request, "sign_in.html", {"next": target, "error": f"Too many failed attempts; try again "
                                                                          f"in {wait} s."}, status=429)
    failures.failed(name)
    return render(request, "sign_in.html", {"next": target, "error": "That is not the operator token."},
                  status=401)


@page("POST", "/console/sign-out")
async def sign_out(request: web.Request) -> web.StreamResponse:
    sessions(request.app).end(request.cookies.get(COOKIE))
    resp = web.HTTPSeeOther("/console/sign-in")
    resp.del_cookie(COOKIE, path="/console")
    raise resp


@routes.get("/console/static/console.css")
async def stylesheet(request: web.Request) -> web.FileResponse:
    from gateway.console import HERE

    return web.FileResponse(HERE / "static" / "console.css", headers={"Cache-Control": "max-age=3600"})
