"""gatewayctl voice render: the same pipeline, offline, to a file."""

from __future__ import annotations

from click.testing import CliRunner

from gateway.cli import cli
from voice.audio import inspect_wav


def test_voice_render_to_a_file(tmp_path, monkeypatch):  # noqa: ANN001
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


def test_a_script_that_is_not_utf8_is_a_usage_error(tmp_path, monkeypatch):  # noqa: ANN001
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


def test_an_output_in_a_folder_that_does_not_exist_is_a_usage_error(tmp_path):  # noqa: ANN001
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
