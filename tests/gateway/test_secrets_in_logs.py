"""Secrets never reach the logs: real flows (an SMPP bind with a password, and one with a wrong password; the
operator creating an account; sends; webhook deliveries signed with the account's secret, first refused then
accepted; a rotated secret; wrong keys and tokens; a key mistakenly sent in a query string; a signed audio link;
a voice carrier callback) with every logger at DEBUG, aiohttp.access and SQLAlchemy's included, in the text and
the JSON log formats."""

from __future__ import annotations

import json
import logging
import secrets

import pytest
from aiohttp import web

from carriers.simulator import SmscSimulator
from carriers.smpp import SmppCarrier, SmppClient
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.logs import JsonFormatter
from gateway.webhooks.signing import SIGNATURE_HEADER, verify
from registry.models import Number
from tests.conftest import wait_for

LOGGERS = ("", "aiosqlite", "aiohttp", "aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.client",
           "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.pool", "smpplib", "smpp",
           "asyncio", "gateway", "carriers", "voice", "registry", "keywords")


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything the records hold: messages, arguments, extras (aiohttp's access log adds some), tracebacks,
    and each record as [logging] format = "json" writes it (a JSON object with every extra field)."""
    parts = [caplog.text]
    as_json = JsonFormatter()
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.extend(repr(v) for k, v in vars(record).items() if k not in ("msg", "args"))
        parts.append(repr(record.args))
        line = as_json.format(record)
        assert isinstance(json.loads(line), dict) and "\n" not in line
        parts.append(line)
    return "\n".join(parts)


async def test_secrets_never_reach_the_logs(aiohttp_client, aiohttp_server, migrated, sessionmaker, caplog):
    for name in {*LOGGERS, *logging.root.manager.loggerDict}:  # every logger there is, at DEBUG
        caplog.set_level(logging.DEBUG, logger=name)
    smpp_password, wrong_password = secrets.token_hex(4), secrets.token_hex(4)  # SMPP 3.4: at most 8 characters
    operator_token = "op_" + secrets.token_urlsafe(24)
    migrated.security.operator_token = operator_token
    admin = {"Authorization": f"Bearer {operator_token}"}

    sim = SmscSimulator(accounts={"gw-system": smpp_password}, receipt_delay=0.01)
    await sim.start()
    refused = SmppClient("127.0.0.1", sim.port, "gw-system", wrong_password, reconnect_min=10)
    await refused.start()
    assert not refused.bound and refused.last_error  # refused, and said so in the log
    await refused.close()
    carrier = SmppCarrier("sim", "127.0.0.1", sim.port, "gw-system", smpp_password)

    hooks: list[bool] = []
    refusals = [1]  # the first delivery is refused: the retry path logs too

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        hooks.append(verify(verified_with[-1], request.headers[SIGNATURE_HEADER], raw))
        if refusals:
            refusals.pop()
            return web.Response(status=500, text="try later")
        return web.json_response({})

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    verified_with: list[str] = []
    hook_server = await aiohttp_server(receiver)
    hook_token = secrets.token_hex(10)
    migrated.webhooks.retry_base_s = 0.05
    api = await aiohttp_client(create_app(migrated, carriers=[carrier]))
    try:
        resp = await api.post("/admin/accounts", json={"name": "acme"}, headers=admin)
        assert resp.status == 201
        account = await resp.json()
        key = account["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        async with sessionmaker() as session, session.begin():
            session.add(Number(number="12345", type="short_code", country="US", capabilities="sms,voice",
                               status="active", account_id=account["id"]))
        first_secret = (await (await api.get("/v1/account", headers=auth)).json())["webhook_secret"]
        secret = (await (await api.post("/v1/account/webhook-secret", headers=auth)).json())["webhook_secret"]
        assert secret != first_secret
        verified_with.append(secret)
        resp = await api.patch("/v1/account", json={"event_webhook_url": str(hook_server.make_url("/hook")) +
                                                    f"?token={hook_token}"}, headers=auth)
        assert resp.status == 200
        resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "hello"}, headers=auth)
        assert resp.status == 202
        message = await resp.json()

        async def delivered() -> bool:
            got = await (await api.get(f"/v1/messages/{message['id']}", headers=auth)).json()
            return got["status"] == "delivered" and len(hooks) >= 4
        await wait_for(delivered, timeout=15)
        assert all(hooks)  # signed with the secret: it was in use all along

        # failures, and credentials where they do not belong
        for headers in ({"Authorization": "Bearer gk_" + secrets.token_urlsafe(32)}, {"Authorization": "Basic "
                                                                                     + key}, {}):
            assert (await api.get("/v1/account", headers=headers)).status == 401
        assert (await api.get("/admin/accounts", headers={"Authorization": f"Bearer {operator_token}x"})).status == 401
        assert (await api.get("/admin/accounts", headers=auth)).status == 401
        assert (await api.get(f"/v1/account?api_key={key}")).status == 401
        assert (await api.get(f"/v1/messages?api_key={key}", headers=auth)).status == 400  # unknown_query_parameter
        assert (await api.get(f"/admin/accounts?token={operator_token}")).status == 401
        signature = secrets.token_hex(16)
        assert (await api.get(f"/audio/{'a' * 64}.wav?expires=9999999999&sig={signature}")).status == 401
        callback_token = api.app[app_keys.VOICE].token("vm_" + secrets.token_hex(12))  # a valid one, for no call
        await api.post(f"/callbacks/voice/{callback_token}", json={"status": "completed"},
                       headers={"Referer": f"https://carrier.example/x?key={signature}"})
        assert (await api.get("/v1/account", headers=auth)).status == 200
    finally:
        await api.close()
        await sim.stop()

    text = logged(caplog)
    assert "aiohttp.access" in {r.name for r in caplog.records}, "the access log was not captured"
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "SQL was not logged"
    for name, value in (("SMPP password", smpp_password), ("wrong SMPP password", wrong_password),
                        ("operator token", operator_token), ("API key", key), ("API key body", key[10:]),
                        ("webhook secret", secret), ("first webhook secret", first_secret),
                        ("webhook URL token", hook_token), ("audio signature", signature),
                        ("callback token", callback_token)):
        if value in text:
            where = [f"{r.name}: {r.getMessage()[:300]}" for r in caplog.records
                     if value in r.getMessage() or value in repr(vars(r))]
            raise AssertionError(f"the {name} appears in the logs: {where[:3]}")
