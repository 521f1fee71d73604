"""10DLC brands and campaigns: operator routes (/admin) and customers' read-only views (/v1)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from yarl import URL

from gateway.api import app_keys
from gateway.api.bodies import read_json_object
from gateway.api.routes._scope import OPERATOR
from gateway.api.routes.numbers import full_number_view
from gateway.errors import Unprocessable
from gateway.tendlc import brands, campaigns
from gateway.validation import Fields, origination
from registry import states
from registry.db import iso
from registry.limits import derive
from registry.models import Brand, Campaign

routes = web.RouteTableDef()


def brand_view(b: Brand) -> dict[str, Any]:
    return {"id": b.id, "account_id": b.account_id, "legal_name": b.legal_name, "ein": b.ein,
            "entity_type": b.entity_type, "vertical": b.vertical, "website": b.website, "country": b.country,
            "contact_email": b.contact_email, "contact_phone": b.contact_phone, "status": b.status,
            "identity_status": b.identity_status, "trust_score": b.trust_score, "reason": b.reason}


def campaign_view(c: Campaign, brand: Brand | None = None) -> dict[str, Any]:
    view = {"id": c.id, "account_id": c.account_id, "brand_id": c.brand_id, "use_case": c.use_case,
            "description": c.description, "sample_messages": json.loads(c.sample_messages),
            "opt_in_message": c.opt_in_message, "opt_out_message": c.opt_out_message,
            "help_message": c.help_message, "embedded_links": c.embedded_links, "number_pooling": c.number_pooling,
            "age_gated": c.age_gated, "status": c.status, "reason": c.reason}
    if brand is not None and brand.trust_score is not None:
        view["limits"] = derive(brand.trust_score, c.use_case, brand.entity_type, campaign_key=f"c{c.id}",
                                brand_key=f"b{brand.id}").to_json()
    return view


# --- brands --------------------------------------------------------------------------------------------------------
BRAND_FIELDS = {"account_id", "legal_name", "ein", "entity_type", "vertical", "website", "country", "contact_email",
                "contact_phone", "submit"}


def _is_website(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and "." in (url.host or "") and not any(c.isspace() for c in value)


def _invalid(field: str, sentence: str) -> Unprocessable:
    return Unprocessable(sentence, code="invalid_field", details={"field": field})


@routes.post("/admin/brands")
async def register_brand(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), BRAND_FIELDS)
    account_id = f.integer("account_id", minimum=1)
    values = {name: f.text(name, required=True, max_length=255, allow_empty=False) or "" for name in
              ("legal_name", "ein", "entity_type", "vertical", "website", "contact_email")}
    entity, vertical = values["entity_type"].upper(), values["vertical"].upper()
    if entity not in states.ENTITY_TYPES:
        raise _invalid("entity_type", f"entity_type is one of {', '.join(states.ENTITY_TYPES)}.")
    if vertical not in states.VERTICALS:
        raise _invalid("vertical", f"vertical is one of {', '.join(states.VERTICALS)}.")
    ein = values["ein"].replace("-", "")
    if not (ein.isascii() and ein.isdigit() and len(ein) == 9):
        raise _invalid("ein", "ein is a 9-digit US employer identification number.")
    if not _is_website(values["website"]):
        raise _invalid("website", "website must be an http(s) URL such as https://acme.example.")
    if "@" not in values["contact_email"]:
        raise _invalid("contact_email", "contact_email must be an e-mail address.")
    fields = {**values, "ein": f"{ein[:2]}-{ein[2:]}", "entity_type": entity, "vertical": vertical,
              "country": (f.text("country") or "US").upper()[:2], "contact_phone": f.text("contact_phone")}
    brand = await brands.register(request.app[app_keys.SESSIONMAKER], account_id, fields,
                                  submit=f.boolean("submit") is not False, actor=OPERATOR)
    return web.json_response(brand_view(brand), status=201)


@routes.get("/admin/brands")
async def list_brands(request: web.Request) -> web.Response:
    rows = await brands.list_brands(request.app[app_keys.SESSIONMAKER])
    return web.json_response({"brands": [brand_view(b) for b in rows]})


@routes.get("/admin/brands/{id}")
async def show_brand(request: web.Request) -> web.Response:
    b, history = await brands.brand_history(request.app[app_keys.SESSIONMAKER], request.match_info["id"])
    return web.json_response({**brand_view(b), "history": history})


@routes.post("/admin/brands/{id}/{action:review|vet|resubmit}")
async def brand_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"outcome", "trust_score", "reason"})
    action = request.match_info["action"]
    if action == "review":
        args = {"outcome": f.text("outcome", required=True) or "", "trust_score": f.integer("trust_score"),
                "reason": f.text("reason")}
    elif action == "vet":
        args = {"trust_score": f.integer("trust_score", minimum=0, maximum=100)}
        if args["trust_score"] is None:
            raise Unprocessable("vet needs a trust_score.", code="missing_field")
    else:
        args = {"reason": f.text("reason")}
    b = await brands.brand_action(request.app[app_keys.SESSIONMAKER], request.match_info["id"], action,
                                  actor=OPERATOR, **args)
    return web.json_response(brand_view(b))


# --- campaigns -----------------------------------------------------------------------------------------------------
CAMPAIGN_FIELDS = {"brand_id", "use_case", "description", "sample_messages", "opt_in_message", "opt_out_message",
                   "help_message", "embedded_links", "number_pooling", "age_gated"}


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
                  use_case=use_case, sample_messages=data.get("sample_messages"))
    campaign, brand = await campaigns.create(request.app[app_keys.SESSIONMAKER],
                                             str(f.integer("brand_id", minimum=1)), fields, OPERATOR)
    return web.json_response(campaign_view(campaign, brand), status=201)


@routes.get("/admin/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    rows = await campaigns.list_campaigns(request.app[app_keys.SESSIONMAKER])
    return web.json_response({"campaigns": [campaign_view(c) for c in rows]})


@routes.get("/admin/campaigns/{id}")
async def show_campaign(request: web.Request) -> web.Response:
    c, brand, numbers, history = await campaigns.campaign_detail(request.app[app_keys.SESSIONMAKER],
                                                                 request.match_info["id"])
    return web.json_response({**campaign_view(c, brand), "numbers": numbers, "history": history})


@routes.post("/admin/campaigns/{id}/{action:review|suspend|reinstate|expire|resubmit}")
async def campaign_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"outcome", "reason"})
    action = request.match_info["action"]
    outcome = f.text("outcome", required=True) or "" if action == "review" else ""
    c, brand = await campaigns.campaign_action(request.app[app_keys.SESSIONMAKER], request.match_info["id"], action,
                                               actor=OPERATOR, outcome=outcome, reason=f.text("reason"))
    return web.json_response(campaign_view(c, brand))


@routes.post("/admin/campaigns/{id}/{action:associate|disassociate}")
async def campaign_number(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"number"})
    number = origination(f.text("number", required=True) or "")
    n = await campaigns.move_number(request.app[app_keys.SESSIONMAKER], request.match_info["id"], number,
                                    request.match_info["action"], OPERATOR)
    return web.json_response(full_number_view(n))


@routes.post("/admin/registry/advance")
async def registry_advance(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"days"})
    at, done = await campaigns.advance(request.app[app_keys.SESSIONMAKER],
                                       f.integer("days", minimum=0, maximum=3650) or 0)
    return web.json_response({"registry_time": iso(at), "completed": done})


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
