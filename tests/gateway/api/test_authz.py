"""Authorization, route by route, through the real app on a temporary SQLite database.

The routes come from the app's router, so a new route without a case here fails ``test_every_route_has_a_case``:
every /v1 route needs an API key (401 missing_api_key / invalid_api_key); every /admin route the operator token;
account B can neither read nor change account A's messages, numbers, keywords, opt-outs, webhook deliveries,
voice messages, inbound messages, brands or campaigns (404 as for a missing resource; A's rows unchanged in the
database afterwards). Then the slowing down of repeated authentication failures (429 too_many_auth_failures).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select, text

from carriers import InboundSms
from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys, middleware
from gateway.api.app import create_app
from gateway.store.models import VoiceMessage
from gateway.store.models_all import metadata
from gateway.voice_calls.worker import new_voice_id
from registry.db import utcnow
from registry.models import Number
from tests.conftest import ADMIN, TOLL_FREE_REQUEST, new_customer, wait_for

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json")}
SIGNED = {("GET", "/audio/{key}.wav"), ("POST", "/callbacks/voice/{token}"),  # public, but signed / tokened
          ("POST", "/registry/events/{token}"),
          *((m, f"/callbacks/carriers/{{carrier}}/{kind}") for m in ("GET", "POST") for kind in ("reports", "inbound"))}
OPERATOR_OR_SCRAPE = {("GET", "/metrics")}  # the operator token, or [metrics] scrape_token
CONSOLE_OPEN = {("GET", "/console/sign-in"), ("POST", "/console/sign-in"), ("GET", "/console/static/console.css")}
SAMPLE = {"id": "1", "account": "1", "number": "12345", "keyword": "HOURS", "phone": "+14155550123",
          "key": "a" * 64, "token": "t0k3n", "carrier": "sim", "name": "uk"}
ACTIONS = ("activate", "release", "vet", "revet", "share", "renew", "deactivate", "associate", "disassociate")
A_DEST, A_OPTED_OUT, A_VOICE_NUMBER, B_NUMBER = "+14155550166", "+14155550177", "+14155550140", "54321"
A_TOLL_FREE = "+18885550144"


def routes_of(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, canonical path, resource) of every route, HEAD (aiohttp's twin of GET) aside."""
    return [(r.method, r.resource.canonical, r.resource) for r in app.router.routes() if r.method != "HEAD"]


def concrete(canonical: str, resource: Any) -> str:
    """The canonical path with sample values the route's own pattern accepts."""
    info = resource.get_info()
    if "pattern" not in info:
        return canonical
    for action in ACTIONS:
        path = re.sub(r"\{(\w+)\}", lambda m, action=action: action if m.group(1) == "action" else SAMPLE[m.group(1)],
                      canonical)
        if info["pattern"].fullmatch(path):
            return path
    raise AssertionError(f"no sample path matches {canonical}")


@pytest.fixture
async def api(aiohttp_client, migrated, sessionmaker):
    migrated.security.auth_failure_limit = 0  # these tests fail authentication on purpose, many times
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.sessionmaker = sessionmaker
    return client


async def test_every_v1_route_needs_an_api_key(api):
    customer = await new_customer(api, api.sessionmaker, "acme")
    v1 = [(m, concrete(c, r)) for m, c, r in routes_of(api.app) if c.startswith("/v1/")]
    assert len(v1) > 20
    for method, path in v1:
        for headers, code in (({}, "missing_api_key"), ({"Authorization": "Basic abc"}, "missing_api_key"),
                              ({"Authorization": "Bearer gk_not_a_key"}, "invalid_api_key"),
                              ({"Authorization": "Bearer " + api.app[app_keys.OPERATOR_TOKEN]}, "invalid_api_key")):
            resp = await api.request(method, path, headers=headers, json={})
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (401, code), (method, path, headers)
            assert body["error"]["message"]
        # a revoked key is no key
    async with api.sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE account_id = :a"),
                              {"a": customer.account_id})
    resp = await api.get("/v1/account", headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_api_key")


async def test_every_admin_route_needs_the_operator_token(api):
    customer = await new_customer(api, api.sessionmaker, "acme")
    admin = [(m, concrete(c, r)) for m, c, r in routes_of(api.app) if c.startswith("/admin/")]
    assert len(admin) > 20
    token = api.app[app_keys.OPERATOR_TOKEN]
    for method, path in admin:
        for headers in ({}, customer.headers, {"Authorization": "Bearer " + token[:-1]},
                        {"Authorization": "Bearer " + token + "x"}, {"Authorization": "Basic " + token}):
            resp = await api.request(method, path, headers=headers, json={})
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (401, "invalid_operator_token"), (method, path, headers)
    async with api.sessionmaker() as session:  # nothing was created by all that
        assert (await session.execute(text("SELECT count(*) FROM accounts"))).scalar() == 1


async def test_metrics_need_the_operator_token_or_the_scrape_token(api):
    customer = await new_customer(api, api.sessionmaker, "acme")
    token = api.app[app_keys.OPERATOR_TOKEN]
    api.app[app_keys.SETTINGS].metrics.scrape_token = "scrape-token"
    for method, path in OPERATOR_OR_SCRAPE:
        for headers in ({}, customer.headers, {"Authorization": "Bearer " + token[:-1]},
                        {"Authorization": "Bearer scrape-token-x"}, {"Authorization": "Basic scrape-token"}):
            resp = await api.request(method, path, headers=headers)
            body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (401, "invalid_operator_token"), (method, path, headers)
        for secret in (token, "scrape-token"):
            assert (await api.request(method, path, headers={"Authorization": "Bearer " + secret})).status == 200
    # the scrape token opens nothing else
    resp = await api.get("/admin/accounts", headers={"Authorization": "Bearer scrape-token"})
    assert resp.status == 401


async def test_every_console_route_needs_a_session(api):
    """No API key nor the operator token as a bearer token opens a console page: a GET is sent to sign in, any
    other method refused; only signing in and the stylesheet are open."""
    customer = await new_customer(api, api.sessionmaker, "acme")
    console = [(m, c, concrete(c, r)) for m, c, r in routes_of(api.app) if c == "/console" or c.startswith("/console/")]
    assert len(console) > 10
    token = api.app[app_keys.OPERATOR_TOKEN]
    for method, canonical, path in console:
        if (method, canonical) in CONSOLE_OPEN:
            assert (await api.request(method, path, allow_redirects=False)).status in (200, 401), path
            continue
        for headers in ({}, customer.headers, {"Authorization": "Bearer " + token}, {"Cookie": "gateway_console=x"}):
            resp = await api.request(method, path, headers=headers, data={"csrf": "x"}, allow_redirects=False)
            if method == "GET":
                assert (resp.status, resp.headers["Location"].split("?")[0]) == (303, "/console/sign-in"), path
            else:
                assert resp.status == 403, (method, path, headers)
    async with api.sessionmaker() as session:  # nothing was replayed nor changed
        assert (await session.execute(text("SELECT count(*) FROM accounts"))).scalar() == 1


async def test_signed_public_routes_refuse_without_their_signature(api):
    resp = await api.get("/audio/" + "a" * 64 + ".wav")
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_signature")
    resp = await api.get("/audio/" + "a" * 64 + ".wav?expires=9999999999&sig=forged")
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_signature")
    resp = await api.post("/callbacks/voice/forged-token", json={"status": "completed"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_callback")
    token = api.app[app_keys.REGISTRY].csp.token
    event = {"eventId": "E1", "eventType": "CAMPAIGN_EXPIRED", "campaignId": "CAAAAAA"}
    for forged in (token[:-1], token + "0", token.upper(), "x"):
        resp = await api.post(f"/registry/events/{forged}", json=event)
        assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_token")
    async with api.sessionmaker() as session:  # nothing was stored
        assert (await session.execute(text("SELECT count(*) FROM registry_events"))).scalar() == 0


# --- account B against account A's resources ----------------------------------------------------------------

@pytest.fixture
async def world(api, aiohttp_server):
    """Account A with one of everything, quiet (message delivered, its webhooks delivered); account B."""
    hooks: list[dict] = []

    async def receive(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.json_response({})

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    server = await aiohttp_server(receiver)
    a = await new_customer(api, api.sessionmaker, "alpha", numbers=(("12345", "short_code"),
                                                                    (A_VOICE_NUMBER, "long_code"),
                                                                    (A_TOLL_FREE, "toll_free")))
    b = await new_customer(api, api.sessionmaker, "beta", numbers=((B_NUMBER, "short_code"),))

    async def call(who, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        resp = await api.request(method, path, json=body, headers={**who.headers, **kw.pop("headers", {})}, **kw)
        raw = await resp.read()
        return resp.status, (json.loads(raw) if resp.content_type == "application/json" else raw.decode())

    status, msg = await call(a, "POST", "/v1/messages", {"to": A_DEST, "body": "alpha body", "from": "12345",
                                                         "status_callback": str(server.make_url("/hook"))},
                             headers={"Idempotency-Key": "alpha-key"})
    assert status == 202
    assert (await call(a, "PUT", "/v1/numbers/12345/keywords/ALPHAWORD",
                       {"action": "auto_response", "message": "alpha reply"}))[0] == 200
    assert (await call(a, "POST", "/v1/opt-outs", {"phone": A_OPTED_OUT}))[0] == 201
    await api.app[app_keys.INBOUND].on_inbound("sim", InboundSms(A_DEST, "12345", "alpha inbound text"))
    status, brand = await call(ADMIN_CALLER, "POST", "/admin/brands", {
        "account_id": a.account_id, "legal_name": "Alpha Brand Inc", "ein": "123456789",
        "entity_type": "PRIVATE_PROFIT", "vertical": "RETAIL", "website": "https://alpha.example",
        "contact_email": "ops@alpha.example", "contact_phone": "+14155550100"})
    assert status == 201, brand

    async def verified() -> bool:  # the registry simulator's identity check
        return (await call(ADMIN_CALLER, "GET", f"/admin/brands/{brand['id']}"))[1]["status"] == "complete"

    await wait_for(verified)
    status, campaign = await call(ADMIN_CALLER, "POST", "/admin/campaigns", {
        "brand_id": brand["id"], "use_case": "MIXED", "description": "Alpha campaign traffic",
        "sample_messages": ["Hi {#var}, your order {#var} shipped.", "Code {#var}. Reply STOP to opt out."],
        "opt_in_message": "Opt in at checkout.", "opt_out_message": "Reply STOP.", "help_message": "Reply HELP."})
    assert status == 201, campaign
    status, toll_free = await call(a, "POST", "/v1/toll-free-verifications", {
        **TOLL_FREE_REQUEST, "business_name": "Alpha Toll-Free Business", "numbers": [A_TOLL_FREE]})
    assert status == 201, toll_free
    async with api.sessionmaker() as session, session.begin():  # a finished call (the voice worker leaves it be)
        voice = VoiceMessage(public_id=new_voice_id(), account_id=a.account_id, source=A_VOICE_NUMBER,
                             destination=A_DEST, script="alpha voice script", voice="en-us", status="completed",
                             call_seconds=12.0, created_at=utcnow(), updated_at=utcnow(), done_at=utcnow())
        session.add(voice)

    async def quiet() -> bool:
        got = (await call(a, "GET", f"/v1/messages/{msg['id']}"))[1]
        deliveries = (await call(a, "GET", "/v1/webhooks/deliveries"))[1]["deliveries"]
        return (got["status"] == "delivered" and len(deliveries) == 3
                and all(d["status"] == "delivered" for d in deliveries))

    await wait_for(quiet, timeout=15)
    inbound = (await call(a, "GET", "/v1/inbound"))[1]["inbound"][0]
    delivery = (await call(a, "GET", "/v1/webhooks/deliveries"))[1]["deliveries"][0]
    secret = (await call(a, "GET", "/v1/account"))[1]["webhook_secret"]
    ids = {"msg": msg["id"], "inbound": inbound["id"], "delivery": delivery["id"], "voice": voice.public_id,
           "brand": brand["id"], "campaign": campaign["id"], "number": "12345", "voice_number": A_VOICE_NUMBER,
           "keyword": "ALPHAWORD", "phone": A_OPTED_OUT, "dest": A_DEST, "toll_free": toll_free["id"],
           "toll_free_number": A_TOLL_FREE}
    markers = [msg["id"], inbound["id"], delivery["id"], voice.public_id, A_VOICE_NUMBER, A_OPTED_OUT, A_DEST,
               "Alpha Brand", "Alpha campaign", "alpha body", "ALPHAWORD", "alpha inbound", "alpha voice",
               "Alpha Toll-Free", A_TOLL_FREE, secret]
    return {"a": a, "b": b, "call": call, "ids": ids, "markers": markers, "hooks": hooks}


class _Admin:
    headers = ADMIN


ADMIN_CALLER = _Admin()


async def snapshot(sessionmaker, account_id: int) -> dict[str, list]:
    """Every row that belongs to an account, table by table (keywords and attempts through their parents)."""
    out: dict[str, list] = {}
    async with sessionmaker() as session:
        for table in metadata.sorted_tables:
            if "account_id" in table.c:
                stmt = select(table).where(table.c.account_id == account_id)
            elif table.name == "accounts":
                stmt = select(table).where(table.c.id == account_id)
            elif table.name == "number_keywords":
                stmt = select(table).where(table.c.number_id.in_(
                    select(Number.id).where(Number.account_id == account_id)))
            else:
                continue
            out[table.name] = [tuple(r) for r in (await session.execute(stmt.order_by(*table.primary_key))).all()]
    return out


def nothing_of_a(world: dict) -> Callable[[int, Any], None]:
    def check(status: int, body: Any) -> None:
        assert status == 200, body
        shown = body if isinstance(body, str) else json.dumps(body)
        assert not [m for m in world["markers"] if m in shown], shown
    return check


def refused(status_code: int, code: str) -> Callable[[int, Any], None]:
    def check(status: int, body: Any) -> None:
        assert (status, body["error"]["code"]) == (status_code, code), body
    return check


def own(status_code: int, predicate: Callable[[Any], bool] = lambda body: True) -> Callable[[int, Any], None]:
    """B acts on its own account: fine, and A is untouched (the snapshot says so)."""
    def check(status: int, body: Any) -> None:
        assert status == status_code and predicate(body), body
    check.writes = True  # type: ignore[attr-defined]  # after the reads, which must not see B's own changes
    return check


def cases(w: dict) -> dict[tuple[str, str], list[tuple[str, str, Any, Callable[[int, Any], None]]]]:
    """For each /v1 route: what B tries with A's identifiers, and what it must get."""
    i, nothing = w["ids"], nothing_of_a(w)
    not_found = refused(404, "number_not_found")
    return {
        ("POST", "/v1/messages"): [
            ("POST", "/v1/messages", {"to": i["dest"], "body": "x", "from": i["number"]}, refused(422, "invalid_from")),
            ("POST", "/v1/messages", {"to": i["dest"], "body": "x", "from": i["voice_number"]},
             refused(422, "invalid_from"))],
        ("POST", "/v1/messages/batch"): [
            ("POST", "/v1/messages/batch", {"messages": [{"to": i["dest"], "body": "x", "from": i["number"]}]},
             own(200, lambda body: body["results"][0]["error"]["code"] == "invalid_from"))],
        ("GET", "/v1/messages/{id}"): [("GET", f"/v1/messages/{i['msg']}", None, refused(404, "message_not_found"))],
        ("GET", "/v1/messages"): [
            ("GET", "/v1/messages", None, nothing), ("GET", f"/v1/messages?to={i['dest']}", None, nothing),
            ("GET", f"/v1/messages?before={i['msg']}", None, refused(400, "invalid_query"))],
        ("GET", "/v1/account"): [("GET", "/v1/account", None, nothing)],
        ("PATCH", "/v1/account"): [("PATCH", "/v1/account", {"event_webhook_url": "https://beta.example/hook",
                                                              "program_name": "Beta"}, own(200))],
        ("POST", "/v1/account/webhook-secret"): [("POST", "/v1/account/webhook-secret", None, nothing)],
        ("GET", "/v1/webhooks/deliveries"): [("GET", "/v1/webhooks/deliveries", None, nothing)],
        ("GET", "/v1/webhooks/deliveries/{id}"): [
            ("GET", f"/v1/webhooks/deliveries/{i['delivery']}", None, refused(404, "delivery_not_found"))],
        ("POST", "/v1/webhooks/deliveries/{id}/replay"): [
            ("POST", f"/v1/webhooks/deliveries/{i['delivery']}/replay", None, refused(404, "delivery_not_found"))],
        ("GET", "/v1/inbound"): [
            ("GET", "/v1/inbound", None, nothing), ("GET", f"/v1/inbound?from={i['dest']}", None, nothing),
            ("GET", f"/v1/inbound?before={i['inbound']}", None, refused(400, "invalid_query"))],
        ("GET", "/v1/inbound/{id}"): [("GET", f"/v1/inbound/{i['inbound']}", None, refused(404, "inbound_not_found"))],
        ("GET", "/v1/numbers"): [("GET", "/v1/numbers", None, nothing)],
        ("PATCH", "/v1/numbers/{number}"): [
            ("PATCH", f"/v1/numbers/{i['number']}", {"help_message": "hijacked", "two_way_enabled": False}, not_found),
            ("PATCH", "/v1/numbers/%2B14155550140", {"self_managed_opt_outs": True}, not_found)],
        ("GET", "/v1/numbers/{number}/keywords"): [("GET", f"/v1/numbers/{i['number']}/keywords", None, not_found)],
        ("PUT", "/v1/numbers/{number}/keywords/{keyword}"): [
            ("PUT", f"/v1/numbers/{i['number']}/keywords/{i['keyword']}",
             {"action": "auto_response", "message": "hijacked"}, not_found)],
        ("DELETE", "/v1/numbers/{number}/keywords/{keyword}"): [
            ("DELETE", f"/v1/numbers/{i['number']}/keywords/{i['keyword']}", None, not_found)],
        ("GET", "/v1/opt-outs"): [("GET", "/v1/opt-outs", None, nothing),
                                  ("GET", "/v1/opt-outs?phone=%2B14155550177", None, nothing)],
        ("POST", "/v1/opt-outs"): [("POST", "/v1/opt-outs", {"phone": i["phone"]},
                                    own(201, lambda body: body["added"] is True))],  # onto B's own list
        ("DELETE", "/v1/opt-outs/{phone}"): [
            ("DELETE", "/v1/opt-outs/%2B14155550178", None, refused(404, "opt_out_not_found"))],
        ("POST", "/v1/opt-outs/import"): [("POST", "/v1/opt-outs/import", None, own(200))],  # body: see below
        ("GET", "/v1/opt-outs/export"): [("GET", "/v1/opt-outs/export", None, nothing)],
        ("POST", "/v1/voice-messages"): [
            ("POST", "/v1/voice-messages", {"to": i["dest"], "from": i["voice_number"], "script": "hi"},
             refused(422, "invalid_from"))],
        ("GET", "/v1/voice-messages/{id}"): [
            ("GET", f"/v1/voice-messages/{i['voice']}", None, refused(404, "voice_message_not_found"))],
        ("GET", "/v1/voice-metrics"): [("GET", "/v1/voice-metrics", None, nothing)],
        ("GET", "/v1/brands"): [("GET", "/v1/brands", None, nothing)],
        ("GET", "/v1/brands/{id}"): [("GET", f"/v1/brands/{i['brand']}", None, refused(404, "brand_not_found"))],
        ("GET", "/v1/campaigns"): [("GET", "/v1/campaigns", None, nothing)],
        ("GET", "/v1/campaigns/{id}"): [
            ("GET", f"/v1/campaigns/{i['campaign']}", None, refused(404, "campaign_not_found"))],
        ("POST", "/v1/toll-free-verifications"): [
            ("POST", "/v1/toll-free-verifications", {**TOLL_FREE_REQUEST, "numbers": [i["toll_free_number"]]},
             refused(422, "number_not_owned"))],
        ("GET", "/v1/toll-free-verifications"): [("GET", "/v1/toll-free-verifications", None, nothing)],
        ("GET", "/v1/toll-free-verifications/{id}"): [
            ("GET", f"/v1/toll-free-verifications/{i['toll_free']}", None,
             refused(404, "toll_free_verification_not_found"))],
        ("POST", "/v1/toll-free-verifications/{id}/resubmit"): [
            ("POST", f"/v1/toll-free-verifications/{i['toll_free']}/resubmit", {"business_name": "hijacked"},
             refused(404, "toll_free_verification_not_found"))],
        ("GET", "/v1/numbers/{number}/toll-free-verification"): [
            ("GET", "/v1/numbers/%2B18885550144/toll-free-verification", None, not_found)],
        ("GET", "/v1/stats"): [("GET", "/v1/stats", None, stats_of_b_only),
                               ("GET", "/v1/stats?by=number", None, stats_of_b_only),
                               ("GET", "/v1/stats?by=campaign&group_by=hour", None, stats_of_b_only)],
        # B erasing A's recipient erases B's own data about that person only (A's rows are compared afterwards)
        ("DELETE", "/v1/data"): [("DELETE", "/v1/data?phone=%2B14155550166", None,
                                  own(200, lambda body: body["kept"] == {"opt_outs": 0})),
                                 ("DELETE", "/v1/data?phone=%2B14155550177", None,
                                  own(200, lambda body: body["removed"]["messages"] == 0))],
    }


def stats_of_b_only(status: int, body: Any) -> None:
    """B's stats count B's traffic only: none of A's numbers as keys, none of A's messages or STOPs."""
    assert status == 200, body
    assert body["totals"]["messages"] == 0 and body["totals"]["inbound"] == 0, body
    assert not [r for r in body["rows"] if r.get("key") is not None or r["messages"]], body


async def test_every_route_has_a_case(api):
    """A route added without an authorization case here fails this test."""
    table = cases({"ids": dict.fromkeys(("msg", "inbound", "delivery", "voice", "brand", "campaign", "number",
                                         "voice_number", "keyword", "phone", "dest", "toll_free",
                                         "toll_free_number"), "x"), "markers": []})
    for method, canonical, _ in routes_of(api.app):
        if canonical.startswith("/v1/"):
            assert (method, canonical) in table, f"{method} {canonical}: add its case to {__name__}"
        elif canonical == "/console" or canonical.startswith("/console/"):  # a session unless open: the test above
            continue
        elif not canonical.startswith("/admin/"):  # /admin: every route is in the operator-token test
            assert (method, canonical) in PUBLIC | SIGNED | OPERATOR_OR_SCRAPE, \
                f"{method} {canonical} is neither /v1 nor /admin"


async def test_one_account_cannot_read_or_change_anothers(api, world):
    a, b, call = world["a"], world["b"], world["call"]
    before = await snapshot(api.sessionmaker, a.account_id)
    assert all(before[t] for t in ("messages", "numbers", "number_keywords", "opt_outs", "webhook_deliveries",
                                   "voice_messages", "inbound_messages", "brands", "campaigns",
                                   "toll_free_verifications"))
    attempts = [(route, *attempt) for route, tried in cases(world).items() for attempt in tried]
    for route, method, path, body, check in sorted(attempts, key=lambda a: getattr(a[-1], "writes", False)):
        if route == ("POST", "/v1/opt-outs/import"):
            resp = await api.post(path, data=f"phone\n{A_OPTED_OUT}\n", headers=b.headers)
            status, got = resp.status, await resp.json()
            assert got["added"] + got["already_listed"] == 1 and got["rejected"] == 0
        else:
            status, got = await call(b, method, path, body)
        check(status, got)
    # B's own message with A's idempotency key is B's own
    status, sent = await call(b, "POST", "/v1/messages", {"to": A_DEST, "body": "beta"},
                              headers={"Idempotency-Key": "alpha-key"})
    assert status == 202 and sent["id"] != world["ids"]["msg"] and sent["from"] == B_NUMBER
    # operators may act on A through /admin/accounts/{account}/...: B's key may not
    status, got = await call(b, "GET", f"/admin/accounts/{a.account_id}/opt-outs")
    assert (status, got["error"]["code"]) == (401, "invalid_operator_token")

    async def b_quiet() -> bool:  # B's message and its events settle before A is compared
        got = (await call(b, "GET", f"/v1/messages/{sent['id']}"))[1]
        return got["status"] == "delivered"

    await wait_for(b_quiet)
    assert await snapshot(api.sessionmaker, a.account_id) == before
    # and A still sees all of its own
    assert (await call(a, "GET", f"/v1/messages/{world['ids']['msg']}"))[0] == 200
    status, optouts = await call(a, "GET", "/v1/opt-outs")
    assert [o["phone"] for o in optouts["opt_outs"]] == [A_OPTED_OUT]


# --- repeated authentication failures -----------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def limited(aiohttp_server, migrated, sessionmaker):
    """A real server with a limit of 3 failures a minute, callers from several loopback addresses, and a trusted
    proxy at 127.0.0.100."""
    migrated.security.auth_failure_limit = 3
    migrated.security.auth_failure_window_s = 60
    migrated.security.trusted_proxies = ["127.0.0.100/32", "10.0.0.0/8"]
    app = create_app(migrated, carriers=[LoopbackCarrier("sim")])
    server = await aiohttp_server(app, host="0.0.0.0")
    clock = FakeClock()
    middleware.auth_failures(app).clock = clock
    sessions: dict[str, aiohttp.ClientSession] = {}

    async def call(ip: str, method: str, path: str, key: str | None = None, **kw: Any) -> aiohttp.ClientResponse:
        if ip not in sessions:
            sessions[ip] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)))
        headers = ({"Authorization": f"Bearer {key}"} if key else {}) | kw.pop("headers", {})
        resp = await sessions[ip].request(method, f"http://127.0.0.1:{server.port}{path}", headers=headers, **kw)
        await resp.read()
        return resp

    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"http://127.0.0.1:{server.port}/admin/accounts", json={"name": "acme"},
                               headers=ADMIN)
        key = (await resp.json())["api_key"]
    yield {"call": call, "clock": clock, "key": key, "url": f"http://127.0.0.1:{server.port}"}
    for session in sessions.values():
        await session.close()


async def _code(resp: aiohttp.ClientResponse) -> tuple[int, str | None]:
    body = await resp.json()
    return resp.status, body.get("error", {}).get("code")


async def test_repeated_failures_from_one_client_are_slowed_down(limited):
    call, clock, key = limited["call"], limited["clock"], limited["key"]
    for wrong in ("gk_wrong1", "gk_wrong2", None):
        assert await _code(await call("127.0.0.2", "GET", "/v1/account", wrong)) in (
            (401, "invalid_api_key"), (401, "missing_api_key"))
    resp = await call("127.0.0.2", "GET", "/v1/account", "gk_wrong3")
    assert await _code(resp) == (429, "too_many_auth_failures")
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "try again" in (await resp.json())["error"]["message"]
    assert await _code(await call("127.0.0.2", "GET", "/v1/account")) == (429, "too_many_auth_failures")
    # valid credentials from that same client are never refused: its API key, the operator's calls
    assert (await call("127.0.0.2", "GET", "/v1/account", key)).status == 200
    assert (await call("127.0.0.2", "GET", "/admin/accounts", "op_test_token")).status == 200
    # other clients are not slowed down, and public routes stay open
    assert await _code(await call("127.0.0.3", "GET", "/v1/account", "gk_wrong1")) == (401, "invalid_api_key")
    assert (await call("127.0.0.2", "GET", "/healthz")).status == 200
    # Retry-After counts down; when the window has room again the client may try again
    clock.now += 30
    assert 1 <= int((await call("127.0.0.2", "GET", "/v1/account", "gk_wrong5")).headers["Retry-After"]) <= 30
    clock.now += 31
    assert await _code(await call("127.0.0.2", "GET", "/v1/account", "gk_wrong4")) == (401, "invalid_api_key")


async def test_the_operators_cli_works_from_a_throttled_address(limited):
    from tests.gateway.cli.test_cli import invoke

    for wrong in ("gk_a", "gk_b", "gk_c", "gk_d"):
        await limited["call"]("127.0.0.1", "GET", "/v1/account", wrong)
    assert await _code(await limited["call"]("127.0.0.1", "GET", "/v1/account", "gk_e")) == (
        429, "too_many_auth_failures")
    code, out = await invoke("--json", "accounts", "list", url=limited["url"])
    assert code == 0 and "acme" in out, out


async def test_forwarded_for_counts_only_from_trusted_proxies(limited):
    call, key = limited["call"], limited["key"]

    def via(*hops: str) -> dict[str, dict[str, str]]:
        return {"headers": {"X-Forwarded-For": ", ".join(hops)}}

    # a client cannot escape the limit by writing X-Forwarded-For itself
    for i in range(3):
        await call("127.0.0.2", "GET", "/v1/account", "gk_wrong", **via(f"198.51.100.{i}"))
    resp = await call("127.0.0.2", "GET", "/v1/account", "gk_other", **via("198.51.100.9"))
    assert await _code(resp) == (429, "too_many_auth_failures")
    # behind the trusted proxy, the right-most address that is no proxy is the client; what it wrote left of it
    # does not matter
    for i in range(3):
        resp = await call("127.0.0.100", "GET", "/v1/account", f"gk_w{i}", **via(f"192.0.2.{i}", "203.0.113.5"))
        assert await _code(resp) == (401, "invalid_api_key")
    resp = await call("127.0.0.100", "GET", "/v1/account", "gk_w9", **via("192.0.2.99", "203.0.113.5", "10.1.1.1"))
    assert await _code(resp) == (429, "too_many_auth_failures")
    # other clients behind the same proxy are not slowed down, and the throttled one's valid key passes
    resp = await call("127.0.0.100", "GET", "/v1/account", "gk_w0", **via("203.0.113.6"))
    assert await _code(resp) == (401, "invalid_api_key")
    assert (await call("127.0.0.100", "GET", "/v1/account", key, **via("203.0.113.5"))).status == 200


async def test_a_wrong_key_tried_from_many_clients_is_slowed_down(limited):
    call, key = limited["call"], limited["key"]
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert await _code(await call(ip, "GET", "/v1/account", "gk_revoked_key_of_someone")) == (
            401, "invalid_api_key")
    resp = await call("127.0.0.5", "GET", "/v1/account", "gk_revoked_key_of_someone")
    assert await _code(resp) == (429, "too_many_auth_failures") and int(resp.headers["Retry-After"]) >= 1
    # a valid key is never refused because of others' failures, even from that same client
    assert (await call("127.0.0.5", "GET", "/v1/account", key)).status == 200
    assert (await call("127.0.0.6", "GET", "/v1/account", key)).status == 200


async def test_operator_token_guesses_count_too(limited):
    call = limited["call"]
    for guess in ("op_a", "op_b", "op_c"):
        assert await _code(await call("127.0.0.7", "POST", "/admin/accounts", guess, json={"name": "x"})) == (
            401, "invalid_operator_token")
    resp = await call("127.0.0.7", "POST", "/admin/accounts", "op_d", json={"name": "x"})
    assert await _code(resp) == (429, "too_many_auth_failures")
    assert (await call("127.0.0.7", "POST", "/admin/accounts", "op_test_token", json={"name": "x"})).status == 201


def test_limit_zero_turns_it_off():
    failures = middleware.AuthFailures(0, 60)
    for _ in range(100):
        failures.failed("ip:1")
    assert failures.retry_after("ip:1") is None


async def test_the_carriers_view_and_the_status_are_the_operators(api):
    """GET /admin/carriers (binds and health) and GET /admin/status (binds, queue, peers) answer the operator token
    only, never an account's key."""
    customer = await new_customer(api, api.sessionmaker, "acme")
    for path in ("/admin/carriers", "/admin/status"):
        for headers in ({}, customer.headers):
            resp = await api.get(path, headers=headers)
            assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_operator_token"), path
    resp = await api.get("/admin/carriers", headers=ADMIN)
    [sim] = (await resp.json())["carriers"]
    assert resp.status == 200 and (sim["name"], sim["binds"], sim["health"]["state"]) == ("sim", None, "healthy")
    resp = await api.get("/admin/status", headers=ADMIN)
    body = await resp.json()
    assert resp.status == 200 and body["instance"]["id"] == api.app[app_keys.DISPATCHER].instance_id
    assert [c["name"] for c in body["carriers"]] == ["sim"]
