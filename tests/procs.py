"""Tests against real processes: an SMSC simulator and a gateway started with gateway.bench.processes, driven through
their HTTP APIs (the gateway's and the simulator's control API), as a customer and the carrier would see them."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import aiohttp

from gateway.bench.common import Target, all_messages
from gateway.bench.processes import Gateway, Simulator, stop
from gateway.store.models import FINAL_STATUSES
from tests.conftest import OPERATOR_TOKEN


class Unavailable(Exception):
    """The gateway answered 503 (its database busy, say): nothing was done; the request may be sent again."""


class Stack:
    """``async with Stack(tmp_path, env) as stack``: a simulator and a gateway (demo account) on free ports."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None, *, receipt_delay_ms: int = 50):
        self.tmp_path, self.env, self.receipt_delay_ms = tmp_path, env or {}, receipt_delay_ms
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))

    async def __aenter__(self) -> "Stack":
        self.log = open(self.tmp_path / "processes.log", "w")
        self.sim = Simulator.start(self.log, receipt_delay_ms=self.receipt_delay_ms)
        self.gateway = Gateway.for_simulator(self.tmp_path, self.sim, OPERATOR_TOKEN, self.log, self.env)
        try:
            await self.start_gateway()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        stop(self.sim.process, self.gateway.process)
        await self.http.close()
        self.log.close()

    async def start_gateway(self) -> None:
        self.gateway.start()
        await self.gateway.ready(self.sim.process)

    @property
    def target(self) -> Target:
        return Target(self.gateway.url, self.sim.url, self.gateway.api_key, [])

    @property
    def db_path(self) -> Path:
        return self.tmp_path / "gateway.db"

    # --- the gateway, as the demo account ----------------------------------------------------------------------
    async def api(self, method: str, path: str, body: Any = None, *, expect: int = 200,
                  headers: dict[str, str] | None = None) -> Any:
        async with self.http.request(method, self.gateway.url + path, json=body, headers={
                "Authorization": f"Bearer {self.gateway.api_key}", **(headers or {})}) as resp:
            if resp.status == 503 and expect != 503:  # try again later (Retry-After), as a customer would
                raise Unavailable(f"{method} {path}: {await resp.text()}")
            assert resp.status == expect, f"{method} {path}: {resp.status} {await resp.text()}"
            return await resp.json()

    async def send_batch(self, numbers: list[str], body: str, idempotency_key: str | None = None,
                         **fields: Any) -> list[str]:
        """POST /v1/messages/batch (``fields`` go in each message); the ids of the messages it accepted (every
        one, or the test fails)."""
        data = await self.api("POST", "/v1/messages/batch",
                              {"messages": [{"to": n, "body": body, **fields} for n in numbers]},
                              headers={"Idempotency-Key": idempotency_key} if idempotency_key else None)
        assert data["failed"] == 0, data
        return [r["message"]["id"] for r in data["results"]]

    async def settle(self, ids: list[str], *, timeout: float, quiet_s: float = 5.0) -> dict[str, dict]:
        """The messages ``ids`` once all are final, or once none has changed for ``quiet_s`` with none queued or
        sending (the caller's assertions say what is wrong then); ``timeout`` only bounds a hang."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last, still_since = None, loop.time()
        while True:
            rows = {m["id"]: m for m in await all_messages(self.http, self.target)}
            mine = {i: rows.get(i) for i in ids}
            statuses = collections.Counter(m["status"] if m else "missing" for m in mine.values())
            if set(statuses) <= FINAL_STATUSES or loop.time() > deadline:
                return mine
            if statuses != last or statuses["queued"] or statuses["sending"]:
                last, still_since = statuses, loop.time()
            elif loop.time() - still_since >= quiet_s:
                return mine
            await asyncio.sleep(0.5)

    # --- the simulator's control API ---------------------------------------------------------------------------
    async def sim_api(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.sim.url + path, json=body) as resp:
            assert resp.status == 200, f"{method} {path}: {resp.status} {await resp.text()}"
            return await resp.json()

    async def scenario(self, **settings: Any) -> None:
        await self.sim_api("POST", "/scenario", settings)

    async def sim_stats(self) -> dict[str, Any]:
        return await self.sim_api("GET", "/stats")

    async def smsc_counts(self) -> dict[str, dict[str, int]]:
        """submit_sm per destination the SMSC accepted ("accepted") and refused ("refused")."""
        return await self.sim_api("GET", "/counts")
