"""Numbers and 10DLC registration as a CSP, driven through gatewayctl against a running gateway (its registry
simulator in its process), and every illegal change answering 409 with a stable code and changing nothing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, wait_for
from tests.gateway.cli.test_cli import invoke, running  # the running gateway fixture

INVENTORY = """number,type,country,capabilities,carrier,monthly_price
+14155550140,long_code,US,"sms,voice",sim,1.00
+14155550141,long_code,US,sms,sim,1.00
55510,short_code,US,sms,sim,500
+18885550140,toll_free,US,sms,sim,2.00
not-a-number,long_code,US,sms,sim,1.00
+14155550142,fax_line,US,sms,sim,1.00
+14155550140,long_code,US,sms,sim,1.00
"""
SAMPLES = ["Hi {#var}, your order {#var} has shipped.", "Your code is {#var}. Reply STOP to opt out."]


def j(out: str) -> dict:
    return json.loads(out)


async def cli(url: str, *args: str) -> dict:
    code, out = await invoke("--json", *args, url=url)
    assert code == 0, out
    return j(out)


async def test_the_whole_flow_through_the_cli(running, tmp_path):
    url = running
    csv_file = tmp_path / "inventory.csv"
    csv_file.write_text(INVENTORY)
    code, out = await invoke("inventory", "import", str(csv_file), url=url)
    assert code == 0, out
    assert "added: 4" in out and "rejected: 3" in out
    for fragment in ("line 6: 'not-a-number' is not a valid number of US (invalid_number)", "line 7", "unknown_type",
                     "line 8", "duplicate"):
        assert fragment in out
    account = (await cli(url, "accounts", "create", "Acme Inc"))["id"]
    brand = await cli(url, "brands", "register", "--account", str(account), "--legal-name", "Acme Inc",
                      "--ein", "12-3456789", "--entity-type", "PRIVATE_PROFIT", "--vertical", "RETAIL",
                      "--website", "https://acme.example", "--email", "ops@acme.example", "--phone", "+14155550100")
    # registered with the registry simulator, whose identity check answered while the command waited
    assert (brand["status"], brand["identity_status"], brand["trust_score"]) == ("complete", "VERIFIED", 69)
    assert (await cli(url, "brands", "vet", str(brand["id"])))["vetting_status"] == "PENDING"
    await cli(url, "registry", "advance", "--days", "3")
    brand = await cli(url, "brands", "show", str(brand["id"]))
    assert (brand["identity_status"], brand["trust_score"]) == ("VETTED_VERIFIED", 94)
    args = ["campaigns", "create", "--brand", str(brand["id"]), "--use-case", "ACCOUNT_NOTIFICATION",
            "--description", "Order and shipping notifications for Acme customers",
            "--opt-in", "Customers opt in at checkout.", "--opt-out", "Reply STOP to opt out.",
            "--help-message", "Reply HELP for help."]
    for sample in SAMPLES:
        args += ["--sample", sample]
    campaign = await cli(url, *args)
    assert campaign["status"] == "submitted" and campaign["registry_id"]
    assert (await cli(url, "campaigns", "share", str(campaign["id"])))["status"] == "shared"
    await cli(url, "registry", "advance", "--days", "3")
    await cli(url, "registry", "advance", "--days", "5")
    assert (await cli(url, "campaigns", "show", str(campaign["id"])))["status"] == "active"
    number = await cli(url, "numbers", "lease", "--account", str(account), "--type", "long_code",
                       "--capabilities", "sms,voice")
    assert (number["number"], number["status"]) == ("+14155550140", "active")
    order = (await cli(url, "campaigns", "associate", str(campaign["id"]), number["number"]))["order"]
    assert order["numbers"][0]["status"] == "associating"
    shown = await cli(url, "numbers", "show", number["number"])
    assert shown["status"] == "associating" and shown["campaign_id"] == campaign["id"]
    code, out = await invoke("registry", "advance", "--days", "7", url=url)
    assert code == 0 and "registry time:" in out, out
    shown = await cli(url, "numbers", "show", number["number"])
    assert (shown["status"], shown["type"], shown["campaign_id"]) == ("active", "ten_dlc", campaign["id"])
    assert [h["to"] for h in shown["history"]][-2:] == ["associating", "active"]
    limits = (await cli(url, "campaigns", "show", str(campaign["id"])))["limits"]
    assert (limits["att_per_minute"], limits["tmobile_per_day"]) == (4500, 200_000)
    code, out = await invoke("campaigns", "show", str(campaign["id"]), url=url)
    assert "AT&T: 4,500 SMS per minute" in out and "T-Mobile: 200,000 segments per day" in out
    assert "carriers: ATT APPROVED, TMOBILE APPROVED, USCELLULAR APPROVED, VERIZON APPROVED" in out
    assert "history:" in out and "operator" in out and "registry event" in out and "completed" in out
    code, out = await invoke("brands", "show", str(brand["id"]), url=url)
    assert "identity VERIFIED, trust score 69" in out and "POST /v1/brand/nonBlocking -> 200" in out
    # acting as T-Mobile's reviewer: the campaign's traffic to T-Mobile stops
    code, out = await invoke("registry", "simulator", "review-campaign", str(campaign["id"]), "--mno", "TMOBILE",
                             "--status", "SUSPENDED", "--description", "complaints", url=url)
    assert code == 0, out

    async def suspended() -> bool:
        shown = await cli(url, "campaigns", "show", str(campaign["id"]))
        return shown["blocked"] == {"tmobile": "TMOBILE SUSPENDED"}

    await wait_for(suspended)
    code, out = await invoke("campaigns", "show", str(campaign["id"]), url=url)
    assert "no traffic to: tmobile (TMOBILE SUSPENDED)" in out
    code, out = await invoke("registry", "events", url=url)
    assert code == 0 and "MNO_CAMPAIGN_OPERATION_SUSPENDED" in out and "applied" in out
    status = await cli(url, "registry", "status")
    assert (status["mode"], status["subscribed"], status["requests"]["pending"]) == ("simulator", True, 0)


@pytest.fixture
async def world(running):
    """An account with a brand the registry verified (score 69), a campaign it has (not yet shared) and a leased
    long code; one of each kind free."""
    url = running
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async def call(method: str, path: str, body=None):
            async with http.request(method, url + path, json=body, headers=ADMIN) as resp:
                return resp.status, await resp.json()

        async with http.post(url + "/admin/inventory/import", headers=ADMIN, data=INVENTORY.encode()) as resp:
            assert resp.status == 200
        _, account = await call("POST", "/admin/accounts", {"name": "Acme"})
        _, brand = await call("POST", "/admin/brands", {**BRAND, "account_id": account["id"]})
        assert brand["status"] == "complete", brand
        status, campaign = await call("POST", "/admin/campaigns", {
            "brand_id": brand["id"], "use_case": "MIXED", "description": "Mixed traffic for Acme",
            "sample_messages": SAMPLES, "opt_in_message": "Opt in at checkout.",
            "opt_out_message": "Reply STOP.", "help_message": "Reply HELP."})
        assert status == 201, campaign
        _, number = await call("POST", "/admin/numbers/lease", {"account_id": account["id"], "type": "long_code"})
        yield {"call": call, "account": account, "brand": brand, "campaign": campaign, "number": number,
               "url": url, "http": http}


async def expect_409(world, method: str, path: str, body, code: str, check: str) -> None:
    before = await world["call"]("GET", check)
    status, data = await world["call"](method, path, body)
    assert (status, data["error"]["code"]) == (409, code), data
    after = await world["call"]("GET", check)
    assert after == before  # nothing changed


async def test_a_number_joins_a_campaign_the_dca_accepted(world):
    c, n = world["campaign"], world["number"]
    await expect_409(world, "POST", f"/admin/campaigns/{c['id']}/associate", {"number": n["number"]},
                     "campaign_not_shared", f"/admin/numbers/{n['number']}/registry")


async def test_releasing_a_protected_number(world):
    n = world["number"]["number"]
    status, _ = await world["call"]("PATCH", f"/admin/numbers/{n}", {"deletion_protection": True})
    assert status == 200
    await expect_409(world, "POST", f"/admin/numbers/{n}/release", None, "number_protected",
                     f"/admin/numbers/{n}/registry")
    code, out = await invoke("numbers", "release", n, "--yes", url=world["url"])
    assert code == 1 and "number_protected" in out and "deletion protection" in out


async def test_leasing_when_none_is_free(world):
    status, _ = await world["call"]("POST", "/admin/numbers/lease", {"account_id": world["account"]["id"],
                                                                     "type": "toll_free"})
    assert status == 201  # the only free toll-free number
    await expect_409(world, "POST", "/admin/numbers/lease", {"account_id": world["account"]["id"],
                                                             "type": "toll_free"},
                     "no_number_available", "/admin/numbers?free=true")


async def test_other_illegal_changes(world):
    b, c = world["brand"], world["campaign"]
    await expect_409(world, "DELETE", f"/admin/brands/{b['id']}", None, "brand_has_active_campaigns",
                     f"/admin/brands/{b['id']}")
    # an EIN the simulator cannot verify: its brand needs updates, and gets no campaign
    _, unverified = await world["call"]("POST", "/admin/brands", {
        **BRAND, "account_id": world["account"]["id"], "legal_name": "Shady LLC", "ein": "000111111"})
    assert (unverified["status"], unverified["identity_status"]) == ("requires_updates", "UNVERIFIED")
    status, data = await world["call"]("POST", "/admin/campaigns", {
        "brand_id": unverified["id"], "use_case": "2FA", "description": "d", "sample_messages": SAMPLES,
        "opt_in_message": "x", "opt_out_message": "y", "help_message": "z"})
    assert (status, data["error"]["code"]) == (409, "brand_not_verified")
    await expect_409(world, "POST", f"/admin/brands/{unverified['id']}/vet", {}, "brand_not_verified",
                     f"/admin/brands/{unverified['id']}")
    code, out = await invoke("brands", "feedback", str(unverified["id"]), url=world["url"])
    assert code == 0 and out.startswith("TAX_ID:"), out
    await world["call"]("POST", f"/admin/campaigns/{c['id']}/share")
    await expect_409(world, "POST", f"/admin/campaigns/{c['id']}/share", None, "campaign_already_shared",
                     f"/admin/campaigns/{c['id']}")


async def test_registry_errors_keep_their_status_and_code(world):
    """Refusals reach the error middleware with their codes: the gateway's own (409), the registry's (422)."""
    c, n = world["campaign"], world["number"]["number"]
    await expect_409(world, "POST", f"/admin/campaigns/{c['id']}/disassociate", {"number": n},
                     "number_not_in_campaign", f"/admin/numbers/{n}/registry")
    status, data = await world["call"]("POST", f"/admin/campaigns/{c['id']}/share", {"cnp_id": "NOSUCH1"})
    assert (status, data["error"]["code"]) == (422, "invalid_cnp"), data
    _, after = await world["call"]("GET", f"/admin/campaigns/{c['id']}")
    assert (after["status"], after["pending"]) == ("submitted", [])
    code, out = await invoke("campaigns", "share", str(c["id"]), "--cnp", "NOSUCH1", url=world["url"])
    assert code == 1 and "invalid_cnp" in out and "HTTP 422" in out


@pytest.mark.parametrize("samples, ok", [(["only one sample message here"], False),
                                         (["too short", "Your code is {#var}. Reply STOP."], False),
                                         (SAMPLES, True), (SAMPLES * 3, False)])
async def test_sample_message_rules(world, samples, ok):
    status, data = await world["call"]("POST", "/admin/campaigns", {
        "brand_id": world["brand"]["id"], "use_case": "2FA", "description": "d", "sample_messages": samples,
        "opt_in_message": "x", "opt_out_message": "y", "help_message": "z"})
    assert status == (201 if ok else 422), data


async def test_customers_see_only_their_own(world):
    http, url = world["http"], world["url"]
    _, key_data = await world["call"]("POST", f"/admin/accounts/{world['account']['id']}/keys")
    mine = {"Authorization": f"Bearer {key_data['api_key']}"}
    _, other = await world["call"]("POST", "/admin/accounts", {"name": "Other"})
    theirs = {"Authorization": f"Bearer {other['api_key']}"}
    for path in (f"/v1/brands/{world['brand']['id']}", f"/v1/campaigns/{world['campaign']['id']}"):
        async with http.get(url + path, headers=mine) as resp:
            assert resp.status == 200
        async with http.get(url + path, headers=theirs) as resp:
            assert resp.status == 404
    async with http.get(url + "/v1/campaigns", headers=theirs) as resp:
        assert (await resp.json())["campaigns"] == []
    async with http.get(url + "/v1/numbers", headers=mine) as resp:
        assert [n["number"] for n in (await resp.json())["numbers"]] == [world["number"]["number"]]
    async with http.get(url + "/v1/numbers", headers=theirs) as resp:
        assert (await resp.json())["numbers"] == []
    async with http.get(url + f"/v1/campaigns/{world['campaign']['id']}", headers=mine) as resp:
        limits = (await resp.json())["limits"]
    assert (limits["att_per_minute"], limits["tmobile_per_day"]) == (2400, 40_000)  # trust 69, mixed


# --- what the inventory takes ----------------------------------------------------------------------------------------
CHECKED = """number,type,country,capabilities,carrier,monthly_price
5551234567,short_code,US,sms,sim,500
123456,short_code,US,sms,sim,500
+14155550143,long_code,GB,sms,sim,1
+14155550144,toll_free,US,sms,sim,2
+18885550141,long_code,US,sms,sim,1
+18885550142,toll_free,US,sms,sim,2
+14155550145,long_code,US,sms,sim,-1
+14155550146,long_code,US,sms,sim,nan
+14155550147,long_code,US,sms,att,1
+14155550148,long_code,US,sms,voice,sim,1
+14155550149,long_code,,sms,sim,1
+442071838750,ten_dlc,GB,sms,sim,1
+442071838750,long_code,GB,"sms,voice",sim,0
4155550150,long_code,US,sms,,
"""
REFUSED = {2: "invalid_number", 4: "invalid_number", 5: "invalid_number", 6: "invalid_number", 8: "invalid_price",
           9: "invalid_price", 10: "unknown_carrier", 11: "too_many_columns", 12: "missing_value",
           13: "invalid_country"}


async def _post_csv(url: str, text: str) -> tuple[int, dict]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(url + "/admin/inventory/import", headers=ADMIN,
                                                          data=text.encode()) as resp:
        return resp.status, await resp.json()


async def test_inventory_rows_are_checked_each_with_its_line(running):
    status, data = await _post_csv(running, CHECKED)
    assert status == 200, data
    assert {e["line"]: e["error"] for e in data["errors"]} == REFUSED
    assert (data["added"], data["rejected"]) == (4, len(REFUSED))
    messages = {e["line"]: e["message"] for e in data["errors"]}
    assert "5 or 6 digits" in messages[2] and "not a valid number of GB" in messages[4]
    assert "not a toll-free number" in messages[5] and "toll_free" in messages[6]
    assert "'att' is not configured" in messages[10] and "no country" in messages[12]
    numbers = {n["number"]: n for n in (await cli(running, "numbers", "list"))["numbers"]}
    assert sorted(numbers) == ["+14155550150", "+18885550142", "+442071838750", "123456"]
    assert (numbers["+442071838750"]["capabilities"], numbers["+442071838750"]["monthly_price"]) == (
        ["sms", "voice"], 0)
    assert numbers["+14155550150"]["carrier"] is None and numbers["123456"]["carrier"] == "sim"


async def test_inventory_header_names_the_columns(running):
    status, data = await _post_csv(running, "number,capabilities\n+14155550151,sms\n")
    assert (status, data["error"]["code"]) == (400, "missing_columns")
    assert "type, country" in data["error"]["message"]
    status, data = await _post_csv(running, "number,type,country,monthly price\n+14155550151,long_code,US,1\n")
    assert (status, data["error"]["code"]) == (400, "unknown_columns") and "'monthly price'" in data["error"]["message"]
    assert (await cli(running, "numbers", "list"))["numbers"] == []
    status, data = await _post_csv(running, "country,type,number\nUS,long_code,+14155550151\n")
    assert (status, data["added"]) == (200, 1)


async def test_inventory_cli_reports_the_file_lines(running, tmp_path):
    src = tmp_path / "numbers.csv"
    src.write_text(CHECKED)
    code, out = await invoke("--json", "inventory", "import", str(src), url=running)
    assert code == 0, out
    data = json.loads(out[out.index("{"):])
    assert {e["line"]: e["error"] for e in data["errors"]} == REFUSED
    src.write_text("number,type\n+14155550151,long_code\n")
    code, out = await invoke("inventory", "import", str(src), url=running)
    assert code == 1 and "missing_columns" in out and "country" in out


# --- brands --------------------------------------------------------------------------------------------------------
BRAND = {"legal_name": "Acme Inc", "ein": "12-3456789", "entity_type": "PRIVATE_PROFIT", "vertical": "RETAIL",
         "website": "https://acme.example", "contact_email": "ops@acme.example", "contact_phone": "+14155550100"}


async def test_one_brand_per_ein(world):
    """world registered EIN 123456789 for its account: again, in any spelling and for any account, is a 409 that
    names the brand that has it, and stores nothing."""
    _, other = await world["call"]("POST", "/admin/accounts", {"name": "Copycat"})
    for account, ein in ((world["account"]["id"], "12-3456789"), (other["id"], "123456789")):
        status, data = await world["call"]("POST", "/admin/brands", {**BRAND, "account_id": account, "ein": ein})
        assert (status, data["error"]["code"]) == (409, "brand_exists"), data
        assert data["error"]["details"]["brand_id"] == world["brand"]["id"]
    _, brands = await world["call"]("GET", "/admin/brands")
    assert [b["id"] for b in brands["brands"]] == [world["brand"]["id"]]
    code, out = await invoke("brands", "register", "--account", str(other["id"]), "--legal-name", "Copycat",
                             "--ein", "123456789", "--entity-type", "PRIVATE_PROFIT", "--vertical", "RETAIL",
                             "--website", "https://copycat.example", "--email", "x@copycat.example",
                             "--phone", "+14155550101", url=world["url"])
    assert code == 1 and "brand_exists" in out and f"Brand {world['brand']['id']}" in out


@pytest.mark.parametrize("field, value", [("website", "acme.example"), ("website", "ftp://acme.example"),
                                          ("website", "https://"), ("website", "https://acme example.com"),
                                          ("vertical", "SHOES"), ("entity_type", "LLC")])
async def test_brand_fields_from_their_lists(world, field, value):
    status, data = await world["call"]("POST", "/admin/brands", {
        **BRAND, "account_id": world["account"]["id"], "ein": "98-7654321", field: value})
    assert (status, data["error"]["code"], data["error"]["details"]) == (422, "invalid_field", {"field": field})
