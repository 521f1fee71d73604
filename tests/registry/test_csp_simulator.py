"""The registry simulator over real HTTP through CspClient, its events at a real webhook receiver: each API call
and its errors, referenceId idempotency, and the whole 10DLC flow driven by the clock."""

from __future__ import annotations

import aiohttp
import pytest

from registry.csp.client import CspError
from registry.csp.rules import add_business_days, parse_stamp
from tests.registry.csp_fixtures import BRAND, CAMPAIGN, KEY, MONDAY, start_registry


@pytest.fixture
async def reg(aiohttp_server):
    registry, stop = await start_registry(aiohttp_server)
    yield registry
    await stop()


async def _error(call: object) -> CspError:
    with pytest.raises(CspError) as err:
        await call
    return err.value


async def test_bad_or_missing_credentials_are_401(reg):
    async with reg.new_client() as client:
        client._headers = {"Authorization": aiohttp.encode_basic_auth(KEY, "wrong")}
        err = await _error(client.get_brand("B000000"))
    assert (err.code, err.status, err.retryable) == ("UNAUTHORIZED", 401, False)
    async with aiohttp.ClientSession() as http:
        for path in ("/v1/webhook/subscription", "/control/clock", "/dca/v1/orders/O000000"):
            async with http.get(reg.url + path) as resp:
                assert resp.status == 401 and (await resp.json())["code"] == "UNAUTHORIZED"
                assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_brand_registration_answers_at_once_and_its_score_comes_as_an_event(reg):
    brand = await reg.client.register_brand(BRAND | {"referenceId": "acct-1-brand"})
    assert brand["brandId"][0] == "B" and len(brand["brandId"]) == 7 and brand["brandId"].isalnum()
    assert (brand["identityStatus"], brand["brandScore"], brand["cspId"]) == ("UNVERIFIED", None, "SSIM001")
    assert brand["createDate"].startswith("2025-01-06T12:00:") and brand["createDate"].endswith("Z")
    [event] = await reg.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=brand["brandId"])
    score = 50 + sum(int(d) for d in "123456789") % 26
    assert (event["identityStatus"], event["brandScore"], event["eventCategory"]) == ("VERIFIED", score, "BRAND")
    assert event["cspId"] == "SSIM001" and event["eventId"] and isinstance(event["sequence"], int)
    now = await reg.client.get_brand(brand["brandId"])
    assert (now["identityStatus"], now["brandScore"], now["vettingStatus"]) == ("VERIFIED", score, None)
    assert (await reg.client.brand_feedback(brand["brandId"])) == {"brandId": brand["brandId"], "category": []}


async def test_reference_id_makes_registrations_idempotent(reg):
    first = await reg.client.register_brand(BRAND | {"referenceId": "same"})
    again = await reg.client.register_brand(BRAND | {"referenceId": "same", "displayName": "Other"})
    assert again["brandId"] == first["brandId"] and len(reg.state.brands) == 1
    other = await reg.client.register_brand(BRAND | {"referenceId": "different"})
    assert other["brandId"] != first["brandId"]
    await reg.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=first["brandId"])
    body = CAMPAIGN | {"brandId": first["brandId"], "referenceId": "camp-1"}
    campaign = await reg.client.create_campaign(body)
    assert (await reg.client.create_campaign(body))["campaignId"] == campaign["campaignId"]
    assert len(reg.state.campaigns) == 1


async def test_an_ein_starting_000_is_unverified_with_feedback_and_gets_no_campaign(reg):
    brand = await reg.verified_brand(ein="000123456")
    assert (brand["identityStatus"], brand["brandScore"]) == ("UNVERIFIED", 0)
    feedback = await reg.client.brand_feedback(brand["brandId"])
    assert [c["id"] for c in feedback["category"]] == ["TAX_ID"] and "ein" in feedback["category"][0]["fields"]
    err = await _error(reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"]}))
    assert (err.code, err.status, err.retryable) == ("BRAND_NOT_VERIFIED", 400, False)


async def test_a_sole_proprietor_is_self_declared_and_cannot_be_vetted(reg):
    brand = await reg.verified_brand(entityType="SOLE_PROPRIETOR", companyName=None, ein=None, vertical=None)
    assert (brand["identityStatus"], brand["brandScore"]) == ("SELF_DECLARED", 0)
    err = await _error(reg.client.order_vetting(brand["brandId"]))
    assert (err.code, err.status) == ("VETTING_NOT_ALLOWED", 400)
    err = await _error(reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"]}))
    assert err.code == "BRAND_NOT_VERIFIED"
    sole = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"], "usecase": "SOLE_PROPRIETOR"})
    assert sole["status"] == "ACTIVE"


async def test_bad_fields_and_unknown_ids(reg):
    err = await _error(reg.client.register_brand({k: v for k, v in BRAND.items() if k != "email"}))
    assert (err.code, err.status) == ("MISSING_FIELD", 400) and "email" in err.message
    err = await _error(reg.client.register_brand(BRAND | {"entityType": "PIRATE"}))
    assert err.code == "INVALID_FIELD" and "entityType" in err.message
    for call, code in ((reg.client.get_brand("BNOSUCH"), "BRAND_NOT_FOUND"),
                       (reg.client.get_campaign("CNOSUCH"), "CAMPAIGN_NOT_FOUND"),
                       (reg.client.operation_status("CNOSUCH"), "CAMPAIGN_NOT_FOUND"),
                       (reg.client.get_order("ONOSUCH"), "ORDER_NOT_FOUND"),
                       (reg.client.create_campaign(CAMPAIGN | {"brandId": "BNOSUCH"}), "BRAND_NOT_FOUND"),
                       (reg.client.call("GET", "/v1/nothing"), "NOT_FOUND")):
        err = await _error(call)
        assert (err.code, err.status) == (code, 404)
    brand = await reg.verified_brand()
    err = await _error(reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"], "sample2": ""}))
    assert (err.code, err.status) == ("MISSING_FIELD", 400)
    err = await _error(reg.client.call("POST", "/v1/brand/nonBlocking", ["not", "an", "object"]))
    assert (err.code, err.status) == ("INVALID_JSON", 400)


async def test_vetting_raises_the_score_a_business_day_later(reg):
    brand = await reg.verified_brand()
    vetting = await reg.client.order_vetting(brand["brandId"])
    assert vetting["vettingStatus"] == "PENDING" and vetting["vettingId"].startswith("V")
    assert (await _error(reg.client.order_vetting(brand["brandId"]))).code == "VETTING_IN_PROGRESS"
    await reg.client.advance(0.5)  # Tuesday 0:00, not yet a business day later
    assert (await reg.client.get_brand(brand["brandId"]))["vettingStatus"] == "PENDING"
    await reg.client.advance(1)
    bid, score = brand["brandId"], brand["brandScore"]
    await reg.receiver.wait_for(lambda _: len(reg.receiver.of("BRAND_SCORE_UPDATE", brandId=bid)) == 2)
    [vetting_event], score_event = reg.receiver.of("BRAND_VETTING_UPDATE"), reg.receiver.events[-1]
    assert (vetting_event["eventType"], vetting_event["vettingStatus"], vetting_event["eventCategory"]) == (
        "BRAND_VETTING_UPDATE", "ACTIVE", "VETTING")
    assert (score_event["identityStatus"], score_event["brandScore"]) == ("VETTED_VERIFIED", min(100, score + 25))
    assert vetting_event["sequence"] < score_event["sequence"]
    due = add_business_days(parse_stamp(brand["createDate"]), 1)  # dated when it came due, not when advanced
    assert abs((parse_stamp(score_event["createDate"]) - due).total_seconds()) < 60
    assert (await reg.client.get_brand(brand["brandId"]))["identityStatus"] == "VETTED_VERIFIED"


async def test_vetting_fails_for_an_ein_starting_999(reg):
    brand = await reg.verified_brand(ein="999000001")
    await reg.client.order_vetting(brand["brandId"])
    await reg.client.advance(3)
    [event] = await reg.receiver.wait_types("BRAND_VETTING_UPDATE", brandId=brand["brandId"])
    assert (event["vettingStatus"], event["vettingScore"]) == ("FAILED", 0)
    after = await reg.client.get_brand(brand["brandId"])
    assert (after["identityStatus"], after["brandScore"]) == ("VERIFIED", brand["brandScore"])


async def test_update_and_revet_check_the_identity_again(reg):
    brand = await reg.verified_brand(ein="000111111")
    updated = await reg.client.update_brand(brand["brandId"], {"ein": "111111111"})
    assert updated["ein"] == "111111111"
    await reg.receiver.wait_for(lambda evs: any(e.get("identityStatus") == "VERIFIED" for e in evs))
    assert (await reg.client.get_brand(brand["brandId"]))["brandScore"] == 50 + 9 % 26
    await reg.client.revet_brand(brand["brandId"])
    await reg.receiver.wait_for(lambda evs: len(reg.receiver.of("BRAND_SCORE_UPDATE")) == 3)


async def test_the_campaign_flow_sharing_review_and_numbers(reg):
    brand = await reg.verified_brand()
    campaign = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"]})
    cid = campaign["campaignId"]
    assert (campaign["status"], campaign["sharingStatus"], campaign["autoRenewal"]) == ("ACTIVE", None, True)
    assert campaign["expirationDate"][:10] == "2025-04-06" and cid[0] == "C" and len(cid) == 7
    assert await reg.client.operation_status(cid) == {}
    err = await _error(reg.client.associate_numbers(cid, ["+12025550123"], "o-early"))
    assert (err.code, err.status) == ("CAMPAIGN_NOT_SHARED", 409)
    err = await _error(reg.client.share_campaign(cid, "OTHERDCA"))
    assert (err.code, err.status) == ("INVALID_CNP", 400)
    assert (await reg.client.share_campaign(cid, "DCASIM1"))["sharingStatus"] == "PENDING"
    assert (await _error(reg.client.share_campaign(cid, "DCASIM1"))).code == "CAMPAIGN_ALREADY_SHARED"
    await reg.client.advance(1)
    [accept] = await reg.receiver.wait_types("CAMPAIGN_SHARE_ACCEPT", campaignId=cid)
    assert accept["upstreamCnpId"] == "DCASIM1" and accept["eventCategory"] == "CAMPAIGN"
    assert (await reg.client.get_campaign(cid))["sharingStatus"] == "ACCEPTED"
    assert await reg.client.operation_status(cid) == dict.fromkeys(("ATT", "TMOBILE", "VERIZON", "USCELLULAR"),
                                                                   "REVIEW")
    await reg.client.advance(2)  # Thursday: 2 of the 3 business days
    assert set((await reg.client.operation_status(cid)).values()) == {"REVIEW"}
    await reg.client.advance(1)
    await reg.receiver.wait_for(lambda _: len(reg.receiver.of("MNO_CAMPAIGN_OPERATION_APPROVED")) == 4)
    approved = reg.receiver.of("MNO_CAMPAIGN_OPERATION_APPROVED")
    assert [e["mno"] for e in approved] == ["ATT", "TMOBILE", "VERIZON", "USCELLULAR"]
    assert set((await reg.client.operation_status(cid)).values()) == {"APPROVED"}

    order = await reg.client.associate_numbers(cid, ["+12025550123", "+447700900123", "+18005550199"], "ord-1")
    assert order["orderId"][0] == "O" and order["status"] == "PENDING" and order["kind"] == "ASSOCIATE"
    assert (await reg.client.associate_numbers(cid, ["+12025550123"], "ord-1"))["orderId"] == order["orderId"]
    await reg.client.advance(5)  # placed on a Friday: five business days are a week
    assert (await reg.client.get_order(order["orderId"]))["status"] == "PENDING"
    await reg.client.advance(2)
    [update] = await reg.receiver.wait_types("NUMBER_ORDER_UPDATE", orderId=order["orderId"])
    assert (update["status"], update["kind"], update["eventCategory"]) == ("COMPLETED", "ASSOCIATE", "NUMBER")
    statuses = {n["number"]: (n["status"], bool(n["reason"])) for n in update["numbers"]}
    assert statuses == {"+12025550123": ("ASSOCIATED", False), "+447700900123": ("FAILED", True),
                        "+18005550199": ("FAILED", True)}
    assert (await reg.client.get_order(order["orderId"]))["numbers"] == update["numbers"]
    out = await reg.client.disassociate_number(cid, "+12025550123")
    assert (out["kind"], out["status"]) == ("DISASSOCIATE", "PENDING")
    await reg.client.advance(3)  # Friday to Monday
    [gone] = await reg.receiver.wait_types("NUMBER_ORDER_UPDATE", orderId=out["orderId"])
    assert gone["numbers"] == [{"number": "+12025550123", "status": "DISASSOCIATED", "reason": None}]


async def test_a_number_in_another_campaign_fails(reg):
    first = await reg.accepted_campaign()
    second = await reg.accepted_campaign()
    await reg.client.associate_numbers(first["campaignId"], ["+13125550100"], "a")
    await reg.client.advance(7)
    order = await reg.client.associate_numbers(second["campaignId"], ["+13125550100"], "b")
    await reg.client.advance(7)
    [update] = await reg.receiver.wait_types("NUMBER_ORDER_UPDATE", orderId=order["orderId"])
    assert update["status"] == "FAILED" and first["campaignId"] in update["numbers"][0]["reason"]


async def test_the_dca_declines_a_campaign_marked_decline(reg):
    brand = await reg.verified_brand()
    campaign = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"],
                                                            "description": "Notices [decline] please."})
    await reg.client.share_campaign(campaign["campaignId"], "DCASIM1")
    await reg.client.advance(1)
    [event] = await reg.receiver.wait_types("CAMPAIGN_SHARE_DECLINE", campaignId=campaign["campaignId"])
    assert event["upstreamCnpId"] == "DCASIM1"
    assert (await reg.client.get_campaign(campaign["campaignId"]))["sharingStatus"] == "DECLINED"
    await reg.client.advance(10)
    assert await reg.client.operation_status(campaign["campaignId"]) == {}


async def test_carriers_reject_url_shorteners_and_a_reject_tag(reg):
    short = await reg.accepted_campaign(sample2="Track it at https://bit.ly/abc {#var}")
    tagged = await reg.accepted_campaign(description="Account notices for customers [reject:VERIZON].")
    await reg.client.advance(5)
    await reg.receiver.wait_for(lambda evs: sum(e["eventType"].startswith("MNO_") for e in evs) == 8)
    assert await reg.client.operation_status(short["campaignId"]) == {
        "ATT": "REJECTED", "TMOBILE": "REJECTED", "VERIZON": "APPROVED", "USCELLULAR": "APPROVED"}
    assert await reg.client.operation_status(tagged["campaignId"]) == {
        "ATT": "APPROVED", "TMOBILE": "APPROVED", "VERIZON": "REJECTED", "USCELLULAR": "APPROVED"}
    assert {e["mno"] for e in reg.receiver.of("MNO_CAMPAIGN_OPERATION_REJECTED", campaignId=short["campaignId"])} == {
        "ATT", "TMOBILE"}


async def test_a_carrier_suspends_and_unsuspends_through_control(reg):
    campaign = await reg.accepted_campaign()
    cid = campaign["campaignId"]
    await reg.client.advance(5)
    await reg.receiver.wait_for(lambda _: len(reg.receiver.of("MNO_CAMPAIGN_OPERATION_APPROVED")) == 4)
    status = await reg.client.review_campaign(cid, "TMOBILE", "SUSPENDED", "Spam complaints")
    assert status["TMOBILE"] == "SUSPENDED" and status["ATT"] == "APPROVED"
    [event] = await reg.receiver.wait_types("MNO_CAMPAIGN_OPERATION_SUSPENDED", campaignId=cid)
    assert (event["mno"], event["description"]) == ("TMOBILE", "Spam complaints")
    assert (await reg.client.operation_status(cid))["TMOBILE"] == "SUSPENDED"
    assert (await reg.client.review_campaign(cid, "TMOBILE", "UNSUSPENDED"))["TMOBILE"] == "APPROVED"
    await reg.receiver.wait_types("MNO_CAMPAIGN_OPERATION_UNSUSPENDED", campaignId=cid)
    err = await _error(reg.client.review_campaign(cid, "TMOBILE", "UNSUSPENDED"))
    assert (err.code, err.status) == ("NOT_SUSPENDED", 409)
    err = await _error(reg.client.review_campaign(cid, "SPRINT", "SUSPENDED"))
    assert (err.code, err.status) == ("INVALID_FIELD", 400)


async def test_a_manual_review_wins_over_the_automatic_one(reg):
    campaign = await reg.accepted_campaign()
    await reg.client.review_campaign(campaign["campaignId"], "ATT", "REJECTED", "Not compliant")
    await reg.client.advance(5)
    await reg.receiver.wait_for(lambda _: len(reg.receiver.of("MNO_CAMPAIGN_OPERATION_APPROVED")) == 3)
    assert (await reg.client.operation_status(campaign["campaignId"]))["ATT"] == "REJECTED"


async def test_the_operator_reviews_a_brand_through_control(reg):
    brand = await reg.verified_brand()
    answer = await reg.client.review_brand(brand["brandId"], "VETTED_VERIFIED", 91)
    assert (answer["identityStatus"], answer["brandScore"]) == ("VETTED_VERIFIED", 91)
    await reg.receiver.wait_for(lambda _: any(e.get("brandScore") == 91 for e in reg.receiver.events))
    err = await _error(reg.client.review_brand(brand["brandId"], "VERIFIED", 101))
    assert err.code == "INVALID_FIELD"


async def test_deactivation_and_brand_deletion(reg):
    campaign = await reg.accepted_campaign()
    bid, cid = campaign["brandId"], campaign["campaignId"]
    err = await _error(reg.client.delete_brand(bid))
    assert (err.code, err.status) == ("BRAND_HAS_ACTIVE_CAMPAIGNS", 409)
    assert (await reg.client.deactivate_campaign(cid))["status"] == "DEACTIVATED"
    await reg.receiver.wait_types("CAMPAIGN_DEACTIVATED", campaignId=cid)
    err = await _error(reg.client.renew_campaign(cid))
    assert (err.code, err.status) == ("CAMPAIGN_NOT_ACTIVE", 409)
    assert (await reg.client.delete_brand(bid))["deleted"] is True
    await reg.receiver.wait_types("BRAND_DELETE", brandId=bid)
    assert (await _error(reg.client.get_brand(bid))).code == "BRAND_NOT_FOUND"


async def test_expiry_without_auto_renewal_and_renewal_with_it(reg):
    brand = await reg.verified_brand()
    once = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"], "autoRenewal": False})
    auto = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"]})
    nudged = await reg.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"], "autoRenewal": False})
    renewed = await reg.client.renew_campaign(nudged["campaignId"])
    assert renewed["expirationDate"][:10] == "2025-07-06"
    await reg.client.advance(100)
    [expired] = await reg.receiver.wait_types("CAMPAIGN_EXPIRED", campaignId=once["campaignId"])
    assert expired["createDate"][:10] == "2025-04-06"
    assert (await reg.client.get_campaign(once["campaignId"]))["status"] == "EXPIRED"
    after = await reg.client.get_campaign(auto["campaignId"])
    assert (after["status"], after["expirationDate"][:10]) == ("ACTIVE", "2025-07-06")
    assert (await reg.client.get_campaign(nudged["campaignId"]))["status"] == "ACTIVE"
    assert reg.receiver.of("CAMPAIGN_EXPIRED", campaignId=auto["campaignId"]) == []
    assert (await _error(reg.client.renew_campaign(once["campaignId"]))).code == "CAMPAIGN_NOT_ACTIVE"


async def test_subscriptions_and_the_clock(reg):
    subs = await reg.client.subscriptions()
    assert [s["eventCategory"] for s in subs] == ["BRAND", "CAMPAIGN", "NUMBER", "VETTING"]
    err = await _error(reg.client.subscribe("SOMETHING", "http://127.0.0.1:1/x"))
    assert (err.code, err.status) == ("INVALID_FIELD", 400)
    err = await _error(reg.client.subscribe("BRAND", "ftp://x"))
    assert err.code == "INVALID_FIELD"
    await reg.client.unsubscribe("NUMBER")
    assert [s["eventCategory"] for s in await reg.client.subscriptions()] == ["BRAND", "CAMPAIGN", "VETTING"]
    assert (await _error(reg.client.unsubscribe("NUMBER"))).status == 404
    before = parse_stamp((await reg.client.clock())["now"])
    assert before >= MONDAY
    moved = parse_stamp((await reg.client.advance(2.5))["now"])
    assert 2.5 * 86400 <= (moved - before).total_seconds() < 2.5 * 86400 + 60
    assert (await _error(reg.client.advance(-1))).code == "INVALID_FIELD"

