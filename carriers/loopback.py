"""An in-process carrier: a real Carrier that answers from a plain function, like httpx's MockTransport.

Tests use it to drive the gateway through orderings that are hard to provoke over a socket (a receipt before
the submit answer, duplicate receipts, hex/decimal ids). Over-the-wire behaviour is tested with the SMSC
simulator and the SMPP carrier.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Awaitable, Callable

from carriers._base import Carrier, CarrierEvents, OutboundSms, Receipt, SubmitResult

Handler = Callable[["LoopbackCarrier", OutboundSms], Awaitable[SubmitResult]]


class LoopbackCarrier(Carrier):
    kind = "loopback"

    def __init__(self, name: str = "loopback", handler: Handler | None = None, *, receipt_stat: str = "DELIVRD",
                 receipt_delay: float | None = 0.0):
        self.name = name
        self._handler = handler
        self._events: CarrierEvents | None = None
        self._ids = itertools.count(1)
        self.sent: list[OutboundSms] = []
        self.receipt_stat = receipt_stat
        self.receipt_delay = receipt_delay  # None: send no receipts
        self._ready = False
        self._tasks: set[asyncio.Task] = set()

    def set_events(self, events: CarrierEvents) -> None:
        self._events = events

    async def start(self) -> None:
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready

    def next_id(self) -> str:
        return f"{next(self._ids):08x}"

    async def send_sms(self, message: OutboundSms) -> SubmitResult:
        self.sent.append(message)
        if self._handler is not None:
            return await self._handler(self, message)
        result = SubmitResult(tuple(self.next_id() for _ in message.segments))
        if self.receipt_delay is not None:
            for mid in result.message_ids:
                self.later(self.receipt_delay, Receipt(carrier_message_id=mid, stat=self.receipt_stat))
        return result

    def later(self, delay: float, receipt: Receipt) -> None:
        """Deliver a receipt after ``delay`` seconds."""
        async def _fire() -> None:
            await asyncio.sleep(delay)
            await self.deliver_receipt(receipt)

        task = asyncio.create_task(_fire())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver_receipt(self, receipt: Receipt) -> None:
        assert self._events is not None, "set_events() first"
        await self._events.on_receipt(self.name, receipt)

    async def close(self) -> None:
        self._ready = False
        for task in list(self._tasks):
            task.cancel()
