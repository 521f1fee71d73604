"""Typed keys for what the application holds."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from carriers.pool import CarrierPool
from carriers.simulator import SimulatorServices
from carriers.simulator.voice import VoiceSimulator
from gateway.sending.accepting import Acceptor
from gateway.sending.dispatcher import Dispatcher
from gateway.settings import Settings
from gateway.store.accounts import KeyAuthenticator
from gateway.two_way.inbound import InboundService
from gateway.voice_calls.worker import VoiceCalls
from gateway.webhooks.egress import AddressPolicy
from gateway.webhooks.sender import WebhookSender

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
AUTH = web.AppKey("auth", KeyAuthenticator)
CARRIERS = web.AppKey("carriers", CarrierPool)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
ACCEPTOR = web.AppKey("acceptor", Acceptor)  # stores single-message requests in groups
OPERATOR_TOKEN = web.AppKey("operator_token", str)
CARRIER_CALLBACK_SECRET = web.AppKey("carrier_callback_secret", str)  # signs HTTP carriers' callback URLs
VOICE = web.AppKey("voice", VoiceCalls)
INBOUND = web.AppKey("inbound", InboundService)
WEBHOOKS = web.AppKey("webhooks", WebhookSender)
URL_POLICY = web.AppKey("url_policy", AddressPolicy)  # where customer-set URLs may lead
SIMULATOR = web.AppKey("simulator", SimulatorServices)
VOICE_SIMULATOR = web.AppKey("voice_simulator", VoiceSimulator)  # the embedded SMSC simulator, when there is one

CLOCK = web.AppKey("clock", "Clock")  # the time rules use; tests set another
ACCOUNT_ID = web.RequestKey("account_id", int)  # the authenticated account


class Clock:
    """The time the app's rules use (quiet hours); tests set another."""

    def __init__(self) -> None:
        from registry.db import utcnow

        self._now = utcnow

    def set(self, now) -> None:  # noqa: ANN001
        self._now = now

    def __call__(self):
        return self._now()
