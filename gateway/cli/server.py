"""Running the gateway (and the standalone simulator) until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from typing import Callable

import click
from aiohttp import web
from sqlalchemy import select

from carriers.simulator.fleet import SimulatedCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.cli import memory
from gateway.settings import Settings
from gateway.store.accounts import create_account, hash_key, issue_key, revoke_keys
from gateway.store.migrate import upgrade
from registry.models import Account, ApiKey, Number

DEMO_ACCOUNT = "demo"
DEMO_NUMBER = "12345"  # a short code: it may send to US numbers without 10DLC registration
DEMO_VOICE_NUMBER = "+14155550100"  # places the demo's voice calls


async def seed_demo(app: web.Application, settings: Settings) -> str:
    """Make sure the demo account owns an active short code and a voice number. Its API key stays the one in
    data/demo_api_key while that is still a valid key of the demo account (a `$KEY` saved in a shell keeps working
    across restarts); otherwise a new key replaces the old ones."""
    path = settings.data_path / "demo_api_key"
    saved = path.read_text().strip() if path.is_file() else ""
    async with app[app_keys.SESSIONMAKER]() as session, session.begin():
        account = await session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT))
        if account is None:
            account, key = await create_account(session, DEMO_ACCOUNT)
        elif saved and await session.scalar(select(ApiKey.id).where(
                ApiKey.account_id == account.id, ApiKey.key_hash == hash_key(saved), ApiKey.revoked_at.is_(None))):
            key = saved
        else:
            await revoke_keys(session, account.id)
            key = await issue_key(session, account.id, label="demo")
        if await session.scalar(select(Number).where(Number.number == DEMO_NUMBER)) is None:
            session.add(Number(number=DEMO_NUMBER, type="short_code", country="US", capabilities="sms",
                               status="active", account_id=account.id, carrier="sim"))
        if await session.scalar(select(Number).where(Number.number == DEMO_VOICE_NUMBER)) is None:
            # an unregistered US long code: voice only (it may not send SMS to US numbers)
            session.add(Number(number=DEMO_VOICE_NUMBER, type="long_code", country="US", capabilities="voice",
                               status="active", account_id=account.id, carrier="sim"))
    app[app_keys.AUTH].forget()
    if key != saved:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
    return key


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings, *, demo: bool = False, migrate: bool = True) -> None:
    if migrate:
        await upgrade(settings.database_url)
    if demo:  # the demo's webhook receivers run on this machine
        settings.webhooks.allow_private_addresses = True
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()  # a resource that fails to start: the cleanup below stops those started before it
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        click.echo(f"Gateway: http://{settings.server.host}:{settings.server.port}")
        if settings.simulator.embedded:
            sim = settings.simulator
            click.echo(f"SMPP simulator: {sim.host}:{sim.smpp_port} (control API http://{sim.host}:{sim.http_port})")
            services = app.get(app_keys.SIMULATOR)
            if services is not None:
                _echo_named(sim.host, services.carriers)
                _echo_http_face(services)
            if settings.voice.enabled:
                click.echo(f"Voice carrier simulator: http://{sim.host}:{sim.voice_port}")
        registry = app[app_keys.REGISTRY]
        click.echo(f"10DLC registry simulator: {registry.simulator_url} (gatewayctl registry ...)"
                   if registry.simulator_url else f"10DLC registry: {registry.csp.client.base_url}")
        if demo:
            key = await seed_demo(app, settings)
            click.echo(f"API key: {key}")
            click.echo(f"(also in {settings.data_path / 'demo_api_key'}; the demo account sends SMS from {DEMO_NUMBER}"
                       f" and calls from {DEMO_VOICE_NUMBER}; webhooks may reach loopback and private addresses)")
        click.echo("Press Ctrl+C to stop.")
        # what start-up made (modules, the app, SQLAlchemy's mappers: some 400,000 objects) lives as long as the
        # process: full collections, which stop every request meanwhile, need not walk it each time again
        gc.collect()
        gc.freeze()
        memory.install(settings.data_path, _caches(), {"app": app})
        await _until_signalled()
    finally:
        await runner.cleanup()


def _caches() -> dict[str, Callable[[], int]]:
    """The caches that fill with traffic, for the memory report (their entries now)."""
    from gateway import validation
    from gateway.webhooks import outbox

    return {"phone_numbers": lambda: validation._parse_phone.cache_info().currsize,
            "webhook_urls": lambda: outbox.target_url.cache_info().currsize}


def _echo_named(host: str, carriers: dict) -> None:
    """The named simulated carriers, each on its own port."""
    for name, sim in carriers.items():
        click.echo(f"  carrier {name}: {host}:{sim.port} (control API .../carriers/{name}/)")


def _echo_http_face(services) -> None:  # noqa: ANN001
    """Where HTTP carriers reach the simulator, when its HTTP face is on."""
    face = services.http_face
    if face is not None:
        click.echo(f"  HTTP SMS face: {face.url}/cgi-bin/sendsms (kannel), {face.url}/json/messages (json)")


async def serve_simulator(host: str, smpp_port: int, http_port: int, accounts: dict[str, str],
                          receipt_delay: float, id_format: str, receipt_id_format: str = "same",
                          carriers: list[SimulatedCarrier] | None = None, sms_http_port: int | None = None) -> None:
    from carriers.simulator import SimulatorServices

    services = SimulatorServices(host=host, smpp_port=smpp_port, http_port=http_port, accounts=accounts,
                                 receipt_delay=receipt_delay, id_format=id_format,
                                 receipt_id_format=receipt_id_format, carriers=carriers, sms_http_port=sms_http_port)
    await services.start()
    try:
        click.echo(f"SMPP simulator: {host}:{services.smpp_port} (control API http://{host}:{services.http_port})")
        _echo_named(host, services.carriers)
        _echo_http_face(services)
        await _until_signalled()
    finally:
        await services.stop()


async def serve_registry_simulator(host: str, port: int, api_key: str, api_secret: str,
                                   snapshot: str | None) -> None:
    """The 10DLC registry simulator alone (gatewayctl registry simulator serve)."""
    from registry.csp.simulator import start_simulator
    from registry.csp.state import SimState

    runner, url = await start_simulator(SimState(api_key, api_secret, snapshot_path=snapshot), host, port)
    try:
        click.echo(f"registry simulator: {url} (CSP API {url}/v1, DCA {url}/dca/v1, control {url}/control)")
        await _until_signalled()
    finally:
        await runner.cleanup()
