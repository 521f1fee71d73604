"""Framing and smpplib's PDU codec, wrapped for asyncio streams.

smpplib notes: a ``sequence=`` keyword is shadowed by a property and ignored, so the sequence number is set
on the object; parsing draws a number from the client object it is given, so parsing uses a throwaway one.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from smpplib import smpp
from smpplib import exceptions as smpp_exceptions

HEADER = struct.Struct(">LLLL")
MAX_PDU = 64 * 1024

# command_status values used here (SMPP 3.4, section 5.1.3)
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64

RETRYABLE = {ESME_RMSGQFUL: "queue_full", ESME_RTHROTTLED: "throttled"}


class FrameError(Exception):
    """The peer sent bytes that are not an SMPP PDU stream (absurd length): close the connection."""


class _Sequencer:
    sequence = 0

    def next_sequence(self) -> int:
        self.sequence = self.sequence % 0x7FFFFFFF + 1
        return self.sequence


_PARSE = _Sequencer()


def build(command: str, sequence: int, status: int = ESME_ROK, **fields: Any) -> bytes:
    pdu = smpp.make_pdu(command, client=_PARSE, **fields)
    pdu.sequence = sequence
    pdu.status = status
    return pdu.generate()


def parse(raw: bytes) -> Any:
    """Decode one whole PDU. Raises ValueError for anything smpplib cannot decode."""
    try:
        pdu = smpp.parse_pdu(raw, client=_PARSE, allow_unknown_opt_params=True)
    except (smpp_exceptions.UnknownCommandError, struct.error, IndexError, KeyError, ValueError,
            TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise ValueError(f"undecodable PDU: {type(exc).__name__}: {exc}") from None
    if pdu is None:
        raise ValueError("undecodable PDU")
    return pdu


def submit_sm_resp_id(raw: bytes) -> str:
    """The message_id of a submit_sm_resp: its body is that one C-octet string (SMPP 3.4, 4.4.2), so it is read
    directly instead of through the general parser on the hot path (tests compare both)."""
    body = raw[16:]
    end = body.find(b"\x00")
    if end < 0 or end > 65:
        raise ValueError("submit_sm_resp without a terminated message_id")
    return body[:end].decode("latin-1")


def header(raw: bytes) -> tuple[int, int, int, int]:
    """(length, command_id, status, sequence) of a frame."""
    return HEADER.unpack_from(raw)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One PDU's bytes. Raises asyncio.IncompleteReadError at EOF, FrameError for an absurd length."""
    head = await reader.readexactly(4)
    (length,) = struct.unpack(">L", head)
    if length < 16 or length > MAX_PDU:
        raise FrameError(f"PDU length {length} out of range")
    return head + await reader.readexactly(length - 4)


def text(value: Any) -> str:
    """A decoded C-octet string field (smpplib gives bytes)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
