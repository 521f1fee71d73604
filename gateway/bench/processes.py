"""A gateway and an SMSC simulator as separate local processes on free ports: for benchmarks and fault tests.

A :class:`Gateway` runs ``python -m gateway run --demo`` on a data folder and a SQLite file of its own (or the
database its ``env`` names), against a :class:`Simulator` running ``python -m gateway simulator``. A gateway can
be stopped, killed and started again on the same database; several may share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, AsyncIterator

import aiohttp


class ProcessError(RuntimeError):
    """A process ended early or did not become ready; the message names its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    """This process's environment without any GATEWAY_ setting (children get only what they are given)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


def _log_name(log: IO) -> str:
    return getattr(log, "name", "the log")


def stop(*processes: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM them all, then wait for each (a graceful shutdown)."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for p in running:
        p.terminate()
    for p in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout)


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, name_prefix: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the server ``server_url`` names (a SQLAlchemy URL), dropped
    afterwards, even while connections to it remain; yields its URL. ProcessError when it cannot be made."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from gateway.store.db import create_engine

    name = f"{name_prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        try:
            async with admin.connect() as conn:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001
            raise ProcessError(f"cannot create a database on {make_url(server_url).render_as_string()}: "
                               f"{type(exc).__name__}: {exc}") from None
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def drop_redis_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix`` (what a benchmark or a test left behind)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass
class Simulator:
    process: subprocess.Popen
    smpp_port: int
    http_port: int
    sms_http_port: int | None = None  # its HTTP face for HTTP carriers, when started with one

    @classmethod
    def start(cls, log: IO, *, receipt_delay_ms: int = 50, sms_http: bool = False,
              env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> "Simulator":
        """``sms_http``: with its HTTP face; ``env``, ``args``: more of the simulator's settings and options."""
        smpp, http = free_port(), free_port()
        face = free_port() if sms_http else None
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulator", "--smpp-port", str(smpp), "--http-port", str(http),
             "--receipt-delay-ms", str(receipt_delay_ms), "--sms-http-port", str(-1 if face is None else face),
             *args], env={**base_env(), **(env or {})}, stdout=log, stderr=log)
        return cls(process, smpp, http, face)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@dataclass
class Gateway:
    """One gateway process (``start`` again after ``kill`` or ``stop``: same port, data folder and database)."""

    data_dir: Path
    env: dict[str, str]
    log: IO
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    demo: bool = True  # whether the last start seeded the demo account (and so wrote its key)

    @classmethod
    def for_simulator(cls, data_dir: Path, simulator: Simulator, operator_token: str, log: IO,
                      env: dict[str, str] | None = None) -> "Gateway":
        """A gateway on data_dir/gateway.db whose only carrier is ``simulator``; ``env`` adds or overrides."""
        gateway = cls(data_dir, {}, log)
        gateway.env = {**base_env(), "GATEWAY_PORT": str(gateway.port), "GATEWAY_SERVER_DATA_DIR": str(data_dir),
                       "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}",
                       "GATEWAY_SIMULATOR_EMBEDDED": "false", "GATEWAY_OPERATOR_TOKEN": operator_token,
                       "GATEWAY_CARRIER_SIM_PORT": str(simulator.smpp_port),
                       "GATEWAY_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true",  # webhook receivers on 127.0.0.1
                       # nothing of a `make run` on the same machine: not its voice carrier nor its data folder
                       "GATEWAY_VOICE_CARRIER_URL": "http://127.0.0.1:0",
                       "GATEWAY_VOICE_CACHE_DIR": str(data_dir / "audio"),
                       "GATEWAY_REGISTRY_SIMULATOR_PORT": "0",  # its registry simulator on a free port
                       **(env or {})}
        return gateway

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "demo_api_key"

    @property
    def api_key(self) -> str:
        """The demo account's key (a start keeps the one in key_file, or makes a new one when that is gone)."""
        return self.key_file.read_text().strip()

    def start(self, *, demo: bool = True, migrate: bool = True) -> None:
        """Run it; ``demo=False`` for a further instance on a shared database (the demo account and its key
        come from the first), ``migrate=False`` when another instance applied the migrations."""
        self.demo = demo
        if demo:
            with contextlib.suppress(FileNotFoundError):
                self.key_file.unlink()  # ready means: this run wrote its key
        args = ["run"] + (["--demo"] if demo else []) + ([] if migrate else ["--no-migrate"])
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", *args], env=self.env,
                                        stdout=self.log, stderr=self.log)

    async def ready(self, *others: subprocess.Popen, timeout: float = 30.0) -> None:
        """Wait until /readyz answers 200 and the demo key is written; raise if it or one of ``others`` ends."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/readyz") as resp:
                        if resp.status == 200 and (self.key_file.exists() or not self.demo):
                            return
                if any(p.poll() is not None for p in (self.process, *others)):
                    raise ProcessError(f"a process ended early; see {_log_name(self.log)}")
                await asyncio.sleep(0.1)
        raise ProcessError(f"the gateway did not become ready; see {_log_name(self.log)}")

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
