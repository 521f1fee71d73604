"""What /proc tells of the processes of a benchmark (Linux): their parent, and the CPU time they used.

``CpuMeter`` gives `bench sms` the CPU each part of a run took per message, from the first request to the last
final event: the gateway, its webhook workers, the simulator, and the benchmark's own load generator and receiver.
Throughput on a shared machine varies from run to run; CPU per message varies much less, and says where the time
went. Where /proc is missing the figures are left out."""

from __future__ import annotations

import os
import resource
from typing import Any


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: the list's item 0 is field 3 (the state)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a gateway's webhook workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(stat_fields(int(entry))[1]) == pid:  # ppid: field 4
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
    return found


def family(pid: int) -> list[int]:
    """Process ``pid`` and its children (the gateway and its webhook worker processes)."""
    return [pid, *children(pid)]


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` used so far, user and system, all its threads."""
    utime, stime = stat_fields(pid)[11:13]  # fields 14 and 15
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time so far (the benchmark's load generator and receiver)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


class CpuMeter:
    """CPU time of a run's parts between ``start`` and ``per_message``: the gateway processes (each with its
    children, its webhook workers, counted apart) and the simulator, by pid; and this process."""

    def __init__(self, gateways: list[int], simulator: int | None):
        self._gateways = gateways
        self._simulator = simulator
        self._before: dict[str, dict[int, float]] | None = None

    def _read(self) -> dict[str, dict[int, float]]:
        parts: dict[str, dict[int, float]] = {"gateway": {}, "webhook_workers": {}, "simulator": {}}
        for pid in self._gateways:
            parts["gateway"][pid] = cpu_seconds(pid)
            for child in children(pid):
                try:
                    parts["webhook_workers"][child] = cpu_seconds(child)
                except OSError:  # gone meanwhile
                    continue
        if self._simulator is not None:
            parts["simulator"][self._simulator] = cpu_seconds(self._simulator)
        parts["load_generator_and_receiver"] = {0: own_cpu_seconds()}
        return parts

    def start(self) -> None:
        try:
            self._before = self._read()
        except (OSError, IndexError, ValueError):  # no /proc here, or a process already gone
            self._before = None

    def per_message(self, messages: int) -> dict[str, Any] | None:
        """Milliseconds of CPU per message of each part since ``start`` (a worker started meanwhile counts from
        its start), their total, and the machine's cores; None where /proc could not tell."""
        if self._before is None or messages <= 0:
            return None
        try:
            after = self._read()
        except (OSError, IndexError, ValueError):
            return None
        used = {part: sum(cpu - self._before[part].get(pid, 0.0) for pid, cpu in pids.items())
                for part, pids in after.items()}
        figures: dict[str, Any] = {part: round(seconds * 1000 / messages, 3) for part, seconds in used.items()}
        figures["total"] = round(sum(used.values()) * 1000 / messages, 3)
        figures["cores"] = os.cpu_count()
        return figures


__all__ = ["CpuMeter", "children", "cpu_seconds", "family", "own_cpu_seconds", "stat_fields"]
