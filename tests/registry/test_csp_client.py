"""CspClient over real HTTP against a scripted server: retries on 5xx/429/timeouts with backoff, never on 4xx,
error codes, the on_call hook (never the secret), path quoting and the DCA's base URL."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web

from registry.csp.client import CspClient, CspError, jittered_backoff

KEY, SECRET = "csp-key", "s3cr3t-Value"


class Scripted:
    """Answers each request with the next scripted (status, body, delay); the last one repeats."""

    def __init__(self) -> None:
        self.script: list[tuple[int, object, float]] = [(200, {"ok": True}, 0.0)]
        self.seen: list[tuple[str, str, str, object]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.method, request.raw_path, request.headers.get("Authorization", ""), body))
        status, answer, delay = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if delay:
            await asyncio.sleep(delay)
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)


@pytest.fixture
async def scripted(aiohttp_server):
    s = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", s.handle)
    s.server = await aiohttp_server(app)
    s.url = str(s.server.make_url("")).rstrip("/")
    return s


def _client(s: Scripted, calls: list | None = None, **kw: object) -> CspClient:
    async def on_call(*args: object) -> None:
        calls.append(args)

    kw = {"retries": 3, "backoff": (0.001, 0.002), "timeout_s": 5.0} | kw
    return CspClient(s.url, KEY, SECRET, on_call=on_call if calls is not None else None, **kw)


async def test_sends_basic_auth_json_and_answers_json(scripted):
    scripted.script = [(200, {"brandId": "B000001"}, 0.0)]
    async with _client(scripted) as client:
        answer = await client.register_brand({"displayName": "Acme", "referenceId": "r1"})
    assert answer == {"brandId": "B000001"}
    method, path, auth, body = scripted.seen[0]
    assert (method, path, body) == ("POST", "/v1/brand/nonBlocking", {"displayName": "Acme", "referenceId": "r1"})
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"{KEY}:{SECRET}"


async def test_retries_5xx_and_429_then_succeeds_and_reports_every_attempt(scripted):
    scripted.script = [(503, {"code": "SERVICE_UNAVAILABLE"}, 0.0), (429, {}, 0.0), (200, {"campaignId": "C1"}, 0.0)]
    calls: list = []
    async with _client(scripted, calls) as client:
        assert await client.get_campaign("C1") == {"campaignId": "C1"}
    assert len(scripted.seen) == 3
    assert [(c[3], c[5]) for c in calls] == [(503, "registry_unavailable"), (429, "registry_unavailable"),
                                              (200, None)]
    assert calls[-1][:3] == ("GET", "/v1/campaign/C1", None) and calls[-1][4] == {"campaignId": "C1"}


async def test_5xx_on_every_attempt_is_registry_unavailable_retryable(scripted):
    scripted.script = [(502, "bad gateway", 0.0)]
    async with _client(scripted, retries=2) as client:
        with pytest.raises(CspError) as err:
            await client.get_brand("B000001")
    assert (err.value.code, err.value.status, err.value.retryable) == ("registry_unavailable", 502, True)
    assert len(scripted.seen) == 3  # the first attempt and two retries


async def test_4xx_is_never_retried_and_keeps_the_registry_code(scripted):
    scripted.script = [(400, {"code": "BRAND_NOT_VERIFIED", "description": "not verified"}, 0.0)]
    calls: list = []
    async with _client(scripted, calls) as client:
        with pytest.raises(CspError) as err:
            await client.create_campaign({"brandId": "B000001"})
    assert (err.value.code, err.value.message, err.value.status, err.value.retryable) == (
        "BRAND_NOT_VERIFIED", "not verified", 400, False)
    assert len(scripted.seen) == 1 and calls[0][5] == "BRAND_NOT_VERIFIED"


async def test_4xx_without_a_code_is_registry_rejected(scripted):
    scripted.script = [(404, "no such thing", 0.0)]
    async with _client(scripted) as client:
        with pytest.raises(CspError) as err:
            await client.get_order("O000001")
    assert (err.value.code, err.value.status, err.value.retryable) == ("registry_rejected", 404, False)


async def test_timeout_on_every_attempt_is_registry_timeout(scripted):
    scripted.script = [(200, {}, 2.0)]
    calls: list = []
    async with _client(scripted, calls, timeout_s=0.1, retries=1) as client:
        with pytest.raises(CspError) as err:
            await client.clock()
    assert (err.value.code, err.value.status, err.value.retryable) == ("registry_timeout", None, True)
    assert [(c[3], c[5]) for c in calls] == [(None, "registry_timeout")] * 2


async def test_connection_refused_is_registry_unavailable():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with CspClient(f"http://127.0.0.1:{port}", KEY, SECRET, retries=1, backoff=(0.001, 0.001)) as client:
        with pytest.raises(CspError) as err:
            await client.get_brand("B000001")
    assert (err.value.code, err.value.retryable) == ("registry_unavailable", True)


async def test_not_json_answer_is_registry_bad_answer(scripted):
    scripted.script = [(200, "<html>", 0.0)]
    async with _client(scripted) as client:
        with pytest.raises(CspError) as err:
            await client.get_brand("B000001")
    assert err.value.code == "registry_bad_answer" and not err.value.retryable


async def test_on_call_never_receives_the_secret(scripted):
    scripted.script = [(503, {}, 0.0), (401, {"code": "UNAUTHORIZED", "description": "bad credentials"}, 0.0)]
    calls: list = []
    async with _client(scripted, calls) as client:
        with pytest.raises(CspError) as err:
            await client.register_brand({"displayName": "Acme"})
    assert err.value.code == "UNAUTHORIZED" and len(calls) == 2
    for text in (repr(calls), repr(err.value), str(err.value)):
        assert SECRET not in text and KEY not in text


async def test_paths_quote_ids_and_dca_calls_use_the_dca_base(scripted):
    async with CspClient("http://unused.invalid", KEY, SECRET, dca_base_url=f"{scripted.url}/x") as client:
        await client.disassociate_number("C000001", "+12025550123")
        await client.associate_numbers("C000001", ["+12025550123"], "ref-1")
    assert [(m, p) for m, p, _, _ in scripted.seen] == [
        ("DELETE", "/x/v1/campaigns/C000001/numbers/%2B12025550123"), ("POST", "/x/v1/campaigns/C000001/numbers")]
    assert scripted.seen[1][3] == {"numbers": ["+12025550123"], "referenceId": "ref-1"}


def test_backoff_doubles_to_the_cap_with_jitter():
    assert 0.16 <= jittered_backoff(1, 0.2, 5.0) <= 0.24
    assert 0.32 <= jittered_backoff(2, 0.2, 5.0) <= 0.48
    assert 4.0 <= jittered_backoff(20, 0.2, 5.0) <= 6.0
