"""The registry as the running gateway holds it: the client of the configured registry (``[registry] mode``:
the simulator, started here in this process on a port of its own, or the remote registry), the CSP service over
it, and the reconciliation's periodic task."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.settings import Settings
from gateway.tendlc.csp import Csp, events_token
from gateway.tendlc.reconcile import Reconciler
from registry.csp.client import CspClient

SIMULATOR_KEY = "gateway"


@dataclass
class RegistryService:
    csp: Csp
    reconciler: Reconciler
    simulator_url: str | None = None  # the simulator's base URL, when it runs in this process


@contextlib.asynccontextmanager
async def registry_service(settings: Settings, sessions: async_sessionmaker[AsyncSession], *, webhook_secret: str,
                           simulator_secret: str) -> AsyncIterator[RegistryService]:
    """Start what ``[registry]`` asks for; stop it on leaving."""
    r = settings.registry
    runner = None
    if r.mode == "simulator":
        from registry.csp.simulator import start_simulator
        from registry.csp.state import SimState

        snapshot = str(settings.data_path / r.simulator_snapshot) if r.simulator_snapshot else None
        runner, base_url = await start_simulator(SimState(SIMULATOR_KEY, simulator_secret, snapshot_path=snapshot),
                                                 r.simulator_host, r.simulator_port)
        key, secret = SIMULATOR_KEY, simulator_secret
    else:
        base_url, key, secret = r.base_url, r.api_key, r.api_secret
    client = CspClient(base_url, key, secret, timeout_s=r.timeout_s, retries=r.retries)
    csp = Csp(sessions, client, r, events_token(webhook_secret), simulated=runner is not None,
              events_base=r.events_url or settings.server.public_url)
    reconciler = Reconciler(csp)
    reconciler.start()
    try:
        yield RegistryService(csp, reconciler, base_url if runner is not None else None)
    finally:
        await reconciler.stop()
        await client.close()
        if runner is not None:
            await runner.cleanup()
