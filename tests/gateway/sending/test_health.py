"""Carrier health as pure logic on a clock of the test's own: the rates over the sliding window, the thresholds,
the WARNING at each change, the recovery on fresh samples; and how routes deprioritize a degraded carrier."""

from __future__ import annotations

import itertools
import logging

import pytest

from gateway.sending.health import SLICES, SUBMIT_ERROR, SUBMIT_OK, THROTTLED, Health
from gateway.sending.routing import Route, choose
from gateway.settings_routes import HealthSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health(**settings) -> tuple[Health, Clock]:
    clock = Clock()
    return Health(HealthSettings(**{"window_s": 60.0, "min_samples": 10, **settings}), clock), clock


@pytest.mark.parametrize("feed, reason", [
    (lambda h: [h.submitted("a", SUBMIT_ERROR if i % 2 else SUBMIT_OK) for i in range(20)],
     "submit error rate 50% over 20%"),
    (lambda h: [h.submitted("a", THROTTLED if i % 4 else SUBMIT_OK) for i in range(20)],
     "throttle rate 75% over 50%"),
    (lambda h: [h.receipt("a", "UNDELIV" if i % 3 else "DELIVRD") for i in range(30)],
     "undelivered or rejected receipts 67% over 50%"),
    (lambda h: [h.receipt("a", "REJECTD") for i in range(10)], "undelivered or rejected receipts 100% over 50%"),
])
def test_a_carrier_over_a_threshold_is_degraded(feed, reason, caplog):
    health, _ = _health()
    with caplog.at_level(logging.WARNING, "gateway.sending.health"):
        feed(health)
    assert not health.is_healthy("a") and health.is_healthy("b")
    view = health.view("a")
    assert view["state"] == "degraded" and view["reasons"] == [reason]
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "carrier a is degraded" in record.getMessage()


def test_rates_are_judged_only_on_enough_samples_and_only_final_receipts_count():
    health, _ = _health()
    for _ in range(9):
        health.submitted("a", SUBMIT_ERROR)
        health.receipt("a", "UNDELIV")
    for _ in range(50):
        health.receipt("a", "ENROUTE")  # not final: not counted
    assert health.is_healthy("a") and health.view("a")["receipts"] == 9
    health.submitted("a", SUBMIT_ERROR)
    assert not health.is_healthy("a")


def test_a_degraded_carrier_recovers_on_fresh_samples_once_the_bad_ones_leave_the_window(caplog):
    health, clock = _health()
    for _ in range(10):
        health.receipt("a", "UNDELIV")
    assert not health.is_healthy("a")
    clock.now += 30
    for _ in range(5):  # probes delivered, but the bad receipts are still in the window: 67% bad
        health.receipt("a", "DELIVRD")
    assert not health.is_healthy("a")
    clock.now += 31  # the bad ones leave the window; 5 good ones are too few to judge by
    assert not health.is_healthy("a")
    for _ in range(4):
        health.receipt("a", "DELIVRD")
    assert not health.is_healthy("a")
    with caplog.at_level(logging.WARNING, "gateway.sending.health"):
        health.receipt("a", "DELIVRD")  # the tenth fresh sample
    assert health.is_healthy("a")
    assert "carrier a is healthy again" in caplog.records[-1].getMessage()


def test_a_degraded_carrier_stays_degraded_until_probes_show_it_well():
    health, clock = _health()
    for _ in range(10):
        health.submitted("a", SUBMIT_ERROR)
    clock.now += 120  # the window is empty: no sample says it is well
    assert not health.is_healthy("a")
    for _ in range(9):
        health.submitted("a", SUBMIT_OK)
    assert not health.is_healthy("a")
    health.submitted("a", SUBMIT_OK)
    assert health.is_healthy("a")


def test_disabled_health_judges_nothing():
    health, _ = _health(enabled=False)
    for _ in range(50):
        health.submitted("a", SUBMIT_ERROR)
    assert health.is_healthy("a")


def _sweep(n: int):
    points = (i / n for i in itertools.count())  # an even sweep of [0, 1)
    return lambda: next(points)


@pytest.mark.parametrize("route, degraded, ready, expected", [
    (Route("fo", failover=("a", "b")), {"a"}, {"a", "b"}, {"a": 5, "b": 95}),  # a gets the probe share only
    (Route("fo", failover=("a", "b")), {"b"}, {"a", "b"}, {"a": 100}),
    (Route("fo", failover=("a", "b")), {"a", "b"}, {"a", "b"}, {"a": 100}),  # all degraded: as if all healthy
    (Route("fo", failover=("a", "b")), {"b"}, {"b"}, {"b": 100}),  # degraded, but the only one up
    (Route("one", carrier="a"), {"a"}, {"a", "b"}, {"a": 100}),  # never moved off a single-carrier route
    (Route("split", split=(("a", 50.0), ("b", 50.0))), {"a"}, {"a", "b"}, {"a": 5, "b": 95}),  # 2.5 vs 50
    (Route("split", split=(("a", 50.0), ("b", 50.0))), {"a", "b"}, {"a", "b"}, {"a": 50, "b": 50}),
])
def test_routes_deprioritize_degraded_carriers(route, degraded, ready, expected):
    rand = _sweep(100)
    picks = [choose(route, ready.__contains__, rand, lambda name: name not in degraded, 0.05) for _ in range(100)]
    assert {name: picks.count(name) for name in set(picks)} == expected


def test_a_window_keeps_counts_per_slice_not_each_event():
    """Its memory is bounded by the number of slices, whatever the traffic: 200 submits a second for ten window
    lengths leave at most SLICES + 1 slices, and the rates count exactly the events of the last window (and at
    most one slice more)."""
    health, clock = _health(window_s=60.0)
    for second in range(600):
        for i in range(200):
            clock.now = 1000.0 + second + i / 200
            health.submitted("a", SUBMIT_ERROR if second >= 590 else SUBMIT_OK)
    submits = health.carriers["a"].submits
    assert len(submits.slices) <= SLICES + 1
    in_window = 60 * 200
    per_slice = 200 * 60 / SLICES
    assert in_window <= health.view("a")["submits"] <= in_window + per_slice
    assert health.view("a")["submit_error_rate"] == pytest.approx(10 / 60, abs=0.01)
