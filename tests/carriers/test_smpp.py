"""The SMPP stack over real TCP on loopback: the simulator tested with smpplib's own blocking Client, and the
gateway's asyncio client and carrier tested against the simulator."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
from smpplib import consts

from carriers import CarrierRejected, CarrierRetryable, OutboundSms, Segment
from carriers.encoding import encode
from carriers.simulator import SmscSimulator
from carriers.smpp import SmppCarrier, SmppClient, _pdu as P, address
from carriers.smpp.receipts import parse_receipt, parse_receipt_text
from tests.conftest import wait_for


@pytest.fixture
async def sim():
    simulator = SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await simulator.start()
    yield simulator
    await simulator.stop()


class Sink:
    def __init__(self) -> None:
        self.receipts, self.inbound = [], []

    async def on_receipt(self, carrier, receipt):
        self.receipts.append(receipt)

    async def on_inbound(self, carrier, message):
        self.inbound.append(message)


def sms(text: str, reference: int = 7, source: str = "12345", destination: str = "+14155550123") -> OutboundSms:
    e = encode(text)
    return OutboundSms(source, destination, e.data_coding, tuple(Segment(s) for s in e.segments), reference)


# --- the simulator, driven by smpplib's own blocking Client ---------------------------------------------------

def _smpplib_flow(port: int) -> tuple[str, list]:
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    seen: list = []
    client.set_message_received_handler(lambda pdu: seen.append(pdu))
    client.connect()
    client.bind_transceiver(system_id="gateway", password="secret")
    client.send_message(source_addr_ton=smpplib.consts.SMPP_TON_INTL, source_addr="14155550100",
                        dest_addr_ton=smpplib.consts.SMPP_TON_INTL, destination_addr="14155550123",
                        short_message=b"hello from smpplib", registered_delivery=1)
    resp = client.read_pdu()
    message_id = resp.message_id.decode()
    while not seen:
        client.read_once()
    client.unbind()
    client.disconnect()
    return message_id, seen


async def test_smpplib_client_submits_and_gets_its_receipt(sim):
    message_id, seen = await asyncio.to_thread(_smpplib_flow, sim.port)
    assert message_id and sim.received[0].text == "hello from smpplib"
    assert sim.received[0].destination == "+14155550123"
    receipt = seen[0]
    assert receipt.command == "deliver_sm" and receipt.esm_class == 0x04
    assert receipt.receipted_message_id.decode() == message_id
    assert receipt.message_state == 2
    assert f"id:{message_id}".encode() in receipt.short_message and b"stat:DELIVRD" in receipt.short_message
    await wait_for(lambda: _true(sim.stats["unbind"] == 1))


async def _true(value: bool) -> bool:
    return value


def _smpplib_burst(port: int, n: int) -> list:
    """``n`` submits written back to back (smpplib does not wait for their answers), then read until each has its
    answer and its receipt."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    receipts: list = []
    client.set_message_received_handler(lambda pdu: receipts.append(pdu))
    client.set_message_sent_handler(lambda pdu, **_: None)
    client.connect()
    client.bind_transceiver(system_id="gateway", password="secret")
    for i in range(n):
        client.send_message(source_addr_ton=smpplib.consts.SMPP_TON_INTL, source_addr="14155550100",
                            dest_addr_ton=smpplib.consts.SMPP_TON_INTL, destination_addr=f"1415555{i:04d}",
                            short_message=b"burst", registered_delivery=1)
    while len(receipts) < n:
        client.read_once()
    client.unbind()
    client.disconnect()
    return receipts


def test_the_simulator_on_uvloop_sends_every_receipt_of_a_burst():
    """`gatewayctl simulator` runs on uvloop, where a timer set for a time already past is a plain Handle (no
    ``when()``): with receipts due at once, a burst of submits used to end the connection with an AttributeError
    (found by tests/gateway/test_faults.py, which runs the simulator as a process)."""
    import uvloop

    async def scenario() -> list:
        simulator = SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.0)
        await simulator.start()
        try:
            return await asyncio.to_thread(_smpplib_burst, simulator.port, 20)
        finally:
            await simulator.stop()

    receipts = uvloop.run(scenario())
    assert len(receipts) == 20 and all(r.command == "deliver_sm" and r.esm_class == 0x04 for r in receipts)


def _smpplib_bad_password(port: int) -> int:
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    try:
        client.bind_transceiver(system_id="gateway", password="wrong")
    except smpplib.exceptions.PDUError as exc:
        return exc.args[1]
    finally:
        client.disconnect()
    return 0


async def test_smpplib_client_with_a_wrong_password_is_refused(sim):
    assert await asyncio.to_thread(_smpplib_bad_password, sim.port) == consts.SMPP_ESME_RINVPASWD


def _smpplib_multipart(port: int, text: str) -> tuple[list[tuple[int, str]], list]:
    """smpplib's own split of a long text (8-bit UDH, its own reference) submitted on a transmitter, a refused
    part submitted again as it was; the receipts read on a receiver bound beside it."""
    import smpplib.gsm

    receiver = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    seen: list = []
    receiver.set_message_received_handler(lambda pdu: seen.append(pdu))
    receiver.connect()
    receiver.bind_receiver(system_id="gateway", password="secret")
    sender = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    sender.connect()
    sender.bind_transmitter(system_id="gateway", password="secret")
    parts, coding, esm_class = smpplib.gsm.make_parts(text)
    answers: list[tuple[int, str]] = []
    for part in [*parts, parts[2]]:  # the third part once more: the simulator refuses it the first time
        sender.send_message(source_addr_ton=smpplib.consts.SMPP_TON_INTL, source_addr="14155550100",
                            dest_addr_ton=smpplib.consts.SMPP_TON_INTL, destination_addr="14155550123",
                            short_message=part, data_coding=coding, esm_class=esm_class, registered_delivery=1)
        resp = sender.read_pdu()
        answers.append((resp.status, resp.message_id.decode() if resp.status == 0 else ""))
    while len(seen) < 3:
        receiver.read_once()
    for client in (sender, receiver):
        client.unbind()
        client.disconnect()
    return answers, seen


async def test_smpplib_multipart_meets_every_nth_part_and_receipts_in_another_base(sim):
    """The scenarios issue #12 added to the simulator (every_nth_part, receipt_id_format, receipt_err), met by a
    peer nobody here wrote: its refusal is that part's alone, each accepted part is stored once with smpplib's
    UDH reference and numbers, and the receipts quote the ids in decimal with the chosen err."""
    sim.handler.every_nth_part, sim.handler.nth_part_status = 3, consts.SMPP_ESME_RMSGQFUL
    sim.receipt_id_format, sim.handler.outcome, sim.handler.receipt_err = "decimal", "UNDELIV", "034"
    answers, seen = await asyncio.to_thread(_smpplib_multipart, sim.port, "Part of a long text. " * 20)
    assert [status for status, _ in answers] == [0, 0, consts.SMPP_ESME_RMSGQFUL, 0]
    assert [r for _, r in sim.refusals] == [consts.SMPP_ESME_RMSGQFUL]
    concat = [s.concat for s in sim.received]
    assert len({ref for ref, _, _ in concat}) == 1 and [(total, seq) for _, total, seq in concat] == \
        [(3, 1), (3, 2), (3, 3)]
    ids = [message_id for status, message_id in answers if status == 0]
    assert [s.message_id for s in sim.received] == ids
    decimal = {str(int(i, 16)) for i in ids}
    assert {r.receipted_message_id.decode() for r in seen} == decimal
    for receipt in seen:
        assert receipt.command == "deliver_sm" and receipt.message_state == 5  # UNDELIVERABLE
        assert b"stat:UNDELIV err:034" in receipt.short_message
        assert f"id:{receipt.receipted_message_id.decode()} ".encode() in receipt.short_message


# --- the gateway's asyncio client ----------------------------------------------------------------------------

async def test_window_of_many_submits_in_flight(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", window=50)
    await client.start()
    assert client.bound
    fields = dict(source_addr_ton=3, source_addr="12345", dest_addr_ton=1, dest_addr_npi=1,
                  destination_addr="14155550123", short_message=b"x")
    ids = await asyncio.gather(*(client.submit_sm(**fields) for _ in range(200)))
    assert len(set(ids)) == 200 and len(sim.received) == 200
    await client.close()


async def test_window_bounds_submits_in_flight_in_order_and_a_cancelled_waiter_gives_way(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", window=2)
    await client.start()
    sim.handler.response_delay = 0.2
    fields = dict(source_addr_ton=3, source_addr="12345", dest_addr_ton=1, dest_addr_npi=1,
                  destination_addr="14155550123")
    sends = [asyncio.create_task(client.submit_sm(**fields, short_message=str(i).encode())) for i in range(5)]
    await wait_for(lambda: _true(len(sim.received) == 2))
    await asyncio.sleep(0.05)
    assert len(sim.received) == 2  # the window is full: the other three wait
    sends[2].cancel()  # a waiter gone: the slot goes to the next one
    ids = await asyncio.gather(*sends[:2], *sends[3:])
    assert len(set(ids)) == 4 and sends[2].cancelled()
    assert [pdu.short_message for pdu in sim.received] == [b"0", b"1", b"3", b"4"]  # in arrival order
    await client.close()


async def _true(value: bool) -> bool:
    return value


async def test_submit_before_bind_is_refused_by_the_simulator(sim):
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(P.build("submit_sm", 1, source_addr="1", destination_addr="2", short_message=b"x"))
    raw = await P.read_frame(reader)
    assert P.header(raw)[2] == consts.SMPP_ESME_RINVBNDSTS
    writer.close()


async def test_enquire_link_both_ways(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", enquire_link_interval=0.05)
    await client.start()
    await wait_for(lambda: _true(sim.stats["enquire_link"] >= 3))
    # the SMSC asks too: the client answers
    protocol = next(iter(sim.connections))
    seq = protocol.next_seq()
    got = asyncio.get_running_loop().create_future()
    original = protocol.on_response
    protocol.on_response = (lambda cid, status, s:
                            got.set_result((cid, status, s)) if s == seq else original(cid, status, s))
    protocol.send(P.build("enquire_link", seq))
    cid, status, _ = await asyncio.wait_for(got, 2)
    assert cid == 0x80000015 and status == 0
    assert client.bound
    await client.close()


async def test_reconnects_after_the_simulator_drops_the_connection(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", reconnect_min=0.02, reconnect_max=0.1)
    await client.start()
    assert client.binds == 1
    sim.disconnect()
    await wait_for(lambda: _true(client.binds == 2 and client.bound))
    message_id = await client.submit_sm(source_addr="12345", destination_addr="14155550123", short_message=b"again")
    assert message_id == sim.received[-1].message_id
    await client.close()


async def test_in_flight_submits_fail_retryably_when_the_connection_drops(sim):
    sim.handler.response_delay = 1.0
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", reconnect_min=0.05)
    await client.start()
    pending = asyncio.create_task(client.submit_sm(source_addr="1", destination_addr="2", short_message=b"x"))
    await wait_for(lambda: _true(len(sim.received) == 1))
    sim.disconnect()
    with pytest.raises(CarrierRetryable) as err:
        await pending
    assert err.value.code == "connection_lost"
    await client.close()


async def test_clean_unbind_on_close(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret")
    await client.start()
    await client.close()
    assert sim.stats["unbind"] == 1 and not client.bound


async def test_the_peers_unbind_is_answered_and_the_client_binds_again(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", reconnect_min=0.02)
    await client.start()
    protocol = next(iter(sim.connections))
    seq = protocol.next_seq()
    answered = asyncio.get_running_loop().create_future()
    protocol.on_response = lambda cid, status, s: answered.done() or answered.set_result(cid)
    protocol.send(P.build("unbind", seq))
    assert await asyncio.wait_for(answered, 2) == 0x80000006
    await wait_for(lambda: _true(client.binds == 2 and client.bound))
    await client.close()


async def test_a_full_delivery_window_throttles_deliveries_and_reading_goes_on(sim, monkeypatch):
    """deliver_sm are handled at once up to DELIVER_WINDOW per connection; one beyond it is answered ESME_RTHROTTLED
    (the SMSC sends it again), and reading never stops: with the window full, a submit_sm still gets its answer,
    the client's enquire_link its answer and the SMSC's enquire_link ours. Each message is handled once."""
    import carriers.smpp.client as client_module

    monkeypatch.setattr(client_module, "DELIVER_WINDOW", 3)
    release = asyncio.Event()
    busy: list[int] = []
    handled: list[str] = []
    most = 0

    async def handle(pdu):
        nonlocal most
        busy.append(1)
        most = max(most, len(busy))
        handled.append(P.text(pdu.short_message))
        await release.wait()
        busy.pop()
        return consts.SMPP_ESME_ROK

    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", on_deliver_sm=handle, response_timeout=30)
    await client.start()
    for i in range(10):
        await sim.inject_mo("+14155550123", "12345", f"m{i}")
    await wait_for(lambda: _true(len(busy) == 3 and sim.stats["deliveries_throttled"] >= 7))
    assert client.deliveries_throttled >= 7
    # the window is full and its deliveries unanswered: answers still come through
    message_id = await client.submit_sm(source_addr="12345", destination_addr="14155550123", short_message=b"x")
    assert message_id == sim.received[-1].message_id
    await client._tx.request("enquire_link", 30)
    protocol = next(iter(sim.connections))
    seq = protocol.next_seq()
    answered = asyncio.get_running_loop().create_future()
    original = protocol.on_response
    protocol.on_response = (lambda cid, status, s:
                            answered.set_result(cid) if s == seq else original(cid, status, s))
    protocol.send(P.build("enquire_link", seq))
    assert await asyncio.wait_for(answered, 30) == 0x80000015
    assert (len(busy), most) == (3, 3) and sim.stats["acknowledged"] == 0
    release.set()
    await wait_for(lambda: _true(sim.stats["acknowledged"] == 10), timeout=30)
    assert most == 3 and not busy and client.binds == 1
    assert sorted(handled) == [f"m{i}" for i in range(10)]  # a throttled one was handled when it came again, once
    await client.close()


def _smpplib_throttling_receiver(port: int, throttle: int) -> list[bytes]:
    """A receiver bound with smpplib's blocking Client that answers the first ``throttle`` deliver_sm
    ESME_RTHROTTLED; returns the texts of the deliver_sm it read, in order."""
    receiver = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    seen: list[bytes] = []

    def on_message(pdu):
        seen.append(pdu.short_message)
        return consts.SMPP_ESME_RTHROTTLED if len(seen) <= throttle else consts.SMPP_ESME_ROK

    receiver.set_message_received_handler(on_message)
    receiver.connect()
    receiver.bind_receiver(system_id="gateway", password="secret")
    while len(seen) < throttle + 1:
        receiver.read_once()
    receiver.unbind()
    receiver.disconnect()
    return seen


async def test_the_simulator_sends_a_throttled_delivery_again_without_counting_an_attempt(sim):
    """ESME_RTHROTTLED in a deliver_sm_resp means "slow down", not "failed": the simulator (like an SMSC that keeps
    the message) sends it again, also beyond the five attempts a refused one gets, until it is taken."""
    await sim.inject_mo("+14155550123", "12345", "try me")
    seen = await asyncio.to_thread(_smpplib_throttling_receiver, sim.port, 7)
    assert seen == [b"try me"] * 8
    assert (sim.stats["deliveries_throttled"], sim.stats["acknowledged"]) == (7, 1)
    assert sim.stats["receipts_refused"] == 0


async def test_a_lost_connections_deliveries_end_with_it_and_come_again_on_the_next(sim, monkeypatch):
    """The handlers of deliver_sm in hand when the connection drops are ended (their answer can no longer reach
    the SMSC, which sends those messages again on the next bind): only the next connection's handlers remain,
    and each message is handled to the end once."""
    import carriers.smpp.client as client_module

    monkeypatch.setattr(client_module, "DELIVER_WINDOW", 3)
    release = asyncio.Event()
    started, ended, cancelled = [], [], []

    async def handle(pdu):
        started.append(pdu.short_message)
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(pdu.short_message)
            raise
        ended.append(pdu.short_message)
        return consts.SMPP_ESME_ROK

    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret", on_deliver_sm=handle, reconnect_min=0.02)
    await client.start()
    for i in range(3):
        await sim.inject_mo("+14155550123", "12345", f"m{i}")
    await wait_for(lambda: _true(len(started) == 3))
    sim.disconnect()
    await wait_for(lambda: _true(client.binds == 2 and len(started) == 6))  # sent again on the new bind
    assert sorted(cancelled) == [b"m0", b"m1", b"m2"]
    release.set()
    await wait_for(lambda: _true(sim.stats["acknowledged"] == 3))
    assert sorted(ended) == [b"m0", b"m1", b"m2"]
    await client.close()


async def test_throttled_and_rejected(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "secret")
    await client.start()
    sim.handler.throttle_all = True
    with pytest.raises(CarrierRetryable) as err:
        await client.submit_sm(source_addr="1", destination_addr="14155550123", short_message=b"x")
    assert (err.value.code, err.value.command_status) == ("throttled", 0x58)
    sim.handler.throttle_all = False
    sim.handler.fail = {"+14155550199": consts.SMPP_ESME_RINVDSTADR}
    with pytest.raises(CarrierRejected) as rejected:
        await client.submit_sm(source_addr="1", dest_addr_ton=1, destination_addr="14155550199", short_message=b"x")
    assert rejected.value.command_status == consts.SMPP_ESME_RINVDSTADR
    await client.close()


async def test_bind_refused_is_reported_and_retried(sim):
    client = SmppClient("127.0.0.1", sim.port, "gateway", "nope", reconnect_min=0.02, reconnect_max=0.05)
    await client.start()
    assert not client.bound and "bind_failed" not in (client.last_error or "x")
    assert "0x0e" in (client.last_error or "")
    await wait_for(lambda: _true(sim.stats["bind_refused"] >= 2))
    await client.close()


async def test_password_never_in_repr():
    client = SmppClient("127.0.0.1", 1, "gateway", "topsecret")
    assert "topsecret" not in repr(client)


# --- the carrier ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bind_mode", ["transceiver", "transmitter_receiver"])
async def test_carrier_multipart_udh_and_receipts(sim, bind_mode):
    carrier = SmppCarrier("sim", "127.0.0.1", sim.port, "gateway", "secret", bind_mode=bind_mode)
    sink = Sink()
    carrier.set_events(sink)
    await carrier.start()
    result = await carrier.send_sms(sms("y" * 400, reference=9))
    assert len(result.message_ids) == 3
    got = sorted(sim.received, key=lambda s: s.concat[2])
    assert [s.concat for s in got] == [(9, 3, 1), (9, 3, 2), (9, 3, 3)]
    assert all(s.esm_class == 0x40 for s in got)
    assert got[0].short_message[:6] == bytes((5, 0, 3, 9, 3, 1))
    assert "".join(s.text for s in got) == "y" * 400
    await wait_for(lambda: _true(len(sink.receipts) == 3))
    assert {r.carrier_message_id for r in sink.receipts} == set(result.message_ids)
    assert {r.stat for r in sink.receipts} == {"DELIVRD"}
    await carrier.close()


async def test_carrier_sixteen_bit_reference_sar_and_payload(sim):
    carrier = SmppCarrier("sim", "127.0.0.1", sim.port, "gateway", "secret")
    carrier.set_events(Sink())
    await carrier.start()
    await carrier.send_sms(sms("z" * 200, reference=0x1234))
    assert sim.received[0].short_message[:5] == bytes((6, 8, 4, 0x12, 0x34))
    carrier.concatenation = "sar"
    await carrier.send_sms(sms("z" * 200, reference=5))
    assert sorted(s.concat for s in sim.received[2:]) == [(5, 2, 1), (5, 2, 2)]
    assert all(s.esm_class == 0 for s in sim.received[2:])
    carrier.concatenation = "payload"
    result = await carrier.send_sms(sms("é" * 300))
    assert len(result.message_ids) == 1 and sim.received[-1].text == "é" * 300
    await carrier.close()


async def test_carrier_delivers_inbound_messages(sim):
    carrier = SmppCarrier("sim", "127.0.0.1", sim.port, "gateway", "secret")
    sink = Sink()
    carrier.set_events(sink)
    await carrier.start()
    await sim.inject_mo("+14155550123", "12345", "Stop please")
    await sim.inject_mo("+14155550123", "12345", "Привет " * 18)  # UCS-2, two parts
    await wait_for(lambda: _true(len(sink.inbound) == 3))
    first = sink.inbound[0]
    assert (first.source, first.destination, first.text) == ("+14155550123", "12345", "Stop please")
    parts = sorted(sink.inbound[1:], key=lambda m: m.concat_seq)
    assert [p.concat_total for p in parts] == [2, 2] and parts[0].data_coding == 8
    assert "".join(p.text for p in parts) == "Привет " * 18
    await carrier.close()


async def test_receipts_queued_until_a_receiver_binds(sim):
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)  # a transmitter-only bind
    writer.write(P.build("bind_transmitter", 1, system_id="gateway", password="secret", system_type="",
                         interface_version=0x34, addr_ton=0, addr_npi=0, address_range=""))
    assert P.header(await P.read_frame(reader))[2] == 0
    writer.write(P.build("submit_sm", 2, source_addr="1", destination_addr="2", short_message=b"x",
                         registered_delivery=1))
    resp = P.parse(await P.read_frame(reader))
    await wait_for(lambda: _true(sim.stats["queued_for_receiver"] == 1))
    carrier = SmppCarrier("sim", "127.0.0.1", sim.port, "gateway", "secret")
    sink = Sink()
    carrier.set_events(sink)
    await carrier.start()
    await wait_for(lambda: _true(len(sink.receipts) == 1))
    assert sink.receipts[0].carrier_message_id == P.text(resp.message_id)
    writer.close()
    await carrier.close()


def test_addresses():
    assert address("+14155550123") == (1, 1, "14155550123")
    assert address("12345") == (3, 0, "12345")
    assert address("ACME") == (5, 0, "ACME")


# --- receipts ------------------------------------------------------------------------------------------------

def test_receipt_text_forms():
    f = parse_receipt_text("id:0A1B2C sub:001 dlvrd:001 submit date:2611221200 done date:2611221201 stat:DELIVRD "
                           "err:000 text:Hello world")
    assert (f["id"], f["stat"], f["err"], f["text"]) == ("0A1B2C", "DELIVRD", "000", "Hello world")
    f = parse_receipt_text("ID:77 SUB:001 DLVRD:000 SUBMIT DATE:261122120000 DONE DATE:261122120159 STAT:UNDELIV")
    assert (f["id"], f["stat"], f["done date"]) == ("77", "UNDELIV", "261122120159")


class _Pdu:
    def __init__(self, **kw):
        self.__dict__.update(dict(esm_class=4, data_coding=0, short_message=b"", message_payload=None,
                                  receipted_message_id=None, message_state=None), **kw)


def test_receipt_tlvs_win_over_text():
    r = parse_receipt(_Pdu(short_message=b"id:1 stat:UNDELIV", receipted_message_id=b"abc", message_state=2))
    assert (r.carrier_message_id, r.stat) == ("abc", "DELIVRD")
    r = parse_receipt(_Pdu(short_message=b"id:00FF sub:001 dlvrd:000 stat:REJECTD err:045 done date:2611221201"))
    assert (r.carrier_message_id, r.stat, r.error_code) == ("00FF", "REJECTD", "045")
    assert r.done_at.minute == 1
    assert parse_receipt(_Pdu(short_message=b"no id here")) is None


# --- hostile bytes -------------------------------------------------------------------------------------------

async def test_garbage_gets_generic_nack_or_a_clean_close_and_others_keep_working(sim):
    good = SmppClient("127.0.0.1", sim.port, "gateway", "secret")
    await good.start()
    # an unknown command id: generic_nack
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(struct.pack(">LLLL", 16, 0x00000999, 0, 42))
    raw = await asyncio.wait_for(P.read_frame(reader), 2)
    assert P.header(raw)[1] == 0x80000000 and P.header(raw)[3] == 42
    # an absurd length: the connection is closed
    writer.write(struct.pack(">L", 3) + b"\x00" * 12)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    # random bytes on a raw socket
    with socket.create_connection(("127.0.0.1", sim.port)) as s:
        s.sendall(bytes(range(256)) * 4)
    assert await good.submit_sm(source_addr="1", destination_addr="2", short_message=b"still fine")
    await good.close()


def test_fast_submit_sm_resp_reading_agrees_with_smpplib():
    for message_id in ("A1B2C3", "0", "x" * 64):
        raw = P.build("submit_sm_resp", 3, message_id=message_id)
        assert P.submit_sm_resp_id(raw) == P.text(P.parse(raw).message_id) == message_id
    with pytest.raises(ValueError):
        P.submit_sm_resp_id(struct.pack(">LLLL", 16, 0x80000004, 0, 3))
