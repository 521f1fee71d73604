"""The 10DLC transition tables of registry.states, pair by pair, through the registry's own operations on a real
SQLite database: every allowed move changes the state and records a Transition, every other one raises
RegistryError with its stable code and changes nothing; terminal states refuse everything.

The expected tables are written out here (not read from the module), so a change to the code's table shows up
as a failing case."""

from __future__ import annotations

import itertools
from typing import Any, Awaitable, Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from registry import states
from registry.db import Base
from registry.models import Account, Brand, Campaign, Transition

# Brand registration: created -> submitted -> complete | requires_updates; requires_updates -> submitted;
# complete -> complete (a vetting raises the trust score without leaving complete).
BRAND_STATES = ("created", "submitted", "requires_updates", "complete")
BRAND_ALLOWED = {("created", "submitted"), ("submitted", "complete"), ("submitted", "requires_updates"),
                 ("requires_updates", "submitted"), ("complete", "complete")}
# Campaigns: reviewed once submitted; an approved campaign can be suspended and reinstated; rejected and expired
# are final.
CAMPAIGN_STATES = ("submitted", "requires_updates", "approved", "suspended", "rejected", "expired")
CAMPAIGN_ALLOWED = {("submitted", "approved"), ("submitted", "rejected"), ("submitted", "requires_updates"),
                    ("requires_updates", "submitted"), ("approved", "suspended"), ("approved", "expired"),
                    ("suspended", "approved"), ("suspended", "expired")}
CAMPAIGN_TERMINAL = ("rejected", "expired")


@pytest.fixture
async def session():
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)  # one in-memory database
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with async_sessionmaker(engine, expire_on_commit=False)() as s:
        yield s
    await engine.dispose()


async def _brand(session: AsyncSession, status: str) -> Brand:
    account = Account(name="Acme Inc")
    session.add(account)
    await session.flush()
    brand = Brand(account_id=account.id, legal_name="Acme Inc", ein="12-3456789", entity_type="PRIVATE_PROFIT",
                  vertical="RETAIL", website="https://acme.example", country="US", contact_email="ops@acme.example",
                  status=status, identity_status="verified" if status == "complete" else "unverified",
                  trust_score=60 if status == "complete" else None)
    session.add(brand)
    await session.flush()
    return brand


async def _campaign(session: AsyncSession, status: str) -> Campaign:
    brand = await _brand(session, "complete")
    campaign = Campaign(account_id=brand.account_id, brand_id=brand.id, use_case="2FA",
                        description="One-time codes for Acme sign-in", sample_messages="[]", opt_in_message="in",
                        opt_out_message="out", help_message="help", status=status)
    session.add(campaign)
    await session.flush()
    return campaign


async def _transitions(session: AsyncSession, entity: str, entity_id: int) -> list[tuple[str | None, str, str]]:
    rows = await session.scalars(select(Transition).where(Transition.entity == entity,
                                                          Transition.entity_id == entity_id).order_by(Transition.id))
    return [(t.from_state, t.to_state, t.actor) for t in rows]


async def _check(session: AsyncSession, entity: str, obj: Any, start: str, to: str, allowed: bool, refusal: str,
                 act: Callable[[], Awaitable[None]]) -> None:
    if allowed:
        await act()
        await session.flush()
        assert obj.status == to
        assert await _transitions(session, entity, obj.id) == [(start, to, "tester")]
    else:
        with pytest.raises(states.RegistryError) as caught:
            await act()
        assert caught.value.code == refusal
        assert caught.value.kind == "conflict"
        await session.flush()
        assert obj.status == start
        assert await session.scalar(select(func.count()).select_from(Transition)) == 0


# --- brands: each operation from each state ------------------------------------------------------------------------
# operation -> (the state it moves to, the code it refuses with, how to call it)
BRAND_OPERATIONS: dict[str, tuple[str, str, Callable[[AsyncSession, Brand], Awaitable[None]]]] = {
    "submit": ("submitted", "brand_not_submittable", lambda s, b: states.submit_brand(s, b, "tester")),
    "review requires_updates": ("requires_updates", "brand_not_submitted",
                                lambda s, b: states.review_brand(s, b, "requires_updates", None, "no website",
                                                                 "tester")),
    "review verified": ("complete", "brand_not_submitted",
                        lambda s, b: states.review_brand(s, b, "verified", 80, None, "tester")),
    "vet": ("complete", "brand_not_verified", lambda s, b: states.vet_brand(s, b, 90, "tester")),
}


@pytest.mark.parametrize(("start", "operation"), list(itertools.product(BRAND_STATES, BRAND_OPERATIONS)))
async def test_brand_operation_follows_the_table(session, start, operation):
    to, refusal, call = BRAND_OPERATIONS[operation]
    # a review moves a submitted brand only; a vetting a complete one (complete -> complete)
    allowed = (start, to) in BRAND_ALLOWED and not (operation.startswith("review") and start != "submitted") \
        and not (operation == "vet" and start != "complete")
    brand = await _brand(session, start)
    await _check(session, "brand", brand, start, to, allowed, refusal, lambda: call(session, brand))


def test_every_allowed_brand_move_has_an_operation():
    reached = set()
    for start in BRAND_STATES:
        for operation, (to, _, _) in BRAND_OPERATIONS.items():
            if (start, to) in BRAND_ALLOWED and not (operation.startswith("review") and start != "submitted") \
                    and not (operation == "vet" and start != "complete"):
                reached.add((start, to))
    assert reached == BRAND_ALLOWED


async def test_a_brand_review_records_the_outcome(session):
    brand = await _brand(session, "submitted")
    await states.review_brand(session, brand, "verified", 80, None, "tester")
    assert (brand.status, brand.identity_status, brand.trust_score) == ("complete", "verified", 80)
    await states.vet_brand(session, brand, 70, "tester")  # a vetting never lowers the score
    assert (brand.status, brand.identity_status, brand.trust_score) == ("complete", "vetted_verified", 80)


# --- campaigns: every pair of states -------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "to"), list(itertools.product(CAMPAIGN_STATES, CAMPAIGN_STATES)))
async def test_campaign_state_change_follows_the_table(session, start, to):
    campaign = await _campaign(session, start)
    allowed = (start, to) in CAMPAIGN_ALLOWED
    await _check(session, "campaign", campaign, start, to, allowed, "illegal_transition",
                 lambda: states.set_campaign_state(session, campaign, to, "tester"))


@pytest.mark.parametrize(("start", "outcome"),
                         list(itertools.product(CAMPAIGN_STATES, ("approved", "rejected", "requires_updates"))))
async def test_campaign_review_moves_a_submitted_campaign_only(session, start, outcome):
    campaign = await _campaign(session, start)
    await _check(session, "campaign", campaign, start, outcome, start == "submitted", "campaign_not_submitted",
                 lambda: states.review_campaign(session, campaign, outcome, "reviewed", "tester"))


@pytest.mark.parametrize("start", CAMPAIGN_TERMINAL)
async def test_a_terminal_campaign_refuses_everything(session, start):
    campaign = await _campaign(session, start)
    for to in CAMPAIGN_STATES + ("unknown",):
        with pytest.raises(states.RegistryError) as caught:
            await states.set_campaign_state(session, campaign, to, "tester")
        assert caught.value.code == "illegal_transition"
    assert campaign.status == start
    assert await _transitions(session, "campaign", campaign.id) == []


async def test_an_unknown_state_is_refused(session):
    campaign = await _campaign(session, "approved")
    with pytest.raises(states.RegistryError) as caught:
        await states.set_campaign_state(session, campaign, "deleted", "tester")
    assert caught.value.code == "illegal_transition"
    assert "approved" in str(caught.value) and "deleted" in str(caught.value)
