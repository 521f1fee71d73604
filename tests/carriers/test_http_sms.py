"""The HTTP SMS carrier over real sockets: a local aiohttp server plays a JSON SMS provider (its answers, errors,
slowness) and a Kannel sendsms; what the carrier sends, what it makes of the answers, its concurrency limit."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse

import pytest
from aiohttp import web

from carriers import CarrierRejected, CarrierRetryable, OutboundSms, Segment
from carriers.encoding import encode
from carriers.http_sms import HttpSmsCarrier, JsonFields, ReportError, message_text, pointer

LONG = "Long message, more than one part: " + "abcdefghij" * 40  # 434 GSM-7 characters: 3 parts
UNICODE = "Grüße aus Köln — 東京でお会いしましょう 😀"


def sms(text: str, source: str = "+14155550100", destination: str = "+14155550123") -> OutboundSms:
    encoded = encode(text)
    return OutboundSms(source=source, destination=destination, data_coding=encoded.data_coding,
                       segments=tuple(Segment(p) for p in encoded.segments), reference=7)


class Provider:
    """A JSON SMS provider: records requests; answers as ``answer`` says; may hold requests until released."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answer: tuple[int, object] = (201, {"data": {"messages": [{"id": "prov-1"}]}})
        self.hold = False
        self.release = asyncio.Event()
        self.in_flight = self.most_in_flight = 0
        self.peers: set[tuple] = set()

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.peers.add(request.transport.get_extra_info("peername"))
        try:
            body = await request.json() if request.can_read_body else None
            self.requests.append({"method": request.method, "headers": dict(request.headers),
                                  "query": dict(request.query), "raw_query": request.query_string, "json": body})
            if self.hold:
                await self.release.wait()
            status, payload = self.answer
            if isinstance(payload, str):
                return web.Response(status=status, text=payload)
            return web.json_response(payload, status=status)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def provider(aiohttp_server):
    p = Provider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", p.handle)
    p.server = await aiohttp_server(app)
    return p


def json_carrier(provider: Provider, **kw) -> HttpSmsCarrier:
    fields = JsonFields(to="recipient", from_="sender", text="content", reference="client_ref",
                        callback="webhook", id_path="/data/messages/0/id")
    kw = {"fields": fields, "auth_header": "X-Api-Key", "auth_value": "k-secret",
          "callback_url": lambda: "http://gw.example/cb?token=t", **kw}
    return HttpSmsCarrier("cloud", "json", str(provider.server.make_url("/v2/sms")), **kw)


@pytest.fixture
async def carrier(provider):
    c = json_carrier(provider)
    await c.start()
    yield c
    await c.close()


async def test_json_profile_sends_configured_fields_and_reads_the_id(provider, carrier):
    result = await carrier.send_sms(sms(UNICODE))
    assert result.message_ids == ("prov-1",)
    [req] = provider.requests
    assert req["method"] == "POST" and req["headers"]["X-Api-Key"] == "k-secret"
    assert req["json"]["recipient"] == "+14155550123" and req["json"]["sender"] == "+14155550100"
    assert req["json"]["content"] == UNICODE  # whole, decoded from its UCS-2 parts
    assert req["json"]["webhook"] == "http://gw.example/cb?token=t"
    assert len(req["json"]["client_ref"]) == 32
    assert "k-secret" not in repr(carrier)


async def test_long_message_is_one_request_and_one_id(provider, carrier):
    message = sms(LONG)
    assert len(message.segments) == 3 and carrier.submit_count(message) == 1
    assert (await carrier.send_sms(message)).message_ids == ("prov-1",)
    assert provider.requests[0]["json"]["content"] == LONG


@pytest.mark.parametrize(("status", "payload", "kind", "code"), [
    (500, {"error": "boom"}, CarrierRetryable, "carrier_unavailable"),
    (503, "busy", CarrierRetryable, "throttled"),
    (429, {"error": "slow down"}, CarrierRetryable, "throttled"),
    (400, {"error": "bad number"}, CarrierRejected, "http_400"),
    (401, {"error": "bad key"}, CarrierRejected, "http_401"),
    (422, {"error": "invalid"}, CarrierRejected, "http_422"),
    (200, {"data": {}}, CarrierRejected, "bad_response"),  # taken, but no id where the config says
    (200, "not json", CarrierRejected, "bad_response"),
])
async def test_http_answers_map_to_carrier_outcomes(provider, carrier, status, payload, kind, code):
    provider.answer = (status, payload)
    with pytest.raises(kind) as err:
        await carrier.send_sms(sms("Hello"))
    assert err.value.code == code
    assert type(err.value) is kind


async def test_timeout_and_connection_errors_are_retryable(provider):
    provider.hold = True
    slow = json_carrier(provider, timeout_s=0.2)
    await slow.start()
    try:
        with pytest.raises(CarrierRetryable) as err:
            await slow.send_sms(sms("Hello"))
        assert err.value.code == "timeout"
    finally:
        provider.release.set()
        await slow.close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = HttpSmsCarrier("gone", "kannel", f"http://127.0.0.1:{port}/cgi-bin/sendsms", username="gw",
                          password="kannel-secret", callback_url=lambda: "http://gw.example/cb?token=signed-secret")
    await gone.start()
    try:
        with pytest.raises(CarrierRetryable) as err:
            await gone.send_sms(sms("Hello"))
        assert err.value.code == "carrier_unreachable"
        assert f"cannot connect to 127.0.0.1:{port}" in str(err.value)
        assert "secret" not in str(err.value)  # the URL (password, signed callback) is never in the message
    finally:
        await gone.close()


async def test_concurrency_limit_and_keep_alive(provider):
    provider.hold = True
    c = json_carrier(provider, concurrency=3)
    await c.start()
    try:
        sends = [asyncio.ensure_future(c.send_sms(sms(f"Hello {i}"))) for i in range(12)]
        for _ in range(500):
            if provider.in_flight == 3:
                break
            await asyncio.sleep(0.01)
        for _ in range(10):  # the others wait for a slot; none reaches the provider
            await asyncio.sleep(0.01)
            assert provider.in_flight == 3
        provider.release.set()
        results = await asyncio.gather(*sends)
    finally:
        await c.close()
    assert len(results) == 12 and len(provider.requests) == 12
    assert provider.most_in_flight == 3
    assert len(provider.peers) <= 3  # connections kept alive and reused, never one per message


async def test_too_many_parts_refused_before_sending(provider):
    c = json_carrier(provider, max_parts=2)
    await c.start()
    try:
        with pytest.raises(CarrierRejected) as err:
            await c.send_sms(sms(LONG))
        assert err.value.code == "too_many_parts"
    finally:
        await c.close()
    assert provider.requests == []


async def test_kannel_request(provider):
    provider.answer = (202, "0: Accepted for delivery")
    c = HttpSmsCarrier("kannel", "kannel", str(provider.server.make_url("/cgi-bin/sendsms")), username="gw",
                       password="pw", callback_url=lambda: "http://gw.example/callbacks/carriers/kannel/reports?token=t")
    await c.start()
    try:
        gsm = await c.send_sms(sms("Price: 10€ [ok]"))
        uni = await c.send_sms(sms(UNICODE))
    finally:
        await c.close()
    first, second = provider.requests
    assert first["method"] == second["method"] == "GET"
    assert (first["query"]["username"], first["query"]["password"]) == ("gw", "pw")
    assert (first["query"]["coding"], first["query"]["charset"], first["query"]["text"]) == ("0", "UTF-8",
                                                                                              "Price: 10€ [ok]")
    raw = urllib.parse.parse_qs(second["raw_query"], encoding="latin-1")  # the text is UTF-16BE bytes
    assert (second["query"]["coding"], second["query"]["charset"]) == ("2", "UTF-16BE")
    assert raw["text"][0].encode("latin-1").decode("utf-16-be") == UNICODE
    dlr = urllib.parse.urlsplit(first["query"]["dlr-url"])
    assert dlr.path == "/callbacks/carriers/kannel/reports"
    assert dict(urllib.parse.parse_qsl(dlr.query)) == {"token": "t", "ref": gsm.message_ids[0], "status": "%d",
                                                       "smsc_id": "%F", "answer": "%A"}
    assert first["query"]["dlr-mask"] == "19"
    assert gsm.message_ids != uni.message_ids
    await c.start()
    try:
        for status, kind in ((503, CarrierRetryable), (403, CarrierRejected)):  # overloaded; a wrong password
            provider.answer = (status, "Authorization failed for sendsms" if status == 403 else "Busy")
            with pytest.raises(kind):
                await c.send_sms(sms("Hello"))
    finally:
        await c.close()


class Sink:
    def __init__(self) -> None:
        self.receipts, self.inbound = [], []

    async def on_receipt(self, carrier, receipt):
        self.receipts.append((carrier, receipt))

    async def on_inbound(self, carrier, message):
        self.inbound.append((carrier, message))


async def test_reports_become_receipts():
    sink = Sink()
    kannel = HttpSmsCarrier("k", "kannel", "http://127.0.0.1:1/cgi-bin/sendsms")
    kannel.set_events(sink)
    answer = "id:0a1b sub:001 dlvrd:001 submit date:2611290100 done date:2611290100 stat:DELIVRD err:000 text:Hi"
    assert (await kannel.report({"ref": "abc", "status": "1", "smsc_id": "0a1b", "answer": answer})).stat == "DELIVRD"
    nack = kannel.read_report({"ref": "abc", "status": "16", "answer": "NACK/0x00000045/Submit failed"})
    assert (nack.stat, nack.error_code) == ("REJECTD", "0x00000045")
    assert kannel.read_report({"ref": "abc", "status": "34", "answer": ""}).stat == "EXPIRED"
    assert kannel.read_report({"ref": "abc", "status": "2", "answer": "stat:UNDELIV err:001"}).error_code == "001"
    with pytest.raises(ReportError):
        kannel.read_report({"status": "1"})
    with pytest.raises(ReportError):
        kannel.read_report({"ref": "abc", "status": "%d"})
    cloud = HttpSmsCarrier("c", "json", "http://127.0.0.1:1/sms", fields=JsonFields(
        report_id_path="/data/id", report_status_path="/data/state", report_error_path="/data/err",
        status_map={"DONE": "DELIVRD", "FAIL": "UNDELIV"}))
    cloud.set_events(sink)
    got = await cloud.report({"data": {"id": 42, "state": "FAIL", "err": 30007}})
    assert (got.carrier_message_id, got.stat, got.error_code) == ("42", "UNDELIV", "30007")
    assert await cloud.report({"data": {"id": 42, "state": "PROCESSING"}}) is None  # unknown: ignored
    assert [(c, r.stat) for c, r in sink.receipts] == [("k", "DELIVRD"), ("c", "UNDELIV")]
    with pytest.raises(ValueError):
        JsonFields(status_map={"ok": "GREAT"})


def test_pointer_and_text():
    doc = {"a": [{"b/c": 1, "d~e": 2}], "z": None}
    assert pointer(doc, "/a/0/b~1c") == 1 and pointer(doc, "/a/0/d~0e") == 2
    assert pointer(doc, "/a/5/x") is None and pointer(doc, "/z/y") is None and pointer(doc, "") is doc
    for text in ("Hello {world} €", UNICODE, LONG):
        assert message_text(sms(text)) == text
