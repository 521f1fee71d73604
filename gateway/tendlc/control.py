"""The registry as the operator oversees it: its state (mode, subscription, requests pending, events received),
reconciliation on demand, and, when the registry is the simulator, its control API: the clock (``advance``),
the reviewers' answers (a brand's identity, a carrier's review of a campaign), faults, redelivery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.errors import Conflict
from gateway.tendlc.brands import find, refusal, unavailable
from gateway.tendlc.csp import Csp
from gateway.tendlc.reconcile import Reconciler
from registry.db import iso
from registry.models import Brand, Campaign, RegistryEvent, RegistryRequest


async def overview(csp: Csp) -> dict[str, Any]:
    settings = csp.settings
    async with csp.sessions() as session:
        requests = dict((await session.execute(select(RegistryRequest.status, func.count())
                                               .group_by(RegistryRequest.status))).all())
        received = dict((await session.execute(select(RegistryEvent.outcome, func.count())
                                               .group_by(RegistryEvent.outcome))).all())
    view: dict[str, Any] = {"mode": settings.mode, "base_url": csp.client.base_url, "cnp_id": settings.cnp_id,
                            "events_base": csp.events_base, "subscribed": csp.subscribed is not None,
                            "requests": {k: requests.get(k, 0) for k in ("pending", "done", "failed")},
                            "events": {k: received.get(k, 0) for k in ("applied", "ignored", "unmatched")}}
    if csp.simulated:
        answer, error, _ = await csp.calling(csp.client.clock)
        view["simulator_clock"] = answer if error is None else None
    return view


async def recent_events(csp: Csp, limit: int) -> list[dict[str, Any]]:
    async with csp.sessions() as session:
        rows = (await session.scalars(select(RegistryEvent).order_by(RegistryEvent.id.desc()).limit(limit))).all()
    return [{"event_id": r.event_id, "type": r.event_type, "subject": r.subject, "outcome": r.outcome,
             "reason": r.reason, "registry_at": iso(r.registry_at), "sequence": r.sequence,
             "received_at": iso(r.received_at)} for r in rows]


async def control(csp: Csp, work: Any, *, entity: str | None = None, row: Any = None) -> Any:
    """A call to the simulator's control API: its answer; 503 registry_unavailable when it cannot be reached,
    409 registry_not_simulated when the registry has no control API."""
    answer, error, calls = await csp.calling(work)
    if entity is not None and row is not None:
        async with csp.sessions() as session, session.begin():
            csp.record_calls(session, entity, row, calls)
    if error is None:
        return answer
    if error.retryable:
        raise unavailable(error)
    if error.status in (404, 405):
        raise Conflict("The registry has no control API: only the registry simulator's clock and reviewers can be "
                       "driven.", code="registry_not_simulated")
    raise refusal(error)


async def advance(csp: Csp, reconciler: Reconciler, days: float, events_base: str | None = None) -> dict[str, Any]:
    """Move the simulator's clock; what came due is done there and its events sent. Then a full reconciliation
    (every live brand and campaign, not only those waiting: an event that arrived meanwhile may have ended one's
    wait while the next event about it is still on its way), so the answer holds the states the registry has now,
    whether the events came or not."""
    clock = await control(csp, lambda: csp.client.advance(days))
    return {"clock": clock, "reconciled": await reconciler.reconcile(full=True, events_base=events_base)}


async def review_brand(csp: Csp, ident: str, identity: str, score: int | None) -> dict[str, Any]:
    async with csp.sessions() as session:
        brand = await find(session, Brand, ident, "brand")
    if brand.registry_id is None:
        raise Conflict(f"Brand {brand.id} has not reached the registry yet.", code="brand_not_registered")
    return await control(csp, lambda: csp.client.review_brand(brand.registry_id, identity, score), entity="brand",
                         row=brand)


async def review_campaign(csp: Csp, ident: str, mno: str, status: str, description: str) -> dict[str, Any]:
    async with csp.sessions() as session:
        campaign = await find(session, Campaign, ident, "campaign")
    if campaign.registry_id is None:
        raise Conflict(f"Campaign {campaign.id} has not reached the registry yet.", code="campaign_not_registered")
    return await control(csp, lambda: csp.client.review_campaign(campaign.registry_id, mno, status, description),
                         entity="campaign", row=campaign)
