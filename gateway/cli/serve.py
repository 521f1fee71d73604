"""gatewayctl run, simulator and db: serve the gateway or the SMSC simulator until stopped, and migrate the database.

The serving itself (gateway.cli.server, which builds the whole application) is imported when `run` or `simulator`
runs, not when any gatewayctl command starts; so is the migration code for `db upgrade`."""

from __future__ import annotations

import errno
from typing import Any

import click

from gateway import logs
from gateway.cli.context import EXIT_UNREACHABLE, Ctx, run_async
from gateway.loop import run_server


@click.command()
@click.option("--demo/--no-demo", default=False, help="Create the demo account and number; print its API key.")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
@click.pass_obj
def run(obj: Ctx, demo: bool, migrate: bool) -> None:
    """Run the gateway (and, when configured, the embedded SMPP simulator)."""
    from gateway.cli.server import serve

    settings = obj.settings()
    logs.configure(settings.logging)
    serve_until_stopped(serve(settings, demo=demo, migrate=migrate), settings.server.event_loop)


def serve_until_stopped(server: Any, event_loop: str = "uvloop") -> None:
    """Run a server until Ctrl+C, on uvloop's event loop or asyncio's own (``[server] event_loop``); a port that
    another process holds is a sentence (exit 1), not a traceback."""
    try:
        run_server(server, event_loop)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise click.ClickException(
            f"{exc}. Another gateway or simulator (a `make run`?) is listening there: stop it, or choose other "
            "ports (GATEWAY_PORT, GATEWAY_SIMULATOR_SMPP_PORT, ...).") from None


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: [simulator] host).")
@click.option("--smpp-port", type=int, default=None, help="SMPP port (default: [simulator] smpp_port).")
@click.option("--http-port", type=int, default=None, help="Control API port (default: [simulator] http_port).")
@click.option("--system-id", default=None, help="Accepted system_id (default: [simulator] system_id).")
@click.option("--password", default=None, help="Its password (default: [simulator] password).")
@click.option("--receipt-delay-ms", type=int, default=None, help="Delay before each delivery receipt.")
@click.option("--receipt-id-format", type=click.Choice(["same", "hex", "decimal", "padded"]), default=None,
              help="How receipts quote the submit_sm_resp ids (default: [simulator] receipt_id_format).")
@click.option("--carrier", "carriers", multiple=True, metavar="NAME[=PORT]",
              help="Also simulate this named carrier on its own SMPP port (default: any free one); repeatable. "
                   "Adds to [[simulator.carriers]].")
@click.option("--sms-http-port", type=click.IntRange(-1, 65535), default=None,
              help="Also serve the SMSC's HTTP face for HTTP carriers (Kannel's /cgi-bin/sendsms and /json/messages) "
                   "on this port (0: any free one, -1: off; default: [simulator] sms_http_port).")
@click.pass_obj
def simulator(obj: Ctx, host: str | None, smpp_port: int | None, http_port: int | None, system_id: str | None,
              password: str | None, receipt_delay_ms: int | None, receipt_id_format: str | None,
              carriers: tuple[str, ...], sms_http_port: int | None) -> None:
    """Run the SMSC simulator standalone (SMPP server plus its HTTP control API), with any named carriers."""
    from carriers.simulator.fleet import SimulatedCarrier
    from gateway.cli.server import serve_simulator

    settings = obj.settings()
    cfg = settings.simulator
    named = list(cfg.carriers)
    for spec in carriers:
        name, _, port = spec.partition("=")
        carrier = SimulatedCarrier(name=name, smpp_port=int(port) if port.isdigit() else 0)
        if carrier.problems() or (port and not port.isdigit()) or name in {c.name for c in named}:
            raise click.BadParameter(f"{spec!r}: expected a new NAME or NAME=PORT", param_hint="--carrier")
        named.append(carrier)
    face = cfg.sms_http_port if sms_http_port is None else sms_http_port
    logs.configure(settings.logging)
    serve_until_stopped(serve_simulator(
        host or cfg.host, cfg.smpp_port if smpp_port is None else smpp_port,
        cfg.http_port if http_port is None else http_port, {system_id or cfg.system_id: password or cfg.password},
        (cfg.receipt_delay_ms if receipt_delay_ms is None else receipt_delay_ms) / 1000, cfg.id_format,
        receipt_id_format or cfg.receipt_id_format, named, sms_http_port=None if face < 0 else face),
        settings.server.event_loop)


@click.group()
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
