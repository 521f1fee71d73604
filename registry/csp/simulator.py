"""The 10DLC registry simulator: The Campaign Registry's CSP API, the DCA's number association and a control API,
served over HTTP by one aiohttp application (``build_simulator_app``) over one :class:`SimState`.

Every route takes HTTP basic auth with the CSP's API key and secret (401 ``UNAUTHORIZED`` otherwise) and JSON
bodies; errors are ``{"code", "description"[, "field"]}`` with 400, 401, 404, 409 or 503. Ids are seven upper-case
letters and digits: ``B`` brands, ``C`` campaigns, ``O`` number orders, ``V`` vettings, ``S`` the CSP
(``SSIM001`` by default). Times are ISO 8601 UTC with milliseconds and ``Z``, on the registry's clock.

Registry API (``/v1``):
    POST   /v1/brand/nonBlocking                 register (200; same referenceId -> the same brand, 200)
    GET    /v1/brand/{brandId}                   PUT updates it (identity checked again), DELETE deletes it
                                                 (409 BRAND_HAS_ACTIVE_CAMPAIGNS while it has ACTIVE campaigns)
    PUT    /v1/brand/{brandId}/revet             check the identity again
    POST   /v1/brand/{brandId}/externalVetting   {"evpId", "vettingClass"} -> {"vettingId", "vettingStatus": PENDING}
    GET    /v1/brand/feedback/{brandId}          {"brandId", "category": [...]} why the identity check failed
    POST   /v1/campaignBuilder                   create (same referenceId -> the same campaign); 400
                                                 BRAND_NOT_VERIFIED unless the brand is VERIFIED or VETTED_VERIFIED
                                                 (a SELF_DECLARED sole proprietor brand: use case SOLE_PROPRIETOR)
    GET    /v1/campaign/{campaignId}             DELETE deactivates it for good (CAMPAIGN_DEACTIVATED)
    PUT    /v1/campaign/{campaignId}/sharing/DCASIM1   share with the DCA (400 INVALID_CNP for any other id)
    GET    /v1/campaign/{campaignId}/operationStatus   {"ATT": "REVIEW", ...} ({} until the DCA accepts)
    PUT    /v1/campaign/{campaignId}/renew       expirationDate 3 months further
    PUT    /v1/webhook/subscription              {"eventCategory": BRAND|CAMPAIGN|VETTING|NUMBER, "webhookEndpoint"}
    GET    /v1/webhook/subscription              [{"eventCategory", "webhookEndpoint"}]
    DELETE /v1/webhook/subscription/{eventCategory}
DCA (``/dca/v1``):
    POST   /dca/v1/campaigns/{campaignId}/numbers         {"numbers", "referenceId"} -> 202 order (idempotent by
                                                          referenceId; 409 CAMPAIGN_NOT_SHARED until ACCEPTED)
    DELETE /dca/v1/campaigns/{campaignId}/numbers/{e164}  -> 202 a disassociation order
    GET    /dca/v1/orders/{orderId}                       the order and each number's status and reason

Rules (deterministic):
    Identity: SOLE_PROPRIETOR -> SELF_DECLARED, score 0; an EIN whose digits start 000 -> UNVERIFIED, score 0,
        feedback category TAX_ID; otherwise VERIFIED, score 50 + (sum of the EIN's digits mod 26), 50 to 75. The
        BRAND_SCORE_UPDATE event follows a registration, update or revet ``score_delay_s`` real seconds later.
    Vetting: the result comes 1 business day later on the clock (``vetting_days``; 0: at once): ACTIVE, then the
        brand is VETTED_VERIFIED with its score + 25 (at most 100, so an UNVERIFIED brand becomes VETTED_VERIFIED
        with 25); an EIN starting 999 -> FAILED, score unchanged. BRAND_VETTING_UPDATE, then BRAND_SCORE_UPDATE.
    Sharing: the DCA answers 1 business day later (``sharing_days``): CAMPAIGN_SHARE_ACCEPT, or
        CAMPAIGN_SHARE_DECLINE when the description holds ``[decline]`` (a declined campaign may be shared again).
    Carrier review: once the DCA accepts, every MNO (ATT, TMOBILE, VERIZON, USCELLULAR) is REVIEW; 3 business days
        later (``review_days``) each one still in REVIEW decides: REJECTED by ATT and TMOBILE when the description
        or a sample holds bit.ly, tinyurl.com, is.gd, ow.ly or rb.gy; REJECTED by the MNO a ``[reject:<MNO>]`` in
        the description names; APPROVED otherwise (one MNO_CAMPAIGN_OPERATION_* event per MNO).
    Expiry: expirationDate is createDate + 3 months; when the clock passes it an autoRenewal campaign (the
        default) is renewed for 3 more months silently, any other becomes EXPIRED (CAMPAIGN_EXPIRED).
    Numbers: an association order completes 5 business days later (``association_days``), a disassociation 1
        (``disassociation_days``); a number that is not US +1 NANP, a toll-free one, or one in another campaign is
        FAILED with a reason; the order is COMPLETED when any number succeeded, FAILED otherwise
        (NUMBER_ORDER_UPDATE).
    Business days are Monday to Friday on the registry clock; work comes due at the same time of day.

Events are POSTed one per request to the category's subscribed URL, in the order they were generated, at least
once (retried on anything but a 2xx, ``webhook_attempts`` times with backoff). Each has ``eventId`` (the same on
a redelivery), ``eventType``, ``eventCategory``, ``cspId``, ``createDate`` (when the change happened on the
clock: a change that came due during an advance is dated when it came due, not when the advance ended) and
``sequence`` (increasing, also across restarts), plus ``brandId`` / ``campaignId`` and the event's fields.

Control API (``/control``, same basic auth; never subject to the faults):
    POST /control/advance        {"days": n, "hours"?: n}  move the clock (fractions allowed), do all that comes due,
                                 then release the events webhook_reorder held -> {"now", "processed", "events",
                                 "released"}
    GET  /control/clock          {"now", "offsetDays", "nextDue", "pending"}
    POST /control/review/campaign/{campaignId}  {"mno", "status": APPROVED|REJECTED|SUSPENDED|UNSUSPENDED,
                                 "description"} a carrier's reviewer (UNSUSPENDED: back to APPROVED; 409
                                 NOT_SUSPENDED unless suspended) -> the operation status
    POST /control/review/brand/{brandId}  {"identityStatus", "brandScore"} -> the brand, BRAND_SCORE_UPDATE sent
    POST /control/faults         change some of: "http_5xx_rate" 0..1 (that share of API calls answer 503),
                                 "http_5xx_next" n (the next n API calls answer 503), "delay_ms" n (each API call
                                 waits that long first, then takes effect even if the caller gave up),
                                 "webhook_duplicate_rate" 0..1 (that share of delivered events is POSTed twice),
                                 "webhook_reorder" bool (events are held, and sent newest first at the end of each
                                 advance and when it is switched off), "webhook_drop_next" n (the next n events are
                                 never sent, until a redeliver), "seed" n (the dice of the rates) -> all faults
    GET  /control/faults         the faults now
    GET  /control/events         {"events": [{"event", "state": queued|held|sending|delivered|failed|dropped|
                                 unsubscribed, "delivered", "dropped", "attempts", "duplicates", "lastStatus",
                                 "lastError"}]}, oldest first
    POST /control/redeliver      send every event again (oldest first; newest first under webhook_reorder)

With ``snapshot_path`` the state (not the faults) is kept in a JSON file after every change and read back at
start, so a restarted simulator keeps its brands, campaigns, clock and undelivered events. ``python -m
registry.csp`` serves one standalone (port 2778 by default).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from typing import Any, AsyncIterator, Awaitable, Callable

from aiohttp import web

from registry.csp.rules import SimError
from registry.csp.state import SimState
from registry.csp.webhooks import Background

__all__ = ["SimState", "build_simulator_app", "start_simulator"]

STATE = web.AppKey("registry_sim_state", SimState)
Op = Callable[[SimState, dict[str, str], dict[str, Any]], Any]


def _error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"code": code, "description": description}, status=status)


def _authorized(request: web.Request, state: SimState) -> bool:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True) if scheme.lower() == "basic" else b""
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(given, f"{state.api_key}:{state.api_secret}".encode())


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """Basic auth, then the API faults (not on /control), then the handler with SimError as JSON answers."""
    state = request.app[STATE]
    if not _authorized(request, state):
        response = _error(401, "UNAUTHORIZED", "HTTP basic auth with the CSP's API key and secret is required.")
        response.headers["WWW-Authenticate"] = 'Basic realm="registry"'
        return response
    if not getattr(request.match_info.handler, "control", False):
        if state.log.faults["delay_ms"]:
            await request.read()  # kept by the request: the call takes effect even if its caller gives up
            await asyncio.sleep(state.log.faults["delay_ms"] / 1000)
        if state.log.api_fault():
            return _error(503, "SERVICE_UNAVAILABLE", "The registry is unavailable (injected fault).")
    try:
        return await handler(request)
    except SimError as exc:
        return web.json_response(exc.body(), status=exc.status)
    except web.HTTPNotFound:
        return _error(404, "NOT_FOUND", f"No route {request.method} {request.path}.")
    except web.HTTPMethodNotAllowed:
        return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.path}.")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise SimError(400, "INVALID_JSON", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise SimError(400, "INVALID_JSON", "The body must be a JSON object.")
    return data


def _route(op: Op, status: int = 200, control: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        state = request.app[STATE]
        body = await _body(request) if request.method in ("POST", "PUT") else {}
        answer = op(state, dict(request.match_info), body)
        if request.method != "GET":
            state.save()
        return web.json_response(answer, status=status)
    handle.control = control  # type: ignore[attr-defined]  # the middleware spares control routes the faults
    return handle


API: list[tuple[str, str, Op, int]] = [
    ("POST", "/v1/brand/nonBlocking", lambda s, m, b: s.register_brand(b), 200),
    ("GET", "/v1/brand/feedback/{brandId}", lambda s, m, b: s.feedback(m["brandId"]), 200),
    ("GET", "/v1/brand/{brandId}", lambda s, m, b: s.brand(m["brandId"]), 200),
    ("PUT", "/v1/brand/{brandId}", lambda s, m, b: s.update_brand(m["brandId"], b), 200),
    ("DELETE", "/v1/brand/{brandId}", lambda s, m, b: s.delete_brand(m["brandId"]), 200),
    ("PUT", "/v1/brand/{brandId}/revet", lambda s, m, b: s.revet_brand(m["brandId"]), 200),
    ("POST", "/v1/brand/{brandId}/externalVetting", lambda s, m, b: s.order_vetting(m["brandId"], b), 200),
    ("POST", "/v1/campaignBuilder", lambda s, m, b: s.create_campaign(b), 200),
    ("GET", "/v1/campaign/{campaignId}", lambda s, m, b: s.campaign(m["campaignId"]), 200),
    ("DELETE", "/v1/campaign/{campaignId}", lambda s, m, b: s.deactivate_campaign(m["campaignId"]), 200),
    ("PUT", "/v1/campaign/{campaignId}/sharing/{cnpId}",
     lambda s, m, b: s.share_campaign(m["campaignId"], m["cnpId"]), 200),
    ("GET", "/v1/campaign/{campaignId}/operationStatus",
     lambda s, m, b: s.operation[s.campaign(m["campaignId"])["campaignId"]], 200),
    ("PUT", "/v1/campaign/{campaignId}/renew", lambda s, m, b: s.renew_campaign(m["campaignId"]), 200),
    ("PUT", "/v1/webhook/subscription", lambda s, m, b: s.log.subscribe(b), 200),
    ("GET", "/v1/webhook/subscription", lambda s, m, b: [
        {"eventCategory": c, "webhookEndpoint": u} for c, u in sorted(s.log.subscriptions.items())], 200),
    ("DELETE", "/v1/webhook/subscription/{category}", lambda s, m, b: s.log.unsubscribe(m["category"]), 200),
    ("POST", "/dca/v1/campaigns/{campaignId}/numbers", lambda s, m, b: s.associate(m["campaignId"], b), 202),
    ("DELETE", "/dca/v1/campaigns/{campaignId}/numbers/{number}",
     lambda s, m, b: s.disassociate(m["campaignId"], m["number"]), 202),
    ("GET", "/dca/v1/orders/{orderId}", lambda s, m, b: s.order(m["orderId"]), 200),
]


def _advance(state: SimState, body: dict[str, Any]) -> dict[str, Any]:
    days, hours = body.get("days", 0), body.get("hours", 0)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (days, hours))
    if not numbers or not 0 <= days + hours / 24 <= 3650 or days < 0 or hours < 0:
        raise SimError(400, "INVALID_FIELD", "days (and hours) must be numbers >= 0, at most 3650 days in all.",
                       "days")
    return state.advance(days + hours / 24)


CONTROL: list[tuple[str, str, Op]] = [
    ("POST", "/control/advance", lambda s, m, b: _advance(s, b)),
    ("GET", "/control/clock", lambda s, m, b: s.clock()),
    ("POST", "/control/review/campaign/{campaignId}", lambda s, m, b: s.review_campaign(m["campaignId"], b)),
    ("POST", "/control/review/brand/{brandId}", lambda s, m, b: s.review_brand(m["brandId"], b)),
    ("POST", "/control/faults", lambda s, m, b: s.log.set_faults(b)),
    ("GET", "/control/faults", lambda s, m, b: dict(s.log.faults)),
    ("GET", "/control/events", lambda s, m, b: {"events": s.log.records}),
    ("POST", "/control/redeliver", lambda s, m, b: {"queued": s.log.redeliver()}),
]


def build_simulator_app(state: SimState) -> web.Application:
    """The simulator's application: mount it as a sub-application or serve it alone (``start_simulator``). Its
    webhook sender and clock ticker run from the application's startup to its cleanup."""
    app = web.Application(middlewares=[_guard])
    app[STATE] = state
    for method, path, op, status in API:
        app.router.add_route(method, path, _route(op, status))
    for method, path, op in CONTROL:
        app.router.add_route(method, path, _route(op, control=True))

    async def background(_app: web.Application) -> AsyncIterator[None]:
        tasks = Background(state)
        await tasks.start()
        yield
        await tasks.stop()

    app.cleanup_ctx.append(background)
    return app


async def start_simulator(state: SimState, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve a simulator on ``host:port`` (0: any free port): its runner (``await runner.cleanup()`` stops it) and
    its base URL."""
    runner = web.AppRunner(build_simulator_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"
