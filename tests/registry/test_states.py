"""The 10DLC states as the registry's word sets them, on a real SQLite database: a campaign's state derived from
its registry status, sharing and carriers' reviews; the registry's events applied per aspect in (createDate,
sequence) order, whatever order they come in, once each; polls' answers; number orders; the number moves.

The expected tables are written out here (not read from the module), so a change to the code shows up as a
failing case."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from registry import events, states
from registry.db import Base
from registry.limits import carrier_limits_for_campaign
from registry.models import (
    Account,
    Brand,
    Campaign,
    CampaignOperation,
    Number,
    NumberOrder,
    NumberOrderItem,
    RegistryEvent,
    Transition,
)


@pytest.fixture
async def session():
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)  # one in-memory database
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with async_sessionmaker(engine, expire_on_commit=False)() as s:
        yield s
    await engine.dispose()


async def _brand(session: AsyncSession, registry_id: str | None = "BAAAAAA") -> Brand:
    account = Account(name=f"Acme {registry_id}")
    session.add(account)
    await session.flush()
    brand = Brand(account_id=account.id, legal_name="Acme Inc", ein="12-3456789", entity_type="PRIVATE_PROFIT",
                  vertical="RETAIL", website="https://acme.example", country="US", contact_email="ops@acme.example",
                  status="submitted" if registry_id else "created", registry_id=registry_id)
    session.add(brand)
    await session.flush()
    return brand


async def _campaign(session: AsyncSession, registry_id: str | None = "CAAAAAA", **fields: Any) -> Campaign:
    brand = await _brand(session, "B" + (registry_id or "XXXXXX")[1:])
    campaign = Campaign(account_id=brand.account_id, brand_id=brand.id, use_case="2FA",
                        description="One-time codes for Acme sign-in", sample_messages="[]", opt_in_message="in",
                        opt_out_message="out", help_message="help", status="submitted" if registry_id else "created",
                        registry_id=registry_id, registry_status="ACTIVE" if registry_id else None, **fields)
    session.add(campaign)
    await session.flush()
    return campaign


def ev(event_type: str, at: str, seq: int, event_id: str | None = None, **fields: Any) -> events.Event:
    data = {"eventId": event_id or f"E{seq}-{event_type}", "eventType": event_type, "createDate": at, "sequence": seq,
            **fields}
    return events.check(data)


async def _store(session: AsyncSession, event: events.Event) -> events.Outcome | None:
    return await events.store(session, event, json.dumps(event.data))


# --- a campaign's state from what the registry says ------------------------------------------------------------------
@pytest.mark.parametrize("registry_id, status, sharing, operations, expected", [
    (None, None, None, [], "created"),
    ("C1", "ACTIVE", None, [], "submitted"),
    ("C1", "ACTIVE", "PENDING", [], "shared"),
    ("C1", "ACTIVE", "DECLINED", [], "declined"),
    ("C1", "ACTIVE", "ACCEPTED", [], "review"),
    ("C1", "ACTIVE", "ACCEPTED", ["REVIEW", "REVIEW"], "review"),
    ("C1", "ACTIVE", "ACCEPTED", ["APPROVED", "REVIEW"], "active"),
    ("C1", "ACTIVE", "ACCEPTED", ["APPROVED", "SUSPENDED"], "active"),  # the other carriers still carry it
    ("C1", "ACTIVE", "ACCEPTED", ["SUSPENDED", "REJECTED"], "suspended"),
    ("C1", "ACTIVE", "ACCEPTED", ["REJECTED", "REJECTED"], "rejected"),
    ("C1", "EXPIRED", "ACCEPTED", ["APPROVED"], "expired"),
    ("C1", "DEACTIVATED", "ACCEPTED", ["APPROVED"], "deactivated"),
])
def test_campaign_status_follows_the_registry(registry_id, status, sharing, operations, expected):
    campaign = Campaign(registry_id=registry_id, registry_status=status, sharing_status=sharing)
    assert states.campaign_status(campaign, operations) == expected


@pytest.mark.parametrize("identity, scored, expected", [("UNVERIFIED", False, "submitted"),
                                                       ("UNVERIFIED", True, "requires_updates"),
                                                       ("VERIFIED", True, "complete"),
                                                       ("VETTED_VERIFIED", True, "complete"),
                                                       ("SELF_DECLARED", True, "complete")])
def test_brand_status_follows_the_identity(identity, scored, expected):
    assert states.brand_status(identity, scored) == expected


# --- events, per aspect, in registry order ----------------------------------------------------------------------------
async def test_a_score_event_completes_the_brand_and_a_redelivery_changes_nothing(session):
    brand = await _brand(session)
    event = ev("BRAND_SCORE_UPDATE", "2030-01-07T10:00:00.000Z", 5, brandId="BAAAAAA", identityStatus="VERIFIED",
               brandScore=69)
    assert (await _store(session, event)).outcome == "applied"
    assert (brand.status, brand.identity_status, brand.trust_score) == ("complete", "VERIFIED", 69)
    transitions = await session.scalar(select(func.count()).select_from(Transition))
    assert await _store(session, event) is None  # the same eventId: a redelivery
    assert await session.scalar(select(func.count()).select_from(Transition)) == transitions
    assert await session.scalar(select(func.count()).select_from(RegistryEvent)) == 1


async def test_an_older_event_never_overwrites_a_newer_state(session):
    brand = await _brand(session)
    newer = ev("BRAND_SCORE_UPDATE", "2030-01-08T10:00:00.000Z", 9, brandId="BAAAAAA",
               identityStatus="VETTED_VERIFIED", brandScore=94)
    older = ev("BRAND_SCORE_UPDATE", "2030-01-07T10:00:00.000Z", 5, brandId="BAAAAAA", identityStatus="VERIFIED",
               brandScore=69)
    assert (await _store(session, newer)).outcome == "applied"
    outcome = await _store(session, older)
    assert outcome.outcome == "ignored" and "older than the state held" in outcome.reason
    assert (brand.identity_status, brand.trust_score) == ("VETTED_VERIFIED", 94)
    # the same instant: the sequence decides
    tie = ev("BRAND_SCORE_UPDATE", "2030-01-08T10:00:00.000Z", 8, brandId="BAAAAAA", identityStatus="UNVERIFIED",
             brandScore=0)
    assert (await _store(session, tie)).outcome == "ignored"
    assert brand.trust_score == 94


async def test_aspects_are_ordered_apart(session):
    """A vetting result older than the score it raised, delivered after it (reordered), still applies: they are
    two aspects of the brand."""
    brand = await _brand(session)
    score = ev("BRAND_SCORE_UPDATE", "2030-01-08T10:00:00.001Z", 11, brandId="BAAAAAA",
               identityStatus="VETTED_VERIFIED", brandScore=94)
    vetting = ev("BRAND_VETTING_UPDATE", "2030-01-08T10:00:00.000Z", 10, brandId="BAAAAAA", vettingId="V1",
                 vettingStatus="ACTIVE", vettingScore=80)
    assert (await _store(session, score)).outcome == "applied"
    assert (await _store(session, vetting)).outcome == "applied"
    assert (brand.identity_status, brand.trust_score, brand.vetting_status) == ("VETTED_VERIFIED", 94, "ACTIVE")


async def test_each_carrier_reviews_on_its_own_and_a_suspension_blocks_that_carrier_only(session):
    campaign = await _campaign(session)
    accept = ev("CAMPAIGN_SHARE_ACCEPT", "2030-01-08T00:00:00.000Z", 20, campaignId="CAAAAAA",
                upstreamCnpId="DCASIM1")
    approvals = [ev(f"MNO_CAMPAIGN_OPERATION_{s}", f"2030-01-1{i}T00:00:00.000Z", 21 + i, campaignId="CAAAAAA",
                    mno=mno) for i, (mno, s) in enumerate([("ATT", "APPROVED"), ("TMOBILE", "APPROVED"),
                                                            ("VERIZON", "APPROVED"), ("USCELLULAR", "APPROVED")])]
    # the carriers' answers come first (reordered), the DCA's acceptance last: no answer is put back in review
    for event in approvals:
        assert (await _store(session, event)).outcome == "applied"
    assert (await _store(session, accept)).outcome == "applied"
    ops = dict((await session.execute(select(CampaignOperation.mno, CampaignOperation.status))).all())
    assert ops == {"ATT": "APPROVED", "TMOBILE": "APPROVED", "VERIZON": "APPROVED", "USCELLULAR": "APPROVED"}
    assert (campaign.sharing_status, campaign.status) == ("ACCEPTED", "active")
    limits = await carrier_limits_for_campaign(session, campaign.id)
    assert limits.blocked == ()
    suspend = ev("MNO_CAMPAIGN_OPERATION_SUSPENDED", "2030-02-01T00:00:00.000Z", 40, campaignId="CAAAAAA",
                 mno="TMOBILE", description="spam complaints")
    outcome = await _store(session, suspend)
    assert outcome.outcome == "applied" and outcome.campaigns == {campaign.id}
    assert campaign.status == "active"  # AT&T, Verizon and US Cellular carry it still
    assert (await carrier_limits_for_campaign(session, campaign.id)).blocked == (("tmobile", "TMOBILE SUSPENDED"),)
    unsuspend = ev("MNO_CAMPAIGN_OPERATION_UNSUSPENDED", "2030-02-02T00:00:00.000Z", 41, campaignId="CAAAAAA",
                   mno="TMOBILE")
    assert (await _store(session, unsuspend)).outcome == "applied"
    assert (await carrier_limits_for_campaign(session, campaign.id)).blocked == ()
    # the suspension redelivered late (a new eventId: the registry's retry of a lost one) is older: ignored
    late = ev("MNO_CAMPAIGN_OPERATION_SUSPENDED", "2030-02-01T00:00:00.000Z", 40, event_id="E40-again",
              campaignId="CAAAAAA", mno="TMOBILE")
    assert (await _store(session, late)).outcome == "ignored"
    assert (await carrier_limits_for_campaign(session, campaign.id)).blocked == ()


async def test_a_campaign_not_live_reaches_no_carrier(session):
    campaign = await _campaign(session)
    assert (await carrier_limits_for_campaign(session, campaign.id)).blocked == (("*", "the campaign is submitted"),)
    await _store(session, ev("CAMPAIGN_DEACTIVATED", "2030-03-01T00:00:00.000Z", 50, campaignId="CAAAAAA"))
    assert campaign.status == "deactivated"
    # deactivated for good: an ACTIVE answer afterwards changes nothing
    outcome = await events.apply_campaign(session, campaign, {"status": "ACTIVE",
                                                              "updateDate": "2030-04-01T00:00:00.000Z"})
    assert outcome.outcome == "ignored" and campaign.status == "deactivated"


async def test_an_event_before_its_registration_answer_waits_then_applies(session):
    """The score event can come before the gateway has stored the brandId the registration answered."""
    brand = await _brand(session, registry_id=None)
    event = ev("BRAND_SCORE_UPDATE", "2030-01-07T10:00:00.000Z", 5, brandId="BZZZZZZ", identityStatus="VERIFIED",
               brandScore=60)
    outcome = await _store(session, event)
    assert outcome.outcome == "unmatched" and brand.status == "created"
    brand.registry_id, brand.status = "BZZZZZZ", "submitted"
    await session.flush()
    await events.apply_unmatched(session, "BZZZZZZ")
    assert (brand.status, brand.trust_score) == ("complete", 60)
    row = await session.scalar(select(RegistryEvent))
    assert row.outcome == "applied"


async def test_a_poll_counts_as_of_its_update_date(session):
    brand = await _brand(session)
    await _store(session, ev("BRAND_SCORE_UPDATE", "2030-01-07T10:00:00.000Z", 5, brandId="BAAAAAA",
                             identityStatus="VERIFIED", brandScore=69))
    stale = await events.apply_brand(session, brand, {"identityStatus": "UNVERIFIED", "brandScore": None,
                                                      "updateDate": "2030-01-07T09:00:00.000Z"})
    assert stale.outcome == "ignored" and brand.trust_score == 69
    fresh = await events.apply_brand(session, brand, {"identityStatus": "VETTED_VERIFIED", "brandScore": 94,
                                                      "vettingStatus": "ACTIVE",
                                                      "updateDate": "2030-01-09T09:00:00.000Z"})
    assert fresh.outcome == "applied" and (brand.trust_score, brand.vetting_status) == (94, "ACTIVE")
    # an event of that same instant is not newer than what the poll read
    same = ev("BRAND_SCORE_UPDATE", "2030-01-09T09:00:00.000Z", 99, brandId="BAAAAAA", identityStatus="VERIFIED",
              brandScore=70)
    assert (await _store(session, same)).outcome == "ignored"


@pytest.mark.parametrize("data, problem", [
    ({"eventType": "BRAND_SCORE_UPDATE"}, "eventId"),
    ({"eventId": "E1"}, "eventType"),
    ({"eventId": "E1", "eventType": "BRAND_SCORE_UPDATE", "identityStatus": "VERIFIED"}, "brandId"),
    ({"eventId": "E1", "eventType": "BRAND_SCORE_UPDATE", "brandId": "B1", "identityStatus": "GREAT"},
     "identityStatus"),
    ({"eventId": "E1", "eventType": "BRAND_SCORE_UPDATE", "brandId": "B1", "identityStatus": "VERIFIED",
      "brandScore": 101}, "brandScore"),
    ({"eventId": "E1", "eventType": "CAMPAIGN_EXPIRED", "campaignId": "C1", "createDate": "yesterday"}, "createDate"),
    ({"eventId": "E1", "eventType": "CAMPAIGN_EXPIRED", "campaignId": "C1", "sequence": -1}, "sequence"),
    ({"eventId": "E1", "eventType": "MNO_CAMPAIGN_OPERATION_APPROVED", "campaignId": "C1", "mno": "SPRINT"}, "mno"),
    ({"eventId": "E1", "eventType": "NUMBER_ORDER_UPDATE", "orderId": "O1", "status": "COMPLETED",
      "numbers": "+12145550100"}, "numbers"),
    ({"eventId": "x" * 81, "eventType": "CAMPAIGN_EXPIRED", "campaignId": "C1"}, "eventId"),
])
def test_an_event_that_cannot_be_read_says_what(data, problem):
    with pytest.raises(events.EventError) as caught:
        events.check(data)
    assert problem in str(caught.value)


async def test_an_unknown_event_type_is_kept_and_ignored(session):
    outcome = await _store(session, events.check({"eventId": "E1", "eventType": "CSP_SUSPENDED"}))
    assert outcome.outcome == "ignored" and "CSP_SUSPENDED" in outcome.reason


# --- numbers --------------------------------------------------------------------------------------------------------
async def _number(session: AsyncSession, campaign: Campaign, **fields: Any) -> Number:
    number = Number(number=fields.pop("number", "+12145550100"), type=fields.pop("type", "long_code"), country="US",
                    status="active", account_id=fields.pop("account_id", campaign.account_id), **fields)
    session.add(number)
    await session.flush()
    return number


@pytest.mark.parametrize("change, code", [
    ({"sharing_status": None}, "campaign_not_shared"),
    ({"account_id": None}, "number_not_owned"),
    ({"type": "toll_free"}, "number_not_10dlc_capable"),
    ({"status": "pending"}, "number_not_active"),
    ({"campaign_id": True}, "number_in_campaign"),
])
async def test_a_number_joins_an_accepted_campaign_only(session, change, code):
    campaign = await _campaign(session, sharing_status="ACCEPTED")
    number = await _number(session, campaign)
    if "sharing_status" in change:
        campaign.sharing_status = None
    elif "campaign_id" in change:
        number.campaign_id = campaign.id
    else:
        setattr(number, *next(iter(change.items())))
    with pytest.raises(states.RegistryError) as caught:
        states.check_associable(campaign, number)
    assert caught.value.code == code


async def test_an_order_associates_its_numbers_and_a_failed_number_stays_as_it_was(session):
    campaign = await _campaign(session, sharing_status="ACCEPTED")
    good = await _number(session, campaign)
    bad = await _number(session, campaign, number="+12145550101")
    order = NumberOrder(campaign_id=campaign.id, kind="ASSOCIATE", status="placed", registry_id="OAAAAAA",
                        reference_id="O1-x")
    session.add(order)
    await session.flush()
    for n in (good, bad):
        await states.start_association(session, n, campaign, "tester")
        session.add(NumberOrderItem(order_id=order.id, number_id=n.id, number=n.number, status="associating"))
    await session.flush()
    assert (good.status, good.campaign_id) == ("associating", campaign.id)
    done = ev("NUMBER_ORDER_UPDATE", "2030-01-20T00:00:00.000Z", 60, orderId="OAAAAAA", kind="ASSOCIATE",
              status="COMPLETED", numbers=[{"number": good.number, "status": "ASSOCIATED"},
                                           {"number": bad.number, "status": "FAILED", "reason": "not NANP"}])
    outcome = await _store(session, done)
    assert outcome.outcome == "applied" and order.status == "completed"
    assert (good.status, good.type, good.campaign_id) == ("active", "ten_dlc", campaign.id)
    assert (bad.status, bad.type, bad.campaign_id) == ("active", "long_code", None)
    items = {i.number: (i.status, i.reason) for i in (await session.scalars(select(NumberOrderItem))).all()}
    assert items == {good.number: ("associated", None), bad.number: ("failed", "not NANP")}
    # the same word again (another eventId, same instant) changes nothing
    again = ev("NUMBER_ORDER_UPDATE", "2030-01-20T00:00:00.000Z", 60, event_id="E60-again", orderId="OAAAAAA",
               kind="ASSOCIATE", status="COMPLETED", numbers=done.data["numbers"])
    assert (await _store(session, again)).outcome == "ignored"
