"""The benchmark's own HTTP/1.1 (gateway.bench.wire) against peers it did not write: aiohttp's server and client,
and raw sockets writing careless input. It reads whole messages with a Content-Length and refuses the rest."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from gateway.bench import wire


async def test_the_client_posts_over_one_keep_alive_connection_to_an_aiohttp_server(aiohttp_server):
    peers: set[int] = set()

    async def echo(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername")[1])
        body = await request.read()
        return web.json_response({"got": body.decode(), "auth": request.headers["Authorization"],
                                  "path": request.path}, status=202)

    app = web.Application()
    app.router.add_post("/base/v1/messages", echo)
    server = await aiohttp_server(app)
    client = wire.Client(str(server.make_url("/base")), {"Authorization": "Bearer gk_x"})
    try:
        answers = [await client.request("POST", "/v1/messages", b'{"n": %d}' % i) for i in range(5)]
    finally:
        client.close()
    assert [status for status, _ in answers] == [202] * 5
    assert answers[3][1] == b'{"got": "{\\"n\\": 3}", "auth": "Bearer gk_x", "path": "/base/v1/messages"}'
    assert len(peers) == 1  # one connection for all five


async def test_the_client_refuses_a_chunked_answer_rather_than_misread_it(aiohttp_server):
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"{}")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/x", chunked)
    server = await aiohttp_server(app)
    client = wire.Client(str(server.make_url("")), {})
    with pytest.raises(wire.WireError, match="chunked"):
        await client.request("POST", "/x")
    client.close()


async def test_the_server_answers_aiohttps_client_and_reads_what_it_sends():
    seen: list[tuple[str, str, str, bytes]] = []

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        seen.append((method, path, headers.get("x-gateway-event", ""), body))
        return 204 if path == "/events" else 404

    server, port = await wire.serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/events", "/elsewhere"):
                async with http.post(f"http://127.0.0.1:{port}{path}", data=b"x" * 100_000,
                                     headers={"X-Gateway-Event": "TEXT_SENT"}) as resp:
                    assert resp.status == (204 if path == "/events" else 404)
                    assert await resp.read() == b""
    finally:
        server.close()
    assert seen == [("POST", "/events", "TEXT_SENT", b"x" * 100_000), ("POST", "/elsewhere", "TEXT_SENT",
                                                                          b"x" * 100_000)]


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()
    return answer


async def test_the_server_answers_pipelined_requests_and_refuses_careless_ones():
    bodies: list[bytes] = []

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        bodies.append(body)
        return 204

    server, port = await wire.serve(handler)
    try:
        two = (b"POST /events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
               b"POST /events HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nde")
        assert await _exchange(port, two) == (b"HTTP/1.1 204 No Content\r\n\r\n"
                                              b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        assert bodies == [b"abc", b"de"]
        careless = [b"POST /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    b"POST /events HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /events HTTP/1.1\r\nContent-Length: many\r\n\r\n",
                    b"POST /events HTTP/1.1\r\nno colon here\r\n\r\n",
                    b"GARBAGE\r\n\r\n",
                    b"\xff\xfe\x00 /events HTTP/1.1\r\n\r\n"]
        for data in careless:
            assert await _exchange(port, data) == b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n" \
                                                  b"Connection: close\r\n\r\n", data
        assert await _exchange(port, b"POST /events HTTP/1.1\r\nX: " + b"y" * (wire.MAX_HEAD + 10)) == b""
        assert bodies == [b"abc", b"de"]  # none of the careless ones reached the handler
    finally:
        server.close()


async def test_a_handler_that_fails_answers_500_and_the_connection_goes_on():
    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        if body == b"boom":
            raise KeyError("event")
        return 204

    server, port = await wire.serve(handler)
    try:
        three = b"".join(b"POST /events HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n%s" % (
            len(body), b"Connection: close\r\n" if last else b"", body)
            for body, last in ((b"fine", False), (b"boom", False), (b"ok", True)))
        assert await _exchange(port, three) == (b"HTTP/1.1 204 No Content\r\n\r\n"
                                                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
                                                b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    finally:
        server.close()
