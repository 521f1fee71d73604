"""The 10DLC states: numbers (a state machine the gateway drives), and brands and campaigns, whose states follow
what The Campaign Registry says (the gateway is a Campaign Service Provider: registry.events applies the
registry's events and answers; the registry itself is reached over HTTP, registry.csp).

Every number change goes through ``_move``: it checks the transition table, records who made it and why, and
raises RegistryError with a stable code when it is not allowed. ``record`` writes any other line of an entity's
history (a brand's new score, a registry call and its answer).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from registry.db import iso, utcnow
from registry.models import Brand, Campaign, Number, Transition

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
RELATIONSHIPS = ("BASIC_ACCOUNT", "SMALL_ACCOUNT", "MEDIUM_ACCOUNT", "LARGE_ACCOUNT", "KEY_ACCOUNT")
IDENTITY_STATUSES = ("UNVERIFIED", "VERIFIED", "SELF_DECLARED", "VETTED_VERIFIED")
VERIFIED = ("VERIFIED", "VETTED_VERIFIED")  # campaigns need one of these
MNOS = ("ATT", "TMOBILE", "VERIZON", "USCELLULAR")  # the carriers that review a campaign
OPERATION_STATUSES = ("REVIEW", "APPROVED", "REJECTED", "SUSPENDED")
# brand states: created (waits to reach the registry), submitted (identity check running), complete,
# requires_updates (UNVERIFIED), deleted
BRAND_STATES = ("created", "submitted", "complete", "requires_updates", "deleted")
# campaign states, derived by campaign_status
CAMPAIGN_STATES = ("created", "submitted", "shared", "declined", "review", "active", "suspended", "rejected",
                   "expired", "deactivated")
LIVE_CAMPAIGN_STATES = ("created", "submitted", "shared", "review", "active", "suspended")

NUMBER_MOVES = {"pending": {"active", "released"}, "active": {"associating", "disassociating", "released"},
                "associating": {"active"}, "disassociating": {"active"}, "released": set()}


class RegistryError(Exception):
    """An illegal state change or a missing thing. ``kind``: conflict (409), not_found (404), invalid (422)."""

    def __init__(self, code: str, message: str, kind: str = "conflict"):
        super().__init__(message)
        self.code, self.kind = code, kind


async def move(session: AsyncSession, entity: str, obj: Any, moves: dict[str, set[str]], to: str, actor: str,
               reason: str | None = None, code: str = "illegal_transition", what: str | None = None) -> None:
    """``obj`` (a row with a ``status``) becomes ``to`` when ``moves`` allow it, recorded in its history; else
    RegistryError ``code`` naming it as ``what`` (default: "The <entity>")."""
    current = obj.status
    if to not in moves.get(current, set()):
        raise RegistryError(code, f"{what or f'The {entity}'} {obj.id} is {current}; it cannot become {to}.")
    obj.status = to
    record(session, entity, obj.id, current, to, actor, reason)


async def history(session: AsyncSession, entity: str, entity_id: int) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(Transition).where(Transition.entity == entity,
                                                           Transition.entity_id == entity_id)
                                  .order_by(Transition.id))).all()
    return [{"from": t.from_state, "to": t.to_state, "actor": t.actor, "reason": t.reason, "at": iso(t.at),
             **({"detail": json.loads(t.detail)} if t.detail else {})} for t in rows]


def record(session: AsyncSession, entity: str, entity_id: int, from_state: str | None, to_state: str, actor: str,
           reason: str | None = None, detail: Any = None) -> None:
    """One line of an entity's history (``detail``: JSON, e.g. a registry call and its answer)."""
    session.add(Transition(entity=entity, entity_id=entity_id, from_state=from_state, to_state=to_state, actor=actor,
                           reason=reason, detail=json.dumps(detail, default=str) if detail is not None else None))


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
    number.account_id, number.leased_at = account_id, utcnow()
    start = "pending" if kind == "short_code" else "active"  # a short code takes weeks to provision
    record(session, "number", number.id, "free", f"leased:{start}", actor, f"leased to account {account_id}")
    number.status = start
    return number


async def activate(session: AsyncSession, number: Number, actor: str) -> None:
    if number.status != "pending":
        raise RegistryError("number_not_pending", f"{number.number} is {number.status}, not pending.")
    await move(session, "number", number, NUMBER_MOVES, "active", actor)


async def release(session: AsyncSession, number: Number, actor: str) -> None:
    if number.deletion_protection:
        raise RegistryError("number_protected", f"{number.number} has deletion protection; turn it off first.")
    if number.campaign_id is not None:
        raise RegistryError("number_in_campaign", f"{number.number} belongs to a campaign; disassociate it first.")
    await move(session, "number", number, NUMBER_MOVES, "released", actor, code="number_not_releasable")
    number.account_id = None


# --- brands and campaigns ------------------------------------------------------------------------------------------
def brand_status(identity_status: str, scored: bool) -> str:
    """A registered brand's state from its identity: the check is running until it has a result (a score, or an
    identity other than UNVERIFIED)."""
    if identity_status in ("VERIFIED", "VETTED_VERIFIED", "SELF_DECLARED"):
        return "complete"
    return "requires_updates" if scored else "submitted"


def campaign_status(campaign: Campaign, operations: Iterable[str]) -> str:
    """A campaign's state from what the registry says: its status, the DCA's sharing answer, and each carrier's
    operation status (``operations``). Active while at least one carrier approves it (the others' traffic is
    held: registry.limits)."""
    if campaign.registry_id is None:
        return "created"
    if campaign.registry_status == "DEACTIVATED":
        return "deactivated"
    if campaign.registry_status == "EXPIRED":
        return "expired"
    sharing = campaign.sharing_status
    if sharing is None:
        return "submitted"
    if sharing == "PENDING":
        return "shared"
    if sharing == "DECLINED":
        return "declined"
    ops = list(operations)
    if "APPROVED" in ops:
        return "active"
    if "SUSPENDED" in ops:
        return "suspended"
    if ops and all(op == "REJECTED" for op in ops):
        return "rejected"
    return "review"


def check_samples(samples: Any) -> list[str]:
    if not isinstance(samples, list) or not 2 <= len(samples) <= 5 or not all(isinstance(s, str) for s in samples):
        raise RegistryError("invalid_samples", "A campaign needs 2 to 5 sample messages.", "invalid")
    for s in samples:
        if not 20 <= len(s) <= 1024:
            raise RegistryError("invalid_samples", "Each sample message has 20 to 1,024 characters.", "invalid")
    return samples


def check_campaign_brand(brand: Brand) -> None:
    """Campaigns are created for a brand whose identity the registry verified (as the registry itself checks)."""
    if brand.registry_id is None or brand.identity_status not in VERIFIED or brand.status == "deleted":
        raise RegistryError("brand_not_verified", f"Brand {brand.id} is {brand.status} (identity "
                                                  f"{brand.identity_status}): campaigns need a brand the registry "
                                                  "verified (VERIFIED or VETTED_VERIFIED).")


def check_associable(campaign: Campaign, number: Number) -> None:
    """Whether ``number`` may be put into ``campaign`` through the DCA now."""
    if campaign.sharing_status != "ACCEPTED" or campaign.registry_status != "ACTIVE":
        raise RegistryError("campaign_not_shared", f"Campaign {campaign.id} is {campaign.status}: numbers join a "
                                                   "campaign the DCA has accepted.")
    if number.account_id != campaign.account_id:
        raise RegistryError("number_not_owned", f"{number.number} is not leased to the campaign's account.")
    if number.campaign_id is not None:
        raise RegistryError("number_in_campaign", f"{number.number} already belongs to campaign "
                                                  f"{number.campaign_id}; a number joins at most one.")
    if number.country != "US" or number.type not in ("long_code", "ten_dlc"):
        raise RegistryError("number_not_10dlc_capable", f"Only US long codes join 10DLC campaigns ({number.number} "
                                                        f"is a {number.type}).")
    if number.status != "active":
        raise RegistryError("number_not_active", f"{number.number} is {number.status}.")


async def start_association(session: AsyncSession, number: Number, campaign: Campaign, actor: str) -> None:
    await move(session, "number", number, NUMBER_MOVES, "associating", actor, f"campaign {campaign.id}",
                code="number_not_active")
    number.campaign_id = campaign.id


async def start_disassociation(session: AsyncSession, number: Number, campaign: Campaign, actor: str) -> None:
    if number.campaign_id != campaign.id:
        raise RegistryError("number_not_in_campaign", f"{number.number} is not in campaign {campaign.id}.")
    await move(session, "number", number, NUMBER_MOVES, "disassociating", actor, f"campaign {campaign.id}",
                code="number_not_active")


async def finish_number(session: AsyncSession, number: Number, kind: str, ok: bool, actor: str,
                        reason: str | None = None) -> None:
    """The DCA's answer for a number of an order: associated (a 10DLC number of the campaign), disassociated (an
    unregistered long code again), or failed (as it was before the order)."""
    if kind == "ASSOCIATE":
        if ok:
            number.type = "ten_dlc"
        else:
            number.campaign_id = None
    elif ok:
        number.type, number.campaign_id = "long_code", None
    if number.status in ("associating", "disassociating"):
        await move(session, "number", number, NUMBER_MOVES, "active", actor, reason)
