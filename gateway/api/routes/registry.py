"""Numbers, 10DLC brands and campaigns: operator routes (/admin) and customers' read-only views (/v1)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import select
from yarl import URL

from gateway.api import app_keys
from gateway.api.routes.two_way import number_view
from gateway.errors import BadRequest, Conflict, NotFound, Unprocessable
from gateway.store.statements import insert_new
from gateway.validation import (
    Fields,
    csv_chunks,
    origination,
    paced,
    read_body,
    read_json_object,
    row_id,
    valid_list_name,
)
from registry import inventory, tcr
from registry.limits import derive
from registry.models import Account, Brand, Campaign, Number

routes = web.RouteTableDef()
OPERATOR = "operator"


def _raise(exc: tcr.RegistryError) -> None:
    cls = {"conflict": Conflict, "not_found": NotFound, "invalid": Unprocessable}[exc.kind]
    raise cls(str(exc), code=exc.code) from None


async def _get(session, model, ident: str, what: str, account_id: int | None = None):  # noqa: ANN001, ANN202
    key = row_id(ident)
    obj = await session.get(model, key) if key is not None else None
    if obj is None or (account_id is not None and obj.account_id != account_id):
        raise NotFound(f"No {what} {ident}.", code=f"{what}_not_found")
    return obj


async def _number(session, value: str, account_id: int | None = None) -> Number:  # noqa: ANN001
    number = await session.scalar(select(Number).where(Number.number == value))
    if number is None or (account_id is not None and number.account_id != account_id):
        raise NotFound(f"No number {value}.", code="number_not_found")
    return number


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


def full_number_view(n: Number) -> dict[str, Any]:
    return {**number_view(n), "id": n.id, "account_id": n.account_id, "carrier": n.carrier,
            "monthly_price": n.monthly_price, "deletion_protection": n.deletion_protection,
            "campaign_id": n.campaign_id, "international": n.international,
            "registry_due_at": n.registry_due_at.isoformat().replace("+00:00", "Z") if n.registry_due_at else None}


# --- inventory -----------------------------------------------------------------------------------------------------
@routes.post("/admin/inventory/import")
async def import_inventory(request: web.Request) -> web.Response:
    """CSV: number,type,country,capabilities,carrier,monthly_price (a header may name them in another order; without
    one, this order). Every row that is not blank is counted once: added, or rejected with its line and why.
    Written IMPORT_CHUNK rows to a short transaction."""
    raw = await read_body(request)
    carriers = {c.name for c in request.app[app_keys.SETTINGS].carriers}
    columns: list[str] = list(inventory.COLUMNS)
    added, errors, counted = 0, [], 0
    async with request.app[app_keys.SESSIONMAKER]() as session:
        have = set((await session.scalars(select(Number.number))).all())
    async for chunk in csv_chunks(raw):
        new: dict[str, tuple[int, list[str], dict[str, Any]]] = {}
        async for line_no, row in paced(chunk):
            if line_no == 1 and inventory.is_header(row):
                try:
                    columns = inventory.header_columns(row)
                except inventory.RowError as exc:
                    raise BadRequest(str(exc), code=exc.code) from None  # missing_columns, unknown_columns
                continue
            counted += 1
            try:
                fields = inventory.number_fields(row, columns, carriers)
                if fields["number"] in have:
                    raise inventory.RowError("duplicate", f"{fields['number']} is in the inventory already")
            except inventory.RowError as exc:
                errors.append(_row_error(line_no, row, exc.code, str(exc)))
                continue
            new[fields["number"]] = (line_no, row, {**fields, "status": "active", "account_id": None})
            have.add(fields["number"])
        if new:
            async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
                stored = set((await session.scalars(insert_new(session, Number, ("number",)).returning(Number.number),
                                                    [v for _, _, v in new.values()])).all())
            added += len(stored)
            errors += [_row_error(line_no, row, "duplicate", f"{n} is in the inventory already")
                       for n, (line_no, row, _) in new.items() if n not in stored]  # added meanwhile by another
    errors.sort(key=lambda e: e["line"])
    return web.json_response({"rows": counted, "added": added, "rejected": len(errors), "errors": errors[:1000]})


def _row_error(line_no: int, row: list[str], code: str, message: str) -> dict[str, Any]:
    return {"line": line_no, "value": ",".join(row)[:80], "error": code, "message": message}


# --- numbers -------------------------------------------------------------------------------------------------------
@routes.get("/admin/numbers")
async def list_numbers(request: web.Request) -> web.Response:
    q = request.query
    stmt = select(Number).order_by(Number.id)
    if "account" in q:
        account_id = row_id(q["account"])
        stmt = stmt.where(Number.account_id == account_id if account_id is not None else Number.id < 0)
    if q.get("free", "true") not in ("true", "false"):
        raise BadRequest("free is true or false.", code="invalid_query")
    if q.get("free") == "true":
        stmt = stmt.where(Number.account_id.is_(None), Number.status != "released")
    if "type" in q:
        stmt = stmt.where(Number.type == q["type"])
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(stmt)).all()
    return web.json_response({"numbers": [full_number_view(n) for n in rows]})


@routes.post("/admin/numbers/lease")
async def lease_number(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"account_id", "type", "country", "capabilities"})
    account_id = f.integer("account_id", minimum=1)
    kind = f.text("type", required=True) or ""
    if kind not in tcr.NUMBER_TYPES:
        raise Unprocessable(f"type must be one of {', '.join(tcr.NUMBER_TYPES)}.", code="invalid_field")
    caps = set((f.text("capabilities") or "sms").split(","))
    if not caps <= set(tcr.CAPABILITIES):
        raise Unprocessable("capabilities are sms and/or voice.", code="invalid_field")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        try:
            number = await tcr.lease(session, account_id, kind, (f.text("country") or "US").upper(), caps, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        await session.flush()
        return web.json_response(full_number_view(number), status=201)


@routes.get("/admin/numbers/{number}/registry")
async def show_number(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        n = await _number(session, request.match_info["number"])
        return web.json_response({**full_number_view(n), "history": await tcr.history(session, "number", n.id)})


@routes.patch("/admin/numbers/{number}")
async def update_number(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, {"two_way_enabled", "two_way_webhook_url", "message_type", "opt_out_list",
                      "deletion_protection", "international"})
    f.not_null("two_way_enabled", "deletion_protection", "international", "message_type")
    urls = await request.app[app_keys.URL_POLICY].fields(f, "two_way_webhook_url")
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _number(session, request.match_info["number"])
        for name in ("two_way_enabled", "deletion_protection", "international"):
            if name in data:
                setattr(n, name, bool(f.boolean(name)))
        if "two_way_webhook_url" in data:
            n.two_way_webhook_url = urls["two_way_webhook_url"]
        if "message_type" in data:
            mt = f.text("message_type")
            if mt not in ("transactional", "promotional"):
                raise Unprocessable("message_type is transactional or promotional.", code="invalid_field")
            n.message_type = mt
        if "opt_out_list" in data:
            n.opt_out_list = valid_list_name(f.text("opt_out_list") or None, field="opt_out_list", default=None)
        return web.json_response(full_number_view(n))


@routes.post("/admin/numbers/{number}/{action:activate|release}")
async def number_action(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        n = await _number(session, request.match_info["number"])
        try:
            if request.match_info["action"] == "activate":
                await tcr.activate(session, n, OPERATOR)
            else:
                await tcr.release(session, n, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(full_number_view(n))


# --- brands --------------------------------------------------------------------------------------------------------
BRAND_FIELDS = {"account_id", "legal_name", "ein", "entity_type", "vertical", "website", "country", "contact_email",
                "contact_phone", "submit"}


def _is_website(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and "." in (url.host or "") and not any(c.isspace() for c in value)


@routes.post("/admin/brands")
async def register_brand(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), BRAND_FIELDS)
    account_id = f.integer("account_id", minimum=1)
    values = {name: f.text(name, required=True, max_length=255, allow_empty=False) for name in
              ("legal_name", "ein", "entity_type", "vertical", "website", "contact_email")}
    entity = (values["entity_type"] or "").upper()
    if entity not in tcr.ENTITY_TYPES:
        raise Unprocessable(f"entity_type is one of {', '.join(tcr.ENTITY_TYPES)}.", code="invalid_field",
                            details={"field": "entity_type"})
    vertical = (values["vertical"] or "").upper()
    if vertical not in tcr.VERTICALS:
        raise Unprocessable(f"vertical is one of {', '.join(tcr.VERTICALS)}.", code="invalid_field",
                            details={"field": "vertical"})
    ein = (values["ein"] or "").replace("-", "")
    if not (ein.isascii() and ein.isdigit() and len(ein) == 9):
        raise Unprocessable("ein is a 9-digit US employer identification number.", code="invalid_field",
                            details={"field": "ein"})
    if not _is_website(values["website"] or ""):
        raise Unprocessable("website must be an http(s) URL such as https://acme.example.", code="invalid_field",
                            details={"field": "website"})
    if "@" not in (values["contact_email"] or ""):
        raise Unprocessable("contact_email must be an e-mail address.", code="invalid_field",
                            details={"field": "contact_email"})
    ein = f"{ein[:2]}-{ein[2:]}"
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        existing = await session.scalar(select(Brand).where(Brand.ein == ein).order_by(Brand.id).limit(1))
        if existing is not None:  # the registry keeps one brand per EIN
            raise Conflict(f"Brand {existing.id} already has the EIN {ein}.", code="brand_exists",
                           details={"brand_id": existing.id, "account_id": existing.account_id})
        brand = Brand(account_id=account_id, legal_name=values["legal_name"], ein=ein,
                      entity_type=entity, vertical=vertical, website=values["website"],
                      country=(f.text("country") or "US").upper()[:2], contact_email=values["contact_email"],
                      contact_phone=f.text("contact_phone"), status="created")
        session.add(brand)
        await session.flush()
        if f.boolean("submit") is not False:
            await tcr.submit_brand(session, brand, OPERATOR)
        return web.json_response(brand_view(brand), status=201)


@routes.get("/admin/brands")
async def list_brands(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Brand).order_by(Brand.id))).all()
    return web.json_response({"brands": [brand_view(b) for b in rows]})


@routes.get("/admin/brands/{id}")
async def show_brand(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        b = await _get(session, Brand, request.match_info["id"], "brand")
        return web.json_response({**brand_view(b), "history": await tcr.history(session, "brand", b.id)})


@routes.post("/admin/brands/{id}/{action:review|vet|resubmit}")
async def brand_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"outcome", "trust_score", "reason"})
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        b = await _get(session, Brand, request.match_info["id"], "brand")
        try:
            action = request.match_info["action"]
            if action == "review":
                await tcr.review_brand(session, b, f.text("outcome", required=True) or "",
                                       f.integer("trust_score"), f.text("reason"), OPERATOR)
            elif action == "vet":
                score = f.integer("trust_score", minimum=0, maximum=100)
                if score is None:
                    raise Unprocessable("vet needs a trust_score.", code="missing_field")
                await tcr.vet_brand(session, b, score, OPERATOR)
            else:
                await tcr.submit_brand(session, b, OPERATOR, f.text("reason"))
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(brand_view(b))


# --- campaigns -----------------------------------------------------------------------------------------------------
CAMPAIGN_FIELDS = {"brand_id", "use_case", "description", "sample_messages", "opt_in_message", "opt_out_message",
                   "help_message", "embedded_links", "number_pooling", "age_gated"}


@routes.post("/admin/campaigns")
async def create_campaign(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    f = Fields(data, CAMPAIGN_FIELDS)
    use_case = (f.text("use_case", required=True) or "").upper()
    if use_case not in tcr.USE_CASES:
        raise Unprocessable(f"use_case is one of {', '.join(tcr.USE_CASES)}.", code="invalid_field",
                            details={"field": "use_case"})
    fields = {name: f.text(name, required=True, max_length=4096, allow_empty=False)
              for name in ("description", "opt_in_message", "opt_out_message", "help_message")}
    fields.update({name: bool(f.boolean(name)) for name in ("embedded_links", "number_pooling", "age_gated")},
                  use_case=use_case, sample_messages=data.get("sample_messages"))
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        brand = await _get(session, Brand, str(f.integer("brand_id", minimum=1)), "brand")
        try:
            campaign = await tcr.create_campaign(session, brand, fields, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(campaign_view(campaign, brand), status=201)


@routes.get("/admin/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Campaign).order_by(Campaign.id))).all()
    return web.json_response({"campaigns": [campaign_view(c) for c in rows]})


@routes.get("/admin/campaigns/{id}")
async def show_campaign(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        c = await _get(session, Campaign, request.match_info["id"], "campaign")
        brand = await session.get(Brand, c.brand_id)
        numbers = (await session.scalars(select(Number.number).where(Number.campaign_id == c.id))).all()
        return web.json_response({**campaign_view(c, brand), "numbers": list(numbers),
                                  "history": await tcr.history(session, "campaign", c.id)})


@routes.post("/admin/campaigns/{id}/{action:review|suspend|reinstate|expire|resubmit}")
async def campaign_action(request: web.Request) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    f = Fields(data, {"outcome", "reason"})
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        c = await _get(session, Campaign, request.match_info["id"], "campaign")
        action = request.match_info["action"]
        try:
            if action == "review":
                await tcr.review_campaign(session, c, f.text("outcome", required=True) or "", f.text("reason"),
                                          OPERATOR)
            else:
                to = {"suspend": "suspended", "reinstate": "approved", "expire": "expired",
                      "resubmit": "submitted"}[action]
                await tcr.set_campaign_state(session, c, to, OPERATOR, f.text("reason"))
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(campaign_view(c, await session.get(Brand, c.brand_id)))


@routes.post("/admin/campaigns/{id}/{action:associate|disassociate}")
async def campaign_number(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"number"})
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        c = await _get(session, Campaign, request.match_info["id"], "campaign")
        n = await _number(session, origination(f.text("number", required=True) or ""))
        try:
            if request.match_info["action"] == "associate":
                await tcr.associate(session, c, n, OPERATOR)
            else:
                if n.campaign_id != c.id:
                    raise tcr.RegistryError("number_not_in_campaign", f"{n.number} is not in campaign {c.id}.")
                await tcr.disassociate(session, n, OPERATOR)
        except tcr.RegistryError as exc:
            _raise(exc)
        return web.json_response(full_number_view(n))


@routes.post("/admin/registry/advance")
async def registry_advance(request: web.Request) -> web.Response:
    f = Fields(await read_json_object(request), {"days"})
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        try:
            at, done = await tcr.advance(session, f.integer("days", minimum=0, maximum=3650) or 0)
        except tcr.RegistryError as exc:
            _raise(exc)
    return web.json_response({"registry_time": at.isoformat().replace("+00:00", "Z"), "completed": done})


# --- customers' views -----------------------------------------------------------------------------------------------
@routes.get("/v1/brands")
async def my_brands(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(Brand).where(Brand.account_id == request[app_keys.ACCOUNT_ID]))).all()
    return web.json_response({"brands": [brand_view(b) for b in rows]})


@routes.get("/v1/brands/{id}")
async def my_brand(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        b = await _get(session, Brand, request.match_info["id"], "brand", request[app_keys.ACCOUNT_ID])
        return web.json_response({**brand_view(b), "history": await tcr.history(session, "brand", b.id)})


@routes.get("/v1/campaigns")
async def my_campaigns(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        mine = Campaign.account_id == request[app_keys.ACCOUNT_ID]
        rows = (await session.scalars(select(Campaign).where(mine))).all()
    return web.json_response({"campaigns": [campaign_view(c) for c in rows]})


@routes.get("/v1/campaigns/{id}")
async def my_campaign(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        c = await _get(session, Campaign, request.match_info["id"], "campaign", request[app_keys.ACCOUNT_ID])
        return web.json_response(campaign_view(c, await session.get(Brand, c.brand_id)))
