"""The simulator's HTTP face over real sockets, driven by the HTTP SMS carrier itself in both profiles: what it
takes (counted with the SMPP side's messages), how it answers (Kannel's words and statuses, the JSON API's), and
the status reports it calls back after the receipt delay, read by the carrier as receipts."""

from __future__ import annotations

import asyncio
import time
import urllib.parse

import aiohttp
import pytest
from aiohttp import web
from smpplib import consts

from carriers import CarrierRejected, CarrierRetryable
from carriers.http_sms import HttpSmsCarrier
from carriers.simulator import SimulatorServices
from carriers.simulator.http_face import JSON_MESSAGES, SENDSMS, fill_dlr_url
from tests.carriers.test_http_sms import LONG, UNICODE, sms
from tests.carriers.test_smpp import Sink
from tests.conftest import wait_for


class Reports:
    """The gateway's side of the callbacks: every report handed to the carrier, as the gateway's route does."""

    def __init__(self) -> None:
        self.carrier: HttpSmsCarrier | None = None
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        data = dict(request.query)
        if request.can_read_body:
            data |= await request.json()
        self.requests.append({"method": request.method, "data": data, "at": time.time()})
        assert self.carrier is not None
        await self.carrier.report(data)
        return web.json_response({"ok": True})


@pytest.fixture
async def services():
    s = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.05, sms_http_port=0)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def reports(aiohttp_server):
    r = Reports()
    app = web.Application()
    app.router.add_route("*", "/reports", r.handle)
    r.server = await aiohttp_server(app)
    return r


async def _carrier(services, reports, profile: str, **kw) -> tuple[HttpSmsCarrier, Sink]:
    face = services.http_face.url
    url = face + (SENDSMS if profile == "kannel" else JSON_MESSAGES)
    callback = str(reports.server.make_url("/reports")) + "?token=t"
    kw = ({"username": "gateway", "password": "secret"} if profile == "kannel" else {"auth_value": "Bearer secret"}
          ) | kw
    carrier = HttpSmsCarrier("face", profile, url, callback_url=lambda: callback, **kw)
    sink = Sink()
    carrier.set_events(sink)
    reports.carrier = carrier
    await carrier.start()
    return carrier, sink


@pytest.mark.parametrize("profile", ["kannel", "json"])
async def test_both_profiles_deliver_and_report_after_the_receipt_delay(services, reports, profile):
    carrier, sink = await _carrier(services, reports, profile)
    try:
        sent = {}
        for text, to in (("Hello", "+14155550123"), (LONG, "+14155550124"), (UNICODE, "+14155550125")):
            sent[to] = (await carrier.send_sms(sms(text, destination=to))).message_ids[0]
        received = {s.destination: s for s in services.sim.received}
        assert {to: (s.text, s.source) for to, s in received.items()} == {
            "+14155550123": ("Hello", "+14155550100"), "+14155550124": (LONG, "+14155550100"),
            "+14155550125": (UNICODE, "+14155550100")}
        assert received["+14155550125"].data_coding == consts.SMPP_ENCODING_ISO10646
        assert received["+14155550123"].data_coding == consts.SMPP_ENCODING_DEFAULT
        await wait_for(lambda: asyncio.sleep(0, len(sink.receipts) == 3))
        # each receipt names the message the carrier knows: its own reference (kannel) or the provider's id (json)
        assert sorted(r.carrier_message_id for r in sink.receipts) == sorted(sent.values())
        assert {r.stat for r in sink.receipts} == {"DELIVRD"}
        if profile == "json":
            assert set(sent.values()) == {s.message_id for s in services.sim.received}
            assert all(r["method"] == "POST" for r in reports.requests)
        else:  # the dlr-url's placeholders were filled: status, the SMSC's id, its receipt text
            ids = {r["data"]["smsc_id"] for r in reports.requests}
            assert ids == {s.message_id for s in services.sim.received}
            assert all(r["data"]["status"] == "1" and "stat:DELIVRD" in r["data"]["answer"] for r in reports.requests)
        # no report before the receipt delay: each came at least 50 ms after the face took its message
        taken = {s.message_id: s.received_at for s in services.sim.received}
        key = "smsc_id" if profile == "kannel" else "id"
        assert all(r["at"] - taken[r["data"][key]] >= 0.05 for r in reports.requests)
        assert services.sim.stats["receipts"] == 3
        async with aiohttp.ClientSession() as http:  # counted with the SMPP side's messages
            base = f"http://127.0.0.1:{services.http_port}"
            counts = await (await http.get(base + "/counts")).json()
            messages = await (await http.get(base + "/messages")).json()
        assert counts["accepted"] == {to: 1 for to in sent}
        assert sorted(m["destination"] for m in messages) == sorted(sent)
    finally:
        await carrier.close()


@pytest.mark.parametrize("profile", ["kannel", "json"])
async def test_answers_map_to_the_carrier_outcomes(services, reports, profile):
    bad, _ = await _carrier(services, reports, profile,
                            **({"password": "wrong"} if profile == "kannel" else {"auth_value": "Bearer wrong"}))
    carrier, sink = await _carrier(services, reports, profile)  # the one the reports go to
    sim = services.sim
    try:
        with pytest.raises(CarrierRejected) as err:  # a wrong password: refused, never retried
            await bad.send_sms(sms("Hello"))
        assert err.value.code == ("http_403" if profile == "kannel" else "http_401")
        sim.handler.throttle_all = True  # slow down: Kannel's overload 503, the JSON API's 429
        with pytest.raises(CarrierRetryable) as err:
            await carrier.send_sms(sms("Hello"))
        assert err.value.code == "throttled"
        sim.handler.throttle_all = False
        await sim.stop()  # the carrier is down: retry later
        with pytest.raises(CarrierRetryable):
            await carrier.send_sms(sms("Hello"))
        await sim.start()
        sim.handler.fail = {"+14155550199": consts.SMPP_ESME_RINVDSTADR}
        if profile == "kannel":  # Kannel takes it, then reports the SMSC's refusal (dlr status 16)
            reference = (await carrier.send_sms(sms("Hello", destination="+14155550199"))).message_ids[0]
            await wait_for(lambda: asyncio.sleep(0, len(sink.receipts) == 1))
            assert (sink.receipts[0].carrier_message_id, sink.receipts[0].stat) == (reference, "REJECTD")
            assert sink.receipts[0].error_code == "0x0000000B"
        else:  # the JSON API refuses it at once
            with pytest.raises(CarrierRejected) as err:
                await carrier.send_sms(sms("Hello", destination="+14155550199"))
            assert err.value.code == "http_400"
        sim.handler.outcomes_by_destination = {"+14155550123": "UNDELIV"}
        sent = (await carrier.send_sms(sms("Hello"))).message_ids[0]
        await wait_for(lambda: asyncio.sleep(0, any(r.carrier_message_id == sent for r in sink.receipts)))
        assert [r.stat for r in sink.receipts if r.carrier_message_id == sent] == ["UNDELIV"]
        assert sim.stats["throttled"] == 1 and len(sim.received) == 1
    finally:
        await carrier.close()
        await bad.close()


async def test_sendsms_refuses_what_kannel_refuses(services):
    url = services.http_face.url + SENDSMS
    good = {"username": "gateway", "password": "secret", "from": "12345", "to": "+14155550123", "text": "hi"}
    async with aiohttp.ClientSession() as http:
        for query, status, words in (
                ({**good, "password": "nope"}, 403, "Authorization failed for sendsms"),
                ({k: v for k, v in good.items() if k != "to"}, 400, "Missing receiver number"),
                ({k: v for k, v in good.items() if k != "text"}, 400, "Missing text"),
                ({**good, "coding": "7"}, 400, "Coding"),
                ({**good, "dlr-mask": "x", "dlr-url": "http://x/"}, 400, "dlr-mask"),
                (good, 202, "0: Accepted for delivery")):
            async with http.get(url + "?" + urllib.parse.urlencode(query)) as resp:
                assert (resp.status, words in await resp.text()) == (status, True), query
        # UTF-16BE bytes in the query, read raw (a UTF-8 reading of the query would break them)
        text = "Grüße 東京"
        query = urllib.parse.urlencode({**good, "text": text.encode("utf-16-be"), "coding": "2"})
        async with http.get(f"{url}?{query}") as resp:
            assert resp.status == 202
        async with http.post(services.http_face.url + JSON_MESSAGES, data=b"[]",
                             headers={"Authorization": "Bearer secret"}) as resp:
            assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_json")
    assert [(s.text, s.data_coding) for s in services.sim.received] == [("hi", 0), (text, 8)]
    assert services.sim.received[1].registered_delivery == 0  # no dlr-url: no receipt asked


def test_dlr_url_placeholders_are_filled_url_encoded():
    url = "http://gw/cb?token=1.ab&ref=r1&status=%d&smsc_id=%F&answer=%A&to=%p&pct=100%%&keep=%2B&x=%Z"
    filled = fill_dlr_url(url, {"d": "1", "F": "1A2B", "A": "id:1A2B stat:DELIVRD", "p": "+14155550123"})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(filled).query)
    assert (query["status"], query["smsc_id"], query["answer"], query["to"]) == (
        ["1"], ["1A2B"], ["id:1A2B stat:DELIVRD"], ["+14155550123"])
    assert filled.endswith("&pct=100%&keep=%2B&x=%Z")  # %% is one %, unknown ones stay
