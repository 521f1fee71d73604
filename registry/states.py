"""The 10DLC registry: state machines for numbers, brands and campaigns, and the local stand-in for
The Campaign Registry with deterministic review rules and a clock the operator can advance.

Every change goes through ``_move``: it checks the transition table, records who made it and why (at the
registry clock's time), and raises RegistryError with a stable code when it is not allowed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from registry.db import iso, utcnow
from registry.models import Brand, Campaign, Number, RegistryClock, Transition

NUMBER_TYPES = ("short_code", "long_code", "toll_free", "ten_dlc")
CAPABILITIES = ("sms", "voice")
ENTITY_TYPES = ("PRIVATE_PROFIT", "PUBLIC_PROFIT", "NON_PROFIT", "GOVERNMENT", "SOLE_PROPRIETOR")
# The Campaign Registry's industry verticals
VERTICALS = ("AGRICULTURE", "COMMUNICATION", "CONSTRUCTION", "EDUCATION", "ENERGY", "ENTERTAINMENT", "FINANCIAL",
             "GAMBLING", "GOVERNMENT", "HEALTHCARE", "HOSPITALITY", "HUMAN_RESOURCES", "INSURANCE", "LEGAL",
             "MANUFACTURING", "NGO", "POLITICAL", "POSTAL", "PROFESSIONAL", "REAL_ESTATE", "RETAIL", "TECHNOLOGY",
             "TRANSPORTATION")
USE_CASES = ("2FA", "ACCOUNT_NOTIFICATION", "CUSTOMER_CARE", "DELIVERY_NOTIFICATION", "FRAUD_ALERT",
             "HIGHER_EDUCATION", "MARKETING", "MIXED", "LOW_VOLUME", "POLLING_VOTING", "PUBLIC_SERVICE_ANNOUNCEMENT",
             "SECURITY_ALERT")
# Carriers take up to 14 business days; the local registry finishes in two calendar weeks (10 business days),
# so `registry advance --days 14` always completes an association started on any day.
ASSOCIATION_BUSINESS_DAYS = 10
DISASSOCIATION_BUSINESS_DAYS = 1

NUMBER_MOVES = {"pending": {"active", "released"}, "active": {"associating", "disassociating", "released"},
                "associating": {"active"}, "disassociating": {"active"}, "released": set()}
BRAND_MOVES = {"created": {"submitted"}, "submitted": {"complete", "requires_updates"},
               "requires_updates": {"submitted"}, "complete": {"complete"}}
CAMPAIGN_MOVES = {"submitted": {"approved", "rejected", "requires_updates"}, "requires_updates": {"submitted"},
                  "approved": {"suspended", "expired"}, "suspended": {"approved", "expired"},
                  "rejected": set(), "expired": set()}


class RegistryError(Exception):
    """An illegal state change or a missing thing. ``kind``: conflict (409), not_found (404), invalid (422)."""

    def __init__(self, code: str, message: str, kind: str = "conflict"):
        super().__init__(message)
        self.code, self.kind = code, kind


async def clock_offset(session: AsyncSession) -> int:
    row = await session.get(RegistryClock, 1)
    return row.offset_days if row else 0


async def now(session: AsyncSession) -> dt.datetime:
    return utcnow() + dt.timedelta(days=await clock_offset(session))


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    current = start
    while days > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


async def _move(session: AsyncSession, entity: str, obj: Any, moves: dict[str, set[str]], to: str, actor: str,
                reason: str | None = None, code: str = "illegal_transition") -> None:
    current = obj.status
    if to not in moves.get(current, set()):
        raise RegistryError(code, f"The {entity} {obj.id} is {current}; it cannot become {to}.")
    obj.status = to
    session.add(Transition(entity=entity, entity_id=obj.id, from_state=current, to_state=to, actor=actor,
                           reason=reason, at=await now(session)))


async def history(session: AsyncSession, entity: str, entity_id: int) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(Transition).where(Transition.entity == entity,
                                                           Transition.entity_id == entity_id)
                                  .order_by(Transition.id))).all()
    return [{"from": t.from_state, "to": t.to_state, "actor": t.actor, "reason": t.reason,
             "at": iso(t.at)} for t in rows]


# --- numbers -------------------------------------------------------------------------------------------------------
async def lease(session: AsyncSession, account_id: int, kind: str, country: str, capabilities: set[str],
                actor: str) -> Number:
    candidates = (await session.scalars(select(Number).where(
        Number.account_id.is_(None), Number.type == kind, Number.country == country, Number.status != "released")
        .order_by(Number.id))).all()
    number = next((n for n in candidates if capabilities <= n.capability_set), None)
    if number is None:
        raise RegistryError("no_number_available",
                            f"No free {kind} in {country} with {','.join(sorted(capabilities))} is left to lease.")
    number.account_id, number.leased_at = account_id, await now(session)
    start = "pending" if kind == "short_code" else "active"  # a short code takes weeks to provision
    session.add(Transition(entity="number", entity_id=number.id, from_state="free", to_state=f"leased:{start}",
                           actor=actor, reason=f"leased to account {account_id}", at=await now(session)))
    number.status = start
    return number


async def activate(session: AsyncSession, number: Number, actor: str) -> None:
    if number.status != "pending":
        raise RegistryError("number_not_pending", f"{number.number} is {number.status}, not pending.")
    await _move(session, "number", number, NUMBER_MOVES, "active", actor)


async def release(session: AsyncSession, number: Number, actor: str) -> None:
    if number.deletion_protection:
        raise RegistryError("number_protected", f"{number.number} has deletion protection; turn it off first.")
    if number.campaign_id is not None:
        raise RegistryError("number_in_campaign", f"{number.number} belongs to a campaign; disassociate it first.")
    await _move(session, "number", number, NUMBER_MOVES, "released", actor, code="number_not_releasable")
    number.account_id = None


# --- brands --------------------------------------------------------------------------------------------------------
async def submit_brand(session: AsyncSession, brand: Brand, actor: str, reason: str | None = None) -> None:
    await _move(session, "brand", brand, BRAND_MOVES, "submitted", actor, reason, code="brand_not_submittable")


async def review_brand(session: AsyncSession, brand: Brand, outcome: str, trust_score: int | None, reason: str | None,
                       actor: str) -> None:
    if brand.status != "submitted":
        raise RegistryError("brand_not_submitted", f"Brand {brand.id} is {brand.status}: only a submitted brand "
                                                   "can be reviewed.")
    if outcome == "requires_updates":
        if not reason:
            raise RegistryError("missing_reason", "requires_updates needs a reason.", "invalid")
        brand.reason = reason
        await _move(session, "brand", brand, BRAND_MOVES, "requires_updates", actor, reason)
        return
    if outcome not in ("verified", "unverified"):
        raise RegistryError("invalid_outcome", "outcome is verified, unverified or requires_updates.", "invalid")
    if trust_score is None or not 0 <= trust_score <= 100:
        raise RegistryError("invalid_trust_score", "A review gives a trust score from 0 to 100.", "invalid")
    brand.identity_status, brand.trust_score, brand.reason = outcome, trust_score, None
    await _move(session, "brand", brand, BRAND_MOVES, "complete", actor, f"{outcome}, trust score {trust_score}")


async def vet_brand(session: AsyncSession, brand: Brand, trust_score: int, actor: str) -> None:
    """A vetting can raise the score (never lower it) and makes the identity vetted_verified."""
    if brand.status != "complete" or brand.identity_status == "unverified":
        raise RegistryError("brand_not_verified", f"Brand {brand.id} must be verified before vetting.")
    if not 0 <= trust_score <= 100:
        raise RegistryError("invalid_trust_score", "A trust score is from 0 to 100.", "invalid")
    old = brand.trust_score or 0
    brand.trust_score, brand.identity_status = max(old, trust_score), "vetted_verified"
    await _move(session, "brand", brand, BRAND_MOVES, "complete", actor, f"vetted: trust score {old} -> "
                                                                         f"{brand.trust_score}")


# --- campaigns -----------------------------------------------------------------------------------------------------
def check_samples(samples: Any) -> list[str]:
    if not isinstance(samples, list) or not 2 <= len(samples) <= 5 or not all(isinstance(s, str) for s in samples):
        raise RegistryError("invalid_samples", "A campaign needs 2 to 5 sample messages.", "invalid")
    for s in samples:
        if not 20 <= len(s) <= 1024:
            raise RegistryError("invalid_samples", "Each sample message has 20 to 1,024 characters.", "invalid")
    return samples


async def create_campaign(session: AsyncSession, brand: Brand, fields: dict[str, Any], actor: str) -> Campaign:
    if brand.status != "complete" or brand.identity_status not in ("verified", "vetted_verified"):
        raise RegistryError("brand_not_verified", f"Brand {brand.id} is not verified: campaigns need a verified "
                                                  "brand.")
    campaign = Campaign(account_id=brand.account_id, brand_id=brand.id, status="submitted",
                        sample_messages=json.dumps(check_samples(fields.pop("sample_messages"))), **fields)
    session.add(campaign)
    await session.flush()
    session.add(Transition(entity="campaign", entity_id=campaign.id, from_state=None, to_state="submitted",
                           actor=actor, at=await now(session)))
    return campaign


async def review_campaign(session: AsyncSession, campaign: Campaign, outcome: str, reason: str | None,
                          actor: str) -> None:
    if campaign.status != "submitted":
        raise RegistryError("campaign_not_submitted", f"Campaign {campaign.id} is {campaign.status}: only a "
                                                      "submitted campaign can be reviewed.")
    if outcome not in ("approved", "rejected", "requires_updates"):
        raise RegistryError("invalid_outcome", "outcome is approved, rejected or requires_updates.", "invalid")
    campaign.reason = reason
    await _move(session, "campaign", campaign, CAMPAIGN_MOVES, outcome, actor, reason)


async def set_campaign_state(session: AsyncSession, campaign: Campaign, to: str, actor: str,
                             reason: str | None = None) -> None:
    """Suspend, reinstate (approved), expire, or resubmit (submitted) a campaign."""
    await _move(session, "campaign", campaign, CAMPAIGN_MOVES, to, actor, reason, code="illegal_transition")


async def associate(session: AsyncSession, campaign: Campaign, number: Number, actor: str) -> None:
    if campaign.status != "approved":
        raise RegistryError("campaign_not_approved", f"Campaign {campaign.id} is {campaign.status}; numbers join "
                                                     "approved campaigns only.")
    if number.account_id != campaign.account_id:
        raise RegistryError("number_not_owned", f"{number.number} is not leased to the campaign's account.")
    if number.campaign_id is not None:
        raise RegistryError("number_in_campaign", f"{number.number} already belongs to campaign "
                                                  f"{number.campaign_id}; a number joins at most one.")
    if number.country != "US" or number.type not in ("long_code", "ten_dlc"):
        raise RegistryError("number_not_10dlc_capable", f"Only US long codes join 10DLC campaigns ({number.number} "
                                                        f"is a {number.type}).")
    await _move(session, "number", number, NUMBER_MOVES, "associating", actor, f"campaign {campaign.id}",
                code="number_not_active")
    number.campaign_id = campaign.id
    number.registry_due_at = add_business_days(await now(session), ASSOCIATION_BUSINESS_DAYS)


async def disassociate(session: AsyncSession, number: Number, actor: str) -> None:
    if number.campaign_id is None:
        raise RegistryError("number_not_in_campaign", f"{number.number} belongs to no campaign.")
    await _move(session, "number", number, NUMBER_MOVES, "disassociating", actor, f"campaign {number.campaign_id}",
                code="number_not_active")
    number.registry_due_at = add_business_days(await now(session), DISASSOCIATION_BUSINESS_DAYS)


async def process_due(session: AsyncSession) -> int:
    """Finish the (dis)associations whose time has come on the registry clock."""
    at = await now(session)
    due = (await session.scalars(select(Number).where(Number.status.in_(("associating", "disassociating")),
                                                      Number.registry_due_at <= at))).all()
    for number in due:
        if number.status == "associating":
            number.type = "ten_dlc"
        else:
            number.type, number.campaign_id = "long_code", None
        number.registry_due_at = None
        await _move(session, "number", number, NUMBER_MOVES, "active", "registry")
    return len(due)


async def advance(session: AsyncSession, days: int) -> tuple[dt.datetime, int]:
    if not 0 <= days <= 3650:
        raise RegistryError("invalid_days", "days is from 0 to 3650.", "invalid")
    clock = await session.get(RegistryClock, 1)
    if clock is None:
        clock = RegistryClock(id=1, offset_days=0)
        session.add(clock)
    clock.offset_days += days
    await session.flush()
    return await now(session), await process_due(session)
