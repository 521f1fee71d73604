"""gatewayctl keywords / optouts / webhooks / sim against a running gateway and simulator on real ports."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.cli import cli
from tests.conftest import new_customer, wait_for
from tests.gateway.cli.test_cli import invoke

NUMBER = "55501"


@pytest.fixture
async def stack(migrated, sessionmaker):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    migrated.carriers[0].port = services.smpp_port
    app = create_app(migrated)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    import aiohttp
    from aiohttp.test_utils import TestClient, TestServer  # only for new_customer's client API

    class Client:  # the small part of the test client API new_customer uses
        def __init__(self, http: aiohttp.ClientSession):
            self.http = http

        async def post(self, path: str, **kw):
            return await self.http.post(url + path, **kw)

    async with aiohttp.ClientSession() as http:
        customer = await new_customer(Client(http), sessionmaker, "Acme", numbers=((NUMBER, "short_code"),))
        await wait_for(lambda: asyncio.sleep(0, app[app_keys.CARRIERS].ready))
        yield url, services, customer, http
    await runner.cleanup()
    await services.stop()


async def test_keywords_optouts_webhooks_and_sim_from_the_cli(stack, tmp_path, aiohttp_server):
    url, services, customer, http = stack
    code, out = await invoke("keywords", "set", NUMBER, "hours", "--action", "auto_response", "--message",
                             "Open 9-5", url=url)
    assert code == 0, out
    code, out = await invoke("keywords", "list", NUMBER, url=url)
    assert "HOURS" in out and "Open 9-5" in out
    code, out = await invoke("keywords", "set", NUMBER, "stop", "--action", "opt_out", url=url)
    assert code == 1 and "reserved_keyword" in out

    # sim mo through the simulator's control API: the keyword answers
    sim_url = f"http://127.0.0.1:{services.http_port}"
    code, out = await invoke("sim", "mo", "--from", "+14155550123", "--to", NUMBER, "--sim-url", sim_url, "HOURS",
                             url=url)
    assert code == 0, out
    await wait_for(lambda: asyncio.sleep(0, any(s.text == "Open 9-5" for s in services.sim.received)))

    # opt-out lists: import with a bad row, list, export, remove
    src = tmp_path / "optouts.csv"
    src.write_text("phone\n+14155550171\n+14155550172\nbogus\n")
    code, out = await invoke("optouts", "import", "--account", str(customer.account_id), str(src), url=url)
    assert code == 0, out
    assert "added: 2" in out and "rejected: 1" in out and "line 4" in out
    code, out = await invoke("--json", "optouts", "list", "--account", str(customer.account_id), url=url)
    assert {o["phone"] for o in json.loads(out)["opt_outs"]} == {"+14155550171", "+14155550172"}
    dest = tmp_path / "export.csv"
    code, out = await invoke("optouts", "export", "--account", str(customer.account_id), "-o", str(dest), url=url)
    assert code == 0 and "2 opt-outs written" in out and "+14155550172" in dest.read_text()
    code, out = await invoke("optouts", "remove", "--account", str(customer.account_id), "+14155550171", "--yes",
                             url=url)
    assert code == 0, out

    # webhook deliveries: a forwarded inbound message, its attempts, a replay
    got = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response()

    hook_app = web.Application()
    hook_app.router.add_post("/", hook)
    server = await aiohttp_server(hook_app)
    resp = await http.patch(f"{url}/v1/numbers/{NUMBER}", json={"two_way_enabled": True,
                                                                 "two_way_webhook_url": str(server.make_url("/"))},
                            headers=customer.headers)
    assert resp.status == 200
    await invoke("sim", "mo", "--from", "+14155550124", "--to", NUMBER, "--sim-url", sim_url, "Hello", url=url)
    await wait_for(lambda: asyncio.sleep(0, len(got) == 1))
    await asyncio.sleep(0.2)
    code, out = await invoke("--json", "webhooks", "list", "--account", str(customer.account_id), url=url)
    inbound = [d for d in json.loads(out)["deliveries"] if d["kind"] == "inbound"]
    assert inbound and inbound[0]["status"] == "delivered"
    code, out = await invoke("webhooks", "show", "--account", str(customer.account_id), inbound[0]["id"], url=url)
    assert code == 0 and "200" in out
    code, out = await invoke("webhooks", "replay", "--account", str(customer.account_id), inbound[0]["id"], url=url)
    assert code == 0
    await wait_for(lambda: asyncio.sleep(0, len(got) == 2))


def test_help_of_the_two_way_groups():
    from click.testing import CliRunner

    for group in ("keywords", "optouts", "webhooks", "sim"):
        result = CliRunner().invoke(cli, [group, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
