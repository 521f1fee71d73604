"""Opt-out list names are restricted (422 invalid_list_name), and CSV exports never hand a spreadsheet a formula:
over real HTTP, on real SQLite."""

from __future__ import annotations

import csv
import io

import pytest

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from registry.models import OptOut
from tests.conftest import ADMIN, new_customer

BAD_NAMES = ["", " ", "x" * 65, "=HYPERLINK(\"http://evil.example\",\"click\")", "+cmd|' /C calc'!A0", "-x", "@SUM(1)",
             "_hidden", ".dot", "two words", "promo\n", "tab\there", "émile", "١٢٣", "a/b", "<b>"]
GOOD_NAMES = ["default", "promo", "Promo-2024.v1_x", "9lives", "x" * 64]


@pytest.fixture
async def client(aiohttp_client, migrated, sessionmaker):
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    return client


async def _code(resp) -> tuple[int, str | None]:
    body = await resp.json()
    return resp.status, body.get("error", {}).get("code")


async def test_list_names_are_restricted_everywhere_one_is_set(client):
    h = client.customer.headers
    for name in BAD_NAMES:
        resp = await client.post("/v1/opt-outs", json={"phone": "+14155550100", "list": name}, headers=h)
        assert await _code(resp) == (422, "invalid_list_name"), repr(name)
        resp = await client.patch("/v1/numbers/12345", json={"opt_out_list": name or "=1"}, headers=h)
        assert await _code(resp) == (422, "invalid_list_name"), repr(name)
        resp = await client.patch("/admin/numbers/12345", json={"opt_out_list": name or "=1"}, headers=ADMIN)
        assert await _code(resp) == (422, "invalid_list_name"), repr(name)
        resp = await client.post("/v1/opt-outs/import", params={"list": name}, data="+14155550100\n",
                                 headers={**h, "Content-Type": "text/csv"})
        assert await _code(resp) == (422, "invalid_list_name"), repr(name)
    for i, name in enumerate(GOOD_NAMES):
        resp = await client.post("/v1/opt-outs", json={"phone": f"+1415555011{i}", "list": name}, headers=h)
        assert resp.status == 201 and (await resp.json())["list"] == name
    resp = await client.patch("/v1/numbers/12345", json={"opt_out_list": "promo"}, headers=h)
    assert (await resp.json())["opt_out_list"] == "promo"
    resp = await client.patch("/v1/numbers/12345", json={"opt_out_list": None}, headers=h)  # back to the default
    assert resp.status == 200 and (await resp.json())["opt_out_list"] is None
    async with client.app[app_keys.SESSIONMAKER]() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(OptOut)) == len(GOOD_NAMES)


async def test_an_import_rejects_the_rows_whose_list_name_is_bad(client):
    text = "phone,list\n+14155550120,promo\n+14155550121,=HYPERLINK(\"x\")\n+14155550122,\n+14155550123,a b\n"
    resp = await client.post("/v1/opt-outs/import", data=text,
                             headers={**client.customer.headers, "Content-Type": "text/csv"})
    result = await resp.json()
    assert (result["added"], result["rejected"]) == (2, 2)
    assert [(e["line"], e["error"]) for e in result["errors"]] == [(3, "invalid_list_name"), (5, "invalid_list_name")]
    assert result["errors"][0]["value"].startswith("=HYPERLINK")


async def test_the_export_escapes_formulas_but_keeps_phone_numbers(client):
    """Rows written before names were restricted (or by a path that does not check) come out as text."""
    async with client.app[app_keys.SESSIONMAKER]() as session, session.begin():
        session.add_all([
            OptOut(account_id=client.customer.account_id, list_name='=HYPERLINK("http://evil.example","x")',
                   phone="+14155550130", source="@SUM(1+1)"),
            OptOut(account_id=client.customer.account_id, list_name="-2+3", phone="=1+1", source="\tcmd"),
            OptOut(account_id=client.customer.account_id, list_name="promo", phone="+14155550131", source="api")])
    for path in ("/v1/opt-outs/export", f"/admin/accounts/{client.customer.account_id}/opt-outs/export"):
        resp = await client.get(path, headers=client.customer.headers if path.startswith("/v1") else ADMIN)
        rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0] == ["phone", "list", "source", "created_at"]
        assert [r[:3] for r in rows[1:]] == [
            ["+14155550130", "'=HYPERLINK(\"http://evil.example\",\"x\")", "'@SUM(1+1)"],
            ["'=1+1", "'-2+3", "'\tcmd"],
            ["+14155550131", "promo", "api"]]
        assert all(not cell.startswith(("=", "-", "@", "\t", "\r")) for r in rows for cell in r)
