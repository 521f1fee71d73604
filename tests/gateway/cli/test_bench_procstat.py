"""bench sms's CPU figures (gateway.bench.procstat): each part's CPU is told apart by pid and parentage, read from
/proc. A parent that only waits, its child that burns CPU (as a gateway and its webhook worker), and a simulator
that sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gateway.bench.procstat import CpuMeter, children, cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"
# a "gateway" that starts a "webhook worker" burning CPU and then waits for it
PARENT = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN.format(s=1.5)!r}])\n"


def test_the_meter_tells_the_gateway_its_workers_and_the_simulator_apart():
    gateway = subprocess.Popen([sys.executable, "-c", PARENT])
    simulator = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.time() + 20
        while not children(gateway.pid) and time.time() < deadline:
            time.sleep(0.05)
        assert children(gateway.pid), "the worker did not start"
        meter = CpuMeter([gateway.pid], simulator.pid)
        meter.start()
        worker = children(gateway.pid)[0]
        while cpu_seconds(worker) < 1.5 and time.time() < deadline:  # until it has burnt its share
            time.sleep(0.05)
        figures = meter.per_message(100)
    finally:
        for process in (gateway, simulator):
            process.kill()
            process.wait()
    assert figures is not None
    # most of the worker's 1.5 s fell after start() (per message of 100: up to 15 ms); what it used before is not
    # counted
    assert 1.0 < figures["webhook_workers"] <= 15.5, figures
    assert figures["gateway"] < 1.0 and figures["simulator"] < 0.5, figures
    assert figures["total"] == pytest.approx(sum(figures[k] for k in ("gateway", "webhook_workers", "simulator",
                                                                       "load_generator_and_receiver")), abs=0.01)
    assert figures["cores"] >= 1


def test_without_a_start_or_messages_there_are_no_figures():
    meter = CpuMeter([os.getpid()], None)
    assert meter.per_message(10) is None  # never started
    meter.start()
    assert meter.per_message(0) is None
