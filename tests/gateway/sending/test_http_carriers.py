"""HTTP SMS carriers in the gateway, over real sockets: built from [[carriers]] settings, their status reports
taken on signed callback URLs (refused without a valid token, idempotent when repeated) and applied as SMPP
receipts are; a JSON provider played by a local aiohttp server, and a real Kannel whose SMSC is our simulator."""

from __future__ import annotations

import logging
import time
import urllib.parse

import aiohttp
import pytest
from aiohttp import web

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.api.routes.carrier_callbacks import callback_url
from gateway.settings_routes import CarrierSettings
from tests.carriers.test_http_sms import LONG, UNICODE, Provider
from tests.conftest import ADMIN, new_customer, wait_for
from tests.kannel import PASSWORD, USERNAME, start_kannel, stop_kannel


@pytest.fixture
async def provider(aiohttp_server):
    p = Provider()
    p.answer = (200, {"message": {"sid": "SM-1"}})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", p.handle)
    p.server = await aiohttp_server(app)
    return p


async def _gateway(aiohttp_client, settings, carrier: CarrierSettings):
    settings.carriers = [carrier]
    client = await aiohttp_client(create_app(settings))
    settings.server.public_url = str(client.make_url(""))  # where carriers reach it (read when a URL is made)
    return client


async def _status(client, customer, mid: str, wanted: str, timeout: float = 10.0) -> dict:
    got: dict = {}

    async def reached() -> bool:
        nonlocal got
        got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return got["status"] == wanted

    try:
        await wait_for(reached, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"message {mid} is {got.get('status')}, not {wanted}: {got}") from None
    return got


async def _send(client, customer, to: str = "+14155550123", body: str = "Hello") -> str:
    resp = await client.post("/v1/messages", json={"to": to, "body": body}, headers=customer.headers)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_json_provider_report_delivers_and_repeats_change_nothing(aiohttp_client, migrated, sessionmaker,
                                                                         provider):
    client = await _gateway(aiohttp_client, migrated, CarrierSettings(
        name="cloud", type="http", profile="json", url=str(provider.server.make_url("/v1/sms")),
        auth_value="Bearer prov-key", to_field="To", from_field="From", text_field="Body",
        callback_field="StatusCallback", id_path="/message/sid", report_id_path="/MessageSid",
        report_status_path="/MessageStatus", report_error_path="/ErrorCode"))
    customer = await new_customer(client, sessionmaker, "acme")
    mid = await _send(client, customer, body=UNICODE)
    sent = await _status(client, customer, mid, "sent")
    [req] = provider.requests
    assert req["headers"]["Authorization"] == "Bearer prov-key"
    assert (req["json"]["To"], req["json"]["From"], req["json"]["Body"]) == ("+14155550123", "12345", UNICODE)
    assert (sent["carrier"], sent["carrier_message_id"]) == ("cloud", "SM-1")
    report_url = req["json"]["StatusCallback"]
    async with aiohttp.ClientSession() as http:  # the provider's status callback, a form POST as many send it
        async with http.post(report_url, data={"MessageSid": "SM-1", "MessageStatus": "sent"}) as resp:
            assert (resp.status, await resp.json()) == (200, {"ok": True, "applied": True})
        async with http.post(report_url, data={"MessageSid": "SM-1", "MessageStatus": "delivered"}) as resp:
            assert resp.status == 200
        got = await _status(client, customer, mid, "delivered")
        for status in ("delivered", "undelivered"):  # repeated, or late and contradicting: nothing changes
            async with http.post(report_url, json={"MessageSid": "SM-1", "MessageStatus": status}) as resp:
                assert resp.status == 200
        async with http.post(report_url, json={"MessageSid": "SM-1", "MessageStatus": "teleported"}) as resp:
            assert await resp.json() == {"ok": True, "applied": False}  # a status nobody mapped
        async with http.post(report_url, json={"MessageStatus": "delivered"}) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_report")
    again = (await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json())
    assert again["status"] == "delivered" and again["events"] == got["events"]
    assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]


async def test_callbacks_need_a_valid_token(aiohttp_client, migrated, sessionmaker, provider, caplog):
    caplog.set_level(logging.DEBUG)
    client = await _gateway(aiohttp_client, migrated, CarrierSettings(
        name="cloud", type="http", profile="json", url=str(provider.server.make_url("/v1/sms"))))
    secret = client.app[app_keys.CARRIER_CALLBACK_SECRET]
    later = int(time.time()) + 3600

    def path_of(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.path}?{parts.query}"

    good = path_of(callback_url("http://x", secret, "cloud", "reports", later))
    body = {"id": "nope", "status": "delivered"}
    assert (await client.post(good, json=body)).status == 200  # an id no message has: kept for later matching
    forged = [
        "/callbacks/carriers/cloud/reports",  # no token
        "/callbacks/carriers/cloud/reports?token=",
        good.replace("token=", "token=1"),  # another expiry than the one signed
        good[:-4] + "0000",  # another signature
        path_of(callback_url("http://x", "other-secret", "cloud", "reports", later)),
        path_of(callback_url("http://x", secret, "cloud", "inbound", later)).replace("/inbound", "/reports"),
        path_of(callback_url("http://x", secret, "cloud", "reports", int(time.time()) - 1)),  # expired
        path_of(callback_url("http://x", secret, "other", "reports", later)),  # no such carrier
        path_of(callback_url("http://x", secret, "other", "reports", later)).replace("/other/", "/cloud/"),
        "/callbacks/carriers/cloud/reports?token=1%C2%B9.%F1%BD",  # not ASCII
    ]
    for path in forged:
        resp = await client.post(path, json=body)
        assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_callback"), path
    resp = await client.get("/admin/carriers/cloud/callback-urls?days=30", headers=ADMIN)
    urls = await resp.json()
    assert resp.status == 200 and urls["expires_at"] > later
    assert (await client.post(path_of(urls["reports"]), json=body)).status == 200
    assert (await client.get("/admin/carriers/cloud/callback-urls")).status == 401
    assert (await client.get("/admin/carriers/sim/callback-urls", headers=ADMIN)).status == 404
    assert (await client.get("/admin/carriers/cloud/callback-urls?days=0", headers=ADMIN)).status == 422
    signatures = {urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["token"][0].split(".")[1]
                  for path in (good, path_of(urls["reports"]))}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/callbacks/carriers/cloud/reports" in logged  # the access log saw the callbacks ...
    assert not any(sig in logged for sig in signatures)  # ... but never a token


async def test_http_errors_retry_or_fail_the_message(aiohttp_client, migrated, sessionmaker, provider):
    client = await _gateway(aiohttp_client, migrated, CarrierSettings(
        name="cloud", type="http", profile="json", url=str(provider.server.make_url("/v1/sms")),
        id_path="/message/sid"))
    customer = await new_customer(client, sessionmaker, "acme")
    provider.answer = (503, {"error": "busy"})
    mid = await _send(client, customer)

    async def tried_twice() -> bool:
        return len(provider.requests) >= 2

    await wait_for(tried_twice)  # retried after the 503, not failed
    provider.answer = (200, {"message": {"sid": "SM-9"}})
    assert (await _status(client, customer, mid, "sent"))["carrier_message_id"] == "SM-9"
    provider.answer = (400, {"error": "invalid destination"})
    failed = await _status(client, customer, await _send(client, customer, to="+14155550124"), "failed")
    assert failed["error_code"] == "http_400"


# --- a real Kannel: gateway -> HTTP -> Kannel -> SMPP -> simulator, and back ------------------------------------

@pytest.fixture
def sim(kannel_smsc):
    return kannel_smsc


async def test_through_kannel_delivered_long_unicode_and_inbound(aiohttp_client, migrated, sessionmaker, sim,
                                                                  tmp_path):
    client = await _gateway(aiohttp_client, migrated, CarrierSettings(
        name="kannel", type="http", profile="kannel", url="http://127.0.0.1:1/cgi-bin/sendsms", username=USERNAME,
        password=PASSWORD))
    inbound = await (await client.get("/admin/carriers/kannel/callback-urls", headers=ADMIN)).json()
    kannel = await start_kannel(tmp_path / "kannel", sim.port, inbound_url=inbound["kannel_get_url"])
    try:
        client.app[app_keys.CARRIERS].carriers[0].url = kannel.sendsms_url
        customer = await new_customer(client, sessionmaker, "acme")
        ids = [await _send(client, customer, "+14155550123", "Hello via Kannel"),
               await _send(client, customer, "+14155550124", LONG),
               await _send(client, customer, "+14155550125", UNICODE)]
        try:
            for mid in ids:
                got = await _status(client, customer, mid, "delivered", timeout=30)
                assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{kannel.logs()}") from None
        by_destination: dict[str, list] = {}
        for sub in sim.received:
            by_destination.setdefault(sub.destination, []).append(sub)
        assert [s.text for s in by_destination["+14155550123"]] == ["Hello via Kannel"]
        long_parts = sorted(by_destination["+14155550124"], key=lambda s: s.concat[2])
        assert [s.concat[1:] for s in long_parts] == [(3, 1), (3, 2), (3, 3)]
        assert "".join(s.text for s in long_parts) == LONG
        assert [(s.text, s.data_coding) for s in by_destination["+14155550125"]] == [(UNICODE, 8)]
        assert {s.source for s in sim.received} == {"12345"}
        # inbound: simulator -> SMPP -> Kannel -> its sms-service get-url -> the gateway's inbox
        await sim.inject_mo("+14155550199", "12345", "Hello back")
        await sim.inject_mo("+14155550198", "12345", UNICODE)

        async def arrived() -> bool:
            resp = await client.get("/v1/inbound", headers=customer.headers)
            got = sorted((m["from"], m["to"], m["body"]) for m in (await resp.json())["inbound"])
            return got == [("+14155550198", "12345", UNICODE), ("+14155550199", "12345", "Hello back")]

        try:
            await wait_for(arrived, timeout=20)
        except AssertionError:
            raise AssertionError(f"no inbound message\n{kannel.logs()}") from None
    finally:
        stop_kannel(kannel)


# --- the simulator's HTTP face: both profiles end to end, its counts showing each message taken once -----------

async def test_both_profiles_through_the_embedded_simulators_http_face(aiohttp_client, migrated, sessionmaker):
    migrated.simulator.embedded = True
    migrated.simulator.sms_http_port = 0  # any free port: carriers naming port 0 follow the one it got
    migrated.simulator.receipt_delay_ms = 20
    migrated.carriers = [
        CarrierSettings(name="kannel", type="http", profile="kannel", url="http://127.0.0.1:0/cgi-bin/sendsms",
                        username="gateway", password="secret"),
        CarrierSettings(name="cloud", type="http", profile="json", url="http://127.0.0.1:0/json/messages",
                        auth_value="Bearer secret")]
    client = await aiohttp_client(create_app(migrated))
    migrated.server.public_url = str(client.make_url(""))  # where the simulator reports to
    services = client.app[app_keys.SIMULATOR]
    assert {c.url for c in client.app[app_keys.CARRIERS].carriers} == {
        f"{services.http_face.url}/cgi-bin/sendsms", f"{services.http_face.url}/json/messages"}
    customer = await new_customer(client, sessionmaker, "acme")
    bodies = ["Hello", LONG, UNICODE]
    sent = {f"+1415555{i:04d}": bodies[i % 3] for i in range(12)}
    ids = [await _send(client, customer, to, body) for to, body in sent.items()]
    taken_by = set()
    for mid in ids:
        got = await _status(client, customer, mid, "delivered")
        assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]
        taken_by.add(got["carrier"])
    assert taken_by == {"kannel", "cloud"}  # the two carriers took turns
    assert {s.destination: s.text for s in services.sim.received} == sent  # each once, whole
    assert services.sim.stats["receipts"] == len(sent) and not services.sim.refusals
