"""The event loop that long-lived processes run on (``gatewayctl run``, ``gatewayctl simulator``, the benchmarks'
load)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Coroutine

# Python's cyclic garbage collector, tuned for a server: it runs a pass over its youngest objects every 700 net
# allocations by default, and its full passes walk every object alive, the many made by imports included. At a
# thousand messages a second that cost the webhook worker about a fifth of its CPU and the gateway a twentieth.
# Here what the imports made is set aside from every pass (gc.freeze), and the youngest generation is collected
# every 10,000 net allocations: most of a request's objects are freed by their reference counts long before.
# gatewayctl bench sms (30,000 messages, callbacks): 1.95-2.04 -> 1.72-1.77 ms of CPU per message over all its
# processes, 904-917 -> 960-984 delivered/s on 2 cores; bench soak (4 minutes at 500/s): the gateway's memory as
# flat as before, 172 MB against 170.
YOUNG_GENERATION_THRESHOLD = 10_000


def run_server(coro: Coroutine[Any, Any, Any], event_loop: str = "uvloop") -> Any:
    """Run ``coro`` to its end on uvloop's event loop, whose network I/O costs a fraction of asyncio's own
    (``gatewayctl bench sms`` with callbacks: about 500 -> 670 messages a second on 2 cores), or on asyncio's when
    ``event_loop`` is "asyncio" (``[server] event_loop``). The garbage collector is tuned as above."""
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)
