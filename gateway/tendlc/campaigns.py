"""10DLC campaigns: creation under a verified brand, listing, review and later states, the numbers they hold,
and the local registry's clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.numbers.lifecycle import find as find_number
from gateway.tendlc.brands import find, listing
from registry import states
from registry.models import Brand, Campaign, Number

STATE_ACTIONS = {"suspend": "suspended", "reinstate": "approved", "expire": "expired", "resubmit": "submitted"}


async def create(sessions: async_sessionmaker[AsyncSession], brand_ident: str, fields: dict[str, Any],
                 actor: str) -> tuple[Campaign, Brand]:
    async with sessions() as session, session.begin():
        brand = await find(session, Brand, brand_ident, "brand")
        return await states.create_campaign(session, brand, fields, actor), brand


async def list_campaigns(sessions: async_sessionmaker[AsyncSession],
                         account_id: int | None = None) -> list[Campaign]:
    return await listing(sessions, Campaign, account_id)


async def get_campaign(sessions: async_sessionmaker[AsyncSession], ident: str,
                       account_id: int | None = None) -> tuple[Campaign, Brand | None]:
    """The campaign (of the account, when one is given) and its brand."""
    async with sessions() as session:
        campaign = await find(session, Campaign, ident, "campaign", account_id)
        return campaign, await session.get(Brand, campaign.brand_id)


async def campaign_detail(sessions: async_sessionmaker[AsyncSession],
                          ident: str) -> tuple[Campaign, Brand | None, list[str], list[dict]]:
    """The campaign, its brand, its numbers and its state changes (oldest first)."""
    async with sessions() as session:
        campaign = await find(session, Campaign, ident, "campaign")
        brand = await session.get(Brand, campaign.brand_id)
        numbers = (await session.scalars(select(Number.number).where(Number.campaign_id == campaign.id))).all()
        return campaign, brand, list(numbers), await states.history(session, "campaign", campaign.id)


async def campaign_action(sessions: async_sessionmaker[AsyncSession], ident: str, action: str, *, actor: str,
                          outcome: str = "", reason: str | None = None) -> tuple[Campaign, Brand | None]:
    """``action``: review (an outcome), or one of STATE_ACTIONS."""
    async with sessions() as session, session.begin():
        campaign = await find(session, Campaign, ident, "campaign")
        if action == "review":
            await states.review_campaign(session, campaign, outcome, reason, actor)
        else:
            await states.set_campaign_state(session, campaign, STATE_ACTIONS[action], actor, reason)
        return campaign, await session.get(Brand, campaign.brand_id)


async def move_number(sessions: async_sessionmaker[AsyncSession], ident: str, number: str, action: str,
                      actor: str) -> Number:
    """``action``: associate the number with the campaign, or disassociate it from it."""
    async with sessions() as session, session.begin():
        campaign = await find(session, Campaign, ident, "campaign")
        n = await find_number(session, number)
        if action == "associate":
            await states.associate(session, campaign, n, actor)
        else:
            if n.campaign_id != campaign.id:
                raise states.RegistryError("number_not_in_campaign", f"{n.number} is not in campaign {campaign.id}.")
            await states.disassociate(session, n, actor)
        return n


async def advance(sessions: async_sessionmaker[AsyncSession], days: int) -> tuple[dt.datetime, int]:
    """Move the local registry's clock ``days`` ahead: its time, and the changes that came due."""
    async with sessions() as session, session.begin():
        return await states.advance(session, days)
