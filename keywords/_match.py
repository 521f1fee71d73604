from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REVOKE",
                           "REMOVE", "ARRET"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
RESERVED = OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS
MAX_CUSTOM_KEYWORDS = 30
ACTIONS = ("auto_response", "opt_out", "opt_in")

_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")  # letters/digits, inner hyphens kept (OPT-OUT)
_VALID = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,29}$")


class KeywordError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class CustomKeyword:
    keyword: str
    action: str  # auto_response | opt_out | opt_in
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    keyword: str  # the word as matched, upper case
    kind: str  # opt_out | opt_in | help | custom
    action: str  # opt_out | opt_in | help | auto_response
    message: str | None = None  # a custom keyword's reply


def first_word(text: str) -> str | None:
    """The first word, upper case, without surrounding punctuation (accents folded: ARRÊT -> ARRET)."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    m = _WORD.search(folded)
    return m.group(0).upper() if m else None


def match(text: str, custom: Iterable[CustomKeyword] = ()) -> Match | None:
    word = first_word(text)
    if word is None:
        return None
    if word in OPT_OUT_WORDS:
        return Match(word, "opt_out", "opt_out")
    if word in OPT_IN_WORDS:
        return Match(word, "opt_in", "opt_in")
    if word in HELP_WORDS:
        return Match(word, "help", "help")
    for kw in custom:
        if kw.keyword == word:
            return Match(word, "custom", kw.action, kw.message)
    return None


def validate_keyword(keyword: str, action: str, message: str | None, existing: int) -> CustomKeyword:
    word = (keyword or "").strip().upper()
    if not _VALID.match(word):
        raise KeywordError("invalid_keyword", "A keyword is one word of 1 to 30 letters, digits or hyphens.")
    if word in RESERVED:
        raise KeywordError("reserved_keyword", f"{word} is a reserved keyword; its reply can be customized instead.")
    if action not in ACTIONS:
        raise KeywordError("invalid_action", f"action must be one of {', '.join(ACTIONS)}.")
    if action == "auto_response" and not (message and message.strip()):
        raise KeywordError("missing_message", "An auto_response keyword needs a message.")
    if message is not None and len(message) > 1600:
        raise KeywordError("message_too_long", "A keyword's reply has at most 1,600 characters.")
    if existing >= MAX_CUSTOM_KEYWORDS:
        raise KeywordError("too_many_keywords", f"A number has at most {MAX_CUSTOM_KEYWORDS} custom keywords.")
    return CustomKeyword(word, action, message)
