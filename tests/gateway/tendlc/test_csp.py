"""The gateway as a Campaign Service Provider, over real HTTP against the registry simulator (in the app's process,
on a free port; its events come to the gateway's event URL over HTTP too), on a real SQLite database, with the SMPP
simulator as the carrier: the whole 10DLC flow to a first message at the right carrier limits, and each failure:
duplicated, reordered and lost events, registry 5xx and timeouts, a carrier's suspension; and careless input to
the event URL."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.migrate import upgrade
from registry.models import RegistryEvent, Transition
from tests.conftest import ADMIN, make_settings, new_customer, wait_for

ATT_NUMBER = "+12145550100"  # +1214: AT&T in config/carrier_lookup.toml; a US NANP number the DCA takes
ATT_RECIPIENT, TMOBILE_RECIPIENT = "+12145550199", "+12065550199"  # +1206: T-Mobile
BRAND = {"legal_name": "Acme Inc", "ein": "12-3456789", "entity_type": "PRIVATE_PROFIT", "vertical": "RETAIL",
         "website": "https://acme.example", "contact_email": "ops@acme.example", "contact_phone": "+14155550100"}
CAMPAIGN = {"use_case": "ACCOUNT_NOTIFICATION", "description": "Order and shipping notifications for Acme",
            "sample_messages": ["Hi {#var}, your order {#var} has shipped.",
                                "Your code is {#var}. Reply STOP to opt out."],
            "opt_in_message": "Customers opt in at checkout.", "opt_out_message": "Reply STOP to opt out.",
            "help_message": "Reply HELP for help."}


async def _gateway(aiohttp_client, settings, sessionmaker, sim):
    settings.carriers[0].port = sim.port
    settings.pacing.enabled = True
    settings.registry.retries = 1  # a 5xx twice, and the request is pending
    settings.registry.timeout_s = 2.0
    client = await aiohttp_client(create_app(settings))
    client.sm, client.sim = sessionmaker, sim
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, sim):
    return await _gateway(aiohttp_client, migrated, sessionmaker, sim)


@pytest.fixture
async def pg_gw(aiohttp_client, tmp_path, postgres_url, sim):
    await upgrade(postgres_url)
    settings = make_settings(tmp_path)
    settings.database.url = postgres_url
    engine = create_engine(postgres_url)
    yield await _gateway(aiohttp_client, settings, create_sessionmaker(engine), sim)
    await engine.dispose()


def registry_client(gw):
    """The CspClient the gateway holds: tests drive the simulator's control API through it (over HTTP)."""
    return gw.app[app_keys.REGISTRY].csp.client


async def call(gw, method: str, path: str, body=None, expect: int | tuple[int, ...] = (200, 201)) -> dict:
    resp = await gw.request(method, path, json=body, headers=ADMIN)
    data = await resp.json()
    assert resp.status in ((expect,) if isinstance(expect, int) else expect), (resp.status, data)
    return data


async def until(gw, path: str, check, timeout: float = 10.0) -> dict:
    """GET ``path`` until ``check(answer)``; the last answer."""
    got: dict = {}

    async def ok() -> bool:
        nonlocal got
        got = await call(gw, "GET", path)
        return bool(check(got))

    await wait_for(ok, timeout)
    return got


async def registered_brand(gw, account: int, **fields) -> dict:
    brand = await call(gw, "POST", "/admin/brands", {**BRAND, "account_id": account, **fields}, expect=201)
    return await until(gw, f"/admin/brands/{brand['id']}", lambda b: b["status"] != "submitted")


async def world(gw, *, vet: bool = True) -> dict:
    """An account with a leased long code and a brand the registry verified (and vetted)."""
    c = await new_customer(gw, gw.sm, "acme", numbers=((ATT_NUMBER, "long_code"),))
    brand = await registered_brand(gw, c.account_id)
    if vet:
        await call(gw, "POST", f"/admin/brands/{brand['id']}/vet", {})
        await call(gw, "POST", "/admin/registry/advance", {"days": 3})
        brand = await call(gw, "GET", f"/admin/brands/{brand['id']}")
    return {"customer": c, "brand": brand}


async def active_campaign(gw, brand_id: int, **fields) -> dict:
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": brand_id, **fields}, expect=201)
    await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/share")
    await call(gw, "POST", "/admin/registry/advance", {"days": 3})  # the DCA answers in a business day
    await call(gw, "POST", "/admin/registry/advance", {"days": 5})  # each carrier in three more
    return await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")


async def ten_dlc(gw) -> tuple:
    """The customer and its active campaign, which ATT_NUMBER sends for as a 10DLC number."""
    w = await world(gw)
    campaign = await active_campaign(gw, w["brand"]["id"])
    await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/associate", {"number": ATT_NUMBER})
    await call(gw, "POST", "/admin/registry/advance", {"days": 7})
    return w["customer"], campaign


async def send(gw, c, to: str) -> dict:
    resp = await gw.post("/v1/messages", json={"to": to, "from": ATT_NUMBER, "body": "Your order has shipped."},
                         headers=c.headers)
    data = await resp.json()
    assert resp.status == 202, data
    return data


async def message(gw, c, mid: str) -> dict:
    return await (await gw.get(f"/v1/messages/{mid}", headers=c.headers)).json()


async def test_the_whole_flow_to_a_first_message_at_the_right_limits(gw):
    await whole_flow(gw)


@pytest.mark.postgres
async def test_the_whole_flow_on_postgresql(pg_gw):
    await whole_flow(pg_gw)


async def whole_flow(gw) -> None:
    c = await new_customer(gw, gw.sm, "acme", numbers=((ATT_NUMBER, "long_code"),))
    brand = await registered_brand(gw, c.account_id)
    # the simulator's identity check: VERIFIED, score 50 + (sum of the EIN's digits, 45) mod 26 = 69
    assert (brand["status"], brand["identity_status"], brand["trust_score"]) == ("complete", "VERIFIED", 69)
    assert brand["registry_id"].startswith("B") and len(brand["registry_id"]) == 7
    history = brand["history"]
    calls = [h for h in history if h["actor"] == "registry call"]
    assert calls[0]["reason"] == "POST /v1/brand/nonBlocking -> 200"
    assert calls[0]["detail"]["request"]["referenceId"] and calls[0]["detail"]["answer"]["brandId"]
    assert any(h["actor"] == "registry event" and h["to"] == "complete" for h in history)
    assert "gateway:" not in json.dumps(history) and "Basic " not in json.dumps(history)  # no credentials
    vetting = await call(gw, "POST", f"/admin/brands/{brand['id']}/vet", {})
    assert vetting["vetting_status"] == "PENDING"
    advanced = await call(gw, "POST", "/admin/registry/advance", {"days": 3})
    assert advanced["clock"]["now"]
    brand = await call(gw, "GET", f"/admin/brands/{brand['id']}")
    assert (brand["identity_status"], brand["trust_score"], brand["vetting_status"]) == ("VETTED_VERIFIED", 94,
                                                                                          "ACTIVE")
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": brand["id"]}, expect=201)
    assert (campaign["status"], campaign["registry_status"]) == ("submitted", "ACTIVE")
    assert campaign["expires_at"] and campaign["registry_id"].startswith("C")
    # a number cannot join before the DCA accepted the campaign
    refused = await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/associate", {"number": ATT_NUMBER},
                         expect=409)
    assert refused["error"]["code"] == "campaign_not_shared"
    shared = await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/share")
    assert (shared["status"], shared["sharing_status"]) == ("shared", "PENDING")
    await call(gw, "POST", "/admin/registry/advance", {"days": 3})
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert (shown["status"], shown["sharing_status"]) == ("review", "ACCEPTED")
    assert {m: o["status"] for m, o in shown["operations"].items()} == dict.fromkeys(
        ("ATT", "TMOBILE", "USCELLULAR", "VERIZON"), "REVIEW")
    assert shown["blocked"] == {"*": "the campaign is review"}
    await call(gw, "POST", "/admin/registry/advance", {"days": 5})
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert shown["status"] == "active" and shown["blocked"] == {}
    assert {o["status"] for o in shown["operations"].values()} == {"APPROVED"}
    order = (await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/associate", {"number": ATT_NUMBER}))["order"]
    assert (order["status"], order["numbers"]) == ("placed", [{"number": ATT_NUMBER, "status": "associating",
                                                               "reason": None}])
    number = await call(gw, "GET", f"/admin/numbers/{ATT_NUMBER.replace('+', '%2B')}/registry")
    assert (number["status"], number["type"], number["campaign_id"]) == ("associating", "long_code", campaign["id"])
    await call(gw, "POST", "/admin/registry/advance", {"days": 7})  # five business days
    number = await call(gw, "GET", f"/admin/numbers/{ATT_NUMBER.replace('+', '%2B')}/registry")
    assert (number["status"], number["type"]) == ("active", "ten_dlc")
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert shown["numbers"] == [ATT_NUMBER] and shown["orders"][0]["status"] == "completed"
    # the limits follow the brand's current score (94, standard use case)
    assert (shown["limits"]["att_per_minute"], shown["limits"]["tmobile_per_day"]) == (4500, 200_000)
    sent = await send(gw, c, ATT_RECIPIENT)
    await wait_for(lambda: _status(gw, c, sent["id"], "delivered"))
    assert [(s.source, s.destination) for s in gw.sim.received] == [(ATT_NUMBER, ATT_RECIPIENT)]
    gate = gw.app[app_keys.DISPATCHER].gate
    assert (gate.campaign(ATT_NUMBER).att_per_minute, gate.campaign(ATT_NUMBER).tmobile_per_day) == (4500, 200_000)
    policy_limits = {limit.key: limit for limit in gw.app[app_keys.DISPATCHER].sender._policy.limits(
        c.account_id, ATT_NUMBER, ATT_RECIPIENT)}
    assert policy_limits[f"att:c{campaign['id']}"].per_second == pytest.approx(4500 / 60 * 0.98)
    # a score lowered at the registry lowers the limit at once
    await call(gw, "POST", f"/admin/registry/simulator/brands/{brand['id']}/review",
               {"identity_status": "VERIFIED", "score": 30})
    await until(gw, f"/admin/brands/{brand['id']}", lambda b: b["trust_score"] == 30)
    await gate.prepare([ATT_NUMBER])
    assert gate.campaign(ATT_NUMBER).att_per_minute == 240


async def _status(gw, c, mid: str, status: str) -> bool:
    return (await message(gw, c, mid))["status"] == status


async def test_a_suspension_stops_traffic_to_that_carrier_only(gw):
    c, campaign = await ten_dlc(gw)
    await call(gw, "POST", f"/admin/registry/simulator/campaigns/{campaign['id']}/review",
               {"mno": "TMOBILE", "status": "SUSPENDED", "description": "spam complaints"})
    shown = await until(gw, f"/admin/campaigns/{campaign['id']}",
                        lambda s: s["operations"]["TMOBILE"]["status"] == "SUSPENDED")
    assert shown["status"] == "active" and shown["blocked"] == {"tmobile": "TMOBILE SUSPENDED"}
    held = await send(gw, c, TMOBILE_RECIPIENT)
    flowing = await send(gw, c, ATT_RECIPIENT)
    await wait_for(lambda: _status(gw, c, flowing["id"], "delivered"))

    async def waiting() -> bool:
        m = await message(gw, c, held["id"])
        return m["status"] == "queued" and m.get("error_code") == "campaign_not_approved"

    await wait_for(waiting)
    assert [s.destination for s in gw.sim.received] == [ATT_RECIPIENT]  # nothing reached T-Mobile
    await call(gw, "POST", f"/admin/registry/simulator/campaigns/{campaign['id']}/review",
               {"mno": "TMOBILE", "status": "UNSUSPENDED"})
    await wait_for(lambda: _status(gw, c, held["id"], "delivered"))  # its next try goes
    assert sorted(s.destination for s in gw.sim.received) == sorted([ATT_RECIPIENT, TMOBILE_RECIPIENT])


async def test_a_message_waits_for_its_ttl_while_its_carrier_holds_the_campaign(gw):
    c, campaign = await ten_dlc(gw)
    await call(gw, "POST", f"/admin/registry/simulator/campaigns/{campaign['id']}/review",
               {"mno": "ATT", "status": "SUSPENDED"})
    await until(gw, f"/admin/campaigns/{campaign['id']}", lambda s: "att" in s["blocked"])
    resp = await gw.post("/v1/messages", json={"to": ATT_RECIPIENT, "from": ATT_NUMBER, "body": "hello",
                                               "ttl": 5}, headers=c.headers)
    mid = (await resp.json())["id"]
    await wait_for(lambda: _status(gw, c, mid, "expired"), timeout=15)
    assert gw.sim.received == []


async def test_duplicated_events_change_nothing_twice(gw):
    await call(gw, "POST", "/admin/registry/simulator/faults", {"webhook_duplicate_rate": 1.0, "seed": 1})
    w = await world(gw, vet=False)
    brand = w["brand"]
    assert (brand["status"], brand["trust_score"]) == ("complete", 69)

    async def all_sent_twice() -> bool:
        sent = await registry_client(gw).events()
        return bool(sent) and all(e["delivered"] and e["duplicates"] >= 1 for e in sent)

    await wait_for(all_sent_twice)
    sent = await registry_client(gw).events()
    await call(gw, "POST", "/admin/registry/simulator/redeliver")  # and every one once more

    async def redelivered() -> bool:
        return all(e["attempts"] + e["duplicates"] >= 3 for e in await registry_client(gw).events())

    await wait_for(redelivered)
    async with gw.sm() as session:
        stored = await session.scalar(select(func.count()).select_from(RegistryEvent))
        scored = await session.scalar(select(func.count()).select_from(Transition).where(
            Transition.entity == "brand", Transition.actor == "registry event"))
    assert stored == len(sent) and scored == 1  # each event stored once, the score applied once
    brand = await call(gw, "GET", f"/admin/brands/{brand['id']}")
    assert (brand["status"], brand["trust_score"]) == ("complete", 69)


async def test_reordered_events_end_in_the_right_states(gw):
    """The simulator holds the events and sends them newest first: the gateway ends where the registry is."""
    w = await world(gw, vet=False)
    brand = w["brand"]
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": brand["id"]}, expect=201)
    await call(gw, "POST", "/admin/registry/simulator/faults", {"webhook_reorder": True})
    await call(gw, "POST", f"/admin/brands/{brand['id']}/vet", {})
    await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/share")
    client = registry_client(gw)
    for days in (3, 5):  # straight to the simulator: no reconciliation, only the events
        await client.advance(days)
    await until(gw, f"/admin/campaigns/{campaign['id']}", lambda s: s["status"] == "active")
    brand = await until(gw, f"/admin/brands/{brand['id']}", lambda b: b["vetting_status"] == "ACTIVE")
    assert (brand["identity_status"], brand["trust_score"]) == ("VETTED_VERIFIED", 94)
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert {o["status"] for o in shown["operations"].values()} == {"APPROVED"}
    assert shown["sharing_status"] == "ACCEPTED"
    # one carrier suspends, then lifts it; held and sent newest first, the suspension comes last and is older
    for status in ("SUSPENDED", "UNSUSPENDED"):
        await call(gw, "POST", f"/admin/registry/simulator/campaigns/{campaign['id']}/review",
                   {"mno": "VERIZON", "status": status})
    await client.advance(0)  # releases what it holds, newest first

    async def both_came() -> bool:
        got = (await call(gw, "GET", "/admin/registry/events"))["events"]
        return {"MNO_CAMPAIGN_OPERATION_SUSPENDED", "MNO_CAMPAIGN_OPERATION_UNSUSPENDED"} <= {e["type"] for e in got}

    await wait_for(both_came)
    got = {e["type"]: e for e in (await call(gw, "GET", "/admin/registry/events"))["events"]}
    assert got["MNO_CAMPAIGN_OPERATION_UNSUSPENDED"]["received_at"] <= got["MNO_CAMPAIGN_OPERATION_SUSPENDED"][
        "received_at"]
    assert got["MNO_CAMPAIGN_OPERATION_SUSPENDED"]["outcome"] == "ignored"
    assert "older than the state held" in got["MNO_CAMPAIGN_OPERATION_SUSPENDED"]["reason"]
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert shown["operations"]["VERIZON"]["status"] == "APPROVED" and shown["blocked"] == {}


async def test_lost_events_only_delay_a_change(gw):
    w = await world(gw, vet=False)
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": w["brand"]["id"]}, expect=201)
    await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/share")
    await call(gw, "POST", "/admin/registry/simulator/faults", {"webhook_drop_next": 100})
    client = registry_client(gw)
    await client.advance(3)
    await client.advance(5)
    await asyncio.sleep(0.3)
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert shown["status"] == "shared"  # no event came
    summary = await call(gw, "POST", "/admin/registry/reconcile", {})
    assert summary["polled"]["campaigns"] == 1 and summary["changed"] == 1
    shown = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert shown["status"] == "active" and {o["status"] for o in shown["operations"].values()} == {"APPROVED"}
    assert any(h["actor"] == "registry poll" for h in shown["history"])


async def test_the_periodic_reconciliation_finds_what_a_lost_event_said(gw):
    gw.app[app_keys.REGISTRY].csp.settings.reconcile_interval_s = 0.2
    reconciler = gw.app[app_keys.REGISTRY].reconciler
    await reconciler.stop()
    reconciler.start()  # with the short interval
    await call(gw, "POST", "/admin/registry/simulator/faults", {"webhook_drop_next": 100})
    c = await new_customer(gw, gw.sm, "acme", numbers=())
    gw.app[app_keys.REGISTRY].csp.settings.register_wait_s = 0
    brand = await call(gw, "POST", "/admin/brands", {**BRAND, "account_id": c.account_id}, expect=201)
    assert brand["status"] == "submitted"
    brand = await until(gw, f"/admin/brands/{brand['id']}", lambda b: b["status"] == "complete")
    assert brand["trust_score"] == 69


async def test_registry_5xx_keeps_the_request_pending_until_reconciliation(gw):
    c = await new_customer(gw, gw.sm, "acme", numbers=())
    assert (await call(gw, "POST", "/admin/registry/reconcile", {}))["errors"] == 0  # subscribes to the events
    assert (await call(gw, "GET", "/admin/registry"))["subscribed"] is True
    await call(gw, "POST", "/admin/registry/simulator/faults", {"http_5xx_next": 2})
    pending = await call(gw, "POST", "/admin/brands", {**BRAND, "account_id": c.account_id}, expect=202)
    assert pending["status"] == "created" and pending["registry_id"] is None
    assert pending["pending"][0]["operation"] == "register"
    assert pending["pending"][0]["error"].startswith("registry_unavailable")
    shown = await call(gw, "GET", f"/admin/brands/{pending['id']}")
    assert [h["reason"] for h in shown["history"] if h["actor"] == "registry call"] == [
        "POST /v1/brand/nonBlocking -> 503"] * 2
    assert (await call(gw, "GET", "/admin/registry"))["requests"]["pending"] == 1
    summary = await call(gw, "POST", "/admin/registry/reconcile", {})
    assert summary["requests"]["done"] == 1
    brand = await until(gw, f"/admin/brands/{pending['id']}", lambda b: b["status"] == "complete")
    assert brand["registry_id"] and brand["trust_score"] == 69 and brand["pending"] == []
    # a campaign's share, too
    await call(gw, "POST", "/admin/registry/simulator/faults", {"http_5xx_next": 2})
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": brand["id"]}, expect=202)
    assert campaign["status"] == "created"
    await call(gw, "POST", "/admin/registry/reconcile", {})
    campaign = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert campaign["status"] == "submitted" and campaign["registry_id"]


async def test_a_registry_timeout_keeps_the_request_and_the_retry_makes_no_second_brand(gw):
    c = await new_customer(gw, gw.sm, "acme", numbers=())
    await call(gw, "POST", "/admin/registry/reconcile", {})  # subscribes to the events
    csp = gw.app[app_keys.REGISTRY].csp
    csp.client.timeout_s = 0.3
    await call(gw, "POST", "/admin/registry/simulator/faults", {"delay_ms": 800})
    pending = await call(gw, "POST", "/admin/brands", {**BRAND, "account_id": c.account_id}, expect=202)
    assert pending["pending"][0]["error"].startswith("registry_timeout")
    await call(gw, "POST", "/admin/registry/simulator/faults", {"delay_ms": 0})
    csp.client.timeout_s = 2.0
    await call(gw, "POST", "/admin/registry/reconcile", {})
    brand = await until(gw, f"/admin/brands/{pending['id']}", lambda b: b["status"] == "complete")
    # the registry took the first attempts too (they answered late): the referenceId made them one brand
    scored = {e["event"]["brandId"] for e in await registry_client(gw).events()
              if e["event"]["eventType"] == "BRAND_SCORE_UPDATE"}
    assert scored == {brand["registry_id"]}


async def test_refusals_keep_the_registrys_code(gw):
    w = await world(gw, vet=False)
    campaign = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": w["brand"]["id"]}, expect=201)
    refused = await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/share", {"cnp_id": "OTHER1"}, expect=422)
    assert refused["error"]["code"] == "invalid_cnp"
    assert refused["error"]["details"] == {"registry_code": "INVALID_CNP", "registry_status": 400}
    assert (await call(gw, "GET", f"/admin/campaigns/{campaign['id']}"))["sharing_status"] is None
    # an unverified brand: its campaign is refused here, and the registry says why
    unverified = await registered_brand(gw, w["customer"].account_id, ein="00-0123456")
    assert (unverified["status"], unverified["identity_status"]) == ("requires_updates", "UNVERIFIED")
    refused = await call(gw, "POST", "/admin/campaigns", {**CAMPAIGN, "brand_id": unverified["id"]}, expect=409)
    assert refused["error"]["code"] == "brand_not_verified"
    feedback = await call(gw, "GET", f"/admin/brands/{unverified['id']}/feedback")
    assert [c["id"] for c in feedback["categories"]] == ["TAX_ID"]
    refused = await call(gw, "DELETE", f"/admin/brands/{w['brand']['id']}", expect=409)
    assert refused["error"]["code"] == "brand_has_active_campaigns"
    await call(gw, "POST", f"/admin/campaigns/{campaign['id']}/deactivate")
    deactivated = await call(gw, "GET", f"/admin/campaigns/{campaign['id']}")
    assert deactivated["status"] == "deactivated"
    deleted = await call(gw, "DELETE", f"/admin/brands/{w['brand']['id']}")
    assert deleted["status"] == "deleted"


async def test_careless_input_to_the_event_url(gw):
    token = gw.app[app_keys.REGISTRY].csp.token
    url = f"/registry/events/{token}"

    async def post(path: str, data: bytes, status: int, code: str | None) -> dict:
        resp = await gw.post(path, data=data, headers={"Content-Type": "application/json"})
        body = await resp.json()
        assert resp.status == status, body
        if code:
            assert body["error"]["code"] == code
        return body

    event = {"eventId": "E-test-1", "eventType": "CAMPAIGN_EXPIRED", "eventCategory": "CAMPAIGN",
             "campaignId": "CNOSUCH", "createDate": "2030-01-01T00:00:00.000Z", "sequence": 1}
    good = json.dumps(event).encode()
    await post("/registry/events/not-the-token", good, 401, "invalid_token")
    await post(url, b"not json", 400, "invalid_json")
    await post(url, good[: len(good) // 2], 400, "invalid_json")  # truncated
    await post(url, b"[1, 2]", 400, "invalid_json")
    await post(url, b"{" + b'"x": "' + b"a" * 70_000 + b'"}', 413, "body_too_large")
    await post(url, json.dumps({"eventType": "CAMPAIGN_EXPIRED"}).encode(), 422, "invalid_event")
    await post(url, json.dumps({**event, "sequence": "one"}).encode(), 422, "invalid_event")
    await post(url, json.dumps({**event, "description": "\ud800"}).encode(), 422, "invalid_field")  # lone surrogate
    await post(url, b"{}" * 2, 400, "invalid_json")
    first = await post(url, good, 200, None)
    assert first["outcome"] == "unmatched"  # kept: applied if that campaign is ever known
    again = await post(url, good, 200, None)
    assert again["outcome"] == "duplicate"
    events = (await call(gw, "GET", "/admin/registry/events"))["events"]
    assert [(e["event_id"], e["outcome"]) for e in events] == [("E-test-1", "unmatched")]


async def test_registry_secrets_never_reach_the_logs_nor_the_history(gw, caplog):
    import base64
    import logging

    for name in ("", "aiohttp", "aiohttp.access", "aiohttp.client", "gateway", "registry", "sqlalchemy.engine"):
        caplog.set_level(logging.DEBUG, logger=name)
    csp = gw.app[app_keys.REGISTRY].csp
    secret = (gw.app[app_keys.SETTINGS].data_path / "registry_simulator_secret").read_text().strip()
    basic = base64.b64encode(f"gateway:{secret}".encode()).decode()
    await call(gw, "POST", "/admin/registry/reconcile", {})
    await call(gw, "POST", "/admin/registry/simulator/faults", {"http_5xx_next": 2})
    c = await new_customer(gw, gw.sm, "acme", numbers=())
    brand = await call(gw, "POST", "/admin/brands", {**BRAND, "account_id": c.account_id}, expect=202)
    await call(gw, "POST", "/admin/registry/reconcile", {})
    brand = await until(gw, f"/admin/brands/{brand['id']}", lambda b: b["status"] == "complete")
    status = await call(gw, "GET", "/admin/registry")
    shown = json.dumps([brand, status])
    text = caplog.text + "\n".join(repr(vars(r)) for r in caplog.records)
    assert "registry_unavailable" in text  # the pending request was logged ...
    assert "POST /registry/events/<token>" in text  # ... and the events received, their URL redacted ...
    for leaked in (csp.token, secret, basic):  # ... without the event URL's token or the credentials
        assert leaked not in text and leaked not in shown
