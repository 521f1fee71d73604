"""A resource that fails to start stops those that had started before it (issue #14: one cleanup context per
resource in the app factory). Real failures: a database never migrated, a Redis nobody listens on."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.exceptions
import sqlalchemy.exc
from aiohttp import web

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.bench.processes import free_port
from gateway.store.migrate import upgrade


async def _left_running(before: set[asyncio.Task]) -> list[str]:
    """The tasks started since ``before`` that are still running once the loop had a moment to end them."""
    for _ in range(250):
        left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
        if not left:
            return []
        await asyncio.sleep(0.02)
    return sorted(t.get_name() for t in left)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_when_the_dispatcher_cannot_start_the_binds_and_the_webhook_sender_stop_again(settings, sim):
    """The database was never migrated: the dispatcher's start (it records its instance) fails, after the
    webhook sender started and the carrier bound. Cleaning up unbinds the carrier and leaves no task running."""
    settings.carriers[0].port = sim.port
    before = asyncio.all_tasks()
    app = create_app(settings)
    runner = web.AppRunner(app)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="no such table"):
        await runner.setup()
    assert app[app_keys.CARRIERS].ready and sim.connections  # it had bound before the dispatcher failed
    await runner.cleanup()
    assert await _left_running(before) == []
    assert not sim.connections  # unbound
    # the same settings start once the database is migrated: nothing of the failed start is in the way
    await upgrade(settings.database_url)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await runner.cleanup()


async def test_when_redis_is_unreachable_the_embedded_simulator_and_the_webhook_sender_stop_again(migrated):
    """Bind slots are leased in Redis, which nobody listens on: the start fails after the embedded SMSC
    simulator and the webhook sender started. Cleaning up closes the simulator's ports and ends every task."""
    settings = migrated
    settings.simulator.embedded = True
    settings.voice.enabled = False
    settings.carriers[0].port = 0  # the embedded simulator's
    settings.carriers[0].max_binds = 1
    settings.redis.url = f"redis://127.0.0.1:{free_port()}/0"
    settings.redis.timeout_s = 0.5
    before = asyncio.all_tasks()
    app = create_app(settings)
    runner = web.AppRunner(app)
    with pytest.raises(redis.exceptions.ConnectionError):
        await runner.setup()
    services = app[app_keys.SIMULATOR]
    ports = (services.smpp_port, services.http_port)
    assert all(_listening(p) for p in ports)  # it had started before the bind slots failed
    await runner.cleanup()
    assert not any(_listening(p) for p in ports)
    assert await _left_running(before) == []
