"""GSM-7 / UCS-2 choice, counting and splitting."""

from __future__ import annotations

import pytest

from carriers import gsm7
from carriers.encoding import EncodingError, encode, smart


def test_plain_gsm_fits_160():
    e = encode("a" * 160)
    assert (e.encoding, e.data_coding, len(e.segments), e.characters) == ("gsm7", 0, 1, 160)
    e = encode("a" * 161)
    assert [len(s) for s in e.segments] == [153, 8]


def test_extension_characters_count_two():
    e = encode("{" * 80)
    assert (e.units, len(e.segments)) == (160, 1)
    e = encode("{" * 81)
    assert e.units == 162 and len(e.segments) == 2


def test_an_escape_pair_is_never_split():
    text = "a" * 152 + "€" + "b" * 10  # the euro would straddle septets 153/154
    e = encode(text)
    first = e.segments[0]
    assert len(first) == 152  # the part ends before the escape pair
    assert first[-1] != 0x1B
    assert "".join(gsm7.decode(s) for s in e.segments) == text
    for segment in e.segments:
        assert len(segment) <= 153 and segment[-1] != 0x1B


def test_one_non_gsm_character_makes_it_ucs2():
    e = encode("Hello \u2019world")  # curly apostrophe
    assert (e.encoding, e.data_coding) == ("ucs2", 8)
    e = encode("x" * 70 + "\u2019")
    assert e.units == 71 and [len(s) // 2 for s in e.segments] == [67, 4]


def test_emoji_take_two_units_and_are_never_split():
    text = "a" * 66 + "\U0001F600" + "b"
    e = encode(text)
    assert e.units == 69 and len(e.segments) == 1
    text = "a" * 66 + "\U0001F600" * 3
    e = encode(text)
    assert [len(s) // 2 for s in e.segments] == [66, 6]  # the pair would have straddled 67/68
    assert b"".join(e.segments).decode("utf-16-be") == text


def test_limits():
    encode("a" * 1600)
    with pytest.raises(EncodingError) as err:
        encode("a" * 1601)
    assert err.value.code == "body_too_long"
    encode("ж" * 630)
    with pytest.raises(EncodingError):
        encode("ж" * 631)
    with pytest.raises(EncodingError) as err:
        encode("")
    assert err.value.code == "empty_body"


def test_smart_encoding_keeps_messages_in_gsm7():
    text = "\u201cHi\u201d \u2014 it\u2019s here\u2026"
    assert encode(text).encoding == "ucs2"
    e = encode(text, smart_encoding=True)
    assert e.encoding == "gsm7" and e.text == '"Hi" - it\'s here...'
    assert smart("plain") == "plain"
