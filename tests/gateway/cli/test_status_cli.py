"""gatewayctl status against a running gateway on a real port, bound to the SMSC simulator over real sockets."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import wait_for
from tests.gateway.cli.test_cli import invoke


@pytest.fixture
async def running(migrated, sim):
    migrated.carriers[0].port, migrated.carriers[0].window = sim.port, 9
    app = create_app(migrated)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()

    async def bound() -> bool:
        return app[app_keys.CARRIERS].ready

    await wait_for(bound)
    yield app, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


async def test_status_prints_tables_and_json(running, sim):
    app, url = running
    me = app[app_keys.DISPATCHER].instance_id
    code, out = await invoke("status", url=url)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Gateway ") and f"instance {me}" in lines[0] and " up " in lines[0]
    assert lines[1].startswith("Queue: queued 0, sending 0, sent 0. Webhooks: 0 pending.")
    header = lines.index(next(line for line in lines if line.startswith("CARRIER  KIND")))
    assert lines[header].split() == ["CARRIER", "KIND", "READY", "SENT/S", "RCPT/S", "IN/S", "SENT", "1M", "RCPT",
                                     "1M", "IN", "1M", "HEALTH"]
    assert lines[header + 1].split() == ["sim", "smpp", "yes", "0.00", "0.00", "0.00", "0", "0", "0", "healthy"]
    binds = lines.index(next(line for line in lines if line.startswith("BIND")))
    row = lines[binds + 1].split()
    assert (row[0], row[1], row[-3], row[-2], row[-1]) == ("sim#0", "bound", "0/9", "1", "transceiver"), row
    assert "Last errors: none" in lines
    instances = lines.index(next(line for line in lines if line.startswith("INSTANCE")))
    assert lines[instances + 1].startswith(f"{me} (this)") and lines[instances + 1].endswith("yes")

    code, out = await invoke("status", "--json", url=url)
    assert code == 0, out
    data = json.loads(out)
    assert data["instance"]["id"] == me and data["carriers"][0]["binds"][0]["window"] == 9

    await sim.stop()  # a lost bind: in the table and among the last errors

    async def down() -> bool:
        return not app[app_keys.CARRIERS].ready

    await wait_for(down)
    code, out = await invoke("status", url=url)
    assert code == 0, out
    assert "sim#0  unbound" in out and "Last errors:" in out and "connection_lost" in out, out
    await sim.start()


async def test_status_needs_the_operator_token(running):
    _, url = running
    code, out = await invoke("status", token="wrong", url=url)
    assert code == 1 and "invalid_operator_token" in out
