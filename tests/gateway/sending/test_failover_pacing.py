"""Pacing across a failover: carrier a of a failover route stops mid-stream and the rest moves to carrier b, yet
every limit holds for what both carriers received together, measured from the simulators' own receive times:
a toll-free number's rate (per sending number), a 10DLC campaign's AT&T rate (per recipient carrier) and one
recipient's rate (per receiving number). The assertions are on the spacing the carriers saw against the configured
rates, with a tolerance for the way there; nothing is asserted about how fast the gateway is."""

from __future__ import annotations

import asyncio
import math
import statistics

from sqlalchemy import func, select

from carriers.simulator import SmscSimulator
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.settings_routes import CarrierSettings, RouteSettings
from gateway.store.models import Message
from registry.limits import derive
from registry.models import Brand, Campaign, Number
from tests.conftest import live_campaign, new_customer, verify_toll_free, wait_for

TOLL_FREE, TEN_DLC, SHORT_CODE = "+18005550100", "+14155550150", "12345"
ONE_RECIPIENT = "+14155550177"
TOLL_FREE_PER_S = 5.0
TRUST_SCORE = 30  # AT&T class E/F: 240 SMS a minute for the campaign, 4 a second
TOLERANCE_S = 0.1  # how much closer two sends may arrive than they left (scheduling, the socket)


def most_in_any_window(times: list[float], width: float) -> int:
    """The most timestamps within any window of ``width`` seconds."""
    best, first = 0, 0
    for i, t in enumerate(times):
        while t - times[first] >= width:
            first += 1
        best = max(best, i - first + 1)
    return best


def assert_paced(times: list[float], per_second: float, headroom: float, what: str) -> None:
    """What the carriers received under one limit: never more in a second than the paced rate allows
    (``send_cap``: the limit less its headroom, rounded up), and on average no faster than the limit."""
    times = sorted(times)
    cap = max(1, math.ceil(per_second * headroom - 1e-6))
    assert most_in_any_window(times, 1.0 - TOLERANCE_S) <= cap, (what, cap, times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert statistics.median(gaps) >= (1 - TOLERANCE_S) / per_second, (what, gaps)
    assert (len(times) - 1) / (times[-1] - times[0]) <= per_second * (1 + TOLERANCE_S), (what, times)


async def test_pacing_holds_per_number_and_per_carrier_across_a_failover(aiohttp_client, migrated, sessionmaker):
    a, b = (SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.02) for _ in range(2))
    await a.start()
    await b.start()
    try:
        migrated.carriers = [CarrierSettings(name="a", port=a.port, enquire_link_interval=5.0),
                             CarrierSettings(name="b", port=b.port, enquire_link_interval=5.0)]
        migrated.routes = [RouteSettings(name="fo", failover=["a", "b"])]
        migrated.pacing.enabled = True
        migrated.pacing.toll_free_per_s = TOLL_FREE_PER_S
        client = await aiohttp_client(create_app(migrated))
        await wait_for(lambda: asyncio.sleep(0, all(c.ready for c in client.app[app_keys.CARRIERS].carriers)))
        # one account a stream: an account's own limit keeps its messages in order, so that one account's streams
        # would follow each other instead of running side by side
        customer = await new_customer(client, sessionmaker, "shop")  # owns the short code 12345
        toll_free = await new_customer(client, sessionmaker, "travel", numbers=((TOLL_FREE, "toll_free"),))
        await verify_toll_free(sessionmaker, toll_free.account_id, TOLL_FREE)  # carriers block unverified ones
        ten_dlc = await new_customer(client, sessionmaker, "acme", numbers=())
        async with sessionmaker() as session, session.begin():
            campaign = await live_campaign(session, ten_dlc.account_id, TRUST_SCORE, "ACCOUNT_NOTIFICATION")
            session.add(Number(number=TEN_DLC, type="ten_dlc", country="US", capabilities="sms", status="active",
                               account_id=ten_dlc.account_id, campaign_id=campaign.id))
        att_per_s = derive(TRUST_SCORE, "ACCOUNT_NOTIFICATION", "PRIVATE_PROFIT").att_per_minute / 60
        assert att_per_s == 4.0

        streams = {  # what each limit governs: its sending number, its recipients, the limit, the account
            "toll-free number": (TOLL_FREE, [f"+1415555{2000 + i}" for i in range(20)], TOLL_FREE_PER_S, toll_free),
            "AT&T campaign": (TEN_DLC, [f"+1214555{3000 + i}" for i in range(16)], att_per_s, ten_dlc),  # +1214: AT&T
            "one recipient": (SHORT_CODE, [ONE_RECIPIENT] * 5, migrated.pacing.recipient_per_s, customer),
        }
        by_source = {source.lstrip("+"): name for name, (source, *_) in streams.items()}
        for source, recipients, _, sender in streams.values():
            resp = await client.post("/v1/messages/batch", headers=sender.headers, json={"messages": [
                {"to": to, "from": source, "body": f"m{i}"} for i, to in enumerate(recipients)]})
            data = await resp.json()
            assert resp.status in (200, 202) and data["failed"] == 0, data

        def received(sim: SmscSimulator, name: str) -> list:
            return [s for s in sim.received if by_source.get(s.source.lstrip("+")) == name]

        async def mid_stream() -> bool:  # a has taken some of every stream, none is done
            return all(len(received(a, name)) >= 2 for name in streams)

        await wait_for(mid_stream, timeout=30)
        await a.stop()  # carrier a goes down mid-stream: the rest of every stream moves to b
        total = sum(len(r) for _, r, *_ in streams.values())

        async def all_delivered() -> bool:
            async with sessionmaker() as session:
                counts = dict((await session.execute(
                    select(Message.status, func.count()).group_by(Message.status))).all())
            return counts == {"delivered": total}

        async def all_taken() -> bool:
            return len(a.received) + len(b.received) >= total

        await wait_for(all_taken, timeout=60)
        await a.start()  # a is back and reports what it had taken
        await wait_for(all_delivered, timeout=60)

        headroom = migrated.pacing.headroom
        for name, (_, recipients, per_second, _) in streams.items():
            on_a, on_b = received(a, name), received(b, name)
            assert on_a and on_b, name  # the stream really crossed from a to b
            assert {s.destination for s in on_a + on_b} == set(recipients), name
            assert_paced([s.received_at for s in on_a + on_b], per_second, headroom, name)
    finally:
        await a.stop()
        await b.stop()
