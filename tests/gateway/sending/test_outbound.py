"""Outbound SMS rules, each over real SMPP to the simulator: origination, encoding, compliance, pacing,
retries and failures, time to live, receipts in their awkward forms, batches and the queue bound."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import update

from carriers.simulator import SimulatorServices
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.sending import compliance
from registry.models import Account, Number, OptOut
from tests.conftest import ADMIN, live_campaign, new_customer, verify_toll_free, wait_for

US = "+1415555"  # fictional 555-01xx numbers: +14155550100 ... +14155550199


def us(n: int) -> str:
    return f"{US}01{n:02d}"


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    migrated.pacing.enabled = True
    client = await aiohttp_client(create_app(migrated))
    client.sm = sessionmaker
    client.sim = sim
    await wait_for(lambda: asyncio.sleep(0, client.app[app_keys.CARRIERS].ready))
    return client


async def customer(gw, numbers, name="acme", **account) -> object:
    c = await new_customer(gw, gw.sm, name, numbers=())
    async with gw.sm() as session, session.begin():
        for spec in numbers:
            number, kind = spec[0], spec[1]
            extra = spec[2] if len(spec) > 2 else {}
            session.add(Number(**{"number": number, "type": kind, "country": "US", "capabilities": "sms,voice",
                                  "status": "active", "account_id": c.account_id, **extra}))
        if account:
            await session.execute(update(Account).where(Account.id == c.account_id).values(**account))
    return c


async def send(gw, c, expect: int = 202, **body):
    resp = await gw.post("/v1/messages", json={"body": "hello", **body}, headers=c.headers)
    data = await resp.json()
    assert resp.status == expect, data
    return data


async def final(gw, c, mid: str, status: str = "delivered", timeout: float = 5.0) -> dict:
    got: dict = {}

    async def done() -> bool:
        nonlocal got
        got = await (await gw.get(f"/v1/messages/{mid}", headers=c.headers)).json()
        return got["status"] == status

    await wait_for(done, timeout)
    return got


# --- origination -----------------------------------------------------------------------------------------------

async def test_priority_short_code_then_10dlc_then_toll_free(gw):
    c = await customer(gw, [("+18885550100", "toll_free"), (us(90), "ten_dlc"), ("55501", "short_code")])
    await verify_toll_free(gw.sm, c.account_id, "+18885550100")
    sent = await send(gw, c, to=us(1))
    assert sent["from"] == "55501"
    await final(gw, c, sent["id"])
    assert gw.sim.received[-1].source == "55501"
    async with gw.sm() as session, session.begin():
        await session.execute(update(Number).where(Number.number == "55501").values(status="pending"))
    assert (await send(gw, c, to=us(2)))["from"] == us(90)
    async with gw.sm() as session, session.begin():
        await session.execute(update(Number).where(Number.number == us(90)).values(status="associating"))
    assert (await send(gw, c, to=us(3)))["from"] == "+18885550100"


async def test_single_eligible_number_and_sticky_sender(gw):
    pool = [(f"+1888555{n:04d}", "toll_free") for n in range(100, 105)]
    c = await customer(gw, pool)
    await verify_toll_free(gw.sm, c.account_id, *(number for number, _ in pool))
    firsts = {}
    for n in range(10):
        firsts[us(n)] = (await send(gw, c, to=us(n)))["from"]
    assert len(set(firsts.values())) > 1  # spread over the pool
    await asyncio.sleep(1.05)  # 1 msg/s to one recipient
    for n in range(10):
        assert (await send(gw, c, to=us(n)))["from"] == firsts[us(n)]  # each keeps its number


async def test_named_from_must_be_owned_active_capable_allowed(gw):
    c = await customer(gw, [("55501", "short_code"), ("55502", "short_code", {"status": "pending"}),
                            ("55503", "short_code", {"capabilities": "voice"}), (us(80), "long_code"),
                            ("+442071838750", "long_code", {"country": "GB", "international": True})])
    await customer(gw, [("55599", "short_code")], name="other")
    cases = [("55599", 422, "invalid_from"), ("55502", 409, "number_not_active"),
             ("55503", 422, "number_not_sms_capable"), (us(80), 422, "unregistered_long_code")]
    for source, status, code in cases:
        data = await send(gw, c, expect=status, to=us(1), **{"from": source})
        assert data["error"]["code"] == code
    sent = await send(gw, c, to=us(2), **{"from": "55501"})
    assert sent["from"] == "55501"
    # abroad: a short code may not; a long code with international sending enabled may
    data = await send(gw, c, expect=422, to="+33612345678", **{"from": "55501"})
    assert data["error"]["code"] == "destination_not_allowed"
    sent = await send(gw, c, to="+33612345678")
    assert sent["from"] == "+442071838750"
    await final(gw, c, sent["id"])
    assert gw.sim.received[-1].destination == "+33612345678"


async def test_us_rules_for_10dlc_and_unregistered_long_codes(gw):
    c = await customer(gw, [(us(80), "long_code"), (us(90), "ten_dlc")])
    data = await send(gw, c, expect=422, to="+33612345678", **{"from": us(90)})
    assert data["error"]["code"] == "destination_not_allowed"
    data = await send(gw, c, expect=422, to="+33612345678")  # neither may send abroad
    assert data["error"]["code"] == "no_sending_number"
    assert (await send(gw, c, to=us(1)))["from"] == us(90)  # never the unregistered long code


# --- encoding --------------------------------------------------------------------------------------------------

async def test_encoding_and_segments_in_the_answer_and_on_the_wire(gw):
    c = await customer(gw, [("55501", "short_code")])
    sent = await send(gw, c, to=us(1), body="Price: 5€ {ok}")
    assert (sent["encoding"], sent["segments"], sent["characters"]) == ("gsm7", 1, 14)
    sent = await send(gw, c, to=us(2), body="It’s done")  # a curly apostrophe: UCS-2
    assert sent["encoding"] == "ucs2"
    await final(gw, c, sent["id"])
    assert gw.sim.received[-1].data_coding == 8 and gw.sim.received[-1].text == "It’s done"
    long = await send(gw, c, to=us(3), body="€" * 100)  # 200 septets, escape pairs never split
    assert long["segments"] == 2
    await final(gw, c, long["id"])
    parts = sorted(gw.sim.received[-2:], key=lambda s: s.concat[2])
    assert "".join(p.text for p in parts) == "€" * 100
    assert all(p.short_message[-1] != 0x1B for p in parts)


async def test_smart_encoding_per_account(gw):
    c = await customer(gw, [("55501", "short_code")], smart_encoding=True)
    sent = await send(gw, c, to=us(1), body="It’s “done” — ok")
    assert (sent["encoding"], sent["body"]) == ("gsm7", "It's \"done\" - ok")


async def test_sar_concatenation_by_carrier_configuration(aiohttp_client, migrated, sessionmaker, sim):
    migrated.carriers[0].port = sim.port
    migrated.carriers[0].concatenation = "sar"
    gw = await aiohttp_client(create_app(migrated))
    gw.sm, gw.sim = sessionmaker, sim
    c = await customer(gw, [("55501", "short_code")])
    sent = await send(gw, c, to=us(1), body="s" * 300)
    await final(gw, c, sent["id"])
    assert sorted(s.concat[1:] for s in sim.received) == [(2, 1), (2, 2)]
    assert all(s.esm_class == 0 for s in sim.received)


async def test_every_send_slot_freed_at_once_keeps_the_queue_moving(aiohttp_client, migrated, sessionmaker,
                                                                     sim):
    """As many in flight as the bind's window: every answer of a window comes in one read, so every send ends in
    the same turn of the loop; the claim loop must still see the slots free (it once waited for a wake-up that
    never came, with the rest of the queue stuck)."""
    migrated.carriers[0].port = sim.port
    migrated.carriers[0].window = 20
    migrated.dispatcher.concurrency = 20
    gw = await aiohttp_client(create_app(migrated))
    gw.sm, gw.sim = sessionmaker, sim
    await wait_for(lambda: asyncio.sleep(0, gw.app[app_keys.CARRIERS].ready))
    c = await customer(gw, [("55501", "short_code")])
    batch = [{"to": f"+1212555{n:04d}", "body": f"w{n}"} for n in range(200)]
    resp = await gw.post("/v1/messages/batch", json={"messages": batch}, headers=c.headers)
    assert (await resp.json())["accepted"] == 200
    for r in (await resp.json())["results"]:
        await final(gw, c, r["message"]["id"], timeout=10)
    assert len(sim.received) == 200


# --- compliance ------------------------------------------------------------------------------------------------

async def test_opted_out_recipient_is_refused_and_told_as_blocked(gw, aiohttp_server):
    events = []

    async def hook(request: web.Request) -> web.Response:
        events.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/", hook)
    server = await aiohttp_server(app)
    c = await customer(gw, [("55501", "short_code")], event_webhook_url=str(server.make_url("/")))
    async with gw.sm() as session, session.begin():
        session.add(OptOut(account_id=c.account_id, phone=us(1), source="keyword"))
    data = await send(gw, c, expect=409, to=us(1))
    assert data["error"]["code"] == "recipient_opted_out"
    mid = data["error"]["details"]["message_id"]
    got = await (await gw.get(f"/v1/messages/{mid}", headers=c.headers)).json()
    assert (got["status"], got["events"][-1]["type"]) == ("blocked", "TEXT_BLOCKED")
    await wait_for(lambda: asyncio.sleep(0, any(e["event_type"] == "TEXT_BLOCKED" for e in events)))
    assert gw.sim.received == []
    await send(gw, c, to=us(2))  # others still receive


async def test_a_numbers_own_opt_out_list(gw):
    c = await customer(gw, [("55501", "short_code", {"opt_out_list": "promo"}), ("55502", "short_code")])
    async with gw.sm() as session, session.begin():
        session.add(OptOut(account_id=c.account_id, list_name="promo", phone=us(1)))
    assert (await send(gw, c, expect=409, to=us(1), **{"from": "55501"}))["error"]["code"] == "recipient_opted_out"
    await send(gw, c, to=us(1), **{"from": "55502"})


async def test_public_url_shorteners_in_10dlc_traffic(gw):
    c = await customer(gw, [(us(90), "ten_dlc")])
    data = await send(gw, c, expect=422, to=us(1), body="Your order: https://bit.ly/3abc")
    assert data["error"]["code"] == "public_url_shortener"
    await send(gw, c, to=us(2), body="Your order: https://shop.example.com/o/3abc")
    c2 = await customer(gw, [("55501", "short_code")], name="shortcode")
    await send(gw, c2, to=us(3), body="https://bit.ly/3abc")  # not 10DLC traffic


async def test_inactive_10dlc_number_is_blocked(gw):
    c = await customer(gw, [(us(90), "ten_dlc", {"status": "associating"})])
    data = await send(gw, c, expect=409, to=us(1), **{"from": us(90)})
    assert data["error"]["code"] == "number_not_active" and data["error"]["details"]["message_id"]


async def test_quiet_hours_for_promotional_traffic(gw):
    c = await customer(gw, [("55501", "short_code")], quiet_hours=True)
    ny = ZoneInfo("America/New_York")
    clock = {"now": dt.datetime(2026, 11, 20, 22, 30, tzinfo=ny)}
    gw.app[app_keys.CLOCK].set(lambda: clock["now"])
    to_ny = "+12125550100"
    data = await send(gw, c, expect=409, to=to_ny, message_type="promotional")
    assert data["error"]["code"] == "quiet_hours"
    await send(gw, c, to=to_ny, message_type="transactional")  # transactional is fine at night
    clock["now"] = dt.datetime(2026, 11, 20, 10, 0, tzinfo=ny)
    await send(gw, c, to="+12125550101", message_type="promotional")


def test_quiet_hours_use_the_recipients_time_zone():
    noon_utc = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)  # 07:00 New York, 04:00 Los Angeles
    assert compliance.in_quiet_hours("+12125550100", noon_utc)
    assert not compliance.in_quiet_hours("+12125550100", noon_utc + dt.timedelta(hours=2))
    assert compliance.in_quiet_hours("+14155550100", noon_utc + dt.timedelta(hours=2))  # 06:00 in California
    assert compliance.public_shortener("see tinyurl.com/x") == "tinyurl.com"
    assert compliance.public_shortener("see notbit.ly.example.com") is None


async def test_dry_run_validates_and_prices_without_sending(gw):
    c = await customer(gw, [(us(90), "ten_dlc")])
    data = await send(gw, c, expect=200, to=us(1), body="x" * 200, dry_run=True)
    assert (data["status"], data["segments"], data["price"]["amount"]) == ("dry_run", 2, pytest.approx(0.0158))
    data = await send(gw, c, expect=422, to=us(1), body="https://bit.ly/x", dry_run=True)
    assert data["error"]["code"] == "public_url_shortener"
    await asyncio.sleep(0.2)
    assert gw.sim.received == []


# --- pacing, retries, failures, time to live -------------------------------------------------------------------

async def test_account_rate_at_the_simulator(gw):
    c = await customer(gw, [("55501", "short_code")], max_rate_per_s=5)
    ids = [(await send(gw, c, to=us(n)))["id"] for n in range(12)]
    for mid in ids:
        await final(gw, c, mid, timeout=10)
    times = sorted(s.received_at for s in gw.sim.received)
    assert max(gw.sim.per_second.values()) <= 5  # per calendar second, as carriers count
    assert times[-1] - times[0] >= 11 / 5 - 0.1


async def test_sends_that_miss_their_slots_never_bunch(aiohttp_client, migrated, sessionmaker):
    """A stalled event loop must not release the sends it held back all at once: what the process sent in the
    last second decides when each late one goes, so the carrier still never sees more than the limit."""
    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:  # the carrier keeps its own clock: a simulator on a thread with its own event loop
        async def main() -> None:
            services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
            await services.start()
            holder["services"], holder["loop"], holder["stop"] = services, asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await holder["stop"].wait()
            await services.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    sim = holder["services"].sim
    try:
        migrated.carriers[0].port = sim.port
        migrated.pacing.enabled = True
        gw = await aiohttp_client(create_app(migrated))
        gw.sm = sessionmaker
        await wait_for(lambda: asyncio.sleep(0, gw.app[app_keys.CARRIERS].ready))
        c = await customer(gw, [("55501", "short_code")], max_rate_per_s=5)
        ids = [(await send(gw, c, to=us(n)))["id"] for n in range(14)]
        await asyncio.sleep(0.3)
        time.sleep(1.2)  # the gateway's event loop stalls for a whole second: every slot due meanwhile passes
        for mid in ids:
            await final(gw, c, mid, timeout=15)
        assert len(sim.received) == 14
        assert max(sim.per_second.values()) <= 5  # per calendar second, as carriers count
        assert gw.app[app_keys.DISPATCHER].stats.get("held", 0) >= 1  # the window held back what came late together
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


async def test_one_message_a_second_to_one_recipient_and_toll_free_3_per_second(gw):
    c = await customer(gw, [("+18885550100", "toll_free")])
    await verify_toll_free(gw.sm, c.account_id, "+18885550100")
    same = [(await send(gw, c, to=us(1), body=f"n{i}"))["id"] for i in range(3)]
    others = [(await send(gw, c, to=us(10 + i)))["id"] for i in range(6)]
    for mid in same + others:
        await final(gw, c, mid, timeout=10)
    to_one = sorted(s.received_at for s in gw.sim.received if s.destination == us(1))
    assert all(b - a >= 0.95 for a, b in zip(to_one, to_one[1:]))
    assert [s.text for s in sorted(gw.sim.received, key=lambda s: s.received_at) if s.destination == us(1)] == [
        "n0", "n1", "n2"]  # in order
    assert max(gw.sim.per_second.values()) <= 3


async def test_throttled_is_retried_and_other_errors_fail_with_the_smpp_code(gw):
    c = await customer(gw, [("55501", "short_code")])
    gw.sim.handler.throttle_all = True
    slow = (await send(gw, c, to=us(1)))["id"]
    await asyncio.sleep(0.4)
    assert (await (await gw.get(f"/v1/messages/{slow}", headers=c.headers)).json())["status"] in ("queued", "sending")
    gw.sim.handler.throttle_all = False
    got = await final(gw, c, slow)
    assert got["attempts"] >= 2
    gw.sim.handler.fail = {us(2): 0x0B}
    failed = await final(gw, c, (await send(gw, c, to=us(2)))["id"], status="failed")
    assert failed["error_code"] == "smpp_0x0b"
    assert failed["events"][-1] == {**failed["events"][-1], "type": "TEXT_CARRIER_UNREACHABLE",
                                    "error_code": "smpp_0x0b"}


async def test_ttl_expires_while_the_carrier_keeps_throttling(gw):
    c = await customer(gw, [("55501", "short_code")])
    gw.sim.handler.throttle_all = True
    mid = (await send(gw, c, to=us(1), ttl=5))["id"]
    got = await final(gw, c, mid, status="expired", timeout=12)
    assert got["events"][-1]["type"] == "TEXT_TTL_EXPIRED" and got["error_code"] == "ttl_expired"


async def test_queue_bound_answers_429_with_retry_after(gw):
    c = await customer(gw, [("55501", "short_code")], queue_policy="reject", max_queued=2, max_rate_per_s=1)
    gw.sim.handler.throttle_all = True
    await send(gw, c, to=us(1))
    await send(gw, c, to=us(2))
    resp = await gw.post("/v1/messages", json={"to": us(3), "body": "x"}, headers=c.headers)
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "queue_full" and int(resp.headers["Retry-After"]) >= 1


# --- receipts --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("id_format, receipt_id_format, base", [
    ("hex", "decimal", "hex_to_dec"), ("decimal", "hex", "dec_to_hex"), ("hex", "padded", "same")])
async def test_receipts_quoting_ids_in_another_base(aiohttp_client, migrated, sessionmaker, id_format,
                                                    receipt_id_format, base):
    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02, id_format=id_format)
    services.sim.receipt_id_format = receipt_id_format
    await services.start()
    try:
        migrated.carriers[0].port = services.smpp_port
        migrated.carriers[0].receipt_id_base = base
        gw = await aiohttp_client(create_app(migrated))
        gw.sm = sessionmaker
        c = await customer(gw, [("55501", "short_code")])
        await final(gw, c, (await send(gw, c, to=us(1)))["id"])
    finally:
        await services.stop()


async def test_receipt_before_its_submit_sm_resp(gw):
    gw.sim.handler.response_delay = 0.3  # the receipt (after 0.02 s) overtakes the submit_sm_resp
    c = await customer(gw, [("55501", "short_code")])
    got = await final(gw, c, (await send(gw, c, to=us(1)))["id"])
    assert got["carrier_message_id"] == gw.sim.received[0].message_id


def alert_lines(caplog, kind: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.alerts" and r.alert == kind]


async def test_unknown_receipt_is_kept_and_alerted_once_it_stays_unmatched(gw, caplog):
    """Kept (and logged at DEBUG: one line per receipt is a storm at INFO); a receipt that overtook its
    submit_sm_resp is matched within moments, so the WARNING comes only for those still unmatched
    [alerts] unmatched_after_s later, once each, counted by carrier."""
    caplog.set_level(logging.DEBUG, logger="gateway.sending.receipts")
    c = await customer(gw, [("55501", "short_code")])
    mid = (await send(gw, c, to=us(1)))["id"]
    await final(gw, c, mid)
    gw.sim.send_receipt(gw.sim.received[0], message_id="FFFFFFF0")
    from sqlalchemy import func, select

    from gateway.store.models import UnmatchedReceipt

    async def kept() -> bool:
        async with gw.sm() as session:
            return await session.scalar(select(func.count()).select_from(UnmatchedReceipt)) == 1

    await wait_for(kept)
    assert "FFFFFFF0" in caplog.text
    dispatcher = gw.app[app_keys.DISPATCHER]
    await dispatcher.sweep()
    assert alert_lines(caplog, "unmatched") == []  # 30 s by default: not yet
    gw.app[app_keys.METRICS].alerts.settings.unmatched_after_s = 0.0
    await dispatcher.sweep()
    await dispatcher.sweep()
    [line] = alert_lines(caplog, "unmatched")
    assert line.startswith("carrier sim: 1 delivery receipt(s) matched no message for 0.0 s")
    await final(gw, c, (await send(gw, c, to=us(2)))["id"])  # and all goes on


@pytest.mark.parametrize("stat, status, sentence", [
    ("UNDELIV", "undelivered", "The carrier could not deliver it"),
    ("REJECTD", "failed", "The carrier rejected it"),
    ("EXPIRED", "undelivered", "Its validity ran out at the carrier before it could be delivered")])
async def test_a_receipt_that_ends_a_message_badly_says_why(gw, stat, status, sentence):
    gw.sim.handler.outcome, gw.sim.handler.receipt_err = stat, "034"
    c = await customer(gw, [("55501", "short_code")])
    got = await final(gw, c, (await send(gw, c, to=us(1)))["id"], status=status)
    assert got["error_code"] == f"receipt_{stat.lower()}"
    assert got["error_message"] == f"{sentence} (receipt stat {stat}, err 034)."


async def unmatched_count(gw) -> int:
    from sqlalchemy import func, select

    from gateway.store.models import UnmatchedReceipt

    async with gw.sm() as session:
        return await session.scalar(select(func.count()).select_from(UnmatchedReceipt))


async def test_receipts_that_would_match_in_another_base_are_warned_about_now_and_then(gw, caplog):
    """The SMSC quotes ids in decimal in its receipts, the carrier is set up with receipt_id_base "same": a
    WARNING names the carrier, the count and the setting that fits; those that follow within [alerts] interval_s
    are summed up in one line when it ends, not one per receipt."""
    caplog.set_level(logging.INFO, logger="gateway.sending.receipts")
    gw.sim.receipt_id_format = "decimal"
    c = await customer(gw, [("55501", "short_code")])

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "receipt_id_base" in r.getMessage()]

    async def burst(first: int) -> None:
        resp = await gw.post("/v1/messages/batch", headers=c.headers, json={
            "messages": [{"to": us(n), "body": f"r{n}"} for n in range(first, first + 8)]})
        assert (await resp.json())["accepted"] == 8
        await wait_for(lambda: asyncio.sleep(0, len(gw.sim.received) == first + 8))
        await wait_for(lambda: _at_least(gw, first + 8), timeout=10)
        await gw.app[app_keys.DISPATCHER].sweep()  # the sweep looks at the receipts that stayed unmatched

    await burst(0)
    assert len(warnings()) == 1
    assert warnings()[0].startswith("carrier sim: ")
    assert 'receipt_id_base = "hex_to_dec" (it is "same")' in warnings()[0]
    assert int(warnings()[0].split()[2]) >= 5  # the count of receipts that would have matched
    assert " in the last 1 min matched no message" in warnings()[0]  # a burst: never "in the last 0 s"
    await burst(8)
    assert len(warnings()) == 1  # counted, for the interval's summary
    alerts = gw.app[app_keys.METRICS].alerts
    alerts.settings.interval_s = 0.0  # the interval ends
    alerts.tick()
    assert len(warnings()) == 2
    summary = warnings()[1]
    assert summary.startswith('receipts that would match with receipt_id_base = "hex_to_dec" (carrier sim): ')
    assert 5 <= int(summary.split(": ")[1].split()[0]) <= 8 and " more in the last " in summary
    alerts.tick()  # an interval without any: the next is said at once again
    await burst(16)
    assert len(warnings()) == 3 and warnings()[2].startswith("carrier sim: ")
    got = await (await gw.get(f"/v1/messages/{(await send(gw, c, to=us(30)))['id']}", headers=c.headers)).json()
    assert got["status"] in ("queued", "sending", "sent")  # nothing was matched under a guessed base


async def _at_least(gw, n: int) -> bool:
    return await unmatched_count(gw) >= n


async def test_unmatched_receipts_expire(gw, migrated, caplog):
    from registry.db import utcnow

    caplog.set_level(logging.INFO, logger="gateway.sending.receipts")
    c = await customer(gw, [("55501", "short_code")])
    await final(gw, c, (await send(gw, c, to=us(1)))["id"])
    gw.sim.send_receipt(gw.sim.received[0], message_id="FFFFFFF0")
    await wait_for(lambda: _at_least(gw, 1))
    dispatcher = gw.app[app_keys.DISPATCHER]
    now = utcnow()
    assert migrated.dispatcher.unmatched_ttl_h == migrated.dispatcher.receipt_timeout_h == 72  # by default
    assert await dispatcher.matcher.expire_unmatched(now + dt.timedelta(hours=71)) == 0
    migrated.dispatcher.unmatched_receipt_ttl_h = 2.0
    assert await dispatcher.matcher.expire_unmatched(now + dt.timedelta(hours=1)) == 0
    assert await dispatcher.matcher.expire_unmatched(now + dt.timedelta(hours=2, minutes=1)) == 1
    assert await unmatched_count(gw) == 0
    assert "1 receipt(s) that matched no message within 2 h dropped" in caplog.text
    await final(gw, c, (await send(gw, c, to=us(2)))["id"])  # and all goes on


# --- batches ---------------------------------------------------------------------------------------------------

async def test_batch_answers_each_message(gw):
    c = await customer(gw, [("55501", "short_code")])
    batch = [{"to": us(n), "body": f"b{n}"} for n in range(5)] + [{"to": "nope", "body": "x"}, "not an object"]
    resp = await gw.post("/v1/messages/batch", json={"messages": batch}, headers=c.headers)
    data = await resp.json()
    assert (resp.status, data["accepted"], data["failed"]) == (200, 5, 2)
    assert [r["status_code"] for r in data["results"]] == [202] * 5 + [422, 422]
    assert data["results"][5]["error"]["code"] == "invalid_destination"
    for r in data["results"][:5]:
        await final(gw, c, r["message"]["id"])
    resp = await gw.post("/v1/messages/batch", json={"messages": [{"to": us(1), "body": "x"}] * 1001},
                         headers=c.headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "batch_too_large")


async def test_admin_token_is_not_an_api_key(gw):
    resp = await gw.post("/v1/messages", json={"to": us(1), "body": "x"}, headers=ADMIN)
    assert resp.status == 401


async def test_10dlc_campaign_limits_per_carrier(gw):
    """A brand with trust score 30: AT&T class E/F, 240 SMS a minute = 4 a second for the campaign."""
    c = await customer(gw, [(us(90), "ten_dlc")], max_rate_per_s=100)
    async with gw.sm() as session, session.begin():
        campaign = await live_campaign(session, c.account_id, trust_score=30)
        await session.execute(update(Number).where(Number.number == us(90)).values(campaign_id=campaign.id))
    att = [f"+141555501{n:02d}" for n in range(0, 10)]  # +1415555010x: AT&T in config/carrier_lookup.toml
    ids = [(await send(gw, c, to=to))["id"] for to in att]
    for mid in ids:
        await final(gw, c, mid, timeout=10)
    assert max(gw.sim.per_second.values()) <= 4
    times = sorted(s.received_at for s in gw.sim.received)
    assert times[-1] - times[0] >= 9 / 4 - 0.2
