"""The kannel profile against a real Kannel whose SMSC is our SMPP simulator: carrier -> HTTP -> Kannel -> SMPP ->
simulator, and the receipt back simulator -> Kannel -> dlr-url -> a local receiver -> the carrier's report()."""

from __future__ import annotations

import pytest
from aiohttp import web

from carriers.http_sms import HttpSmsCarrier
from tests.carriers.test_http_sms import LONG, UNICODE, Sink, sms
from tests.conftest import wait_for
from tests.kannel import PASSWORD, USERNAME, start_kannel, stop_kannel


@pytest.fixture
def sim(kannel_smsc):
    return kannel_smsc


@pytest.fixture
async def kannel(tmp_path, sim):
    k = await start_kannel(tmp_path / "kannel", sim.port)
    yield k
    stop_kannel(k)


@pytest.fixture
async def carrier(aiohttp_server, kannel):
    sink = Sink()
    reports: list[dict] = []

    async def dlr(request: web.Request) -> web.Response:
        assert request.query["token"] == "t0k"
        reports.append(dict(request.query))
        await c.report(request.query)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/dlr", dlr)
    server = await aiohttp_server(app)
    c = HttpSmsCarrier("kannel", "kannel", kannel.sendsms_url, username=USERNAME, password=PASSWORD,
                       callback_url=lambda: str(server.make_url("/dlr")) + "?token=t0k", max_parts=11)
    c.set_events(sink)
    c.sink, c.reports, c.kannel = sink, reports, kannel
    await c.start()
    yield c
    await c.close()


async def _receipts(carrier, count: int) -> None:
    async def arrived() -> bool:
        return len(carrier.sink.receipts) >= count

    try:
        await wait_for(arrived, timeout=20)
    except AssertionError:
        raise AssertionError(f"receipts: {carrier.sink.receipts}\n{carrier.kannel.logs()}") from None


async def test_sms_through_kannel_and_its_receipt(carrier, sim):
    result = await carrier.send_sms(sms("Hello through Kannel {ok}"))
    await _receipts(carrier, 1)
    [(name, receipt)] = carrier.sink.receipts
    assert (name, receipt.carrier_message_id, receipt.stat) == ("kannel", result.message_ids[0], "DELIVRD")
    [sub] = sim.received
    assert (sub.text, sub.destination, sub.source) == ("Hello through Kannel {ok}", "+14155550123", "+14155550100")
    assert carrier.reports[0]["smsc_id"] == sub.message_id


async def test_long_and_unicode_messages_arrive_intact(carrier, sim):
    await carrier.send_sms(sms(LONG, destination="+14155550124"))
    await carrier.send_sms(sms(UNICODE, destination="+14155550125"))
    await _receipts(carrier, 2)  # Kannel asks a receipt for the first part of a long message only
    long_parts = sorted((s for s in sim.received if s.destination == "+14155550124"), key=lambda s: s.concat[2])
    assert [s.concat[1:] for s in long_parts] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(s.text for s in long_parts) == LONG
    [uni] = [s for s in sim.received if s.destination == "+14155550125"]
    assert (uni.text, uni.data_coding) == (UNICODE, 8)
    assert {r.stat for _, r in carrier.sink.receipts} == {"DELIVRD"}


async def test_undelivered_receipt(carrier, sim):
    sim.handler.outcomes_by_destination = {"+14155550126": "UNDELIV"}
    result = await carrier.send_sms(sms("Nobody home", destination="+14155550126"))
    await _receipts(carrier, 1)
    [(_, receipt)] = carrier.sink.receipts
    assert (receipt.carrier_message_id, receipt.stat) == (result.message_ids[0], "UNDELIV")


async def test_smsc_refusal_comes_back_as_rejected(carrier, sim):
    sim.handler.fail = {"+14155550127": 0x0B}  # ESME_RINVDSTADR: Kannel's SMSC refuses, Kannel reports a NACK
    result = await carrier.send_sms(sms("Wrong number", destination="+14155550127"))
    await _receipts(carrier, 1)
    [(_, receipt)] = carrier.sink.receipts
    assert (receipt.carrier_message_id, receipt.stat) == (result.message_ids[0], "REJECTD")
    assert receipt.error_code is not None and int(receipt.error_code, 16) == 0x0B, receipt
