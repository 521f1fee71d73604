"""What the benchmarks (`gatewayctl bench ...`, gateway.bench.*) share: figures printed as JSON, never asserted by
tests.

By default a benchmark starts its own SMSC simulator and gateway as separate processes (a temporary SQLite
database, free ports), so that the load generator, the gateway and the simulator do not share one core.
With --url (and --simulator-url) it targets running ones instead. Everything is measured through the HTTP API
and the simulator's control API.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp

from gateway.bench import wire
from gateway.bench.processes import Gateway, ProcessError, Simulator, drop_redis_prefix, scratch_database, stop
from gateway.loop import run_server
from gateway.settings import DEFAULT_CONFIG

BENCH_TOKEN = "op_bench_token"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def recipients(n: int, start: int = 0) -> list[str]:
    """n distinct valid US numbers (212 2xx-xxxx)."""
    return [f"+1212{2000000 + (start + i) % 8000000:07d}" for i in range(n)]


@dataclass
class Target:
    url: str
    sim_url: str
    key: str
    processes: list[subprocess.Popen]
    others: tuple[str, ...] = ()  # further gateway instances sharing the work (bench sms --instances)
    gateway: Gateway | None = None  # the process started for this run (its pid, data folder); None with --url

    @property
    def urls(self) -> list[str]:
        return [self.url, *self.others]


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# What a benchmark adds to the gateway's configuration once the simulator runs: given the simulator and the
# scratch folder, it yields TOML appended to config/gateway.toml (and may hold what it started, such as a Kannel,
# until the benchmark ends)
ConfigHook = Callable[[Simulator, Path], contextlib.AbstractAsyncContextManager[str]]


@contextlib.asynccontextmanager
async def started(*, url: str | None, sim_url: str | None, key: str | None, env: dict[str, str],
                  receipt_delay_ms: int = 50, sms_http: bool = False, sim_env: dict[str, str] | None = None,
                  sim_args: tuple[str, ...] = (), config: ConfigHook | None = None) -> AsyncIterator[Target]:
    """A gateway and a simulator to measure: the given ones, or new processes on free ports (the simulator with
    its HTTP face when ``sms_http``; the gateway's configuration extended by ``config``)."""
    if url:
        if not (sim_url and key):
            raise SystemExit("--url needs --simulator-url and --api-key too")
        yield Target(url.rstrip("/"), sim_url.rstrip("/"), key, [])
        return
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    log = open(tmp / "bench.log", "w")
    sim = gateway = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            sim = Simulator.start(log, receipt_delay_ms=receipt_delay_ms, sms_http=sms_http, env=sim_env,
                                  args=sim_args)
            if config is not None:
                await _simulator_ready(sim)
                try:
                    extra = await stack.enter_async_context(config(sim, tmp))
                except ProcessError as exc:
                    raise SystemExit(str(exc)) from None
                (tmp / "gateway.toml").write_text(DEFAULT_CONFIG.read_text() + extra)
                env = {**env, "GATEWAY_CONFIG": str(tmp / "gateway.toml")}
            gateway = Gateway.for_simulator(tmp, sim, BENCH_TOKEN, log, env)
            gateway.start()
            try:
                await gateway.ready(sim.process)
            except ProcessError as exc:
                raise SystemExit(str(exc)) from None
            yield Target(gateway.url, sim.url, gateway.api_key, [sim.process, gateway.process], gateway=gateway)
    finally:
        stop(sim and sim.process, gateway and gateway.process)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _simulator_ready(sim: Simulator, timeout: float = 30.0) -> None:
    """Until the simulator's control API answers (its SMPP port and HTTP face are then open too)."""
    deadline = time.time() + timeout
    async with aiohttp.ClientSession() as http:
        while time.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(sim.url + "/stats") as resp:
                    if resp.status == 200:
                        return
            if sim.process.poll() is not None:
                break
            await asyncio.sleep(0.1)
    raise SystemExit("the simulator did not start; see its log")


POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


@contextlib.asynccontextmanager
async def started_cluster(*, instances: int, database_url: str, redis_url: str, env: dict[str, str],
                          receipt_delay_ms: int = 50) -> AsyncIterator[Target]:
    """A simulator and ``instances`` gateway processes on a new PostgreSQL database (created on the server
    ``database_url`` names, dropped afterwards) sharing their limits in Redis under a key prefix of their own."""
    try:
        async with scratch_database(database_url, "gw_bench") as db:
            prefix = f"gwbench:{db.rsplit('/', 1)[-1]}:"
            tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
            log = open(tmp / "bench.log", "w")
            sim, gateways = None, []
            try:
                sim = Simulator.start(log, receipt_delay_ms=receipt_delay_ms)
                shared = {"GATEWAY_DATABASE_URL": db, "GATEWAY_REDIS_URL": redis_url,
                          "GATEWAY_REDIS_KEY_PREFIX": prefix, "GATEWAY_VOICE_ENABLED": "false", **env}
                for i in range(instances):
                    gateway = Gateway.for_simulator(tmp / f"gw{i}", sim, BENCH_TOKEN, log, shared)
                    gateway.start(demo=i == 0, migrate=i == 0)  # the first migrates and seeds the demo account
                    gateways.append(gateway)
                    await gateway.ready(sim.process, timeout=60)
                yield Target(gateways[0].url, sim.url, gateways[0].api_key,
                             [sim.process] + [g.process for g in gateways], tuple(g.url for g in gateways[1:]))
            finally:
                stop(sim and sim.process, *(g.process for g in gateways))
                log.close()
                shutil.rmtree(tmp, ignore_errors=True)
                with contextlib.suppress(Exception):
                    await drop_redis_prefix(redis_url, prefix)
    except ProcessError as exc:  # the database could not be made, or a process did not come up
        raise SystemExit(str(exc)) from None


async def admin(http: aiohttp.ClientSession, target: Target, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, target.url + path, json=body,
                            headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as resp:
        return await resp.json()


async def send_batches(http: aiohttp.ClientSession, target: Target, numbers: list[str], batch: int,
                        concurrency: int, body: str, source: str | None = None, extra: dict[str, Any] | None = None
                        ) -> tuple[list[str], list[float], float, float]:
    """POST /v1/messages/batch; returns (ids, per-request latencies in ms, start, end). ``extra``: more fields
    of every message (status_callback)."""
    headers = {"Authorization": f"Bearer {target.key}"}
    chunks = [numbers[i:i + batch] for i in range(0, len(numbers), batch)]
    ids: list[str] = []
    latencies: list[float] = []
    queue: asyncio.Queue = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def worker(url: str) -> None:
        while not queue.empty():
            chunk = queue.get_nowait()
            payload = {"messages": [{"to": n, "body": body} | ({"from": source} if source else {}) | (extra or {})
                                    for n in chunk]}
            t0 = time.perf_counter()
            async with http.post(url + "/v1/messages/batch", json=payload, headers=headers) as resp:
                data = await resp.json()
            latencies.append((time.perf_counter() - t0) * 1000)
            ids.extend(r["message"]["id"] for r in data["results"] if r["status_code"] < 300)

    start = time.time()
    urls = target.urls  # the instances take turns
    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
    return ids, latencies, start, time.time()


async def send_single(target: Target, numbers: list[str], concurrency: int, body: str,
                      extra: dict[str, Any] | None = None) -> tuple[list[str], list[float], float, float]:
    """One POST /v1/messages per message, ``concurrency`` in flight, each on a keep-alive connection of its own
    (gateway.bench.wire: the load generator takes little of the measured machine); returns (ids, per-request
    latencies in ms, start, end)."""
    ids: list[str] = []
    latencies: list[float] = []
    it = iter(numbers)

    async def worker(url: str) -> None:
        client = wire.Client(url, {"Authorization": f"Bearer {target.key}"})
        try:
            for number in it:
                payload = json.dumps({"to": number, "body": body} | (extra or {})).encode()
                t0 = time.perf_counter()
                status, answer = await client.request("POST", "/v1/messages", payload)
                latencies.append((time.perf_counter() - t0) * 1000)
                if status == 202:
                    ids.append(json.loads(answer)["id"])
        finally:
            client.close()

    start = time.time()
    urls = target.urls  # the instances take turns, as with batches
    await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
    return ids, latencies, start, time.time()


async def all_messages(http: aiohttp.ClientSession, target: Target) -> list[dict]:
    """Every message of the account, newest first (GET /v1/messages page by page)."""
    headers = {"Authorization": f"Bearer {target.key}"}
    messages: list[dict] = []
    before = None
    while True:
        params = {"limit": "500"} | ({"before": before} if before else {})
        async with http.get(target.url + "/v1/messages", params=params, headers=headers) as resp:
            page = await resp.json()
        messages.extend(page["messages"])
        before = page["next"]
        if not before:
            return messages


async def receipts_sent(http: aiohttp.ClientSession, target: Target, want: int, timeout: float) -> None:
    """Until the simulator sent ``want`` receipts, or its count stopped growing for two seconds (messages that
    end without a receipt), or ``timeout`` passed. Asking costs the gateway nothing."""
    deadline = time.time() + timeout
    last, still = -1, time.time()
    while time.time() < deadline:
        async with http.get(target.sim_url + "/stats") as resp:
            receipts = (await resp.json())["stats"].get("receipts", 0)
        if receipts >= want or (receipts == last and time.time() - still > 2.0):
            return
        if receipts != last:
            last, still = receipts, time.time()
        await asyncio.sleep(0.1)


async def final_states(http: aiohttp.ClientSession, target: Target, want: int, timeout: float) -> list[dict]:
    """Page through the account's messages until ``want`` of them are final (or the timeout passes).

    Reading every message back costs the gateway about as much as sending them, so it is not done while they
    are still in flight: first the simulator's receipt count is awaited (``receipts_sent``)."""
    deadline = time.time() + timeout
    await receipts_sent(http, target, want, timeout)
    return await read_finals(http, target, want, deadline - time.time())


async def read_finals(http: aiohttp.ClientSession, target: Target, want: int, timeout: float) -> list[dict]:
    """Every message of the account, read again each second until ``want`` of them are final (or the timeout
    passes): ``final_states`` once the receipts are known to be sent."""
    deadline = time.time() + timeout
    while True:
        messages = await all_messages(http, target)
        finals = [m for m in messages if m["status"] in ("delivered", "undelivered", "failed", "expired", "blocked")]
        if len(finals) >= want or time.time() > deadline:
            return messages
        await asyncio.sleep(1.0)


def run(coro) -> None:  # noqa: ANN001
    # SIGTERM (`timeout`, a CI job cancelled) ends the benchmark as Ctrl+C does: what it started is stopped on
    # the way out, a Kannel in a session of its own included
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    print(json.dumps(run_server(coro), indent=2))  # the load generator on uvloop too
