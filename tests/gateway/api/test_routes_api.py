"""The operator's route table through the API: routes added are kept in the database, tried before the configured
ones, refused with clear errors when they cannot be used, applied to the messages at once, kept across a restart;
and the explanation of which route and carrier a message would take."""

from __future__ import annotations

import asyncio

import pytest

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.settings_routes import RouteSettings
from registry.models import Number
from tests.conftest import ADMIN, new_customer, wait_for


def _app(migrated):
    migrated.routes = [RouteSettings(name="rest", failover=["a", "b"])]
    return create_app(migrated, carriers=[LoopbackCarrier("a"), LoopbackCarrier("b")])


@pytest.fixture
async def api(aiohttp_client, migrated, sessionmaker):
    client = await aiohttp_client(_app(migrated))
    client.sm = sessionmaker
    return client


async def _routes(api) -> list[dict]:
    resp = await api.get("/admin/routes", headers=ADMIN)
    assert resp.status == 200
    return (await resp.json())["routes"]


async def test_added_routes_are_tried_first_in_their_order(api):
    [rest] = await _routes(api)
    assert (rest["name"], rest["source"], rest["action"]) == ("rest", "config", "failover")
    assert rest["failover"] == ["a", "b"]
    resp = await api.post("/admin/routes", headers=ADMIN, json={"name": "uk", "prefixes": ["+44"], "carrier": "b",
                                                                "cost_per_segment": 0.04})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["position"] == 0
    resp = await api.post("/admin/routes", headers=ADMIN, json={"name": "promo", "message_types": ["promotional"],
                                                                "split": ["a=30", "b=70"], "position": 0})
    assert resp.status == 201
    table = await _routes(api)
    assert [(r["name"], r["source"], r["position"]) for r in table] == [
        ("promo", "api", 0), ("uk", "api", 1), ("rest", "config", 2)]
    assert table[1]["cost_per_segment"] == 0.04 and table[0]["split"] == ["a=30", "b=70"]
    resp = await api.delete("/admin/routes/promo", headers=ADMIN)
    assert (resp.status, await resp.json()) == (200, {"deleted": "promo"})
    assert [r["name"] for r in await _routes(api)] == ["uk", "rest"]


@pytest.mark.parametrize("body, status, code, sentence", [
    ({"name": "x", "carrier": "c"}, 422, "invalid_route", "no carrier named c (carriers: a, b)"),
    ({"name": "x"}, 422, "invalid_route", "give exactly one action"),
    ({"name": "x", "split": ["a=60", "b=60"]}, 422, "invalid_route", "add up to 120, not 100"),
    ({"name": "x", "prefixes": ["44"], "carrier": "a"}, 422, "invalid_route", "is not a + followed by digits"),
    ({"name": "x", "prefixes": "+44", "carrier": "a"}, 422, "invalid_route", "must be a list of strings"),
    ({"name": "x", "accounts": ["1"], "carrier": "a"}, 422, "invalid_route", "must be a list of account ids"),
    ({"name": "x", "carrier": "a", "cost_per_segment": "1"}, 422, "invalid_route", "must be a number"),
    ({"name": "", "carrier": "a"}, 422, "invalid_route", "needs a name"),
    ({"name": "x", "carrier": "a", "weight": 1}, 422, "invalid_route", "Unknown field(s): weight"),
    ({"name": "rest", "carrier": "a"}, 409, "route_exists", "A configured route is named rest"),
])
async def test_a_route_that_cannot_be_used_is_refused_clearly(api, body, status, code, sentence):
    resp = await api.post("/admin/routes", headers=ADMIN, json=body)
    error = (await resp.json())["error"]
    assert (resp.status, error["code"]) == (status, code) and sentence in error["message"], error
    assert [r["name"] for r in await _routes(api)] == ["rest"]


async def test_removing_refuses_configured_and_unknown_routes(api):
    resp = await api.post("/admin/routes", headers=ADMIN, json={"name": "uk", "carrier": "b"})
    assert resp.status == 201
    resp = await api.post("/admin/routes", headers=ADMIN, json={"name": "uk", "carrier": "a"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "route_exists")
    resp = await api.delete("/admin/routes/rest", headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "route_in_config")
    resp = await api.delete("/admin/routes/nope", headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "route_not_found")


async def test_an_added_route_applies_at_once_and_survives_a_restart(api, aiohttp_client, migrated):
    customer = await new_customer(api, api.sm, "acme")
    pool = api.app[app_keys.CARRIERS]
    await wait_for(lambda: asyncio.sleep(0, pool.ready))
    resp = await api.post("/admin/routes", headers=ADMIN, json={"name": "to-b", "accounts": [customer.account_id],
                                                                "carrier": "b"})
    assert resp.status == 201
    resp = await api.post("/v1/messages", headers=customer.headers, json={"to": "+14155550123", "body": "hi"})
    mid = (await resp.json())["id"]

    async def sent_by_b() -> bool:
        view = await (await api.get(f"/v1/messages/{mid}", headers=customer.headers)).json()
        return view["status"] in ("sent", "delivered") and view["carrier"] == "b"

    await wait_for(sent_by_b)  # the failover list of "rest" would have taken a
    await api.close()
    again = await aiohttp_client(_app(migrated))
    resp = await again.get("/admin/routes", headers=ADMIN)
    assert [r["name"] for r in (await resp.json())["routes"]] == ["to-b", "rest"]


async def test_which_route_and_carrier_and_why(api):
    customer = await new_customer(api, api.sm, "acme")
    async with api.sm() as session, session.begin():
        session.add(Number(number="+14155550100", type="long_code", country="US", capabilities="sms",
                           status="active", international=True, account_id=customer.account_id))
    await api.post("/admin/routes", headers=ADMIN, json={"name": "ie", "countries": ["IE"], "carrier": "a"})
    await api.post("/admin/routes", headers=ADMIN, json={"name": "uk", "prefixes": ["+4477"], "carrier": "b",
                                                         "cost_per_segment": 0.035})
    resp = await api.post("/admin/routes/test", headers=ADMIN,
                          json={"to": "+447700900123", "account_id": customer.account_id, "from": "+14155550100"})
    data = await resp.json()
    assert resp.status == 200, data
    assert (data["route"], data["action"], data["carrier"], data["cost_per_segment"]) == ("uk", "carrier", "b", 0.035)
    assert data["facts"]["country"] == "GB" and data["facts"]["number_kind"] == "long_code"
    assert data["why"][0] == "route ie does not match: country GB is not IE"
    assert data["why"][1] == "route uk matches (prefix +4477)"
    assert data["why"][-1] == "carrier: b"
    resp = await api.post("/admin/routes/test", headers=ADMIN, json={"to": "+14155550123", "account_id": 99})
    data = await resp.json()
    assert (data["route"], data["carrier"]) == ("rest", "a")  # the configured failover list, a first
    assert "a is ready; b is ready" in data["why"][-2]
    assert data["why"][0].startswith("no number of this account may send there") and data["from"] is None
    resp = await api.post("/admin/routes/test", headers=ADMIN, json={"to": "hello", "account_id": 1})
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_destination")
