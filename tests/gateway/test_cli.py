"""gatewayctl against a running gateway on a real port (the CLI runs in a thread: it owns its event loop)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from click.testing import CliRunner

from carriers.loopback import LoopbackCarrier
from gateway.app import create_app
from gateway.cli import cli
from tests.conftest import OPERATOR_TOKEN


@pytest.fixture
async def running(migrated):  # noqa: ANN001, ANN201
    app = create_app(migrated, carriers=[LoopbackCarrier("sim")])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def invoke(*args: str, token: str | None = OPERATOR_TOKEN, url: str) -> tuple[int, str]:
    base = ["--url", url] + (["--token", token] if token else [])
    result = await asyncio.to_thread(CliRunner().invoke, cli, base + list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def test_accounts_create_prints_the_key(running):  # noqa: ANN001
    code, out = await invoke("accounts", "create", "Acme Inc", url=running)
    assert code == 0, out
    assert "API key: gk_" in out
    code, out = await invoke("--json", "accounts", "list", url=running)
    assert code == 0
    assert [a["name"] for a in json.loads(out)["accounts"]] == ["Acme Inc"]
    code, out = await invoke("accounts", "list", url=running)
    assert "Acme Inc" in out and "NAME" in out


async def test_errors_exit_non_zero_with_a_sentence(running):  # noqa: ANN001
    await invoke("accounts", "create", "dup", url=running)
    code, out = await invoke("accounts", "create", "dup", url=running)
    assert code == 1 and "exists already" in out and "account_exists" in out
    code, out = await invoke("accounts", "list", token="wrong", url=running)
    assert code == 1 and "invalid_operator_token" in out


async def test_unreachable_gateway(unused_tcp_port):  # noqa: ANN001
    code, out = await invoke("accounts", "list", url=f"http://127.0.0.1:{unused_tcp_port}")
    assert code == 3 and "Cannot reach the gateway" in out


def test_help_lists_the_commands():
    out = CliRunner().invoke(cli, ["--help"]).output
    for command in ("run", "simulator", "db", "accounts"):
        assert command in out
