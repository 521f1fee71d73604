"""10DLC brands: registration (one brand per EIN), listing, review, vetting, resubmission."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, NotFound
from gateway.validation import row_id
from registry import states
from registry.models import Account, Brand

T = TypeVar("T")


async def find(session: AsyncSession, model: type[T], ident: str, what: str, account_id: int | None = None) -> T:
    """The brand or campaign whose id ``ident`` is (of the account, when one is given), or 404 <what>_not_found."""
    key = row_id(ident)
    obj = await session.get(model, key) if key is not None else None
    if obj is None or (account_id is not None and obj.account_id != account_id):
        raise NotFound(f"No {what} {ident}.", code=f"{what}_not_found")
    return obj


async def register(sessions: async_sessionmaker[AsyncSession], account_id: int | None, fields: dict[str, Any], *,
                   submit: bool, actor: str) -> Brand:
    """A new brand of the account from checked ``fields`` (the EIN as NN-NNNNNNN), submitted unless ``submit`` is
    false; 409 brand_exists when a brand has this EIN already (the registry keeps one per EIN)."""
    async with sessions() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        ein = fields["ein"]
        existing = await session.scalar(select(Brand).where(Brand.ein == ein).order_by(Brand.id).limit(1))
        if existing is not None:
            raise Conflict(f"Brand {existing.id} already has the EIN {ein}.", code="brand_exists",
                           details={"brand_id": existing.id, "account_id": existing.account_id})
        brand = Brand(account_id=account_id, status="created", **fields)
        session.add(brand)
        await session.flush()
        if submit:
            await states.submit_brand(session, brand, actor)
        return brand


async def listing(sessions: async_sessionmaker[AsyncSession], model: type[T], account_id: int | None = None) -> list[T]:
    """Every brand or campaign (``model``), or the account's, in id order."""
    stmt = select(model).order_by(model.id)
    if account_id is not None:
        stmt = stmt.where(model.account_id == account_id)
    async with sessions() as session:
        return list((await session.scalars(stmt)).all())


async def list_brands(sessions: async_sessionmaker[AsyncSession], account_id: int | None = None) -> list[Brand]:
    return await listing(sessions, Brand, account_id)


async def brand_history(sessions: async_sessionmaker[AsyncSession], ident: str,
                        account_id: int | None = None) -> tuple[Brand, list[dict]]:
    async with sessions() as session:
        brand = await find(session, Brand, ident, "brand", account_id)
        return brand, await states.history(session, "brand", brand.id)


async def brand_action(sessions: async_sessionmaker[AsyncSession], ident: str, action: str, *, actor: str,
                       outcome: str = "", trust_score: int | None = None, reason: str | None = None) -> Brand:
    """``action``: review (an outcome, a trust score), vet (a trust score) or resubmit."""
    async with sessions() as session, session.begin():
        brand = await find(session, Brand, ident, "brand")
        if action == "review":
            await states.review_brand(session, brand, outcome, trust_score, reason, actor)
        elif action == "vet":
            await states.vet_brand(session, brand, trust_score, actor)
        else:
            await states.submit_brand(session, brand, actor, reason)
        return brand
