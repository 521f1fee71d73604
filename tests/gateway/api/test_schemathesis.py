"""Schemathesis (v4) against the /openapi.json that a real gateway serves: for every operation, generated valid
and invalid requests must get no 5xx and answers that conform to the document (status, content type, headers,
body schema), schema-invalid requests must be refused, and authentication must be enforced. (A schema-valid
request may still be refused with a documented 4xx: a phone number's validity is not a JSON schema's.) The gateway
runs on a free port, in a thread with its own event loop, on a temporary SQLite database, with a real API key and
the operator token; examples per operation are bounded (``SCHEMATHESIS_EXAMPLES``, default 25) so the whole file
stays within a couple of minutes."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from carriers.loopback import LoopbackCarrier
from gateway.api.app import create_app
from gateway.api.openapi import document
from gateway.store.migrate import upgrade
from tests.conftest import OPERATOR_TOKEN, make_settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


class Gateway:
    """The app on 127.0.0.1:<free port>, served from a thread with its own loop."""

    def __init__(self, settings_: Any):
        self.settings = settings_
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(create_app(self.settings, carriers=[LoopbackCarrier("sim")]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> "Gateway":
        self._thread.start()
        assert self._ready.wait(30), "the gateway did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)  # type: ignore[union-attr]
        self._thread.join(30)
        self._loop.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    settings_ = make_settings(Path(tmp_path_factory.mktemp("schemathesis")))
    settings_.security.auth_failure_limit = 0  # the ignored_auth check fails authentication on purpose, often
    settings_.voice.workers = 1
    asyncio.run(upgrade(settings_.database_url))
    with Gateway(settings_) as gw:
        admin = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        resp = requests.post(gw.url + "/admin/inventory/import", headers=admin, timeout=10,
                             data="12345,short_code,US,sms,sim,\n+14155550140,long_code,US,sms;voice,sim,\n")
        assert resp.json()["added"] == 2, resp.text
        account = requests.post(gw.url + "/admin/accounts", json={"name": "fuzz"}, headers=admin, timeout=10).json()
        for kind, capabilities in (("short_code", "sms"), ("long_code", "sms,voice")):
            resp = requests.post(gw.url + "/admin/numbers/lease", headers=admin, timeout=10,
                                 json={"account_id": account["id"], "type": kind, "capabilities": capabilities})
            assert resp.status_code == 201, resp.text
        # short codes start pending
        resp = requests.post(gw.url + "/admin/numbers/12345/activate", headers=admin, timeout=10)
        assert resp.status_code == 200, resp.text
        key = account["api_key"]
        assert requests.post(gw.url + "/v1/messages", json={"to": "+14155550123", "body": "seed"}, timeout=10,
                             headers={"Authorization": f"Bearer {key}"}).status_code == 202
        yield {"url": gw.url, "api_key": key, "account": str(account["id"])}


schema = schemathesis.openapi.from_dict(document())  # what /openapi.json serves (checked below)
schema.config.generation.update(max_examples=EXAMPLES)


def test_the_served_document_is_the_one_tested(gateway: dict[str, str]) -> None:
    assert requests.get(gateway["url"] + "/openapi.json", timeout=10).json() == document()


def credentials(path: str, gateway: dict[str, str]) -> dict[str, str]:
    if path.startswith("/admin/"):
        return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    if path.startswith("/v1/"):
        return {"Authorization": f"Bearer {gateway['api_key']}"}
    return {}


def case_credentials(case: Any, gateway: dict[str, str]) -> dict[str, str]:
    """The credentials for a generated case, unless schemathesis left the Authorization header out on purpose (a
    negative case of the headers): adding them back would make it a valid request that it expects refused."""
    meta = case.meta
    headers = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    if headers is not None and headers.mode == GenerationMode.NEGATIVE and "Authorization" not in case.headers:
        return {}
    return credentials(case.path, gateway)


@schema.parametrize()
@settings(deadline=None, derandomize=IN_CI, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case: Any, gateway: dict[str, str]) -> None:
    excluded = [checks.positive_data_acceptance]
    if case.media_type == "text/csv":  # on the wire a CSV is text whatever was generated: no "wrong type" exists
        excluded.append(checks.negative_data_rejection)
    if case.path == "/v1/messages/batch":  # each message is answered on its own, in a 200
        excluded.append(checks.negative_data_rejection)
    case.call_and_validate(base_url=gateway["url"], headers=case_credentials(case, gateway), timeout=30,
                           excluded_checks=excluded)


@pytest.mark.parametrize("method, path, body, status, code", [
    # what schemathesis found, kept as fixed examples: each was a 500 or an answer the document does not allow
    ("GET", "/admin/accounts/%C2%B9/numbers", None, 404, "account_not_found"),  # "¹".isdigit(), int("¹") fails
    ("GET", "/admin/accounts/349994837537101774848/numbers", None, 404, "account_not_found"),  # beyond 64 bits
    ("GET", "/admin/brands/99999999999999999999999", None, 404, "brand_not_found"),
    ("GET", "/v1/opt-outs?before=99999999999999999999999", None, 400, "invalid_query"),
    ("POST", "/admin/numbers/lease", {"account_id": 1 << 70, "type": "toll_free"}, 422, "invalid_field"),
    ("PATCH", "/v1/account", {"max_queued": None}, 422, "invalid_field"),
    ("PATCH", "/v1/account", {"smart_encoding": None}, 422, "invalid_field"),
    ("POST", "/callbacks/voice/%F1%BD%85%B2%C2%A4", {"status": "completed"}, 401, "invalid_callback"),
    ("GET", "/v1/webhooks/deliveries?status=AAA", None, 400, "invalid_query"),
    ("GET", "/v1/messages?colour=red", None, 400, "unknown_query_parameter"),
    ("GET", "/admin/numbers?free=AAA", None, 400, "invalid_query"),
])
def test_what_schemathesis_found(gateway: dict[str, str], method: str, path: str, body: Any, status: int,
                                 code: str) -> None:
    resp = requests.request(method, gateway["url"] + path, json=body, headers=credentials(path, gateway),
                            timeout=10)
    assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text


def test_csv_with_a_lone_carriage_return_and_405_allow(gateway: dict[str, str]) -> None:
    resp = requests.post(gateway["url"] + "/admin/inventory/import", headers=credentials("/admin/", gateway),
                         data="\u0096\u00f1\r+1415555\r".encode(), timeout=10)
    assert resp.status_code == 200 and resp.json()["rejected"] == 2, resp.text
    resp = requests.options(gateway["url"] + "/v1/messages/batch", headers=credentials("/v1/", gateway), timeout=10)
    assert (resp.status_code, resp.headers["Allow"]) == (405, "POST")  # not GET: /v1/messages/{id} is another route
