"""GET /v1/stats and GET /admin/stats over real HTTP: today's traffic sent through the SMSC simulator (delivered
and undelivered), yesterday's written as rows at chosen times (states the simulator does not give, a 10DLC number
in a campaign, a STOP received), another account's traffic that the customer must not see and the operator must."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import update

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.sending.messages import new_public_id
from gateway.store import stats
from gateway.store.models import InboundMessage, Message
from registry.db import utcnow
from registry.models import Brand, Campaign, Number
from tests.conftest import ADMIN, new_customer, wait_for

TEN_DLC = "+14155550100"


def row(account_id: int, source: str, status: str, at: dt.datetime, *, segments: int = 1, sent: bool = True,
        to: str = "+14155550199") -> Message:
    return Message(public_id=new_public_id(), account_id=account_id, source=source, destination=to, body="b",
                   encoding="gsm7", segments=segments, characters=1, status=status, carrier="sim" if sent else None,
                   created_at=at, updated_at=at, next_attempt_at=at, expires_at=at + dt.timedelta(days=3),
                   sent_at=at if sent else None, done_at=at)


def stop_received(account_id: int, at: dt.datetime, body: str = "STOP") -> InboundMessage:
    return InboundMessage(public_id="in_" + new_public_id(), account_id=account_id, number="12345",
                          source="+14155550177", body=body, action="opt_out" if body == "STOP" else None,
                          carrier="sim", received_at=at)


@pytest.fixture
async def world(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    client = await aiohttp_client(create_app(migrated))
    a = await new_customer(client, sessionmaker, "acme", numbers=(("12345", "short_code"), (TEN_DLC, "ten_dlc")))
    b = await new_customer(client, sessionmaker, "beta", numbers=(("54321", "short_code"),))
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    sim.handler.outcomes_by_destination = {"+14155550124": "UNDELIV"}
    ids = []
    for to in ("+14155550123", "+14155550125", "+14155550124"):
        resp = await client.post("/v1/messages", json={"to": to, "body": "hello"}, headers=a.headers)
        assert resp.status == 202
        ids.append((await resp.json())["id"])

    async def final() -> bool:
        got = [await (await client.get(f"/v1/messages/{i}", headers=a.headers)).json() for i in ids]
        return [m["status"] for m in got] == ["delivered", "delivered", "undelivered"]
    await wait_for(final, timeout=15)
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - dt.timedelta(days=1)
    ten = yesterday + dt.timedelta(hours=10, minutes=15)
    async with sessionmaker() as session, session.begin():
        brand = Brand(account_id=a.account_id, legal_name="Acme", ein="12-3456789", entity_type="PRIVATE_PROFIT",
                      vertical="RETAIL", website="https://acme.example", country="US",
                      contact_email="ops@acme.example")
        session.add(brand)
        await session.flush()
        campaign = Campaign(account_id=a.account_id, brand_id=brand.id, use_case="MIXED", description="d",
                            sample_messages="[]", opt_in_message="i", opt_out_message="o", help_message="h")
        session.add(campaign)
        await session.flush()
        await session.execute(update(Number).where(Number.number == TEN_DLC).values(campaign_id=campaign.id))
        session.add_all([row(a.account_id, TEN_DLC, "undelivered", ten, segments=2),
                         row(a.account_id, TEN_DLC, "delivered", ten + dt.timedelta(minutes=5), segments=3),
                         row(a.account_id, "12345", "failed", ten, sent=False),
                         row(a.account_id, "12345", "expired", ten, sent=False),
                         row(a.account_id, "12345", "blocked", ten, sent=False),
                         row(a.account_id, "12345", "delivered", yesterday - dt.timedelta(seconds=1)),  # outside
                         row(b.account_id, "54321", "delivered", ten),
                         stop_received(a.account_id, ten + dt.timedelta(hours=1)),
                         stop_received(a.account_id, ten + dt.timedelta(hours=1), body="thanks")])
    return {"client": client, "a": a, "b": b, "today": today, "yesterday": yesterday, "campaign": campaign.id}


def z(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def get(client, path: str, headers: dict, expect: int = 200) -> dict:
    resp = await client.get(path, headers=headers)
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def test_a_customer_sees_its_own_counts_by_day(world):
    client, a, today, yesterday = world["client"], world["a"], world["today"], world["yesterday"]
    tomorrow = today + dt.timedelta(days=1)
    got = await get(client, f"/v1/stats?from={z(yesterday)}&to={z(tomorrow)}&group_by=day", a.headers)
    assert (got["from"], got["to"], got["group_by"], got["by"], got["account_id"]) == (
        z(yesterday), z(tomorrow), "day", None, a.account_id)
    first, second = got["rows"]
    assert first["start"] == z(yesterday) and second["start"] == z(today)
    assert {k: first[k] for k in ("messages", "delivered", "undelivered", "failed", "expired", "blocked",
                                  "pending", "segments", "opt_outs", "inbound")} == {
        "messages": 5, "delivered": 1, "undelivered": 1, "failed": 1, "expired": 1, "blocked": 1, "pending": 0,
        "segments": 8, "opt_outs": 1, "inbound": 2}
    assert first["delivered_pct"] == 25.0  # 1 of 4 final (blocked ones were never sent)
    assert first["cost"] == pytest.approx(5 * 0.0079)  # the 10DLC segments handed to the carrier
    assert (second["messages"], second["delivered"], second["undelivered"]) == (3, 2, 1)
    assert second["delivered_pct"] == pytest.approx(66.67)
    assert second["cost"] == pytest.approx(3 * 0.01)  # short code segments
    assert got["totals"]["messages"] == 8 and got["totals"]["delivered_pct"] == pytest.approx(3 / 7 * 100, abs=0.01)
    # another account's traffic and traffic outside the range count nowhere
    assert sum(r["messages"] for r in got["rows"]) == got["totals"]["messages"]


async def test_by_hour_with_empty_hours_and_by_number_campaign_carrier(world):
    client, a, y = world["client"], world["a"], world["yesterday"]
    got = await get(client, f"/v1/stats?from={z(y + dt.timedelta(hours=9))}&to={z(y + dt.timedelta(hours=12))}"
                            "&group_by=hour", a.headers)
    assert [(r["start"], r["messages"], r["opt_outs"]) for r in got["rows"]] == [
        (z(y + dt.timedelta(hours=9)), 0, 0), (z(y + dt.timedelta(hours=10)), 5, 0),
        (z(y + dt.timedelta(hours=11)), 0, 1)]
    assert got["rows"][0]["delivered_pct"] is None
    day = f"from={z(y)}&to={z(y + dt.timedelta(days=1))}"
    by_number = {r["key"]: r for r in (await get(client, f"/v1/stats?{day}&by=number", a.headers))["rows"]}
    assert {k: (r["messages"], r["opt_outs"]) for k, r in by_number.items()} == {TEN_DLC: (2, 0), "12345": (3, 1)}
    assert by_number[TEN_DLC]["delivered_pct"] == 50.0
    by_campaign = {r["key"]: r["messages"] for r in (await get(client, f"/v1/stats?{day}&by=campaign",
                                                               a.headers))["rows"]}
    assert by_campaign == {str(world["campaign"]): 2, None: 3}
    by_carrier = {r["key"]: r["messages"] for r in (await get(client, f"/v1/stats?{day}&by=carrier",
                                                              a.headers))["rows"]}
    assert by_carrier == {"sim": 2, None: 3}
    # the inbound STOP came through carrier sim: it counts under sim by carrier
    assert (await get(client, f"/v1/stats?{day}&by=carrier", a.headers))["totals"]["opt_outs"] == 1


async def test_operators_see_every_account_or_one(world):
    client, a, b, y = world["client"], world["a"], world["b"], world["yesterday"]
    day = f"from={z(y)}&to={z(y + dt.timedelta(days=1))}"
    assert (await get(client, f"/admin/stats?{day}", ADMIN))["totals"]["messages"] == 6
    one = await get(client, f"/admin/stats?{day}&account={b.account_id}", ADMIN)
    assert (one["account_id"], one["totals"]["messages"], one["totals"]["delivered"]) == (b.account_id, 1, 1)
    assert (await get(client, f"/admin/stats?{day}&account={a.account_id}", ADMIN))["totals"]["messages"] == 5
    missing = await get(client, "/admin/stats?account=999999", ADMIN, expect=404)
    assert missing["error"]["code"] == "account_not_found"
    # a customer's key is no operator token
    assert (await get(client, "/admin/stats", a.headers, expect=401))["error"]["code"] == "invalid_operator_token"


@pytest.mark.parametrize(("query", "code"), [
    ("from=yesterday", "invalid_time"),
    ("to=2026-13-01T00:00:00Z", "invalid_time"),
    ("from=0001-01-01T00:00:00", "invalid_time"),
    ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_time_range"),
    ("from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z", "invalid_time_range"),
    ("from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z&group_by=hour", "time_range_too_long"),
    ("from=2020-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "time_range_too_long"),
    ("group_by=week", "invalid_query"),
    ("by=account", "invalid_query"),
    ("since=2026-01-01", "unknown_query_parameter"),
])
async def test_bad_queries_are_refused_with_their_codes(world, query, code):
    got = await get(world["client"], f"/v1/stats?{query}", world["a"].headers, expect=400)
    assert got["error"]["code"] == code and got["error"]["message"]


async def test_times_with_offsets_and_without(world):
    client, a, y = world["client"], world["a"], world["yesterday"]
    # +02:00 written raw in the query string arrives as a space; naive times are UTC
    local = (y + dt.timedelta(hours=10)).astimezone(dt.timezone(dt.timedelta(hours=2)))
    raw = local.replace(tzinfo=None).isoformat() + "+02:00"
    got = await get(client, f"/v1/stats?from={raw}&to={(y + dt.timedelta(days=1)).replace(tzinfo=None).isoformat()}"
                            "&group_by=hour", a.headers)
    assert got["from"] == z(y + dt.timedelta(hours=10)) and got["to"] == z(y + dt.timedelta(days=1))
    assert got["totals"]["messages"] == 5
    # without from and to: the last 7 days (today's 3, yesterday's 5 and the one just before yesterday)
    assert (await get(client, "/v1/stats", a.headers))["totals"]["messages"] == 9


def test_buckets_floor_to_the_utc_hour_or_day():
    moment = dt.datetime(2026, 11, 29, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=3)))  # 22:30 UTC the day before
    assert stats.floor(moment, "hour") == dt.datetime(2026, 11, 28, 22, tzinfo=dt.timezone.utc)
    assert stats.floor(moment, "day") == dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
