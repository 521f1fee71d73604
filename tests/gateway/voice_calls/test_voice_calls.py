"""Voice messages end to end: API -> render (real espeak-ng) -> signed audio URL -> HTTP voice carrier simulator
(fetches and checks the audio) -> status callbacks -> the call's status, events, customer webhooks, metrics."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from carriers.loopback import LoopbackCarrier
from carriers.simulator.voice import VoiceSimulator
from gateway.api import app_keys
from gateway.api.app import create_app
from tests.conftest import new_customer, wait_for

FROM = "+14155550100"


@pytest.fixture
async def voice_sim():
    sim = VoiceSimulator(rules={"+14155550131": "busy", "+14155550132": "no_answer", "+14155550133": "failed"})
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def gw(aiohttp_client, migrated, sessionmaker, voice_sim, aiohttp_server):
    migrated.voice.carrier_url = voice_sim.url
    migrated.voice.cache_dir = str(migrated.data_path / "audio")
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    migrated.server.public_url = str(client.make_url("")).rstrip("/")  # where the carrier fetches audio
    client.customer = await new_customer(client, sessionmaker, "acme",
                                         numbers=((FROM, "long_code"), ("55501", "short_code")))
    client.events = []

    async def hook(request: web.Request) -> web.Response:
        client.events.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/", hook)
    server = await aiohttp_server(app)
    await client.patch("/v1/account", json={"event_webhook_url": str(server.make_url("/"))},
                       headers=client.customer.headers)
    client.voice_sim = voice_sim
    return client


async def call(gw, expect: int = 202, **body) -> dict:
    resp = await gw.post("/v1/voice-messages", json=body, headers=gw.customer.headers)
    data = await resp.json()
    assert resp.status == expect, data
    return data


async def until(gw, vid: str, status: str) -> dict:
    got: dict = {}

    async def done() -> bool:
        nonlocal got
        got = await (await gw.get(f"/v1/voice-messages/{vid}", headers=gw.customer.headers)).json()
        return got["status"] == status

    await wait_for(done, timeout=10)
    return got


async def test_completed_call_with_personalised_code(gw):
    sent = await call(gw, to="+14155550123", script="Hello {name}, your code is {code}.",
                      variables={"name": "Ada", "code": "4821"})
    assert sent["status"] == "queued" and sent["from"] == FROM  # an unregistered long code may place calls
    got = await until(gw, sent["id"], "completed")
    assert [e["type"] for e in got["events"]] == ["VOICE_INITIATED", "VOICE_RINGING", "VOICE_ANSWERED",
                                                  "VOICE_COMPLETED"]
    assert got["outcome"] == "completed" and got["duration_s"] == pytest.approx(got["audio_ms"] / 1000, abs=0.05)
    placed = gw.voice_sim.calls[0]
    assert placed["audio_seconds"] and placed["to"] == "+14155550123"
    await wait_for(lambda: asyncio.sleep(0, any(e["event_type"] == "VOICE_COMPLETED" for e in gw.events)))


@pytest.mark.parametrize("to, outcome, steps", [
    ("+14155550131", "busy", ["VOICE_INITIATED", "VOICE_RINGING", "VOICE_BUSY"]),
    ("+14155550132", "no_answer", ["VOICE_INITIATED", "VOICE_RINGING", "VOICE_NO_ANSWER"]),
    ("+14155550133", "failed", ["VOICE_INITIATED", "VOICE_FAILED"]),
])
async def test_other_outcomes(gw, to, outcome, steps):
    sent = await call(gw, to=to, markup='<speak>Reminder <break time="300ms"/> tomorrow at 3 pm.</speak>')
    got = await until(gw, sent["id"], outcome)
    assert [e["type"] for e in got["events"]] == steps


async def test_same_script_is_rendered_once(gw):
    calls = gw.app[app_keys.VOICE]
    first = await call(gw, to="+14155550124", script="Your order has shipped.")
    await until(gw, first["id"], "completed")
    before = calls.renderer.syntheses
    second = await call(gw, to="+14155550125", script="Your order has shipped.")
    await until(gw, second["id"], "completed")
    assert calls.renderer.syntheses == before


async def test_audio_links_are_signed_and_expire(gw):
    sent = await call(gw, to="+14155550126", script="Signed audio.")
    await until(gw, sent["id"], "completed")
    url = gw.voice_sim.calls[0]["audio_url"]
    path = url.split(str(gw.make_url("")).rstrip("/"), 1)[1]
    assert (await gw.get(path)).status == 200
    assert (await gw.get(path.replace("sig=", "sig=0"))).status == 401
    assert (await gw.get(path.split("?")[0] + "?expires=1&sig=x")).status == 401


async def test_invalid_audio_fails_the_call(gw):
    import wave

    from voice.markup import parse

    renderer = gw.app[app_keys.VOICE].renderer
    script = "Nobody will hear this."
    path = renderer.path(renderer.key(parse(script), "en-us"))
    with wave.open(str(path), "wb") as w:  # 16-bit PCM in the cache: not telephony audio
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x01" * 8000)
    sent = await call(gw, to="+14155550127", script=script)
    got = await until(gw, sent["id"], "failed")
    assert got["error_code"] == "invalid_audio"


@pytest.mark.parametrize("body, code", [
    ({"to": "+14155550123", "script": ""}, "empty_script"),
    ({"to": "+14155550123", "script": "x" * 3001}, "script_too_long"),
    ({"to": "+14155550123", "markup": "<speak>oops"}, "malformed_markup"),
    ({"to": "+14155550123", "script": "Hi {name}"}, "missing_variable"),
    ({"to": "+14155550123", "script": "Hi", "voice": "xx-robot"}, "unknown_voice"),
    ({"to": "+14155550123", "script": "Hi", "language": "tlh"}, "unknown_language"),
    ({"to": "+14155550123"}, "missing_field"),
    ({"to": "+14155550123", "script": "Hi", "from": "55501"}, "invalid_from"),  # short codes place no calls
    ({"to": "nope", "script": "Hi"}, "invalid_destination"),
    ({"to": "+1415555abcd", "script": "Hi"}, "invalid_destination"),  # not dialled as keypad digits
    ({"to": "+14155550123 ext. 12", "script": "Hi"}, "invalid_destination"),  # nor without its extension
    ({"to": "+14155550123;ext=12", "script": "Hi"}, "invalid_destination"),
])
async def test_bad_input_answers_422(gw, body, code):
    data = await call(gw, expect=422, **body)
    assert data["error"]["code"] == code


async def test_channel_auto_calls_landlines(gw):
    resp = await gw.post("/v1/messages", json={"to": "+14155550190", "body": "Your table is ready", "channel": "auto"},
                         headers=gw.customer.headers)  # +1415555019x is a landline in config/carrier_lookup.toml
    data = await resp.json()
    assert resp.status == 202 and data["channel"] == "voice" and data["id"].startswith("vm_")
    await until(gw, data["id"], "completed")
    resp = await gw.post("/v1/messages", json={"to": "+14155550123", "body": "Your table is ready", "channel": "auto"},
                         headers=gw.customer.headers)
    assert (await resp.json())["id"].startswith("msg_")  # a mobile gets SMS


async def test_metrics_per_number_and_account(gw):
    done = []
    for to, status in [("+14155550123", "completed"), ("+14155550131", "busy"), ("+14155550133", "failed")]:
        sent = await call(gw, to=to, script="Metrics call.")
        done.append(until(gw, sent["id"], status))
    await asyncio.gather(*done)
    metrics = await (await gw.get("/v1/voice-metrics", headers=gw.customer.headers)).json()
    assert metrics["account"] == {**metrics["account"], "calls": 3, "completed": 1, "busy": 1, "failed": 1,
                                  "no_answer": 0}
    assert metrics["numbers"][FROM]["calls"] == 3 and metrics["account"]["minutes"] > 0


async def test_forged_callbacks_are_refused(gw):
    resp = await gw.post("/callbacks/voice/vm_123.deadbeef", json={"status": "completed"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (401, "invalid_callback")


async def stored_calls(gw) -> int:
    return (await (await gw.get("/v1/voice-metrics", headers=gw.customer.headers)).json())["account"]["calls"]


async def test_dry_run_places_no_call_on_any_route(gw):
    sends = [("/v1/messages", {"to": "+14155550124", "body": "Dry", "channel": "voice", "dry_run": True}),
             ("/v1/messages", {"to": "+14155550190", "body": "Dry", "channel": "auto", "dry_run": True}),  # landline
             ("/v1/voice-messages", {"to": "+14155550125", "script": "Dry", "dry_run": True})]
    for path, body in sends:
        resp = await gw.post(path, json=body, headers=gw.customer.headers)
        data = await resp.json()
        assert (resp.status, data["status"], data["id"], data["channel"]) == (200, "dry_run", None, "voice"), data
        assert data["from"] == FROM  # validated as a call would be: the number it would place it from
    resp = await gw.post("/v1/messages", json={"to": "+14155550124", "body": "", "channel": "voice", "dry_run": True},
                         headers=gw.customer.headers)
    assert (await resp.json())["error"]["code"] == "empty_body"  # and refused as a call would be
    sentinel = await call(gw, to="+14155550126", script="Real.")  # the worker has run past anything stored before
    await until(gw, sentinel["id"], "completed")
    assert [c["to"] for c in gw.voice_sim.calls] == ["+14155550126"]
    assert await stored_calls(gw) == 1


@pytest.mark.parametrize("path, body", [
    ("/v1/voice-messages", {"to": "+14155550124", "script": "Once."}),
    ("/v1/messages", {"to": "+14155550124", "body": "Once.", "channel": "voice"}),
    ("/v1/messages", {"to": "+14155550190", "body": "Once.", "channel": "auto"}),  # a landline: a call
])
async def test_idempotency_key_places_one_call(gw, path, body):
    headers = {**gw.customer.headers, "Idempotency-Key": "call-7"}
    first = await gw.post(path, json=body, headers=headers)
    again = await gw.post(path, json=dict(reversed(body.items())), headers=headers)  # key order is no other request
    sent = await first.json()
    assert (first.status, again.status) == (202, 200) and (await again.json())["id"] == sent["id"]
    await until(gw, sent["id"], "completed")
    late = await gw.post(path, json=body, headers=headers)  # the same answer once the call is over
    assert (late.status, (await late.json())["status"]) == (200, "completed")
    sentinel = await call(gw, to="+14155550126", script="Sentinel.")
    await until(gw, sentinel["id"], "completed")
    assert sorted(c["to"] for c in gw.voice_sim.calls) == sorted([body["to"], "+14155550126"])
    assert await stored_calls(gw) == 2


async def test_idempotency_key_reused_with_another_request_is_refused(gw):
    headers = {**gw.customer.headers, "Idempotency-Key": "call-8"}
    resp = await gw.post("/v1/voice-messages", json={"to": "+14155550124", "script": "First."}, headers=headers)
    assert resp.status == 202
    refused = [("/v1/voice-messages", {"to": "+14155550125", "script": "First."}),  # another recipient
               ("/v1/voice-messages", {"to": "+14155550124", "script": "Second."}),  # another script
               ("/v1/messages", {"to": "+14155550124", "body": "First.", "channel": "voice"}),  # another route
               ("/v1/messages", {"to": "+14155550124", "body": "First."}),  # another channel: SMS
               ("/v1/voice-messages", {"to": "+14155550124", "script": "First.", "dry_run": True})]
    for path, body in refused:
        resp = await gw.post(path, json=body, headers=headers)
        assert (resp.status, (await resp.json())["error"]["code"]) == (422, "idempotency_key_reused"), body
    headers["Idempotency-Key"] = "sms-1"  # and the key of an SMS names no call
    assert (await gw.post("/v1/messages", json={"to": "+14155550124", "body": "Hi"}, headers=headers)).status == 202
    resp = await gw.post("/v1/messages", json={"to": "+14155550124", "body": "Hi", "channel": "voice"},
                         headers=headers)
    assert (resp.status, (await resp.json())["error"]["code"]) == (422, "idempotency_key_reused")
    assert await stored_calls(gw) == 1


async def test_voice_metrics_count_renders_cache_hits_and_outcomes(gw):
    from tests.gateway.api.test_metrics import scrape, value

    first = await call(gw, to="+14155550123", script="Your table is ready.")
    await until(gw, first["id"], "completed")
    second = await call(gw, to="+14155550131", script="Your table is ready.")  # the same audio, from the cache
    await until(gw, second["id"], "busy")
    got = await scrape(gw)
    assert value(got, "gateway_voice_renders_total") == 1
    assert value(got, "gateway_voice_cache_hits_total") == 1
    assert value(got, "gateway_voice_calls_total", outcome="completed") == 1
    assert value(got, "gateway_voice_calls_total", outcome="busy") == 1
