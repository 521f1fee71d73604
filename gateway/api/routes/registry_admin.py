"""The registry as the operator oversees it (/admin/registry): its state, the events received, reconciliation on
demand; and the registry simulator's control API (its clock, its reviewers, its faults), through the gateway."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.api.routes.registry import events_base
from gateway.errors import Unprocessable
from gateway.tendlc import control
from gateway.validation import Fields
from registry import states

routes = web.RouteTableDef()

FAULTS = {"http_5xx_rate": float, "http_5xx_next": int, "delay_ms": int, "webhook_duplicate_rate": float,
          "webhook_reorder": bool, "webhook_drop_next": int, "seed": int}


def _service(request: web.Request):  # noqa: ANN202
    return request.app[app_keys.REGISTRY]


@routes.get("/admin/registry")
async def registry_overview(request: web.Request) -> web.Response:
    return web.json_response(await control.overview(_service(request).csp))


@routes.get("/admin/registry/events")
async def registry_events(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise Unprocessable("limit is a whole number from 1 to 1000.", code="invalid_parameter",
                            details={"parameter": "limit"})
    return web.json_response({"events": await control.recent_events(_service(request).csp, int(raw))})


@routes.post("/admin/registry/reconcile")
async def registry_reconcile(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request) if request.can_read_body else {}, {"full", "force"})
    summary = await _service(request).reconciler.reconcile(full=bool(f.boolean("full")),
                                                           force=f.boolean("force") is not False,
                                                           events_base=events_base(request))
    return web.json_response(summary)


@routes.post("/admin/registry/advance")
async def registry_advance(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"days"})
    days = f.integer("days", minimum=0, maximum=3650)
    if days is None:
        raise Unprocessable("The field 'days' is required.", code="missing_field", details={"field": "days"})
    service = _service(request)
    return web.json_response(await control.advance(service.csp, service.reconciler, days, events_base(request)))


@routes.post("/admin/registry/simulator/brands/{id}/review")
async def simulator_review_brand(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"identity_status", "score"})
    identity = (f.text("identity_status", required=True) or "").upper()
    if identity not in states.IDENTITY_STATUSES:
        raise Unprocessable(f"identity_status is one of {', '.join(states.IDENTITY_STATUSES)}.",
                            code="invalid_field", details={"field": "identity_status"})
    answer = await control.review_brand(_service(request).csp, request.match_info["id"], identity,
                                        f.integer("score", minimum=0, maximum=100))
    return web.json_response(answer)


@routes.post("/admin/registry/simulator/campaigns/{id}/review")
async def simulator_review_campaign(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"mno", "status", "description"})
    mno, status = (f.text("mno", required=True) or "").upper(), (f.text("status", required=True) or "").upper()
    if mno not in states.MNOS:
        raise Unprocessable(f"mno is one of {', '.join(states.MNOS)}.", code="invalid_field", details={"field": "mno"})
    if status not in ("APPROVED", "REJECTED", "SUSPENDED", "UNSUSPENDED"):
        raise Unprocessable("status is APPROVED, REJECTED, SUSPENDED or UNSUSPENDED.", code="invalid_field",
                            details={"field": "status"})
    answer = await control.review_campaign(_service(request).csp, request.match_info["id"], mno, status,
                                           f.text("description", max_length=1000) or "")
    return web.json_response(answer)


@routes.post("/admin/registry/simulator/faults")
async def simulator_faults(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), set(FAULTS))
    faults = {}
    for name, kind in FAULTS.items():
        value = f.data.get(name)
        if value is None:
            continue
        if kind is bool:
            faults[name] = f.boolean(name)
        elif kind is int:
            faults[name] = f.integer(name, minimum=0, maximum=1_000_000)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise Unprocessable(f"{name} is a share from 0 to 1.", code="invalid_field", details={"field": name})
        else:
            faults[name] = float(value)
    csp = _service(request).csp
    return web.json_response(await control.control(csp, lambda: csp.client.set_faults(**faults)))


@routes.post("/admin/registry/simulator/redeliver")
async def simulator_redeliver(request: web.Request) -> web.Response:
    csp = _service(request).csp
    return web.json_response(await control.control(csp, csp.client.redeliver))
