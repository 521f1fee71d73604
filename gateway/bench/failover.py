"""bench failover: two simulated carriers in a failover route; the first is stopped a few seconds into the run.

One simulator process plays both: carrier ``sim`` (its default SMSC) and carrier ``backup`` (a named one on its
own port). The gateway's route sends everything to ``sim`` while it is up, then to ``backup``. Once ``backup`` has
taken what ``sim`` could not, ``sim`` comes back so that the receipts it still owes arrive."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from gateway.bench.common import BENCH_TOKEN, Target, all_messages, recipients, send_batches
from gateway.bench.processes import Gateway, ProcessError, Simulator, base_env, free_port, stop
from gateway.settings import DEFAULT_CONFIG

ROUTE = ('\n[[carriers]]\nname = "backup"\nport = {port}\nwindow = {window}\n'
         '\n[[routes]]\nname = "failover"\nfailover = ["sim", "backup"]\n')


async def _accepted(http: aiohttp.ClientSession, url: str) -> collections.Counter[str]:
    async with http.get(url + "/counts") as resp:
        return collections.Counter((await resp.json())["accepted"])


async def bench_failover(*, messages: int, stop_after: float, window: int, timeout: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-failover-"))
    log = open(tmp / "bench.log", "w")
    sim_process = gateway = None
    smpp, backup, control = free_port(), free_port(), free_port()
    try:
        sim_process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulator", "--smpp-port", str(smpp), "--http-port", str(control),
             "--carrier", f"backup={backup}"], env=base_env(), stdout=log, stderr=log)
        config = tmp / "gateway.toml"
        config.write_text(DEFAULT_CONFIG.read_text() + ROUTE.format(port=backup, window=window))
        sim_url, backup_url = f"http://127.0.0.1:{control}", f"http://127.0.0.1:{control}/carriers/backup"
        gateway = Gateway.for_simulator(tmp, Simulator(sim_process, smpp, control), BENCH_TOKEN, log, {
            "GATEWAY_CONFIG": str(config), "GATEWAY_PACING_ENABLED": "false", "GATEWAY_VOICE_ENABLED": "false",
            "GATEWAY_CARRIER_SIM_WINDOW": str(window)})
        gateway.start()
        try:
            await gateway.ready(sim_process)
        except ProcessError as exc:
            raise SystemExit(str(exc)) from None
        target = Target(gateway.url, sim_url, gateway.api_key, [sim_process, gateway.process])
        numbers = recipients(messages)
        async with aiohttp.ClientSession() as http:
            sending = asyncio.create_task(send_batches(http, target, numbers, 500, 8, "failover bench"))
            await asyncio.sleep(stop_after)
            async with http.post(sim_url + "/stop") as resp:
                await resp.read()
            stopped_at = time.time()
            resumed_at = None
            while resumed_at is None and time.time() - stopped_at < timeout:  # the first submit backup takes
                async with http.get(backup_url + "/stats") as resp:
                    if (await resp.json())["stats"].get("submitted", 0):
                        resumed_at = time.time()
                await asyncio.sleep(0.02)
            ids, _, start, _ = await sending
            deadline = time.time() + timeout
            seen: collections.Counter[str] = collections.Counter()
            while time.time() < deadline:  # until every message reached one carrier or the other
                seen = await _accepted(http, sim_url) + await _accepted(http, backup_url)
                if len(seen) >= len(ids):
                    break
                await asyncio.sleep(0.5)
            async with http.post(sim_url + "/start") as resp:  # sim is back: the receipts it owes arrive
                await resp.read()
            delivered, end = 0, time.time()
            while time.time() < deadline:
                states = collections.Counter(m["status"] for m in await all_messages(http, target))
                if states["delivered"] != delivered:
                    delivered, end = states["delivered"], time.time()
                if delivered >= len(ids):
                    break
                await asyncio.sleep(2.0)
            sim_count = sum((await _accepted(http, sim_url)).values())
            backup_count = sum((await _accepted(http, backup_url)).values())
        return {"messages": messages, "accepted": len(ids), "delivered": delivered,
                "delivered_per_s": round(delivered / max(end - start, 1e-9), 1),
                "lost": len(ids) - delivered, "reached_no_carrier": len(ids) - len(seen),
                "duplicates": sum(n - 1 for n in seen.values()), "window": window,
                "taken_by_first": sim_count, "taken_by_backup": backup_count,
                "stopped_after_s": round(stopped_at - start, 2),
                "stalled_s": None if resumed_at is None else round(resumed_at - stopped_at, 3),
                "states": dict(states) if delivered < len(ids) else {"delivered": delivered}}
    finally:
        stop(sim_process, gateway and gateway.process)
        log.close()
        with contextlib.suppress(Exception):
            shutil.rmtree(tmp, ignore_errors=True)
