"""Several simulated carriers at once: each named, on its own SMPP port, with its own behaviour, addressed by name
through the control API."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from smpplib import consts

from carriers import CarrierRetryable
from carriers.simulator import SimulatorServices
from carriers.simulator.fleet import SimulatedCarrier
from carriers.smpp import SmppCarrier
from tests.carriers.test_smpp import Sink, sms
from tests.conftest import wait_for


@pytest.fixture
async def fleet():
    s = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.01, carriers=[
        SimulatedCarrier(name="alpha"),
        SimulatedCarrier(name="beta", outcome="UNDELIV", error_rate=1.0),
    ])
    await s.start()
    yield s
    await s.stop()


async def _carrier(port: int) -> tuple[SmppCarrier, Sink]:
    carrier = SmppCarrier("c", "127.0.0.1", port, "gateway", "secret", reconnect_min=0.02)
    sink = Sink()
    carrier.set_events(sink)
    await carrier.start()
    return carrier, sink


async def test_named_carriers_have_own_ports_behaviours_and_control(fleet):
    ports = {fleet.smpp_port, fleet.carriers["alpha"].port, fleet.carriers["beta"].port}
    assert len(ports) == 3
    base = f"http://127.0.0.1:{fleet.http_port}"
    alpha, alpha_sink = await _carrier(fleet.carriers["alpha"].port)
    beta, _ = await _carrier(fleet.carriers["beta"].port)
    async with aiohttp.ClientSession() as http:
        listed = await (await http.get(f"{base}/carriers")).json()
        assert listed == {"alpha": {"smpp_port": fleet.carriers["alpha"].port},
                          "beta": {"smpp_port": fleet.carriers["beta"].port}}

        await alpha.send_sms(sms("to alpha"))
        await wait_for(lambda: asyncio.sleep(0, len(alpha_sink.receipts) == 1))
        assert alpha_sink.receipts[0].stat == "DELIVRD"
        with pytest.raises(CarrierRetryable):  # beta answers every submit_sm ESME_RTHROTTLED (error_rate 1)
            await beta.send_sms(sms("to beta"))

        alpha_messages = await (await http.get(f"{base}/carriers/alpha/messages")).json()
        assert [m["text"] for m in alpha_messages] == ["to alpha"]
        assert await (await http.get(f"{base}/messages")).json() == []  # the default simulator saw nothing
        beta_counts = await (await http.get(f"{base}/carriers/beta/counts")).json()
        assert beta_counts["accepted"] == {} and sum(beta_counts["refused"].values()) == 1
        assert fleet.carriers["beta"].refusals[0][1] == consts.SMPP_ESME_RTHROTTLED

        # a scenario set on one carrier leaves the others alone
        resp = await http.post(f"{base}/carriers/beta/scenario", json={"throttle_fraction": 0, "outcome": "DELIVRD"})
        assert resp.status == 200 and fleet.carriers["alpha"].handler.outcome == "DELIVRD"
        assert fleet.carriers["beta"].handler.throttle_fraction == 0

        # stopping a carrier drops its bind and refuses new ones; the others stay up
        resp = await http.post(f"{base}/carriers/alpha/stop")
        assert (resp.status, await resp.json()) == (200, {"dropped": 1})
        await wait_for(lambda: asyncio.sleep(0, not alpha.ready))
        await asyncio.sleep(0.1)
        assert not alpha.ready and beta.ready
        assert (await http.get(f"{base}/carriers/nobody/stats")).status == 404
        # and comes back on the same port when started again
        resp = await http.post(f"{base}/carriers/alpha/start")
        assert (resp.status, await resp.json()) == (200, {"smpp_port": fleet.carriers["alpha"].port})
        await wait_for(lambda: asyncio.sleep(0, alpha.ready))
        resp = await http.post(f"{base}/carriers/alpha/start")
        assert (resp.status, (await resp.json())["error"]["code"]) == (409, "already_started")
    await alpha.close()
    await beta.close()


def test_simulated_carrier_problems():
    assert SimulatedCarrier(name="ok-1").problems() == []
    for bad in (SimulatedCarrier(name=""), SimulatedCarrier(name="a/b"), SimulatedCarrier(name="x", outcome="NOPE"),
                SimulatedCarrier(name="x", error_rate=2), SimulatedCarrier(name="x", throughput=-1)):
        assert bad.problems(), bad
