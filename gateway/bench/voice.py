"""gatewayctl bench voice: the speech pipeline (cached serves, new renders, renders per second)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.bench.common import percentile


async def bench_voice(*, renders: int, concurrency: int, workers: int) -> dict[str, Any]:
    """The speech pipeline itself: serving an already-rendered script, rendering new 25-word scripts one at a
    time, and renders per second with many at once (both cores busy)."""
    from voice.render import Renderer

    words = ("please remember your appointment with doctor rivera tomorrow at ten thirty in the morning at "
             "the clinic on main street and bring your insurance card").split()
    assert len(words) == 25
    tmp = Path(tempfile.mkdtemp(prefix="gw-bench-voice-"))
    renderer = Renderer(tmp, workers=workers)
    try:
        await renderer.render("warm up the workers")
        script = " ".join(words)
        await renderer.render(script)
        served = []
        for _ in range(2000):
            t0 = time.perf_counter()
            hit = await renderer.render(script)
            served.append((time.perf_counter() - t0) * 1000)
            assert hit.cached
        singles = []
        for i in range(renders):
            t0 = time.perf_counter()
            await renderer.render(f"Reference {i}. " + script)
            singles.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await renderer.render(f"Batch {i}. " + script)

        await asyncio.gather(*(one(i) for i in range(renders * 2)))
        many = renders * 2 / (time.perf_counter() - t0)
    finally:
        renderer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"benchmark": "voice", "workers": workers, "cached_serve_p50_ms": round(percentile(served, 50), 3),
            "cached_serve_p99_ms": round(percentile(served, 99), 3), "render_25_words_p50_ms":
            round(percentile(singles, 50), 1), "render_25_words_p95_ms": round(percentile(singles, 95), 1),
            "renders_per_s_concurrent": round(many, 1), "renders": renders}
