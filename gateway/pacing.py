"""Pacing: every limit a message is subject to, taken at once, so carriers never see more than they accept.

Rates use GCRA (the generic cell rate algorithm) with virtual scheduling: a message that may not leave now
gets the earliest time at which ALL its limits allow it, and that slot is reserved on each of them, so
messages behind it line up after it (order per limit is kept) and no limit is ever exceeded. A burst
allowance lets a limit spend up to ``burst`` units at once after idling; the default of 1 spaces traffic
evenly, which is what "no second above N" needs. Costs are in segments where carriers count segments; the
segments of one message leave together, so a one-second window may hold up to (segments - 1) units above the
rate, paid back by the wait that follows.

Daily caps (T-Mobile per brand, sole proprietors) are counters that reset at midnight in a given time zone.

This in-process limiter serves one gateway process; several processes share limits through Redis.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``per_second`` units a second on average, ``burst`` at once."""

    key: str
    per_second: float
    burst: float = 1.0

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second


@dataclass(frozen=True, slots=True)
class DailyCap:
    """At most ``limit`` units per calendar day in ``tz`` (e.g. T-Mobile: midnight US Pacific)."""

    key: str
    limit: int
    tz: str = "America/Los_Angeles"


Limit = Rate | DailyCap


class Limiter(Protocol):
    def reserve(self, limits: Iterable[Limit], cost: float, now: float, horizon: float) -> float | None:
        """Reserve the earliest slot at which every limit allows ``cost`` units, if it lies within
        ``horizon`` seconds; return its time (>= now). Return None, reserving nothing, when it lies further
        out; ``earliest`` then says when to ask again."""

    def earliest(self, limits: Iterable[Limit], cost: float, now: float) -> float: ...


def _next_midnight(now: float, tz: str) -> float:
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(now, zone)
    tomorrow = (local + dt.timedelta(days=1)).date()
    return dt.datetime.combine(tomorrow, dt.time(0), zone).timestamp()


def _day(now: float, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(now, ZoneInfo(tz)).date()


class MemoryLimiter:
    """GCRA and daily counters in this process's memory."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}  # theoretical arrival time per rate key
        self._daily: dict[tuple[str, dt.date], float] = {}  # units used per (key, local day)

    def _rate_start(self, rate: Rate, cost: float, now: float) -> float:
        """Earliest time at which a message of ``cost`` units conforms to ``rate``: when its first unit does.
        Its whole cost is then charged, so the next message waits for all of it."""
        tat = self._tat.get(rate.key, now)
        return max(now, tat - (rate.burst - 1) * rate.interval)

    def _cap_start(self, cap: DailyCap, cost: float, now: float) -> float:
        if cost > cap.limit:
            return float("inf")
        at = now
        while self._daily.get((cap.key, _day(at, cap.tz)), 0.0) + cost > cap.limit:
            at = _next_midnight(at, cap.tz)
        return at

    def earliest(self, limits: Iterable[Limit], cost: float, now: float) -> float:
        start = now
        for limit in limits:
            if isinstance(limit, Rate):
                start = max(start, self._rate_start(limit, cost, now))
            else:
                start = max(start, self._cap_start(limit, cost, now))
        return start

    def reserve(self, limits: Iterable[Limit], cost: float, now: float, horizon: float) -> float | None:
        limits = list(limits)
        at = self.earliest(limits, cost, now)
        if at - now > horizon:
            return None
        for limit in limits:
            if isinstance(limit, Rate):
                tat = max(self._tat.get(limit.key, at), at)
                self._tat[limit.key] = tat + cost * limit.interval
            else:
                slot = (limit.key, _day(at, limit.tz))
                self._daily[slot] = self._daily.get(slot, 0.0) + cost
        return at

    def forget_before(self, now: float) -> None:
        """Drop state that can no longer matter (rate keys idle since before ``now``, past days)."""
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        yesterday = dt.date.fromtimestamp(now) - dt.timedelta(days=1)
        self._daily = {k: v for k, v in self._daily.items() if k[1] >= yesterday}

    def penalize(self, key: str, seconds: float, now: float) -> None:
        """Push a rate key's schedule back (a carrier said "slow down" although we kept to its limit)."""
        self._tat[key] = max(self._tat.get(key, now), now) + seconds
