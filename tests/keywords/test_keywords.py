"""Keyword matching: every form of the first word, reserved words, custom keywords."""

from __future__ import annotations

import pytest

from keywords import (
    OPT_OUT_WORDS,
    CustomKeyword,
    KeywordError,
    Program,
    default_help,
    default_stop,
    match,
    validate_keyword,
)


@pytest.mark.parametrize("text", ["stop", " Stop.", "STOP please", "Stop!!!", "\\nstop", "STOP\\n", "sToP",
                                  "stop, thanks", "¡stop!", "'stop'"])
def test_stop_in_every_form(text):
    m = match(text.replace("\\n", "\n"))
    assert (m.keyword, m.kind, m.action) == ("STOP", "opt_out", "opt_out")


@pytest.mark.parametrize("word", sorted(OPT_OUT_WORDS))
def test_every_opt_out_word(word):
    assert match(f"{word.lower()} now").kind == "opt_out"


def test_arret_with_accent_and_opt_out_hyphen():
    assert match("Arrêt").keyword == "ARRET"
    assert match("opt-out please").keyword == "OPT-OUT"


@pytest.mark.parametrize("text, kind", [("START", "opt_in"), ("unstop", "opt_in"), ("Yes!", "opt_in"),
                                        ("help", "help"), ("Info?", "help")])
def test_opt_in_and_help(text, kind):
    assert match(text).kind == kind


@pytest.mark.parametrize("text", ["please stop", "stopping by later", "", "   ", "!!!", "helpful"])
def test_only_the_first_whole_word_counts(text):
    assert match(text) is None


def test_custom_keywords():
    custom = [CustomKeyword("HOURS", "auto_response", "Open 9-5"), CustomKeyword("PAUSE", "opt_out")]
    m = match("hours?", custom)
    assert (m.kind, m.action, m.message) == ("custom", "auto_response", "Open 9-5")
    assert match("Pause", custom).action == "opt_out"
    assert match("stop", custom).kind == "opt_out"  # reserved words win


def test_validate_keyword():
    assert validate_keyword(" deals ", "auto_response", "20% off", 0).keyword == "DEALS"
    for args, code in [(("STOP", "opt_out", None, 0), "reserved_keyword"), (("two words", "opt_in", None, 0),
                       "invalid_keyword"), (("X", "dance", None, 0), "invalid_action"),
                       (("X", "auto_response", "", 0), "missing_message"), (("X", "opt_in", None, 30),
                                                                              "too_many_keywords")]:
        with pytest.raises(KeywordError) as err:
            validate_keyword(*args)
        assert err.value.code == code


def test_default_replies():
    p = Program("Acme Alerts", "help@acme.example", "Up to 4 msgs/month")
    help_text = default_help(p)
    assert "Acme Alerts" in help_text and "help@acme.example" in help_text and "Msg&data rates may apply" in help_text
    assert "STOP" in help_text and "Up to 4 msgs/month" in help_text
    assert "Acme Alerts" in default_stop(p) and "no more messages" in default_stop(p)
