"""Data retention: old bodies, inbound bodies, call scripts and webhook payloads blanked with the rows (and so the
stats) kept; DELETE /v1/data?phone=... erasing one person's data but not their opt-out. Real SQLite, real HTTP,
messages through the SMSC simulator; the purge and the erasure also on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from carriers import InboundSms
from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.sending.messages import new_public_id
from gateway.settings import PricingSettings
from gateway.store import retention, stats
from gateway.store.accounts import create_account
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.migrate import upgrade
from gateway.store.models import InboundMessage, Message, VoiceMessage, WebhookDelivery
from gateway.voice_calls.worker import new_voice_id
from registry.db import utcnow
from registry.models import Number, OptOut
from tests.conftest import ADMIN, new_customer, wait_for
from tests.gateway.webhooks.test_webhooks import Receiver, serve

PERSON, OTHER = "+14155550166", "+14155550188"


def old_message(account_id: int, to: str, status: str, days: float, source: str = "12345", **kw) -> Message:
    at = utcnow() - dt.timedelta(days=days)
    return Message(public_id=new_public_id(), account_id=account_id, source=source, destination=to,
                   body=f"body to {to}", encoding="gsm7", segments=1, characters=10, status=status,
                   created_at=at, updated_at=at, next_attempt_at=kw.pop("next_attempt_at", at),
                   expires_at=at + dt.timedelta(days=400), **kw)


def old_delivery(account_id: int, status: str, days: float, payload: str) -> WebhookDelivery:
    at = utcnow() - dt.timedelta(days=days)
    return WebhookDelivery(public_id="whd_" + new_public_id(), account_id=account_id, kind="event",
                           event_type="TEXT_DELIVERED", url="http://127.0.0.1:9/hook", payload=payload, status=status,
                           created_at=at, next_attempt_at=at + dt.timedelta(days=365))


@pytest.fixture
async def gateway(aiohttp_client, aiohttp_server, migrated, sessionmaker, sim):
    """The app on the simulator, account A (number 12345) with a status callback receiver, account B."""
    receiver = await serve(aiohttp_server, Receiver())
    migrated.carriers[0].port = sim.port
    client = await aiohttp_client(create_app(migrated))
    a = await new_customer(client, sessionmaker, "alpha")
    b = await new_customer(client, sessionmaker, "beta", numbers=(("54321", "short_code"),))
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return {"client": client, "sm": sessionmaker, "a": a, "b": b, "hook": receiver.url,
            "hooks": receiver.requests}


async def send(g: dict, who, to: str, body: str) -> str:
    resp = await g["client"].post("/v1/messages", json={"to": to, "body": body, "status_callback": g["hook"]},
                                  headers=who.headers)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def quiet(g: dict, who) -> None:
    """Every message of the account final and every webhook delivered."""
    async def done() -> bool:
        async with g["sm"]() as session:
            busy = await session.scalar(select(func.count()).select_from(Message).where(
                Message.account_id == who.account_id, Message.status.in_(["queued", "sending", "sent"])))
            pending = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.account_id == who.account_id, WebhookDelivery.status == "pending"))
        return busy == 0 and pending == 0
    await wait_for(done, timeout=15)


async def test_purge_blanks_finished_bodies_and_keeps_the_counts(gateway):
    g, a, sm = gateway, gateway["a"], gateway["sm"]
    sent = [await send(g, a, PERSON, "your code is 1234"), await send(g, a, OTHER, "hello")]
    await g["client"].app[app_keys.INBOUND].on_inbound("sim", InboundSms(PERSON, "12345", "a private reply"))
    await quiet(g, a)
    async with sm() as session, session.begin():  # unfinished work, old: it keeps its body and payload
        waiting = old_message(a.account_id, OTHER, "queued", 100, next_attempt_at=utcnow() + dt.timedelta(days=9))
        call = VoiceMessage(public_id=new_voice_id(), account_id=a.account_id, source="12345", destination=PERSON,
                            script="your code is 1234", voice="en-us", status="completed", created_at=utcnow(),
                            updated_at=utcnow(), done_at=utcnow())
        session.add_all([waiting, call, old_delivery(a.account_id, "pending", 100, '{"to":"x"}')])
    since = (utcnow() - dt.timedelta(days=101)).isoformat().replace("+00:00", "Z")
    before = await (await g["client"].get(f"/v1/stats?from={since}", headers=a.headers)).json()
    assert before["totals"]["messages"] == 3 and before["totals"]["inbound"] == 1

    assert await retention.purge(sm, 90) == {}  # nothing of today is 90 days old
    later = utcnow() + dt.timedelta(days=91)
    blanked = await retention.purge(sm, 90, batch_size=1, now=later)  # one row a batch: the loop goes on
    assert blanked == {"messages": 2, "inbound_messages": 1, "voice_messages": 1,
                       "webhook_deliveries": len(g["hooks"])}
    assert len(g["hooks"]) >= 4  # queued, sent, delivered for each message (the status callback's events)
    async with sm() as session:
        bodies = dict((await session.execute(select(Message.public_id, Message.body)
                                             .where(Message.account_id == a.account_id))).all())
        payloads = (await session.scalars(select(WebhookDelivery.payload).order_by(WebhookDelivery.id))).all()
        inbound = (await session.scalars(select(InboundMessage.body))).all()
    assert [bodies[i] for i in sent] == ["", ""] and bodies[waiting.public_id] == "body to +14155550188"
    assert inbound == [""]
    assert payloads[:-1] == [""] * (len(payloads) - 1) and payloads[-1] == '{"to":"x"}'  # the pending one kept
    got = await (await g["client"].get(f"/v1/messages/{sent[0]}", headers=a.headers)).json()
    assert (got["status"], got["body"], got["segments"]) == ("delivered", "", 1)
    assert (await (await g["client"].get(f"/v1/voice-messages/{call.public_id}", headers=a.headers)).json())[
        "status"] == "completed"
    async with sm() as session:
        assert (await session.get(VoiceMessage, call.id)).script == ""
    # a purged webhook cannot be sent again: there is nothing left to send
    delivery = (await (await g["client"].get("/v1/webhooks/deliveries?status=delivered",
                                             headers=a.headers)).json())["deliveries"][0]
    resp = await g["client"].post(f"/v1/webhooks/deliveries/{delivery['id']}/replay", headers=a.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "payload_purged")
    after = await (await g["client"].get(f"/v1/stats?from={since}", headers=a.headers)).json()
    assert after["totals"] == before["totals"]
    assert await retention.purge(sm, 90, now=later) == {}  # done once: running again finds nothing


async def test_the_app_runs_the_purge_on_its_own(aiohttp_client, migrated, sessionmaker):
    migrated.retention.days, migrated.retention.interval_s = 1, 0.05
    async with sessionmaker() as session, session.begin():
        account, _ = await create_account(session, "acme")
        session.add_all([old_message(account.id, PERSON, "delivered", 2),
                         old_message(account.id, OTHER, "failed", 0.5)])
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))

    async def purged() -> bool:
        async with sessionmaker() as session:
            return (await session.scalars(select(Message.body).order_by(Message.id))).all() == ["", "body to " + OTHER]
    await wait_for(purged)
    assert client.app  # the app was running all along


async def test_erasing_a_person_removes_their_data_but_not_their_opt_out(gateway):
    g, a, b, sm, client = gateway, gateway["a"], gateway["b"], gateway["sm"], gateway["client"]
    mine = await send(g, a, PERSON, "your code is 1234")
    kept = await send(g, a, OTHER, "for someone else")
    theirs = await send(g, b, PERSON, "beta's own message")
    await client.app[app_keys.INBOUND].on_inbound("sim", InboundSms(PERSON, "12345", "STOP"))  # opt-out + reply
    await client.app[app_keys.INBOUND].on_inbound("sim", InboundSms(OTHER, "12345", "hi there"))
    await quiet(g, a)
    await quiet(g, b)
    async with sm() as session, session.begin():
        session.add(VoiceMessage(public_id=new_voice_id(), account_id=a.account_id, source="12345",
                                 destination=PERSON, script="your code is 1234", voice="en-us", status="completed",
                                 created_at=utcnow(), updated_at=utcnow(), done_at=utcnow()))
        about_person = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.account_id == a.account_id, WebhookDelivery.payload.contains(PERSON)))
    assert about_person >= 3

    resp = await client.delete("/v1/data?phone=%2B1%20415%20555%200166", headers=a.headers)  # any way of writing it
    assert resp.status == 200, await resp.text()
    got = await resp.json()
    assert got["phone"] == PERSON
    removed = got["removed"]
    assert (removed["messages"], removed["inbound_messages"], removed["voice_messages"]) == (2, 1, 1)  # + STOP reply
    assert removed["webhook_deliveries"] == about_person and removed["message_events"] >= 6
    assert got["kept"] == {"opt_outs": 1}
    async with sm() as session:
        left = set((await session.scalars(select(Message.public_id))).all())
        inbound_from = (await session.scalars(select(InboundMessage.source))).all()
        payloads = (await session.scalars(select(WebhookDelivery.payload).where(
            WebhookDelivery.account_id == a.account_id))).all()
        opt_out = await session.scalar(select(OptOut).where(OptOut.account_id == a.account_id, OptOut.phone == PERSON))
    assert mine not in left and kept in left and theirs in left  # B's data about the same person is B's own
    assert inbound_from == [OTHER]
    assert payloads and not [p for p in payloads if PERSON in p]
    assert opt_out is not None and opt_out.source == "keyword"
    # STOP is still honoured
    resp = await client.post("/v1/messages", json={"to": PERSON, "body": "again?"}, headers=a.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "recipient_opted_out")
    # the blocked attempt is a new row: erasing again removes it, and nothing else is left
    again = await (await client.delete(f"/v1/data?phone={PERSON.replace('+', '%2B')}", headers=a.headers)).json()
    assert again["removed"]["messages"] == 1 and again["removed"]["inbound_messages"] == 0
    # operators may erase for an account
    resp = await client.delete(f"/admin/accounts/{b.account_id}/data?phone=%2B14155550166", headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["removed"]["messages"] == 1


async def test_erasure_is_refused_while_a_message_is_handed_over_and_checks_its_input(gateway):
    g, a, sm, client = gateway, gateway["a"], gateway["sm"], gateway["client"]
    async with sm() as session, session.begin():
        session.add_all([old_message(a.account_id, PERSON, "delivered", 1),
                         old_message(a.account_id, PERSON, "sending", 0, claimed_by="another-instance",
                                     next_attempt_at=utcnow() + dt.timedelta(days=9))])
    resp = await client.delete("/v1/data?phone=%2B14155550166", headers=a.headers)
    body = await resp.json()
    assert (resp.status, body["error"]["code"], body["error"]["details"]) == (409, "messages_in_flight",
                                                                               {"messages": 1})
    async with sm() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2  # nothing removed
    for query, code in (("", "missing_parameter"), ("?phone=hello", "invalid_query"),
                        ("?phone=%2B1415&x=1", "unknown_query_parameter")):
        resp = await client.delete("/v1/data" + query, headers=a.headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, code), query
    assert g  # fixture used


@pytest.mark.postgres
async def test_purge_erasure_and_stats_on_postgresql(postgres_url):
    await upgrade(postgres_url)
    engine = create_engine(postgres_url)
    sm = create_sessionmaker(engine)
    try:
        async with sm() as session, session.begin():
            account, _ = await create_account(session, "acme")
            session.add(Number(number="12345", type="short_code", country="US", capabilities="sms",
                               status="active", account_id=account.id))
            session.add_all([old_message(account.id, PERSON, "delivered", 100, sent_at=utcnow(), carrier="sim"),
                             old_message(account.id, OTHER, "undelivered", 100, sent_at=utcnow(), carrier="sim"),
                             old_message(account.id, OTHER, "queued", 100,
                                         next_attempt_at=utcnow() + dt.timedelta(days=9)),
                             old_delivery(account.id, "delivered", 100, f'{{"to":"{PERSON}"}}'),
                             old_delivery(account.id, "failed", 100, f'{{"to":"{OTHER}"}}'),
                             InboundMessage(public_id="in_1", account_id=account.id, number="12345", source=PERSON,
                                            body="STOP", action="opt_out", carrier="sim",
                                            received_at=utcnow() - dt.timedelta(days=100)),
                             OptOut(account_id=account.id, phone=PERSON, source="keyword")])
        r = stats.Range(utcnow() - dt.timedelta(days=101), utcnow(), "day", "number")
        before = await stats.stats(sm, [account.id], r, PricingSettings())
        assert before["totals"]["messages"] == 3 and before["totals"]["opt_outs"] == 1
        assert before["totals"]["delivered_pct"] == 50.0 and before["totals"]["cost"] == pytest.approx(0.02)
        assert [row["key"] for row in before["rows"]] == ["12345"]
        hourly = await stats.stats(sm, None, stats.Range(utcnow() - dt.timedelta(days=100, hours=1),
                                                         utcnow() - dt.timedelta(days=99), "hour"), PricingSettings())
        # 25 hours, not starting on the hour: 26 buckets, the first and the last partial
        assert len(hourly["rows"]) == 26 and sum(row["messages"] for row in hourly["rows"]) == 3
        # two instances purging at once do the work once
        first, second = await asyncio.gather(retention.purge(sm, 90, batch_size=1), retention.purge(sm, 90))
        total = {k: first.get(k, 0) + second.get(k, 0) for k in {*first, *second}}
        assert total == {"messages": 2, "inbound_messages": 1, "webhook_deliveries": 2}
        assert (await stats.stats(sm, [account.id], r, PricingSettings()))["totals"] == before["totals"]
        async with sm() as session:
            assert await session.scalar(select(Message.body).where(Message.status == "queued")) != ""
        erased = await retention.erase(sm, account.id, PERSON)
        assert erased["removed"]["messages"] == 1 and erased["removed"]["inbound_messages"] == 1
        assert erased["removed"]["webhook_deliveries"] == 0  # its payload was purged already: nothing names them
        assert erased["kept"] == {"opt_outs": 1}
        async with sm() as session, session.begin():
            await session.execute(update(Message).where(Message.status == "queued").values(status="sending",
                                                                                        destination=PERSON))
        with pytest.raises(Exception, match="handed to a carrier"):
            await retention.erase(sm, account.id, PERSON)
    finally:
        await engine.dispose()
