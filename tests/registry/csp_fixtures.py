"""The registry simulator on a free port with a webhook receiver of its own, driven through CspClient: what the
simulator's tests share."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any, Callable

from aiohttp import web

from registry.csp.client import CspClient
from registry.csp.simulator import SimState, start_simulator

KEY, SECRET = "csp-test-key", "csp-test-secret"
MONDAY = dt.datetime(2025, 1, 6, 12, 0, tzinfo=dt.timezone.utc)  # the clock's start: business days are predictable
BRAND = {"entityType": "PRIVATE_PROFIT", "displayName": "Acme", "companyName": "Acme Inc", "ein": "12-3456789",
         "phone": "+12025550100", "street": "1 Main St", "city": "Springfield", "state": "IL", "postalCode": "62701",
         "country": "US", "email": "ops@acme.example", "website": "https://acme.example", "vertical": "RETAIL",
         "brandRelationship": "BASIC_ACCOUNT"}
CAMPAIGN = {"usecase": "ACCOUNT_NOTIFICATION", "description": "Order and account notices for Acme's customers.",
            "sample1": "Acme: your order {#var} has shipped. Reply STOP to opt out.",
            "sample2": "Acme: your code is {#var}. Reply HELP for help.", "messageFlow": "Opt in at checkout.",
            "helpMessage": "Acme support: help@acme.example. Msg&data rates may apply. Reply STOP to cancel.",
            "optinMessage": "You are subscribed to Acme notices.", "optoutMessage": "Acme: you are unsubscribed.",
            "subscriberOptin": True, "subscriberOptout": True, "subscriberHelp": True, "embeddedLink": False,
            "numberPool": False, "ageGated": False}


class Receiver:
    """The CSP's webhook endpoint: records every POSTed event; answers ``fail_next`` of them with 500 first."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "down"}, status=500)
        self.events.append(await request.json())
        self.changed.set()
        return web.json_response({"ok": True})

    async def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0) -> None:
        """Until ``done(events)``, which may also look at the simulator's state: checked on every event received
        and every 20 ms (the deadline only makes a broken simulator fail the test rather than hang it)."""
        async def wait() -> None:
            while not done(self.events):
                self.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.02)
        await asyncio.wait_for(wait(), timeout)

    async def wait_types(self, *types: str, **match: Any) -> list[dict[str, Any]]:
        """Until an event of each of these types (with these fields) has come; those events."""
        def found() -> list[dict[str, Any]]:
            return [e for e in self.events if e["eventType"] in types and all(e.get(k) == v for k, v in match.items())]
        await self.wait_for(lambda _: {e["eventType"] for e in found()} >= set(types))
        return found()

    def of(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["eventType"] == event_type and all(e.get(k) == v for k, v in match.items())]


class Registry:
    """A running simulator (``state``, ``url``), a client to it and the receiver subscribed to every category."""

    state: SimState
    url: str
    client: CspClient
    receiver: Receiver

    def new_client(self, **kw: Any) -> CspClient:
        kw = {"retries": 2, "backoff": (0.001, 0.01), "timeout_s": 10.0} | kw
        return CspClient(self.url, KEY, SECRET, **kw)

    async def verified_brand(self, **fields: Any) -> dict[str, Any]:
        brand = await self.client.register_brand(BRAND | fields)
        await self.receiver.wait_types("BRAND_SCORE_UPDATE", brandId=brand["brandId"])
        return await self.client.get_brand(brand["brandId"])

    async def accepted_campaign(self, **fields: Any) -> dict[str, Any]:
        brand = await self.verified_brand()
        campaign = await self.client.create_campaign(CAMPAIGN | {"brandId": brand["brandId"]} | fields)
        await self.client.share_campaign(campaign["campaignId"], "DCASIM1")
        await self.client.advance(1)
        await self.receiver.wait_types("CAMPAIGN_SHARE_ACCEPT", campaignId=campaign["campaignId"])
        return campaign


async def start_registry(aiohttp_server: Any, **state_kw: Any) -> tuple[Registry, Callable[[], Any]]:
    """A Registry and the coroutine function that stops it."""
    reg = Registry()
    reg.receiver = Receiver()
    hooks = web.Application()
    hooks.router.add_post("/registry-events", reg.receiver.handle)
    server = await aiohttp_server(hooks)
    kw = {"start": MONDAY, "score_delay_s": 0.01, "webhook_backoff": (0.005, 0.02)} | state_kw
    reg.state = SimState(KEY, SECRET, **kw)
    runner, reg.url = await start_simulator(reg.state)
    reg.client = reg.new_client()
    for category in ("BRAND", "CAMPAIGN", "VETTING", "NUMBER"):
        await reg.client.subscribe(category, str(server.make_url("/registry-events")))

    async def stop() -> None:
        await reg.client.close()
        await runner.cleanup()
    return reg, stop
