"""The event loop that long-lived processes run on (``gatewayctl run``, ``gatewayctl simulator``, the benchmarks'
load)."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine


def run_server(coro: Coroutine[Any, Any, Any], event_loop: str = "uvloop") -> Any:
    """Run ``coro`` to its end on uvloop's event loop, whose network I/O costs a fraction of asyncio's own
    (``gatewayctl bench sms`` with callbacks: about 500 -> 670 messages a second on 2 cores), or on asyncio's when
    ``event_loop`` is "asyncio" (``[server] event_loop``)."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
