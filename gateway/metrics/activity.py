"""What each carrier did over the last minute, kept in memory for the operator's status (``GET /admin/status``):
messages it took, receipts and inbound messages it brought, in one-second buckets (a ring of 60 per carrier and
kind: counting is an index and an add, reading sums 60 numbers; never a database query), and its last few submit
errors and throttles (``carriers.recent.RecentErrors``). Bind failures are the binds' own (the SMPP client's)."""

from __future__ import annotations

import time
from typing import Any, Callable

from carriers.recent import RecentErrors

SENT, RECEIPTS, INBOUND = "sent", "receipts", "inbound"
KINDS = (SENT, RECEIPTS, INBOUND)
WINDOW_S = 60


class _Ring:
    """Counts per second over the last WINDOW_S seconds: bucket ``second % WINDOW_S``, reset when its second is
    an older one."""

    __slots__ = ("seconds", "counts")

    def __init__(self) -> None:
        self.seconds = [-1] * WINDOW_S
        self.counts = [0] * WINDOW_S

    def add(self, second: int, n: int) -> None:
        i = second % WINDOW_S
        if self.seconds[i] != second:
            self.seconds[i], self.counts[i] = second, 0
        self.counts[i] += n

    def total(self, second: int) -> int:
        """The count of the WINDOW_S seconds up to ``second``, that one included."""
        return sum(c for s, c in zip(self.seconds, self.counts) if second - WINDOW_S < s <= second)


class Activity:
    """Per carrier: sent, receipts and inbound over the last minute, and the last submit errors."""

    def __init__(self, clock: Callable[[], float] = time.time, keep_errors: int = 5):
        self._clock = clock
        self._started = clock()
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._errors: dict[str, RecentErrors] = {}
        self._keep = keep_errors

    def count(self, carrier: str | None, kind: str, n: int = 1) -> None:
        """``n`` more of ``kind`` (SENT, RECEIPTS, INBOUND) for the carrier (nothing when there is none)."""
        if not carrier:
            return
        ring = self._rings.get((carrier, kind))
        if ring is None:
            ring = self._rings[(carrier, kind)] = _Ring()
        ring.add(int(self._clock()), n)

    def error(self, carrier: str, code: str, message: str) -> None:
        """A submit the carrier refused, throttled or failed to answer."""
        errors = self._errors.get(carrier)
        if errors is None:
            errors = self._errors[carrier] = RecentErrors(self._keep, self._clock)
        errors.add(code, message)

    def last_minute(self, carrier: str) -> dict[str, Any]:
        """Counts over the last minute and the rates per second (over the time since start while that is less
        than a minute)."""
        now = self._clock()
        second, span = int(now), max(1.0, min(float(WINDOW_S), now - self._started))
        out: dict[str, Any] = {"window_s": WINDOW_S}
        for kind in KINDS:
            ring = self._rings.get((carrier, kind))
            total = ring.total(second) if ring is not None else 0
            out[kind] = total
            out[f"{kind}_per_s"] = round(total / span, 3)
        return out

    def errors(self, carrier: str) -> list[dict[str, Any]]:
        errors = self._errors.get(carrier)
        return errors.view() if errors is not None else []
