"""GET /admin/status over real HTTP, with the SMSC simulator over real sockets: binds bound with their window,
the last minute's counts moving as messages go through, a throttle and a lost bind among the last errors, the
queue depth read from the database, and several instances on one database each reporting itself and its peers."""

from __future__ import annotations

import datetime as dt

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.sending.status import gateway_version
from tests.conftest import ADMIN, new_customer, wait_for


async def status(client) -> dict:
    resp = await client.get("/admin/status", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _ready(client) -> bool:
    return client.app[app_keys.CARRIERS].ready


async def _all_delivered(client, customer, ids: list[str]) -> bool:
    for mid in ids:
        got = await (await client.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        if got["status"] != "delivered":
            return False
    return True


async def _send(client, customer, to: str = "+14155550101") -> str:
    resp = await client.post("/v1/messages", json={"to": to, "body": "hi"}, headers=customer.headers)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


def _carrier(report: dict, name: str = "sim") -> dict:
    [carrier] = [c for c in report["carriers"] if c["name"] == name]
    return carrier


async def test_binds_windows_counts_and_a_throttle(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port, migrated.carriers[0].binds, migrated.carriers[0].window = sim.port, 2, 7
    client = await aiohttp_client(create_app(migrated))
    await wait_for(lambda: _ready(client))
    await wait_for(lambda: _all_bound(client))
    customer = await new_customer(client, sessionmaker, "acme")

    report = await status(client)
    me = report["instance"]
    assert me["id"] == client.app[app_keys.DISPATCHER].instance_id and me["version"] == gateway_version()
    assert me["uptime_s"] >= 0 and me["sending_paused"] is None
    sim_carrier = _carrier(report)
    assert (sim_carrier["kind"], sim_carrier["ready"], sim_carrier["health"]["state"]) == ("smpp", True, "healthy")
    assert [(b["name"], b["state"], b["window_in_use"], b["window"]) for b in sim_carrier["binds"]] == [
        ("sim#0", "bound", 0, 7), ("sim#1", "bound", 0, 7)]
    for bind in sim_carrier["binds"]:  # bound since a moment ago: its uptime
        assert dt.datetime.fromisoformat(bind["since"]) <= dt.datetime.now(dt.timezone.utc)
        assert bind["for_s"] >= 0 and bind["binds"] == 1
    assert (sim_carrier["last_minute"]["sent"], sim_carrier["last_minute"]["receipts"]) == (0, 0)
    assert sim_carrier["last_errors"] == []
    assert report["queue"] == {"queued": 0, "sending": 0, "sent": 0}
    assert report["webhooks"] == {"pending": 0, "oldest_pending_age_s": 0.0}
    [instance] = report["instances"]
    assert (instance["id"], instance["self"], instance["alive"]) == (me["id"], True, True)

    # a submit the simulator holds shows in its bind's window
    sim.handler.response_delay = 2.0
    ids = [await _send(client, customer)]

    async def one_in_flight() -> bool:
        return sum(b["window_in_use"] for b in _carrier(await status(client))["binds"]) == 1

    await wait_for(one_in_flight)
    sim.handler.response_delay = 0.0
    ids += [await _send(client, customer), await _send(client, customer)]
    await wait_for(lambda: _all_delivered(client, customer, ids), timeout=15)

    async def counted(sent: int) -> bool:
        minute = _carrier(await status(client))["last_minute"]
        return (minute["sent"], minute["receipts"]) == (sent, sent)

    await wait_for(lambda: counted(3))  # the last receipt is counted as it comes, before it is stored
    minute = _carrier(await status(client))["last_minute"]
    assert minute["sent_per_s"] > 0 and minute["receipts_per_s"] > 0 and minute["inbound"] == 0

    # the carrier says slow down: a throttle among the last errors, then the message goes through
    sim.handler.throttle_all = True
    ids.append(await _send(client, customer))

    async def throttled() -> bool:
        return any(e["code"] == "throttled" for e in _carrier(await status(client))["last_errors"])

    await wait_for(throttled)
    sim.handler.throttle_all = False
    await wait_for(lambda: _all_delivered(client, customer, ids), timeout=15)
    [error] = [e for e in _carrier(await status(client))["last_errors"] if e["code"] == "throttled"]
    assert (error["source"], error["bind"]) == ("submit", None) and error["count"] >= 1
    assert "slow down" in error["message"] and error["first_at"] <= error["at"]
    await wait_for(lambda: counted(4))


async def _all_bound(client) -> bool:
    return all(c.bound for carrier in client.app[app_keys.CARRIERS].carriers for c in carrier.clients)


async def test_a_stopped_simulator_shows_the_bind_down_and_why(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    migrated.alerts.sample_s = 0.2  # the monitor looks at the binds often enough for the alert to show here
    client = await aiohttp_client(create_app(migrated))
    await wait_for(lambda: _ready(client))
    customer = await new_customer(client, sessionmaker, "acme")
    await sim.stop()

    async def down() -> bool:
        return not client.app[app_keys.CARRIERS].ready

    await wait_for(down)
    ids = [await _send(client, customer), await _send(client, customer)]  # they wait: no carrier can take them
    report = await status(client)  # the first read of the queue
    carrier = _carrier(report)
    assert carrier["ready"] is False
    [bind] = carrier["binds"]
    assert bind["state"] == "unbound", bind
    lost = [e for e in carrier["last_errors"] if e["source"] == "bind"]
    assert lost[0]["code"] == "connection_lost" and lost[0]["bind"] == "sim#0", carrier["last_errors"]
    assert "connection was lost" in lost[0]["message"]
    assert report["queue"]["queued"] + report["queue"]["sending"] == 2, report["queue"]

    async def alerted() -> bool:  # the monitor's "bind lost" alert, among the recent ones
        return any(a["subject"] == "sim#0" or "sim" in a["message"] for a in (await status(client))["alerts"])

    await wait_for(alerted)
    alert = (await status(client))["alerts"][0]
    assert alert["level"] == "WARNING" and alert["kind"].startswith("bind"), alert

    # back: the bind is bound again (a second bind), the loss still among the last errors, the messages go
    await sim.start()

    async def bound_again() -> bool:
        [bind] = _carrier(await status(client))["binds"]
        return bind["state"] == "bound"

    await wait_for(bound_again, timeout=20)
    carrier = _carrier(await status(client))
    assert carrier["binds"][0]["binds"] == 2
    assert [e["code"] for e in carrier["last_errors"]][0] == "connection_lost"
    await wait_for(lambda: _all_delivered(client, customer, ids), timeout=20)


async def test_each_instance_reports_itself_and_its_peers(aiohttp_client, migrated):
    first = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    second = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    ids = {first.app[app_keys.DISPATCHER].instance_id, second.app[app_keys.DISPATCHER].instance_id}
    assert len(ids) == 2
    for client in (first, second):
        report = await status(client)
        me = report["instance"]["id"]
        assert me == client.app[app_keys.DISPATCHER].instance_id
        assert {i["id"] for i in report["instances"]} == ids
        assert [i["id"] for i in report["instances"] if i["self"]] == [me]
        assert all(i["alive"] and i["heartbeat_age_s"] >= 0 and i["pid"] for i in report["instances"])
        carrier = _carrier(report)
        assert (carrier["kind"], carrier["binds"], carrier["ready"]) == ("loopback", None, True)
