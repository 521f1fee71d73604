"""Group commit: work items that arrive while one transaction is being written wait together, and the next
transaction writes them all (up to ``max_group`` at a time, in arrival order). One writer task runs while there is
something waiting; the first item to arrive when none runs starts it. What a group's transaction answers each item
(a future the item carries, say) is the caller's business: ``write`` is given each group in turn.

Used by accepting single-message requests (gateway.sending.accepting) and storing inbound messages
(gateway.two_way.inbound)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], max_group: int, name: str):
        self._write = write
        self._max = max_group
        self._name = name
        self._waiting: list[T] = []
        self._writer: asyncio.Task | None = None

    def add(self, item: T) -> None:
        """``item`` joins the next group (the writer starts if none runs)."""
        self._waiting.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups(), name=self._name)

    async def _write_groups(self) -> None:
        while self._waiting:  # whatever arrived while the last group was being written
            group, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
            await self._write(group)

    async def drain(self, timeout: float | None = None) -> None:
        """Until the groups waiting have been written (or ``timeout``); a writer's failure is not raised here."""
        if self._writer is not None:
            await asyncio.wait([self._writer], timeout=timeout)


__all__ = ["GroupCommit"]
