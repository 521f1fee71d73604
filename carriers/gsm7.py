"""GSM 03.38 7-bit default alphabet with its extension table, one septet per byte (unpacked, as SMPP sends it)."""

from __future__ import annotations

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT: dict[str, int] = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
                            "]": 0x3E, "|": 0x40, "€": 0x65}
ESCAPE = 0x1B

_BASIC = {ch: i for i, ch in enumerate(GSM7_BASIC) if ch != "\x1b"}
_EXT_REVERSE = {v: k for k, v in GSM7_EXT.items()}
assert len(GSM7_BASIC) == 128


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in GSM7_EXT for ch in text)


def septet_len(text: str) -> int:
    return sum(2 if ch in GSM7_EXT else 1 for ch in text)


def encode(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        code = _BASIC.get(ch)
        if code is not None:
            out.append(code)
        elif ch in GSM7_EXT:
            out += bytes((ESCAPE, GSM7_EXT[ch]))
        else:
            raise ValueError(f"{ch!r} is not in the GSM-7 alphabet")
    return bytes(out)


def decode(data: bytes) -> str:
    out, escaped = [], False
    for byte in data:
        byte &= 0x7F
        if escaped:
            out.append(_EXT_REVERSE.get(byte, GSM7_BASIC[byte] if byte != ESCAPE else " "))
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[byte])
    return "".join(out)
