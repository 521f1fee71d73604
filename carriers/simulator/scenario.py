"""What the SMSC simulator is asked to play: the scenario hooks tests and benchmarks set (:class:`SmscHandler`),
and each submit_sm as it was received (:class:`Submitted`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from smpplib import consts

if TYPE_CHECKING:
    from carriers.simulator.smsc import SmscSimulator

NO_ANSWER = -1  # a submit_status meaning: never answer this submit_sm (a response lost at the SMSC)


@dataclass
class Submitted:
    """A submit_sm as the simulator received it."""

    message_id: str
    system_id: str
    source: str
    destination: str
    data_coding: int
    esm_class: int
    text: str
    short_message: bytes
    concat: tuple[int, int, int] | None  # (ref, total, seq) from UDH or SAR
    registered_delivery: int
    label: str  # the carrier this destination belongs to (for per-carrier limits)
    received_at: float = field(default_factory=time.time)
    # how its receipt goes back when not as an SMPP deliver_sm: f(submit, stat, receipt text) (the HTTP face)
    report: Callable[["Submitted", str, str], None] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "system_id": self.system_id, "source": self.source,
                "destination": self.destination, "data_coding": self.data_coding, "esm_class": self.esm_class,
                "text": self.text, "concat": list(self.concat) if self.concat else None, "label": self.label,
                "received_at": self.received_at}


class SmscHandler:
    """Scenario hooks. Each may be changed while the simulator runs."""

    def __init__(self) -> None:
        self.throttle_all = False  # answer ESME_RTHROTTLED to every submit_sm
        self.throttle_fraction = 0.0  # ... or to this random fraction of them
        self.fail: dict[str, int] = {}  # destination -> command_status to answer
        self.response_delay = 0.0  # seconds before each submit_sm_resp
        self.rate_limits: dict[str, float] = {}  # carrier label -> submits per calendar second
        self.label_of: Callable[[str], str] = lambda destination: "default"
        self.outcome: str | Callable[[str, str], str] = "DELIVRD"  # receipt stat, or f(destination, text)
        self.outcomes_by_destination: dict[str, str] = {}
        self.receipt_err: str | None = None  # the err: of receipts that are not DELIVRD (default 001)
        # every Nth part of a concatenated message (counted over all of them, first submits and repeats alike)
        # is answered with this command_status, or not answered at all (NO_ANSWER); 0: off
        self.every_nth_part = 0
        self.nth_part_status = consts.SMPP_ESME_RTHROTTLED
        self._parts_seen = 0

    def submit_status(self, sim: "SmscSimulator", sub: Submitted) -> int:
        """The command_status to answer a submit_sm with (0: accepted)."""
        if sub.destination in self.fail:
            return self.fail[sub.destination]
        if self.every_nth_part and sub.concat is not None:
            self._parts_seen += 1
            if self._parts_seen % self.every_nth_part == 0:
                return self.nth_part_status
        if self.throttle_all or (self.throttle_fraction and random.random() < self.throttle_fraction):
            return consts.SMPP_ESME_RTHROTTLED
        limit = self.rate_limits.get(sub.label)
        if limit is not None and sim.count_this_second(sub.label) >= limit:
            return consts.SMPP_ESME_RTHROTTLED
        return consts.SMPP_ESME_ROK

    def receipt_stat(self, sub: Submitted) -> str:
        if sub.destination in self.outcomes_by_destination:
            return self.outcomes_by_destination[sub.destination]
        return self.outcome(sub.destination, sub.text) if callable(self.outcome) else self.outcome
