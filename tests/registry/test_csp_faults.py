"""The registry simulator's failure injection, seen through CspClient and at a real webhook receiver: 5xx and
slowness on the API, duplicated, reordered and dropped webhooks, a receiver that fails; and its snapshot file."""

from __future__ import annotations

import pytest

from registry.csp.client import CspError
from registry.csp.simulator import SimState
from tests.registry.csp_fixtures import BRAND, KEY, SECRET, start_registry


@pytest.fixture
async def reg(aiohttp_server):
    registry, stop = await start_registry(aiohttp_server)
    yield registry
    await stop()


def _record(records: list[dict], event_type: str, **match: object) -> dict:
    [record] = [r for r in records if r["event"]["eventType"] == event_type
                and all(r["event"].get(k) == v for k, v in match.items())]
    return record


async def test_the_next_5xx_are_retried_and_the_call_succeeds(reg):
    calls: list = []

    async def on_call(*args: object) -> None:
        calls.append(args)

    await reg.client.set_faults(http_5xx_next=2)
    async with reg.new_client(retries=2, on_call=on_call) as client:
        brand = await client.register_brand(BRAND | {"referenceId": "retried"})
    assert [(c[0], c[1], c[3], c[5]) for c in calls] == [
        ("POST", "/v1/brand/nonBlocking", 503, "registry_unavailable")] * 2 + [
        ("POST", "/v1/brand/nonBlocking", 200, None)]
    assert calls[-1][4]["brandId"] == brand["brandId"] and len(reg.state.brands) == 1
    assert SECRET not in repr(calls) and KEY not in repr(calls)
    assert (await reg.client.faults())["http_5xx_next"] == 0


async def test_5xx_beyond_the_retries_is_registry_unavailable_and_does_nothing(reg):
    await reg.client.set_faults(http_5xx_next=3)
    async with reg.new_client(retries=2) as client:
        with pytest.raises(CspError) as err:
            await client.register_brand(BRAND)
    assert (err.value.code, err.value.status, err.value.retryable) == ("registry_unavailable", 503, True)
    assert reg.state.brands == {}
    await reg.client.set_faults(http_5xx_rate=1.0)
    with pytest.raises(CspError) as err:
        await reg.client.get_brand("BNOSUCH")
    assert err.value.code == "registry_unavailable"
    assert (await reg.client.clock())["now"]  # the control API is never subject to the faults
    await reg.client.set_faults(http_5xx_rate=0.0)
    assert (await reg.client.register_brand(BRAND))["brandId"]


async def test_a_5xx_rate_is_reproducible_with_a_seed(reg):
    async def outcomes() -> list[bool]:
        await reg.client.set_faults(http_5xx_rate=0.5, seed=7)
        results = []
        async with reg.new_client(retries=0) as client:
            for _ in range(12):
                try:
                    await client.subscriptions()
                    results.append(True)
                except CspError:
                    results.append(False)
        return results

    first, second = await outcomes(), await outcomes()
    assert first == second and True in first and False in first


async def test_a_delay_beyond_the_timeout_is_registry_timeout_and_the_reference_id_keeps_one_brand(reg):
    await reg.client.set_faults(delay_ms=500)
    async with reg.new_client(retries=1, timeout_s=0.1) as client:
        with pytest.raises(CspError) as err:
            await client.register_brand(BRAND | {"referenceId": "slow-1"})
    assert (err.value.code, err.value.status, err.value.retryable) == ("registry_timeout", None, True)
    await reg.client.set_faults(delay_ms=0)
    # the late attempts took effect after the client gave up; the retry with the same referenceId finds that brand
    await reg.receiver.wait_for(lambda evs: any(e["eventType"] == "BRAND_SCORE_UPDATE" for e in evs))
    brand = await reg.client.register_brand(BRAND | {"referenceId": "slow-1"})
    assert list(reg.state.brands) == [brand["brandId"]]


async def test_duplicated_webhooks_carry_the_same_event_id(reg):
    await reg.client.set_faults(webhook_duplicate_rate=1.0)
    brand = await reg.client.register_brand(BRAND)
    await reg.receiver.wait_for(lambda evs: len(evs) == 2)
    first, second = reg.receiver.events
    assert first == second and first["brandId"] == brand["brandId"]
    record = _record(await reg.client.events(), "BRAND_SCORE_UPDATE", brandId=brand["brandId"])
    assert (record["state"], record["delivered"], record["duplicates"]) == ("delivered", True, 1)


async def test_reordered_webhooks_arrive_newest_first(reg):
    campaign = await reg.accepted_campaign()
    await reg.client.set_faults(webhook_reorder=True)
    await reg.client.advance(5)  # the four carriers' reviews come due together, held, released newest first
    mno = lambda evs: [e for e in evs if e["eventType"].startswith("MNO_")]  # noqa: E731 - a filter, named
    await reg.receiver.wait_for(lambda evs: len(mno(evs)) == 4)
    received = mno(reg.receiver.events)
    assert [e["mno"] for e in received] == ["USCELLULAR", "VERIZON", "TMOBILE", "ATT"]
    assert [e["sequence"] for e in received] == sorted((e["sequence"] for e in received), reverse=True)
    assert {e["campaignId"] for e in received} == {campaign["campaignId"]}
    listed = [r["event"]["sequence"] for r in await reg.client.events()]
    assert listed == sorted(listed)  # the control API lists them in the order they were generated


async def test_reorder_holds_events_until_it_is_switched_off(reg):
    await reg.client.set_faults(webhook_reorder=True)
    first = await reg.client.register_brand(BRAND | {"referenceId": "one"})
    await reg.receiver.wait_for(lambda _: len(reg.state.log.held) == 1)
    second = await reg.client.update_brand(first["brandId"], {"ein": "111111111"})
    await reg.receiver.wait_for(lambda _: len(reg.state.log.held) == 2)
    records = await reg.client.events()
    assert [r["state"] for r in records] == ["held", "held"] and reg.receiver.events == []
    await reg.client.set_faults(webhook_reorder=False)
    await reg.receiver.wait_for(lambda evs: len(evs) == 2)
    newest, oldest = reg.receiver.events
    assert newest["brandScore"] == 50 + 9 % 26 and second["brandId"] == newest["brandId"]
    assert (newest["sequence"], newest["createDate"]) > (oldest["sequence"], oldest["createDate"])


async def test_a_dropped_webhook_never_arrives_until_redelivered(reg):
    await reg.client.set_faults(webhook_drop_next=1)
    lost = await reg.client.register_brand(BRAND | {"referenceId": "lost"})
    await reg.receiver.wait_for(lambda _: len(reg.state.log.records) == 1)
    kept = await reg.client.register_brand(BRAND | {"referenceId": "kept"})
    await reg.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=kept["brandId"])
    # delivery is in order: the later event has arrived, so the dropped one was never sent
    assert reg.receiver.of("BRAND_SCORE_UPDATE", brandId=lost["brandId"]) == []
    record = _record(await reg.client.events(), "BRAND_SCORE_UPDATE", brandId=lost["brandId"])
    assert (record["state"], record["dropped"], record["delivered"], record["attempts"]) == (
        "dropped", True, False, 0)
    assert (await reg.client.get_brand(lost["brandId"]))["identityStatus"] == "VERIFIED"  # what a poll finds
    assert (await reg.client.redeliver())["queued"] == 2
    await reg.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=lost["brandId"])
    await reg.receiver.wait_for(lambda evs: len(evs) == 3)
    assert len({e["eventId"] for e in reg.receiver.events}) == 2  # the kept one twice, with its one id
    assert _record(await reg.client.events(), "BRAND_SCORE_UPDATE", brandId=lost["brandId"])["delivered"] is True


async def test_a_failing_receiver_gets_the_event_on_a_retry(reg):
    reg.receiver.fail_next = 2
    brand = await reg.client.register_brand(BRAND)
    await reg.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=brand["brandId"])
    record = _record(await reg.client.events(), "BRAND_SCORE_UPDATE")
    assert (record["state"], record["attempts"], record["lastStatus"]) == ("delivered", 3, 200)
    assert len(reg.receiver.events) == 1


async def test_an_event_out_of_attempts_is_failed_and_redelivered_later(aiohttp_server):
    reg, stop = await start_registry(aiohttp_server, webhook_attempts=2)
    try:
        reg.receiver.fail_next = 2
        await reg.client.register_brand(BRAND)
        await reg.receiver.wait_for(lambda _: reg.state.log.records and reg.state.log.records[0]["state"] == "failed")
        record = (await reg.client.events())[0]
        assert (record["delivered"], record["attempts"], record["lastStatus"]) == (False, 2, 500)
        await reg.client.redeliver()
        await reg.receiver.wait_for(lambda evs: len(evs) == 1)
        assert (await reg.client.events())[0]["state"] == "delivered"
    finally:
        await stop()


async def test_an_event_without_a_subscription_is_not_sent(reg):
    await reg.client.unsubscribe("BRAND")
    await reg.client.register_brand(BRAND)
    await reg.receiver.wait_for(lambda _: reg.state.log.records and reg.state.log.records[0]["state"] == "unsubscribed")
    assert reg.receiver.events == [] and (await reg.client.events())[0]["delivered"] is False


async def test_bad_faults_are_refused(reg):
    for faults, code in (({"http_5xx_rate": 2}, "INVALID_FIELD"), ({"webhook_reorder": "yes"}, "INVALID_FIELD"),
                         ({"http_5xx_next": 1.5}, "INVALID_FIELD"), ({"explode": 1}, "UNKNOWN_FAULT")):
        with pytest.raises(CspError) as err:
            await reg.client.set_faults(**faults)
        assert (err.value.code, err.value.status) == (code, 400), faults
    assert await reg.client.faults() == {"http_5xx_rate": 0.0, "http_5xx_next": 0, "delay_ms": 0,
                                         "webhook_duplicate_rate": 0.0, "webhook_reorder": False,
                                         "webhook_drop_next": 0, "seed": 0}


async def test_the_snapshot_keeps_brands_campaigns_the_clock_and_references(aiohttp_server, tmp_path):
    path = tmp_path / "registry.json"
    reg, stop = await start_registry(aiohttp_server, snapshot_path=str(path))
    try:
        campaign = await reg.accepted_campaign(referenceId="camp-ref")
        clock = await reg.client.clock()
        await reg.receiver.wait_for(lambda _: all(r["state"] == "delivered" for r in reg.state.log.records))
    finally:
        await stop()
    again = SimState(KEY, SECRET, snapshot_path=str(path))
    assert list(again.campaigns) == [campaign["campaignId"]] and campaign["brandId"] in again.brands
    assert again.campaigns[campaign["campaignId"]]["sharingStatus"] == "ACCEPTED"
    assert again.clock()["offsetDays"] == pytest.approx(clock["offsetDays"], abs=1e-3)
    assert [r["state"] for r in again.log.records] == ["delivered", "delivered"]
    assert again.create_campaign({"referenceId": "camp-ref"})["campaignId"] == campaign["campaignId"]
    assert again.schedule  # the carriers' review is still coming due
