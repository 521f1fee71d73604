"""Reconciliation with the registry, every ``[registry] reconcile_interval_s``: the requests still pending are sent
again, and what is still waiting for the registry's word is asked for (brands in their identity check or vetting,
campaigns waiting for the DCA or a carrier, number orders not complete), so a lost event only delays a change.
Every ``full_reconcile_interval_s`` every brand and live campaign is asked for too (a lost suspension or expiry).

A poll's calls are recorded in the history of what it asked about when it changed something or failed (the
calls that found nothing new would fill the history with copies)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.tendlc.csp import Csp
from registry import events, states
from registry.models import Brand, Campaign, CampaignOperation, NumberOrder

log = logging.getLogger(__name__)

WAITING_CAMPAIGN_STATES = ("shared", "review")


class Reconciler:
    def __init__(self, csp: Csp):
        self.csp = csp
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._last_full = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="registry-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        """A round at once (what a restart left pending goes, the registry is subscribed to us), then one every
        interval."""
        settings = self.csp.settings
        first = True
        while True:
            if not first:
                await asyncio.sleep(settings.reconcile_interval_s)
            first = False
            full = time.monotonic() - self._last_full >= settings.full_reconcile_interval_s
            try:
                await self.reconcile(full=full)
            except Exception:  # the next round tries again
                log.exception("registry reconciliation failed")

    async def reconcile(self, *, full: bool = False, force: bool = False,
                        events_base: str | None = None) -> dict[str, Any]:
        """One round: the registry subscribed to our events (at ``events_base`` unless configured), pending
        requests (``force``: whatever their backoff), then polls (``full``: of everything live). Answers what it
        did."""
        async with self._lock:
            if full:
                self._last_full = time.monotonic()
            return await self._round(full, force, events_base)

    async def _round(self, full: bool, force: bool, events_base: str | None) -> dict[str, Any]:
        csp = self.csp
        summary: dict[str, Any] = {"requests": {"done": 0, "pending": 0, "failed": 0},
                                   "polled": {"brands": 0, "campaigns": 0, "orders": 0}, "changed": 0, "errors": 0}
        await csp.subscribe(events_base)
        for request_id in await csp.due(force=force):
            summary["requests"][(await csp.send(request_id)).status] += 1
        async with csp.sessions() as session:
            brands, campaigns, orders = await _waiting(session, full)
        for kind, ids, poll in (("brands", brands, self._brand), ("campaigns", campaigns, self._campaign),
                                ("orders", orders, self._order)):
            for ident in ids:
                summary["polled"][kind] += 1
                changed = await poll(ident)
                if changed is None:
                    summary["errors"] += 1
                elif changed:
                    summary["changed"] += 1
        return summary

    async def _poll(self, model: type, ident: int, ask: Callable[[Any], Awaitable[Any]],
                    apply: Callable[[AsyncSession, Any, Any], Awaitable[events.Outcome]]) -> bool | None:
        """Ask the registry about one row and apply its answer: whether it changed something (None: the call
        failed)."""
        csp = self.csp
        async with csp.sessions() as session:
            row = await session.get(model, ident)
        answer, error, calls = await csp.calling(lambda: ask(row))
        entity = {Brand: "brand", Campaign: "campaign", NumberOrder: "order"}[model]
        async with csp.sessions() as session, session.begin():
            row = await session.get(model, ident)
            if error is not None:
                csp.record_calls(session, entity, row, calls)
                log.warning("registry poll of %s %s failed: %s", entity, row.registry_id, error.code)
                return None
            outcome = await apply(session, row, answer)
            if outcome.outcome == "applied":
                csp.record_calls(session, entity, row, calls)
        csp.on_campaigns(outcome.campaigns)
        return outcome.outcome == "applied"

    async def _brand(self, ident: int) -> bool | None:
        return await self._poll(Brand, ident, lambda b: self.csp.client.get_brand(b.registry_id),
                                lambda s, b, answer: events.apply_brand(s, b, answer))

    async def _campaign(self, ident: int) -> bool | None:
        client = self.csp.client

        async def ask(c: Campaign) -> tuple[Any, Any]:
            answer = await client.get_campaign(c.registry_id)
            accepted = answer.get("sharingStatus") == "ACCEPTED" if isinstance(answer, dict) else False
            return answer, (await client.operation_status(c.registry_id) if accepted else None)

        return await self._poll(Campaign, ident, ask, lambda s, c, a: events.apply_campaign(s, c, a[0], a[1]))

    async def _order(self, ident: int) -> bool | None:
        return await self._poll(NumberOrder, ident, lambda o: self.csp.client.get_order(o.registry_id),
                                lambda s, o, answer: events.apply_order(s, o, answer, None, events.POLL,
                                                                        {"poll": answer}))


async def _waiting(session: AsyncSession, full: bool) -> tuple[list[int], list[int], list[int]]:
    """The brands, campaigns and orders whose next change the registry has still to tell (``full``: and every
    live brand and campaign)."""
    brand_waits = or_(Brand.status == "submitted", Brand.vetting_status == "PENDING")
    brands = (await session.scalars(select(Brand.id).where(
        Brand.registry_id.is_not(None), Brand.status != "deleted" if full else brand_waits))).all()
    reviewing = select(CampaignOperation.campaign_id).where(CampaignOperation.status == "REVIEW")
    campaign_waits = or_(Campaign.status.in_(WAITING_CAMPAIGN_STATES), Campaign.id.in_(reviewing))
    campaigns = (await session.scalars(select(Campaign.id).where(
        Campaign.registry_id.is_not(None),
        Campaign.status.in_(states.LIVE_CAMPAIGN_STATES) if full else campaign_waits))).all()
    orders = (await session.scalars(select(NumberOrder.id).where(NumberOrder.registry_id.is_not(None),
                                                                 NumberOrder.status == "placed"))).all()
    return list(brands), list(campaigns), list(orders)
