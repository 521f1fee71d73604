"""gatewayctl: run the gateway and its simulator, migrate the database, and administer a running gateway.

Admin commands talk to the running gateway's HTTP admin API (--url / GATEWAY_URL, --token / GATEWAY_TOKEN;
without a token, the one the local gateway generated in its data folder is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
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


@click.group()
@click.option("--url", envvar="GATEWAY_URL", default="http://127.0.0.1:8080", show_default=True,
              help="The running gateway's base URL.")
@click.option("--token", envvar="GATEWAY_TOKEN", default=None,
              help="Operator token (default: the local gateway's data/operator_token).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--config", envvar="GATEWAY_CONFIG", default=None, help="Configuration file (TOML).")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, as_json: bool, config: str | None) -> None:
    """Operate the SMS and voice gateway."""
    ctx.obj = Ctx(url, token, as_json, config)


# --- serving -------------------------------------------------------------------------------------------------
@cli.command()
@click.option("--demo/--no-demo", default=False, help="Create the demo account and number; print its API key.")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
@click.pass_obj
def run(obj: Ctx, demo: bool, migrate: bool) -> None:
    """Run the gateway (and, when configured, the embedded SMPP simulator)."""
    from gateway.cli.server import serve

    settings = obj.settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve_until_stopped(serve(settings, demo=demo, migrate=migrate))


def _serve_until_stopped(server: Any) -> None:
    """Run a server until Ctrl+C; a port that another process holds is a sentence (exit 1), not a traceback."""
    try:
        run_async(server)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise click.ClickException(
            f"{exc}. Another gateway or simulator (a `make run`?) is listening there: stop it, or choose other "
            "ports (GATEWAY_PORT, GATEWAY_SIMULATOR_SMPP_PORT, ...).") from None


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: [simulator] host).")
@click.option("--smpp-port", type=int, default=None, help="SMPP port (default: [simulator] smpp_port).")
@click.option("--http-port", type=int, default=None, help="Control API port (default: [simulator] http_port).")
@click.option("--system-id", default=None, help="Accepted system_id (default: [simulator] system_id).")
@click.option("--password", default=None, help="Its password (default: [simulator] password).")
@click.option("--receipt-delay-ms", type=int, default=None, help="Delay before each delivery receipt.")
@click.option("--receipt-id-format", type=click.Choice(["same", "hex", "decimal", "padded"]), default=None,
              help="How receipts quote the submit_sm_resp ids (default: [simulator] receipt_id_format).")
@click.pass_obj
def simulator(obj: Ctx, host: str | None, smpp_port: int | None, http_port: int | None, system_id: str | None,
              password: str | None, receipt_delay_ms: int | None, receipt_id_format: str | None) -> None:
    """Run the SMSC simulator standalone (SMPP server plus its HTTP control API)."""
    from gateway.cli.server import serve_simulator

    cfg = obj.settings().simulator
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve_until_stopped(serve_simulator(
        host or cfg.host, cfg.smpp_port if smpp_port is None else smpp_port,
        cfg.http_port if http_port is None else http_port, {system_id or cfg.system_id: password or cfg.password},
        (cfg.receipt_delay_ms if receipt_delay_ms is None else receipt_delay_ms) / 1000, cfg.id_format,
        receipt_id_format or cfg.receipt_id_format))


# --- database ------------------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Ctx) -> None:
    """Apply the migrations to the configured database."""
    import sqlalchemy

    from gateway.store.migrate import current, upgrade

    url = obj.settings().database_url

    async def go() -> tuple[str | None, str | None]:
        before = await current(url)
        await upgrade(url)
        return before, await current(url)

    try:
        before, after = run_async(go())
    except (OSError, sqlalchemy.exc.DBAPIError) as exc:  # no server there, no such database, refused credentials
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
        err = click.ClickException(f"Cannot open the database {shown}: {str(exc).splitlines()[0]}")
        err.exit_code = EXIT_UNREACHABLE
        raise err from None
    if before is None:
        click.echo(f"database created (revision {after})")
    elif before != after:
        click.echo(f"database upgraded from revision {before} to {after}")
    else:
        click.echo(f"database is up to date (revision {after})")


# --- accounts ------------------------------------------------------------------------------------------------
ACCOUNT_COLUMNS = [("id", "ID"), ("name", "NAME"), ("status", "STATUS"), ("max_rate_per_s", "RATE/S")]


@cli.group()
def accounts() -> None:
    """Customer accounts and their API keys."""


@accounts.command("create")
@click.argument("name")
@click.option("--rate", type=int, default=None, help="Messages per second for the account (default 20).")
@click.pass_obj
def accounts_create(obj: Ctx, name: str, rate: int | None) -> None:
    """Create an account and print its API key (shown once)."""
    body: dict[str, Any] = {"name": name}
    if rate is not None:
        body["max_rate_per_s"] = rate
    data = run_async(obj.call("POST", "/admin/accounts", body=body))
    if obj.as_json:
        obj.emit(data)
    else:
        click.echo(f"Account {data['id']} ({data['name']}) created.")
        click.echo(f"API key: {data['api_key']}")


@accounts.command("list")
@click.pass_obj
def accounts_list(obj: Ctx) -> None:
    """List accounts."""
    data = run_async(obj.call("GET", "/admin/accounts"))
    obj.emit(data, ACCOUNT_COLUMNS, data["accounts"])


# --- benchmarks ----------------------------------------------------------------------------------------------
@cli.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object (start their own gateway and simulator unless --url)."""


def _targets(f):  # noqa: ANN001, ANN202
    f = click.option("--api-key", envvar="GATEWAY_API_KEY", default=None, help="With --url: the account's API key.")(f)
    f = click.option("--simulator-url", default=None, help="With --url: the simulator's control API.")(f)
    return click.option("--target-url", "target_url", default=None,
                        help="Measure this running gateway instead of starting one.")(f)


@bench.command("sms")
@click.option("--messages", type=click.IntRange(1, 1_000_000), default=30_000, show_default=True)
@click.option("--throttles/--no-throttles", default=False, show_default=True,
              help="Keep the pacing limits (by default they are lifted to measure raw throughput).")
@click.option("--mode", type=click.Choice(["batch", "single"]), default="single", show_default=True,
              help="POST /v1/messages/batch or one POST /v1/messages per message.")
@click.option("--concurrency", type=click.IntRange(1, 512), default=64, show_default=True,
              help="Requests in flight.")
@click.option("--callbacks", type=click.Choice(["none", "final", "all"]), default="all", show_default=True,
              help="Status callbacks on every message to a local receiver that counts and verifies them: for "
                   "every event, for final events only, or none.")
@click.option("--batch", type=click.IntRange(1, 1000), default=500, show_default=True)
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for final states.")
@click.option("--instances", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Gateway processes sharing one PostgreSQL queue and Redis limits (more than 1 needs both).")
@click.option("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="With --instances: a PostgreSQL server on which a scratch database is made.")
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True,
              help="With --instances: the Redis that holds the shared limits (under a scratch key prefix).")
@click.option("--rate", type=click.IntRange(1, 10_000), default=5000, show_default=True,
              help="With --instances: the account and short-code limit, kept by all instances together.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_sms(messages: int, throttles: bool, mode: str, concurrency: int, batch: int, timeout: float,
              instances: int, database_url: str, redis_url: str, rate: int, callbacks: str,
              as_json: bool, target_url: str | None, simulator_url: str | None, api_key: str | None) -> None:
    """Throughput and latency of accept -> SMPP -> receipt -> delivered.

    With --instances N, N gateway processes share a scratch PostgreSQL database and Redis, and the output adds
    what the simulator saw each second from all of them together against the shared --rate limit."""
    from gateway.bench import runs as b

    b.run(b.bench_sms(messages=messages, url=target_url, sim_url=simulator_url, key=api_key, throttles=throttles,
                      mode=mode, concurrency=concurrency, batch=batch, timeout=timeout, instances=instances,
                      database_url=database_url, redis_url=redis_url, rate=rate, callbacks=callbacks))


@bench.command("throttle")
@click.option("--seconds", type=click.FloatRange(2, 3600), default=20, show_default=True)
@click.option("--carrier-limits", "trust_score", type=click.IntRange(0, 100), default=None,
              help="Instead: a 10DLC campaign at this trust score, with the simulator enforcing AT&T's limit for "
                   "it; counts ESME_RTHROTTLED answers.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_throttle(seconds: float, trust_score: int | None, as_json: bool, target_url: str | None,
                   simulator_url: str | None, api_key: str | None) -> None:
    """Queue SECONDS x the account's limit at once; print the per-second counts the simulator saw."""
    from gateway.bench import runs as b

    if trust_score is not None:
        b.run(b.bench_carrier_limits(seconds=seconds, trust_score=trust_score, url=target_url,
                                     sim_url=simulator_url, key=api_key))
    else:
        b.run(b.bench_throttle(seconds=seconds, url=target_url, sim_url=simulator_url, key=api_key))


@bench.command("import")
@click.option("--rows", type=click.IntRange(1, 1_000_000), default=100_000, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Dry runs in flight at once from another tenant while the import runs.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_import(rows: int, concurrency: int, as_json: bool, target_url: str | None, simulator_url: str | None,
                 api_key: str | None) -> None:
    """A ROWS-row opt-out CSV import: its duration, and the p99 of another tenant's dry runs meanwhile."""
    from gateway.bench import runs as b

    b.run(b.bench_import(rows=rows, concurrency=concurrency, url=target_url, sim_url=simulator_url, key=api_key))


@bench.command("inbound")
@click.option("--rate", type=click.FloatRange(1, 5000), default=200, show_default=True, help="Messages per second.")
@click.option("--seconds", type=click.FloatRange(1, 3600), default=10, show_default=True)
@click.option("--receiver-down", "receiver_down", type=click.FloatRange(0, 3600), default=0, show_default=True,
              help="The customer's webhook receiver answers 503 for this many seconds first.")
@click.option("--stop-every", type=click.IntRange(0, 1_000_000), default=10, show_default=True,
              help="Every Nth message is a STOP (0: none).")
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to wait for deliveries.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_inbound(rate: float, seconds: float, receiver_down: float, stop_every: int, timeout: float, as_json: bool,
                  target_url: str | None, simulator_url: str | None, api_key: str | None) -> None:
    """Inbound messages at RATE/s: webhook latency, STOP confirmation latency, and lost."""
    from gateway.bench import runs as b

    b.run(b.bench_inbound(rate=rate, seconds=seconds, receiver_down_s=receiver_down, stop_every=stop_every,
                          url=target_url, sim_url=simulator_url, key=api_key, timeout=timeout))


@bench.command("voice")
@click.option("--renders", type=click.IntRange(5, 10_000), default=40, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Synthesis processes.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
def bench_voice(renders: int, concurrency: int, workers: int, as_json: bool) -> None:
    """Speech pipeline: cached serve p99, new 25-word render p95, renders per second."""
    from gateway.bench import runs as b

    b.run(b.bench_voice(renders=renders, concurrency=concurrency, workers=workers))


from gateway.cli.registry import register as _register_registry  # noqa: E402
from gateway.cli.routes import register as _register_routes  # noqa: E402
from gateway.cli.voice import register as _register_voice  # noqa: E402

_register_registry(cli)

_register_voice(cli)
_register_routes(cli)

from gateway.cli.two_way import register as _register_two_way  # noqa: E402 - needs cli defined

_register_two_way(cli)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Ctx).as_json = True


def _json_anywhere(group: click.Group) -> None:
    """`--json` after the subcommand too (`gatewayctl accounts list --json`), not only before it."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _json_anywhere(command)
        elif not any("--json" in p.opts for p in command.params):
            command.params.append(click.Option(["--json"], is_flag=True, expose_value=False, callback=_set_json,
                                               help="Print JSON instead of tables."))


_json_anywhere(cli)


def main() -> None:
    cli(prog_name="gatewayctl")

