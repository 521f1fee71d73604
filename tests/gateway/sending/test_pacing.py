"""The limiter's arithmetic: no window above a limit, order kept, caps reset at local midnight."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from gateway.sending.pacing import DailyCap, MemoryLimiter, Rate, SendWindows


def schedule(limiter, limits, n, cost=1, start=1000.0):
    times = []
    for _ in range(n):
        at = limiter.reserve(limits, cost, start, horizon=1e9)
        assert at is not None
        times.append(at)
    return times


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= width - 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_twenty_per_second_evenly():
    times = schedule(MemoryLimiter(), [Rate("acct:1", 20)], 200)
    assert times == sorted(times)
    assert max_in_any_window(times) == 20
    assert abs((times[-1] - times[0]) - 199 / 20) < 1e-9


def test_all_limits_at_once_the_strictest_wins():
    limiter = MemoryLimiter()
    times = schedule(limiter, [Rate("acct:1", 20), Rate("num:tf", 3)], 30)
    assert max_in_any_window(times) == 3
    # another number of the same account is held only by the account's 20/s, which the first leaves room in
    other = schedule(limiter, [Rate("acct:1", 20), Rate("num:sc", 100)], 10)
    assert max_in_any_window(sorted(times + other)) <= 20


def test_segments_count():
    times = schedule(MemoryLimiter(), [Rate("att:c1", 10)], 10, cost=3)
    # each message costs 3 units: 10 units/s means one message every 0.3 s
    assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [0.3] * 9
    assert times[0] == 1000.0  # the first leaves at once


def test_burst_allows_spending_saved_capacity_at_once():
    limiter = MemoryLimiter()
    times = schedule(limiter, [Rate("k", 10, burst=5)], 5)
    assert times == pytest.approx([1000.0] * 5)
    assert limiter.reserve([Rate("k", 10, burst=5)], 1, 1000.0, horizon=1e9) == pytest.approx(1000.1)


def test_horizon_reserves_nothing_beyond_it():
    limiter = MemoryLimiter()
    limit = [Rate("rcpt:+1415", 1)]
    assert limiter.reserve(limit, 1, 0.0, horizon=2) == 0.0
    assert limiter.reserve(limit, 1, 0.0, horizon=2) == 1.0
    assert limiter.reserve(limit, 1, 0.0, horizon=2) == 2.0
    assert limiter.reserve(limit, 1, 0.0, horizon=2) is None
    assert limiter.earliest(limit, 1, 0.0) == 3.0  # nothing was reserved by the refusal


def test_daily_cap_resets_at_midnight_pacific():
    pacific = ZoneInfo("America/Los_Angeles")
    evening = dt.datetime(2026, 11, 20, 23, 59, 0, tzinfo=pacific).timestamp()
    limiter = MemoryLimiter()
    cap = [DailyCap("tmo:brand1", 3)]
    assert [limiter.reserve(cap, 1, evening, 10) for _ in range(3)] == [evening] * 3
    assert limiter.reserve(cap, 1, evening, 10) is None
    midnight = dt.datetime(2026, 11, 21, 0, 0, tzinfo=pacific).timestamp()
    assert limiter.earliest(cap, 1, evening) == midnight
    assert limiter.reserve(cap, 1, midnight + 1, 10) == midnight + 1
    assert limiter.reserve(cap, 5, midnight + 1, 1e9) is None  # more than a whole day's cap: never


def test_reserving_tomorrow_keeps_todays_count():
    pacific = ZoneInfo("America/Los_Angeles")
    noon = dt.datetime(2026, 11, 20, 12, 0, tzinfo=pacific).timestamp()
    midnight = dt.datetime(2026, 11, 21, 0, 0, tzinfo=pacific).timestamp()
    limiter = MemoryLimiter()
    cap = [DailyCap("tmo:b", 2)]
    assert [limiter.reserve(cap, 1, noon, 1e9) for _ in range(4)] == [noon, noon, midnight, midnight]
    assert limiter.earliest(cap, 1, noon) == midnight + 86400  # today and tomorrow are both full


async def test_penalty_delays_a_key():
    limiter = MemoryLimiter()
    await limiter.penalize("carrier:att", 5.0, now=100.0)
    assert limiter.earliest([Rate("carrier:att", 75)], 1, 100.0) >= 105.0 - 1 / 75


async def test_many_throttled_answers_are_one_pause_not_their_sum():
    limiter = MemoryLimiter()
    for _ in range(100):  # a whole window answered ESME_RTHROTTLED at once
        await limiter.penalize("num:12345", 1.0, now=100.0)
    assert limiter.earliest([Rate("num:12345", 100)], 1, 100.0) == pytest.approx(101.0)


def test_rates_hold_across_many_keys():
    limiter = MemoryLimiter()
    times: Counter[int] = Counter()
    for i in range(1000):
        at = limiter.reserve([Rate("acct:1", 20), Rate(f"rcpt:{i % 7}", 1)], 1, 0.0, horizon=1e9)
        times[int(at)] += 1
    assert max(times.values()) <= 20


def test_send_windows_hold_what_comes_late_together():
    windows = SendWindows()
    limits = [Rate("acct:1", 5 * 0.98), Rate("rcpt:+1", 1 * 0.98)]
    assert windows.wait(limits, 1, 100.0) == 0
    windows.record(limits, 1, 100.0)
    # one to that recipient in the last second: the next waits until it has left the window
    assert windows.wait(limits, 1, 100.3) == pytest.approx(0.7)
    others = [Rate("acct:1", 5 * 0.98)]
    for t in (100.1, 100.2, 100.3, 100.4):  # the account's 5 a second are spent
        assert windows.wait(others, 1, t) == 0
        windows.record(others, 1, t)
    assert windows.wait(others, 1, 100.5) == pytest.approx(0.5)
    assert windows.wait(others, 1, 100.95) == pytest.approx(0.05)  # the send of 100.0 leaves the window at 101.0
    assert windows.wait(others, 1, 101.2) == 0
    # a per-minute limit (AT&T's 75 a minute) is held to its per-second equivalent, rounded up
    att = [Rate("att:c1", 75 / 60 * 0.98)]
    windows.record(att, 1, 200.0)
    assert windows.wait(att, 1, 200.1) == 0
    windows.record(att, 1, 200.1)
    assert windows.wait(att, 1, 200.2) == pytest.approx(0.8)
