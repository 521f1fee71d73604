"""The messages an account sent, as it pages through them (newest first)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import BadRequest
from gateway.store.models import Message


async def list_messages(sessions: async_sessionmaker[AsyncSession], account_id: int, *, status: str | None,
                        to: str | None, before: str | None, limit: int) -> list[Message]:
    """Below the message ``before`` (an id from a previous page; 400 invalid_query if unknown)."""
    stmt = select(Message).where(Message.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Message.status == status)
    if to is not None:
        stmt = stmt.where(Message.destination == to)
    async with sessions() as session:
        if before is not None:
            cursor = await session.scalar(select(Message.id).where(Message.public_id == before,
                                                                   Message.account_id == account_id))
            if cursor is None:
                raise BadRequest("before must be a message id from a previous page.", code="invalid_query")
            stmt = stmt.where(Message.id < cursor)
        return list((await session.scalars(stmt.order_by(Message.id.desc()).limit(limit))).all())
