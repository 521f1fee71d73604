"""gatewayctl bench sms: throughput and latency of accept -> SMPP -> receipt -> delivered (and the status
callbacks a local receiver counts and verifies). With ``--carrier http`` every message goes through an HTTP SMS
carrier instead (a route sends everything to it): to the simulator's HTTP face in the kannel or json profile, or
through a real Kannel whose SMSC is the simulator, and its status reports come back on the gateway's callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from carriers.simulator.http_face import JSON_MESSAGES, SENDSMS
from gateway.bench import wire
from gateway.bench.common import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    ConfigHook,
    admin,
    parse_time,
    percentile,
    read_finals,
    receipts_sent,
    recipients,
    send_batches,
    send_single,
    started,
    started_cluster,
)
from gateway.bench.processes import Simulator, free_port
from gateway.bench.procstat import CpuMeter
from gateway.store.models import FINAL_STATUSES
from gateway.webhooks.signing import SIGNATURE_HEADER, verify


class CallbackReceiver:
    """The customer's webhook endpoint of ``bench sms --callbacks``: on 127.0.0.1 (a free port), it counts every
    event once by its delivery id, checks every signature, and notes when each message's final event arrived.
    A POST may carry one event or, with batched delivery, a JSON array of them (see the README)."""

    def __init__(self, secret: str):
        self.secret = secret
        self.url = ""
        self.seen: set[str] = set()  # delivery ids
        self.events = self.duplicates = self.bad_signatures = self.malformed = self.posts = 0
        self.finals: dict[str, float] = {}  # message id -> arrival of its first final event
        self.final_latencies: list[float] = []  # ms from the message's acceptance to its final event
        self.first = self.last = 0.0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "CallbackReceiver":
        # the benchmark's own lean HTTP (gateway.bench.wire): the receiver stands for the customer's side, which
        # runs elsewhere, so it takes as little of the measured machine's CPU as it can
        self._server, port = await wire.serve(self._handle)
        self.url = "http://127.0.0.1:%d/events" % port
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> int:
        if method != "POST" or path != "/events":
            return 404
        now = time.time()
        self.posts += 1
        if not verify(self.secret, headers.get(SIGNATURE_HEADER.lower(), ""), raw):
            self.bad_signatures += 1
            return 400
        try:
            body = json.loads(raw)
            items = [(e["delivery_id"], e["event"]) for e in body] if isinstance(body, list) else \
                [(headers["x-gateway-delivery"], body)]
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return 400
        for delivery_id, event in items:
            if delivery_id in self.seen:
                self.duplicates += 1
                continue
            self.seen.add(delivery_id)
            self.events += 1
            self.first = self.first or now
            self.last = now
            try:
                self.on_event(event, now)
            except (KeyError, TypeError, ValueError, AttributeError):  # signed, with an id, but not an event
                self.malformed += 1
        return 204

    def on_event(self, event: dict[str, Any], now: float) -> None:
        """One event seen for the first time (its signature checked): a message's first final event is noted."""
        from gateway.webhooks.catalog import FINAL_EVENTS

        if event.get("event_type") in FINAL_EVENTS and event["message_id"] not in self.finals:
            self.finals[event["message_id"]] = now
            self.final_latencies.append((now - parse_time(event["created_at"])) * 1000)

    async def wait_for_finals(self, ids: list[str], timeout: float) -> None:
        """Until every message in ``ids`` had its final event, or none came for five seconds, or ``timeout``."""
        deadline = time.time() + timeout
        while time.time() < deadline and not set(ids) <= self.finals.keys():
            if self.last and time.time() - self.last > 5.0:
                return
            await asyncio.sleep(0.2)


HTTP_CARRIER = """
[[carriers]]
name = "http"
type = "http"
profile = "{profile}"
url = "{url}"
username = "{username}"
password = "{password}"
auth_value = "Bearer {password}"
concurrency = {concurrency}

[[routes]]
name = "everything-over-http"
carrier = "http"
"""


def http_carrier(profile: str, concurrency: int, kannel: bool) -> ConfigHook:
    """The gateway's HTTP carrier, on the simulator's HTTP face or on a Kannel started here."""

    @contextlib.asynccontextmanager
    async def hook(sim: Simulator, tmp: Path) -> AsyncIterator[str]:
        if not kannel:
            path = SENDSMS if profile == "kannel" else JSON_MESSAGES
            yield HTTP_CARRIER.format(profile=profile, url=f"http://127.0.0.1:{sim.sms_http_port}{path}",
                                      username="gateway", password="secret", concurrency=concurrency)
            return
        from gateway.bench.kannel import PASSWORD, USERNAME, start_kannel, stop_kannel

        running = await start_kannel(tmp / "kannel", sim.smpp_port, log_level=1)
        try:
            yield HTTP_CARRIER.format(profile="kannel", url=running.sendsms_url, username=USERNAME,
                                      password=PASSWORD, concurrency=concurrency)
        finally:
            stop_kannel(running)

    return hook


async def bench_sms(*, messages: int, url: str | None, sim_url: str | None, key: str | None, throttles: bool,
                    mode: str, concurrency: int, batch: int, timeout: float, instances: int = 1,
                    database_url: str = POSTGRES_ADMIN_URL, redis_url: str = REDIS_URL,
                    rate: int = 5000, callbacks: str = "none", carrier: str = "smpp", profile: str = "kannel",
                    kannel: bool = False, http_concurrency: int = 10,
                    webhook_processes: int | None = None, backend: str = "sqlite") -> dict[str, Any]:
    # on PostgreSQL (and Redis for the shared limits), as several instances always are
    cluster = instances > 1 or backend == "postgresql"
    hooks = {} if webhook_processes is None else {"GATEWAY_WEBHOOKS_PROCESSES": str(webhook_processes)}
    if hooks and url:
        raise SystemExit("--webhook-processes sets up the gateway it starts: not with --target-url")
    env = ({} if throttles else {"GATEWAY_PACING_ENABLED": "false"}) | hooks
    http_figures: dict[str, Any] = {}
    if carrier == "http" and (cluster or url):
        raise SystemExit("--carrier http starts its own gateway and simulator: not with --instances, --backend "
                         "postgresql or --target-url")
    if cluster and url:
        raise SystemExit("--instances and --backend postgresql start their own gateways: not with --target-url")
    if cluster:
        # several instances keep their limits together in Redis: the account's and the short code's limits are
        # raised to ``rate`` (not lifted), so that the Redis limiter is on the path and can be checked
        env = {"GATEWAY_PACING_ENABLED": "true", "GATEWAY_PACING_SHORT_CODE_PER_S": str(rate)} | hooks
        cm = started_cluster(instances=instances, database_url=database_url, redis_url=redis_url, env=env)
    elif carrier == "http":
        profile = "kannel" if kannel else profile
        http_figures = {"profile": profile, "through": "kannel" if kannel else "simulator http face",
                        "http_concurrency": http_concurrency}
        sim_env, sim_args = None, ()
        if kannel:
            # Kannel reads the SMSC's ids as decimal (its msg-id-type 0x00); and it alone binds to the simulator's
            # SMSC, which would hand some of its receipts to the gateway's own bind otherwise: that one binds to an
            # idle named carrier
            idle = free_port()
            sim_env, sim_args = {"GATEWAY_SIMULATOR_ID_FORMAT": "decimal"}, ("--carrier", f"idle={idle}")
            env = {**env, "GATEWAY_CARRIER_SIM_PORT": str(idle)}
        cm = started(url=None, sim_url=None, key=None, env=env, sms_http=not kannel, sim_env=sim_env,
                     sim_args=sim_args, config=http_carrier(profile, http_concurrency, kannel))
    else:
        cm = started(url=url, sim_url=sim_url, key=key, env=env)
    receiver: CallbackReceiver | None = None
    async with cm as target, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                  connector=aiohttp.TCPConnector(limit=concurrency * 2)) as http:
        account = await (await http.get(target.url + "/v1/account",
                                        headers={"Authorization": f"Bearer {target.key}"})).json()
        if cluster:
            raised = await admin(http, target, "PATCH", f"/admin/accounts/{account['id']}",
                                  {"max_rate_per_s": rate})
            if raised.get("max_rate_per_s") != rate:
                raise SystemExit(f"could not raise the account's rate: {raised}")
        extra: dict[str, Any] = {}
        if callbacks != "none":
            receiver = await CallbackReceiver(account["webhook_secret"]).start()
            extra = {"status_callback": receiver.url} | ({"status_callback_events": "final"}
                                                         if callbacks == "final" else {})
        # the CPU of the processes started here, from the first request to the last final event (not the reading
        # back of every message, which follows)
        meter = CpuMeter([p.pid for p in target.processes[1:]], target.processes[0].pid) \
            if target.processes else None
        try:
            numbers = recipients(messages)
            if meter is not None:
                meter.start()
            if mode == "batch":
                ids, latencies, start, end = await send_batches(http, target, numbers, batch, concurrency, "bench",
                                                                 extra=extra)
            else:
                ids, latencies, start, end = await send_single(target, numbers, concurrency, "bench", extra)
            await receipts_sent(http, target, len(ids), timeout)
            if receiver is not None:
                await receiver.wait_for_finals(ids, max(30.0, timeout - (time.time() - end)))
            cpu = meter.per_message(len(ids)) if meter is not None else None
            rows = await read_finals(http, target, len(ids), max(30.0, timeout - (time.time() - end)))
            async with http.get(target.sim_url + "/stats") as resp:
                sim = await resp.json()
        finally:
            if receiver is not None:
                await receiver.close()
    mine = {m["id"]: m for m in rows}
    sent = [mine[i] for i in ids if i in mine]
    delivered = [m for m in sent if m["status"] == "delivered"]
    final_ids = {m["id"] for m in sent if m["status"] in FINAL_STATUSES}
    created = [parse_time(m["created_at"]) for m in delivered]
    done = [parse_time(m["done_at"]) for m in delivered]
    span = (max(done) - min(created)) if delivered else 0.0
    return {
        "benchmark": "sms", "carrier": carrier, **http_figures, "messages": messages, "mode": mode,
        "concurrency": concurrency, "callbacks": callbacks, "throttles": throttles,
        "accepted": len(ids), "accepted_per_s": round(len(ids) / max(end - start, 1e-9), 1),
        "accept_p50_ms": round(percentile(latencies, 50), 2), "accept_p99_ms": round(percentile(latencies, 99), 2),
        "accept_latency_is_per": "batch request" if mode == "batch" else "request",
        "delivered": len(delivered), "delivered_per_s": round(len(delivered) / span, 1) if span else 0.0,
        "delivered_p50_ms": round(percentile([d - c for c, d in zip(created, done)], 50) * 1000, 1),
        "delivered_p99_ms": round(percentile([d - c for c, d in zip(created, done)], 99) * 1000, 1),
        # lost: no final state, or (with callbacks) no final event at the receiver
        "lost": sum(1 for i in ids if i not in final_ids or (receiver is not None and i not in receiver.finals)),
        "simulator_received": sim["received"], "simulator_throttled": sim["stats"].get("throttled", 0),
    } | ({"simulator_received_over_http": sim["stats"].get("accepted_over_http", 0)} if carrier == "http" else {}) \
      | (_callback_figures(receiver, ids, start) if receiver is not None else {}) \
      | ({"cpu_ms_per_message": cpu} if cpu is not None else {}) \
      | (_cluster_figures(instances, rate, sim, start) if cluster else {})


def _callback_figures(receiver: CallbackReceiver, ids: list[str], start: float) -> dict[str, Any]:
    """What the webhook receiver saw: events per second from the first request sent to the last event received,
    final events missing (counted in ``lost`` too), repeats and bad signatures, and accept -> final event."""
    missing = sum(1 for i in ids if i not in receiver.finals)
    return {"webhook_events": receiver.events, "webhook_posts": receiver.posts,
            "webhook_events_per_s": round(receiver.events / max(receiver.last - start, 1e-9), 1)
            if receiver.events else 0.0,
            "final_events_missing": missing, "duplicates": receiver.duplicates,
            "bad_signatures": receiver.bad_signatures, "malformed_posts": receiver.malformed,
            "final_event_p50_ms": round(percentile(receiver.final_latencies, 50), 1),
            "final_event_p99_ms": round(percentile(receiver.final_latencies, 99), 1)}


def _cluster_figures(instances: int, rate: int, sim: dict[str, Any], start: float) -> dict[str, Any]:
    """What the simulator saw each second from all instances together, against the shared limit."""
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    return {"instances": instances, "backend": "postgresql+redis", "limit_per_s": rate,
            "max_per_s": max(per_second.values(), default=0),
            "seconds_above_limit": sum(1 for v in per_second.values() if v > rate),
            "per_second": [per_second[s] for s in sorted(per_second)]}
