"""The simulator's HTTP control API: inject mobile-originated messages, read what it received, set scenarios.

    POST /mo          {"from", "to", "text", "concatenation"?: "udh"|"sar"}   -> {"sent": parts}
    GET  /messages    ?limit=&destination=                                   -> [{message_id, source, ...}]
    GET  /counts                                  -> {"accepted": {destination: n}, "refused": {destination: n}}
    GET  /stats                                                              -> counters, per-second counts
    POST /scenario    {"throttle_all"?, "throttle_fraction"?, "response_delay"?, "receipt_delay"?,
                       "outcome"?, "outcomes_by_destination"?, "fail"?: {destination: status},
                       "rate_limits"?: {label: per_second}, "carrier_prefixes"?: {prefix: label},
                       "disconnect_every"?: seconds|null, "receipt_err"?: "034"|null,
                       "receipt_id_format"?: "same"|"hex"|"decimal"|"padded",
                       "every_nth_part"?: {"n": N, "status": command_status|null}|null}
                      every_nth_part: every Nth part of a concatenated message is answered with that status
                      (88 = ESME_RTHROTTLED), or not answered at all when status is null
    POST /disconnect                                                         -> {"dropped": n}
    POST /stop        stop listening and drop every bind (a carrier gone down)   -> {"dropped": n}
    POST /start       listen again on the same port after a stop                 -> {"smpp_port": port}

With ``sms_http_port`` set, :class:`SimulatorServices` also serves the default SMSC's HTTP face
(``carriers.simulator.http_face``: Kannel's sendsms and a JSON SMS API) on that port; what it takes is counted
here with the rest.

With several simulated carriers (``[[simulator.carriers]]``), ``GET /carriers`` lists them with their SMPP ports
and each answers the same API under ``/carriers/<name>/`` (``POST /carriers/b/scenario``, ...).
"""

from __future__ import annotations

import collections
import json
from typing import Any

from aiohttp import web
from smpplib import consts

from carriers.simulator.fleet import SimulatedCarrier
from carriers.simulator.http_face import HttpFace
from carriers.simulator.scenario import NO_ANSWER
from carriers.simulator.smsc import SmscSimulator

SIM = web.AppKey("sim", SmscSimulator)
NAMED = web.AppKey("named", dict)
STATS = {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD"}


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return _error("invalid_json", "The body is not valid JSON.")
    if not isinstance(data, dict):
        return _error("invalid_json", "The body must be a JSON object.")
    return data


async def post_mo(request: web.Request) -> web.Response:
    data = await _body(request)
    if isinstance(data, web.Response):
        return data
    for name in ("from", "to", "text"):
        if not isinstance(data.get(name), str) or not data[name]:
            return _error("missing_field", f"'{name}' must be a non-empty string.")
    concatenation = data.get("concatenation", "udh")
    if concatenation not in ("udh", "sar"):
        return _error("invalid_field", "'concatenation' must be udh or sar.")
    try:
        parts = await request.app[SIM].inject_mo(data["from"], data["to"], data["text"], concatenation=concatenation)
    except ValueError as exc:
        return _error("invalid_field", str(exc))
    return web.json_response({"sent": parts})


async def get_messages(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return _error("invalid_query", "limit must be a whole number.")
    items = request.app[SIM].received
    destination = request.query.get("destination")
    if destination:
        items = [m for m in items if m.destination == destination]
    return web.json_response([m.to_json() for m in items[-limit:]])


async def get_counts(request: web.Request) -> web.Response:
    """submit_sm per destination: those accepted (each one a message to the handset) and those refused."""
    sim = request.app[SIM]
    return web.json_response({"accepted": collections.Counter(m.destination for m in sim.received),
                              "refused": collections.Counter(sub.destination for sub, _ in sim.refusals)})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].snapshot())


async def post_scenario(request: web.Request) -> web.Response:
    data = await _body(request)
    if isinstance(data, web.Response):
        return data
    sim = request.app[SIM]
    h = sim.handler
    try:
        for key, value in data.items():
            if key == "throttle_all":
                h.throttle_all = bool(value)
            elif key == "throttle_fraction":
                h.throttle_fraction = _number(value, 0, 1)
            elif key == "response_delay":
                h.response_delay = _number(value, 0, 60)
            elif key == "receipt_delay":
                sim.receipt_delay = _number(value, 0, 3600)
            elif key == "outcome":
                if value not in STATS:
                    raise ValueError(f"outcome must be one of {', '.join(sorted(STATS))}")
                h.outcome = value
            elif key == "outcomes_by_destination":
                if not isinstance(value, dict) or not set(value.values()) <= STATS:
                    raise ValueError("outcomes_by_destination maps numbers to receipt states")
                h.outcomes_by_destination = dict(value)
            elif key == "fail":
                if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
                    raise ValueError("fail maps numbers to command_status integers")
                h.fail = dict(value)
            elif key == "rate_limits":
                if not isinstance(value, dict):
                    raise ValueError("rate_limits maps carrier labels to submits per second")
                h.rate_limits = {str(k): _number(v, 0, 1e6) for k, v in value.items()}
            elif key == "carrier_prefixes":
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    raise ValueError("carrier_prefixes maps number prefixes to carrier labels")
                prefixes = dict(sorted(value.items(), key=lambda kv: -len(kv[0])))

                def label_of(destination: str, prefixes=prefixes) -> str:  # noqa: ANN001
                    number = destination if destination.startswith("+") else "+" + destination
                    return next((label for p, label in prefixes.items() if number.startswith(p)), "default")

                h.label_of = label_of
            elif key == "every_nth_part":
                if value is None:
                    h.every_nth_part = 0
                    continue
                if not isinstance(value, dict) or set(value) - {"n", "status"} or "n" not in value:
                    raise ValueError("every_nth_part is {\"n\": N, \"status\": command_status or null}")
                n, status = int(_number(value["n"], 1, 1e6)), value.get("status", consts.SMPP_ESME_RTHROTTLED)
                if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                                           or not 0 < status <= 0xFFFFFFFF):
                    raise ValueError("every_nth_part status must be a non-zero command_status or null")
                h.every_nth_part, h.nth_part_status = n, NO_ANSWER if status is None else status
            elif key == "receipt_err":
                if value is not None and (not isinstance(value, str) or not value.isalnum() or len(value) > 3):
                    raise ValueError("receipt_err is up to 3 letters or digits, or null")
                h.receipt_err = value
            elif key == "receipt_id_format":
                if value not in ("same", "hex", "decimal", "padded"):
                    raise ValueError("receipt_id_format must be same, hex, decimal or padded")
                sim.receipt_id_format = value
            elif key == "disconnect_every":
                sim.disconnect_every(None if value is None else _number(value, 0.1, 3600))
            else:
                raise ValueError(f"unknown scenario setting '{key}'")
    except ValueError as exc:
        return _error("invalid_field", str(exc))
    return web.json_response({"ok": True})


def _number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"expected a number from {low} to {high}, got {value!r}")
    return float(value)


async def post_disconnect(request: web.Request) -> web.Response:
    return web.json_response({"dropped": request.app[SIM].disconnect()})


async def post_stop(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    dropped = len(sim.connections)
    await sim.stop()
    return web.json_response({"dropped": dropped})


async def get_carriers(request: web.Request) -> web.Response:
    """The named simulated carriers and the SMPP port each really got."""
    return web.json_response({name: {"smpp_port": sim.port} for name, sim in request.app[NAMED].items()})


async def post_start(request: web.Request) -> web.Response:
    """Listen again after a stop, on the same port (the carrier is back, with the receipts it still owes)."""
    sim = request.app[SIM]
    if sim.listening:
        return _error("already_started", "The simulator is already listening.", 409)
    await sim.start()
    return web.json_response({"smpp_port": sim.port})


def create_control_app(sim: SmscSimulator, named: dict[str, SmscSimulator] | None = None) -> web.Application:
    app = web.Application()
    app[SIM] = sim
    app.router.add_post("/stop", post_stop)
    app.router.add_post("/start", post_start)
    app.router.add_post("/mo", post_mo)
    app.router.add_get("/messages", get_messages)
    app.router.add_get("/counts", get_counts)
    app.router.add_get("/stats", get_stats)
    app.router.add_post("/scenario", post_scenario)
    app.router.add_post("/disconnect", post_disconnect)
    if named is not None:
        app[NAMED] = named
        app.router.add_get("/carriers", get_carriers)
        for name, each in named.items():
            app.add_subapp(f"/carriers/{name}/", create_control_app(each))
    return app


class SimulatorServices:
    """The SMSC simulator and its control API, started and stopped together."""

    def __init__(self, host: str = "127.0.0.1", smpp_port: int = 0, http_port: int = 0, *,
                 accounts: dict[str, str] | None = None, receipt_delay: float = 0.05, id_format: str = "hex",
                 receipt_id_format: str = "same", carriers: list[SimulatedCarrier] | None = None,
                 sms_http_port: int | None = None):
        self.sim = SmscSimulator(host, smpp_port, accounts=accounts, receipt_delay=receipt_delay, id_format=id_format,
                                 receipt_id_format=receipt_id_format)
        # the named simulated carriers, each its own SMSC on its own port
        self.carriers = {c.name: c.simulator(host, accounts=self.sim.accounts, receipt_delay=receipt_delay,
                                             id_format=id_format, receipt_id_format=receipt_id_format)
                         for c in carriers or []}
        self._disconnect_every = {c.name: c.disconnect_every for c in carriers or [] if c.disconnect_every}
        self.host, self.http_port = host, http_port
        # the HTTP face of the default SMSC (None: none; 0: any free port)
        self.http_face = HttpFace(self.sim, host, sms_http_port) if sms_http_port is not None else None
        self._runner: web.AppRunner | None = None

    @property
    def smpp_port(self) -> int:
        return self.sim.port

    async def start(self) -> None:
        await self.sim.start()
        for name, sim in self.carriers.items():
            await sim.start()
            if name in self._disconnect_every:
                sim.disconnect_every(self._disconnect_every[name])
        if self.http_face is not None:
            await self.http_face.start()
        # the control API last: once it answers, everything else is listening
        self._runner = web.AppRunner(create_control_app(self.sim, self.carriers), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]

    @property
    def sms_http_port(self) -> int | None:
        return self.http_face.port if self.http_face is not None else None

    async def stop(self) -> None:
        if self.http_face is not None:
            await self.http_face.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for sim in self.carriers.values():
            await sim.stop()
        await self.sim.stop()
