"""Two-way messaging over real SMPP: keywords in every form, opt-outs (also of queued messages), replies from
the number written to, multipart inbound in any order, and forwarding to the customer's signed webhook."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import update

from carriers import InboundSms
from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from registry.models import Account
from tests.conftest import ADMIN, new_customer, wait_for

PERSON = "+14155550123"
NUMBER = "55501"
README = Path(__file__).resolve().parents[3] / "README.md"


class Receiver:
    def __init__(self) -> None:
        self.fail_until = 0
        self.requests: list[tuple[dict, bytes]] = []
        self.attempts = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        if self.attempts <= self.fail_until:
            return web.Response(status=503)
        self.requests.append((dict(request.headers), body))
        return web.Response(status=200)

    def bodies(self) -> list[dict]:
        return [json.loads(b) for _, b in self.requests]


@pytest.fixture
async def receiver(aiohttp_server):
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/inbound", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/inbound"))
    return rec


async def two_way_gateway(aiohttp_client, settings, sessionmaker, services: SimulatorServices, webhook_url: str):
    """The app on the simulator's SMPP port, with an account leasing NUMBER that forwards its inbound messages to
    ``webhook_url``; once bound."""
    settings.carriers[0].port = services.smpp_port
    settings.webhooks.poll_interval_ms = 50
    client = await aiohttp_client(create_app(settings))
    client.sim, client.sm = services.sim, sessionmaker
    client.customer = await new_customer(client, sessionmaker, "Acme", numbers=((NUMBER, "short_code"),))
    resp = await client.patch(f"/v1/numbers/{NUMBER}", json={"two_way_enabled": True,
                                                              "two_way_webhook_url": webhook_url},
                              headers=client.customer.headers)
    assert resp.status == 200, await resp.text()
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, receiver):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    migrated.webhooks.retry_base_s = 0.05
    client = await two_way_gateway(aiohttp_client, migrated, sessionmaker, services, receiver.url)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Account).where(Account.id == client.customer.account_id).values(
            program_name="Acme Alerts", support_contact="help@acme.example"))
    yield client
    await services.stop()


def replies_to(gw, person: str = PERSON) -> list:
    return [s for s in gw.sim.received if s.destination == person]


async def test_stop_opts_out_confirms_from_the_number_and_refuses_later_sends(gw):
    await gw.sim.inject_mo(PERSON, NUMBER, " Stop.")
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) == 1))
    confirmation = replies_to(gw)[0]
    assert confirmation.source == NUMBER and "Acme Alerts" in confirmation.text
    assert "no more messages" in confirmation.text
    resp = await gw.post("/v1/messages", json={"to": PERSON, "body": "promo"}, headers=gw.customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "recipient_opted_out")
    listing = await (await gw.get("/v1/opt-outs", headers=gw.customer.headers)).json()
    assert [(o["phone"], o["list"], o["source"]) for o in listing["opt_outs"]] == [(PERSON, "default", "keyword")]
    # START: back in, confirmed, sends allowed again
    await gw.sim.inject_mo(PERSON, NUMBER, "start")
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) == 2))
    assert "subscribed again" in replies_to(gw)[1].text
    await asyncio.sleep(1.0)  # 1 msg/s to one recipient
    resp = await gw.post("/v1/messages", json={"to": PERSON, "body": "welcome back"}, headers=gw.customer.headers)
    assert resp.status == 202


async def test_stop_while_messages_are_queued_blocks_them(gw):
    gw.sim.handler.throttle_all = True
    ids = []
    for i in range(3):
        resp = await gw.post("/v1/messages", json={"to": PERSON, "body": f"queued {i}"}, headers=gw.customer.headers)
        ids.append((await resp.json())["id"])
    await gw.sim.inject_mo(PERSON, NUMBER, "STOP please")
    await asyncio.sleep(0.3)
    gw.sim.handler.throttle_all = False
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) >= 1), timeout=8)
    await asyncio.sleep(0.5)
    statuses = {}
    for mid in ids:
        got = await (await gw.get(f"/v1/messages/{mid}", headers=gw.customer.headers)).json()
        statuses[mid] = (got["status"], got["error_code"])
    sent_texts = [s.text for s in replies_to(gw)]
    # whatever had not left yet is blocked, never sent; only the confirmation went out after the STOP
    for status, code in statuses.values():
        assert status in ("blocked", "delivered", "sent")
        if status == "blocked":
            assert code == "recipient_opted_out"
    assert sum(1 for s in statuses.values() if s[0] == "blocked") == sum(
        1 for i in range(3) if f"queued {i}" not in sent_texts)
    assert any("no more messages" in t for t in sent_texts)


@pytest.mark.parametrize("text", ["help", "HELP me", " Info?"])
async def test_help_reply(gw, text):
    await gw.sim.inject_mo(PERSON, NUMBER, text)
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) == 1))
    reply = replies_to(gw)[0].text
    for part in ("Acme Alerts", "help@acme.example", "Msg&data rates may apply", "STOP"):
        assert part in reply


async def test_help_and_stop_work_with_two_way_off_and_custom_replies(gw, receiver):
    resp = await gw.patch(f"/v1/numbers/{NUMBER}", json={"two_way_enabled": False,
                                                          "help_message": "Acme: call 555-0100. Reply STOP to end."},
                          headers=gw.customer.headers)
    assert resp.status == 200
    await gw.sim.inject_mo(PERSON, NUMBER, "HELP")
    await gw.sim.inject_mo("+14155550124", NUMBER, "hello there")
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) == 1))
    assert replies_to(gw)[0].text == "Acme: call 555-0100. Reply STOP to end."
    await asyncio.sleep(0.3)
    assert receiver.requests == []  # two-way off: nothing forwarded
    inbound = await (await gw.get("/v1/inbound", headers=gw.customer.headers)).json()
    assert {m["body"] for m in inbound["inbound"]} == {"HELP", "hello there"}  # but stored and listed


async def test_custom_keywords_through_the_api(gw):
    h = gw.customer.headers
    resp = await gw.put(f"/v1/numbers/{NUMBER}/keywords/hours", json={"action": "auto_response",
                                                                       "message": "Open 9-5, Mon-Fri"}, headers=h)
    assert resp.status == 200
    await gw.sim.inject_mo(PERSON, NUMBER, "Hours?")
    await wait_for(lambda: asyncio.sleep(0, len(replies_to(gw)) == 1))
    assert replies_to(gw)[0].text == "Open 9-5, Mon-Fri"
    for word, body, code in [("STOP", {"action": "opt_out"}, "reserved_keyword"),
                             ("two words", {"action": "opt_in"}, "invalid_keyword"),
                             ("x", {"action": "auto_response"}, "missing_message")]:
        resp = await gw.put(f"/v1/numbers/{NUMBER}/keywords/{word}", json=body, headers=h)
        assert (resp.status, (await resp.json())["error"]["code"]) == (422, code)
    for i in range(29):
        assert (await gw.put(f"/v1/numbers/{NUMBER}/keywords/K{i}", json={"action": "opt_in"}, headers=h)).status == 200
    resp = await gw.put(f"/v1/numbers/{NUMBER}/keywords/ONEMORE", json={"action": "opt_in"}, headers=h)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "too_many_keywords")
    resp = await gw.delete(f"/v1/numbers/{NUMBER}/keywords/stop", headers=h)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "reserved_keyword")
    assert (await gw.delete(f"/v1/numbers/{NUMBER}/keywords/hours", headers=h)).status == 200
    other = await new_customer(gw, gw.sm, "other", numbers=(("55599", "short_code"),))
    resp = await gw.get(f"/v1/numbers/{NUMBER}/keywords", headers=other.headers)
    assert resp.status == 404  # not its number


async def test_self_managed_opt_outs_only_forward(gw, receiver):
    await gw.patch(f"/v1/numbers/{NUMBER}", json={"self_managed_opt_outs": True}, headers=gw.customer.headers)
    await gw.sim.inject_mo(PERSON, NUMBER, "STOP")
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) == 1))
    assert receiver.bodies()[0]["keyword"] == "STOP"
    await asyncio.sleep(0.3)
    assert replies_to(gw) == []
    listing = await (await gw.get("/v1/opt-outs", headers=gw.customer.headers)).json()
    assert listing["opt_outs"] == []


async def test_forwarded_signed_with_in_reply_to_and_retried_until_the_receiver_recovers(gw, receiver):
    resp = await gw.post("/v1/messages", json={"to": PERSON, "body": "Your table is ready?"},
                         headers=gw.customer.headers)
    sent_id = (await resp.json())["id"]
    await wait_for(lambda: asyncio.sleep(0, len(gw.sim.received) == 1))
    receiver.fail_until = 3  # the customer's server is down for a while
    await gw.sim.inject_mo(PERSON, NUMBER, "Yes, coming")  # YES is an opt-in word
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) >= 1), timeout=10)
    body = receiver.bodies()[0]
    assert (body["from"], body["to"], body["body"], body["in_reply_to"]) == (PERSON, NUMBER, "Yes, coming", sent_id)
    assert body["keyword"] == "YES" and body["segments"] == 1 and body["received_at"]
    account = await (await gw.get("/v1/account", headers=gw.customer.headers)).json()
    headers, raw = receiver.requests[0]
    namespace: dict = {}
    exec(readme_verification_snippet(), namespace)  # the README's own code, run for real
    assert namespace["verify_signature"](account["webhook_secret"], headers["X-Gateway-Signature"], raw)
    assert not namespace["verify_signature"]("another secret", headers["X-Gateway-Signature"], raw)
    inbound: list[dict] = []

    async def recorded() -> bool:  # the receiver answers before the sender records the outcome
        listing = await (await gw.get("/v1/webhooks/deliveries?status=delivered", headers=gw.customer.headers)).json()
        inbound[:] = [d for d in listing["deliveries"] if d["kind"] == "inbound"]
        return bool(inbound)

    await wait_for(recorded)
    detail = await (await gw.get(f"/v1/webhooks/deliveries/{inbound[0]['id']}", headers=gw.customer.headers)).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [503, 503, 503, 200]


def readme_verification_snippet() -> str:
    text = README.read_text()
    match = re.search(r"```python\n(# verify-webhook\n.*?)```", text, re.DOTALL)
    assert match, "README must show how to verify a webhook signature"
    return match.group(1)


@pytest.mark.parametrize("order, repeat, reference, concatenation", [
    ("reverse", (), 7, "udh"), ("forward", (1, 2), 300, "udh"), ("reverse", (2,), 9, "sar")])
async def test_multipart_inbound_in_any_order(gw, receiver, order, repeat, reference, concatenation):
    text = "Hi! " + "Could you move my appointment to Friday afternoon please? " * 4
    parts = await gw.sim.inject_mo(PERSON, NUMBER, text, order=order, repeat=repeat, reference=reference,
                                   concatenation=concatenation)
    assert parts == 2
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) >= 1))
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1
    assert receiver.bodies()[0]["body"] == text and receiver.bodies()[0]["segments"] == 2


async def test_incomplete_multipart_is_handed_on_after_the_timeout(gw, receiver):
    await gw.sim.inject_mo(PERSON, NUMBER, "Part one. " * 20, drop=(2,), reference=11)
    await asyncio.sleep(0.3)
    assert receiver.requests == []
    inbound = gw.app[app_keys.INBOUND]
    handed = await inbound.flush_incomplete(now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    assert handed == 1
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) == 1))
    body = receiver.bodies()[0]
    assert body["complete"] is False and body["body"].startswith("Part one.")


async def test_a_part_numbered_beyond_its_total_completes_nothing(gw, receiver):
    inbound = gw.app[app_keys.INBOUND]
    part = dict(source=PERSON, destination=NUMBER, concat_ref=42, concat_total=2)
    await inbound.on_inbound("sim", InboundSms(text="Hello ", concat_seq=1, **part))
    await inbound.on_inbound("sim", InboundSms(text="junk", concat_seq=3, **part))  # no part of the set
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) == 1))
    assert [(b["body"], b["complete"]) for b in receiver.bodies()] == [("junk", True)]  # taken on its own
    await inbound.on_inbound("sim", InboundSms(text="world", concat_seq=2, **part))
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) == 2))
    assert [(b["body"], b["complete"]) for b in receiver.bodies()][1] == ("Hello world", True)


async def test_ucs2_and_latin1_inbound(gw, receiver):
    await gw.sim.inject_mo(PERSON, NUMBER, "Привет 👋")
    await gw.sim.inject_mo("+14155550124", NUMBER, "Café olé", data_coding=0x03)
    await wait_for(lambda: asyncio.sleep(0, len(receiver.requests) == 2))
    assert {b["body"] for b in receiver.bodies()} == {"Привет 👋", "Café olé"}


async def test_opt_out_lists_api_and_csv(gw):
    h = gw.customer.headers
    resp = await gw.post("/v1/opt-outs", json={"phone": "(415) 555-0177"}, headers=h)
    assert (resp.status, (await resp.json())["phone"]) == (201, "+14155550177")
    csv_text = "phone,list\n+14155550178,\n+14155550179,promo\nnot-a-number,\n+14155550177,\n"
    resp = await gw.post("/v1/opt-outs/import", data=csv_text, headers={**h, "Content-Type": "text/csv"})
    result = await resp.json()
    assert (result["added"], result["already_listed"], result["rejected"]) == (2, 1, 1)
    assert result["errors"][0]["line"] == 4
    export = await (await gw.get("/v1/opt-outs/export", headers=h)).text()
    assert export.splitlines()[0] == "phone,list,source,created_at" and len(export.splitlines()) == 4
    page = await (await gw.get("/v1/opt-outs?limit=2", headers=h)).json()
    assert len(page["opt_outs"]) == 2 and page["next"] and page["total"] == 3
    rest = await (await gw.get(f"/v1/opt-outs?limit=2&before={page['next']}", headers=h)).json()
    assert len(rest["opt_outs"]) == 1
    assert (await gw.delete("/v1/opt-outs/+14155550179?list=promo", headers=h)).status == 200
    assert (await gw.delete("/v1/opt-outs/+14155550179?list=promo", headers=h)).status == 404
    # the operator sees the same through the admin routes
    admin = await (await gw.get(f"/admin/accounts/{gw.customer.account_id}/opt-outs", headers=ADMIN)).json()
    assert admin["total"] == 2


async def test_unleased_destination_is_kept_unrouted(gw, receiver):
    await gw.sim.inject_mo(PERSON, "99999", "hello?")
    await asyncio.sleep(0.3)
    assert receiver.requests == [] and replies_to(gw) == []
    async with gw.sm() as session:
        from sqlalchemy import select

        from gateway.store.models import InboundMessage

        row = await session.scalar(select(InboundMessage).where(InboundMessage.number == "99999"))
    assert row is not None and row.account_id is None
