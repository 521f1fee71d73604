"""The durable queue and the receipt path, driven through orderings a socket rarely produces."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from carriers import CarrierRejected, CarrierRetryable, Receipt, SubmitResult
from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.store.models import Message, MessageEvent, UnmatchedReceipt
from tests.conftest import new_customer, wait_for


async def start(aiohttp_client, settings, sessionmaker, carrier):
    client = await aiohttp_client(create_app(settings, carriers=[carrier]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    client.sessionmaker = sessionmaker
    return client


async def send(client, body: str = "hello", **extra) -> str:
    resp = await client.post("/v1/messages", json={"to": "+14155550123", "body": body, **extra},
                             headers=client.customer.headers)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def status_of(client, mid: str) -> dict:
    return await (await client.get(f"/v1/messages/{mid}", headers=client.customer.headers)).json()


async def until_status(client, mid: str, status: str, timeout: float = 5.0) -> dict:
    async def check() -> bool:
        return (await status_of(client, mid))["status"] == status

    await wait_for(check, timeout)
    return await status_of(client, mid)


async def test_receipt_before_the_submit_answer(aiohttp_client, migrated, sessionmaker):
    async def early(carrier: LoopbackCarrier, sms):
        mid = carrier.next_id()
        await carrier.deliver_receipt(Receipt(carrier_message_id=mid, stat="DELIVRD"))
        await asyncio.sleep(0.1)  # the receipt is written (unmatched) before the submit result
        return SubmitResult((mid,))

    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", early))
    mid = await send(client)
    got = await until_status(client, mid, "delivered")
    assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(UnmatchedReceipt)) == 0


@pytest.mark.parametrize("base, submit_id, receipt_id", [
    ("same", "000A1B2C", "a1b2c"),  # other case, no leading zeros
    ("hex_to_dec", "000A1B2C", str(0xA1B2C)),  # decimal in the receipt
    ("dec_to_hex", str(0xA1B2C), "A1B2C"),  # hex in the receipt
])
async def test_receipt_ids_in_another_base_case_or_padding(aiohttp_client, migrated, sessionmaker, base,
                                                           submit_id, receipt_id):
    async def answer(carrier: LoopbackCarrier, sms):
        carrier.later(0.05, Receipt(carrier_message_id=receipt_id, stat="DELIVRD"))
        return SubmitResult((submit_id,))

    migrated.carriers[0].receipt_id_base = base
    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", answer))
    mid = await send(client)
    assert (await until_status(client, mid, "delivered"))["carrier_message_id"] == submit_id


async def test_ids_valid_in_both_bases_are_not_confused(aiohttp_client, migrated, sessionmaker):
    """"10" read as hex is 16: with receipts quoting ids as given, message "0000000a" must not take "10"'s receipt."""
    carrier = LoopbackCarrier("sim", receipt_delay=None)
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    ids = [await send(client, f"m{i}") for i in range(17)]
    for mid in ids:
        await until_status(client, mid, "sent")
    tenth = await status_of(client, ids[9])
    assert tenth["carrier_message_id"] == "0000000a"
    await carrier.deliver_receipt(Receipt(carrier_message_id="00000010", stat="UNDELIV"))
    await until_status(client, ids[15], "undelivered")
    assert (await status_of(client, ids[9]))["status"] == "sent"


async def test_duplicate_receipts_count_once(aiohttp_client, migrated, sessionmaker):
    async def twice(carrier: LoopbackCarrier, sms):
        mid = carrier.next_id()
        carrier.later(0.02, Receipt(carrier_message_id=mid, stat="DELIVRD"))
        carrier.later(0.2, Receipt(carrier_message_id=mid, stat="UNDELIV"))
        return SubmitResult((mid,))

    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", twice))
    mid = await send(client)
    await until_status(client, mid, "delivered")
    await asyncio.sleep(0.4)
    got = await status_of(client, mid)
    assert got["status"] == "delivered"
    assert [e["type"] for e in got["events"]].count("TEXT_DELIVERED") == 1
    assert "TEXT_UNREACHABLE" not in [e["type"] for e in got["events"]]


async def test_multipart_is_delivered_when_all_parts_are(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim", receipt_delay=None)
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    mid = await send(client, "x" * 400)  # 3 parts of 153/153/94
    got = await until_status(client, mid, "sent")
    assert got["segments"] == 3 and len(got["carrier_message_ids"]) == 3
    assert [len(s.payload) for s in carrier.sent[0].segments] == [153, 153, 94]
    first, second, third = got["carrier_message_ids"]
    await carrier.deliver_receipt(Receipt(carrier_message_id=first, stat="DELIVRD"))
    await carrier.deliver_receipt(Receipt(carrier_message_id=second, stat="DELIVRD"))
    await asyncio.sleep(0.2)
    assert (await status_of(client, mid))["status"] == "sent"
    await carrier.deliver_receipt(Receipt(carrier_message_id=third, stat="DELIVRD"))
    await until_status(client, mid, "delivered")


async def test_a_failed_part_makes_the_message_undelivered(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim", receipt_delay=None)
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    mid = await send(client, "x" * 200)
    ids = (await until_status(client, mid, "sent"))["carrier_message_ids"]
    await carrier.deliver_receipt(Receipt(carrier_message_id=ids[0], stat="DELIVRD"))
    await carrier.deliver_receipt(Receipt(carrier_message_id=ids[1], stat="UNDELIV", error_code="001"))
    got = await until_status(client, mid, "undelivered")
    assert got["error_code"] == "receipt_undeliv"
    assert got["events"][-1]["type"] == "TEXT_UNREACHABLE"


async def test_throttled_is_retried_not_failed(aiohttp_client, migrated, sessionmaker):
    calls = []

    async def throttle_twice(carrier: LoopbackCarrier, sms):
        calls.append(1)
        if len(calls) <= 2:
            raise CarrierRetryable("slow down", code="throttled", command_status=0x58)
        mid = carrier.next_id()
        carrier.later(0.01, Receipt(carrier_message_id=mid, stat="DELIVRD"))
        return SubmitResult((mid,))

    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", throttle_twice))
    mid = await send(client)
    got = await until_status(client, mid, "delivered")
    assert got["attempts"] == 3 and len(calls) == 3


async def test_rejected_is_failed_with_the_smpp_code(aiohttp_client, migrated, sessionmaker):
    async def reject(carrier, sms):
        raise CarrierRejected("invalid destination", code="rejected", command_status=0x0B)

    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", reject))
    mid = await send(client)
    got = await until_status(client, mid, "failed")
    assert got["error_code"] == "smpp_0x0b"
    assert got["events"][-1] == {**got["events"][-1], "type": "TEXT_CARRIER_UNREACHABLE", "error_code": "smpp_0x0b"}


async def test_time_to_live_runs_out_while_throttled(aiohttp_client, migrated, sessionmaker):
    async def always_throttled(carrier, sms):
        raise CarrierRetryable("slow down", code="throttled", command_status=0x58)

    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", always_throttled))
    mid = await send(client, ttl=5)
    got = await until_status(client, mid, "expired", timeout=10)
    assert got["error_code"] == "ttl_expired"
    assert [e["type"] for e in got["events"]] == ["TEXT_QUEUED", "TEXT_TTL_EXPIRED"]


async def test_unknown_receipt_is_kept_and_nothing_breaks(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim")
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    await carrier.deliver_receipt(Receipt(carrier_message_id="deadbeef99", stat="DELIVRD", raw="id:deadbeef99"))

    async def kept() -> bool:
        async with sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(UnmatchedReceipt)) == 1

    await wait_for(kept)
    mid = await send(client)
    await until_status(client, mid, "delivered")


async def test_a_message_whose_receipt_never_comes_ends_undelivered(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim", receipt_delay=None)  # a carrier that never sends receipts
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    mid = await send(client)
    sent = await until_status(client, mid, "sent")
    dispatcher = client.app[app_keys.DISPATCHER]
    sent_at = dt.datetime.fromisoformat(sent["sent_at"].replace("Z", "+00:00"))
    assert await dispatcher.sweeper.expire_unreceipted(sent_at + dt.timedelta(hours=71)) == 0  # still waiting
    assert await dispatcher.sweeper.expire_unreceipted(sent_at + dt.timedelta(hours=72, seconds=1)) == 1
    got = await status_of(client, mid)
    assert (got["status"], got["error_code"]) == ("undelivered", "receipt_timeout")
    assert [e["type"] for e in got["events"]][-1] == "TEXT_UNKNOWN"
    # a receipt that turns up after all changes nothing: the message has its one final state
    await carrier.deliver_receipt(Receipt(carrier_message_id=got["carrier_message_id"], stat="DELIVRD", raw=""))
    await asyncio.sleep(0.2)
    assert (await status_of(client, mid))["status"] == "undelivered"


async def test_messages_in_flight_at_a_crash_are_sent_again(aiohttp_client, migrated, sessionmaker):
    """A message left in 'sending' by a dead process is queued again at start-up and reaches a final state."""
    carrier = LoopbackCarrier("sim", receipt_delay=None)
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    mid = await send(client)
    await until_status(client, mid, "sent")
    async with sessionmaker() as session, session.begin():  # pretend it was claimed and the process died
        await session.execute(update(Message).where(Message.public_id == mid).values(status="sending"))
    await client.close()
    carrier2 = LoopbackCarrier("sim")
    client2 = await aiohttp_client(create_app(migrated, carriers=[carrier2]))
    client2.customer = client.customer
    got = await until_status(client2, mid, "delivered")
    assert len(carrier2.sent) == 1 and got["attempts"] == 2
    async with sessionmaker() as session:
        finals = await session.scalar(select(func.count()).select_from(MessageEvent).where(
            MessageEvent.type == "TEXT_DELIVERED"))
    assert finals == 1


async def test_burst_all_reach_a_final_state_once(aiohttp_client, migrated, sessionmaker):
    carrier = LoopbackCarrier("sim", receipt_delay=0.01)
    client = await start(aiohttp_client, migrated, sessionmaker, carrier)
    ids = await asyncio.gather(*(send(client, f"m{i}") for i in range(300)))

    async def all_done() -> bool:
        async with sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(Message).where(
                Message.status == "delivered")) == 300

    await wait_for(all_done, timeout=20)
    assert len(carrier.sent) == 300 and len(set(ids)) == 300
    async with sessionmaker() as session:
        delivered_events = await session.scalar(select(func.count()).select_from(MessageEvent).where(
            MessageEvent.type == "TEXT_DELIVERED"))
    assert delivered_events == 300


@pytest.mark.parametrize("stat, status, event", [
    ("UNDELIV", "undelivered", "TEXT_UNREACHABLE"),
    ("EXPIRED", "undelivered", "TEXT_CARRIER_UNREACHABLE"),
    ("REJECTD", "failed", "TEXT_CARRIER_BLOCKED"),
])
async def test_receipt_outcomes(aiohttp_client, migrated, sessionmaker, stat, status, event):
    client = await start(aiohttp_client, migrated, sessionmaker, LoopbackCarrier("sim", receipt_stat=stat))
    mid = await send(client)
    got = await until_status(client, mid, status)
    assert got["events"][-1]["type"] == event
