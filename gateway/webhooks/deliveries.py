"""An account's webhook deliveries as the account sees them: a page of them, one with its attempts, a replay."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, NotFound
from gateway.store.models import WebhookAttempt, WebhookDelivery
from registry.db import utcnow

STATUSES = ("pending", "delivered", "failed")


async def list_deliveries(sessions: async_sessionmaker[AsyncSession], account_id: int, *, status: str | None,
                          limit: int) -> list[WebhookDelivery]:
    """Newest first."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.account_id == account_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    async with sessions() as session:
        return list((await session.scalars(stmt.order_by(WebhookDelivery.id.desc()).limit(limit))).all())


async def get_delivery(sessions: async_sessionmaker[AsyncSession], account_id: int,
                       public_id: str) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """The delivery and its attempts, oldest first; 404 delivery_not_found."""
    async with sessions() as session:
        delivery = await session.scalar(select(WebhookDelivery).where(WebhookDelivery.public_id == public_id,
                                                                      WebhookDelivery.account_id == account_id))
        if delivery is None:
            raise NotFound("No such webhook delivery in this account.", code="delivery_not_found")
        attempts = (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                          .order_by(WebhookAttempt.id))).all()
    return delivery, list(attempts)


async def replay_delivery(sessions: async_sessionmaker[AsyncSession], account_id: int, public_id: str) -> None:
    """Queue the delivery again (delivered or failed) with a fresh window of retries; 404 delivery_not_found,
    409 payload_purged when [retention] blanked what it would send."""
    async with sessions() as session, session.begin():
        purged = await session.scalar(select(WebhookDelivery.payload == "").where(
            WebhookDelivery.public_id == public_id, WebhookDelivery.account_id == account_id))
        if purged:
            raise Conflict("This delivery's payload was removed by the data retention policy; it cannot be sent "
                           "again.", code="payload_purged")
        if not await _queue_again(session, account_id, public_id):
            raise NotFound("No such webhook delivery in this account.", code="delivery_not_found")


async def _queue_again(session: AsyncSession, account_id: int | None, public_id: str) -> bool:
    now = utcnow()
    cond = [WebhookDelivery.public_id == public_id]
    if account_id is not None:
        cond.append(WebhookDelivery.account_id == account_id)
    result = await session.execute(update(WebhookDelivery).where(*cond).values(
        status="pending", next_attempt_at=now, give_up_at=None))
    return result.rowcount == 1
