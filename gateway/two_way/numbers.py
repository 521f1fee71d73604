"""An account's numbers as the account sees them, and their two-way settings (webhook, opt-out list, replies)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound, Unprocessable
from registry.models import Number


async def account_number(session: AsyncSession, account_id: int, value: str) -> Number:
    """The account's number (not released) written ``value``, or 404 number_not_found."""
    number = await session.scalar(select(Number).where(Number.account_id == account_id, Number.number == value,
                                                       Number.status != "released"))
    if number is None:
        raise NotFound(f"{value} is not a number of this account.", code="number_not_found")
    return number


async def account_numbers(sessions: async_sessionmaker[AsyncSession], account_id: int) -> list[Number]:
    async with sessions() as session:
        return list((await session.scalars(select(Number).where(Number.account_id == account_id,
                                                                Number.status != "released")
                                           .order_by(Number.id))).all())


async def update_settings(sessions: async_sessionmaker[AsyncSession], account_id: int, value: str,
                          changes: dict[str, Any]) -> Number:
    """Set the given two-way settings (attribute -> value, already checked) of the account's number; 422
    missing_webhook_url when two-way would be on without a webhook URL."""
    async with sessions() as session, session.begin():
        number = await account_number(session, account_id, value)
        for name, setting in changes.items():
            setattr(number, name, setting)
        if number.two_way_enabled and not number.two_way_webhook_url:
            raise Unprocessable("Two-way needs a webhook URL to forward inbound messages to.",
                                code="missing_webhook_url", details={"field": "two_way_webhook_url"})
        return number
