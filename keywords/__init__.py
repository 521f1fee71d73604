"""Inbound keyword matching and automatic replies: pure functions over text and rules.

The first word decides, case- and punctuation-insensitive ("stop", " Stop.", "STOP please"). The opt-out,
opt-in and help words are fixed by the industry and cannot be removed; customers add their own keywords
(up to 30 per number) with an action.
"""

from __future__ import annotations

from keywords._match import (
    HELP_WORDS,
    MAX_CUSTOM_KEYWORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    RESERVED,
    CustomKeyword,
    KeywordError,
    Match,
    first_word,
    match,
    validate_keyword,
)
from keywords._replies import Program, default_help, default_opt_in, default_stop

__all__ = ["HELP_WORDS", "MAX_CUSTOM_KEYWORDS", "OPT_IN_WORDS", "OPT_OUT_WORDS", "RESERVED", "CustomKeyword",
           "KeywordError", "Match", "Program", "default_help", "default_opt_in", "default_stop", "first_word",
           "match", "validate_keyword"]
