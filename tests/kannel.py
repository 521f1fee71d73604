"""A real Kannel for tests (gateway.bench.kannel: bearerbox and smsbox with a generated configuration on free
ports, its SMSC being our SMPP simulator). Missing Kannel skips the test locally and fails it in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.bench import kannel as bench_kannel
from gateway.bench.kannel import PASSWORD, USERNAME, Kannel, stop_kannel
from gateway.bench.processes import ProcessError
from tests.conftest import IN_CI

__all__ = ["PASSWORD", "USERNAME", "Kannel", "require_kannel", "start_kannel", "stop_kannel"]


def require_kannel() -> tuple[str, str]:
    found = bench_kannel.binaries()
    if found is None:
        if IN_CI:
            pytest.fail("Kannel (bearerbox, smsbox) must be installed in CI: apt-get install kannel")
        pytest.skip("Kannel is not installed (apt-get install kannel)")
    return found


async def start_kannel(tmp: Path, smsc_port: int, inbound_url: str | None = None) -> Kannel:
    """bearerbox and smsbox started, the SMPP link to the simulator online, sendsms answering (or the test fails
    with Kannel's logs)."""
    require_kannel()
    try:
        return await bench_kannel.start_kannel(tmp, smsc_port, inbound_url)
    except ProcessError as exc:
        raise AssertionError(str(exc)) from None
