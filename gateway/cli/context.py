"""What every gatewayctl command group shares: the context (the gateway's URL and token, JSON or tables), the
API error, running a coroutine, and the output helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, AsyncIterable, AsyncIterator, Iterator

import aiohttp
import click

from gateway.settings import Settings, SettingsError, load_settings

EXIT_USAGE, EXIT_API, EXIT_UNREACHABLE = 2, 1, 3


class ApiError(click.ClickException):
    """The gateway answered with an error; shown as its sentence and code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.exit_code = EXIT_API
        self.status, self.code = status, code


class Ctx:
    def __init__(self, url: str, token: str | None, as_json: bool, config: str | None):
        self.url = url.rstrip("/")
        self._token = token
        self.as_json = as_json
        self.config = config

    def settings(self) -> Settings:
        try:
            return load_settings(self.config)
        except SettingsError as exc:
            raise click.ClickException(f"configuration: {exc}") from None

    @property
    def token(self) -> str:
        if self._token:
            return self._token
        settings = self.settings()
        path = settings.data_path / "operator_token"
        if settings.security.operator_token:
            return settings.security.operator_token
        if path.exists():
            return path.read_text().strip()
        raise click.ClickException("No operator token: pass --token or set GATEWAY_TOKEN.")

    async def call(self, method: str, path: str, *, body: Any = None, token: str | None = None,
                   params: dict | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        with self._reaching():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
                async with http.request(method, self.url + path, json=body, headers=headers,
                                        params=params) as resp:
                    text = await resp.text()
                    data = json.loads(text) if text else None
                    if resp.status >= 400:
                        err = (data or {}).get("error", {}) if isinstance(data, dict) else {}
                        raise ApiError(resp.status, err.get("code", "http_error"), err.get("message", text[:200]))
                    return data

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """A gateway that cannot be reached: a sentence and exit 3, not a traceback."""
        try:
            yield
        except aiohttp.ClientConnectionError as exc:
            err = click.ClickException(f"Cannot reach the gateway at {self.url}: {exc}")
            err.exit_code = EXIT_UNREACHABLE
            raise err from None

    async def send_text(self, http: aiohttp.ClientSession, method: str, path: str, *,
                        data: AsyncIterable[bytes] | None = None, params: dict | None = None) -> Any:
        """A call with a CSV body or a CSV answer: the answer's JSON, or its text when it is not JSON."""
        headers = {"Authorization": f"Bearer {self.token}"} | ({"Content-Type": "text/csv"} if data is not None else {})
        with self._reaching():
            async with http.request(method, self.url + path, data=data, params=params, headers=headers) as resp:
                body = await resp.text()
                is_json = resp.content_type == "application/json"
                data = json.loads(body) if is_json and body else body
                if resp.status >= 400:
                    err = data.get("error", {}) if isinstance(data, dict) else {}
                    raise ApiError(resp.status, err.get("code", "http_error"), err.get("message", body[:200]))
                return data

    def upload_csv(self, path: str, file: Path, *, params: dict | None = None) -> Any:
        """POST a CSV file to an import route, streamed (chunked), with the bytes sent on stderr; the answer's
        JSON. An empty or non-UTF-8 file is a usage error (exit 2) said in a sentence, before anything is sent."""
        raw = file.read_bytes()
        if not raw.strip():
            raise click.BadParameter(f"{file} is empty: there is nothing to import.", param_hint="FILE")
        utf8_text(file, raw, advice="save it as CSV in UTF-8", param_hint="FILE")

        async def pieces() -> AsyncIterator[bytes]:
            with click.progressbar(length=len(raw), label=f"sending {file.name}", file=sys.stderr,
                                   show_pos=True) as bar:
                for start in range(0, len(raw), 1 << 16):
                    yield raw[start:start + (1 << 16)]
                    bar.update(min(1 << 16, len(raw) - start))
            click.echo("importing ...", err=True)

        async def go() -> Any:
            async with aiohttp.ClientSession() as http:
                return await self.send_text(http, "POST", path, data=pieces(), params=params)

        return run_async(go())

    def emit(self, data: Any, table: list[tuple[str, str]] | None = None, rows: list[dict] | None = None) -> None:
        """Print JSON for scripts, or a table (columns: (key, title)) for people."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        if table is None:
            for key, value in (data or {}).items():
                click.echo(f"{key}: {value}")
            return
        rows = rows if rows is not None else [data]
        widths = [max([len(title)] + [len(_cell(r.get(key))) for r in rows]) for key, title in table]
        click.echo("  ".join(title.ljust(w) for (_, title), w in zip(table, widths)).rstrip())
        for r in rows:
            click.echo("  ".join(_cell(r.get(key)).ljust(w) for (key, _), w in zip(table, widths)).rstrip())


def output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """An --output's folder must exist: a usage error before the work rather than a traceback after it."""
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(f"the folder {value.parent} does not exist.", ctx=ctx, param=param)
    return value


def utf8_text(file: Path, raw: bytes, *, advice: str, param_hint: str) -> str:
    """A file's text (UTF-8, a BOM allowed), or a usage error (exit 2) naming the first line that is not."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise click.BadParameter(f"{file} is not UTF-8 text (line {line}): {advice}.", param_hint=param_hint) from None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def run_async(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)
