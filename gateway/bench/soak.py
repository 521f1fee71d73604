"""gatewayctl bench soak: steady traffic for minutes (sends with their receipts and status callbacks, and inbound
messages forwarded to the customer's webhook) against a gateway process, watching whether it stays flat: its
resident memory and open file descriptors (from /proc), its tables and database file, and the latencies per window.

The sends go as ``POST /v1/messages/batch``, ``requests_per_s`` a second at a fixed pace; each carries the
messages due since the last (token pacing: by time t after the start, floor(rate x t) messages were sent), so the
rate is exact over any stretch and never comes in bursts. Inbound messages are injected through the simulator's
control API (``POST /mo``) the same way. One local receiver takes both the status events and the inbound messages,
checks every signature and counts every event once by its delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, NamedTuple

import aiohttp

from gateway.bench.common import Target, parse_time, percentile, recipients, started
from gateway.bench.procstat import cpu_seconds, family, own_cpu_seconds
from gateway.bench.sms import CallbackReceiver
from gateway.webhooks.catalog import FINAL_EVENTS, TEXT_DELIVERED

# the tables that grow with traffic (and opt_outs, which should not), counted at the start and the end
TABLES = ("messages", "message_parts", "message_events", "unmatched_receipts", "webhook_deliveries",
          "webhook_attempts", "inbound_messages", "inbound_parts", "opt_outs")
# when a series counts as flat (printed with the verdicts)
LEVEL_MB_PER_MIN = 0.5  # resident memory levelled off: its slope over the last third of the run at most this ...
RSS_GROWTH_PCT = 20.0  # ... (too few samples for a slope:) at the end within this of the memory after warm-up
FD_GROWTH = 16  # open descriptors at the end at most this many above those after warm-up
P99_FACTOR = 2.0  # the last window's p99 at most this factor of the first window's ...
P99_SLACK_MS = 50.0  # ... plus this (a first p99 of a few ms would make any factor meaningless)


class Sample(NamedTuple):
    at: float  # seconds into the run
    rss_kb: int  # the gateway's resident memory (with its webhook workers')
    fds: int  # the gateway's open file descriptors (with its webhook workers')
    cpu_s: float  # the gateway's CPU time so far, user and system (with its webhook workers')
    own_cpu_s: float  # this process's (the load generator's and the receiver's)


def process_sample(pid: int, at: float = 0.0) -> Sample:
    """The gateway process ``pid``, with its children, as /proc shows them now."""
    rss = fds = 0
    cpu = 0.0
    for member in family(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        break
            fds += len(os.listdir(f"/proc/{member}/fd"))
            cpu += cpu_seconds(member)
        except OSError:
            if member == pid:
                raise
    return Sample(at, rss, fds, cpu, own_cpu_seconds())


def table_sizes(db: Path) -> dict[str, Any]:
    """Row counts of TABLES, the messages and outbox rows by status, and the database's size on disk (with its
    write-ahead log), read through a read-only connection of its own."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        by_status = {t: dict(conn.execute(f"SELECT status, count(*) FROM {t} GROUP BY status").fetchall())
                     for t in ("messages", "webhook_deliveries")}
    files = [db, db.with_name(db.name + "-wal")]
    return {"rows": rows, "messages_by_status": by_status["messages"],
            "webhook_deliveries_by_status": by_status["webhook_deliveries"],
            "db_bytes": sum(p.stat().st_size for p in files if p.exists())}


class SoakReceiver(CallbackReceiver):
    """The customer's endpoint for both status callbacks and inbound messages: as bench sms's receiver, and for
    each inbound message (known by its body) the time from its injection at the simulator to its arrival here."""

    def __init__(self, secret: str):
        super().__init__(secret)
        self.delivered = 0  # TEXT_DELIVERED events
        self.finals_by_acceptance: list[tuple[float, float]] = []  # (accepted at, ms to the final event)
        self.injected: dict[str, float] = {}  # inbound body -> when it was handed to the simulator
        self.forwarded: dict[str, float] = {}  # inbound body -> ms from injection to arrival here
        # the same message told about again under another delivery id: a second final event, or an inbound
        # message forwarded twice (as two inbound messages)
        self.final_repeats = self.inbound_repeats = 0

    def on_event(self, event: dict[str, Any], now: float) -> None:
        if "inbound_id" in event:
            body = event.get("body", "")
            if body in self.forwarded:
                self.inbound_repeats += 1
            elif body in self.injected:
                self.forwarded[body] = (now - self.injected[body]) * 1000
            return
        final = event.get("event_type") in FINAL_EVENTS
        if final and event["message_id"] in self.finals:
            self.final_repeats += 1
            return
        super().on_event(event, now)
        if final:
            self.finals_by_acceptance.append((parse_time(event["created_at"]), self.final_latencies[-1]))
            self.delivered += event["event_type"] == TEXT_DELIVERED


@dataclass
class Sent:
    """What the load generator did: the messages the gateway accepted and refused, inbound handed to the
    simulator, each request's latency, and how late the pacer ever was."""

    ids: list[str] = field(default_factory=list)
    refused: int = 0
    first_refusal: str | None = None
    accept_ms: list[tuple[float, float, int]] = field(default_factory=list)  # (sent at, ms, messages accepted)
    inbound: list[float] = field(default_factory=list)  # injection times
    inbound_refused: int = 0
    requests: int = 0
    max_lag_ms: float = 0.0


async def paced(rate: float, seconds: float, per_s: int, t0: float, sent: Sent,
                fire: Callable[[int, int], Awaitable[None]]) -> None:
    """Call ``fire(first, end)`` ``per_s`` times a second from loop time ``t0`` for ``seconds``, with the items due
    by then (floor(rate x elapsed)), each call in a task of its own so that a slow answer never delays the pace."""
    loop = asyncio.get_running_loop()
    total, due, tasks = int(rate * seconds), 0, []
    for k in range(1, math.ceil(seconds * per_s) + 1):
        at = t0 + k / per_s
        await asyncio.sleep(max(0.0, at - loop.time()))
        sent.max_lag_ms = max(sent.max_lag_ms, (loop.time() - at) * 1000)
        upto = min(total, int(rate * k / per_s + 1e-9))
        if upto > due:
            tasks.append(asyncio.create_task(fire(due, upto)))
            due = upto
    await asyncio.gather(*tasks)


async def bench_soak(*, minutes: float, rate: int, window_minutes: float, requests_per_s: int, inbound_rate: float,
                     callbacks: str, webhook_batch: int, timeout: float) -> dict[str, Any]:
    seconds, window_s = minutes * 60, window_minutes * 60
    windows = max(1, math.ceil(seconds / window_s - 1e-9))
    if math.ceil(rate / requests_per_s) > 1000:
        raise SystemExit(f"--rate {rate} at --requests-per-s {requests_per_s} is more than 1,000 messages to a "
                         "request (the batch limit): raise --requests-per-s")
    env = {"GATEWAY_PACING_ENABLED": "false", "GATEWAY_VOICE_ENABLED": "false"}
    async with started(url=None, sim_url=None, key=None, env=env) as target, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                  connector=aiohttp.TCPConnector(limit=256)) as http:
        assert target.gateway is not None and target.gateway.process is not None
        pid, db = target.gateway.process.pid, target.gateway.data_dir / "gateway.db"
        sim_pid = target.processes[0].pid
        headers = {"Authorization": f"Bearer {target.key}"}
        account = await (await http.get(target.url + "/v1/account", headers=headers)).json()
        receiver = await SoakReceiver(account["webhook_secret"]).start()
        try:
            number = await _set_up(http, target, receiver.url, webhook_batch)
            figures = await _soak(http, target, receiver, (pid, sim_pid), db, number, seconds=seconds,
                                  window_s=window_s, windows=windows, rate=rate, requests_per_s=requests_per_s,
                                  inbound_rate=inbound_rate, callbacks=callbacks, timeout=timeout)
        finally:
            await receiver.close()
    return {"benchmark": "soak", "minutes": minutes, "rate": rate, "window_minutes": window_minutes,
            "requests_per_s": requests_per_s, "messages_per_request": round(rate / requests_per_s, 1),
            "inbound_rate": inbound_rate, "callbacks": callbacks, "webhook_batch": webhook_batch} | figures


async def _set_up(http: aiohttp.ClientSession, target: Target, receiver_url: str, webhook_batch: int) -> str:
    """Forward the first SMS number's inbound messages to the receiver; batch the account's webhooks if asked.
    Returns that number."""
    headers = {"Authorization": f"Bearer {target.key}"}
    numbers = (await (await http.get(target.url + "/v1/numbers", headers=headers)).json())["numbers"]
    number = next(n["number"] for n in numbers if "sms" in n["capabilities"])
    async with http.patch(f"{target.url}/v1/numbers/{number}", headers=headers, json={
            "two_way_enabled": True, "two_way_webhook_url": receiver_url}) as resp:
        if resp.status != 200:
            raise SystemExit(f"could not forward {number}'s inbound messages: {await resp.text()}")
    if webhook_batch > 1:
        async with http.patch(target.url + "/v1/account", headers=headers,
                              json={"webhook_batch_size": webhook_batch}) as resp:
            if resp.status != 200:
                raise SystemExit(f"could not set the webhook batch size: {await resp.text()}")
    return number


async def _soak(http: aiohttp.ClientSession, target: Target, receiver: SoakReceiver, pids: tuple[int, int],
                db: Path, number: str, *, seconds: float, window_s: float, windows: int, rate: int, requests_per_s: int,
                inbound_rate: float, callbacks: str, timeout: float) -> dict[str, Any]:
    pid, sim_pid = pids  # the gateway's and the simulator's
    headers = {"Authorization": f"Bearer {target.key}"}
    extra = {"status_callback": receiver.url} | ({"status_callback_events": "final"} if callbacks == "final" else {})
    people = recipients(int(rate * seconds))
    sent = Sent()
    loop = asyncio.get_running_loop()

    async def send(first: int, end: int) -> None:
        payload = {"messages": [{"to": people[i], "body": f"soak {i}"} | extra for i in range(first, end)]}
        t = time.time()
        async with http.post(target.url + "/v1/messages/batch", json=payload, headers=headers) as resp:
            data = await resp.json()
        sent.requests += 1
        results = data.get("results") if resp.status == 200 else None
        if results is None:
            sent.refused += end - first
            sent.first_refusal = sent.first_refusal or f"{resp.status} {data}"
            results = []
        ids = [r["message"]["id"] for r in results if r["status_code"] < 300]
        sent.ids.extend(ids)
        sent.accept_ms.append((t, (time.time() - t) * 1000, len(ids)))
        for r in results:
            if r["status_code"] >= 300:
                sent.refused += 1
                sent.first_refusal = sent.first_refusal or f"{r['status_code']} {r.get('error')}"

    async def inject(first: int, end: int) -> None:
        async def one(i: int) -> None:
            body = f"soak reply {i}"
            receiver.injected[body] = time.time()
            # someone sent a message a while ago (half as many as were sent by now), so that the gateway finds the
            # message it answers
            person = people[int(i / inbound_rate * rate / 2) % len(people)]
            async with http.post(target.sim_url + "/mo", json={"from": person, "to": number, "text": body}) as resp:
                await resp.read()
                if resp.status == 200:
                    sent.inbound.append(receiver.injected[body])
                else:
                    del receiver.injected[body]
                    sent.inbound_refused += 1

        await asyncio.gather(*(one(i) for i in range(first, end)))

    samples: list[Sample] = []  # during the traffic

    async def sample_every(interval: float, wall0: float) -> None:
        while True:
            await asyncio.sleep(interval)
            samples.append(process_sample(pid, time.time() - wall0))

    tables_start = await asyncio.to_thread(table_sizes, db)
    start, sim_start = process_sample(pid), cpu_seconds(sim_pid)
    wall0, t0 = time.time(), loop.time()
    sampler = asyncio.create_task(sample_every(min(5.0, window_s / 4), wall0))
    try:
        await asyncio.gather(paced(rate, seconds, requests_per_s, t0, sent, send),
                             paced(inbound_rate, seconds, requests_per_s, t0, sent, inject))
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    traffic_s = time.time() - wall0
    end, sim_end = process_sample(pid, traffic_s), cpu_seconds(sim_pid)
    samples.append(end)
    await _drain(receiver, sent, timeout)
    drained = process_sample(pid, time.time() - wall0)
    tables_end = await asyncio.to_thread(table_sizes, db)
    per_window = _windows(receiver, sent, [start, *samples], wall0, window_s, windows)
    missing_finals = sum(1 for i in sent.ids if i not in receiver.finals)
    not_forwarded = len(sent.inbound) - len(receiver.forwarded)
    warm = per_window[0]
    outbox_rows = tables_end["rows"]["webhook_deliveries"] - tables_start["rows"]["webhook_deliveries"]
    return {
        "traffic_s": round(traffic_s, 1),
        "pacing": {"requests": sent.requests, "max_lag_ms": round(sent.max_lag_ms, 1),
                   "sent_per_s": round((len(sent.ids) + sent.refused) / traffic_s, 1)},
        "messages": {"sent": len(sent.ids), "refused": sent.refused, "first_refusal": sent.first_refusal,
                     "delivered": receiver.delivered, "final_events": len(receiver.finals),
                     "final_events_missing": missing_finals},
        "inbound": {"sent": len(sent.inbound), "refused_by_simulator": sent.inbound_refused,
                    "forwarded": len(receiver.forwarded), "not_forwarded": not_forwarded},
        "webhooks": {"events": receiver.events, "posts": receiver.posts, "outbox_rows_added": outbox_rows,
                     "duplicates": receiver.duplicates, "final_event_repeats": receiver.final_repeats,
                     "inbound_repeats": receiver.inbound_repeats, "bad_signatures": receiver.bad_signatures},
        # messages without their final event, inbound messages not forwarded, and outbox rows never received
        "lost": missing_finals + not_forwarded + max(0, outbox_rows - receiver.events),
        "once": receiver.duplicates + receiver.final_repeats + receiver.inbound_repeats == 0,
        "memory": {"rss_mb_start": _mb(start.rss_kb), "rss_mb_after_warmup": warm["rss_mb"],
                   "rss_mb_end": _mb(end.rss_kb), "rss_mb_after_drain": _mb(drained.rss_kb),
                   "rss_mb_max": _mb(max(s.rss_kb for s in samples))},
        "fds": {"start": start.fds, "after_warmup": warm["fds"], "end": end.fds, "after_drain": drained.fds},
        # of one core, over the traffic (the machine's other work takes its share too)
        "cpu_pct": {"gateway": _cpu_pct(start, end, "cpu_s"),
                    "simulator": round((sim_end - sim_start) / traffic_s * 100, 1),
                    "load_generator_and_receiver": _cpu_pct(start, end, "own_cpu_s"), "cores": os.cpu_count()},
        "tables": {"start": tables_start, "end": tables_end, "db_bytes_per_message": round(
            (tables_end["db_bytes"] - tables_start["db_bytes"]) / max(1, len(sent.ids)))},
        "windows": per_window,
        "flat": _verdicts(per_window, _mb(end.rss_kb), end.fds, samples),
    }


async def _drain(receiver: SoakReceiver, sent: Sent, timeout: float) -> None:
    """Until every accepted message had its final event and every inbound message arrived, or nothing arrived for
    ten seconds, or ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(receiver.finals) >= len(sent.ids) and len(receiver.forwarded) >= len(sent.inbound):
            return
        if receiver.last and time.time() - receiver.last > 10.0:
            return
        await asyncio.sleep(0.2)


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _cpu_pct(before: Sample, after: Sample, which: str) -> float:
    """CPU time between two samples, in percent of one core."""
    return round((getattr(after, which) - getattr(before, which)) / max(after.at - before.at, 1e-9) * 100, 1)


def _windows(receiver: SoakReceiver, sent: Sent, samples: list[Sample], wall0: float,
             window_s: float, windows: int) -> list[dict[str, Any]]:
    """Each window's latencies, by when the message was accepted (or the inbound message injected), and the
    gateway's memory and descriptors at its end (the last sample in it, the first being the start's) and CPU use
    over it."""
    def index(at: float) -> int:
        return min(windows - 1, max(0, int((at - wall0) / window_s)))

    finals: list[list[float]] = [[] for _ in range(windows)]
    for accepted_at, ms in receiver.finals_by_acceptance:
        finals[index(accepted_at)].append(ms)
    accepts: list[list[float]] = [[] for _ in range(windows)]
    accepted = [0] * windows
    for at, ms, n in sent.accept_ms:
        accepts[index(at)].append(ms)
        accepted[index(at)] += n
    inbound: list[list[float]] = [[] for _ in range(windows)]
    for body, ms in receiver.forwarded.items():
        inbound[index(receiver.injected[body])].append(ms)
    injected = [0] * windows
    for at in sent.inbound:
        injected[index(at)] += 1
    by_window: list[list[Sample]] = [[] for _ in range(windows)]
    for s in samples[1:]:
        by_window[index(wall0 + s.at - 1e-6)].append(s)  # a sample on a window's end belongs to it
    out, previous = [], samples[0]
    for w in range(windows):
        last = by_window[w][-1] if by_window[w] else previous
        out.append({"window": w, "from_s": round(w * window_s, 1), "to_s": round((w + 1) * window_s, 1),
                    "messages_sent": accepted[w], "messages_final": len(finals[w]),
                    "final_event_p50_ms": _p(finals[w], 50), "final_event_p99_ms": _p(finals[w], 99),
                    "accept_p99_ms": _p(accepts[w], 99),
                    "inbound_sent": injected[w], "inbound_forwarded": len(inbound[w]),
                    "inbound_p50_ms": _p(inbound[w], 50), "inbound_p99_ms": _p(inbound[w], 99),
                    "rss_mb": _mb(last.rss_kb), "rss_mb_max": _mb(max((s.rss_kb for s in by_window[w]),
                                                                       default=last.rss_kb)),
                    "rss_mb_per_min": _round(rss_slope([previous, *by_window[w]], previous.at)),
                    "fds": last.fds, "gateway_cpu_pct": _cpu_pct(previous, last, "cpu_s") if last is not previous
                    else None})
        previous = last
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _p(values: list[float], p: float) -> float | None:
    return round(percentile(values, p), 1) if values else None


def rss_slope(samples: list[Sample], since: float) -> float | None:
    """MB a minute the resident memory grew by over the samples taken from ``since`` (seconds into the run) on:
    the least-squares slope, None with fewer than three samples."""
    points = [(s.at, s.rss_kb / 1024) for s in samples if s.at >= since]
    if len(points) < 3:
        return None
    n = len(points)
    mean_t, mean_m = sum(t for t, _ in points) / n, sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / var * 60


def _verdicts(per_window: list[dict[str, Any]], rss_end_mb: float, fds_end: int,
              samples: list[Sample]) -> dict[str, Any]:
    """Whether each series stayed flat, with the rule and the figures it was judged on. The first window is the
    warm-up; with only one window there is nothing to compare a latency with (null). A last window whose
    messages all went without a final event (or inbound messages unforwarded) is not flat. Memory is flat when
    it levelled off over the last third of the run: bounded caches filling over the first minutes (a cache of the
    last N recipients) grow past the warm-up and then stop, where a leak keeps its slope to the end, however small
    a share of the warm-up's memory it adds by then. Without enough samples for a slope, the end is compared with
    the warm-up."""
    warm_rss, warm_fds = per_window[0]["rss_mb"], per_window[0]["fds"]
    within = rss_end_mb <= warm_rss * (1 + RSS_GROWTH_PCT / 100)
    # the last third of the run, in whole windows (at least the last one)
    tail_windows = max(1, len(per_window) // 3)
    since = per_window[-tail_windows]["from_s"] if len(per_window) > 1 else (samples[-1].at / 2 if samples else 0)
    slope = rss_slope(samples, since)
    levelled = slope is not None and slope <= LEVEL_MB_PER_MIN
    out: dict[str, Any] = {
        "rss": {"flat": levelled if slope is not None else within,
                "rule": f"levelled: the slope of rss over the last third of the run (whole windows, at least the last) "
                        f"<= {LEVEL_MB_PER_MIN:g} MB/min; without a slope, rss_mb_end <= rss_mb_after_warmup (end "
                        f"of the first window) x {1 + RSS_GROWTH_PCT / 100:g} (within_growth)",
                "after_warmup": warm_rss, "end": rss_end_mb, "within_growth": within, "levelled": levelled,
                "slope_mb_per_min": None if slope is None else round(slope, 2), "slope_from_s": round(since, 1)},
        "fds": {"flat": fds_end <= warm_fds + FD_GROWTH,
                "rule": f"fds end <= fds after warm-up + {FD_GROWTH}", "after_warmup": warm_fds, "end": fds_end},
    }
    for name, sent in (("final_event_p99_ms", "messages_sent"), ("inbound_p99_ms", "inbound_sent")):
        first, last = per_window[0][name], per_window[-1][name]
        flat = None
        if len(per_window) > 1 and first is not None:
            flat = (last <= first * P99_FACTOR + P99_SLACK_MS) if last is not None else not per_window[-1][sent]
        out[name.removesuffix("_ms")] = {
            "flat": flat,
            "rule": f"last window's p99 <= first window's x {P99_FACTOR:g} + {P99_SLACK_MS:g} ms",
            "first": first, "last": last}
    return out
