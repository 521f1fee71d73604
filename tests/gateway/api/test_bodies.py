"""Request bodies over real HTTP: read whole however they are sent (chunked, slowly), one size limit (413), an idle
timeout that closes the connection (408), JSON too deep or not text refused with 4xx, and aiohttp's own errors in
the JSON error format (raw sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from registry.models import Number, OptOut
from tests.conftest import ADMIN, new_customer, wait_for
from tests.gateway.cli.test_cli import invoke, running  # the running gateway fixture

LIMIT = 256 << 10  # [http] max_body_bytes in these tests


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    migrated.carriers[0].port = services.smpp_port
    migrated.http.max_body_bytes = LIMIT
    migrated.http.body_timeout_s = 0.5
    client = await aiohttp_client(create_app(migrated))
    client.sm = sessionmaker
    client.customer = await new_customer(client, sessionmaker, "Acme")
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    yield client
    await services.stop()


async def slowly(data: bytes, pieces: int = 12, pause: float = 0.05):
    """A body sent chunked, a piece at a time with pauses: the server sees it arrive over several reads."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        yield data[start:start + size]
        await asyncio.sleep(pause)


async def count(gw, model) -> int:
    async with gw.sm() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_a_slow_chunked_opt_out_upload_is_read_whole_and_every_row_is_counted(gw):
    phones = [f"+1415555{i:04d}" for i in range(3000)]
    lines = ["phone,list", *phones[:1500], "not-a-number", "", *phones[1500:], phones[0], '"+1415555', '0001"']
    body = ("\r\n".join(lines) + "\r\n").encode()
    resp = await gw.post("/v1/opt-outs/import", data=slowly(body), headers={**gw.customer.headers,
                                                                         "Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    # 3000 phones, a bad one, a repeat, and a quoted cell over two lines (a phone with a line break: rejected)
    assert (result["rows"], result["added"], result["already_listed"], result["rejected"]) == (3003, 3000, 1, 2)
    assert result["rows"] == result["added"] + result["already_listed"] + result["rejected"]
    assert [(e["line"], e["error"]) for e in result["errors"]] == [(1502, "invalid_phone"), (3005, "invalid_phone")]
    assert await count(gw, OptOut) == 3000


async def test_an_import_leaves_the_phone_number_cache_to_the_numbers_customers_text(gw):
    """An import's numbers, each seen once, are parsed without the shared cache: filling it would evict the numbers
    customers text and leave 65,536 entries for every full garbage collection to walk (bench import's p99)."""
    from gateway.validation import _parse_phone

    await gw.post("/v1/messages", json={"to": "+14155550100", "body": "hi", "dry_run": True},
                  headers=gw.customer.headers)
    before = _parse_phone.cache_info()
    body = "phone\n" + "".join(f"+1415556{i:04d}\n" for i in range(2000))
    resp = await gw.post("/v1/opt-outs/import", data=body, headers=gw.customer.headers)
    assert (await resp.json())["added"] == 2000
    after = _parse_phone.cache_info()
    assert (after.currsize, after.misses) == (before.currsize, before.misses)
    assert await count(gw, OptOut) == 2000


async def test_a_slow_chunked_inventory_upload_is_read_whole(gw):
    rows = [f"+1212555{i:04d},long_code,US,sms" for i in range(1500)]
    body = "\n".join(["number,type,country,capabilities", *rows, rows[7], "+12125550001,pager,US,sms"]).encode()
    before = await count(gw, Number)
    resp = await gw.post("/admin/inventory/import", data=slowly(body), headers=ADMIN)
    result = await resp.json()
    assert (result["rows"], result["added"], result["rejected"]) == (1502, 1500, 2)
    assert [(e["line"], e["error"]) for e in result["errors"]] == [(1502, "duplicate"), (1503, "unknown_type")]
    assert await count(gw, Number) == before + 1500


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("route", ["/v1/messages", "/v1/opt-outs/import"])
async def test_one_size_limit_for_every_body(gw, route: str, chunked: bool):
    big = json.dumps({"to": "+14155550100", "body": "x" * LIMIT}).encode() if route == "/v1/messages" else \
        b"phone\n" + b"+14155550100\n" * (LIMIT // 13 + 1)
    resp = await gw.post(route, data=slowly(big, pieces=4, pause=0) if chunked else big,
                         headers={**gw.customer.headers, "Content-Type": "application/octet-stream"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "body_too_large"
    assert await count(gw, OptOut) == 0


async def test_just_under_the_limit_is_read(gw):
    body = json.dumps({"to": "+14155550100", "body": "hi", "dry_run": True}).encode()
    body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
    resp = await gw.post("/v1/messages", data=slowly(body), headers=gw.customer.headers)
    assert resp.status == 200, await resp.text()


async def exchange(gw, raw: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection (within ``wait``)."""
    reader, writer = await asyncio.open_connection(gw.server.host, gw.server.port)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


def parse(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/opt-outs/import", "/v1/voice-messages"])
async def test_a_body_declared_too_large_is_refused_at_once_and_the_connection_closes(gw, route: str):
    """Content-Length above the limit: 413 before any of the body is read, and the connection closed (its unread
    body cannot be skipped), not drained for aiohttp's 10 s of lingering."""
    request = (f"POST {route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.customer.key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {10 * LIMIT}\r\n\r\n{{\"to\": ").encode()
    status, headers, body = parse(await exchange(gw, request, wait=30))
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert headers["connection"].lower() == "close"


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/opt-outs/import"])
async def test_a_client_still_sending_a_body_too_large_reads_its_413(gw, route: str):
    """An ordinary client (http.client) sends its whole body, 64x the limit (16 MiB), before it reads the answer. The
    gateway answers 413 at the first bytes over the limit; closing the socket while the rest still arrives reset
    the connection, and the client lost the answer (ConnectionResetError: what the fuzz suite met now and then).
    The rest is read and dropped for a moment before the close, so the 413 arrives."""
    import http.client

    def post() -> tuple[int, dict, str | None]:
        conn = http.client.HTTPConnection(gw.server.host, gw.server.port, timeout=30)
        try:
            conn.request("POST", route, body=b"x" * (64 * LIMIT), headers={**gw.customer.headers,
                                                                        "Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read()), resp.getheader("Connection")
        finally:
            conn.close()

    for _ in range(3):
        status, body, connection = await asyncio.to_thread(post)
        assert (status, body["error"]["code"], (connection or "").lower()) == (413, "body_too_large", "close")


async def test_a_body_shorter_than_its_content_length_times_out_and_the_connection_closes(gw):
    request = (f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.customer.key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\": ").encode()
    answer = await exchange(gw, request)  # reads to EOF: the server closed (not lingering 10 s for the rest)
    status, headers, body = parse(answer)
    assert (status, body["error"]["code"]) == (408, "body_timeout")
    assert headers["connection"].lower() == "close"


@pytest.mark.parametrize("raw", [
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /v1/messages?" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n",
    b"NOT AN HTTP REQUEST\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
], ids=["two-content-lengths", "url-too-long", "header-too-long", "bad-request-line", "tls-hello"])
async def test_what_aiohttp_refuses_itself_is_answered_in_the_json_error_format(gw, raw: bytes):
    answer = await exchange(gw, raw)
    status, headers, body = parse(answer)
    assert 400 <= status < 500
    assert headers["content-type"].startswith("application/json")
    assert body["error"]["code"] and body["error"]["message"]


NESTED = [b"[" * 100_000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
          b'{"to": "+14155550100", "body": "hi", "ttl": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}"]


@pytest.mark.parametrize("body", NESTED, ids=["100k-arrays", "2000-objects", "deep-field"])
@pytest.mark.parametrize("route", ["/v1/messages", "/v1/messages/batch", "/v1/opt-outs", "/v1/account"])
async def test_deep_nesting_is_invalid_json_not_a_500(gw, route: str, body: bytes):
    method = gw.patch if route == "/v1/account" else gw.post
    resp = await method(route, data=body, headers={**gw.customer.headers, "Content-Type": "application/json"})
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_json"


LONE_SURROGATE = b'{"to": "+14155550100", "body": "a\\ud800b"}'


async def test_a_lone_surrogate_is_an_invalid_field(gw):
    resp = await gw.post("/v1/messages", data=LONE_SURROGATE, headers={**gw.customer.headers,
                                                                        "Content-Type": "application/json"})
    assert resp.status == 422
    assert (await resp.json())["error"] == {"code": "invalid_field", "details": {"field": "body"}, "message":
                                            "The field 'body' holds a NUL or a lone surrogate, which is not text."}


async def test_a_lone_surrogate_fails_only_its_own_message_in_a_batch(gw):
    body = b'{"messages": [{"to": "+14155550100", "body": "fine"}, ' + LONE_SURROGATE + \
        b', {"to": "+14155550101", "body": "nul \\u0000 here"}, {"to": "+14155550102", "body": "also fine"}]}'
    resp = await gw.post("/v1/messages/batch", data=body, headers={**gw.customer.headers,
                                                                    "Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    results = (await resp.json())["results"]
    assert [r["status_code"] for r in results] == [202, 422, 422, 202]
    assert results[1]["error"]["details"] == {"field": "body"} and results[2]["error"]["code"] == "invalid_field"


async def test_cli_imports_refuse_an_empty_or_non_utf8_file_with_a_sentence(running, tmp_path):
    empty, latin = tmp_path / "empty.csv", tmp_path / "latin1.csv"
    empty.write_text("\n \n")
    latin.write_bytes("number\n+14155550100\nCafé,long_code\n".encode("latin-1"))
    for args in (("inventory", "import"), ("optouts", "import", "--account", "1")):
        code, out = await invoke(*args, str(empty), url=running)  # catch_exceptions=False: a traceback raises
        assert code == 2 and "is empty: there is nothing to import" in out, out
        code, out = await invoke(*args, str(latin), url=running)
        assert code == 2 and "is not UTF-8 text (line 3)" in out, out


async def test_cli_import_sends_a_large_file_whole(running, tmp_path):
    src = tmp_path / "numbers.csv"
    src.write_text("number,type,country\n" + "".join(f"+1212555{i:04d},long_code,US\n" for i in range(5000))
                   + "bogus,long_code,US\n")
    code, out = await invoke("--json", "inventory", "import", str(src), url=running)
    assert code == 0, out
    assert "sending numbers.csv" in out and "importing ..." in out  # the progress (stderr, mixed in by the runner)
    result = json.loads(out[out.index("{"):])
    assert (result["rows"], result["added"], result["rejected"]) == (5001, 5000, 1)
    assert result["errors"][0]["line"] == 5002


async def test_an_idempotency_key_that_is_not_ascii_text_is_refused_not_a_500(gw):
    body = b'{"to": "+14155550100", "body": "hi"}'
    raw = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + gw.customer.key.encode() +
           b"\r\nIdempotency-Key: \xff\xfe\r\nContent-Type: application/json\r\nContent-Length: " +
           str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    answer = await exchange(gw, raw)  # the header's bytes are no UTF-8: aiohttp hands on lone surrogates
    status, _, error = parse(answer)
    assert (status, error["error"]["code"]) == (400, "invalid_idempotency_key")


async def test_imports_on_postgresql_count_the_same(aiohttp_client, tmp_path, postgres_url):
    from carriers.loopback import LoopbackCarrier
    from gateway.store.db import create_engine, create_sessionmaker
    from gateway.store.migrate import upgrade
    from tests.conftest import make_settings

    await upgrade(postgres_url)
    settings = make_settings(tmp_path)
    settings.database.url, settings.voice.enabled = postgres_url, False
    engine = create_engine(postgres_url)
    client = await aiohttp_client(create_app(settings, carriers=[LoopbackCarrier("sim")]))
    try:
        customer = await new_customer(client, create_sessionmaker(engine), "Acme")
        phones = "".join(f"+1415555{i:04d}\n" for i in range(2500))
        resp = await client.post("/v1/opt-outs/import", data=slowly(f"{phones}+14155550007\nbad\n".encode()),
                                 headers=customer.headers)
        result = await resp.json()
        assert (result["rows"], result["added"], result["already_listed"], result["rejected"]) == (2502, 2500, 1, 1)
        again = await (await client.post("/v1/opt-outs/import", data=phones, headers=customer.headers)).json()
        assert (again["added"], again["already_listed"]) == (0, 2500)
        numbers = "".join(f"+1212555{i:04d},long_code,US\n" for i in range(1200))
        result = await (await client.post("/admin/inventory/import", data=numbers + "+12125550001,long_code,US\n",
                                          headers=ADMIN)).json()
        assert (result["rows"], result["added"], result["rejected"]) == (1201, 1200, 1)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/opt-outs/import"])
@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"br"])
async def test_a_body_whose_content_encoding_is_broken_is_a_400(gw, route: str, encoding: bytes):
    raw = (b"POST " + route.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + gw.customer.key.encode() +
           b"\r\nContent-Encoding: " + encoding + b"\r\nContent-Length: 10\r\n\r\n0123456789")
    status, _, body = parse(await exchange(gw, raw))  # and the server closes the connection: the stream is broken
    assert (status, body["error"]["code"]) == (400, "malformed_request")
