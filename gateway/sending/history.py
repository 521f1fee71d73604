"""The messages an account sent, as it pages through them (newest first)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.models import Message
from gateway.store.statements import page_below


async def list_messages(sessions: async_sessionmaker[AsyncSession], account_id: int, *, status: str | None,
                        to: str | None, before: str | None, limit: int) -> list[Message]:
    """Below the message ``before`` (an id from a previous page; 400 invalid_query if unknown)."""
    stmt = select(Message).where(Message.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Message.status == status)
    if to is not None:
        stmt = stmt.where(Message.destination == to)
    async with sessions() as session:
        return await page_below(session, stmt, Message, account_id, before, limit, what="a message id")
