"""Typed keys for what the application holds.

The services are imported for type checkers only: at run time this module imports none of them, so any module
(a service, the middleware, a route) may use the keys without an import cycle through the services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from registry.db import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from carriers.pool import CarrierPool
    from carriers.simulator import SimulatorServices
    from carriers.simulator.voice import VoiceSimulator
    from gateway.metrics import Metrics
    from gateway.sending.accepting import Acceptor
    from gateway.sending.dispatcher import Dispatcher
    from gateway.sending.status import Status
    from gateway.settings import Settings
    from gateway.store.accounts import KeyAuthenticator
    from gateway.tendlc.runtime import RegistryService
    from gateway.two_way.inbound import InboundService
    from gateway.voice_calls.worker import VoiceCalls
    from gateway.webhooks.egress import AddressPolicy
    from gateway.webhooks.sender import WebhookSender


class Clock:
    """The time the app's rules use (quiet hours); tests set another."""

    def __init__(self) -> None:
        self._now = utcnow

    def set(self, now) -> None:  # noqa: ANN001
        self._now = now

    def __call__(self):
        return self._now()


SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
SESSIONMAKER: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("sessionmaker")
AUTH: web.AppKey[KeyAuthenticator] = web.AppKey("auth")
CARRIERS: web.AppKey[CarrierPool] = web.AppKey("carriers")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
STATUS: web.AppKey[Status] = web.AppKey("status")  # this instance as GET /admin/status reports it
ACCEPTOR: web.AppKey[Acceptor] = web.AppKey("acceptor")  # stores single-message requests in groups
OPERATOR_TOKEN = web.AppKey("operator_token", str)
CARRIER_CALLBACK_SECRET = web.AppKey("carrier_callback_secret", str)  # signs HTTP carriers' callback URLs
VOICE: web.AppKey[VoiceCalls] = web.AppKey("voice")
INBOUND: web.AppKey[InboundService] = web.AppKey("inbound")
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
URL_POLICY: web.AppKey[AddressPolicy] = web.AppKey("url_policy")  # where customer-set URLs may lead
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")  # this app's own registry (GET /metrics)
SIMULATOR: web.AppKey[SimulatorServices] = web.AppKey("simulator")  # the embedded SMSC simulator, when there is one
VOICE_SIMULATOR: web.AppKey[VoiceSimulator] = web.AppKey("voice_simulator")  # and its voice carrier
REGISTRY: web.AppKey[RegistryService] = web.AppKey("registry")  # the 10DLC registry as a CSP, and its simulator
CLOCK = web.AppKey("clock", Clock)  # the time rules use; tests set another
ACCOUNT_ID = web.RequestKey("account_id", int)  # the authenticated account
