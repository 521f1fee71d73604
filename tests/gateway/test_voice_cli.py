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
