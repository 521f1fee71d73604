"""10DLC brands and campaigns, registered with the registry as a CSP: operator routes (/admin) and customers'
read-only views (/v1). A request the registry cannot take now is kept and answered 202 with what is pending."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from yarl import URL

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.api.routes._scope import OPERATOR
from gateway.errors import Unprocessable
from gateway.tendlc import brands, campaigns
from gateway.tendlc.csp import Csp, Result
from gateway.validation import Fields, e164, origination
from registry import states
from registry.db import iso
from registry.limits import blocked_carriers, derive
from registry.models import Brand, Campaign

routes = web.RouteTableDef()


def brand_view(b: Brand) -> dict[str, Any]:
    return {"id": b.id, "account_id": b.account_id, "legal_name": b.legal_name, "ein": b.ein,
            "entity_type": b.entity_type, "vertical": b.vertical, "website": b.website, "country": b.country,
            "contact_email": b.contact_email, "contact_phone": b.contact_phone, "street": b.street, "city": b.city,
            "state": b.state, "postal_code": b.postal_code, "relationship": b.relationship, "status": b.status,
            "identity_status": b.identity_status, "trust_score": b.trust_score, "vetting_status": b.vetting_status,
            "registry_id": b.registry_id, "registry_updated_at": iso(b.registry_updated_at), "reason": b.reason}


def campaign_view(c: Campaign, brand: Brand | None = None) -> dict[str, Any]:
    view = {"id": c.id, "account_id": c.account_id, "brand_id": c.brand_id, "use_case": c.use_case,
            "description": c.description, "sample_messages": json.loads(c.sample_messages),
            "opt_in_message": c.opt_in_message, "opt_out_message": c.opt_out_message,
            "help_message": c.help_message, "embedded_links": c.embedded_links, "number_pooling": c.number_pooling,
            "age_gated": c.age_gated, "auto_renewal": c.auto_renewal, "status": c.status,
            "registry_id": c.registry_id, "registry_status": c.registry_status, "sharing_status": c.sharing_status,
            "expires_at": iso(c.expires_at), "registry_updated_at": iso(c.registry_updated_at), "reason": c.reason}
    if brand is not None:
        view["limits"] = derive(brand.trust_score or 0, c.use_case, brand.entity_type, campaign_key=f"c{c.id}",
                                brand_key=f"b{brand.id}").to_json()
        del view["limits"]["blocked"]
    return view


async def answer(request: web.Request, view: dict[str, Any], entity: str, ident: int, result: Result,
                 done_status: int = 200) -> web.Response:
    """``done_status`` when the registry took the request; 202 with what is still pending when it could not be
    reached (the request is kept and sent again by the reconciliation)."""
    if result.status == "done":
        return web.json_response(view, status=done_status)
    pending = await brands.pending_of(request.app[app_keys.SESSIONMAKER], entity, ident)
    return web.json_response({**view, "pending": pending}, status=202)


def events_base(request: web.Request) -> str:
    """Where the registry reaches this gateway: [registry] events_url, [server] public_url, or where the
    operator's request came."""
    settings = request.app[app_keys.SETTINGS]
    return settings.registry.events_url or settings.server.public_url or str(request.url.origin())


def csp(request: web.Request) -> Csp:
    return request.app[app_keys.REGISTRY].csp


# --- brands --------------------------------------------------------------------------------------------------------
BRAND_FIELDS = {"account_id", "legal_name", "ein", "entity_type", "vertical", "website", "country", "contact_email",
                "contact_phone", "street", "city", "state", "postal_code", "relationship"}
OPTIONAL = {"street": 255, "city": 100, "state": 20, "postal_code": 20}


def _is_website(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and "." in (url.host or "") and not any(c.isspace() for c in value)


def _invalid(field: str, sentence: str) -> Unprocessable:
    return Unprocessable(sentence, code="invalid_field", details={"field": field})


def brand_fields(f: Fields, *, partial: bool) -> dict[str, Any]:
    """A brand's fields, checked; ``partial``: only those given (an update)."""
    out: dict[str, Any] = {}
    for name in ("legal_name", "ein", "entity_type", "vertical", "website", "contact_email", "contact_phone"):
        value = f.text(name, required=not partial, max_length=255, allow_empty=False)
        if value is not None:
            out[name] = value
    for name, length in OPTIONAL.items():
        value = f.text(name, max_length=length)
        if value is not None:
            out[name] = value.strip() or None
    for name, allowed in (("entity_type", states.ENTITY_TYPES), ("vertical", states.VERTICALS),
                          ("relationship", states.RELATIONSHIPS)):
        value = (out.get(name) if name != "relationship" else f.text(name))
        if value is not None:
            if value.upper() not in allowed:
                raise _invalid(name, f"{name} is one of {', '.join(allowed)}.")
            out[name] = value.upper()
    if "ein" in out:
        ein = out["ein"].replace("-", "")
        if not (ein.isascii() and ein.isdigit() and len(ein) == 9):
            raise _invalid("ein", "ein is a 9-digit US employer identification number.")
        out["ein"] = f"{ein[:2]}-{ein[2:]}"
    if "website" in out and not _is_website(out["website"]):
        raise _invalid("website", "website must be an http(s) URL such as https://acme.example.")
    if "contact_email" in out and "@" not in out["contact_email"]:
        raise _invalid("contact_email", "contact_email must be an e-mail address.")
    if "contact_phone" in out:
        out["contact_phone"] = e164(out["contact_phone"], field="contact_phone")
    country = f.text("country")
    if country is not None or not partial:
        country = (country or "US").upper()
        if len(country) != 2 or not country.isalpha() or not country.isascii():
            raise _invalid("country", "country is an ISO 3166 two-letter code such as US.")
        out["country"] = country
    return out


@routes.post("/admin/brands")
async def register_brand(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), BRAND_FIELDS)
    account_id = f.integer("account_id", minimum=1)
    fields = brand_fields(f, partial=False)
    brand, result = await brands.register(csp(request), account_id, fields, actor=OPERATOR,
                                          events_base=events_base(request))
    return await answer(request, brand_view(brand), "brand", brand.id, result, 201)


@routes.get("/admin/brands")
async def list_brands(request: web.Request) -> web.Response:
    rows = await brands.list_brands(request.app[app_keys.SESSIONMAKER])
    return web.json_response({"brands": [brand_view(b) for b in rows]})


@routes.get("/admin/brands/{id}")
async def show_brand(request: web.Request) -> web.Response:
    sessions = request.app[app_keys.SESSIONMAKER]
    b, history = await brands.brand_history(sessions, request.match_info["id"])
    return web.json_response({**brand_view(b), "pending": await brands.pending_of(sessions, "brand", b.id),
                              "history": history})


@routes.patch("/admin/brands/{id}")
async def update_brand(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), BRAND_FIELDS - {"account_id"})
    changes = brand_fields(f, partial=True)
    if not changes:
        raise Unprocessable("Give at least one field to change.", code="missing_field")
    b, result = await brands.act(csp(request), request.match_info["id"], "update", actor=OPERATOR,
                                 body={"changes": changes}, events_base=events_base(request))
    return await answer(request, brand_view(b), "brand", b.id, result)


@routes.post("/admin/brands/{id}/{action:vet|revet}")
async def brand_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"evp_id", "vetting_class"})
    body = {k: v for k, v in (("evp_id", f.text("evp_id", max_length=20, allow_empty=False)),
                              ("vetting_class", f.text("vetting_class", max_length=20, allow_empty=False)))
            if v is not None} if request.match_info["action"] == "vet" else None
    b, result = await brands.act(csp(request), request.match_info["id"], request.match_info["action"],
                                 actor=OPERATOR, body=body, events_base=events_base(request))
    return await answer(request, brand_view(b), "brand", b.id, result)


@routes.delete("/admin/brands/{id}")
async def delete_brand(request: web.Request) -> web.Response:
    b, result = await brands.act(csp(request), request.match_info["id"], "delete", actor=OPERATOR,
                                 events_base=events_base(request))
    return await answer(request, brand_view(b), "brand", b.id, result)


@routes.get("/admin/brands/{id}/feedback")
async def brand_feedback(request: web.Request) -> web.Response:
    return web.json_response(await brands.feedback(csp(request), request.match_info["id"]))


# --- campaigns -----------------------------------------------------------------------------------------------------
CAMPAIGN_FIELDS = {"brand_id", "use_case", "description", "sample_messages", "opt_in_message", "opt_out_message",
                   "help_message", "embedded_links", "number_pooling", "age_gated", "auto_renewal"}


@routes.post("/admin/campaigns")
async def create_campaign(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, CAMPAIGN_FIELDS)
    use_case = (f.text("use_case", required=True) or "").upper()
    if use_case not in states.USE_CASES:
        raise _invalid("use_case", f"use_case is one of {', '.join(states.USE_CASES)}.")
    fields = {name: f.text(name, required=True, max_length=4096, allow_empty=False)
              for name in ("description", "opt_in_message", "opt_out_message", "help_message")}
    fields.update({name: bool(f.boolean(name)) for name in ("embedded_links", "number_pooling", "age_gated")},
                  auto_renewal=f.boolean("auto_renewal") is not False, use_case=use_case,
                  sample_messages=data.get("sample_messages"))
    campaign, brand, result = await campaigns.create(csp(request), str(f.integer("brand_id", minimum=1)), fields,
                                                     actor=OPERATOR, events_base=events_base(request))
    return await answer(request, campaign_view(campaign, brand), "campaign", campaign.id, result, 201)


@routes.get("/admin/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    rows = await campaigns.list_campaigns(request.app[app_keys.SESSIONMAKER])
    return web.json_response({"campaigns": [campaign_view(c) for c in rows]})


@routes.get("/admin/campaigns/{id}")
async def show_campaign(request: web.Request) -> web.Response:
    sessions = request.app[app_keys.SESSIONMAKER]
    d = await campaigns.campaign_detail(sessions, request.match_info["id"])
    c = d["campaign"]
    blocked = blocked_carriers(c.status, {mno: op["status"] for mno, op in d["operations"].items()})
    return web.json_response({**campaign_view(c, d["brand"]), "operations": d["operations"],
                              "blocked": dict(blocked), "numbers": d["numbers"], "orders": d["orders"],
                              "pending": await brands.pending_of(sessions, "campaign", c.id),
                              "history": d["history"]})


@routes.post("/admin/campaigns/{id}/{action:share|renew|deactivate}")
async def campaign_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"cnp_id"} if request.match_info["action"] == "share" else set())
    cnp_id = f.text("cnp_id", max_length=20, allow_empty=False)
    if cnp_id is not None and not (cnp_id.isascii() and cnp_id.isalnum()):
        raise _invalid("cnp_id", "cnp_id is the DCA's id: letters and digits.")
    c, brand, result = await campaigns.act(csp(request), request.match_info["id"], request.match_info["action"],
                                           actor=OPERATOR, cnp_id=cnp_id, events_base=events_base(request))
    return await answer(request, campaign_view(c, brand), "campaign", c.id, result)


@routes.post("/admin/campaigns/{id}/{action:associate|disassociate}")
async def campaign_number(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    f = Fields(await read_json_object(request), {"number", "numbers"} if action == "associate" else {"number"})
    given = f.data.get("numbers")
    if given is not None:
        if not isinstance(given, list) or not 1 <= len(given) <= 100 or not all(isinstance(n, str) for n in given):
            raise _invalid("numbers", "numbers is a list of 1 to 100 numbers.")
        numbers = [origination(n) for n in given]
    else:
        numbers = [origination(f.text("number", required=True) or "")]
    if len(set(numbers)) != len(numbers):
        raise _invalid("numbers", "a number is given twice.")
    order, result = await campaigns.order_numbers(csp(request), request.match_info["id"], numbers, action.upper(),
                                                  actor=OPERATOR, events_base=events_base(request))
    return await answer(request, {"order": order}, "order", order["id"], result)


# --- customers' views -----------------------------------------------------------------------------------------------
@routes.get("/v1/brands")
async def my_brands(request: web.Request) -> web.Response:
    rows = await brands.list_brands(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID])
    return web.json_response({"brands": [brand_view(b) for b in rows]})


@routes.get("/v1/brands/{id}")
async def my_brand(request: web.Request) -> web.Response:
    b, history = await brands.brand_history(request.app[app_keys.SESSIONMAKER], request.match_info["id"],
                                            request[app_keys.ACCOUNT_ID])
    return web.json_response({**brand_view(b), "history": history})


@routes.get("/v1/campaigns")
async def my_campaigns(request: web.Request) -> web.Response:
    rows = await campaigns.list_campaigns(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID])
    return web.json_response({"campaigns": [campaign_view(c) for c in rows]})


@routes.get("/v1/campaigns/{id}")
async def my_campaign(request: web.Request) -> web.Response:
    c, brand = await campaigns.get_campaign(request.app[app_keys.SESSIONMAKER], request.match_info["id"],
                                            request[app_keys.ACCOUNT_ID])
    return web.json_response(campaign_view(c, brand))
