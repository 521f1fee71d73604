"""The hand-written hot-path codec against smpplib's own: the same bytes out, the same fields in (TLVs, UDH,
multipart, receipts), and smpplib's behaviour -- its errors included -- for everything the fast path leaves
to it. Seeded random cases on top of the hand-picked ones, so that the two cannot drift apart unnoticed."""

from __future__ import annotations

import random
import struct

import pytest
from smpplib import consts

from carriers import OutboundSms, Segment
from carriers.encoding import encode
from carriers.smpp import _pdu as P
from carriers.smpp.carrier import SmppCarrier, address

SEED = 20240611


def fields_of(pdu) -> dict:
    names = list(type(pdu).params) if hasattr(type(pdu), "params") else [
        k for k in vars(pdu) if k not in ("command", "status", "sequence", "length")]
    return {name: getattr(pdu, name, None) for name in names} | {
        "command": pdu.command, "status": pdu.status, "sequence": pdu.sequence, "length": pdu.length}


def reference_fields(raw: bytes) -> dict:
    ref = P.parse_smpplib(raw)
    return {name: getattr(ref, name) for name in type(ref).params} | {
        "command": ref.command, "status": ref.status, "sequence": ref.sequence, "length": ref.length}


def assert_same_build(command: str, sequence: int = 1, status: int = 0, *, fast: bool = True, **fields) -> bytes:
    """Both encoders give the same bytes (and the fast one is used when ``fast``)."""
    ours = P.build(command, sequence, status, **fields)
    assert ours == P.build_smpplib(command, sequence, status, **fields)
    assert (P._fast_body(command, fields) is not None) is fast
    return ours


def assert_same_parse(raw: bytes, *, fast: bool | None = True) -> None:
    """Both decoders agree: the same fields, or both refuse (``fast``: whether the fast decoder took it)."""
    try:
        expected = reference_fields(raw)
    except ValueError:
        with pytest.raises(ValueError):
            P.parse(raw)
        assert P._fast_parse(raw) is None
        return
    ours = P.parse(raw)
    if fast is not None:
        assert isinstance(ours, P.Pdu) is fast, raw
    got = {name: getattr(ours, name, None) for name in expected}
    assert got == expected


def submits(text: str, concatenation: str, reference: int = 0x1234, source: str = "12345",
            destination: str = "+14155550123") -> list[dict]:
    carrier = SmppCarrier("c", "127.0.0.1", 1, "u", "p", concatenation=concatenation)
    e = encode(text)
    return carrier.submits(OutboundSms(source, destination, e.data_coding, tuple(Segment(s) for s in e.segments),
                                       reference))


LONG_GSM = "Hello {world} ~ with escapes [and] a euro € sign. " * 8
LONG_UCS2 = "Grüße 😀 aus Köln — emoji and curly “quotes” " * 6


@pytest.mark.parametrize("concatenation", ["udh", "sar", "payload"])
@pytest.mark.parametrize("text", ["bench", "", LONG_GSM, LONG_UCS2, "x" * 160, "ü" * 70])
@pytest.mark.parametrize("reference", [0x12, 0x1234])
def test_submit_sm_bytes_and_fields_as_the_carrier_builds_them(concatenation, text, reference):
    if not text:
        parts = [dict(source_addr_ton=3, source_addr_npi=0, source_addr="12345", dest_addr_ton=1, dest_addr_npi=1,
                      destination_addr="14155550123", data_coding=0, registered_delivery=1, esm_class=0,
                      short_message=b"")]
    else:
        parts = submits(text, concatenation, reference)
    for seq, fields in enumerate(parts, start=1):
        raw = assert_same_build("submit_sm", seq, **fields)
        assert_same_parse(raw)
        decoded = P.parse(raw)
        if fields.get("message_payload"):
            assert decoded.message_payload == fields["message_payload"]
        else:
            assert decoded.short_message == fields["short_message"] or (not fields["short_message"]
                                                                         and decoded.short_message is None)
        for name in ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum"):
            assert getattr(decoded, name) == fields.get(name)


@pytest.mark.parametrize("source,destination", [("12345", "+14155550123"), ("+14155550100", "+447700900123"),
                                                ("ACME", "+14155550123"), ("A" * 30, "+1" + "9" * 25)])
def test_addresses_as_smpplib_writes_them_including_cut_ones(source, destination):
    for fields in submits("hi", "udh", source=source, destination=destination):
        assert_same_parse(assert_same_build("submit_sm", 99, **fields))
    assert address(source)  # the carrier's own mapping is what produced the fields


def receipt_fields(rid: str, state: int | None, body: bytes = b"", **extra) -> dict:
    fields = dict(source_addr_ton=1, source_addr_npi=1, source_addr="14155550123", dest_addr_ton=3, dest_addr_npi=0,
                  destination_addr="12345", esm_class=0x04, data_coding=0, short_message=body,
                  receipted_message_id=rid, message_state=state)
    fields.update(extra)
    return fields


@pytest.mark.parametrize("rid", ["", "1", "1A2B3C", "0" * 64, "9" * 65, "F" * 66, "abc" * 30])
@pytest.mark.parametrize("state", [None, 0, 2, 5, 8, 255])
def test_deliver_sm_receipts(rid, state):
    body = f"id:{rid[:20]} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 " \
           f"text:hello".encode()
    raw = assert_same_build("deliver_sm", 7, **receipt_fields(rid, state, body))
    assert_same_parse(raw)
    pdu = P.parse(raw)
    assert pdu.esm_class == 0x04 and pdu.message_state == state
    assert pdu.receipted_message_id == (rid.encode()[:64] if len(rid) > 65 else rid.encode() or None)


def test_deliver_sm_mobile_originated_parts_udh_and_sar():
    for seq in (1, 2, 3):
        udh = bytes((0x05, 0x00, 0x03, 0x42, 3, seq)) + b"part"
        assert_same_parse(assert_same_build("deliver_sm", seq, **receipt_fields("", None, udh, esm_class=0x40)))
        sar = receipt_fields("", None, b"part", esm_class=0, sar_msg_ref_num=0xBEEF, sar_total_segments=3,
                             sar_segment_seqnum=seq)
        pdu = P.parse(assert_same_build("deliver_sm", seq, **sar))
        assert (pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum) == (0xBEEF, 3, seq)
    payload = receipt_fields("", None, b"", message_payload="é".encode("utf-16-be") * 200, data_coding=8)
    assert_same_parse(assert_same_build("deliver_sm", 4, **payload))


@pytest.mark.parametrize("command", ["submit_sm_resp", "deliver_sm_resp"])
@pytest.mark.parametrize("message_id", [None, "", "0", "1A2B3C4D", "x" * 64, "y" * 65, "z" * 80])
@pytest.mark.parametrize("status", [0, 0x14, 0x58])
def test_responses(command, message_id, status):
    fields = {} if message_id is None else {"message_id": message_id}
    raw = assert_same_build(command, 0x7FFFFFFF, status, **fields)
    if command == "submit_sm_resp" and status == 0:
        assert P.submit_sm_resp_id(raw) == P.text(P.parse_smpplib(raw).message_id)


@pytest.mark.parametrize("command", ["enquire_link", "enquire_link_resp", "unbind", "unbind_resp", "generic_nack"])
def test_bodiless_commands(command):
    for seq, status in ((1, 0), (0x12345678, 3)):
        assert_same_build(command, seq, status)


def test_what_the_fast_encoder_leaves_to_smpplib_comes_out_the_same():
    base = dict(source_addr="12345", destination_addr="14155550123", short_message=b"hi")
    assert_same_build("submit_sm", 1, **base, validity_period="000001000000000R")  # every mandatory field: fast
    assert_same_build("submit_sm", 1, fast=False, **base, ussd_service_op=1)  # a TLV it does not write
    assert_same_build("submit_sm", 1, fast=False, **base, user_message_reference=5)  # another TLV
    assert_same_build("deliver_sm", 1, fast=False, **receipt_fields("é", 2))  # a non-ASCII receipted id
    assert_same_build("submit_sm", 1, fast=False, **base, esm_class=True)  # not an int
    assert_same_build("bind_transceiver", 1, fast=False, system_id="gw", password="pw", system_type="",
                      interface_version=0x34, addr_ton=0, addr_npi=0, address_range="")
    assert_same_build("generic_nack", 1, fast=False, message_id="")  # a field the command does not have


@pytest.mark.parametrize("fields,error", [
    (dict(short_message=b"x", message_payload=b"y"), ValueError),  # both: smpplib refuses
    (dict(short_message="text"), TypeError),  # str, not bytes
    (dict(short_message=b"x" * 256), struct.error),  # too long for sm_length
    (dict(short_message=b"x", esm_class=256), struct.error),
    (dict(short_message=b"x", sar_msg_ref_num=0x10000), struct.error),
    (dict(short_message=b"x", source_addr=b"bytes"), TypeError),
    (dict(short_message=b"x", source_addr="Zürich\u0100"), UnicodeEncodeError),  # not Latin-1
])
def test_smpplib_errors_are_kept(fields, error):
    assert P._fast_body("submit_sm", fields) is None
    with pytest.raises(error):
        P.build_smpplib("submit_sm", 1, **fields)
    with pytest.raises(error):
        P.build("submit_sm", 1, **fields)


def test_every_truncation_of_a_pdu_decodes_as_smpplib_decodes_it():
    for raw in (P.build("deliver_sm", 5, **receipt_fields("ABC123", 2, b"id:ABC123 stat:DELIVRD")),
                P.build("deliver_sm", 6, **receipt_fields("", None, b"", message_payload=b"p" * 10,
                                                          sar_msg_ref_num=1, sar_total_segments=2,
                                                          sar_segment_seqnum=1)),
                P.build("submit_sm", 7, **submits(LONG_GSM, "udh")[0])):
        for cut in range(len(raw) + 1):
            assert_same_parse(raw[:cut], fast=None)


def test_odd_tlvs_go_to_smpplib():
    raw = P.build("deliver_sm", 5, **receipt_fields("ABC", 2, b"x"))
    unknown = struct.pack(">HHB", 0x1400, 1, 9)  # a vendor TLV: smpplib skips it (with a warning)
    assert_same_parse(raw + unknown, fast=False)
    wrong_size = struct.pack(">HHH", consts.OPTIONAL_PARAMS["message_state"], 2, 2)  # int TLV of another size
    assert_same_parse(raw + wrong_size, fast=False)
    not_here = struct.pack(">HHB", consts.OPTIONAL_PARAMS["ussd_service_op"], 1, 1)  # a submit_sm-only TLV
    assert_same_parse(raw + not_here, fast=False)
    empty_string = struct.pack(">HH", consts.OPTIONAL_PARAMS["receipted_message_id"], 0)
    assert_same_parse(raw + empty_string, fast=False)
    repeated = struct.pack(">HHB", consts.OPTIONAL_PARAMS["message_state"], 1, 5)
    assert_same_parse(raw + repeated)  # the last one wins in both
    assert P.parse(raw + repeated).message_state == 5


def test_random_pdus_agree_both_ways():
    rng = random.Random(SEED)

    def text(n: int) -> str:
        return "".join(rng.choice("0123456789ABCDEFabcdef+ ") for _ in range(rng.randrange(n)))

    for _ in range(1500):
        command = rng.choice(["submit_sm", "deliver_sm"])
        fields: dict = {}
        for name in ("source_addr_ton", "source_addr_npi", "dest_addr_ton", "dest_addr_npi", "esm_class",
                     "registered_delivery", "data_coding", "protocol_id", "priority_flag"):
            if rng.random() < 0.7:
                fields[name] = rng.choice([0, 1, 3, 5, 0x40, 0xFF, None])
        for name, size in (("source_addr", 25), ("destination_addr", 25), ("service_type", 8)):
            if rng.random() < 0.8:
                fields[name] = text(size)
        if rng.random() < 0.2:
            fields["message_payload"] = rng.randbytes(rng.randrange(0, 400))
            fields["short_message"] = b""
        else:
            fields["short_message"] = rng.randbytes(rng.randrange(0, 255))
        if rng.random() < 0.3:
            fields.update(sar_msg_ref_num=rng.randrange(0x10000), sar_total_segments=rng.randrange(1, 256),
                          sar_segment_seqnum=rng.randrange(256))
        if command == "deliver_sm" and rng.random() < 0.5:
            fields.update(receipted_message_id=text(80), message_state=rng.choice([None, *range(9)]))
        raw = assert_same_build(command, rng.randrange(1, 0x7FFFFFFF), rng.choice([0, 0x58]), **fields)
        assert_same_parse(raw)
        mutated = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):  # a few random byte flips, past the header
            if len(mutated) > 16:
                mutated[rng.randrange(16, len(mutated))] = rng.randrange(256)
        assert_same_parse(bytes(mutated), fast=None)


# --- receipts: the text form and GSM-7, against the plain implementations ----------------------------------------
def reference_receipt_text(body: str) -> dict[str, str]:
    """The receipt text parser as first written (one match at a time): the reference for the faster one."""
    import re

    pattern = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:\s*", re.IGNORECASE)
    fields: dict[str, str] = {}
    matches = list(pattern.finditer(body))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        key = m.group(1).lower()
        value = body[m.end():end].strip()
        if key != "text":
            value = value.split()[0] if value.split() else ""
        fields.setdefault(key, value)
    return fields


RECEIPT_TEXTS = [
    "id:1A2B3C4 sub:001 dlvrd:001 submit date:2611231715 done date:2611231715 stat:DELIVRD err:000 text:bench",
    "ID : 0042 SUB:1 DLVRD:1 SUBMIT DATE:240101120000 DONE DATE:240101120105 STAT:UNDELIV ERR:005 TEXT:x stat:y",
    "id:12err:5 stat:DELIVRD err:000 text:hello stat:nope id:again",
    "text:only text here", "", "no fields at all", "id:", "id:   stat:", "  id:\t77\n stat:\u00a0DELIVRD  ",
    "\u017ftat:DELIVRD \u0130d:5 Id:6 ſub:1",  # letters that fold to s / i under IGNORECASE
    "submit  date:1 done date:2 done date:3 Err : 9",
]


def test_receipt_text_parser_agrees_with_the_reference():
    from carriers.smpp.receipts import parse_receipt_text

    rng = random.Random(SEED)
    words = ["id:", "ID:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "text:", "Stat :",
             "x", "DELIVRD", "0012", " ", "  ", "\t", "idle", "errand", "ſ", "İ", "date:", "done", "submit"]
    cases = RECEIPT_TEXTS + ["".join(rng.choice(words) for _ in range(rng.randrange(12))) for _ in range(3000)]
    for body in cases:
        assert parse_receipt_text(body) == reference_receipt_text(body), body


def test_gsm7_receipt_decoding_agrees_with_gsm7_decode():
    from carriers import gsm7
    from carriers.smpp.receipts import decode_gsm7

    rng = random.Random(SEED)
    samples = [bytes([b]) for b in range(256)] + [bytes(range(128)), bytes(range(128, 256)), b"",
                                                  b"\x1b\x65 euro", b"\x9b\x28x", b"end\x1b"]
    samples += [rng.randbytes(rng.randrange(200)) for _ in range(2000)]
    for data in samples:
        assert decode_gsm7(data) == gsm7.decode(data), data


# --- the dispatcher's bulk UPDATEs by id, against the ORM's --------------------------------------------------------
async def test_update_by_id_sets_what_the_orms_bulk_update_sets(sessionmaker):
    import datetime as dt

    from sqlalchemy import insert, select, text, update

    from gateway.store.models import MessagePart
    from gateway.store.statements import SAME_VALUES, update_by_id

    rng = random.Random(SEED)
    table = MessagePart.__table__
    n = 600
    async with sessionmaker() as session, session.begin():
        await session.execute(text("PRAGMA foreign_keys=OFF"))  # parts without their messages, for this test
        await session.execute(insert(table), [
            {"message_id": i, "seq": 1, "carrier": "sim", "carrier_message_id": str(i), "carrier_id_norm": str(i)}
            for i in range(1, 2 * n + 1)])
    when = [dt.datetime(2024, 1, 2, 3, 4, s, tzinfo=dt.timezone.utc) for s in range(3)]
    batches = [
        [{"id": i, "stat": "DELIVRD", "error_code": "000", "done_at": when[0]} for i in range(1, 450)],  # alike
        [{"id": i, "stat": rng.choice(["DELIVRD", "UNDELIV", None]), "error_code": rng.choice(["000", None]),
          "done_at": rng.choice(when)} for i in range(1, n)],  # a few alike groups, some small ones
        [{"id": i, "stat": "REJECTD", "error_code": str(i), "done_at": when[1]} for i in range(5, 300, 7)],  # distinct
        [{"id": i, "stat": "REJECTD" if i % 37 == 0 else "UNDELIV" if i % 10 == 0 else "DELIVRD", "error_code": None,
          "done_at": when[2]} for i in range(1, 202)],  # two alike groups and a small one among them
        [{"id": i, "stat": "EXPIRED"} for i in range(1, SAME_VALUES - 1)],  # fewer than SAME_VALUES, other columns
        [{"id": 3, "stat": "UNKNOWN"}] * SAME_VALUES + [{"id": 3, "stat": "DELETED"}],  # the same id: the last wins
    ]
    for batch in batches:
        async with sessionmaker() as session, session.begin():
            await update_by_id(session, table, batch)
            await session.execute(update(MessagePart), [{**row, "id": row["id"] + n} for row in batch])
        async with sessionmaker() as session:
            rows = (await session.execute(select(table.c.id, table.c.stat, table.c.error_code, table.c.done_at)
                                          .order_by(table.c.id))).all()
        ours = {r.id: tuple(r)[1:] for r in rows if r.id <= n}
        orms = {r.id - n: tuple(r)[1:] for r in rows if r.id > n}
        assert ours == orms
    assert ours[3][0] == "DELETED" and ours[1][0] == "EXPIRED"
