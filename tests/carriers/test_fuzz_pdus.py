"""Hostile input over real TCP, property-based: random bytes, valid headers with garbage bodies, absurd lengths,
unknown command ids, truncated frames, valid PDUs with corrupted fields and TLVs, PDUs out of state.

Both ends are attacked: the SMSC simulator (then smpplib's own blocking client must still be served), and the
gateway's SMPP client through SmppCarrier (a tiny hostile SMSC binds it, then sends garbage; the carrier must
answer or reconnect, and submit afterwards). Every request frame must get exactly one answer with its sequence
number (generic_nack, or the command's own *_resp), responses none; a framing error ends in a clean close.
No exception may reach the event loop's exception handler and no connection task may linger.

Hypothesis drives sync test functions; each example runs on one asyncio loop per module (``Loop``), whose
exception handler records what reaches it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import struct
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import pytest
import smpplib.client
import smpplib.consts
from hypothesis import HealthCheck, given, settings, strategies as st
from smpplib import command_codes, consts as smpp_consts

from carriers import OutboundSms, Segment
from carriers.encoding import encode
from carriers.simulator import SmscSimulator
from carriers.smpp import SmppCarrier, _pdu as P

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None, database=None,
                derandomize=IN_CI, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG = 10.0  # seconds after which a step counts as hung (a safety net, not a timing assertion)

COMMANDS: dict[str, int] = dict(command_codes.commands)
KNOWN_IDS = set(COMMANDS.values())
GENERIC_NACK = COMMANDS["generic_nack"]
ENQUIRE_LINK, ENQUIRE_LINK_RESP = COMMANDS["enquire_link"], COMMANDS["enquire_link_resp"]
UNBIND, DELIVER_SM = COMMANDS["unbind"], COMMANDS["deliver_sm"]
PROBE_SEQ = 0x7FFFFFFF  # the sequence number of the enquire_link that closes every attack
BIND_RESPS = {COMMANDS["bind_transmitter_resp"]: "tx", COMMANDS["bind_receiver_resp"]: "rx",
              COMMANDS["bind_transceiver_resp"]: "trx"}


# --- the loop the examples run on --------------------------------------------------------------------------------

class Loop:
    """One asyncio loop for a module's examples; its exception handler records every error that reaches it."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.errors: list[dict[str, Any]] = []
        self.runner.get_loop().set_exception_handler(lambda loop, context: self.errors.append(context))

    def run(self, coro: Awaitable[Any], timeout: float = HANG) -> Any:
        return self.runner.run(asyncio.wait_for(coro, timeout))

    def assert_no_errors(self, generation: int = 1) -> None:
        gc.collect(generation)  # "Task exception was never retrieved" is reported when the task is collected
        self.runner.run(asyncio.sleep(0))
        errors, self.errors[:] = list(self.errors), []  # each example answers for its own
        assert not errors, [c.get("message") or repr(c.get("exception")) for c in errors]

    def close(self) -> None:
        self.runner.close()


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


# --- hostile frames ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """A whole PDU as sent: its header says its true length."""

    command_id: int
    seq: int
    raw: bytes

    @property
    def is_request(self) -> bool:
        return not self.command_id & 0x80000000


def frame(command_id: int, seq: int, body: bytes, status: int = 0) -> Frame:
    return Frame(command_id, seq, struct.pack(">LLLL", 16 + len(body), command_id, status, seq) + body)


def _reframe(raw: bytes, body: bytes) -> bytes:
    length, command_id, status, seq = P.header(raw)
    return struct.pack(">LLLL", 16 + len(body), command_id, status, seq) + body


TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("bind_transceiver", dict(system_id="gateway", password="wrong", system_type="", interface_version=0x34,
                              addr_ton=0, addr_npi=0, address_range="")),
    ("bind_receiver", dict(system_id="nobody", password="secret", interface_version=0x34)),
    ("bind_transmitter", dict(system_id="gateway", password="secret", interface_version=0x34)),
    ("submit_sm", dict(source_addr_ton=1, source_addr="14155550100", dest_addr_ton=1, destination_addr="14155550123",
                       short_message=b"\x05\x00\x03\x07\x02\x01hello", esm_class=0x40, registered_delivery=1)),
    ("submit_sm", dict(source_addr="12345", destination_addr="14155550123", data_coding=0x08,
                       short_message="h\u00e9llo".encode("utf-16-be"), sar_msg_ref_num=9, sar_total_segments=2,
                       sar_segment_seqnum=1)),
    ("submit_sm", dict(source_addr="12345", destination_addr="14155550123", short_message=b"",
                       message_payload=b"a payload")),
    ("deliver_sm", dict(source_addr="14155550123", destination_addr="12345", esm_class=0x04,
                        short_message=b"id:1A2B sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
                                      b"stat:DELIVRD err:000 text:hi", receipted_message_id="1A2B", message_state=2)),
    ("deliver_sm", dict(source_addr="14155550123", destination_addr="12345", short_message=b"STOP")),
    ("enquire_link", {}),
    ("unbind", {}),
    ("query_sm", dict(message_id="1A2B", source_addr="12345")),
    ("submit_sm_resp", dict(message_id="1A2B")),
    ("deliver_sm_resp", dict(message_id="")),
    ("enquire_link_resp", {}),
    ("generic_nack", {}),
]
TLV_TAGS = sorted(set(smpp_consts.OPTIONAL_PARAMS.values()))


@st.composite
def corrupted(draw: st.DrawFn, seq: int) -> Frame:
    """A valid PDU from the templates with one or more corruptions; the header's length stays true."""
    name, fields = draw(st.sampled_from(TEMPLATES))
    raw = P.build(name, seq, **fields)
    body = bytearray(raw[16:])
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "truncate", "extend", "tlv", "status"]))
        if how == "flip" and body:
            at = draw(st.integers(0, len(body) - 1))
            body[at] ^= draw(st.integers(1, 255))
        elif how == "truncate":
            del body[draw(st.integers(0, len(body))):]
        elif how == "extend":
            body += draw(st.binary(min_size=1, max_size=40))
        elif how == "tlv":  # a TLV whose length lies (too long, zero, or longer than what follows)
            tag = draw(st.one_of(st.sampled_from(TLV_TAGS), st.integers(0, 0xFFFF)))
            value = draw(st.binary(max_size=12))
            length = draw(st.one_of(st.just(len(value)), st.integers(0, 0xFFFF)))
            body += struct.pack(">HH", tag, length) + value
        elif how == "status":
            raw = raw[:8] + struct.pack(">L", draw(st.integers(0, 0xFFFFFFFF))) + raw[12:]
    whole = _reframe(raw, bytes(body))
    return Frame(P.header(whole)[1], seq, whole)


def hostile_frame(seq: int) -> st.SearchStrategy[Frame]:
    unknown_id = st.integers(0, 0xFFFFFFFF).filter(lambda c: c not in KNOWN_IDS)
    garbage = st.binary(max_size=200)
    return st.one_of(
        st.builds(lambda c, b: frame(c, seq, b), unknown_id, garbage),  # unknown command ids
        st.builds(lambda c, b: frame(c, seq, b), st.sampled_from(sorted(KNOWN_IDS)), garbage),  # garbage bodies
        corrupted(seq),  # valid PDUs with corrupted fields and TLVs
    )


@st.composite
def attacks(draw: st.DrawFn) -> tuple[list[Frame], bytes | None, str]:
    """Whole frames, then maybe a tail the peer cannot frame: ``("absurd", bytes)`` closes at once,
    ``("truncated", bytes)`` waits for more until the attacker hangs up; random bytes are either."""
    frames = [draw(hostile_frame(seq)) for seq in range(2, 2 + draw(st.integers(0, 5)))]
    kind = draw(st.sampled_from(["none", "none", "absurd", "truncated", "random"]))
    if kind == "absurd":
        length = draw(st.one_of(st.integers(0, 15), st.integers(P.MAX_PDU + 1, 0xFFFFFFFF)))
        return frames, struct.pack(">L", length) + draw(st.binary(max_size=40)), kind
    if kind == "truncated":
        whole = draw(hostile_frame(99)).raw
        return frames, whole[:draw(st.integers(1, len(whole) - 1))], kind
    if kind == "random":
        return frames, draw(st.binary(min_size=1, max_size=600)), kind
    return frames, None, kind


async def read_answers(reader: asyncio.StreamReader, peer_requests: list[bytes], want: int = 0
                       ) -> tuple[list[bytes], bool]:
    """Frames from the peer until the answer to the probe and at least ``want`` other answers (False), or EOF
    (True). SMPP lets a peer answer a window out of order (the gateway answers a deliver_sm once it is stored),
    so the probe's answer may come first. Requests the peer sends on its own (receipts) are set aside in
    ``peer_requests``."""
    answers: list[bytes] = []
    probed = False
    while True:
        if probed and len(answers) >= want:
            return answers, False
        try:
            raw = await P.read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return answers, True
        _, command_id, _, seq = P.header(raw)
        if not command_id & 0x80000000:
            peer_requests.append(raw)
        elif command_id == ENQUIRE_LINK_RESP and seq == PROBE_SEQ:
            probed = True
        else:
            answers.append(raw)


async def read_until_eof(reader: asyncio.StreamReader) -> None:
    """Until the peer closes (a reset counts: closing with unread bytes in its buffer sends one)."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionResetError:
        pass


def decodes(f: Frame) -> bool:
    try:
        P.parse(f.raw)
        return True
    except ValueError:
        return False


def check_answers(frames: list[Frame], answers: list[bytes], closed: bool, *, bound: str | None = None,
                  own_commands: set[int] = frozenset()) -> None:
    """Every request frame got one answer, in order, with its sequence number: generic_nack with an error, or
    its own *_resp. Responses got none. A close is only fine right after answering an unbind. ``bound`` is the
    bind the connection started with (tx, rx, trx); an accepted bind among the frames changes it."""
    requests = [f for f in frames if f.is_request]
    answers = sorted(answers, key=lambda a: P.header(a)[3])  # matched by sequence number, not arrival order
    if closed:
        requests = requests[:len(answers)]
        assert answers and P.header(answers[-1])[1] == COMMANDS["unbind_resp"], "closed without an unbind"
    assert [P.header(a)[3] for a in answers] == [f.seq for f in requests], (answers, requests)
    for f, raw in zip(requests, answers):
        _, command_id, status, _ = P.header(raw)
        assert command_id in (GENERIC_NACK, f.command_id | 0x80000000), hex(command_id)
        if command_id == GENERIC_NACK:  # an unknown command, or a known one that does not decode, or not ours
            assert status == (smpp_consts.SMPP_ESME_RINVCMDLEN if f.command_id in KNOWN_IDS and not decodes(f)
                              else smpp_consts.SMPP_ESME_RINVCMDID)
        if f.command_id in own_commands:
            assert command_id == GENERIC_NACK
        if command_id == COMMANDS["submit_sm_resp"] and bound not in ("tx", "trx"):
            assert status == smpp_consts.SMPP_ESME_RINVBNDSTS
        if command_id in BIND_RESPS and status == smpp_consts.SMPP_ESME_ROK:
            assert bound is None, "bound twice"
            bound = BIND_RESPS[command_id]


# --- the simulator under attack ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def sim(loop: Loop) -> Iterator[SmscSimulator]:
    simulator = SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.01)
    loop.run(simulator.start())
    yield simulator
    loop.run(simulator.stop())


async def attack_simulator(sim: SmscSimulator, bind_first: bool, frames: list[Frame], tail: bytes | None,
                           kind: str) -> None:
    baseline = len(sim.connections)
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        if bind_first:
            writer.write(P.build("bind_transceiver", 1, system_id="gateway", password="secret"))
            assert P.header(await P.read_frame(reader))[2] == smpp_consts.SMPP_ESME_ROK
        for f in frames:
            writer.write(f.raw)
        if tail is None:
            writer.write(P.build("enquire_link", PROBE_SEQ))
            answers, closed = await read_answers(reader, [])
            check_answers(frames, answers, closed, bound="trx" if bind_first else None)
        else:
            writer.write(tail)
            if kind != "absurd":
                writer.write_eof()  # the peer waits for the rest of a frame: hang up, it must let go
            await read_until_eof(reader)  # the simulator closes its side
    finally:
        writer.close()
    await until(lambda: len(sim.connections) == baseline)  # its connection task ended


@FUZZ
@given(bind_first=st.booleans(), attack=attacks())
def _attack_simulator(loop: Loop, sim: SmscSimulator, bind_first: bool, attack: tuple) -> None:
    frames, tail, kind = attack
    loop.run(attack_simulator(sim, bind_first, frames, tail, kind))
    loop.assert_no_errors()


def _smpplib_flow(port: int) -> None:
    """A well-behaved ESME on smpplib's blocking client: bind, submit, its receipt, unbind. (Receipts of the
    attackers' submits, queued for the system_id, may arrive first.)"""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    received: list = []
    sent: list = []
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="gateway", password="secret")
        client.send_message(source_addr_ton=smpplib.consts.SMPP_TON_INTL, source_addr="14155550100",
                            dest_addr_ton=smpplib.consts.SMPP_TON_INTL, destination_addr="14155550123",
                            short_message=b"after the storm", registered_delivery=1)
        while not sent:
            client.read_once()
        assert sent[0].status == 0 and sent[0].message_id
        while not any(getattr(p, "receipted_message_id", None) == sent[0].message_id for p in received):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()


def test_simulator_survives_hostile_pdus_and_keeps_serving(loop: Loop, sim: SmscSimulator) -> None:
    _attack_simulator(loop, sim)
    assert sim.stats["garbage"] > 0  # the attack reached the parser
    loop.run(asyncio.to_thread(_smpplib_flow, sim.port))
    assert sim.received[-1].text == "after the storm"
    loop.assert_no_errors(generation=2)


@pytest.mark.parametrize("bind, command, fields, expect", [
    (None, "submit_sm", dict(source_addr="1", destination_addr="2", short_message=b"x"),
     ("submit_sm_resp", smpp_consts.SMPP_ESME_RINVBNDSTS)),
    ("bind_receiver", "submit_sm", dict(source_addr="1", destination_addr="2", short_message=b"x"),
     ("submit_sm_resp", smpp_consts.SMPP_ESME_RINVBNDSTS)),
    ("bind_transceiver", "bind_transceiver", dict(system_id="gateway", password="secret"),
     ("bind_transceiver_resp", smpp_consts.SMPP_ESME_RALYBND)),
    ("bind_transmitter", "bind_receiver", dict(system_id="gateway", password="secret"),
     ("bind_receiver_resp", smpp_consts.SMPP_ESME_RALYBND)),
    (None, "deliver_sm", dict(source_addr="1", destination_addr="2", short_message=b"x"),
     ("generic_nack", smpp_consts.SMPP_ESME_RINVCMDID)),
    ("bind_transceiver", "query_sm", dict(message_id="1", source_addr="1"),
     ("generic_nack", smpp_consts.SMPP_ESME_RINVCMDID)),
    (None, "enquire_link", {}, ("enquire_link_resp", smpp_consts.SMPP_ESME_ROK)),
])
def test_simulator_answers_pdus_out_of_state(loop: Loop, sim: SmscSimulator, bind: str | None, command: str,
                                             fields: dict, expect: tuple[str, int]) -> None:
    async def scenario() -> tuple[int, int, int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        try:
            if bind:
                writer.write(P.build(bind, 1, system_id="gateway", password="secret"))
                assert P.header(await P.read_frame(reader))[2] == smpp_consts.SMPP_ESME_ROK
            writer.write(P.build(command, 7, **fields))
            while True:
                _, command_id, status, seq = P.header(await P.read_frame(reader))
                # a receiver bind may first be handed a receipt that an earlier test's client left behind
                # (the simulator keeps undelivered receipts for the next receiver): not the answer looked for
                if not (command_id == COMMANDS["deliver_sm"] and seq != 7):
                    return command_id, status, seq
        finally:
            writer.close()

    assert loop.run(scenario()) == (COMMANDS[expect[0]], expect[1], 7)
    loop.assert_no_errors()


# --- the gateway's client under attack --------------------------------------------------------------------------

class Sink:
    def __init__(self) -> None:
        self.receipts: list = []
        self.inbound: list = []

    async def on_receipt(self, carrier: str, receipt: Any) -> None:
        self.receipts.append(receipt)

    async def on_inbound(self, carrier: str, message: Any) -> None:
        self.inbound.append(message)


class HostileSmsc:
    """Binds whoever connects, then plays ``script`` on the first connection of each round; later connections
    (the client's reconnection) are served politely: submit_sm_resp, enquire_link_resp, unbind_resp."""

    def __init__(self) -> None:
        self.script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None
        self.binds = 0
        self.submits = 0
        self.tasks: set[asyncio.Task] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            raw = await P.read_frame(reader)
            assert P.header(raw)[1] == COMMANDS["bind_transceiver"]
            writer.write(P.build("bind_transceiver_resp", P.header(raw)[3], system_id="hostile"))
            self.binds += 1
            script, self.script = self.script, None
            if script is not None:
                await script(reader, writer)
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            raw = await P.read_frame(reader)
            _, command_id, _, seq = P.header(raw)
            if command_id == COMMANDS["submit_sm"]:
                self.submits += 1
                writer.write(P.build("submit_sm_resp", seq, message_id=f"OK{self.submits}"))
            elif command_id == ENQUIRE_LINK:
                writer.write(P.build("enquire_link_resp", seq))
            elif command_id == UNBIND:
                writer.write(P.build("unbind_resp", seq))
                await writer.drain()
                return


@pytest.fixture(scope="module")
def smsc(loop: Loop) -> Iterator[HostileSmsc]:
    server = HostileSmsc()
    loop.run(server.start())
    yield server
    loop.run(server.stop())


def sms(text: str = "still here") -> OutboundSms:
    e = encode(text)
    return OutboundSms("12345", "+14155550123", e.data_coding, tuple(Segment(s) for s in e.segments), 7)


def new_carrier(port: int, **options: Any) -> SmppCarrier:
    carrier = SmppCarrier("hostile", "127.0.0.1", port, "gateway", "secret", reconnect_min=0.01,
                          reconnect_max=0.05, **{"enquire_link_interval": 30.0, "response_timeout": 2.0, **options})
    carrier.set_events(Sink())
    return carrier


async def attack_client(smsc: HostileSmsc, frames: list[Frame], tail: bytes | None, kind: str) -> None:
    seen: dict[str, Any] = {}

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for f in frames:
                writer.write(f.raw)
            if tail is None:
                writer.write(P.build("enquire_link", PROBE_SEQ))
                seen["answers"], seen["closed"] = await read_answers(
                    reader, [], want=sum(1 for f in frames if f.is_request))
                if not seen["closed"]:
                    return
            else:
                writer.write(tail)
                if kind != "absurd":
                    writer.write_eof()
                await read_until_eof(reader)  # the client lets go of the connection
        finally:
            seen["done"] = True
        raise ConnectionError("the client hung up")

    smsc.script = script
    binds, submits = smsc.binds, smsc.submits
    tasks = len(asyncio.all_tasks())
    carrier = new_carrier(smsc.port)
    await carrier.start()
    try:
        await until(lambda: "done" in seen)
        if seen.get("closed", True):  # the connection ended: the client binds again
            await until(lambda: smsc.binds >= binds + 2 and carrier.ready)
        if "answers" in seen:
            check_answers(frames, seen["answers"], seen["closed"], bound="trx", own_commands={
                COMMANDS[c] for c in ("bind_transmitter", "bind_receiver", "bind_transceiver", "submit_sm",
                                      "query_sm", "outbind")})
        result = await carrier.send_sms(sms())  # bound again, or still: it submits
        assert result.message_ids == (f"OK{submits + 1}",)
    finally:
        await carrier.close()
    await until(lambda: len(asyncio.all_tasks()) <= tasks)  # no read loop, keep-alive or server task lingers


@FUZZ
@given(attack=attacks())
def _attack_client(loop: Loop, smsc: HostileSmsc, attack: tuple) -> None:
    frames, tail, kind = attack
    loop.run(attack_client(smsc, frames, tail, kind))
    loop.assert_no_errors()


def test_client_survives_a_hostile_smsc(loop: Loop, smsc: HostileSmsc) -> None:
    _attack_client(loop, smsc)
    loop.assert_no_errors(generation=2)


def test_client_gives_up_on_an_smsc_that_stalls_mid_frame(loop: Loop, smsc: HostileSmsc) -> None:
    """Half a frame, then silence with the connection open: the keep-alive finds out and the client binds again."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(P.build("deliver_sm", 5, source_addr="1", destination_addr="2", short_message=b"x")[:20])
        await asyncio.Event().wait()  # never another byte; cancelled when the test's server stops

    async def scenario() -> None:
        smsc.script = script
        binds = smsc.binds
        carrier = new_carrier(smsc.port, enquire_link_interval=0.05, response_timeout=0.2)
        await carrier.start()
        try:
            await until(lambda: smsc.binds == binds + 2 and carrier.ready)
            assert (await carrier.send_sms(sms())).message_ids
        finally:
            await carrier.close()

    loop.run(scenario())
    loop.assert_no_errors()
