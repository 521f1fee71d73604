"""The HTTP API through the real app: authentication, validation errors, idempotency, OpenAPI coverage."""

from __future__ import annotations

import asyncio

import pytest

from carriers.loopback import LoopbackCarrier
from gateway.api.app import create_app
from gateway.api.openapi import document
from tests.conftest import ADMIN, new_customer, wait_for


@pytest.fixture
async def api(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim")
    client = await aiohttp_client(create_app(migrated, carriers=[carrier]))
    client.carrier = carrier
    client.sessionmaker = sessionmaker
    return client


@pytest.fixture
async def customer(api):
    return await new_customer(api, api.sessionmaker, "acme")


async def test_send_and_read_delivered(api, customer):
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "hi"}, headers=customer.headers)
    assert resp.status == 202
    sent = await resp.json()
    assert sent["status"] == "queued" and sent["id"].startswith("msg_")
    assert sent["from"] == "12345" and sent["to"] == "+14155550123"
    assert (sent["encoding"], sent["segments"]) == ("gsm7", 1)

    async def delivered() -> bool:
        got = await (await api.get(f"/v1/messages/{sent['id']}", headers=customer.headers)).json()
        return got["status"] == "delivered"

    await wait_for(delivered)
    got = await (await api.get(f"/v1/messages/{sent['id']}", headers=customer.headers)).json()
    assert got["carrier_message_id"] and got["sent_at"] and got["done_at"]
    assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]


@pytest.mark.parametrize("to", ["(415) 555-0123", "+1 415\u2013555\u20110123", "\uff0b1 (415) 555.0123", "415/555-0123",
                                "+1 415 555 012\uff13"])  # dashes, plus and digits as pasted from documents
async def test_national_number_is_normalized_to_e164(api, customer, to):
    resp = await api.post("/v1/messages", json={"to": to, "body": "hi"}, headers=customer.headers)
    assert resp.status == 202
    assert (await resp.json())["to"] == "+14155550123"


@pytest.mark.parametrize("headers, code", [
    ({}, "missing_api_key"),
    ({"Authorization": "Bearer gk_not_a_key"}, "invalid_api_key"),
    ({"Authorization": "Basic abc"}, "missing_api_key"),
])
async def test_401_without_a_valid_key(api, headers, code):
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "hi"}, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == code


async def test_admin_routes_need_the_operator_token(api, customer):
    resp = await api.post("/admin/accounts", json={"name": "x"}, headers=customer.headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_operator_token"


@pytest.mark.parametrize("raw, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b'{"to": "+14155550123", "body": "x", "colour": "red"}', 400, "unknown_field"),
    (b'{"body": "x"}', 422, "missing_field"),
    (b'{"to": "+14155550123"}', 422, "missing_field"),
    (b'{"to": 14155550123, "body": "x"}', 422, "invalid_field"),
    (b'{"to": "12", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "not a number", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "+14155550123", "body": ""}', 422, "empty_body"),
    (b'{"to": "+14155550123", "body": " \\n\\t "}', 422, "empty_body"),
    (b'{"to": "+14155550123", "body": "\\u3000\\u00a0"}', 422, "empty_body"),  # ideographic, no-break space
    (b'{"to": "+1415555abcd", "body": "x"}', 422, "invalid_destination"),  # not keypad digits: +14155552223
    (b'{"to": "1-415-555-ABCD", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "+14155550123 ext. 12", "body": "x"}', 422, "invalid_destination"),  # not the number without it
    (b'{"to": "+14155550123;ext=12", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "+14155550123 x12", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "+14155550123#12", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "tel:+14155550123", "body": "x"}', 422, "invalid_destination"),
    (b'{"to": "+1415555*0123", "body": "x"}', 422, "invalid_destination"),  # phonenumbers drops the '*'
    (b'{"to": "+14155550123", "body": "x", "from": "+1415555wxyz"}', 422, "invalid_from"),
    (b'{"to": "+14155550123", "body": "x", "ttl": 2}', 422, "invalid_field"),
    (b'{"to": "+14155550123", "body": "x", "ttl": "soon"}', 422, "invalid_field"),
    (b'{"to": "+14155550123", "body": "x", "dry_run": "yes"}', 422, "invalid_field"),
    (b'{"to": "+14155550123", "body": "x", "status_callback": "ftp://x"}', 422, "invalid_field"),
    (b'{"to": "+14155550123", "body": "x", "from": "+14155550999"}', 422, "invalid_from"),
])
async def test_bad_input_gets_a_stable_code(api, customer, raw, status, code):
    resp = await api.post("/v1/messages", data=raw, headers={**customer.headers, "Content-Type": "application/json"})
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    listing = await (await api.get("/v1/messages", headers=customer.headers)).json()
    assert listing["messages"] == [] and api.carrier.sent == []  # nothing stored, nothing sent


async def test_too_long_bodies(api, customer):
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "a" * 1601}, headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "body_too_long")
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "é" * 1600}, headers=customer.headers)
    assert resp.status == 202  # é is GSM-7
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "ж" * 631}, headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "body_too_long")


async def test_account_without_numbers(api):
    bare = await new_customer(api, api.sessionmaker, "bare", numbers=())
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"}, headers=bare.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "no_sending_number")


async def test_another_accounts_message_is_404(api, customer):
    other = await new_customer(api, api.sessionmaker, "other", numbers=(("54321", "short_code"),))
    sent = await (await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"},
                                 headers=customer.headers)).json()
    resp = await api.get(f"/v1/messages/{sent['id']}", headers=other.headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "message_not_found"
    listing = await (await api.get("/v1/messages", headers=other.headers)).json()
    assert listing["messages"] == []


async def test_from_must_be_the_accounts_own_number(api, customer):
    await new_customer(api, api.sessionmaker, "other", numbers=(("54321", "short_code"),))
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x", "from": "54321"},
                          headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_from")
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x", "from": "12345"},
                          headers=customer.headers)
    assert resp.status == 202


async def test_idempotency_key_returns_the_same_message(api, customer):
    headers = {**customer.headers, "Idempotency-Key": "order-42"}
    first = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"}, headers=headers)
    second = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"}, headers=headers)
    assert (first.status, second.status) == (202, 200)
    assert (await first.json())["id"] == (await second.json())["id"]
    listing = await (await api.get("/v1/messages", headers=customer.headers)).json()
    assert len(listing["messages"]) == 1


async def test_idempotency_key_with_another_request_is_refused(api, customer):
    headers = {**customer.headers, "Idempotency-Key": "order-43"}
    first = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"}, headers=headers)
    assert first.status == 202
    again = await api.post("/v1/messages", data='{ "body":"x",  "to":"+14155550123" }',  # the same, written otherwise
                           headers={**headers, "Content-Type": "application/json"})
    assert (again.status, (await again.json())["id"]) == (200, (await first.json())["id"])
    for body in ({"to": "+14155550124", "body": "x"}, {"to": "+14155550123", "body": "y"},
                 {"to": "+14155550123", "body": "x", "channel": "sms"}, {"to": "+14155550123", "body": "x", "ttl": 60},
                 {"to": "+14155550123", "body": "x", "dry_run": True}):
        resp = await api.post("/v1/messages", json=body, headers=headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (422, "idempotency_key_reused"), body
    listing = await (await api.get("/v1/messages", headers=customer.headers)).json()
    assert len(listing["messages"]) == 1 and len(api.carrier.sent) <= 1


async def test_batch_idempotency_key_checks_each_message(api, customer):
    headers = {**customer.headers, "Idempotency-Key": "batch-1"}
    items = [{"to": "+14155550123", "body": "a"}, {"to": "+14155550124", "body": "b"}]
    first = await (await api.post("/v1/messages/batch", json={"messages": items}, headers=headers)).json()
    items[1]["body"] = "changed"
    again = await (await api.post("/v1/messages/batch", json={"messages": items}, headers=headers)).json()
    assert (again["results"][0]["status_code"], again["results"][0]["message"]["id"]) == (
        200, first["results"][0]["message"]["id"])
    assert (again["results"][1]["status_code"], again["results"][1]["error"]["code"]) == (422, "idempotency_key_reused")
    listing = await (await api.get("/v1/messages", headers=customer.headers)).json()
    assert len(listing["messages"]) == 2


async def test_dry_run_validates_without_sending(api, customer):
    resp = await api.post("/v1/messages", json={"to": "+14155550123", "body": "x" * 200, "dry_run": True},
                          headers=customer.headers)
    assert resp.status == 200
    body = await resp.json()
    assert (body["status"], body["segments"], body["id"]) == ("dry_run", 2, None)
    resp = await api.post("/v1/messages/batch", json={"messages": [{"to": "+14155550123", "body": "x",
                                                                    "dry_run": True}]}, headers=customer.headers)
    assert (await resp.json())["results"][0]["error"]["code"] == "invalid_field"  # a batch has no dry run
    listing = await (await api.get("/v1/messages", headers=customer.headers)).json()
    assert listing["messages"] == [] and api.carrier.sent == []


async def test_list_is_paged(api, customer):
    ids = []
    for i in range(5):
        ids.append((await (await api.post("/v1/messages", json={"to": "+14155550123", "body": f"m{i}"},
                                          headers=customer.headers)).json())["id"])
    page1 = await (await api.get("/v1/messages?limit=2", headers=customer.headers)).json()
    assert [m["id"] for m in page1["messages"]] == ids[::-1][:2]
    page2 = await (await api.get(f"/v1/messages?limit=2&before={page1['next']}", headers=customer.headers)).json()
    assert [m["id"] for m in page2["messages"]] == ids[::-1][2:4]
    resp = await api.get("/v1/messages?limit=abc", headers=customer.headers)
    assert (await resp.json())["error"]["code"] == "invalid_query"


async def test_unknown_route_and_method_answer_json(api, customer):
    resp = await api.get("/v1/nothing-here", headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    resp = await api.delete("/v1/messages", headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (405, "method_not_allowed")


async def test_health_and_readiness(api):
    assert (await (await api.get("/healthz")).json()) == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": True, "carrier": True}
    await api.carrier.close()  # no carrier bound: not ready
    assert (await api.get("/readyz")).status == 503


async def test_openapi_documents_every_route(api):
    doc = await (await api.get("/openapi.json")).json()
    assert doc == document()
    missing = []
    for resource in api.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path == "/console" or path.startswith("/console/"):  # the operator's HTML pages are no API
            continue
        for route in resource:
            if route.method in {"HEAD", "OPTIONS"}:
                continue
            if route.method.lower() not in doc["paths"].get(path, {}):
                missing.append(f"{route.method} {path}")
    assert missing == [], f"routes missing from /openapi.json: {missing}"


async def test_accounts_admin(api):
    resp = await api.post("/admin/accounts", json={"name": "dup"}, headers=ADMIN)
    assert resp.status == 201
    key = (await resp.json())["api_key"]
    assert key.startswith("gk_")
    resp = await api.post("/admin/accounts", json={"name": "dup"}, headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "account_exists")
    resp = await api.post("/admin/accounts", json={"name": ""}, headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_field")
    names = [a["name"] for a in (await (await api.get("/admin/accounts", headers=ADMIN)).json())["accounts"]]
    assert "dup" in names


async def test_api_keys_are_stored_hashed(api, customer):
    from sqlalchemy import select

    from registry.models import ApiKey

    async with api.sessionmaker() as session:
        stored = (await session.scalars(select(ApiKey.key_hash))).all()
    assert customer.key not in stored
    assert all(len(h) == 64 for h in stored)


async def test_batch_refuses_letters_and_blank_bodies_each_on_its_own(api, customer):
    items = [{"to": "+1415555abcd", "body": "a"}, {"to": "+14155550123", "body": "  "},
             {"to": "+14155550123;ext=5", "body": "c"}, {"to": "+14155550123", "body": "d"}]
    resp = await api.post("/v1/messages/batch", json={"messages": items}, headers=customer.headers)
    got = await resp.json()
    assert [r.get("error", {}).get("code") for r in got["results"]] == [
        "invalid_destination", "empty_body", "invalid_destination", None]
    assert got["accepted"] == 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/inbound", "/v1/opt-outs", "/v1/webhooks/deliveries",
                                  "/admin/accounts/{account}/inbound", "/admin/accounts/{account}/opt-outs"])
@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=-99999999999999999999"])
async def test_list_limit_below_one_is_refused(api, customer, path, query):
    headers = ADMIN if path.startswith("/admin") else customer.headers
    resp = await api.get(f"{path.format(account=customer.account_id)}?{query}", headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_query")


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/webhooks/deliveries"])
@pytest.mark.parametrize("status", ["bogus", "QUEUED", "dry_run", ""])
async def test_list_unknown_status_is_refused(api, customer, path, status):
    resp = await api.get(path, params={"status": status}, headers=customer.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_query")


async def test_list_filters_read_phone_numbers(api, customer):
    sent = await (await api.post("/v1/messages", json={"to": "+14155550123", "body": "x"},
                                 headers=customer.headers)).json()
    for to in ("+14155550123", "(415) 555-0123"):
        got = await (await api.get("/v1/messages", params={"to": to, "limit": "1000"}, headers=customer.headers)).json()
        assert [m["id"] for m in got["messages"]] == [sent["id"]]
    for path, name in [("/v1/messages", "to"), ("/v1/inbound", "from"), ("/v1/inbound", "to"),
                       ("/v1/opt-outs", "phone")]:
        resp = await api.get(path, params={name: "+1415555abcd"}, headers=customer.headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_query"), (path, name)
    resp = await api.get("/v1/inbound", params={"to": "12345", "from": "(415) 555-0123"}, headers=customer.headers)
    assert (resp.status, (await resp.json())["inbound"]) == (200, [])  # a short code is a number too


async def test_opt_outs_refuse_letters_and_extensions_and_total_honours_filters(api, customer):
    h = customer.headers
    for phone in ("+1415555abcd", "+14155550121 ext. 9", "+14155550121;ext=9"):
        resp = await api.post("/v1/opt-outs", json={"phone": phone}, headers=h)
        assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_phone"), phone
    resp = await api.delete("/v1/opt-outs/%2B14155550121%3Bext%3D9", headers=h)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "invalid_phone")
    csv = "phone,list\n+14155550121,a\n+1415555abcd,a\n+14155550122 x7,a\n+14155550122,a\n+14155550123,a\n"
    got = await (await api.post("/v1/opt-outs/import", data=csv.encode(), headers=h)).json()
    assert (got["added"], [(e["line"], e["error"]) for e in got["errors"]]) == (3, [(3, "invalid_phone"),
                                                                                   (4, "invalid_phone")])
    for phone in ("+14155550124", "+14155550125"):
        assert (await api.post("/v1/opt-outs", json={"phone": phone}, headers=h)).status == 201
    for query, total, rows in [("", 5, 5), ("list=a", 3, 3), ("list=a&limit=1", 3, 1), ("list=default", 2, 2),
                               ("phone=(415) 555-0121", 1, 1), ("list=default&phone=%2B14155550121", 0, 0)]:
        got = await (await api.get(f"/v1/opt-outs?{query}", headers=h)).json()
        assert (got["total"], len(got["opt_outs"])) == (total, rows), query


async def test_key_lookups_in_flight_are_shared(migrated):
    """When the cache has expired, the requests in flight with one key make one query, not one each; a bad key is
    refused to all of them; a lookup begun before forget() (a key revoked) is answered but not cached."""
    from sqlalchemy import event

    from gateway.errors import Unauthorized
    from gateway.store.accounts import KeyAuthenticator, create_account
    from gateway.store.db import create_engine, create_sessionmaker

    engine = create_engine(migrated.database_url)
    queries: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: queries.append(statement) if "api_keys" in statement else None)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            account, key = await create_account(session, "acme")
        queries.clear()
        auth = KeyAuthenticator(sessionmaker, cache_seconds=0.0)
        assert await asyncio.gather(*(auth.account_id(key) for _ in range(20))) == [account.id] * 20
        assert len(queries) == 1
        refused = await asyncio.gather(*(auth.account_id("gk_nope") for _ in range(5)), return_exceptions=True)
        assert all(isinstance(e, Unauthorized) for e in refused) and len(queries) == 2
        # afterwards a new lookup is made (nothing stays in flight)
        assert await auth.account_id(key) == account.id and len(queries) == 3

        cached = KeyAuthenticator(sessionmaker, cache_seconds=600.0)
        lookup = asyncio.ensure_future(cached.account_id(key))
        await asyncio.sleep(0)
        cached.forget()
        assert await lookup == account.id
        assert await cached.account_id(key) == account.id and len(queries) == 5  # forgotten: looked up again
    finally:
        await engine.dispose()
