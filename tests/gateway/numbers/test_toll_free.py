"""Toll-free verification over real HTTP, on a real SQLite database, SMS through the SMPP simulator: the request's
whole lifecycle (submitted, in review, rejected, resubmitted, verified) with its history; the gate (SMS from a
toll-free number refused until it is verified, then delivered; the automatic choice of number skipping unverified
ones); bad input answered with stable codes; the operator's gatewayctl commands."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.sending import origination
from registry.models import Number
from tests.conftest import ADMIN, TOLL_FREE_REQUEST, new_customer, wait_for
from tests.gateway.cli.test_cli import invoke

TF1, TF2, TF3 = "+18885550100", "+18885550101", "+18885550102"
TO = "+14155550123"


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    client = await aiohttp_client(create_app(migrated))
    client.sm, client.sim = sessionmaker, sim
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


async def call(gw, method: str, path: str, who=None, expect: int | None = None, **kw) -> dict:
    resp = await gw.request(method, path, headers=(who.headers if who is not None else ADMIN), **kw)
    data = await resp.json()
    if expect is not None:
        assert resp.status == expect, data
    return data


def request_for(*numbers: str, **changes) -> dict:
    return {**TOLL_FREE_REQUEST, "numbers": list(numbers), **changes}


async def refused(gw, c, code: str, **body) -> dict:
    resp = await gw.post("/v1/messages", json={"to": TO, "body": "Your code is 123456", **body}, headers=c.headers)
    data = await resp.json()
    assert (resp.status, data["error"]["code"]) == (409, code), data
    return data["error"]


async def test_the_whole_lifecycle(gw):
    c = await new_customer(gw, gw.sm, "acme", numbers=((TF1, "toll_free"), (TF2, "toll_free")))
    base = "/v1/toll-free-verifications"
    number = await call(gw, "GET", f"/v1/numbers/%2B{TF1[1:]}/toll-free-verification", c, 200)
    assert (number["status"], number["sms_allowed"], number["verification"]) == ("none", False, None)

    made = await call(gw, "POST", base, c, 201, json=request_for(TF1, TF2))
    vid = made["id"]
    assert (made["status"], made["numbers"], made["account_id"]) == ("submitted", [TF1, TF2], c.account_id)
    assert made["address"]["city"] == "Springfield" and made["contact"]["phone"] == "+14155550199"
    assert made["opt_in_image_urls"] == ["https://acme.example/opt-in.png"] and made["monthly_volume"] == 1000
    assert (await call(gw, "GET", base, c, 200))["toll_free_verifications"][0]["id"] == vid
    waiting = await call(gw, "GET", "/admin/toll-free-verifications?status=submitted", expect=200)
    assert [v["id"] for v in waiting["toll_free_verifications"]] == [vid]

    assert (await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/start-review", expect=200))["status"] == \
        "in_review"
    assert (await call(gw, "GET", f"/v1/numbers/%2B{TF2[1:]}/toll-free-verification", c, 200))["status"] == \
        "in_review"
    reason = "The opt-in image does not show the consent wording."
    rejected = await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/reject", expect=200,
                          json={"reason": reason})
    assert (rejected["status"], rejected["rejection_reason"]) == ("rejected", reason)
    mine = await call(gw, "GET", f"{base}/{vid}", c, 200)
    assert (mine["status"], mine["rejection_reason"]) == ("rejected", reason)

    # edited (one field, and one number fewer) and submitted again
    again = await call(gw, "POST", f"{base}/{vid}/resubmit", c, 200,
                       json={"opt_in_image_urls": ["https://acme.example/opt-in-v2.png"], "numbers": [TF1]})
    assert (again["status"], again["rejection_reason"], again["numbers"]) == ("submitted", None, [TF1])
    assert again["opt_in_image_urls"] == ["https://acme.example/opt-in-v2.png"]
    assert again["business_name"] == "Acme Inc"  # what was not given stays
    assert (await call(gw, "GET", f"/v1/numbers/%2B{TF2[1:]}/toll-free-verification", c, 200))["status"] == "none"
    await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/start-review", expect=200)
    verified = await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/verify", expect=200)
    assert verified["status"] == "verified"
    number = await call(gw, "GET", f"/v1/numbers/%2B{TF1[1:]}/toll-free-verification", c, 200)
    assert (number["status"], number["sms_allowed"], number["verification"]["id"]) == ("verified", True, vid)

    shown = await call(gw, "GET", f"/admin/toll-free-verifications/{vid}", expect=200)
    actor = f"account {c.account_id}"
    assert [(h["from"], h["to"], h["actor"], h["reason"]) for h in shown["history"]] == [
        (None, "submitted", actor, None), ("submitted", "in_review", "operator", None),
        ("in_review", "rejected", "operator", reason), ("rejected", "submitted", actor, "edited and resubmitted"),
        ("submitted", "in_review", "operator", None), ("in_review", "verified", "operator", None)]
    assert all(h["at"].endswith("Z") for h in shown["history"])
    assert (await call(gw, "GET", f"{base}/{vid}", c, 200))["history"] == shown["history"]


async def test_sms_from_a_toll_free_number_waits_for_its_verification(gw):
    """Refused (stored blocked, with its event) while none, submitted, in review or rejected, and a dry run or a
    batch no differently; delivered through the simulator once verified."""
    c = await new_customer(gw, gw.sm, "acme", numbers=((TF1, "toll_free"),))
    error = await refused(gw, c, "toll_free_not_verified")
    assert error["details"]["verification_status"] == "none" and "POST /v1/toll-free-verifications" in \
        error["message"]
    blocked = await call(gw, "GET", f"/v1/messages/{error['details']['message_id']}", c, 200)
    assert (blocked["status"], blocked["from"], blocked["error_code"]) == ("blocked", TF1, "toll_free_not_verified")
    assert blocked["events"][-1]["type"] == "TEXT_BLOCKED"
    vid = (await call(gw, "POST", "/v1/toll-free-verifications", c, 201, json=request_for(TF1)))["id"]
    assert (await refused(gw, c, "toll_free_not_verified", **{"from": TF1}))["details"]["verification_status"] == \
        "submitted"
    await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/start-review", expect=200)
    dry = await refused(gw, c, "toll_free_not_verified", dry_run=True)
    assert dry["details"]["verification_status"] == "in_review" and "message_id" not in dry["details"]
    await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/reject", expect=200, json={"reason": "No opt-in."})
    assert "resubmit" in (await refused(gw, c, "toll_free_not_verified"))["message"]
    batch = await call(gw, "POST", "/v1/messages/batch", c, 200, json={"messages": [{"to": TO, "body": "hi"}]})
    assert (batch["accepted"], batch["results"][0]["error"]["code"]) == (0, "toll_free_not_verified")
    assert gw.sim.received == []  # nothing reached the carrier

    await call(gw, "POST", f"/v1/toll-free-verifications/{vid}/resubmit", c, 200)
    await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/start-review", expect=200)
    await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/verify", expect=200)
    sent = await call(gw, "POST", "/v1/messages", c, 202, json={"to": TO, "body": "Your code is 123456"})
    assert sent["from"] == TF1

    async def delivered() -> bool:
        return (await call(gw, "GET", f"/v1/messages/{sent['id']}", c))["status"] == "delivered"

    await wait_for(delivered, timeout=10)
    assert [(s.source, s.destination) for s in gw.sim.received] == [(TF1, TO)]


async def test_the_automatic_choice_skips_unverified_toll_free_numbers(gw):
    c = await new_customer(gw, gw.sm, "acme", numbers=((TF1, "toll_free"), (TF2, "toll_free")))
    vid = (await call(gw, "POST", "/v1/toll-free-verifications", c, 201, json=request_for(TF2)))["id"]
    for action in ("start-review", "verify"):
        await call(gw, "POST", f"/admin/toll-free-verifications/{vid}/{action}", expect=200)
    recipients = [f"+1415555{n:04d}" for n in range(120, 140)]
    both = [Number(number=TF1), Number(number=TF2)]
    assert {origination.sticky(both, to).number for to in recipients} == {TF1, TF2}  # were both verified
    sources = {(await call(gw, "POST", "/v1/messages", c, 200, json={"to": to, "body": "hi", "dry_run": True}))["from"]
               for to in recipients}
    assert sources == {TF2}
    await refused(gw, c, "toll_free_not_verified", **{"from": TF1})  # named, it is refused
    # the route test says what a send would do
    test = await call(gw, "POST", "/admin/routes/test", expect=200, json={"to": TO, "account_id": c.account_id})
    assert test["from"] == TF2


async def test_bad_input_is_answered_with_stable_codes(gw):
    c = await new_customer(gw, gw.sm, "acme", numbers=((TF1, "toll_free"), (TF2, "toll_free"), ("12345", "short_code")))
    other = await new_customer(gw, gw.sm, "other", numbers=((TF3, "toll_free"),))
    base = "/v1/toll-free-verifications"
    cases = [
        ({k: v for k, v in request_for(TF1).items() if k != "website"}, 422, "missing_field", "website"),
        (request_for(), 422, "invalid_field", "numbers"),
        (request_for(TF1, website="acme"), 422, "invalid_field", "website"),
        (request_for(TF1, use_case="BITCOIN"), 422, "invalid_field", "use_case"),
        (request_for(TF1, use_case="two_factor_authentication"), 422, "invalid_field", "use_case"),
        (request_for(TF1, monthly_volume=1234), 422, "invalid_field", "monthly_volume"),
        (request_for(TF1, opt_in_type="SMOKE_SIGNAL"), 422, "invalid_field", "opt_in_type"),
        (request_for(TF1, use_case_summary="OTP"), 422, "invalid_field", "use_case_summary"),
        (request_for(TF1, opt_in_workflow="   "), 422, "invalid_field", "opt_in_workflow"),
        (request_for(TF1, opt_in_image_urls=[]), 422, "invalid_field", "opt_in_image_urls"),
        (request_for(TF1, opt_in_image_urls=["ftp://acme.example/x.png"]), 422, "invalid_field",
         "opt_in_image_urls"),
        (request_for(TF1, sample_messages=["x" * 1025]), 422, "invalid_field", "sample_messages"),
        (request_for(TF1, address="1 Main St"), 422, "invalid_field", "address"),
        (request_for(TF1, address={**TOLL_FREE_REQUEST["address"], "country": "USA"}), 422, "invalid_field",
         "address.country"),
        (request_for(TF1, address={k: v for k, v in TOLL_FREE_REQUEST["address"].items() if k != "city"}), 422,
         "missing_field", "address.city"),
        (request_for(TF1, contact={**TOLL_FREE_REQUEST["contact"], "email": "ada"}), 422, "invalid_field",
         "contact.email"),
        (request_for(TF1, contact={**TOLL_FREE_REQUEST["contact"], "phone": "12"}), 422, "invalid_phone",
         "contact.phone"),
        (request_for("+1415555abcd"), 422, "invalid_phone", "numbers"),
        (request_for(TF3), 422, "number_not_owned", "numbers"),  # another account's
    ]
    for body, status, code, field in cases:
        got = await call(gw, "POST", base, c, status, json=body)
        assert (got["error"]["code"], got["error"]["details"]["field"]) == (code, field), (body, got)
        assert got["error"]["message"]
    got = await call(gw, "POST", base, c, 400, json=request_for(TF1, colour="red"))
    assert got["error"]["code"] == "unknown_field"
    got = await call(gw, "POST", base, c, 400, json=request_for(TF1, contact={**TOLL_FREE_REQUEST["contact"], "x": 1}))
    assert got["error"]["details"]["fields"] == ["contact.x"]
    assert (await call(gw, "POST", base, c, 422, json=request_for("12345")))["error"]["code"] == \
        "number_not_toll_free"
    assert (await call(gw, "GET", base, c, 200))["toll_free_verifications"] == []  # none of that stored

    vid = (await call(gw, "POST", base, c, 201, json=request_for(TF1)))["id"]
    taken = await call(gw, "POST", base, c, 409, json=request_for(TF2, TF1))
    assert taken["error"]["code"] == "toll_free_number_in_request" and f"request {vid}" in taken["error"]["message"]
    review = "/admin/toll-free-verifications"
    illegal = [(f"{base}/{vid}/resubmit", c, {}, 409, "verification_not_rejected"),
               (f"{review}/{vid}/verify", None, {}, 409, "verification_not_in_review"),
               (f"{review}/{vid}/reject", None, {"reason": "no"}, 409, "verification_not_in_review")]
    for path, who, body, status, code in illegal:
        assert (await call(gw, "POST", path, who, status, json=body))["error"]["code"] == code, path
    await call(gw, "POST", f"{review}/{vid}/start-review", expect=200)
    assert (await call(gw, "POST", f"{review}/{vid}/start-review", expect=409))["error"]["code"] == \
        "verification_not_submitted"
    assert (await call(gw, "POST", f"{review}/{vid}/reject", expect=422, json={"reason": " "}))["error"]["code"] == \
        "missing_reason"
    assert (await call(gw, "POST", f"{review}/{vid}/reject", expect=422))["error"]["code"] == "missing_reason"
    await call(gw, "POST", f"{review}/{vid}/verify", expect=200)
    assert (await call(gw, "POST", f"{review}/{vid}/reject", expect=409, json={"reason": "late"}))["error"]["code"] \
        == "verification_not_in_review"
    assert (await call(gw, "GET", f"{base}/{vid}", c))["status"] == "verified"  # unchanged by all that

    # another account's request, a missing one, a number that is not toll-free, a bad filter
    for path, who, status, code in [(f"{base}/{vid}", other, 404, "toll_free_verification_not_found"),
                                    (f"{base}/{vid}/resubmit", other, 404, "toll_free_verification_not_found"),
                                    (f"{review}/99999", None, 404, "toll_free_verification_not_found"),
                                    (f"{review}/x", None, 404, "toll_free_verification_not_found"),
                                    ("/v1/numbers/12345/toll-free-verification", c, 422, "number_not_toll_free"),
                                    (f"/v1/numbers/%2B{TF1[1:]}/toll-free-verification", other, 404,
                                     "number_not_found"),
                                    (f"{base}?status=approved", c, 400, "invalid_query")]:
        method = "POST" if path.endswith("resubmit") else "GET"
        assert (await call(gw, method, path, who, status))["error"]["code"] == code, path


async def test_the_operator_reviews_with_gatewayctl(gw, tmp_path):
    c = await new_customer(gw, gw.sm, "acme", numbers=((TF1, "toll_free"),))
    url = str(gw.make_url("")).rstrip("/")

    async def ctl(*args: str) -> dict:
        code, out = await invoke("--json", *args, url=url)
        assert code == 0, out
        return json.loads(out)

    request = tmp_path / "request.json"
    request.write_text(json.dumps(request_for("+18885550199")))
    made = await ctl("toll-free", "submit", "--account", str(c.account_id), "--file", str(request), "--number", TF1)
    vid = str(made["id"])
    assert (made["status"], made["numbers"]) == ("submitted", [TF1])
    assert [v["id"] for v in (await ctl("toll-free", "list", "--status", "submitted"))["toll_free_verifications"]] \
        == [made["id"]]
    assert (await ctl("toll-free", "review", vid))["status"] == "in_review"
    assert (await ctl("toll-free", "reject", vid, "--reason", "Blurry opt-in image"))["rejection_reason"] == \
        "Blurry opt-in image"
    await call(gw, "POST", f"/v1/toll-free-verifications/{vid}/resubmit", c, 200)
    await ctl("toll-free", "review", vid)
    assert (await ctl("toll-free", "verify", vid))["status"] == "verified"
    code, out = await invoke("toll-free", "show", vid, url=url)
    assert code == 0 and "status: verified" in out and "Springfield, IL 62701, US" in out and "history:" in out
    assert "Blurry opt-in image" in out  # the rejection, in the history
    code, out = await invoke("toll-free", "list", url=url)
    assert code == 0 and "BUSINESS" in out and TF1 in out
    # errors: exit 1 with the code, 2 for bad usage before anything is sent
    code, out = await invoke("toll-free", "verify", vid, url=url)
    assert code == 1 and "verification_not_in_review" in out
    request.write_text("{not json")
    code, out = await invoke("toll-free", "submit", "--account", str(c.account_id), "--file", str(request), url=url)
    assert code == 2 and "is not JSON" in out
    code, out = await invoke("toll-free", "reject", vid, url=url)
    assert code == 2 and "--reason" in out
