"""gatewayctl voice: render scripts offline, send voice messages."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import click

from gateway.cli.context import Ctx, output_file, run_async, utf8_text


def _script(file: Path, param_hint: str) -> str:
    return utf8_text(file, file.read_bytes(), advice="save the script in UTF-8", param_hint=param_hint)


def _variables(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--var")
        out[name] = value
    return out


@click.group()
def voice() -> None:
    """Voice messages: text scripts delivered as phone calls."""


@voice.command("render")
@click.argument("script_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=output_file, help="Where to write the 8 kHz mono mu-law WAV.")
@click.option("--voice", "voice_name", default=None, help="A voice such as en-us, en-gb, fr-fr.")
@click.option("--language", default=None, help="A language such as en, fr.")
@click.option("--var", "variables", multiple=True, help="NAME=VALUE for {NAME} in the script (repeatable).")
@click.pass_obj
def voice_render(obj: Ctx, script_file: Path, output: Path, voice_name: str | None, language: str | None,
                 variables: tuple[str, ...]) -> None:
    """Render SCRIPT_FILE (plain text, or markup starting with <speak>) with the gateway's pipeline."""
    from voice.markup import VoiceInputError
    from voice.render import Renderer

    settings = obj.settings()
    script = _script(script_file, "SCRIPT_FILE")

    async def go():  # noqa: ANN202
        renderer = Renderer(settings.path(settings.voice.cache_dir), workers=1)
        try:
            return await renderer.render(script, voice=voice_name, language=language,
                                         variables=_variables(variables))
        finally:
            renderer.close()

    try:
        audio = run_async(go())
    except VoiceInputError as exc:
        raise click.ClickException(f"{exc} ({exc.code})") from None
    shutil.copyfile(audio.path, output)
    obj.emit({"output": str(output), "duration_ms": audio.duration_ms, "bytes": audio.bytes_len,
              "cached": audio.cached, "key": audio.key})


@voice.command("send")
@click.option("--api-key", envvar="GATEWAY_API_KEY", required=True, help="The sending account's API key.")
@click.option("--to", required=True, help="The number to call (E.164).")
@click.option("--from", "source", default=None, help="A voice number of the account (chosen when absent).")
@click.option("--script", "script_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A file with the script (plain text, or markup starting with <speak>).")
@click.option("--voice", "voice_name", default=None)
@click.option("--var", "variables", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--wait/--no-wait", default=False, help="Wait for the call's outcome.")
@click.pass_obj
def voice_send(obj: Ctx, api_key: str, to: str, source: str | None, script_file: Path, voice_name: str | None,
               variables: tuple[str, ...], wait: bool) -> None:
    """Send a voice message through the running gateway."""
    text = _script(script_file, "--script")
    body = {"to": to, ("markup" if text.lstrip().startswith("<speak") else "script"): text,
            "variables": _variables(variables)} | ({"from": source} if source else {}) | (
        {"voice": voice_name} if voice_name else {})

    async def go() -> dict:
        data = await obj.call("POST", "/v1/voice-messages", body=body, token=api_key)
        while wait and data["status"] not in ("completed", "busy", "no_answer", "failed"):
            await asyncio.sleep(0.5)
            data = await obj.call("GET", f"/v1/voice-messages/{data['id']}", token=api_key)
        return data

    obj.emit(run_async(go()))
