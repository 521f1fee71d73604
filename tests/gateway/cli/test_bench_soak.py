"""gatewayctl bench soak: the JSON a very short run prints (a real gateway process, simulator and receiver), and
the pacer's arithmetic. How fast and how flat is what the benchmark measures; nothing here is timed."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from gateway.bench.soak import Sample, Sent, _verdicts, paced
from gateway.cli import cli


def test_a_short_soak_loses_nothing_and_its_figures_agree():
    result = CliRunner().invoke(cli, ["bench", "soak", "--minutes", "0.2", "--rate", "20", "--window-minutes",
                                      "0.05", "--inbound-rate", "5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    sent = 20 * 12  # --rate x seconds, exactly
    assert out["lost"] == 0, out
    assert out["messages"] == {"sent": sent, "refused": 0, "first_refusal": None, "delivered": sent,
                               "final_events": sent, "final_events_missing": 0}
    assert out["inbound"]["sent"] == out["inbound"]["forwarded"] == 5 * 12
    assert out["pacing"]["requests"] == 10 * 12  # --requests-per-s x seconds, 2 messages each
    hooks = out["webhooks"]
    assert hooks["duplicates"] == hooks["final_event_repeats"] == hooks["inbound_repeats"] == 0 and out["once"]
    assert hooks["bad_signatures"] == 0
    # every outbox row reached the receiver once: three events a message (queued, sent, delivered) and the inbound
    assert hooks["events"] == hooks["outbox_rows_added"] == 3 * sent + 5 * 12

    windows = out["windows"]
    assert [w["window"] for w in windows] == [0, 1, 2, 3]
    assert sum(w["messages_final"] for w in windows) == sum(w["messages_sent"] for w in windows) == sent
    assert sum(w["inbound_sent"] for w in windows) == sum(w["inbound_forwarded"] for w in windows) == 5 * 12
    for w in windows:
        assert w["messages_final"] > 0 and w["final_event_p50_ms"] <= w["final_event_p99_ms"], w
        assert w["inbound_p50_ms"] <= w["inbound_p99_ms"] and w["rss_mb"] > 0 and w["fds"] > 0, w
        assert w["gateway_cpu_pct"] > 0, w

    start, end = out["tables"]["start"], out["tables"]["end"]
    grew = {t: end["rows"][t] - start["rows"][t] for t in end["rows"]}
    assert grew["messages"] == grew["message_parts"] == sent and grew["message_events"] == 3 * sent
    assert grew["inbound_messages"] == 5 * 12 and grew["opt_outs"] == 0
    assert end["messages_by_status"] == {"delivered": sent}
    assert end["webhook_deliveries_by_status"] == {"delivered": hooks["outbox_rows_added"]}
    assert end["db_bytes"] > start["db_bytes"] > 0

    memory = out["memory"]
    assert 0 < memory["rss_mb_start"] <= memory["rss_mb_max"]
    assert out["fds"]["start"] > 0 and out["fds"]["end"] > 0
    assert set(out["flat"]) == {"rss", "fds", "final_event_p99", "inbound_p99"}
    for verdict in out["flat"].values():
        assert isinstance(verdict["flat"], bool) and verdict["rule"], verdict


async def test_the_pacer_sends_exactly_the_rate_in_even_requests():
    """333/s at 10 requests a second: every message once, in order, 33 or 34 to a request, never more."""
    calls: list[tuple[int, int]] = []

    async def fire(first: int, end: int) -> None:
        calls.append((first, end))

    await paced(333, 1.0, 10, asyncio.get_running_loop().time(), Sent(), fire)
    assert calls[0][0] == 0 and calls[-1][1] == 333 and len(calls) == 10
    assert all(a[1] == b[0] for a, b in zip(calls, calls[1:]))
    assert {end - first for first, end in calls} == {33, 34}


def _run(rss_mb_at: list[tuple[float, float]], window_s: float = 60.0) -> dict:
    """The memory verdict of a run whose resident memory was sampled (seconds, MB) every 5 s."""
    samples = [Sample(at, int(mb * 1024), 40, 0.0, 0.0) for at, mb in rss_mb_at]
    windows = [{"window": w, "from_s": w * window_s, "rss_mb": next(mb for at, mb in reversed(rss_mb_at)
                                                                     if at <= (w + 1) * window_s), "fds": 40,
                "final_event_p99_ms": 10.0, "inbound_p99_ms": 10.0, "messages_sent": 1, "inbound_sent": 1}
               for w in range(int(rss_mb_at[-1][0] // window_s))]
    return _verdicts(windows, rss_mb_at[-1][1], 40, samples)["rss"]


def test_memory_that_levels_off_after_caches_fill_is_flat_and_a_steady_leak_is_not():
    times = [5.0 * i for i in range(1, 73)]  # six minutes
    # caches filling for three minutes (+15 MB a minute, past the warm-up's +20%), then nothing more
    cache = _run([(t, 90 + 15 * min(t, 180) / 60) for t in times])
    assert cache["flat"] and cache["levelled"] and not cache["within_growth"], cache
    assert cache["slope_mb_per_min"] == 0.0 and cache["slope_from_s"] == 240.0
    # a leak: 3 MB a minute to the end, within 20% of the warm-up's memory after six minutes all the same
    leak = _run([(t, 90 + 3 * t / 60) for t in times])
    assert not leak["flat"] and not leak["levelled"] and leak["within_growth"], leak
    assert leak["slope_mb_per_min"] == 3.0
