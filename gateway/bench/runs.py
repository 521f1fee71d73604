"""Benchmarks (`gatewayctl bench ...`): figures printed as JSON, never asserted by tests.

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
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from gateway.bench.processes import (
    Gateway,
    ProcessError,
    Simulator,
    drop_redis_prefix,
    free_port,
    scratch_database,
    stop,
)
from gateway.store.models import FINAL_STATUSES

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

    @property
    def urls(self) -> list[str]:
        return [self.url, *self.others]


def _parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@contextlib.asynccontextmanager
async def started(*, url: str | None, sim_url: str | None, key: str | None, env: dict[str, str],
                  receipt_delay_ms: int = 50) -> AsyncIterator[Target]:
    """A gateway and a simulator to measure: the given ones, or new processes on free ports."""
    if url:
        if not (sim_url and key):
            raise SystemExit("--url needs --simulator-url and --api-key too")
        yield Target(url.rstrip("/"), sim_url.rstrip("/"), key, [])
        return
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    log = open(tmp / "bench.log", "w")
    sim = gateway = None
    try:
        sim = Simulator.start(log, receipt_delay_ms=receipt_delay_ms)
        gateway = Gateway.for_simulator(tmp, sim, BENCH_TOKEN, log, env)
        gateway.start()
        try:
            await gateway.ready(sim.process)
        except ProcessError as exc:
            raise SystemExit(str(exc)) from None
        yield Target(gateway.url, sim.url, gateway.api_key, [sim.process, gateway.process])
    finally:
        stop(sim and sim.process, gateway and gateway.process)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


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


async def _admin(http: aiohttp.ClientSession, target: Target, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, target.url + path, json=body,
                            headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as resp:
        return await resp.json()


async def _send_batches(http: aiohttp.ClientSession, target: Target, numbers: list[str], batch: int,
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


async def _send_single(http: aiohttp.ClientSession, target: Target, numbers: list[str], concurrency: int,
                       body: str, extra: dict[str, Any] | None = None) -> tuple[list[str], list[float], float, float]:
    headers = {"Authorization": f"Bearer {target.key}"}
    ids: list[str] = []
    latencies: list[float] = []
    it = iter(numbers)

    async def worker(url: str) -> None:
        for number in it:
            t0 = time.perf_counter()
            async with http.post(url + "/v1/messages", json={"to": number, "body": body} | (extra or {}),
                                 headers=headers) as resp:
                data = await resp.json()
            latencies.append((time.perf_counter() - t0) * 1000)
            if resp.status == 202:
                ids.append(data["id"])

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


async def _final_states(http: aiohttp.ClientSession, target: Target, want: int, timeout: float) -> list[dict]:
    """Page through the account's messages until ``want`` of them are final (or the timeout passes).

    Reading every message back costs the gateway about as much as sending them, so it is not done while they
    are still in flight: first the simulator's receipt count (cheap) is awaited, until it reaches ``want`` or
    stops growing for two seconds (messages that end without a receipt)."""
    deadline = time.time() + timeout
    last, still = -1, time.time()
    while time.time() < deadline:
        async with http.get(target.sim_url + "/stats") as resp:
            receipts = (await resp.json())["stats"].get("receipts", 0)
        if receipts >= want or (receipts == last and time.time() - still > 2.0):
            break
        if receipts != last:
            last, still = receipts, time.time()
        await asyncio.sleep(0.1)
    while True:
        messages = await all_messages(http, target)
        finals = [m for m in messages if m["status"] in ("delivered", "undelivered", "failed", "expired", "blocked")]
        if len(finals) >= want or time.time() > deadline:
            return messages
        await asyncio.sleep(1.0)


class CallbackReceiver:
    """The customer's webhook endpoint of ``bench sms --callbacks``: on 127.0.0.1 (a free port), it counts every
    event once by its delivery id, checks every signature, and notes when each message's final event arrived.
    A POST may carry one event or, with batched delivery, a JSON array of them (see the README)."""

    def __init__(self, secret: str):
        self.secret = secret
        self.url = ""
        self.seen: set[str] = set()  # delivery ids
        self.events = self.duplicates = self.bad_signatures = self.posts = 0
        self.finals: dict[str, float] = {}  # message id -> arrival of its first final event
        self.final_latencies: list[float] = []  # ms from the message's acceptance to its final event
        self.first = self.last = 0.0
        self._runner: Any = None

    async def start(self) -> "CallbackReceiver":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/events", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = "http://127.0.0.1:%d/events" % self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        from gateway.webhooks.catalog import FINAL_EVENTS
        from gateway.webhooks.signing import SIGNATURE_HEADER, verify

        raw = await request.read()
        now = time.time()
        self.posts += 1
        if not verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), raw):
            self.bad_signatures += 1
            return web.Response(status=400)
        body = json.loads(raw)
        items = [(e["delivery_id"], e["event"]) for e in body] if isinstance(body, list) else \
            [(request.headers["X-Gateway-Delivery"], body)]
        for delivery_id, event in items:
            if delivery_id in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(delivery_id)
            self.events += 1
            self.first = self.first or now
            self.last = now
            if event["event_type"] in FINAL_EVENTS and event["message_id"] not in self.finals:
                self.finals[event["message_id"]] = now
                self.final_latencies.append((now - _parse_time(event["created_at"])) * 1000)
        return web.Response(status=204)

    async def wait_for_finals(self, ids: list[str], timeout: float) -> None:
        """Until every message in ``ids`` had its final event, or none came for five seconds, or ``timeout``."""
        deadline = time.time() + timeout
        while time.time() < deadline and not set(ids) <= self.finals.keys():
            if self.last and time.time() - self.last > 5.0:
                return
            await asyncio.sleep(0.2)


async def bench_sms(*, messages: int, url: str | None, sim_url: str | None, key: str | None, throttles: bool,
                    mode: str, concurrency: int, batch: int, timeout: float, instances: int = 1,
                    database_url: str = POSTGRES_ADMIN_URL, redis_url: str = REDIS_URL,
                    rate: int = 5000, callbacks: str = "none") -> dict[str, Any]:
    env = {} if throttles else {"GATEWAY_PACING_ENABLED": "false"}
    if instances > 1:
        # several instances keep their limits together in Redis: the account's and the short code's limits are
        # raised to ``rate`` (not lifted), so that the Redis limiter is on the path and can be checked
        env = {"GATEWAY_PACING_ENABLED": "true", "GATEWAY_PACING_SHORT_CODE_PER_S": str(rate)}
        cm = started_cluster(instances=instances, database_url=database_url, redis_url=redis_url, env=env)
    else:
        cm = started(url=url, sim_url=sim_url, key=key, env=env)
    receiver: CallbackReceiver | None = None
    async with cm as target, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                  connector=aiohttp.TCPConnector(limit=concurrency * 2)) as http:
        account = await (await http.get(target.url + "/v1/account",
                                        headers={"Authorization": f"Bearer {target.key}"})).json()
        if instances > 1:
            raised = await _admin(http, target, "PATCH", f"/admin/accounts/{account['id']}",
                                  {"max_rate_per_s": rate})
            if raised.get("max_rate_per_s") != rate:
                raise SystemExit(f"could not raise the account's rate: {raised}")
        extra: dict[str, Any] = {}
        if callbacks != "none":
            receiver = await CallbackReceiver(account["webhook_secret"]).start()
            extra = {"status_callback": receiver.url} | ({"status_callback_events": "final"}
                                                         if callbacks == "final" else {})
        try:
            numbers = recipients(messages)
            if mode == "batch":
                ids, latencies, start, end = await _send_batches(http, target, numbers, batch, concurrency, "bench",
                                                                 extra=extra)
            else:
                ids, latencies, start, end = await _send_single(http, target, numbers, concurrency, "bench", extra)
            rows = await _final_states(http, target, len(ids), timeout)
            if receiver is not None:
                await receiver.wait_for_finals(ids, max(30.0, timeout - (time.time() - end)))
            async with http.get(target.sim_url + "/stats") as resp:
                sim = await resp.json()
        finally:
            if receiver is not None:
                await receiver.close()
    mine = {m["id"]: m for m in rows}
    sent = [mine[i] for i in ids if i in mine]
    delivered = [m for m in sent if m["status"] == "delivered"]
    final_ids = {m["id"] for m in sent if m["status"] in FINAL_STATUSES}
    created = [_parse_time(m["created_at"]) for m in delivered]
    done = [_parse_time(m["done_at"]) for m in delivered]
    span = (max(done) - min(created)) if delivered else 0.0
    return {
        "benchmark": "sms", "messages": messages, "mode": mode, "concurrency": concurrency, "callbacks": callbacks,
        "throttles": throttles,
        "accepted": len(ids), "accepted_per_s": round(len(ids) / max(end - start, 1e-9), 1),
        "accept_p50_ms": round(percentile(latencies, 50), 2), "accept_p99_ms": round(percentile(latencies, 99), 2),
        "accept_latency_is_per": "batch request" if mode == "batch" else "request",
        "delivered": len(delivered), "delivered_per_s": round(len(delivered) / span, 1) if span else 0.0,
        "delivered_p50_ms": round(percentile([d - c for c, d in zip(created, done)], 50) * 1000, 1),
        "delivered_p99_ms": round(percentile([d - c for c, d in zip(created, done)], 99) * 1000, 1),
        # lost: no final state, or (with callbacks) no final event at the receiver
        "lost": sum(1 for i in ids if i not in final_ids or (receiver is not None and i not in receiver.finals)),
        "simulator_received": sim["received"], "simulator_throttled": sim["stats"].get("throttled", 0),
    } | (_callback_figures(receiver, ids, start) if receiver is not None else {}) \
      | (_cluster_figures(instances, rate, sim, start) if instances > 1 else {})


def _callback_figures(receiver: CallbackReceiver, ids: list[str], start: float) -> dict[str, Any]:
    """What the webhook receiver saw: events per second from the first request sent to the last event received,
    final events missing (counted in ``lost`` too), repeats and bad signatures, and accept -> final event."""
    missing = sum(1 for i in ids if i not in receiver.finals)
    return {"webhook_events": receiver.events, "webhook_posts": receiver.posts,
            "webhook_events_per_s": round(receiver.events / max(receiver.last - start, 1e-9), 1)
            if receiver.events else 0.0,
            "final_events_missing": missing, "duplicates": receiver.duplicates,
            "bad_signatures": receiver.bad_signatures,
            "final_event_p50_ms": round(percentile(receiver.final_latencies, 50), 1),
            "final_event_p99_ms": round(percentile(receiver.final_latencies, 99), 1)}


def _cluster_figures(instances: int, rate: int, sim: dict[str, Any], start: float) -> dict[str, Any]:
    """What the simulator saw each second from all instances together, against the shared limit."""
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    return {"instances": instances, "backend": "postgresql+redis", "limit_per_s": rate,
            "max_per_s": max(per_second.values(), default=0),
            "seconds_above_limit": sum(1 for v in per_second.values() if v > rate),
            "per_second": [per_second[s] for s in sorted(per_second)]}


async def bench_throttle(*, seconds: float, url: str | None, sim_url: str | None, key: str | None,
                         rate_limits: dict[str, float] | None = None) -> dict[str, Any]:
    """Queue ``seconds`` worth of the account's limit at once; report what the simulator saw each second."""
    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        account = await (await http.get(target.url + "/v1/account",
                                        headers={"Authorization": f"Bearer {target.key}"})).json()
        limit = float(account["max_rate_per_s"])
        if rate_limits:
            async with http.post(target.sim_url + "/scenario", json={"rate_limits": rate_limits}) as resp:
                resp.raise_for_status()
        count = int(limit * seconds)
        numbers = recipients(count, start=int(time.time()) % 1000 * 10_000)
        ids, _, start, _ = await _send_batches(http, target, numbers, 500, 2, "pace")
        rows = await _final_states(http, target, len(ids), timeout=seconds * 3 + 60)
        async with http.get(target.sim_url + "/stats") as resp:
            sim = await resp.json()
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    full = sorted(per_second)[1:-1] or sorted(per_second)  # first and last seconds are partial
    mine = {m["id"] for m in rows if m["status"] in ("delivered", "undelivered", "failed", "expired")}
    return {
        "benchmark": "throttle", "seconds": seconds, "limit": limit, "offered": len(ids),
        "max_per_s": max(per_second.values()) if per_second else 0,
        "mean_per_s": round(sum(per_second[s] for s in full) / len(full), 2) if full else 0.0,
        "per_second": [per_second[s] for s in sorted(per_second)],
        "throttled": sim["stats"].get("throttled", 0), "lost": len(ids) - len(mine & set(ids)),
    }


def run(coro) -> None:  # noqa: ANN001
    print(json.dumps(asyncio.run(coro), indent=2))


async def bench_inbound(*, rate: float, seconds: float, receiver_down_s: float, stop_every: int,
                        url: str | None, sim_url: str | None, key: str | None, timeout: float) -> dict[str, Any]:
    """Inject mobile-originated messages at ``rate``/s; measure the way to the customer's webhook and STOP
    confirmations. The webhook receiver can be down (answering 503) for the first ``receiver_down_s``."""
    from aiohttp import web

    seen: dict[str, float] = {}  # inbound id -> first time the receiver accepted it
    latencies: list[float] = []
    started_at = time.time()

    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        now = time.time()
        if now - started_at < receiver_down_s:
            return web.Response(status=503)
        if body["inbound_id"] not in seen:
            seen[body["inbound_id"]] = now
            latencies.append((now - _parse_time(body["received_at"])) * 1000)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {target.key}"}
            numbers = await (await http.get(target.url + "/v1/numbers", headers=headers)).json()
            number = numbers["numbers"][0]["number"]
            async with http.patch(f"{target.url}/v1/numbers/{number}", headers=headers, json={
                    "two_way_enabled": True, "two_way_webhook_url": f"http://127.0.0.1:{port}/hook"}) as resp:
                resp.raise_for_status()
            started_at = time.time()
            total = int(rate * seconds)
            people = recipients(total, start=3_000_000)
            stops: list[str] = []
            t0 = time.perf_counter()
            pending = set()
            for i in range(total):
                text = "STOP" if stop_every and i % stop_every == 0 else f"reply {i}"
                if text == "STOP":
                    stops.append(people[i])
                pending.add(asyncio.create_task(
                    http.post(target.sim_url + "/mo", json={"from": people[i], "to": number, "text": text})))
                delay = t0 + (i + 1) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            for task in pending:
                (await task).release()
            deadline = time.time() + timeout + receiver_down_s
            while len(seen) < total and time.time() < deadline:
                await asyncio.sleep(0.5)
            # STOP confirmations as the simulator saw them, against the STOP's arrival at the gateway
            arrived = {}
            before = None
            while True:
                params = {"keyword": "STOP", "limit": "500"} | ({"before": before} if before else {})
                page = await (await http.get(target.url + "/v1/inbound", params=params, headers=headers)).json()
                arrived.update({m["from"]: _parse_time(m["received_at"]) for m in page["inbound"]})
                before = page["next"]
                if not before:
                    break
            submits = await (await http.get(target.sim_url + "/messages", params={"limit": "1000000"})).json()
            confirmed = {}
            for s in submits:
                person = s["destination"] if s["destination"].startswith("+") else "+" + s["destination"]
                if person in arrived and person not in confirmed:
                    confirmed[person] = (s["received_at"] - arrived[person]) * 1000
    finally:
        await runner.cleanup()
    stop_ms = list(confirmed.values())
    return {
        "benchmark": "inbound", "rate": rate, "seconds": seconds, "receiver_down_s": receiver_down_s,
        "injected": total, "forwarded": len(seen), "lost": total - len(seen),
        "webhook_p50_ms": round(percentile(latencies, 50), 1), "webhook_p99_ms": round(percentile(latencies, 99), 1),
        "stops": len(stops), "stop_confirmed": len(confirmed),
        "stop_confirmation_p50_ms": round(percentile(stop_ms, 50), 1),
        "stop_confirmation_p99_ms": round(percentile(stop_ms, 99), 1),
    }


async def bench_voice(*, renders: int, concurrency: int, workers: int) -> dict[str, Any]:
    """The speech pipeline itself: serving an already-rendered script, rendering new 25-word scripts one at a
    time, and renders per second with many at once (both cores busy)."""
    from voice.render import Renderer

    words = ("please remember your appointment with doctor rivera tomorrow at ten thirty in the morning at "
             "the clinic on main street and bring your insurance card").split()
    assert len(words) == 25
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-voice-"))
    renderer = Renderer(tmp, workers=workers)
    try:
        await renderer.render("warm up the workers")
        script = " ".join(words)
        await renderer.render(script)
        served = []
        for _ in range(2000):
            t0 = time.perf_counter()
            hit = await renderer.render(script)
            served.append((time.perf_counter() - t0) * 1000)
            assert hit.cached
        singles = []
        for i in range(renders):
            t0 = time.perf_counter()
            await renderer.render(f"Reference {i}. " + script)
            singles.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await renderer.render(f"Batch {i}. " + script)

        await asyncio.gather(*(one(i) for i in range(renders * 2)))
        many = renders * 2 / (time.perf_counter() - t0)
    finally:
        renderer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"benchmark": "voice", "workers": workers, "cached_serve_p50_ms": round(percentile(served, 50), 3),
            "cached_serve_p99_ms": round(percentile(served, 99), 3), "render_25_words_p50_ms":
            round(percentile(singles, 50), 1), "render_25_words_p95_ms": round(percentile(singles, 95), 1),
            "renders_per_s_concurrent": round(many, 1), "renders": renders}


async def bench_carrier_limits(*, seconds: float, trust_score: int, url: str | None, sim_url: str | None,
                               key: str | None) -> dict[str, Any]:
    """A 10DLC campaign at a trust score, AT&T recipients, the simulator enforcing AT&T's limit for that score:
    offer more than the limit and count ESME_RTHROTTLED answers and the rate reached."""
    from registry.limits import derive

    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        me = {"Authorization": f"Bearer {target.key}"}
        account = await (await http.get(target.url + "/v1/account", headers=me)).json()
        number = "+12145550100"
        inventory = f"number,type,country,capabilities\n{number},long_code,US,sms\n"
        async with http.post(target.url + "/admin/inventory/import", data=inventory,
                             headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as resp:
            resp.raise_for_status()
        await _admin(http, target, "PATCH", f"/admin/accounts/{account['id']}", {"max_rate_per_s": 1000})
        await _admin(http, target, "POST", "/admin/numbers/lease", {"account_id": account["id"], "type": "long_code"})
        brand = await _admin(http, target, "POST", "/admin/brands", {
            "account_id": account["id"], "legal_name": "Bench Inc", "ein": "123456789",
            "entity_type": "PRIVATE_PROFIT", "vertical": "TECHNOLOGY", "website": "https://bench.example",
            "contact_email": "ops@bench.example"})
        await _admin(http, target, "POST", f"/admin/brands/{brand['id']}/review",
                     {"outcome": "verified", "trust_score": trust_score})
        campaign = await _admin(http, target, "POST", "/admin/campaigns", {
            "brand_id": brand["id"], "use_case": "ACCOUNT_NOTIFICATION", "description": "Benchmark traffic",
            "sample_messages": ["Your order {#var} has shipped today.", "Your code is {#var}, valid 10 minutes."],
            "opt_in_message": "x", "opt_out_message": "Reply STOP", "help_message": "Reply HELP"})
        await _admin(http, target, "POST", f"/admin/campaigns/{campaign['id']}/review", {"outcome": "approved"})
        await _admin(http, target, "POST", f"/admin/campaigns/{campaign['id']}/associate", {"number": number})
        await _admin(http, target, "POST", "/admin/registry/advance", {"days": 14})
        att_per_s = derive(trust_score, "ACCOUNT_NOTIFICATION", "PRIVATE_PROFIT").att_per_minute / 60
        async with http.post(target.sim_url + "/scenario", json={"rate_limits": {"att": att_per_s},
                                                                 "carrier_prefixes": {"+1214": "att"}}) as resp:
            resp.raise_for_status()
        await asyncio.sleep(5.5)  # the gateway's caches of numbers and campaigns refresh every 5 s
        count = int(att_per_s * seconds)
        numbers = [f"+1214{2000000 + i:07d}" for i in range(count)]
        ids, _, start, _ = await _send_batches(http, target, numbers, 500, 2, "carrier pace", source=number)
        rows = await _final_states(http, target, len(ids), timeout=seconds * 3 + 60)
        async with http.get(target.sim_url + "/stats") as resp:
            sim = await resp.json()
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    full = sorted(per_second)[1:-1] or sorted(per_second)
    mean = sum(per_second[s] for s in full) / len(full) if full else 0.0
    delivered = sum(1 for m in rows if m["status"] == "delivered")
    return {"benchmark": "carrier_limits", "trust_score": trust_score, "att_limit_per_s": round(att_per_s, 2),
            "offered": len(ids), "delivered": delivered, "throttled": sim["stats"].get("throttled", 0),
            "max_per_s": max(per_second.values()) if per_second else 0, "mean_per_s": round(mean, 2),
            "share_of_allowed": round(mean / att_per_s, 3) if att_per_s else 0.0,
            "per_second": [per_second[s] for s in sorted(per_second)]}


async def bench_import(*, rows: int, concurrency: int, url: str | None, sim_url: str | None,
                       key: str | None) -> dict[str, Any]:
    """An operator imports ``rows`` opt-outs (one CSV upload) into one account while another tenant (the demo
    account) keeps sending ``POST /v1/messages`` dry runs, ``concurrency`` at a time: the import's duration, and
    the dry runs' latency while it runs (SQLite has one connection: a long transaction would stall them)."""
    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        account = await _admin(http, target, "POST", "/admin/accounts", {"name": "bench import"})
        csv_body = ("phone\n" + "".join(f"{p}\n" for p in recipients(rows, start=4_000_000))).encode()
        me = {"Authorization": f"Bearer {target.key}"}
        people = recipients(1000)
        latencies: list[float] = []
        importing = True

        async def dry_runs(worker: int) -> None:
            i = worker
            while importing:
                t0 = time.perf_counter()
                async with http.post(target.url + "/v1/messages", headers=me, json={
                        "to": people[i % len(people)], "body": "Your code is 4821", "dry_run": True}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"dry run answered {resp.status}: {await resp.text()}")
                latencies.append((time.perf_counter() - t0) * 1000)
                i += concurrency

        senders = [asyncio.create_task(dry_runs(w)) for w in range(concurrency)]
        await asyncio.sleep(3)  # the dry runs' own latency first: what this machine gives without the import
        before = len(latencies)
        t0 = time.perf_counter()
        try:
            async with http.post(f"{target.url}/admin/accounts/{account['id']}/opt-outs/import", data=csv_body,
                                 headers={"Authorization": f"Bearer {BENCH_TOKEN}", "Content-Type": "text/csv"},
                                 timeout=aiohttp.ClientTimeout(total=600)) as resp:
                result = await resp.json()
            took = time.perf_counter() - t0
        finally:
            importing = False
            await asyncio.gather(*senders)
    during = latencies[before:]
    return {"benchmark": "import", "rows": rows, "import_s": round(took, 2), "import_rows_per_s": round(rows / took),
            "added": result.get("added"), "rejected": result.get("rejected"), "dry_runs": len(during),
            "dry_run_concurrency": concurrency, "dry_run_p50_ms": round(percentile(during, 50), 1),
            "dry_run_p99_ms": round(percentile(during, 99), 1), "dry_run_max_ms": round(max(during, default=0), 1),
            "dry_run_p50_before_ms": round(percentile(latencies[:before], 50), 1),
            "dry_run_p99_before_ms": round(percentile(latencies[:before], 99), 1)}
