"""Carrier health: for each carrier, over a sliding window of ``window_s`` seconds, the share of submits it refused
or failed (submit errors), the share it answered "slow down" (throttles), and the share of final receipts that
ended undelivered or rejected. A carrier whose rates cross a threshold (``[health]``, judged once the window holds
``min_samples`` of that kind) is degraded: failover lists and weighted splits give it only a probe share of their
traffic, so that it comes back by itself once those probes find it well again. Single-carrier routes keep it.
Every change of health is an alert (gateway.metrics.alerts), logged at WARNING."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from carriers import Carrier
from gateway.metrics.alerts import CARRIER_HEALTH, Alerts
from gateway.settings_routes import HealthSettings

SUBMIT_OK, SUBMIT_ERROR, THROTTLED = "ok", "error", "throttled"
BAD_RECEIPTS = frozenset({"UNDELIV", "REJECTD"})
FINAL_RECEIPTS = frozenset({"DELIVRD", "UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN"})


# a window keeps counts per slice of this share of its length, not each event: its memory is some 300 slices however
# many messages a second pass (at 500 a second, 300 s of events one by one were 150,000 entries per window)
SLICES = 300


class _Window:
    """Events of one kind (submits or receipts) within the last ``seconds``, counted by category ('' or a bad
    one) per slice of time (``resolution`` seconds): an event leaves the window with its slice, when the whole
    slice is older than the window (so the window may hold up to one slice more)."""

    def __init__(self, resolution: float = 1.0):
        self.resolution = resolution
        self.slices: collections.deque[tuple[int, collections.Counter]] = collections.deque()
        self.counts: collections.Counter = collections.Counter()
        self.total = 0

    def add(self, at: float, category: str) -> None:
        key = math.floor(at / self.resolution)
        if not self.slices or self.slices[-1][0] < key:
            self.slices.append((key, collections.Counter()))
        self.slices[-1][1][category] += 1  # a clock that stepped back counts in the newest slice
        self.counts[category] += 1
        self.total += 1

    def trim(self, before: float) -> None:
        slices, counts = self.slices, self.counts
        while slices and (slices[0][0] + 1) * self.resolution <= before:
            _, gone = slices.popleft()
            counts.subtract(gone)
            self.total -= gone.total()

    def share(self, category: str) -> float:
        return self.counts[category] / self.total if self.total else 0.0


@dataclass
class CarrierHealth:
    """One carrier's windows and its state."""

    name: str
    resolution: float = 1.0  # of its windows' slices, in seconds
    submits: _Window = field(init=False)
    receipts: _Window = field(init=False)
    healthy: bool = True
    reasons: list[str] = field(default_factory=list)
    changed_at: float | None = None

    def __post_init__(self) -> None:
        self.submits, self.receipts = _Window(self.resolution), _Window(self.resolution)


class Health:
    """The health of every carrier, fed by the sender (submit outcomes) and the receipt path."""

    def __init__(self, settings: HealthSettings, clock: Callable[[], float] = time.time, *,
                 alerts: Alerts | None = None):
        self.settings = settings
        self._clock = clock
        self._alerts = alerts or Alerts()
        self.carriers: dict[str, CarrierHealth] = {}

    def _of(self, carrier: str) -> CarrierHealth:
        health = self.carriers.get(carrier)
        if health is None:
            health = self.carriers[carrier] = CarrierHealth(carrier, self.settings.window_s / SLICES)
        return health

    def submitted(self, carrier: str, outcome: str) -> None:
        """A submit's outcome: SUBMIT_OK, SUBMIT_ERROR or THROTTLED."""
        health = self._of(carrier)
        health.submits.add(self._clock(), outcome)
        self._judge(health)

    def receipt(self, carrier: str, stat: str) -> None:
        """A receipt's stat; only final ones count."""
        stat = stat.upper()
        if stat not in FINAL_RECEIPTS:
            return
        health = self._of(carrier)
        health.receipts.add(self._clock(), "bad" if stat in BAD_RECEIPTS else "")
        self._judge(health)

    def is_healthy(self, carrier: str) -> bool:
        health = self.carriers.get(carrier)
        if health is None:
            return True
        if not health.healthy:  # the window moves on even when no traffic comes: judge it again
            self._judge(health)
        return health.healthy

    def _judge(self, health: CarrierHealth) -> None:
        s = self.settings
        if not s.enabled:
            return
        now = self._clock()
        health.submits.trim(now - s.window_s)
        health.receipts.trim(now - s.window_s)
        reasons = []
        if health.submits.total >= s.min_samples:
            for label, category, limit in (("submit error rate", SUBMIT_ERROR, s.max_submit_error_rate),
                                           ("throttle rate", THROTTLED, s.max_throttle_rate)):
                share = health.submits.share(category)
                if share > limit:
                    reasons.append(f"{label} {share:.0%} over {limit:.0%}")
        if health.receipts.total >= s.min_samples:
            share = health.receipts.share("bad")
            if share > s.max_undelivered_rate:
                reasons.append(f"undelivered or rejected receipts {share:.0%} over {s.max_undelivered_rate:.0%}")
        healthy = not reasons
        if healthy and not health.healthy and not self._enough(health):
            return  # degraded until the probes have shown it well again (too few samples in the window yet)
        health.reasons = reasons
        if healthy != health.healthy:
            health.healthy, health.changed_at = healthy, now
            if healthy:
                said = (f"carrier {health.name} is healthy again: its rates are under the thresholds "
                        f"({self._rates(health)})")
            else:
                said = (f"carrier {health.name} is degraded: {'; '.join(reasons)}; failover lists and splits give it "
                        f"{s.probe_share * 100:.0f}% of their traffic until it recovers")
            self._alerts.event(CARRIER_HEALTH, health.name, said, fields={"carrier": health.name})

    def _enough(self, health: CarrierHealth) -> bool:
        m = self.settings.min_samples
        return health.submits.total >= m or health.receipts.total >= m

    @staticmethod
    def _rates(health: CarrierHealth) -> str:
        submits, receipts = health.submits, health.receipts
        return (f"submit errors {submits.share(SUBMIT_ERROR):.0%}, throttles {submits.share(THROTTLED):.0%} "
                f"of {submits.total} submits; undelivered or rejected {receipts.share('bad'):.0%} "
                f"of {receipts.total} receipts")

    def view(self, carrier: str) -> dict:
        """The carrier's health for the API."""
        health = self._of(carrier)
        self.is_healthy(carrier)
        return {"state": "healthy" if health.healthy else "degraded", "reasons": list(health.reasons),
                "changed_at": health.changed_at, "window_s": self.settings.window_s,
                "submits": health.submits.total, "receipts": health.receipts.total,
                "submit_error_rate": round(health.submits.share(SUBMIT_ERROR), 4),
                "throttle_rate": round(health.submits.share(THROTTLED), 4),
                "undelivered_rate": round(health.receipts.share("bad"), 4)}


def carrier_views(carriers: Iterable[Carrier], health: Health | None) -> list[dict[str, Any]]:
    """Each carrier as the operator sees it: whether it can take messages, its binds (SMPP) and its health."""
    views = []
    for carrier in carriers:
        clients = getattr(carrier, "clients", None)  # an SMPP carrier's binds
        views.append({
            "name": carrier.name, "type": type(carrier).__name__, "ready": carrier.ready,
            "binds": [{"name": c.name, "bound": c.bound} for c in clients] if clients is not None else None,
            "health": health.view(carrier.name) if health is not None else None})
    return views
