"""The last few errors of something (a bind, a carrier), for an operator's status page: newest last, each with its
stable code, its sentence, when it came and how many times in a row. An error repeating the newest one's code
counts on it instead of pushing the others out, so that a storm of throttles leaves the bind failure before it
in view."""

from __future__ import annotations

import collections
import time
from typing import Any, Callable


class RecentErrors:
    def __init__(self, keep: int = 5, clock: Callable[[], float] = time.time):
        self._errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._clock = clock

    def add(self, code: str, message: str) -> None:
        now = self._clock()
        last = self._errors[-1] if self._errors else None
        if last is not None and last["code"] == code:
            last.update(message=message, at=now, count=last["count"] + 1)
            return
        self._errors.append({"code": code, "message": message, "first_at": now, "at": now, "count": 1})

    def view(self) -> list[dict[str, Any]]:
        """Copies, oldest first: code, message, first_at and at (epoch seconds: the first and the latest of the
        run), count."""
        return [dict(e) for e in self._errors]

    def __len__(self) -> int:
        return len(self._errors)
