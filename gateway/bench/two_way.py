"""gatewayctl bench inbound and import: mobile-originated messages to the customer's webhook and STOP
confirmations, and a large opt-out CSV import while another tenant sends."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from gateway.bench.common import BENCH_TOKEN, admin, parse_time, percentile, recipients, started
from gateway.bench.processes import free_port


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
            latencies.append((now - parse_time(body["received_at"])) * 1000)
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
                arrived.update({m["from"]: parse_time(m["received_at"]) for m in page["inbound"]})
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


async def bench_import(*, rows: int, concurrency: int, url: str | None, sim_url: str | None,
                       key: str | None) -> dict[str, Any]:
    """An operator imports ``rows`` opt-outs (one CSV upload) into one account while another tenant (the demo
    account) keeps sending ``POST /v1/messages`` dry runs, ``concurrency`` at a time: the import's duration, and
    the dry runs' latency while it runs (SQLite has one connection: a long transaction would stall them)."""
    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        account = await admin(http, target, "POST", "/admin/accounts", {"name": "bench import"})
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
