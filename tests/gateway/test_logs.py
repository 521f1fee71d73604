"""[logging]: the level and format settings, and the real `gatewayctl run` writing JSON lines on stderr."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys

import aiohttp
import pytest

from gateway.bench.processes import Gateway, Simulator, stop
from gateway.logs import JsonFormatter
from gateway.settings import SettingsError, load_settings
from tests.conftest import OPERATOR_TOKEN, wait_for


def test_logging_settings_are_checked():
    settings = load_settings(env={"GATEWAY_LOGGING_FORMAT": "json", "GATEWAY_LOGGING_LEVEL": "debug"})
    assert (settings.logging.format, settings.logging.level) == ("json", "debug")
    for env, where in (({"GATEWAY_LOGGING_FORMAT": "xml"}, "logging.format"),
                       ({"GATEWAY_LOGGING_LEVEL": "LOUD"}, "logging.level")):
        with pytest.raises(SettingsError, match=where):
            load_settings(env=env)


def test_a_json_line_holds_the_records_fields_and_traceback():
    log = logging.getLogger("gateway.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "sending %s failed", ("SM1",),
                                sys.exc_info(), extra={"carrier": "sim", "account_id": 7, "message_id": "SM1",
                                                       "odd": object()})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    got = json.loads(line)
    assert (got["level"], got["logger"], got["message"]) == ("ERROR", "gateway.test", "sending SM1 failed")
    assert (got["carrier"], got["account_id"], got["message_id"]) == ("sim", 7, "SM1")
    assert got["odd"].startswith("<object object")  # what JSON cannot hold is written as text
    assert "ValueError: boom" in got["exc"]
    assert dt.datetime.fromisoformat(got["timestamp"]).tzinfo is not None
    assert not {"args", "msg", "exc_info", "levelno", "pathname"} & set(got)


async def test_gatewayctl_run_logs_json_lines_on_stderr(tmp_path):
    """The real process, with [logging] format = "json" from the environment: a message sent and delivered, then
    every line it wrote on stderr is a JSON object with timestamp, level, logger and message."""
    with open(tmp_path / "processes.log", "w") as out, open(tmp_path / "stderr.log", "w") as err:
        sim = Simulator.start(out)
        gateway = Gateway.for_simulator(tmp_path, sim, OPERATOR_TOKEN, out, {"GATEWAY_LOGGING_FORMAT": "json"})
        gateway.process = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--demo"], env=gateway.env,
                                           stdout=out, stderr=err)
        try:
            await gateway.ready(sim.process)
            auth = {"Authorization": f"Bearer {gateway.api_key}"}
            async with aiohttp.ClientSession() as http:
                async with http.post(gateway.url + "/v1/messages", json={"to": "+14155550123", "body": "hi"},
                                     headers=auth) as resp:
                    assert resp.status == 202
                    sent = await resp.json()

                async def delivered() -> bool:
                    async with http.get(f"{gateway.url}/v1/messages/{sent['id']}", headers=auth) as resp:
                        return (await resp.json())["status"] == "delivered"
                await wait_for(delivered, timeout=15)
        finally:
            stop(sim.process, gateway.process)  # the simulator goes first: the gateway logs its bind ending
    lines = (tmp_path / "stderr.log").read_text().splitlines()
    assert lines, "the gateway logged nothing"
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only most
        assert isinstance(record, dict) and {"timestamp", "level", "logger", "message"} <= set(record), line
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert dt.datetime.fromisoformat(record["timestamp"]).utcoffset() == dt.timedelta(0)
        records.append(record)
    # a field given with extra= is a field of its own: the SMPP bind names its carrier and itself
    binds = [r for r in records if r["logger"] == "carriers.smpp.client" and "bound to" in r["message"]]
    assert binds and (binds[0]["carrier"], binds[0]["bind"]) == ("sim", "sim#0"), records
    assert OPERATOR_TOKEN not in "\n".join(lines)
