"""The last minute per carrier (gateway.metrics.activity) on a clock the test moves: counts leave the window after
60 seconds, rates are per second over the minute (or the time since start while shorter), and repeated errors
count on the newest one instead of pushing the others out (carriers.recent)."""

from __future__ import annotations

from carriers.recent import RecentErrors
from gateway.metrics.activity import INBOUND, RECEIPTS, SENT, Activity


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_slide_out_of_the_minute():
    clock = Clock()
    activity = Activity(clock)
    clock.now += 10  # ten seconds after start: rates over those ten seconds
    activity.count("sim", SENT, 20)
    activity.count("sim", RECEIPTS, 5)
    activity.count("backup", SENT)
    activity.count(None, SENT)  # no carrier took it: nobody's count
    minute = activity.last_minute("sim")
    assert (minute["sent"], minute["receipts"], minute["inbound"]) == (20, 5, 0)
    assert (minute["sent_per_s"], minute["receipts_per_s"]) == (2.0, 0.5)
    clock.now += 30
    activity.count("sim", SENT, 40)
    activity.count("sim", INBOUND, 3)
    clock.now += 25  # 65 s after start: the first 20 are 55 s old, still in the minute
    assert activity.last_minute("sim")["sent"] == 60 and activity.last_minute("sim")["sent_per_s"] == 1.0
    clock.now += 6  # now 61 s old: gone
    minute = activity.last_minute("sim")
    assert (minute["sent"], minute["receipts"], minute["inbound"]) == (40, 0, 3)
    clock.now += 60 * 7  # the ring's buckets are reused: nothing of an older minute comes back
    activity.count("sim", SENT)
    assert activity.last_minute("sim")["sent"] == 1
    assert activity.last_minute("backup")["sent"] == 0 and activity.last_minute("unknown")["sent"] == 0


def test_errors_repeat_on_the_newest_and_keep_the_last_few():
    clock = Clock()
    errors = RecentErrors(keep=3, clock=clock)
    errors.add("connection_lost", "lost")
    for i in range(500):  # a storm of throttles is one entry
        clock.now += 1
        errors.add("throttled", f"slow down {i}")
    assert [(e["code"], e["count"]) for e in errors.view()] == [("connection_lost", 1), ("throttled", 500)]
    storm = errors.view()[1]
    assert (storm["first_at"], storm["at"], storm["message"]) == (1_000_001.0, 1_000_500.0, "slow down 499")
    for code in ("a", "b", "throttled"):
        errors.add(code, code)
    assert [e["code"] for e in errors.view()] == ["a", "b", "throttled"]  # the oldest went; a new run counts anew
    assert errors.view()[-1]["count"] == 1

    activity = Activity(clock, keep_errors=2)
    activity.error("sim", "throttled", "slow down")
    activity.error("sim", "throttled", "slow down")
    activity.error("sim", "smpp_0x0b", "rejected")
    assert [(e["code"], e["count"]) for e in activity.errors("sim")] == [("throttled", 2), ("smpp_0x0b", 1)]
    assert activity.errors("backup") == []
