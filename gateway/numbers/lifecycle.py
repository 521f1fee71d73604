"""Numbers as operators see them: listing, leasing to an account, activating, releasing, operator settings.
State changes go through registry.states, which records each and raises states.RegistryError when one is not allowed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound
from registry import states
from registry.models import Account, Number


async def find(session: AsyncSession, value: str, *, released: bool = True) -> Number:
    """The number written ``value`` (also a released one, unless ``released`` is false), or 404 number_not_found."""
    stmt = select(Number).where(Number.number == value)
    if not released:
        stmt = stmt.where(Number.status != "released")
    number = await session.scalar(stmt)
    if number is None:
        raise NotFound(f"No number {value}.", code="number_not_found")
    return number


async def get_number(sessions: async_sessionmaker[AsyncSession], value: str, *, released: bool = True) -> Number:
    async with sessions() as session:
        return await find(session, value, released=released)


async def number_history(sessions: async_sessionmaker[AsyncSession], value: str) -> tuple[Number, list[dict]]:
    """The number and its state changes, oldest first."""
    async with sessions() as session:
        number = await find(session, value)
        return number, await states.history(session, "number", number.id)


async def list_numbers(sessions: async_sessionmaker[AsyncSession], *, account_id: int | None, free: bool,
                       kind: str | None) -> list[Number]:
    """All numbers in id order; of one account (``account_id``), only free ones (``free``), of one type."""
    stmt = select(Number).order_by(Number.id)
    if account_id is not None:
        stmt = stmt.where(Number.account_id == account_id)
    if free:
        stmt = stmt.where(Number.account_id.is_(None), Number.status != "released")
    if kind is not None:
        stmt = stmt.where(Number.type == kind)
    async with sessions() as session:
        return list((await session.scalars(stmt)).all())


async def lease(sessions: async_sessionmaker[AsyncSession], account_id: int | None, kind: str, country: str,
                capabilities: set[str], actor: str) -> Number:
    """A free number of this kind, country and capabilities, leased to the account (pending until activated)."""
    async with sessions() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        number = await states.lease(session, account_id, kind, country, capabilities, actor)
        await session.flush()
        return number


async def update_number(sessions: async_sessionmaker[AsyncSession], value: str, changes: dict[str, Any]) -> Number:
    """Set the given operator settings (attribute -> value, already checked) of the number."""
    async with sessions() as session, session.begin():
        number = await find(session, value)
        for name, setting in changes.items():
            setattr(number, name, setting)
        return number


async def change_state(sessions: async_sessionmaker[AsyncSession], value: str, action: str, actor: str) -> Number:
    """``action``: activate (a pending number) or release (back to the inventory)."""
    async with sessions() as session, session.begin():
        number = await find(session, value)
        if action == "activate":
            await states.activate(session, number, actor)
        else:
            await states.release(session, number, actor)
        return number
