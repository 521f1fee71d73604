"""Inbound messages and receipts in floods, over real SMPP to the simulator and real SQLite: reading the bind never
waits for the inbound messages being stored (no keep-alive times out, no reconnect), inbound messages are stored in
batches in arrival order, a deliver_sm the SMSC sends again after a lost answer is forwarded once, and sending
goes on by itself after a connection is lost. Every message ends final exactly once; every inbound message is
forwarded exactly once. How fast is measured by `gatewayctl bench soak`, not here: timeouts only bound a hang."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json

import pytest
from aiohttp import web
from sqlalchemy import func, select

import keywords
from carriers import InboundSms
from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.bench.common import recipients
from gateway.store.models import InboundMessage, Message, MessageEvent, MessageStatus as S
from gateway.webhooks.catalog import FINAL_EVENTS
from registry.models import OptOut
from tests.conftest import ADMIN, wait_for
from tests.gateway.two_way.test_two_way import NUMBER, two_way_gateway


class Inbox:
    """The customer's webhook for inbound messages: every body it was handed, repeats included."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read())["body"])
        return web.Response(status=200)


@pytest.fixture
async def inbox(aiohttp_server):
    box = Inbox()
    app = web.Application()
    app.router.add_post("/inbound", box.handle)
    box.url = str((await aiohttp_server(app)).make_url("/inbound"))
    return box


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, inbox):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    carrier = migrated.carriers[0]
    # a keep-alive that notices within seconds when the bind stops answering (the stall this file is about)
    carrier.enquire_link_interval, carrier.response_timeout = 0.2, 3.0
    carrier.reconnect_min = carrier.reconnect_max = 0.05
    yield await two_way_gateway(aiohttp_client, migrated, sessionmaker, services, inbox.url)
    await services.stop()


def binds(gw) -> int:
    return sum(c.binds for carrier in gw.app[app_keys.CARRIERS].carriers for c in carrier.clients)


async def send(gw, people: list[str]) -> None:
    for i in range(0, len(people), 500):
        resp = await gw.post("/v1/messages/batch", headers=gw.customer.headers, json={
            "messages": [{"to": p, "body": f"hello {p}"} for p in people[i:i + 500]]})
        assert resp.status == 200, await resp.text()
        assert all(r["status_code"] == 202 for r in (await resp.json())["results"])


async def finals(gw) -> collections.Counter:
    """message id -> its final events."""
    async with gw.sm() as session:
        rows = (await session.execute(select(MessageEvent.message_id, func.count())
                                      .where(MessageEvent.type.in_(FINAL_EVENTS))
                                      .group_by(MessageEvent.message_id))).all()
    return collections.Counter(dict(rows))


async def settled(gw, sends: int, inbox: Inbox, inbound: int) -> None:
    """Until every message has its final event and the inbox has every inbound message (the bound is a hang's)."""
    async def done() -> bool:
        return len(await finals(gw)) == sends and len(set(inbox.bodies)) >= inbound

    await wait_for(done, timeout=180, interval=0.2)
    await asyncio.sleep(0.5)  # a repeat would come within the webhook poll: give it its chance


async def assert_once(gw, sends: int, inbox: Inbox, bodies: list[str]) -> None:
    got = await finals(gw)
    assert len(got) == sends and set(got.values()) == {1}  # every message final, exactly once
    assert sorted(inbox.bodies) == sorted(bodies)  # every inbound message forwarded, exactly once
    async with gw.sm() as session:
        stored = await session.scalar(select(func.count()).select_from(InboundMessage))
        left = await session.scalar(select(func.count()).where(Message.status.in_((S.QUEUED.value,
                                                                                   S.SENDING.value))))
    assert (stored, left) == (len(bodies), 0)


async def test_a_flood_of_inbound_beside_sends_needs_no_reconnect(gw, inbox):
    """3,000 inbound messages at once (three times the window of deliver_sm handled at once) while 2,000 messages
    are sent: the receipts, the submit answers and the keep-alive go on being read while the inbound messages are
    stored, so the bind stays up (one bind); the deliver_sm beyond the window are throttled and come again."""
    people, persons = recipients(2000), recipients(3000, start=100_000)
    bodies = [f"reply {i}" for i in range(len(persons))]
    sending = asyncio.create_task(send(gw, people))
    for i, (person, body) in enumerate(zip(persons, bodies)):
        await gw.sim.inject_mo(person, NUMBER, body)
        if i % 500 == 0:
            await asyncio.sleep(0)  # the sends' requests get in between
    await sending
    await settled(gw, len(people), inbox, len(bodies))
    await assert_once(gw, len(people), inbox, bodies)
    assert binds(gw) == 1 and gw.sim.stats["connections"] == 1  # no keep-alive ever went unanswered
    assert gw.sim.stats["deliveries_throttled"] > 0  # the window was full: back-pressure fell on deliver_sm only
    inbound = gw.app[app_keys.INBOUND]
    assert inbound.stats["batches"] < inbound.stats["messages"]  # stored in batches, not one by one


async def test_sending_resumes_by_itself_after_the_connection_is_lost_mid_flood(gw, inbox):
    """The connection drops with submits, receipts and inbound messages in flight: the messages whose submit got no
    answer are queued again and sent, the SMSC sends its unanswered deliver_sm again (an inbound message stored but
    not acknowledged is recognized and forwarded once), and every message still ends final exactly once."""
    people, persons = recipients(2000), recipients(1000, start=100_000)
    bodies = [f"reply {i}" for i in range(len(persons))]
    sending = asyncio.create_task(send(gw, people))
    for person, body in zip(persons[:500], bodies[:500]):
        await gw.sim.inject_mo(person, NUMBER, body)
    await wait_for(lambda: asyncio.sleep(0, len(gw.sim.received) >= 300), timeout=60)
    assert gw.sim.disconnect() == 1
    for person, body in zip(persons[500:], bodies[500:]):
        await gw.sim.inject_mo(person, NUMBER, body)
    await sending
    await settled(gw, len(people), inbox, len(bodies))
    await assert_once(gw, len(people), inbox, bodies)
    assert binds(gw) == 2  # bound again once, by itself


async def test_a_delivery_stored_but_not_acknowledged_is_forwarded_once(gw, inbox):
    """The answer to a stored deliver_sm is lost with the connection (it drops between the commit and the
    deliver_sm_resp): the SMSC sends it again on the next bind, and it is acknowledged but not stored or forwarded
    a second time. A genuine repeat after the dedupe window is a new message."""
    inbound = gw.app[app_keys.INBOUND]
    store = inbound.on_inbound
    dropped: list[str] = []

    async def store_then_drop(carrier, message):
        await store(carrier, message)
        if not dropped:  # stored; the connection goes before the answer does
            dropped.append(message.text)
            gw.sim.disconnect()

    gw.app[app_keys.CARRIERS].carriers[0]._events.on_inbound = store_then_drop
    await gw.sim.inject_mo("+14155550123", NUMBER, "Is my order ready?")
    await wait_for(lambda: asyncio.sleep(0, gw.sim.stats["acknowledged"] == 1 and binds(gw) == 2), timeout=30)
    assert gw.sim.stats["redelivered"] == 1 and inbound.stats["repeats"] == 1
    await wait_for(lambda: asyncio.sleep(0, inbox.bodies == ["Is my order ready?"]))
    await gw.sim.inject_mo("+14155550123", NUMBER, "Thanks")  # another message is no repeat
    await wait_for(lambda: asyncio.sleep(0, len(inbox.bodies) == 2))
    metrics = await (await gw.get("/metrics", headers=ADMIN)).text()
    assert 'gateway_inbound_repeats_total{carrier="sim"} 1.0' in metrics
    await inbound.flush_incomplete(now=dt_after(inbound.dedupe_s + 1))  # the window has passed
    await gw.sim.inject_mo("+14155550123", NUMBER, "Is my order ready?")
    await wait_for(lambda: asyncio.sleep(0, len(inbox.bodies) == 3))
    await asyncio.sleep(0.3)
    assert inbox.bodies == ["Is my order ready?", "Thanks", "Is my order ready?"]
    async with gw.sm() as session:
        assert await session.scalar(select(func.count()).select_from(InboundMessage)) == 3


def dt_after(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


async def test_stop_and_start_keep_their_order_within_batches(gw):
    """Opt-out and opt-in words from many people at once, each person's in the order they sent them, land in the
    same batches: whoever sent STOP then START ends opted in, whoever sent START then STOP opted out; a message
    after STOP answers the STOP's confirmation."""
    first, second = recipients(100, start=200_000), recipients(100, start=300_000)
    for a, b in zip(first, second):
        await gw.sim.inject_mo(a, NUMBER, "STOP")
        await gw.sim.inject_mo(b, NUMBER, "START")
        await gw.sim.inject_mo(a, NUMBER, "START")
        await gw.sim.inject_mo(b, NUMBER, "STOP")
        await gw.sim.inject_mo(b, NUMBER, "why?")

    async def stored() -> bool:
        async with gw.sm() as session:
            return await session.scalar(select(func.count()).select_from(InboundMessage)) == 500

    await wait_for(stored, timeout=60)
    inbound = gw.app[app_keys.INBOUND]
    assert inbound.stats["batches"] < 500
    async with gw.sm() as session:
        opted = set((await session.scalars(select(OptOut.phone))).all())
        why = (await session.execute(select(InboundMessage.source, InboundMessage.in_reply_to)
                                     .where(InboundMessage.body == "why?"))).all()
        stops = dict((await session.execute(select(InboundMessage.source, InboundMessage.reply_id)
                                            .where(InboundMessage.body == "STOP"))).all())
    assert opted == set(second)
    assert len(why) == 100 and all(reply == stops[person] for person, reply in why)


@pytest.mark.postgres
async def test_on_postgresql_a_message_handed_to_two_instances_at_once_is_stored_once(postgres_url):
    """The SMSC sends a deliver_sm again on another instance's bind while the first instance is still storing it:
    the identity is written by one statement, so one of them stores the message and the other sees a repeat."""
    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade
    from gateway.two_way.inbound import InboundService
    from registry.models import Account, Number

    await upgrade(postgres_url)
    engines = [create_engine(postgres_url) for _ in range(2)]
    try:
        one, two = (InboundService(create_sessionmaker(e)) for e in engines)
        async with create_sessionmaker(engines[0])() as session, session.begin():
            account = Account(name="acme")
            session.add(account)
            await session.flush()
            session.add(Number(number=NUMBER, type="short_code", country="US", capabilities="sms",
                               status="active", account_id=account.id))
        messages = [InboundSms(person, NUMBER, f"reply {i}") for i, person in enumerate(recipients(50))]
        await asyncio.gather(*(service.on_inbound("sim", m) for m in messages for service in (one, two)))
        async with create_sessionmaker(engines[0])() as session:
            bodies = (await session.scalars(select(InboundMessage.body))).all()
        assert sorted(bodies) == sorted(m.text for m in messages)
        assert one.stats["repeats"] + two.stats["repeats"] == len(messages)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_message_its_batch_cannot_store_is_refused_alone(gw, inbox, monkeypatch):
    """A message that meets a bug while its batch is stored must not refuse its neighbours (the SMSC would send them
    all again, and again): the batch is stored message by message, and only that one is refused (the carrier
    answers ESME_RX_T_APPN and gets it again). Refused, it is no repeat when it comes again."""
    inbound = gw.app[app_keys.INBOUND]
    match = keywords.match

    def buggy(text, custom=()):
        if text == "boom":
            raise ValueError("a bug")
        return match(text, custom)

    monkeypatch.setattr(keywords, "match", buggy)
    person = "+14155550123"
    results = await asyncio.gather(*(inbound.on_inbound("sim", InboundSms(person, NUMBER, text))
                                     for text in ("first", "boom", "last")), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType", "RuntimeError", "NoneType"]
    assert inbound.stats["failed_batches"] == 1
    await wait_for(lambda: asyncio.sleep(0, sorted(inbox.bodies) == ["first", "last"]))
    monkeypatch.setattr(keywords, "match", match)
    await inbound.on_inbound("sim", InboundSms(person, NUMBER, "boom"))  # sent again, stored now
    await wait_for(lambda: asyncio.sleep(0, sorted(inbox.bodies) == ["boom", "first", "last"]))
    assert inbound.stats["repeats"] == 0
