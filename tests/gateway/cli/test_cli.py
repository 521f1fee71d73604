"""gatewayctl against a running gateway on a real port (the CLI runs in a thread: it owns its event loop)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from click.testing import CliRunner

from carriers.loopback import LoopbackCarrier
from gateway.api.app import create_app
from gateway.cli import cli
from tests.conftest import OPERATOR_TOKEN


@pytest.fixture
async def running(migrated):
    app = create_app(migrated, carriers=[LoopbackCarrier("sim")])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def invoke(*args: str, token: str | None = OPERATOR_TOKEN, url: str) -> tuple[int, str]:
    base = ["--url", url] + (["--token", token] if token else [])
    result = await asyncio.to_thread(CliRunner().invoke, cli, base + list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def test_accounts_create_prints_the_key(running):
    code, out = await invoke("accounts", "create", "Acme Inc", url=running)
    assert code == 0, out
    assert "API key: gk_" in out
    code, out = await invoke("--json", "accounts", "list", url=running)
    assert code == 0
    assert [a["name"] for a in json.loads(out)["accounts"]] == ["Acme Inc"]
    code, out = await invoke("accounts", "list", url=running)
    assert "Acme Inc" in out and "NAME" in out
    code, out = await invoke("accounts", "list", "--json", url=running)  # after the command too
    assert code == 0 and [a["name"] for a in json.loads(out)["accounts"]] == ["Acme Inc"]
    code, out = await invoke("accounts", "create", "Globex", "--json", url=running)
    assert code == 0 and json.loads(out)["name"] == "Globex"


async def test_errors_exit_non_zero_with_a_sentence(running):
    await invoke("accounts", "create", "dup", url=running)
    code, out = await invoke("accounts", "create", "dup", url=running)
    assert code == 1 and "exists already" in out and "account_exists" in out
    code, out = await invoke("accounts", "list", token="wrong", url=running)
    assert code == 1 and "invalid_operator_token" in out


async def test_unreachable_gateway(unused_tcp_port):
    code, out = await invoke("accounts", "list", url=f"http://127.0.0.1:{unused_tcp_port}")
    assert code == 3 and "Cannot reach the gateway" in out


def test_help_lists_the_commands():
    out = CliRunner().invoke(cli, ["--help"]).output
    for command in ("run", "simulator", "db", "accounts"):
        assert command in out


def test_db_upgrade_says_what_it_did(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'new' / 'gateway.db'}")
    first = CliRunner().invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0 and first.output.startswith("database created (revision "), first.output
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert again.exit_code == 0 and again.output.startswith("database is up to date (revision "), again.output


async def test_the_demo_key_survives_a_restart(aiohttp_client, migrated):
    """`make run` again: a key saved from data/demo_api_key keeps working; a removed file gets a new key and the
    old one stops working."""
    from gateway.cli.server import seed_demo

    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    key = await seed_demo(client.app, migrated)
    assert await seed_demo(client.app, migrated) == key
    assert (migrated.data_path / "demo_api_key").read_text().strip() == key
    resp = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200
    (migrated.data_path / "demo_api_key").unlink()
    fresh = await seed_demo(client.app, migrated)
    assert fresh != key and (migrated.data_path / "demo_api_key").read_text().strip() == fresh
    resp = await client.get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 401


def test_db_upgrade_without_a_database(unused_tcp_port):
    url = f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{unused_tcp_port}/gateway"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"GATEWAY_DATABASE_URL": url})
    assert result.exit_code == 3 and "Cannot open the database" in result.output, result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output


async def test_bench_single_requests_take_turns_over_the_instances(aiohttp_server):
    """bench sms --mode single --instances N sends to every instance, not only the first."""
    from gateway.bench.common import Target, send_single

    seen: dict[int, int] = {}

    def instance(n: int) -> web.Application:
        async def accept(_request: web.Request) -> web.Response:
            seen[n] = seen.get(n, 0) + 1
            return web.json_response({"id": f"msg_{sum(seen.values())}"}, status=202)

        app = web.Application()
        app.router.add_post("/v1/messages", accept)
        return app

    servers = [await aiohttp_server(instance(n)) for n in range(3)]
    urls = [str(s.make_url("")).rstrip("/") for s in servers]
    target = Target(url=urls[0], sim_url="", key="gk_x", processes=[], others=tuple(urls[1:]))
    ids, *_ = await send_single(target, [f"+1415555{i:04d}" for i in range(60)], 6, "hi")
    assert len(ids) == 60 and sorted(seen) == [0, 1, 2] and all(count >= 10 for count in seen.values())


async def test_bench_sms_through_an_http_carrier_counts_every_message_once():
    """bench sms --carrier http: a gateway and a simulator as processes, every message through the HTTP carrier
    (json profile) to the simulator's HTTP face, each delivered with its events and counted once there. How fast
    is its JSON's business, not this test's."""
    from gateway.bench.sms import bench_sms

    out = await bench_sms(messages=20, url=None, sim_url=None, key=None, throttles=False, mode="single",
                          concurrency=4, batch=10, timeout=60, callbacks="all", carrier="http", profile="json")
    assert (out["carrier"], out["profile"], out["through"]) == ("http", "json", "simulator http face")
    assert (out["accepted"], out["delivered"], out["lost"], out["simulator_received"]) == (20, 20, 0, 20)
    assert out["simulator_received_over_http"] == 20  # none over the SMPP bind the gateway also holds
    assert (out["webhook_events"], out["duplicates"], out["bad_signatures"]) == (60, 0, 0)  # queued, sent, delivered


async def test_bench_sms_on_postgresql_with_webhook_workers(postgres_url, redis_url):
    """bench sms --backend postgresql --webhook-processes 2: one gateway process on a scratch PostgreSQL database
    (made on the server the URL names) with Redis, its webhooks POSTed by two workers; every message delivered
    and every event counted once at the receiver."""
    from gateway.bench.sms import bench_sms

    server = postgres_url.rsplit("/", 1)[0] + "/postgres"
    out = await bench_sms(messages=30, url=None, sim_url=None, key=None, throttles=False, mode="single",
                          concurrency=4, batch=10, timeout=60, callbacks="all", backend="postgresql",
                          database_url=server, redis_url=redis_url, webhook_processes=2)
    assert (out["backend"], out["instances"]) == ("postgresql+redis", 1)
    assert (out["accepted"], out["delivered"], out["lost"]) == (30, 30, 0)
    assert (out["webhook_events"], out["duplicates"], out["bad_signatures"]) == (90, 0, 0)


def test_bench_kannel_needs_the_http_carrier():
    result = CliRunner().invoke(cli, ["bench", "sms", "--kannel"])
    assert result.exit_code == 2 and "--kannel goes with --carrier http" in result.output


def test_an_unreachable_gateway_is_exit_3_for_every_kind_of_call(tmp_path):
    """JSON calls, CSV uploads and CSV downloads all say the gateway cannot be reached and exit 3 (the export
    used to end in a ClientConnectorError traceback)."""
    src = tmp_path / "stops.csv"
    src.write_text("+14155550123\n")
    for args in (["accounts", "list"], ["optouts", "import", "--account", "1", str(src)],
                 ["optouts", "export", "--account", "1", "-o", str(tmp_path / "out.csv")]):
        result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "--token", "x", *args])
        assert result.exit_code == 3, (args, result.output)
        assert "Cannot reach the gateway at http://127.0.0.1:9" in result.output, args


def test_a_port_already_taken_is_a_sentence_not_a_traceback():
    """A second `make run` (or simulator) on ports another process holds: exit 1 with a sentence."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["simulator", "--smpp-port", str(port), "--http-port", "0"])
    assert result.exit_code == 1, result.output
    assert "address already in use" in result.output and "Another gateway or simulator" in result.output
    assert result.exception.__class__ is SystemExit


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_gatewayctl_run_serves_on_the_configured_event_loop(event_loop):
    """`gatewayctl run` (a process, with the simulator as another) runs on uvloop unless [server] event_loop says
    asyncio; either way a message sent over the real bind is delivered, and the status names the loop."""
    import aiohttp

    from gateway.bench.common import admin, started

    env = {} if event_loop == "uvloop" else {"GATEWAY_SERVER_EVENT_LOOP": "asyncio"}
    async with started(url=None, sim_url=None, key=None, env=env) as target, aiohttp.ClientSession() as http:
        status = await admin(http, target, "GET", "/admin/status")
        assert status["instance"]["event_loop"] == event_loop
        headers = {"Authorization": f"Bearer {target.key}"}
        async with http.post(target.url + "/v1/messages", json={"to": "+14155550123", "body": "hi"},
                             headers=headers) as resp:
            assert resp.status == 202
            sent = await resp.json()
        for _ in range(100):
            async with http.get(target.url + f"/v1/messages/{sent['id']}", headers=headers) as resp:
                message = await resp.json()
            if message["status"] == "delivered":
                break
            await asyncio.sleep(0.1)
        assert message["status"] == "delivered"


def test_an_unknown_event_loop_is_refused(tmp_path, monkeypatch):
    from gateway.settings import SettingsError, load_settings

    monkeypatch.setenv("GATEWAY_SERVER_EVENT_LOOP", "tokio")
    with pytest.raises(SettingsError, match="server.event_loop must be uvloop or asyncio"):
        load_settings()
