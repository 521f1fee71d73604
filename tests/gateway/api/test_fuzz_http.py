"""Hypothesis against every JSON route over real HTTP (a gateway on a free port, the SMSC and voice simulators):
arbitrary JSON values, strange strings (lone surrogates, NUL, right-to-left marks, 100 kB), deep nesting and
bytes that are no JSON at all. Never a 5xx; every 4xx in the JSON error format; a refusal stores nothing.

Hypothesis runs in a thread with a plain HTTP client while the gateway serves in the test's event loop."""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import sqlite3
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from carriers.simulator import SimulatorServices
from carriers.simulator.voice import VoiceSimulator
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.api.openapi import PATHS, SCHEMAS
from tests.conftest import OPERATOR_TOKEN, new_customer, wait_for

# what requests create (background work adds events and deliveries, never rows to these)
TABLES = ("messages", "accounts", "api_keys", "numbers", "opt_outs", "number_keywords", "brands", "campaigns",
          "voice_messages", "toll_free_verifications", "toll_free_numbers", "registry_events", "registry_requests",
          "number_orders")
PATH_VALUES = {"number": "12345", "keyword": "HOURS", "action": "vet", "token": "not-a-token", "carrier": "sim"}


def _fields(op: dict[str, Any]) -> list[str]:
    schema = op["requestBody"]["content"]["application/json"].get("schema", {})
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


JSON_ROUTES = [(method.upper(), path, _fields(op)) for path, ops in PATHS.items() for method, op in ops.items()
               if "application/json" in op.get("requestBody", {}).get("content", {})]

WEIRD = st.sampled_from(["\ud800", "a\udfffb", "\udc00\ud800", "\x00", "nul\x00inside", "\u202eevil\u202c",
                         "\u200f\u05e9\u05dc\u05d5\u05dd", "x" * 100_000, "", " ", "+1415555\u0661\u0662\u0663\u0664",
                         "12345", "+14155550100", "https://example.com/hook"])
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=20), WEIRD)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)


@st.composite
def bodies(draw: st.DrawFn, fields: list[str]) -> bytes:
    kind = draw(st.sampled_from(["value", "fields", "batch", "nested", "bytes"]))
    if kind == "nested":
        depth, opener = draw(st.integers(30, 5000)), draw(st.sampled_from(["[", '{"a":']))
        return (opener * depth + "1" + ("]" if opener == "[" else "}") * depth).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "value":
        value = draw(VALUES)
    else:
        keyed = st.dictionaries(st.sampled_from(fields or ["x"]) | TEXT, VALUES, max_size=len(fields) + 1)
        value = {"messages": draw(st.lists(keyed, min_size=1, max_size=3))} if kind == "batch" else draw(keyed)
    raw = json.dumps(value, ensure_ascii=draw(st.booleans()))  # not ASCII: surrogates as (invalid) UTF-8 bytes
    return raw.encode("utf-8", "surrogatepass")


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    voice = VoiceSimulator()
    await services.start()
    await voice.start()
    migrated.carriers[0].port = services.smpp_port
    migrated.voice.carrier_url = voice.url
    migrated.voice.cache_dir = str(migrated.data_path / "audio")
    migrated.http.max_body_bytes = 1 << 20
    migrated.registry.timeout_s, migrated.registry.retries = 1.0, 0  # a body may set the simulator's faults
    migrated.registry.register_wait_s = 0
    client = await aiohttp_client(create_app(migrated))
    client.customer = await new_customer(client, sessionmaker, "Acme")
    client.db = migrated.database_url.split("///", 1)[1]
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    yield client
    await voice.stop()
    await services.stop()


def _counts(db: str) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _fuzz(host: str, port: int, db: str, account_id: int, key: str, registry_token: str) -> collections.Counter:
    seen: collections.Counter = collections.Counter()  # answers by status, and by route
    # the registry's event URL with its real token: the bodies reach its checks
    values = {**PATH_VALUES, "account": str(account_id), "id": str(account_id), "token": registry_token}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def check(data: st.DataObject) -> None:
        method, path, fields = data.draw(st.sampled_from(JSON_ROUTES))
        body = data.draw(bodies(fields))
        token = key if path.startswith("/v1/") else OPERATOR_TOKEN
        before = _counts(db)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request(method, path.format(**values), body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            status, content_type, answer = resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()
        seen[status] += 1
        seen[path] += 1
        where = f"{method} {path} {body[:200]!r}: {status} {answer[:300]!r}"
        assert status < 500, where
        if status >= 400:
            assert content_type.startswith("application/json"), where
            error = json.loads(answer)["error"]
            assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), where
        if status in (400, 413, 422):
            assert _counts(db) == before, where

    check()
    return seen


async def test_no_body_gives_a_5xx_or_stores_anything_when_refused(gw):
    seen = await asyncio.to_thread(_fuzz, gw.server.host, gw.server.port, gw.db, gw.customer.account_id,
                                   gw.customer.key, gw.app[app_keys.REGISTRY].csp.token)
    assert all(seen[path] for _, path, _ in JSON_ROUTES)  # every JSON route was tried
    assert seen[400] and seen[422]  # and answered both kinds of refusal
