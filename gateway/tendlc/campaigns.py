"""10DLC campaigns as a CSP runs them: created at the registry under a verified brand, shared with the DCA,
reviewed by each carrier, renewed or deactivated; the numbers they hold, associated through the DCA's orders."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict
from gateway.numbers.lifecycle import find as find_number
from gateway.tendlc.brands import find, listing, reference_id, send
from gateway.tendlc.csp import Csp, Result
from registry import states
from registry.db import iso
from registry.models import Brand, Campaign, CampaignOperation, Number, NumberOrder, NumberOrderItem


async def create(csp: Csp, brand_ident: str, fields: dict[str, Any], *, actor: str,
                 events_base: str | None = None) -> tuple[Campaign | None, Brand, Result]:
    """A campaign of the brand, created at the registry: refused here (409 brand_not_verified) unless the
    registry verified the brand."""
    async with csp.sessions() as session, session.begin():
        brand = await find(session, Brand, brand_ident, "brand")
        states.check_campaign_brand(brand)
        samples = states.check_samples(fields.pop("sample_messages"))
        campaign = Campaign(account_id=brand.account_id, brand_id=brand.id, status="created",
                            sample_messages=json.dumps(samples), **fields)
        session.add(campaign)
        await session.flush()
        campaign.reference_id = reference_id("C", campaign.id)
        states.record(session, "campaign", campaign.id, None, "created", actor)
        request = csp.request(session, "campaign", campaign.id, "create")
    result = await send(csp, request.id, events_base)
    async with csp.sessions() as session:
        return await session.get(Campaign, campaign.id), brand, result


ACTIONS = ("share", "renew", "deactivate")


async def act(csp: Csp, ident: str, operation: str, *, actor: str, cnp_id: str | None = None,
              events_base: str | None = None) -> tuple[Campaign, Brand | None, Result]:
    """``operation`` (ACTIONS) on a campaign the registry has: share it with the DCA (``cnp_id``, default the
    configured one), renew it, deactivate it for good."""
    async with csp.sessions() as session, session.begin():
        campaign = await find(session, Campaign, ident, "campaign")
        if campaign.registry_id is None:
            raise Conflict(f"Campaign {campaign.id} has not reached the registry yet (its creation is pending).",
                           code="campaign_not_registered")
        if campaign.status in ("deactivated",) or (operation == "share" and campaign.status == "expired"):
            raise Conflict(f"Campaign {campaign.id} is {campaign.status}.", code="campaign_not_live")
        if operation == "share" and campaign.sharing_status in ("PENDING", "ACCEPTED"):
            raise Conflict(f"Campaign {campaign.id} is shared already ({campaign.sharing_status}).",
                           code="campaign_already_shared")
        states.record(session, "campaign", campaign.id, campaign.status, campaign.status, actor,
                      f"{operation} requested" + (f" with {cnp_id}" if cnp_id else ""))
        request = csp.request(session, "campaign", campaign.id, operation, {"cnp_id": cnp_id} if cnp_id else None)
    result = await send(csp, request.id, events_base)
    async with csp.sessions() as session:
        campaign = await session.get(Campaign, campaign.id)
        return campaign, await session.get(Brand, campaign.brand_id), result


async def list_campaigns(sessions: async_sessionmaker[AsyncSession],
                         account_id: int | None = None) -> list[Campaign]:
    return await listing(sessions, Campaign, account_id)


async def get_campaign(sessions: async_sessionmaker[AsyncSession], ident: str,
                       account_id: int | None = None) -> tuple[Campaign, Brand | None]:
    """The campaign (of the account, when one is given) and its brand."""
    async with sessions() as session:
        campaign = await find(session, Campaign, ident, "campaign", account_id)
        return campaign, await session.get(Brand, campaign.brand_id)


async def operations_of(session: AsyncSession, campaign_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Each campaign's carriers: status, why and when (registry clock)."""
    rows = (await session.scalars(select(CampaignOperation).where(CampaignOperation.campaign_id.in_(campaign_ids))
                                  .order_by(CampaignOperation.mno))).all() if campaign_ids else []
    out: dict[int, dict[str, dict[str, Any]]] = {cid: {} for cid in campaign_ids}
    for r in rows:
        out[r.campaign_id][r.mno] = {"status": r.status, "description": r.description,
                                     "updated_at": iso(r.updated_at)}
    return out


async def campaign_detail(sessions: async_sessionmaker[AsyncSession], ident: str) -> dict[str, Any]:
    """The campaign, its brand, its numbers, each carrier's review, its number orders and its history."""
    async with sessions() as session:
        campaign = await find(session, Campaign, ident, "campaign")
        brand = await session.get(Brand, campaign.brand_id)
        numbers = (await session.scalars(select(Number.number).where(Number.campaign_id == campaign.id,
                                                                     Number.type == "ten_dlc"))).all()
        orders = (await session.scalars(select(NumberOrder).where(NumberOrder.campaign_id == campaign.id)
                                        .order_by(NumberOrder.id))).all()
        items = (await session.scalars(select(NumberOrderItem).where(
            NumberOrderItem.order_id.in_([o.id for o in orders])).order_by(NumberOrderItem.id))).all() \
            if orders else []
        return {"campaign": campaign, "brand": brand, "numbers": list(numbers),
                "operations": (await operations_of(session, [campaign.id]))[campaign.id],
                "orders": [order_view(o, [i for i in items if i.order_id == o.id]) for o in orders],
                "history": await states.history(session, "campaign", campaign.id)}


def order_view(order: NumberOrder, items: list[NumberOrderItem]) -> dict[str, Any]:
    return {"id": order.id, "kind": order.kind, "status": order.status, "registry_id": order.registry_id,
            "numbers": [{"number": i.number, "status": i.status, "reason": i.reason} for i in items],
            "registry_updated_at": iso(order.registry_updated_at), "created_at": iso(order.created_at)}


async def order_numbers(csp: Csp, ident: str, numbers: list[str], kind: str, *, actor: str,
                        events_base: str | None = None) -> tuple[dict[str, Any], Result]:
    """Associate ``numbers`` with the campaign (kind ASSOCIATE), or take one out of it (DISASSOCIATE), through
    an order to the DCA: the numbers are associating (disassociating) until the DCA completes the order."""
    async with csp.sessions() as session, session.begin():
        campaign = await find(session, Campaign, ident, "campaign")
        held = [await find_number(session, n, released=False) for n in numbers]
        for number in held:
            if kind == "ASSOCIATE":
                states.check_associable(campaign, number)
            elif campaign.registry_id is None:
                raise Conflict(f"Campaign {campaign.id} has not reached the registry.", code="campaign_not_registered")
        order = NumberOrder(campaign_id=campaign.id, kind=kind, status="pending", reference_id=reference_id("O", 0))
        session.add(order)
        await session.flush()
        order.reference_id = reference_id("O", order.id)
        for number in held:
            if kind == "ASSOCIATE":
                await states.start_association(session, number, campaign, actor)
            else:
                await states.start_disassociation(session, number, campaign, actor)
            session.add(NumberOrderItem(order_id=order.id, number_id=number.id, number=number.number,
                                        status="associating" if kind == "ASSOCIATE" else "disassociating"))
        states.record(session, "order", order.id, None, "pending", actor,
                      f"{kind} {', '.join(numbers)} in campaign {campaign.id}")
        request = csp.request(session, "order", order.id, kind.lower())
    result = await send(csp, request.id, events_base)
    async with csp.sessions() as session:
        order = await session.get(NumberOrder, order.id)
        items = (await session.scalars(select(NumberOrderItem).where(NumberOrderItem.order_id == order.id))).all()
        return order_view(order, list(items)), result
