"""Each request the gateway makes of the registry as a CSP: what the call needs, the call, how its answer is
applied, and what a refusal (a 4xx) undoes. gateway.tendlc.csp stores, sends and retries them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.settings_registry import RegistrySettings
from registry import events, states
from registry.csp.client import CspClient, CspError
from registry.models import Brand, Campaign, Number, NumberOrder, NumberOrderItem, Transition

ANSWER = "registry answer"

Args = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    arguments: Callable[[AsyncSession, Any, dict[str, Any], RegistrySettings], Awaitable[Args]]
    call: Callable[[CspClient, Args], Awaitable[Any]]
    # (session, target, answer, no event changed it meanwhile, args) -> campaigns whose sending rules changed
    apply: Callable[[AsyncSession, Any, Any, bool, Args], Awaitable[set[int]]]
    refused: Callable[[AsyncSession, Any, CspError], Awaitable[set[int]]]


def marks(target: Any) -> tuple:
    """What events change on the target: an answer is applied only when these are as they were before the call."""
    if isinstance(target, Brand):
        return target.status, target.identity_mark, target.vetting_mark
    if isinstance(target, Campaign):
        return target.status, target.status_mark, target.sharing_mark
    return target.status, target.mark


def brand_fields(b: Brand, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The brand as the registry takes it (``changes``: new values of the gateway's fields)."""
    v = {**{c: getattr(b, c) for c in ("legal_name", "ein", "entity_type", "vertical", "website", "country",
                                       "contact_email", "contact_phone", "street", "city", "state", "postal_code",
                                       "relationship")}, **(changes or {})}
    return {"entityType": v["entity_type"], "displayName": v["legal_name"], "companyName": v["legal_name"],
            "ein": v["ein"].replace("-", ""), "phone": v["contact_phone"] or "", "street": v["street"] or "",
            "city": v["city"] or "", "state": v["state"] or "", "postalCode": v["postal_code"] or "",
            "country": v["country"], "email": v["contact_email"], "website": v["website"], "vertical": v["vertical"],
            "brandRelationship": v["relationship"], "referenceId": b.reference_id}


def campaign_fields(c: Campaign, brand: Brand) -> dict[str, Any]:
    samples = json.loads(c.sample_messages)
    return {"brandId": brand.registry_id, "usecase": c.use_case, "description": c.description,
            **{f"sample{i + 1}": s for i, s in enumerate(samples)}, "messageFlow": c.opt_in_message,
            "helpMessage": c.help_message, "optinMessage": c.opt_in_message, "optoutMessage": c.opt_out_message,
            "optoutKeywords": "STOP", "helpKeywords": "HELP", "subscriberOptin": True, "subscriberOptout": True,
            "subscriberHelp": True, "embeddedLink": c.embedded_links, "embeddedPhone": False,
            "numberPool": c.number_pooling, "ageGated": c.age_gated, "directLending": False,
            "referenceId": c.reference_id, "autoRenewal": c.auto_renewal}


def _registry_id(answer: Any, name: str) -> str:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value or len(value) > 10:
        raise CspError("registry_bad_answer", f"The registry's answer has no {name}.")
    return value


async def _forget(session: AsyncSession, entity: str, target: Any) -> set[int]:
    """Remove what the registry refused to create, with its history (it never existed there)."""
    await session.execute(delete(Transition).where(Transition.entity == entity, Transition.entity_id == target.id))
    await session.delete(target)
    return set()


async def _nothing(session: AsyncSession, target: Any, exc: CspError) -> set[int]:
    return set()


# --- brands ---------------------------------------------------------------------------------------------------------
async def _brand_args(session: AsyncSession, brand: Brand, body: dict[str, Any], settings: RegistrySettings) -> Args:
    changes = body.get("changes") or {}
    return {**body, "id": brand.registry_id, "fields": brand_fields(brand, changes), "changes": changes}


async def _registered(session: AsyncSession, brand: Brand, answer: Any, unchanged: bool, args: Args) -> set[int]:
    brand.registry_id = _registry_id(answer, "brandId")
    if brand.status == "created":
        states.record(session, "brand", brand.id, "created", "submitted", ANSWER,
                      f"registered as {brand.registry_id}; identity check running")
        brand.status = "submitted"
    await session.flush()
    return await events.apply_unmatched(session, brand.registry_id)


async def _rechecked(session: AsyncSession, brand: Brand, answer: Any, unchanged: bool, args: Args) -> set[int]:
    """After an update or a revet the registry checks the identity again: its result comes as an event."""
    if unchanged and brand.status not in ("deleted", "submitted"):
        states.record(session, "brand", brand.id, brand.status, "submitted", ANSWER, "identity check running again")
        brand.status = "submitted"
    return set()


async def _updated(session: AsyncSession, brand: Brand, answer: Any, unchanged: bool, args: Args) -> set[int]:
    """The new values are the gateway's once the registry took them."""
    for name, value in args["changes"].items():
        setattr(brand, name, value)
    states.record(session, "brand", brand.id, brand.status, brand.status, ANSWER,
                  "updated: " + ", ".join(sorted(args["changes"])))
    return await _rechecked(session, brand, answer, unchanged, args)


async def _vetting_ordered(session: AsyncSession, brand: Brand, answer: Any, unchanged: bool, args: Args) -> set[int]:
    if unchanged:
        status = answer.get("vettingStatus") if isinstance(answer, dict) else None
        await events.set_vetting(session, brand, status if status in ("PENDING", "ACTIVE", "FAILED") else "PENDING",
                                 answer.get("vettingId") if isinstance(answer, dict) else None, None, None, ANSWER)
    return set()


async def _deleted(session: AsyncSession, brand: Brand, answer: Any, unchanged: bool, args: Args) -> set[int]:
    return (await events.set_deleted(session, brand, None, None, ANSWER)).campaigns


# --- campaigns ------------------------------------------------------------------------------------------------------
async def _campaign_args(session: AsyncSession, campaign: Campaign, body: dict[str, Any],
                         settings: RegistrySettings) -> Args:
    brand = await session.get(Brand, campaign.brand_id)
    return {"id": campaign.registry_id, "fields": campaign_fields(campaign, brand),
            "cnp_id": body.get("cnp_id") or settings.cnp_id}


async def _created(session: AsyncSession, campaign: Campaign, answer: Any, unchanged: bool, args: Args) -> set[int]:
    campaign.registry_id = _registry_id(answer, "campaignId")
    campaign.registry_status = answer.get("status") if answer.get("status") in ("ACTIVE", "EXPIRED") else "ACTIVE"
    campaign.expires_at = events.parse_time(answer.get("expirationDate"), "expirationDate")
    await events.restate(session, campaign, ANSWER, f"created at the registry as {campaign.registry_id}")
    await session.flush()
    return {campaign.id} | await events.apply_unmatched(session, campaign.registry_id)


async def _shared(session: AsyncSession, campaign: Campaign, answer: Any, unchanged: bool, args: Args) -> set[int]:
    status = answer.get("sharingStatus") if isinstance(answer, dict) else None
    if not unchanged or campaign.sharing_status in ("ACCEPTED", "DECLINED"):
        return set()
    return (await events.set_sharing(session, campaign, status if status in ("PENDING", "ACCEPTED", "DECLINED")
                                     else "PENDING", None, None, ANSWER)).campaigns


async def _renewed(session: AsyncSession, campaign: Campaign, answer: Any, unchanged: bool, args: Args) -> set[int]:
    expires = events.parse_time(answer.get("expirationDate"), "expirationDate") if isinstance(answer, dict) else None
    status = answer.get("status") if isinstance(answer, dict) else None
    if not unchanged or expires is None:
        return set()
    return (await events.set_registry_status(session, campaign, status if status in ("ACTIVE", "EXPIRED") else
                                             campaign.registry_status or "ACTIVE", None, None, ANSWER,
                                             expires=expires)).campaigns


async def _deactivated(session: AsyncSession, campaign: Campaign, answer: Any, unchanged: bool, args: Args) -> set[int]:
    return (await events.set_registry_status(session, campaign, "DEACTIVATED", None, None, ANSWER)).campaigns


# --- number orders --------------------------------------------------------------------------------------------------
async def _order_args(session: AsyncSession, order: NumberOrder, body: dict[str, Any],
                      settings: RegistrySettings) -> Args:
    campaign = await session.get(Campaign, order.campaign_id)
    numbers = (await session.scalars(select(NumberOrderItem.number).where(NumberOrderItem.order_id == order.id)
                                     .order_by(NumberOrderItem.id))).all()
    return {"campaign": campaign.registry_id, "numbers": list(numbers), "reference": order.reference_id}


async def _placed(session: AsyncSession, order: NumberOrder, answer: Any, unchanged: bool, args: Args) -> set[int]:
    order.registry_id = _registry_id(answer, "orderId")
    if order.status == "pending":
        states.record(session, "order", order.id, "pending", "placed", ANSWER, f"placed as {order.registry_id}")
        order.status = "placed"
    await session.flush()
    return {order.campaign_id} | await events.apply_unmatched(session, order.registry_id)


async def _order_refused(session: AsyncSession, order: NumberOrder, exc: CspError) -> set[int]:
    """The DCA refused the order: its numbers are as they were before it."""
    states.record(session, "order", order.id, order.status, "failed", ANSWER, f"refused: {exc.code}")
    order.status = "failed"
    for item in (await session.scalars(select(NumberOrderItem).where(NumberOrderItem.order_id == order.id))).all():
        item.status, item.reason = "failed", f"{exc.code}: {exc.message}"
        number = await session.get(Number, item.number_id)
        if number is not None:
            await states.finish_number(session, number, order.kind, False, ANSWER, f"order refused: {exc.code}")
    return {order.campaign_id}


async def _associate(client: CspClient, a: Args) -> Any:
    return await client.associate_numbers(a["campaign"], a["numbers"], a["reference"])


async def _disassociate(client: CspClient, a: Args) -> Any:
    return await client.disassociate_number(a["campaign"], a["numbers"][0])


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("brand", "register"): Operation(_brand_args, lambda c, a: c.register_brand(a["fields"]), _registered,
                                     lambda s, t, e: _forget(s, "brand", t)),
    ("brand", "update"): Operation(_brand_args, lambda c, a: c.update_brand(a["id"], a["fields"]), _updated,
                                   _nothing),
    ("brand", "revet"): Operation(_brand_args, lambda c, a: c.revet_brand(a["id"]), _rechecked, _nothing),
    ("brand", "vet"): Operation(_brand_args, lambda c, a: c.order_vetting(a["id"], a.get("evp_id", "AEGIS"),
                                                                          a.get("vetting_class", "STANDARD")),
                                _vetting_ordered, _nothing),
    ("brand", "delete"): Operation(_brand_args, lambda c, a: c.delete_brand(a["id"]), _deleted, _nothing),
    ("campaign", "create"): Operation(_campaign_args, lambda c, a: c.create_campaign(a["fields"]), _created,
                                      lambda s, t, e: _forget(s, "campaign", t)),
    ("campaign", "share"): Operation(_campaign_args, lambda c, a: c.share_campaign(a["id"], a["cnp_id"]), _shared,
                                     _nothing),
    ("campaign", "renew"): Operation(_campaign_args, lambda c, a: c.renew_campaign(a["id"]), _renewed, _nothing),
    ("campaign", "deactivate"): Operation(_campaign_args, lambda c, a: c.deactivate_campaign(a["id"]), _deactivated,
                                          _nothing),
    ("order", "associate"): Operation(_order_args, _associate, _placed, _order_refused),
    ("order", "disassociate"): Operation(_order_args, _disassociate, _placed, _order_refused),
}
