"""The inbound messages an account received: a page of them, or one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import NotFound
from gateway.store.models import InboundMessage
from gateway.store.statements import page_below


async def list_inbound(sessions: async_sessionmaker[AsyncSession], account_id: int, *, to: str | None,
                       source: str | None, keyword: str | None, before: str | None,
                       limit: int) -> list[InboundMessage]:
    """Newest first, below the message ``before`` (an id from a previous page; 400 invalid_query if unknown)."""
    stmt = select(InboundMessage).where(InboundMessage.account_id == account_id)
    if to is not None:
        stmt = stmt.where(InboundMessage.number == to)
    if source is not None:
        stmt = stmt.where(InboundMessage.source == source)
    if keyword is not None:
        stmt = stmt.where(InboundMessage.keyword == keyword.upper())
    async with sessions() as session:
        return await page_below(session, stmt, InboundMessage, account_id, before, limit, what="an id")


async def get_inbound(sessions: async_sessionmaker[AsyncSession], account_id: int, public_id: str) -> InboundMessage:
    async with sessions() as session:
        message = await session.scalar(select(InboundMessage).where(InboundMessage.public_id == public_id,
                                                                    InboundMessage.account_id == account_id))
    if message is None:
        raise NotFound("No such inbound message in this account.", code="inbound_not_found")
    return message
