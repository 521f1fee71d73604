"""The carriers the gateway holds, and the one round-robin that picks among ready things: a ready carrier of the
pool, a bound bind of an SMPP carrier."""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Generic, Iterable, TypeVar

from carriers._base import Carrier

T = TypeVar("T")


class RoundRobin(Generic[T]):
    """Hands out ``items`` in turn, skipping those that are not ready: each pick starts after the last one taken.
    ``items`` is kept as given (a list its owner may change)."""

    def __init__(self, items: list[T], is_ready: Callable[[T], bool]):
        self.items = items
        self._is_ready = is_ready
        self._next = 0

    def pick(self) -> T | None:
        """The next ready item, or None when none is ready."""
        items = self.items
        n = len(items)
        for i in range(n):
            item = items[(self._next + i) % n]
            if self._is_ready(item):
                self._next = (self._next + i + 1) % n
                return item
        return None


class CarrierPool:
    """The carriers the gateway holds; picks a ready one round-robin."""

    def __init__(self, carriers: Iterable[Carrier]):
        self.carriers = list(carriers)
        self._turns = RoundRobin(self.carriers, attrgetter("ready"))
        self.lookup: Any = None  # the gateway's recipient lookup (carrier, line type), set by the app
        self._by_name = {carrier.name: carrier for carrier in self.carriers}

    def by_name(self, name: str) -> Carrier | None:
        """The carrier of that name, or None."""
        return self._by_name.get(name)

    def pick(self, prefer: str | None = None) -> Carrier | None:
        """A ready carrier: ``prefer`` (the one that took a message's other parts) when it is ready."""
        if prefer is not None:
            carrier = self._by_name.get(prefer)
            if carrier is not None and carrier.ready:
                return carrier
        return self._turns.pick()

    @property
    def ready(self) -> bool:
        return any(c.ready for c in self.carriers)
