"""Outbound SMS encoding: pick GSM-7 or UCS-2, count characters, split into segments.

GSM 03.38 7-bit: 160 septets in one message, 153 per part when concatenated; extension characters
(^ { } \\ [ ] ~ | €) take two septets and an escape pair is never split across parts. Any character outside
GSM-7 makes the whole message UCS-2: 70 UTF-16 units in one message, 67 per part; a surrogate pair (a character
outside the BMP) takes two units and is never split either. At most 1,600 GSM-7 or 630 UCS-2 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from smpplib import consts

from carriers import gsm7

GSM7, UCS2 = "gsm7", "ucs2"
DATA_CODING = {GSM7: consts.SMPP_ENCODING_DEFAULT, UCS2: consts.SMPP_ENCODING_ISO10646}
SINGLE = {GSM7: 160, UCS2: 70}
PART = {GSM7: 153, UCS2: 67}
MAX_CHARACTERS = {GSM7: 1600, UCS2: 630}

# "Smart encoding": look-alikes that keep a message in GSM-7 instead of tripling its cost in UCS-2.
SMART_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2026": "...", "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u200b": "",
    "\u2022": "-", "\u00ab": '"', "\u00bb": '"', "\u2039": "<", "\u203a": ">",
}


class EncodingError(ValueError):
    """The text cannot be sent as SMS. ``code`` is stable: empty_body, body_too_long."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class EncodedText:
    text: str  # the text actually sent (after smart encoding)
    encoding: str  # gsm7 | ucs2
    characters: int  # characters as the limits count them (UTF-16 units for UCS-2)
    units: int  # septets (GSM-7) or UTF-16 units (UCS-2)
    segments: tuple[bytes, ...]  # one payload per part, without concatenation headers

    @property
    def data_coding(self) -> int:
        return DATA_CODING[self.encoding]


def smart(text: str) -> str:
    """Replace typographic look-alikes by their GSM-7 counterparts."""
    if text.isascii():
        return text
    return "".join(SMART_REPLACEMENTS.get(ch, ch) for ch in text)


def _gsm_chunks(text: str) -> list[str]:
    """Split text into GSM-7 parts of at most 153 septets, never splitting an escape pair."""
    chunks, current, size = [], [], 0
    for ch in text:
        width = 2 if ch in gsm7.GSM7_EXT else 1
        if size + width > PART[GSM7]:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += width
    if current:
        chunks.append("".join(current))
    return chunks


def _ucs2_chunks(encoded: bytes) -> list[bytes]:
    """Split UTF-16-BE bytes into parts of at most 67 units, never splitting a surrogate pair."""
    limit = PART[UCS2] * 2
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        if end < len(encoded) and 0xD8 <= encoded[end - 2] <= 0xDB:  # high surrogate would end this part
            end -= 2
        chunks.append(encoded[start:end])
        start = end
    return chunks


def encode(text: str, *, smart_encoding: bool = False) -> EncodedText:
    """Encode a message body, or raise EncodingError."""
    if smart_encoding:
        text = smart(text)
    if not text:
        raise EncodingError("empty_body", "The message body is empty.")
    if gsm7.is_gsm7(text):
        septets = gsm7.septet_len(text)
        if len(text) > MAX_CHARACTERS[GSM7]:
            raise EncodingError(
                "body_too_long", f"The message has {len(text)} GSM-7 characters; at most 1600 are allowed."
            )
        if septets <= SINGLE[GSM7]:
            segments = (gsm7.encode(text),)
        else:
            segments = tuple(gsm7.encode(chunk) for chunk in _gsm_chunks(text))
        return EncodedText(text, GSM7, len(text), septets, segments)
    encoded = text.encode("utf-16-be")
    units = len(encoded) // 2
    if units > MAX_CHARACTERS[UCS2]:
        raise EncodingError(
            "body_too_long",
            f"The message needs UCS-2 and has {units} UCS-2 characters; at most 630 are allowed.",
        )
    segments = (encoded,) if units <= SINGLE[UCS2] else tuple(_ucs2_chunks(encoded))
    return EncodedText(text, UCS2, units, units, segments)
