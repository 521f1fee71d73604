"""gatewayctl routes against a running gateway on a real port with two carriers."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from carriers.loopback import LoopbackCarrier
from gateway.api.app import create_app
from gateway.settings_routes import RouteSettings
from tests.gateway.cli.test_cli import invoke


@pytest.fixture
async def running(migrated):
    migrated.routes = [RouteSettings(name="rest", failover=["a", "b"])]
    app = create_app(migrated, carriers=[LoopbackCarrier("a"), LoopbackCarrier("b")])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


async def test_routes_list_add_test_remove(running):
    code, out = await invoke("routes", "add", "uk", "--prefix", "+4477", "--carrier", "b", "--cost", "0.035",
                             url=running)
    assert code == 0 and "route uk added at 0: prefix +4477 -> carrier b" in out, out
    code, out = await invoke("routes", "list", url=running)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["#", "NAME", "FROM", "MATCHES", "ACTION", "COST/SEG"]
    assert lines[1].split() == ["0", "uk", "api", "prefix", "+4477", "carrier", "b", "0.035"]
    assert lines[2].split() == ["1", "rest", "config", "every", "message", "failover", "a", ">", "b", "-"]
    code, out = await invoke("accounts", "create", "acme", url=running)
    assert code == 0
    code, out = await invoke("routes", "test", "+447700900123", "--account", "1", url=running)
    assert code == 0, out
    assert "route: uk" in out and "carrier: b" in out and "cost per segment: 0.035" in out
    assert "  route uk matches (prefix +4477)" in out
    code, out = await invoke("routes", "test", "+14155550123", "--account", "1", "--json", url=running)
    assert code == 0 and (json.loads(out)["route"], json.loads(out)["carrier"]) == ("rest", "a")
    code, out = await invoke("routes", "add", "bad", "--split", "a=50,b=40", url=running)
    assert code == 1 and "add up to 90, not 100" in out and "invalid_route" in out
    code, out = await invoke("routes", "remove", "rest", url=running)
    assert code == 1 and "route_in_config" in out
    code, out = await invoke("routes", "remove", "uk", url=running)
    assert code == 0 and "route uk removed" in out
    code, out = await invoke("--json", "routes", "list", url=running)
    assert [r["name"] for r in json.loads(out)["routes"]] == ["rest"]
