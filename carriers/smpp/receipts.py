"""Reading deliver_sm: delivery receipts (TLV or text form) and mobile-originated messages."""

from __future__ import annotations

import codecs
import datetime as dt
import re
from typing import Any

from smpplib import consts

from carriers import gsm7
from carriers._base import InboundSms, Receipt
from carriers.smpp._pdu import ESM_CLASS_MESSAGE_TYPE, ESM_CLASS_SMSC_RECEIPT, text

# message_state (the TLV) -> stat (the text receipt's word for it)
MESSAGE_STATES = {consts.SMPP_MESSAGE_STATE_ENROUTE: "ENROUTE", consts.SMPP_MESSAGE_STATE_DELIVERED: "DELIVRD",
                  consts.SMPP_MESSAGE_STATE_EXPIRED: "EXPIRED", consts.SMPP_MESSAGE_STATE_DELETED: "DELETED",
                  consts.SMPP_MESSAGE_STATE_UNDELIVERABLE: "UNDELIV", consts.SMPP_MESSAGE_STATE_ACCEPTED: "ACCEPTD",
                  consts.SMPP_MESSAGE_STATE_UNKNOWN: "UNKNOWN", consts.SMPP_MESSAGE_STATE_REJECTED: "REJECTD"}
STATE_CODES = {v: k for k, v in MESSAGE_STATES.items()}
STATS = set(MESSAGE_STATES.values())

# the lookahead (each name's first letter) only lets the scan skip other positions fast: it matches the same
_FIELD = re.compile(r"(?=[idset])(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:\s*", re.IGNORECASE)


def is_receipt(pdu: Any) -> bool:
    """esm_class message type 0x04 (SMSC delivery receipt) or 0x08 (SME delivery acknowledgement)."""
    return ((pdu.esm_class or 0) & ESM_CLASS_MESSAGE_TYPE) in (ESM_CLASS_SMSC_RECEIPT, consts.SMPP_MSGTYPE_DELIVERYACK)


def parse_receipt_text(body: str) -> dict[str, str]:
    """The `id:... sub:... stat:...` fields, keys lower case (tolerates case, spacing and missing fields).
    Each value runs to the next field name; the first of a repeated field counts."""
    fields: dict[str, str] = {}
    pieces = _FIELD.split(body)  # [before, name, value, name, value, ...]
    for i in range(1, len(pieces), 2):
        key = pieces[i].lower()
        if key in fields:
            continue
        value = pieces[i + 1].strip()
        if key != "text" and value:
            value = value.split(None, 1)[0]
        fields[key] = value
    return fields


def _receipt_date(value: str | None) -> dt.datetime | None:
    """YYMMDDhhmm[ss] in UTC, or None."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return dt.datetime(2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]), int(value[6:8]),
                           int(value[8:10]), int(value[10:12] or 0), tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def parse_receipt(pdu: Any) -> Receipt | None:
    """A Receipt from a receipt deliver_sm, or None when it names no message id."""
    raw = _decode(pdu.short_message or pdu_payload(pdu), pdu.data_coding or 0)
    fields = parse_receipt_text(raw)
    message_id = text(getattr(pdu, "receipted_message_id", None)) or fields.get("id", "")
    state = getattr(pdu, "message_state", None)
    stat = MESSAGE_STATES.get(state) if state else None
    if stat is None:
        stat = fields.get("stat", "UNKNOWN").upper()
        if stat not in STATS:
            stat = {"DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "REJECTED": "REJECTD"}.get(stat, "UNKNOWN")
    if not message_id:
        return None
    return Receipt(message_id.strip(), stat, fields.get("err"), _receipt_date(fields.get("done date")), raw[:500])


def pdu_payload(pdu: Any) -> bytes:
    payload = getattr(pdu, "message_payload", None)
    if isinstance(payload, str):
        return payload.encode("latin-1")
    return payload or b""


def _decode(data: bytes | str, data_coding: int) -> str:
    if isinstance(data, str):
        return data
    coding = data_coding & 0x0F if data_coding & 0xF0 in (0x00, 0xF0) else data_coding
    if data_coding == consts.SMPP_ENCODING_ISO10646 or coding == consts.SMPP_ENCODING_ISO10646:  # UCS-2
        return data.decode("utf-16-be", errors="replace")
    if data_coding == consts.SMPP_ENCODING_ISO88591:
        return data.decode("latin-1")
    if data_coding == consts.SMPP_ENCODING_IA5:
        return data.decode("ascii", errors="replace")
    if data_coding in (consts.SMPP_ENCODING_BINARY, consts.SMPP_ENCODING_BINARY2):
        return data.decode("latin-1")
    return decode_gsm7(data)


_GSM7_TABLE = gsm7.GSM7_BASIC * 2  # byte -> character, the high bit ignored as gsm7.decode ignores it


def decode_gsm7(data: bytes) -> str:
    """gsm7.decode in C speed (a charmap decode) when there is no escape septet; gsm7.decode itself otherwise."""
    if b"\x1b" in data or b"\x9b" in data:
        return gsm7.decode(data)
    return codecs.charmap_decode(data, "strict", _GSM7_TABLE)[0]


def parse_udh(data: bytes) -> tuple[bytes, tuple[int, int, int] | None]:
    """Strip a user data header; return (text bytes, (ref, total, seq) or None)."""
    if not data:
        return data, None
    udhl = data[0]
    if 1 + udhl > len(data):
        return data, None
    header, body = data[1:1 + udhl], data[1 + udhl:]
    pos, concat = 0, None
    while pos + 2 <= len(header):
        iei, length = header[pos], header[pos + 1]
        value = header[pos + 2:pos + 2 + length]
        if iei == consts.SMPP_UDHIEIE_CONCATENATED and length == 3 and len(value) == 3:
            concat = (value[0], value[1], value[2])
        elif iei == consts.SMPP_UDHIEIE_CONCATENATED16 and length == 4 and len(value) == 4:
            concat = ((value[0] << 8) | value[1], value[2], value[3])
        pos += 2 + length
    return body, concat


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """The user data header of part ``seq`` of ``total``: the 8-bit reference IE when ``ref`` fits one octet, the
    16-bit one otherwise (what parse_udh reads back)."""
    if ref > 0xFF:
        return bytes((6, consts.SMPP_UDHIEIE_CONCATENATED16, 4, ref >> 8, ref & 0xFF, total, seq))
    return bytes((5, consts.SMPP_UDHIEIE_CONCATENATED, 3, ref, total, seq))


def parse_inbound(pdu: Any) -> InboundSms:
    """A mobile-originated message (or one part of one), decoded."""
    data = pdu.short_message or pdu_payload(pdu)
    if isinstance(data, str):
        data = data.encode("latin-1")
    concat = None
    if (pdu.esm_class or 0) & consts.SMPP_GSMFEAT_UDHI:
        data, concat = parse_udh(data)
    sar_ref = getattr(pdu, "sar_msg_ref_num", None)
    if concat is None and sar_ref is not None:
        concat = (sar_ref, getattr(pdu, "sar_total_segments", None) or 1, getattr(pdu, "sar_segment_seqnum", None) or 1)
    coding = pdu.data_coding or 0
    return InboundSms(
        source=_address(pdu.source_addr, pdu.source_addr_ton), destination=_address(pdu.destination_addr,
                                                                                  pdu.dest_addr_ton),
        text=_decode(data, coding), data_coding=coding,
        concat_ref=concat[0] if concat else None, concat_total=concat[1] if concat else None,
        concat_seq=concat[2] if concat else None)


def _address(value: Any, ton: int | None) -> str:
    addr = text(value)
    if ton == consts.SMPP_TON_INTL and addr and not addr.startswith("+"):
        return "+" + addr
    return addr
