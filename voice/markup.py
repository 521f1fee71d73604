"""Voice scripts: plain text, or a small markup, personalised with variables.

Markup (a subset of SSML)::

    <speak>
      Hello {name}. <break time="400ms"/>
      Your code is <say-as interpret-as="digits">{code}</say-as>.
      <prosody rate="slow">Thank you.</prosody>
    </speak>

- ``<speak>``: the root; a script that starts with it is markup, anything else plain text.
- ``<break time="500ms"/>`` or ``time="1s"``: a pause (at most 10 s).
- ``<say-as interpret-as="digits">1234</say-as>``: read digit by digit.
- ``<prosody rate="slow|medium|fast|80%">...</prosody>``: speaking rate (50% to 200% of normal).

Variables ``{name}`` are filled from ``variables`` before the script is read (values are escaped, so they are
always spoken as text). A variable named ``code``, ``otp`` or ``pin`` is read digit by digit and repeated, as
one-time codes should be. Limits: 3,000 characters of plain text, 6,000 of markup.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Mapping
from xml.sax.saxutils import escape

PLAIN_MAX, MARKUP_MAX = 3000, 6000
BASE_WPM = 170
RATES = {"x-slow": 0.6, "slow": 0.75, "medium": 1.0, "fast": 1.25, "x-fast": 1.5}
CODE_VARIABLES = {"code", "otp", "pin"}
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,40})\}")


class VoiceInputError(ValueError):
    """Bad script input. ``code``: empty_script, script_too_long, malformed_markup, missing_variable,
    unknown_voice, unknown_language."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    rate_wpm: int = BASE_WPM
    pause_ms: int = 0  # silence before the text


def digits(value: str) -> str:
    """'1234' -> '1, 2, 3, 4' (the commas make the synthesizer pause between digits)."""
    return ", ".join(ch for ch in value if ch.isalnum())


def code_script(code: str) -> str:
    """Markup that reads a one-time code digit by digit, twice."""
    said = f'<say-as interpret-as="digits">{escape(code)}</say-as>'
    return f'<speak>Your code is {said}. <break time="600ms"/> Again, your code is {said}.</speak>'


def _substitute(script: str, variables: Mapping[str, object], markup: bool) -> str:
    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in variables:
            raise VoiceInputError("missing_variable", f"The script uses {{{name}}} but no value was given for it.")
        value = str(variables[name])
        if not markup:
            return f"{digits(value)}. Again: {digits(value)}" if name.lower() in CODE_VARIABLES else value
        if name.lower() in CODE_VARIABLES:
            said = f'<say-as interpret-as="digits">{escape(value)}</say-as>'
            return f'{said}. <break time="500ms"/> Again: {said}'
        return escape(value)

    return _VAR.sub(fill, script)


def _rate(value: str | None) -> float:
    if value is None:
        return 1.0
    value = value.strip().lower()
    if value in RATES:
        return RATES[value]
    if value.endswith("%"):
        try:
            pct = float(value[:-1]) / 100
        except ValueError:
            pct = -1
        if 0.5 <= pct <= 2.0:
            return pct
    raise VoiceInputError("malformed_markup", f"prosody rate {value!r} is not slow, medium, fast or 50%-200%.")


def _pause(value: str | None) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", value or "")
    if not m:
        raise VoiceInputError("malformed_markup", f'break time {value!r} must look like "500ms" or "1s".')
    ms = float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    if ms > 10_000:
        raise VoiceInputError("malformed_markup", "A break lasts at most 10 s.")
    return int(ms)


def parse(script: str, variables: Mapping[str, object] | None = None, *, markup: bool | None = None) -> list[Chunk]:
    """The chunks to speak, or VoiceInputError."""
    if not isinstance(script, str) or not script.strip():
        raise VoiceInputError("empty_script", "The script is empty.")
    is_markup = script.lstrip().startswith("<speak") if markup is None else markup
    limit = MARKUP_MAX if is_markup else PLAIN_MAX
    if len(script) > limit:
        raise VoiceInputError("script_too_long", f"A {'markup' if is_markup else 'plain'} script has at most "
                                                 f"{limit} characters; this one has {len(script)}.")
    text = _substitute(script, variables or {}, is_markup)
    if not is_markup:
        chunks = [Chunk(" ".join(text.split()))]
    else:
        if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
            raise VoiceInputError("malformed_markup", "DOCTYPE and entity declarations are not allowed.")
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise VoiceInputError("malformed_markup", f"The markup is not well formed: {exc}.") from None
        if root.tag != "speak":
            raise VoiceInputError("malformed_markup", "The markup's root must be <speak>.")
        chunks = []
        _walk(root, 1.0, chunks, [0])
    chunks = [c for c in chunks if c.text.strip() or c.pause_ms]
    if not any(c.text.strip() for c in chunks):
        raise VoiceInputError("empty_script", "The script has nothing to say.")
    return chunks


def _walk(node: ET.Element, rate: float, out: list[Chunk], pending_pause: list[int]) -> None:
    def say(text: str | None, r: float) -> None:
        if text and text.strip():
            out.append(Chunk(" ".join(text.split()), int(BASE_WPM * r), pending_pause[0]))
            pending_pause[0] = 0

    say(node.text, rate)
    for child in node:
        if child.tag == "break":
            pending_pause[0] += _pause(child.get("time"))
        elif child.tag == "say-as":
            if child.get("interpret-as") not in ("digits", "characters", "telephone"):
                raise VoiceInputError("malformed_markup", "say-as supports interpret-as=\"digits\".")
            say(digits("".join(child.itertext())), rate * 0.85)
        elif child.tag == "prosody":
            _walk(child, _rate(child.get("rate")), out, pending_pause)
        elif child.tag in ("p", "s"):
            _walk(child, rate, out, pending_pause)
            pending_pause[0] += 300
        else:
            raise VoiceInputError("malformed_markup", f"<{child.tag}> is not supported (speak, break, say-as, "
                                                      "prosody, p, s).")
        say(child.tail, rate)
    if pending_pause[0] and out:
        out.append(Chunk("", rate_wpm=int(BASE_WPM * rate), pause_ms=pending_pause[0]))
        pending_pause[0] = 0
