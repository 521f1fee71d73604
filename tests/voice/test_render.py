"""Scripts to telephony audio with real espeak-ng speech."""

from __future__ import annotations

import asyncio

import pytest

from voice.audio import inspect_wav
from voice.markup import Chunk, VoiceInputError, code_script, parse
from voice.render import Renderer
from voice.signing import sign_url, verify


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    r = Renderer(tmp_path_factory.mktemp("audio"), workers=2)
    yield r
    r.close()


async def test_real_telephony_audio_of_plausible_length(renderer):
    words = "Your appointment with doctor Smith is tomorrow at three in the afternoon"
    audio = await renderer.render(words)
    info = inspect_wav(audio.path)
    assert (info.format_tag, info.sample_rate, info.channels, info.bits_per_sample) == (7, 8000, 1, 8)
    assert info.is_telephony and not audio.cached
    n = len(words.split())
    assert 0.2 * n * 1000 < audio.duration_ms < 0.9 * n * 1000 + 500


async def test_cache_hit_synthesizes_nothing(renderer):
    first = await renderer.render("Cache me if you can", voice="en-us")
    before = renderer.syntheses
    again = await renderer.render("Cache me if you can", voice="en-us")
    assert again.cached and again.key == first.key and renderer.syntheses == before
    other_voice = await renderer.render("Cache me if you can", voice="en-gb")
    assert other_voice.key != first.key and renderer.syntheses == before + 1


async def test_concurrent_identical_renders_synthesize_once(renderer):
    before = renderer.syntheses
    results = await asyncio.gather(*(renderer.render("Twelve identical requests at once") for _ in range(12)))
    assert len({r.key for r in results}) == 1 and renderer.syntheses == before + 1


async def test_digits_breaks_and_codes(renderer):
    short = await renderer.render('<speak>Code <say-as interpret-as="digits">12</say-as></speak>')
    long = await renderer.render('<speak>Code <say-as interpret-as="digits">12345678</say-as></speak>')
    assert long.duration_ms > short.duration_ms + 1000  # each digit is read
    plain = await renderer.render("<speak>Wait for it</speak>")
    paused = await renderer.render('<speak>Wait <break time="2s"/> for it</speak>')
    assert paused.duration_ms - plain.duration_ms > 1500
    otp = await renderer.render("Your code is {code}", variables={"code": "4821"})
    assert otp.duration_ms > (await renderer.render("Your code is 4821")).duration_ms  # digit by digit, twice


def test_variables_and_digit_codes():
    chunks = parse("Hello {name}, your code is {code}", {"name": "Ada <3", "code": "4821"})
    assert chunks == [Chunk("Hello Ada <3, your code is 4, 8, 2, 1. Again: 4, 8, 2, 1")]
    chunks = parse("<speak>Hi {name}</speak>", {"name": "<b>&"})
    assert chunks[0].text == "Hi <b>&"  # escaped into the markup, spoken as text
    assert parse(code_script("907"))[1].text == "9, 0, 7"


@pytest.mark.parametrize("script, variables, code", [
    ("", {}, "empty_script"),
    ("   ", {}, "empty_script"),
    ("x" * 3001, {}, "script_too_long"),
    ("<speak>" + "x" * 6000 + "</speak>", {}, "script_too_long"),
    ("<speak>unclosed", {}, "malformed_markup"),
    ("<speak><audio src='x'/></speak>", {}, "malformed_markup"),
    ('<speak><break time="forever"/></speak>', {}, "malformed_markup"),
    ('<speak><prosody rate="warp">x</prosody></speak>', {}, "malformed_markup"),
    ('<!DOCTYPE x [<!ENTITY a "b">]><speak>&a;</speak>', {}, "malformed_markup"),
    ("Hello {name}", {}, "missing_variable"),
])
def test_bad_scripts(script, variables, code):
    with pytest.raises(VoiceInputError) as err:
        parse(script, variables, markup=True if script.startswith("<!") else None)
    assert err.value.code == code


async def test_unknown_voice_and_language(renderer):
    for kwargs, code in [({"voice": "xx-robot"}, "unknown_voice"), ({"language": "tlh"}, "unknown_language"),
                         ({"voice": "fr-fr", "language": "en"}, "unknown_voice")]:
        with pytest.raises(VoiceInputError) as err:
            await renderer.render("hello", **kwargs)
        assert err.value.code == code
    assert (await renderer.resolve_voice(None, "fr")).startswith("fr")


def test_signed_urls():
    url = sign_url("http://gw", "k" * 64, "secret", expires=2000)
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert verify("k" * 64, query["expires"], query["sig"], "secret", now=1000)
    assert not verify("k" * 64, query["expires"], query["sig"], "secret", now=3000)  # expired
    assert not verify("j" * 64, query["expires"], query["sig"], "secret", now=1000)  # another file
    assert not verify("k" * 64, "2001", query["sig"], "secret", now=1000)  # tampered expiry


async def test_each_chunk_spoken_at_its_own_rate(tmp_path):
    """A cold worker, as on a first run. espeak used to be told a new rate and the text without waiting for
    either: a chunk came out at the previous chunk's rate, or cut short, or not at all."""
    long, short = "Please listen carefully to this important message", "Yes"
    renderer = Renderer(tmp_path, workers=1)
    try:
        mixed = await renderer.render("<speak>" + 3 * (f'<prosody rate="50%">{long}</prosody>'
                                                       f'<prosody rate="200%">{short}</prosody>') + "</speak>")
        slow = await renderer.render(f'<speak><prosody rate="50%">{long}</prosody></speak>')
        fast = await renderer.render(f'<speak><prosody rate="200%">{short}</prosody></speak>')
    finally:
        renderer.close()
    padding = 300  # the silence before and after every rendering
    assert slow.duration_ms - padding > 4 * (fast.duration_ms - padding)
    expected = padding + 3 * (slow.duration_ms + fast.duration_ms - 2 * padding)
    assert abs(mixed.duration_ms - expected) < 0.03 * expected, (mixed.duration_ms, expected)
