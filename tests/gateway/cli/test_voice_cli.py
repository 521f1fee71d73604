"""gatewayctl voice render: the same pipeline, offline, to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from gateway.cli import cli
from gateway.settings import PROJECT_ROOT
from voice.audio import inspect_wav


def test_voice_render_to_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_VOICE_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "script.txt"
    script.write_text("Hello {name}, your code is {code}.")
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(cli, ["voice", "render", str(script), "-o", str(out), "--var", "name=Ada",
                                      "--var", "code=4821"])
    assert result.exit_code == 0, result.output
    assert inspect_wav(out).is_telephony and inspect_wav(out).duration_ms > 2000
    result = CliRunner().invoke(cli, ["voice", "render", str(script), "-o", str(out)])
    assert result.exit_code == 1 and "missing_variable" in result.output
    result = CliRunner().invoke(cli, ["voice", "render", str(script), "-o", str(out), "--var", "oops"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output


def test_voice_render_cold_with_no_stdin(tmp_path):
    """As CI runs it: a process of its own with no standard input, an empty cache (a cold worker), twice. The
    worker used to read the WAV file espeak was still writing ("Aborted!", an EOFError), and the synthesizer's
    "Audio saved to ..." could come late, onto the command's stdout."""
    script = PROJECT_ROOT / "examples" / "script.txt"
    runs = []
    for i in range(2):
        out = tmp_path / f"out{i}.wav"
        done = subprocess.run([sys.executable, "-m", "gateway", "voice", "render", str(script), "-o", str(out),
                               "--var", "name=Ada", "--var", "code=4821", "--json"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "GATEWAY_VOICE_CACHE_DIR": str(tmp_path / f"cache{i}")})
        assert done.returncode == 0, done.stdout + done.stderr
        runs.append(json.loads(done.stdout))  # one JSON document, nothing else
        assert not runs[-1]["cached"] and inspect_wav(out).is_telephony
    assert abs(runs[0]["duration_ms"] - runs[1]["duration_ms"]) < 0.02 * runs[0]["duration_ms"]  # the same speech
    assert runs[0]["duration_ms"] > 4000


def test_a_script_that_is_not_utf8_is_a_usage_error(tmp_path, monkeypatch):
    """A script saved in Latin-1 (as some editors do): a sentence naming the file and line, exit 2, no traceback,
    and for send nothing reaches the gateway (the URL leads nowhere)."""
    monkeypatch.setenv("GATEWAY_VOICE_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "script.txt"
    script.write_bytes("Bonjour,\nvotre rendez-vous est confirm\u00e9.".encode("latin-1"))
    for args in (["voice", "render", str(script), "-o", str(tmp_path / "out.wav")],
                 ["--url", "http://127.0.0.1:9", "voice", "send", "--api-key", "gk_x", "--to", "+14155550123",
                  "--script", str(script)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"{script} is not UTF-8 text (line 2)" in result.output and result.exception.__class__ is SystemExit


def test_an_output_in_a_folder_that_does_not_exist_is_a_usage_error(tmp_path):
    """voice render and optouts export check -o's folder first: a sentence and exit 2, not a traceback after the
    work (nothing is asked of the gateway: the URL leads nowhere)."""
    script = tmp_path / "script.txt"
    script.write_text("Hello.")
    missing = tmp_path / "no" / "such"
    for args in (["voice", "render", str(script), "-o", str(missing / "out.wav")],
                 ["--url", "http://127.0.0.1:9", "optouts", "export", "--account", "1", "-o", str(missing / "x.csv")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"the folder {missing} does not exist" in result.output
