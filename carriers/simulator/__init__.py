"""Simulators of the outside world: the SMSC (SMPP server, and its HTTP face for HTTP SMS carriers) with its HTTP
control API."""

from __future__ import annotations

from carriers.simulator.control import SimulatorServices, create_control_app
from carriers.simulator.http_face import HttpFace
from carriers.simulator.scenario import SmscHandler, Submitted
from carriers.simulator.session import SmscProtocol
from carriers.simulator.smsc import SmscSimulator

__all__ = ["HttpFace", "SimulatorServices", "SmscHandler", "SmscProtocol", "SmscSimulator", "Submitted",
           "create_control_app"]
