"""The composition root: ``create_app(settings)`` wires the database, carriers, dispatcher and routes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import time
from typing import AsyncIterator, Callable, Sequence

from aiohttp import web

from carriers import Carrier
from carriers.pool import CarrierPool
from carriers.simulator.voice import VoiceSimulator
from carriers.voice_http import HttpVoiceCarrier
from gateway import console
from gateway.api import app_keys, middleware
from gateway.api.openapi import routes as openapi_routes
from gateway.api.routes.account import routes as account_routes
from gateway.api.routes.admin import routes as admin_routes
from gateway.api.routes.carrier_callbacks import callback_url, routes as carrier_callback_routes
from gateway.api.routes.carriers import routes as carrier_routes
from gateway.api.routes.health import routes as health_routes
from gateway.api.routes.inbound import routes as inbound_routes
from gateway.api.routes.keywords import routes as keyword_routes
from gateway.api.routes.messages import routes as message_routes
from gateway.api.routes.numbers import routes as number_routes
from gateway.api.routes.opt_outs import routes as opt_out_routes
from gateway.api.routes.registry import routes as registry_routes
from gateway.api.routes.routing import routes as routing_routes
from gateway.api.routes.voice import routes as voice_routes
from gateway.api.routes.webhooks import routes as webhook_routes
from gateway.cluster.coordination import QUEUE_CHANNEL, WEBHOOK_CHANNEL, BindSlots, PgListener, new_instance_id
from gateway.sending.accepting import Acceptor
from gateway.sending.dispatcher import Dispatcher
from gateway.sending.health import Health
from gateway.sending.lookup import NumberLookup
from gateway.sending.pacing import RedisLimiter
from gateway.sending.policy import PacingPolicy
from gateway.sending.routing import route_of_settings
from gateway.settings import CarrierSettings, Settings
from gateway.store.accounts import KeyAuthenticator
from gateway.store.db import create_engine, create_sessionmaker
from gateway.two_way.inbound import InboundService
from gateway.voice_calls.worker import VoiceCalls
from gateway.webhooks.egress import AddressPolicy
from gateway.webhooks.sender import WebhookSender
from voice.render import Renderer

log = logging.getLogger(__name__)


def stored_secret(settings: Settings, name: str, prefix: str = "") -> str:
    """A secret generated once into the data folder (mode 0600) and read back afterwards."""
    path = settings.data_path / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = prefix + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def operator_token(settings: Settings) -> str:
    """The configured operator token, or the one generated once into the data folder."""
    return settings.security.operator_token or stored_secret(settings, "operator_token", "op_")


def carrier_callback_secret(settings: Settings) -> str:
    """The configured secret that signs HTTP carriers' callback URLs, or the one generated once."""
    return settings.security.carrier_callback_secret or stored_secret(settings, "carrier_callback_secret")


def build_carrier(cfg: CarrierSettings, reports_url: Callable[[str], str] | None = None) -> Carrier:
    """The carrier a ``[[carriers]]`` entry describes; ``reports_url(name)`` gives an HTTP carrier's signed
    status report URL."""
    if cfg.type == "smpp":
        from carriers.smpp import SmppCarrier

        return SmppCarrier(cfg.name, cfg.host, cfg.port, cfg.system_id, cfg.password,
                           system_type=cfg.system_type, bind_mode=cfg.bind_mode, window=cfg.window,
                           enquire_link_interval=cfg.enquire_link_interval, response_timeout=cfg.response_timeout,
                           concatenation=cfg.concatenation, binds=cfg.binds)
    if cfg.type == "http":
        from carriers.http_sms import HttpSmsCarrier

        return HttpSmsCarrier(cfg.name, cfg.profile, cfg.url, username=cfg.username, password=cfg.password,
                              auth_header=cfg.auth_header, auth_value=cfg.auth_value,
                              fields=cfg.json_fields() if cfg.profile == "json" else None,
                              callback_url=(lambda: reports_url(cfg.name)) if reports_url is not None else None,
                              timeout_s=cfg.response_timeout, concurrency=cfg.concurrency, max_parts=cfg.max_parts,
                              dlr_mask=cfg.dlr_mask)
    raise ValueError(f"carrier type {cfg.type!r} cannot be built from settings")


async def campaign_limits(session, campaign_id: int):  # noqa: ANN001, ANN201
    """10DLC campaign limits from the registry (none until the registry knows campaigns)."""
    try:
        from registry.limits import carrier_limits_for_campaign
    except ImportError:
        return None
    return await carrier_limits_for_campaign(session, campaign_id)


async def _leased_binds(slots: BindSlots, configured: Sequence[CarrierSettings]) -> list[CarrierSettings]:
    """The carriers with as many binds as this instance may open within each one's ``max_binds``."""
    out = []
    for cfg in configured:
        if not cfg.max_binds:
            out.append(cfg)
            continue
        got = await slots.acquire(cfg.name, min(cfg.binds, cfg.max_binds), cfg.max_binds)
        if got == 0:
            log.warning("carrier %s: all %d bind slots are held by other instances; this one opens none",
                        cfg.name, cfg.max_binds)
            continue
        out.append(dataclasses.replace(cfg, binds=got))
    return out


class CarrierSink:
    """What carriers report: receipts to the dispatcher, inbound messages to the inbound service."""

    def __init__(self, dispatcher: Dispatcher, inbound: InboundService):
        self.on_receipt = dispatcher.on_receipt
        self.on_inbound = inbound.on_inbound


def create_app(settings: Settings, *, carriers: Sequence[Carrier] | None = None) -> web.Application:
    """Build the application. ``carriers`` replaces the configured ones (tests)."""
    app = web.Application(middlewares=[middleware.errors, middleware.auth],
                          client_max_size=settings.http.max_body_bytes)
    middleware.json_parser_errors(app)
    app[app_keys.SETTINGS] = settings
    app[app_keys.OPERATOR_TOKEN] = operator_token(settings)
    callback_secret = app[app_keys.CARRIER_CALLBACK_SECRET] = carrier_callback_secret(settings)

    def reports_url(carrier: str) -> str:
        """A signed status report URL, valid a day past the receipt timeout of the message it goes with."""
        expires = int(time.time() + settings.dispatcher.receipt_timeout_h * 3600 + 86400)
        return callback_url(settings.server.base_url, callback_secret, carrier, "reports", expires)
    app[app_keys.CLOCK] = app_keys.Clock()
    app[app_keys.URL_POLICY] = AddressPolicy.of(settings.webhooks)

    async def database(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, echo=settings.database.echo,
                               pool_size=settings.database.pool_size)
        app[app_keys.ENGINE] = engine
        app[app_keys.SESSIONMAKER] = create_sessionmaker(engine)
        app[app_keys.AUTH] = KeyAuthenticator(app[app_keys.SESSIONMAKER], settings.security.key_cache_seconds)
        yield
        await engine.dispose()

    async def simulator(app: web.Application) -> AsyncIterator[None]:
        sim_cfg = settings.simulator
        if not sim_cfg.embedded or carriers is not None:
            yield
            return
        from carriers.simulator import SimulatorServices

        services = SimulatorServices(host=sim_cfg.host, smpp_port=sim_cfg.smpp_port, http_port=sim_cfg.http_port,
                                     accounts={sim_cfg.system_id: sim_cfg.password},
                                     receipt_delay=sim_cfg.receipt_delay_ms / 1000, id_format=sim_cfg.id_format,
                                     receipt_id_format=sim_cfg.receipt_id_format)
        await services.start()
        app[app_keys.SIMULATOR] = services
        voice_sim = None
        if settings.voice.enabled:
            voice_sim = VoiceSimulator(sim_cfg.host, sim_cfg.voice_port, api_key=settings.voice.carrier_api_key)
            await voice_sim.start()
            app[app_keys.VOICE_SIMULATOR] = voice_sim
        yield
        if voice_sim is not None:
            await voice_sim.stop()
        await services.stop()

    async def dispatching(app: web.Application) -> AsyncIterator[None]:
        configured = settings.carriers
        services = app.get(app_keys.SIMULATOR)
        if services is not None:  # carriers pointed at the embedded simulator follow the port it really got
            sim_cfg = settings.simulator
            configured = [dataclasses.replace(c, port=services.smpp_port)
                          if (c.type, c.host, c.port) == ("smpp", sim_cfg.host, sim_cfg.smpp_port) else c
                          for c in configured]
        instance_id = new_instance_id()
        slots = None
        if settings.redis.url and carriers is None and any(c.max_binds for c in configured):
            slots = BindSlots(settings.redis.url, instance_id, prefix=settings.redis.key_prefix,
                              timeout=settings.redis.timeout_s)
            configured = await _leased_binds(slots, configured)
            slots.start()
        held = list(carriers) if carriers is not None else [build_carrier(c, reports_url) for c in configured]
        pool = CarrierPool(held)
        policy = None
        lookup = NumberLookup.load(settings.path(settings.pacing.lookup_file))
        pool.lookup = lookup
        limiter = None
        if settings.pacing.enabled:
            policy = PacingPolicy(settings.pacing, lookup, app[app_keys.SESSIONMAKER], campaign_limits)
            if settings.redis.url:  # several instances: the limits are shared in Redis
                limiter = RedisLimiter(settings.redis.url, prefix=settings.redis.key_prefix,
                                       timeout=settings.redis.timeout_s)
        sender = WebhookSender(app[app_keys.SESSIONMAKER], settings.webhooks, app[app_keys.URL_POLICY])
        await sender.start()
        app[app_keys.WEBHOOKS] = sender
        dispatcher = Dispatcher(app[app_keys.SESSIONMAKER], pool, settings.dispatcher, on_webhooks=sender.notify,
                                receipt_id_bases={c.name: c.receipt_id_base for c in settings.carriers},
                                policy=policy, limiter=limiter, instance_id=instance_id,
                                routes=[route_of_settings(r) for r in settings.routes],
                                health=Health(settings.health))
        app[app_keys.CARRIERS] = pool
        app[app_keys.DISPATCHER] = dispatcher
        acceptor = Acceptor(app[app_keys.SESSIONMAKER], settings.pricing, lambda: app[app_keys.CLOCK](),
                            on_queued=dispatcher.notify, on_webhooks=sender.notify, router=dispatcher.router)
        app[app_keys.ACCEPTOR] = acceptor
        inbound = InboundService(app[app_keys.SESSIONMAKER],
                                 reassembly_timeout_s=settings.messages.reassembly_timeout_s,
                                 on_reply=dispatcher.notify, on_webhooks=sender.notify)
        app[app_keys.INBOUND] = inbound
        sink = CarrierSink(dispatcher, inbound)
        for carrier in held:
            carrier.set_events(sink)
            await carrier.start()
        for _ in range(50):  # give the first bind a moment so the first message need not wait for a poll
            if pool.ready:
                break
            await asyncio.sleep(0.02)
        await dispatcher.start()
        listener = None
        if settings.database_url.startswith("postgresql"):  # other instances' work wakes this one at once
            listener = PgListener(settings.database_url, {QUEUE_CHANNEL: dispatcher.notify,
                                                          WEBHOOK_CHANNEL: sender.notify})
            await listener.start()
        await inbound.start()
        calls = None
        if settings.voice.enabled:
            voice_url = settings.voice.carrier_url
            voice_sim = app.get(app_keys.VOICE_SIMULATOR)
            if voice_sim is not None and voice_url.rstrip("/") == f"http://{settings.simulator.host}:{settings.simulator.voice_port}":
                voice_url = voice_sim.url  # the embedded voice simulator, on the port it really got
            calls = VoiceCalls(app[app_keys.SESSIONMAKER], settings,
                               Renderer(settings.path(settings.voice.cache_dir), workers=settings.voice.workers),
                               HttpVoiceCarrier("voice", voice_url, settings.voice.carrier_api_key),
                               stored_secret(settings, "voice_secret"), on_webhooks=sender.notify)
            app[app_keys.VOICE] = calls
            await calls.start()
        yield
        await acceptor.stop()
        if calls is not None:
            await calls.stop()
            await calls.carrier.close()
            calls.renderer.close()
        await inbound.stop()
        if listener is not None:
            await listener.stop()
        await dispatcher.stop()
        await asyncio.gather(*(c.close() for c in held), return_exceptions=True)
        if slots is not None:
            await slots.close()
        if limiter is not None:
            await limiter.close()
        await sender.stop()

    app.cleanup_ctx.extend([database, simulator, dispatching])
    app.add_routes(health_routes)
    app.add_routes(carrier_routes)
    app.add_routes(routing_routes)
    app.add_routes(openapi_routes)
    app.add_routes(message_routes)
    app.add_routes(account_routes)
    app.add_routes(webhook_routes)
    app.add_routes(inbound_routes)
    app.add_routes(number_routes)
    app.add_routes(keyword_routes)
    app.add_routes(opt_out_routes)
    app.add_routes(voice_routes)
    app.add_routes(registry_routes)
    app.add_routes(admin_routes)
    app.add_routes(carrier_callback_routes)
    console.setup(app, console.Wiring(app_keys.SESSIONMAKER, app_keys.OPERATOR_TOKEN, app_keys.CARRIERS,
                                      app_keys.WEBHOOKS, middleware.auth_failures, middleware.client_ip))
    return app
