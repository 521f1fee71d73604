"""The benchmark's own HTTP/1.1, for the two parts of `bench sms` that stand for the customer: the load generator's
keep-alive connections (one request at a time each) and the receiver of status callbacks.

The customer's side runs on other machines; in a benchmark it runs on the measured one and takes its CPU from the
gateway. aiohttp's client and server, which the gateway itself uses, took about a quarter of the CPU of a run on
2 cores, mostly in the generality a benchmark does not need (redirects, cookies, tracing, streaming bodies,
routing). Here requests and answers are whole messages with a Content-Length, as both the gateway and its webhook
sender write them; anything else (a chunked body, a malformed head) is refused, never guessed at, so a figure is
never made of misread traffic. How gateway code speaks HTTP is aiohttp's business, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Callable

from yarl import URL

log = logging.getLogger(__name__)

MAX_HEAD = 64 << 10
MAX_BODY = 64 << 20


class WireError(Exception):
    """The peer wrote something this module does not read (see the module's docstring)."""


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The first line and the headers (names lowercased) of a request's or an answer's head, without its blank
    line."""
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise WireError(f"a header line without a colon: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise WireError("a chunked body")
    return first, headers


def body_length(headers: dict[str, str]) -> int:
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise WireError(f"Content-Length {headers['content-length'][:40]!r}") from None
    if not 0 <= length <= MAX_BODY:
        raise WireError(f"Content-Length {length}")
    return length


class Client:
    """One keep-alive connection to ``base`` (http or https), opened at the first request and again after the
    server closes it."""

    def __init__(self, base: str, headers: dict[str, str]):
        url = URL(base)
        self._url = url
        self._prefix = url.path.rstrip("/")
        fixed = {"Host": url.raw_authority, **headers}
        self._head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      content_type: str = "application/json") -> tuple[int, bytes]:
        """(status code, body) of one request."""
        if self._writer is None or self._writer.is_closing():
            tls = ssl.create_default_context() if self._url.scheme == "https" else None
            self._reader, self._writer = await asyncio.open_connection(self._url.host, self._url.port, ssl=tls,
                                                                       limit=MAX_HEAD)
        assert self._reader is not None
        self._writer.write(f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._head}Content-Type: {content_type}\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            first, headers = parse_head((await self._reader.readuntil(b"\r\n\r\n"))[:-4])
            answer = await self._reader.readexactly(body_length(headers))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise WireError(f"the answer ended early or its head is too long: {exc}") from None
        if headers.get("connection", "").lower() == "close":
            self.close()
        try:
            return int(first.split(" ", 2)[1]), answer
        except (IndexError, ValueError):
            raise WireError(f"a status line {first[:80]!r}") from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# a request's method, path, headers and body -> the status code of the answer (an empty one)
Handler = Callable[[str, str, dict[str, str], bytes], int]

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class _Serving(asyncio.Protocol):
    """One connection to the server: requests read as they arrive (several in one read included), answered in one
    write per read."""

    def __init__(self, handler: Handler):
        self._handler = handler
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        answers: list[bytes] = []
        close = False
        while not close:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                close = len(self._buffer) > MAX_HEAD
                break
            try:
                first, headers = parse_head(self._buffer[:end])
                method, path, version = first.split(" ", 2)
                if not (method.isascii() and method.isalpha() and method.isupper() and path.startswith("/")
                        and version in ("HTTP/1.1", "HTTP/1.0")):
                    raise WireError(f"a request line {first[:80]!r}")
                length = body_length(headers)
            except (WireError, ValueError):
                answers.append(self._answer(400, close=True))
                close = True
                break
            if len(self._buffer) < end + 4 + length:
                break
            body = self._buffer[end + 4:end + 4 + length]
            self._buffer = self._buffer[end + 4 + length:]
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
            try:
                status = self._handler(method, path, headers, body)
            except Exception:  # the handler's failure is that request's answer, not the connection's
                log.exception("the benchmark's receiver failed on a request")
                status = 500
            answers.append(self._answer(status, close))
        if answers:
            self._transport.write(b"".join(answers))
        if close:
            self._transport.close()

    @staticmethod
    def _answer(status: int, close: bool = False) -> bytes:
        length = "" if status == 204 else "Content-Length: 0\r\n"  # a 204 has no body, and says no length
        connection = "Connection: close\r\n" if close else ""
        return f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n{length}{connection}\r\n".encode()


async def serve(handler: Handler, host: str = "127.0.0.1") -> tuple[asyncio.base_events.Server, int]:
    """A server on a free port of ``host`` that answers every request with ``handler``'s status code; and its
    port."""
    server = await asyncio.get_running_loop().create_server(lambda: _Serving(handler), host, 0)
    return server, server.sockets[0].getsockname()[1]


__all__ = ["Client", "Handler", "WireError", "parse_head", "serve"]
