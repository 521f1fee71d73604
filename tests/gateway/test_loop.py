"""gateway.loop.run_server: the event loop of long-lived processes, and the garbage collector's tuning."""

from __future__ import annotations

import asyncio
import gc

import pytest

from gateway.loop import YOUNG_GENERATION_THRESHOLD, run_server


@pytest.fixture
def gc_restored():
    """run_server tunes the collector of the process it runs in: the test's process gets its own back."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_run_server_runs_the_coroutine_on_the_chosen_loop_with_the_collector_tuned(event_loop, gc_restored):
    before = gc.get_threshold()

    async def probe() -> tuple[str, int, tuple[int, int, int], int]:
        await asyncio.sleep(0)
        return (type(asyncio.get_running_loop()).__module__, gc.get_threshold()[0], gc.get_threshold(),
                gc.get_freeze_count())

    module, young, threshold, frozen = run_server(probe(), event_loop)
    assert module.startswith("uvloop" if event_loop == "uvloop" else "asyncio")
    assert young == YOUNG_GENERATION_THRESHOLD
    assert threshold[1:] == before[1:]  # the older generations keep their thresholds
    assert frozen > 0  # what existed before (the imports) is set aside from the collector's passes
