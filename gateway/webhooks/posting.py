"""How the webhook sender's POSTs go out: from the gateway's own process, or from worker processes.

The sender (gateway.webhooks.sender) claims deliveries, signs them, bounds what is in flight per receiver and
records every outcome, all in the gateway's process and on its one database connection. What it hands a poster is
a finished request (URL, body, headers); what it gets back is the outcome (status code, or an error and whether
the address policy refused it).

- ``LocalPoster``: one aiohttp session with keep-alive connections, through the address policy's connector.
- ``WorkerPosters`` (``[webhooks] processes`` = N > 0): N worker processes (gateway.webhooks.worker), each with its
  own ``LocalPoster``. A Python process uses one core, and the POSTs of three status events cost about as much as
  accepting and sending the message they report: in workers they run on the other cores. A request goes to the
  worker with the fewest in flight, as one JSON line on its stdin; its answer comes back as one line on its
  stdout. A worker that exits fails the requests it held (they are retried as any failed POST, so a delivery is
  still made at least once), is an alert, and is started again (after 1 s, doubling up to 30 s while it keeps
  failing). The database is never opened by a worker: SQLite's writers in two processes would wait for each other
  in its busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import sys
from typing import NamedTuple, Protocol

import aiohttp

from gateway.backoff import backoff
from gateway.metrics.alerts import Alerts
from gateway.settings import LoggingSettings, WebhookSettings
from gateway.webhooks.egress import AddressPolicy, refused
from gateway.webhooks.outbox import target_url

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # beyond the webhook timeout, for a worker to answer what it holds and exit


class Outcome(NamedTuple):
    status_code: int | None  # None: no answer (``error`` says why)
    error: str | None
    not_allowed: bool  # refused by the address policy: retrying cannot help


class Poster(Protocol):
    async def start(self) -> None: ...

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...

    async def close(self) -> None: ...


class LocalPoster:
    """POSTs from this process over one keep-alive session that reaches only what the address policy allows."""

    def __init__(self, settings: WebhookSettings, policy: AddressPolicy):
        self._settings = settings
        self._policy = policy
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # no cookie jar: a receiver's cookies are never sent back (and keeping them costs every POST)
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
            connector=self._policy.connector(self._settings.concurrency, self._settings.per_receiver_concurrency),
            cookie_jar=aiohttp.DummyCookieJar())

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        assert self._http is not None
        try:
            async with self._http.post(target_url(url), data=body, headers=headers, allow_redirects=False) as resp:
                status_code = resp.status
                await resp.read()
            return Outcome(status_code, None, False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], refused(exc))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self.waiting: dict[int, asyncio.Future] = {}
        self.lines: list[bytes] = []  # requests of this turn of the event loop, written together at its end

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        if not lines or self.process.stdin is None:
            return
        try:
            self.process.stdin.write(b"".join(lines))
        except (ConnectionError, RuntimeError) as exc:  # it just exited: its supervisor answers what it held
            log.debug("webhook worker gone while writing to it: %s", type(exc).__name__)


class WorkerPosters:
    """POSTs from ``count`` worker processes (see the module's docstring)."""

    def __init__(self, settings: WebhookSettings, logging_settings: LoggingSettings, alerts: Alerts, count: int,
                 event_loop: str = "uvloop"):
        self._settings = settings
        self._logging = logging_settings
        self._alerts = alerts
        self._count = count
        self._event_loop = event_loop
        self._workers: list[_Worker] = []
        self._supervisors: list[asyncio.Task] = []
        self._ids = itertools.count(1)
        self._closing = False
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.returncode is None]

    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.webhooks.worker", self._event_loop,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)  # stderr: the gateway's, for its logs
        assert process.stdin is not None
        process.stdin.write(json.dumps({"webhooks": dataclasses.asdict(self._settings),
                                        "logging": dataclasses.asdict(self._logging)}).encode() + b"\n")
        return _Worker(process)

    async def start(self) -> None:
        for i in range(self._count):
            self._workers.append(await self._spawn())
            self._supervisors.append(asyncio.create_task(self._supervise(i), name=f"webhook-worker-{i}"))

    async def _supervise(self, i: int) -> None:
        failures = 0
        while True:
            worker = self._workers[i]
            stdout = worker.process.stdout
            assert stdout is not None
            while line := await stdout.readline():
                try:
                    request_id, status_code, error, not_allowed = json.loads(line)
                except ValueError:
                    log.warning("webhook worker %d wrote a line that is not an answer (%d bytes)", i, len(line))
                    continue
                failures = 0  # it works: a later exit is not one more of a run of failures
                waiting = worker.waiting.pop(request_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(Outcome(status_code, error, not_allowed))
            code = await worker.process.wait()
            lost = Outcome(None, f"WorkerExited: the webhook worker process exited with code {code}", False)
            for waiting in worker.waiting.values():  # no answer will come: failed, retried as any failed POST
                if not waiting.done():
                    waiting.set_result(lost)
            worker.waiting.clear()
            if self._closing:
                return
            failures += 1
            self.restarts += 1
            self._alerts.failed("the webhook worker process", RuntimeError(
                f"it exited with code {code} (pid {worker.process.pid}); starting it again"))
            await asyncio.sleep(backoff(failures, 1.0, 30.0))
            if self._closing:
                return
            self._workers[i] = await self._spawn()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        running = [w for w in self._workers if w.process.returncode is None and w.process.stdin is not None
                   and not w.process.stdin.is_closing()]
        if not running:
            return Outcome(None, "WorkerExited: no webhook worker process is running", False)
        worker = min(running, key=lambda w: len(w.waiting))
        request_id = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        worker.waiting[request_id] = answer
        # the requests made during one turn of the event loop go to the worker in one write at its end (one system
        # call here, and usually one read there, instead of one each), as its answers come back
        if not worker.lines:
            asyncio.get_running_loop().call_soon(worker.flush)
        worker.lines.append(json.dumps([request_id, url, body.decode(), headers]).encode() + b"\n")
        return await answer

    async def close(self) -> None:
        """Their stdin ends: each answers what it holds (POSTs in flight end as they end) and exits."""
        self._closing = True
        for worker in self._workers:
            if worker.process.stdin is not None:
                worker.flush()
                worker.process.stdin.close()
        running = [w.process for w in self._workers if w.process.returncode is None]
        if running:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in running],
                               timeout=self._settings.timeout_s + STOP_GRACE_S)
            for process in running:
                if process.returncode is None:
                    log.warning("a webhook worker (pid %d) did not stop in time; killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
        await asyncio.gather(*self._supervisors, return_exceptions=True)


__all__ = ["LocalPoster", "Outcome", "Poster", "WorkerPosters"]
