"""Several simulated carriers at once: each a named :class:`SmscSimulator` on its own SMPP port, with its own
behaviour (throughput, error rate, receipt outcome, disconnects), so routing and failover meet real sockets."""

from __future__ import annotations

from dataclasses import dataclass

from carriers.simulator.scenario import SmscHandler
from carriers.simulator.smsc import SmscSimulator

OUTCOMES = {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD"}


@dataclass
class SimulatedCarrier:
    """One named simulated carrier (``[[simulator.carriers]]``)."""

    name: str = ""
    smpp_port: int = 0  # 0: any free port
    throughput: float = 0.0  # submit_sm accepted per second, beyond that ESME_RTHROTTLED (0: no limit)
    error_rate: float = 0.0  # share of submit_sm answered ESME_RTHROTTLED at random
    outcome: str = "DELIVRD"  # the receipt state of every accepted message
    disconnect_every: float = 0.0  # drop every bind this often, in seconds (0: never)
    receipt_delay_ms: int = -1  # -1: the [simulator] receipt_delay_ms

    def problems(self) -> list[str]:
        where = f"simulator.carriers.{self.name or '?'}"
        found = []
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            found.append(f"{where}: name must be letters, digits, - or _")
        if self.outcome not in OUTCOMES:
            found.append(f"{where}.outcome must be one of {', '.join(sorted(OUTCOMES))}")
        if not 0 <= self.error_rate <= 1:
            found.append(f"{where}.error_rate must be from 0 to 1")
        if self.throughput < 0 or self.disconnect_every < 0 or not 0 <= self.smpp_port <= 65535:
            found.append(f"{where}: throughput, disconnect_every and smpp_port must not be negative")
        return found

    def simulator(self, host: str, *, accounts: dict[str, str], receipt_delay: float, id_format: str,
                  receipt_id_format: str) -> SmscSimulator:
        handler = SmscHandler()
        handler.throttle_fraction = self.error_rate
        handler.outcome = self.outcome
        if self.throughput:
            handler.rate_limits = {"default": self.throughput}
        delay = receipt_delay if self.receipt_delay_ms < 0 else self.receipt_delay_ms / 1000
        return SmscSimulator(host, self.smpp_port, accounts=accounts, receipt_delay=delay, id_format=id_format,
                             receipt_id_format=receipt_id_format, handler=handler)
