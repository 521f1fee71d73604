"""A webhook worker process: POSTs that the gateway's webhook sender hands it (gateway.webhooks.posting).

``python -m gateway.webhooks.worker [uvloop|asyncio]`` is started by the gateway, never by hand. On stdin: one
JSON line of settings (``[webhooks]`` and ``[logging]``), then one line per request, ``[id, url, body, headers]``.
On stdout: one line per answer, ``[id, status_code, error, not_allowed]``, in the order the POSTs end. It holds no
secret beyond the signed requests it is given, and opens no database. It stops when stdin ends (the gateway
stopped, or died), once the POSTs in flight have been answered; SIGINT and SIGTERM are ignored for that reason.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from gateway import logs
from gateway.loop import run_server
from gateway.settings import LoggingSettings, WebhookSettings
from gateway.webhooks.egress import AddressPolicy
from gateway.webhooks.posting import LocalPoster


async def _serve(stdin: asyncio.StreamReader, out: asyncio.StreamWriter) -> None:
    config = json.loads(await stdin.readline())
    logs.configure(LoggingSettings(**config["logging"]))
    settings = WebhookSettings(**config["webhooks"])
    poster = LocalPoster(settings, AddressPolicy.of(settings))
    await poster.start()
    inflight: set[asyncio.Task] = set()
    # the answers of the POSTs that end during one turn of the event loop go to the gateway in one write (one
    # system call here, and usually one read there, instead of one each)
    answers: list[bytes] = []
    loop = asyncio.get_running_loop()

    def flush() -> None:
        if answers:
            out.write(b"".join(answers))
            answers.clear()

    async def one(request_id: int, url: str, body: str, headers: dict[str, str]) -> None:
        outcome = await poster.post(url, body.encode(), headers)
        if not answers:
            loop.call_soon(flush)
        answers.append(json.dumps([request_id, *outcome]).encode() + b"\n")

    try:
        while line := await stdin.readline():
            request: list[Any] = json.loads(line)
            task = asyncio.create_task(one(*request))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight)
        flush()  # the last answers, if their turn of the loop has not come yet
        await out.drain()
    finally:
        await poster.close()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=64 << 20)  # a batched POST's body is one line
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    await _serve(stdin, asyncio.StreamWriter(transport, protocol, None, loop))


def main() -> None:
    # Ctrl+C reaches the whole process group and a service manager's stop may too: the gateway decides when its
    # workers end (it closes their stdin once the POSTs it handed them are answered)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    run_server(_main(), sys.argv[1] if len(sys.argv) > 1 else "uvloop")


if __name__ == "__main__":
    main()
