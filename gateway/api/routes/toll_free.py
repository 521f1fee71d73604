"""Toll-free verification: the customer's requests (/v1, and /admin/accounts/{account} for operators acting for an
account) and the reviewer's routes (/admin/toll-free-verifications)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_choice, read_json_object
from gateway.api.routes._scope import OPERATOR, acting_account, both
from gateway.numbers import toll_free as service
from gateway.validation import Fields, row_id
from registry import toll_free
from registry.db import iso
from registry.toll_free import TollFreeVerification

routes = web.RouteTableDef()


def verification_view(v: TollFreeVerification, numbers: list[str]) -> dict[str, Any]:
    return {"id": v.id, "account_id": v.account_id, "status": v.status, "numbers": numbers,
            "business_name": v.business_name, "website": v.website,
            "address": {"street": v.street, "street2": v.street2, "city": v.city, "region": v.region,
                        "postal_code": v.postal_code, "country": v.country},
            "contact": {"first_name": v.contact_first_name, "last_name": v.contact_last_name,
                        "email": v.contact_email, "phone": v.contact_phone},
            "use_case": v.use_case, "use_case_summary": v.use_case_summary, "monthly_volume": v.monthly_volume,
            "opt_in_type": v.opt_in_type, "opt_in_workflow": v.opt_in_workflow,
            "opt_in_image_urls": json.loads(v.opt_in_image_urls), "sample_messages": json.loads(v.sample_messages),
            "additional_info": v.additional_info, "rejection_reason": v.reason, "created_at": iso(v.created_at),
            "updated_at": iso(v.updated_at)}


def _actor(request: web.Request, account_id: int) -> str:
    return f"account {account_id}" if app_keys.ACCOUNT_ID in request else OPERATOR


def _listing(rows: list[tuple[TollFreeVerification, list[str]]]) -> web.Response:
    return web.json_response({"toll_free_verifications": [verification_view(v, numbers) for v, numbers in rows]})


# --- the customer's requests ------------------------------------------------------------------------------------
@both(routes, "POST", "/toll-free-verifications")
async def submit(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    v, numbers = await service.submit(request.app[app_keys.SESSIONMAKER], account_id,
                                      await read_json_object(request), _actor(request, account_id))
    return web.json_response(verification_view(v, numbers), status=201)


@both(routes, "GET", "/toll-free-verifications")
async def list_mine(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    return _listing(await service.listing(request.app[app_keys.SESSIONMAKER], account_id=account_id,
                                          status=query_choice(request, "status", toll_free.STATUSES)))


@both(routes, "GET", "/toll-free-verifications/{id}")
async def show_mine(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    v, numbers, history = await service.detail(request.app[app_keys.SESSIONMAKER], request.match_info["id"],
                                               account_id)
    return web.json_response({**verification_view(v, numbers), "history": history})


@both(routes, "POST", "/toll-free-verifications/{id}/resubmit")
async def resubmit(request: web.Request) -> web.Response:
    account_id = await acting_account(request)
    data = await read_json_object(request) if request.can_read_body else {}
    v, numbers = await service.resubmit(request.app[app_keys.SESSIONMAKER], request.match_info["id"], account_id,
                                        data, _actor(request, account_id))
    return web.json_response(verification_view(v, numbers))


@both(routes, "GET", "/numbers/{number}/toll-free-verification")
async def of_number(request: web.Request) -> web.Response:
    """A toll-free number's verification status (none: in no request), whether it may send SMS, and its request."""
    account_id = await acting_account(request)
    number, v, numbers = await service.of_number(request.app[app_keys.SESSIONMAKER], account_id,
                                                 request.match_info["number"])
    status = v.status if v is not None else toll_free.NONE
    return web.json_response({"number": number.number, "status": status, "sms_allowed": status == "verified",
                              "verification": verification_view(v, numbers) if v is not None else None})


# --- the reviewer (the operator) ----------------------------------------------------------------------------------
@routes.get("/admin/toll-free-verifications")
async def list_all(request: web.Request) -> web.Response:
    shown = request.query.get("account")
    account_id = (row_id(shown) or 0) if shown is not None else None  # 0: an id no account has, so none
    return _listing(await service.listing(request.app[app_keys.SESSIONMAKER], account_id=account_id,
                                          status=query_choice(request, "status", toll_free.STATUSES)))


@routes.get("/admin/toll-free-verifications/{id}")
async def show(request: web.Request) -> web.Response:
    v, numbers, history = await service.detail(request.app[app_keys.SESSIONMAKER], request.match_info["id"])
    return web.json_response({**verification_view(v, numbers), "history": history})


async def _review(request: web.Request, action: str) -> web.Response:
    data = await read_json_object(request) if request.can_read_body else {}
    reason = Fields(data, {"reason"}).text("reason", max_length=4096)
    v, numbers = await service.review(request.app[app_keys.SESSIONMAKER], request.match_info["id"], action, reason,
                                      OPERATOR)
    return web.json_response(verification_view(v, numbers))


@routes.post("/admin/toll-free-verifications/{id}/start-review")
async def start_review(request: web.Request) -> web.Response:
    """submitted -> in_review."""
    return await _review(request, "start_review")


@routes.post("/admin/toll-free-verifications/{id}/verify")
async def verify(request: web.Request) -> web.Response:
    """in_review -> verified: its numbers may send SMS."""
    return await _review(request, "verify")


@routes.post("/admin/toll-free-verifications/{id}/reject")
async def reject(request: web.Request) -> web.Response:
    """in_review -> rejected, with the reason (required) the customer sees."""
    return await _review(request, "reject")
