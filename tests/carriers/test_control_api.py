"""The simulator's HTTP control API, over a real port."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from carriers.simulator import SimulatorServices
from carriers.smpp import SmppCarrier
from tests.carriers.test_smpp import Sink
from tests.conftest import wait_for


@pytest.fixture
async def services():
    s = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.01)
    await s.start()
    yield s
    await s.stop()


async def test_inject_read_scenario_disconnect(services):
    carrier = SmppCarrier("sim", "127.0.0.1", services.smpp_port, "gateway", "secret", reconnect_min=0.02)
    sink = Sink()
    carrier.set_events(sink)
    await carrier.start()
    base = f"http://127.0.0.1:{services.http_port}"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{base}/mo", json={"from": "+14155550123", "to": "12345", "text": "HELP"})
        assert (resp.status, await resp.json()) == (200, {"sent": 1})
        await wait_for(lambda: asyncio.sleep(0, len(sink.inbound) == 1))
        assert sink.inbound[0].text == "HELP"

        resp = await http.post(f"{base}/scenario", json={"outcome": "UNDELIV", "rate_limits": {"default": 5}})
        assert resp.status == 200
        from tests.carriers.test_smpp import sms

        await carrier.send_sms(sms("hi"))
        await wait_for(lambda: asyncio.sleep(0, len(sink.receipts) == 1))
        assert sink.receipts[0].stat == "UNDELIV"
        messages = await (await http.get(f"{base}/messages?destination=%2B14155550123")).json()
        assert [m["text"] for m in messages] == ["hi"]
        stats = await (await http.get(f"{base}/stats")).json()
        assert stats["stats"]["submitted"] == 1 and sum(stats["per_second"].values()) == 1

        resp = await http.post(f"{base}/disconnect")
        assert (await resp.json())["dropped"] == 1
        await wait_for(lambda: asyncio.sleep(0, carrier.ready and carrier.clients[0].binds == 2))

        for bad in ({"outcome": "SMILING"}, {"throttle_fraction": 3}, {"nonsense": 1}, [1],
                    {"every_nth_part": {"n": 0}}, {"every_nth_part": {"n": 2, "status": 0}},
                    {"every_nth_part": 3}, {"receipt_id_format": "octal"}, {"receipt_err": "not-a-code"}):
            resp = await http.post(f"{base}/scenario", json=bad)
            assert resp.status == 400 and (await resp.json())["error"]["code"] in {"invalid_field", "invalid_json"}
        resp = await http.post(f"{base}/mo", json={"from": "+1", "text": "x"})
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "missing_field")
    await carrier.close()
