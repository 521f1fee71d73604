"""The pause before trying again what failed: exponential backoff with jitter, for messages and webhooks alike."""

from __future__ import annotations

import random


def backoff(attempts: int, first: float, longest: float, jitter: float = 0.1) -> float:
    """The pause after ``attempts`` failed attempts, in the unit of ``first`` and ``longest``: ``first`` after the
    first, doubling with each one after it up to ``longest``, then times a random factor within ±``jitter`` so
    that what failed together does not come back together."""
    pause = min(longest, first * 2.0 ** min(max(attempts - 1, 0), 32))
    return pause * random.uniform(1 - jitter, 1 + jitter)
