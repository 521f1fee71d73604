"""The operator console (/console) over real HTTP on the real app (SQLite, a loopback carrier): signing in with
the operator token into a session cookie, CSRF on every form, message search and timeline, webhook replay.
Which routes need a session at all is checked route by route in test_authz."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from carriers.loopback import LoopbackCarrier
from gateway.api.app import create_app
from gateway.console.session import COOKIE, Sessions
from gateway.store.models import WebhookDelivery
from tests.conftest import ADMIN, OPERATOR_TOKEN, new_customer, wait_for
from tests.gateway.webhooks.test_webhook_delivery import _receiver

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def console(aiohttp_client, migrated, sessionmaker):
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.sessionmaker = sessionmaker
    return client


async def sign_in(client, token: str = OPERATOR_TOKEN) -> str:
    """Sign in; the CSRF token of the session (from the dashboard's sign-out form)."""
    resp = await client.post("/console/sign-in", data={"token": token, "next": "/console"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get("/console")
    assert page.status == 200
    return CSRF.search(await page.text()).group(1)


async def test_sign_in_sets_a_strict_http_only_cookie_and_a_wrong_token_is_refused(console, caplog):
    caplog.set_level(logging.DEBUG)
    resp = await console.get("/console/messages?phone=%2B1", allow_redirects=False)
    location = urlsplit(resp.headers["Location"])
    assert (resp.status, location.path) == (303, "/console/sign-in")
    assert parse_qs(location.query) == {"next": ["/console/messages?phone=%2B1"]}
    for wrong in ("", OPERATOR_TOKEN[:-1], OPERATOR_TOKEN + "x", "gk_not_a_key"):
        resp = await console.post("/console/sign-in", data={"token": wrong}, allow_redirects=False)
        assert resp.status == 401
        assert "not the operator token" in await resp.text()
        assert COOKIE not in resp.cookies
    assert (await console.get("/console", allow_redirects=False)).status == 303

    resp = await console.post("/console/sign-in", data={"token": OPERATOR_TOKEN, "next": "/console/messages"},
                              allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/console/messages")
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    assert int(cookie["max-age"]) > 0
    assert OPERATOR_TOKEN not in cookie.value
    page = await console.get("/console")
    assert page.status == 200 and "Dashboard" in await page.text()
    assert "Content-Security-Policy" in page.headers and page.headers["X-Frame-Options"] == "DENY"
    # an open redirect is no target
    resp = await console.post("/console/sign-in", data={"token": OPERATOR_TOKEN, "next": "//evil.example/"},
                              allow_redirects=False)
    assert resp.headers["Location"] == "/console"
    assert not any(OPERATOR_TOKEN in r.getMessage() for r in caplog.records)


async def test_a_forged_or_expired_session_is_no_session(console):
    await sign_in(console)
    value = console.session.cookie_jar.filter_cookies(console.make_url("/console"))[COOKIE].value
    expires, nonce, signature = value.split(".")
    console.session.cookie_jar.clear()
    assert (await console.get("/console", headers={"Cookie": f"{COOKIE}={value}"}, allow_redirects=False)).status == 200
    for forged in (f"{int(expires) + 3600}.{nonce}.{signature}", f"{expires}.{nonce}x.{signature}",
                   f"{expires}.{nonce}.{'0' * 64}", "garbage", ""):
        resp = await console.get("/console", headers={"Cookie": f"{COOKIE}={forged}"}, allow_redirects=False)
        assert resp.status == 303, forged
    now = [1000.0]
    sessions = Sessions(OPERATOR_TOKEN, lifetime_s=60, clock=lambda: now[0])
    cookie = sessions.start()
    assert sessions.nonce(cookie) is not None
    assert Sessions("another token").nonce(cookie) is None  # a new operator token ends every session
    now[0] += 61
    assert sessions.nonce(cookie) is None


async def test_forms_need_the_sessions_csrf_token(console):
    csrf = await sign_in(console)
    for data, headers in (({}, {}), ({"csrf": "wrong"}, {}), ({"csrf": csrf + "x"}, {}),
                          ({"csrf": csrf}, {"Origin": "http://evil.example"})):
        resp = await console.post("/console/sign-out", data=data, headers=headers, allow_redirects=False)
        assert resp.status == 403, (data, headers)
        assert "reload the page" in await resp.text()
    assert (await console.get("/console", allow_redirects=False)).status == 200  # still signed in
    # another session's token is no good either
    other = Sessions(OPERATOR_TOKEN)
    other_csrf = other.csrf(other.nonce(other.start()))
    assert (await console.post("/console/sign-out", data={"csrf": other_csrf}, allow_redirects=False)).status == 403
    cookie = console.session.cookie_jar.filter_cookies(console.make_url("/console"))[COOKIE].value
    resp = await console.post("/console/sign-out", data={"csrf": csrf}, headers={"Origin": str(console.make_url(""))},
                              allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/console/sign-in")
    assert (await console.get("/console", allow_redirects=False)).status == 303
    # the cookie, kept by someone, opens nothing after signing out
    console.session.cookie_jar.clear()
    assert (await console.get("/console", headers={"Cookie": f"{COOKIE}={cookie}"},
                              allow_redirects=False)).status == 303


@pytest.fixture
async def receiver(aiohttp_server):
    return await _receiver(aiohttp_server)


async def test_search_finds_a_message_and_its_timeline(console, receiver):
    customer = await new_customer(console, console.sessionmaker, "acme")
    other = await new_customer(console, console.sessionmaker, "other", numbers=(("54321", "short_code"),))
    sent = []
    for who, to in ((customer, "+14155550101"), (other, "+14155550102")):
        resp = await console.post("/v1/messages", headers=who.headers, json={
            "to": to, "body": "hello console", "status_callback": receiver.url})
        assert resp.status == 202
        sent.append((await resp.json())["id"])

    async def delivered() -> bool:
        for who, msg_id in zip((customer, other), sent):
            got = await (await console.get(f"/v1/messages/{msg_id}", headers=who.headers)).json()
            if got["status"] != "delivered":
                return False
        return True

    await wait_for(delivered)
    await sign_in(console)
    page = await (await console.get("/console/messages", params={"phone": "+14155550101"})).text()
    assert sent[0] in page and sent[1] not in page and "acme" in page
    page = await (await console.get("/console/messages", params={"account": "other", "status": "delivered"})).text()
    assert sent[1] in page and sent[0] not in page
    page = await (await console.get("/console/messages", params={"status": "failed"})).text()
    assert "No message matches" in page
    page = await (await console.get("/console/messages", params={"until": "2000-01-01T00:00"})).text()
    assert sent[0] not in page and sent[1] not in page
    resp = await console.get("/console/messages", params={"since": "yesterday"})
    assert resp.status == 400 and "date and time" in await resp.text()

    await wait_for(lambda: _all_delivered(console.sessionmaker, 2))
    page = await (await console.get(f"/console/messages/{sent[0]}")).text()
    assert 'id="status" class="status delivered"' in page
    assert "TEXT_DELIVERED" in page and "DELIVRD" in page  # its events, its part's receipt
    assert receiver.url in page  # its webhook, attempted
    assert (await console.get("/console/messages/msg_nothing")).status == 404
    dashboard = await (await console.get("/console")).text()
    assert "<svg" in dashboard and "sim" in dashboard


async def _all_delivered(sessionmaker, count: int) -> bool:
    async with sessionmaker() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    return len(rows) >= count and all(d.status == "delivered" for d in rows)


async def test_replay_sends_a_delivery_again(console, receiver):
    customer = await new_customer(console, console.sessionmaker, "acme")
    resp = await console.post("/v1/messages", headers=customer.headers, json={
        "to": "+14155550101", "body": "replay me", "status_callback": receiver.url})
    assert resp.status == 202
    async def settled() -> bool:
        return (any(e["event_type"] == "TEXT_DELIVERED" for _, e in receiver.events())
                and await _all_delivered(console.sessionmaker, 1))

    await wait_for(settled)
    async with console.sessionmaker() as session:
        delivery = (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).first()
    before = len(receiver.events())
    csrf = await sign_in(console)
    page = await (await console.get("/console/webhooks", params={"status": "delivered"})).text()
    assert f'action="/console/webhooks/{delivery.public_id}/replay"' in page
    resp = await console.post(f"/console/webhooks/{delivery.public_id}/replay", allow_redirects=False)
    assert resp.status == 403  # no CSRF token
    resp = await console.post(f"/console/webhooks/{delivery.public_id}/replay", data={"csrf": csrf},
                              allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, f"/console/webhooks?replayed={delivery.public_id}")

    async def sent_again() -> bool:
        return len(receiver.events()) > before and await _all_delivered(console.sessionmaker, 1)

    await wait_for(sent_again)
    assert receiver.events()[-1] == (delivery.public_id, json.loads(delivery.payload))  # the same payload again
    async with console.sessionmaker() as session:
        again = await session.get(WebhookDelivery, delivery.id)
    assert again.attempts == delivery.attempts + 1
    resp = await console.post("/console/webhooks/wh_nothing/replay", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 404


async def test_registry_pages_show_states_and_history(console):
    customer = await new_customer(console, console.sessionmaker, "acme", numbers=(("+14155550190", "long_code"),))
    await sign_in(console)
    page = await (await console.get("/console/numbers")).text()
    assert "+14155550190" in page and "acme" in page
    page = await (await console.get("/console/numbers", params={"type": "short_code"})).text()
    assert "+14155550190" not in page
    assert (await console.get("/console/numbers/%2B14155550190")).status == 200
    assert (await console.get("/console/numbers/%2B19995550000")).status == 404
    for path in ("/console/brands", "/console/campaigns", "/console/carriers", "/console/opt-outs",
                 "/console/webhooks"):
        assert (await console.get(path)).status == 200, path
    resp = await console.post("/v1/opt-outs", headers=customer.headers, json={"phone": "+14155550177"})
    assert resp.status == 201
    page = await (await console.get("/console/opt-outs", params={"account": "acme"})).text()
    assert "+14155550177" in page
    page = await (await console.get("/console/carriers")).text()
    assert 'class="state ready">ready' in page
    resp = await console.post("/admin/brands", headers=ADMIN, json={
        "account_id": customer.account_id, "legal_name": "Acme Brand Inc", "ein": "123456789",
        "entity_type": "PRIVATE_PROFIT", "vertical": "RETAIL", "website": "https://acme.example",
        "contact_email": "ops@acme.example", "contact_phone": "+14155550100"})
    brand = await resp.json()
    assert resp.status == 201, brand  # registered with the registry simulator, which scores it soon after

    async def scored() -> bool:
        return (await (await console.get(f"/admin/brands/{brand['id']}", headers=ADMIN)).json())["status"] == "complete"

    await wait_for(scored)
    page = await (await console.get(f"/console/brands/{brand['id']}")).text()
    # its state and who changed it: the operator registered it, the registry's event verified it
    assert "Acme Brand Inc" in page and "VERIFIED" in page and "operator" in page and "registry event" in page
