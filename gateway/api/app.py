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
from gateway.api.routes.data import routes as data_routes
from gateway.api.routes.health import routes as health_routes
from gateway.api.routes.inbound import routes as inbound_routes
from gateway.api.routes.keywords import routes as keyword_routes
from gateway.api.routes.messages import routes as message_routes
from gateway.api.routes.metrics import routes as metrics_routes
from gateway.api.routes.numbers import routes as number_routes
from gateway.api.routes.opt_outs import routes as opt_out_routes
from gateway.api.routes.registry import routes as registry_routes
from gateway.api.routes.registry_admin import routes as registry_admin_routes
from gateway.api.routes.registry_events import routes as registry_event_routes
from gateway.api.routes.routing import routes as routing_routes
from gateway.api.routes.stats import routes as stats_routes
from gateway.api.routes.status import routes as status_routes
from gateway.api.routes.toll_free import routes as toll_free_routes
from gateway.api.routes.voice import routes as voice_routes
from gateway.api.routes.webhooks import routes as webhook_routes
from gateway.cluster.coordination import QUEUE_CHANNEL, WEBHOOK_CHANNEL, BindSlots, PgListener, new_instance_id
from gateway.metrics import Metrics
from gateway.metrics.monitor import Monitor
from gateway.sending.accepting import Acceptor
from gateway.sending.dispatcher import Dispatcher
from gateway.sending.health import Health
from gateway.sending.lookup import NumberLookup
from gateway.sending.pacing import RedisLimiter
from gateway.sending.policy import CampaignGate, PacingPolicy
from gateway.sending.routing import route_of_settings
from gateway.sending.status import Status
from gateway.settings import Settings
from gateway.settings_routes import CarrierSettings
from gateway.store.accounts import KeyAuthenticator
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.retention import Purger
from gateway.tendlc.runtime import registry_service
from gateway.two_way.inbound import InboundService
from gateway.voice_calls.worker import VoiceCalls
from gateway.webhooks.egress import AddressPolicy
from gateway.webhooks.posting import WorkerPosters
from gateway.webhooks.sender import WebhookSender
from registry.limits import carrier_limits_for_campaign
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


def registry_webhook_secret(settings: Settings) -> str:
    """The configured key of the registry's event URL token, or the one generated once."""
    return settings.registry.webhook_secret or stored_secret(settings, "registry_webhook_secret")


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
    """A 10DLC campaign's carrier limits and the carriers it may not reach now (registry.limits)."""
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


class Resources:
    """What the app runs, one cleanup context per resource, in the order they start. aiohttp enters them in turn
    and, when one fails to start, leaves those that had started in reverse order; so does the end of serving."""

    def __init__(self, settings: Settings, carriers: Sequence[Carrier] | None):
        self.settings = settings
        self.given = carriers  # carriers that replace the configured ones (tests): no simulator, no bind slots
        self.instance_id = new_instance_id()
        self.started_at = time.time()  # the gateway's uptime counts from here
        self.configured = list(settings.carriers)  # with the bind slots this instance leased
        self.limiter: RedisLimiter | None = None

    def contexts(self) -> list[Callable[[web.Application], AsyncIterator[None]]]:
        return [self.database, self.simulator, self.voice_simulator, self.webhook_sender, self.shared_limits,
                self.bind_slots, self.carriers, self.dispatcher, self.registry, self.listener, self.inbound,
                self.voice_calls, self.retention, self.monitor, self.acceptor]

    async def database(self, app: web.Application) -> AsyncIterator[None]:
        database = self.settings.database
        engine = create_engine(self.settings.database_url, echo=database.echo, pool_size=database.pool_size,
                               busy_timeout_s=database.busy_timeout_s)
        app[app_keys.ENGINE] = engine
        app[app_keys.SESSIONMAKER] = create_sessionmaker(engine)
        app[app_keys.AUTH] = KeyAuthenticator(app[app_keys.SESSIONMAKER], self.settings.security.key_cache_seconds)
        yield
        await engine.dispose()

    async def simulator(self, app: web.Application) -> AsyncIterator[None]:
        """The embedded SMSC simulator, when configured and the carriers are not given."""
        sim_cfg = self.settings.simulator
        if not sim_cfg.embedded or self.given is not None:
            yield
            return
        from carriers.simulator import SimulatorServices

        services = SimulatorServices(host=sim_cfg.host, smpp_port=sim_cfg.smpp_port, http_port=sim_cfg.http_port,
                                     accounts={sim_cfg.system_id: sim_cfg.password},
                                     receipt_delay=sim_cfg.receipt_delay_ms / 1000, id_format=sim_cfg.id_format,
                                     receipt_id_format=sim_cfg.receipt_id_format, carriers=sim_cfg.carriers,
                                     sms_http_port=sim_cfg.sms_http_port if sim_cfg.sms_http_port >= 0 else None)
        await services.start()
        app[app_keys.SIMULATOR] = services
        yield
        await services.stop()

    async def voice_simulator(self, app: web.Application) -> AsyncIterator[None]:
        """The embedded voice carrier simulator, beside the embedded SMSC simulator when voice is enabled."""
        if app.get(app_keys.SIMULATOR) is None or not self.settings.voice.enabled:
            yield
            return
        sim_cfg = self.settings.simulator
        voice_sim = VoiceSimulator(sim_cfg.host, sim_cfg.voice_port, api_key=self.settings.voice.carrier_api_key)
        await voice_sim.start()
        app[app_keys.VOICE_SIMULATOR] = voice_sim
        yield
        await voice_sim.stop()

    async def webhook_sender(self, app: web.Application) -> AsyncIterator[None]:
        """The outbox's sender; its POSTs go from this process, or from ``[webhooks] processes`` workers."""
        settings = self.settings
        workers = settings.webhooks.processes
        poster = WorkerPosters(settings.webhooks, settings.logging, app[app_keys.METRICS].alerts, workers,
                               settings.server.event_loop) if workers else None
        sender = WebhookSender(app[app_keys.SESSIONMAKER], settings.webhooks, app[app_keys.URL_POLICY],
                               metrics=app[app_keys.METRICS], poster=poster)
        await sender.start()
        app[app_keys.WEBHOOKS] = sender
        yield
        await sender.stop()

    async def shared_limits(self, app: web.Application) -> AsyncIterator[None]:
        """Several instances keep the pacing limits together in Redis."""
        redis = self.settings.redis
        if not (self.settings.pacing.enabled and redis.url):
            yield
            return
        self.limiter = RedisLimiter(redis.url, prefix=redis.key_prefix, timeout=redis.timeout_s)
        yield
        await self.limiter.close()

    async def bind_slots(self, app: web.Application) -> AsyncIterator[None]:
        """The carriers' ``max_binds`` shared by every instance, as leases in Redis."""
        services = app.get(app_keys.SIMULATOR)
        if services is not None:  # carriers pointed at the embedded simulators follow the ports they really got
            sim_cfg = self.settings.simulator
            ports = {sim_cfg.smpp_port: services.smpp_port}
            ports.update({c.smpp_port: services.carriers[c.name].port for c in sim_cfg.carriers if c.smpp_port})
            self.configured = [dataclasses.replace(c, port=ports[c.port])
                               if c.type == "smpp" and c.host == sim_cfg.host and c.port in ports else c
                               for c in self.configured]
            if services.http_face is not None:  # and HTTP carriers pointed at its HTTP face
                face = f"http://{sim_cfg.host}:{sim_cfg.sms_http_port}/"
                self.configured = [dataclasses.replace(c, url=services.http_face.url + "/" + c.url[len(face):])
                                   if c.type == "http" and c.url.startswith(face) else c for c in self.configured]
        redis = self.settings.redis
        if not (redis.url and self.given is None and any(c.max_binds for c in self.configured)):
            yield
            return
        slots = BindSlots(redis.url, self.instance_id, prefix=redis.key_prefix, timeout=redis.timeout_s,
                          on_error=app[app_keys.METRICS].alerts.failed)
        try:
            self.configured = await _leased_binds(slots, self.configured)
        except BaseException:
            await slots.close()  # the leases already taken, and the connection
            raise
        slots.start()
        yield
        await slots.close()

    def reports_url(self, app: web.Application) -> Callable[[str], str]:
        """HTTP carriers' signed status report URLs, each valid a day past the receipt timeout of its message."""
        settings, secret = self.settings, app[app_keys.CARRIER_CALLBACK_SECRET]

        def url(carrier: str) -> str:
            expires = int(time.time() + settings.dispatcher.receipt_timeout_h * 3600 + 86400)
            return callback_url(settings.server.base_url, secret, carrier, "reports", expires)
        return url

    async def carriers(self, app: web.Application) -> AsyncIterator[None]:
        """The carriers' binds. The dispatcher and the inbound service they report to exist (not yet started)
        before the first bind: a receipt or an inbound message may come at once."""
        settings = self.settings
        held = (list(self.given) if self.given is not None
                else [build_carrier(c, self.reports_url(app)) for c in self.configured])
        pool = CarrierPool(held)
        lookup = NumberLookup.load(settings.path(settings.pacing.lookup_file))
        pool.lookup = lookup
        gate = CampaignGate(lookup, app[app_keys.SESSIONMAKER], campaign_limits)
        policy = PacingPolicy(settings.pacing, gate) if settings.pacing.enabled else None
        sender = app[app_keys.WEBHOOKS]
        dispatcher = Dispatcher(app[app_keys.SESSIONMAKER], pool, settings.dispatcher, on_webhooks=sender.notify,
                                receipt_id_bases={c.name: c.receipt_id_base for c in settings.carriers},
                                policy=policy, limiter=self.limiter, instance_id=self.instance_id,
                                routes=[route_of_settings(r) for r in settings.routes],
                                health=Health(settings.health, alerts=app[app_keys.METRICS].alerts),
                                metrics=app[app_keys.METRICS], gate=gate)
        inbound = InboundService(app[app_keys.SESSIONMAKER],
                                 reassembly_timeout_s=settings.messages.reassembly_timeout_s,
                                 dedupe_s=settings.messages.inbound_dedupe_s,
                                 on_reply=dispatcher.notify, on_webhooks=sender.notify, metrics=app[app_keys.METRICS])
        app[app_keys.CARRIERS] = pool
        app[app_keys.DISPATCHER] = dispatcher
        app[app_keys.STATUS] = Status(app[app_keys.SESSIONMAKER], pool, dispatcher, app[app_keys.METRICS],
                                      started_at=self.started_at)
        app[app_keys.INBOUND] = inbound
        sink = CarrierSink(dispatcher, inbound)
        try:
            for carrier in held:
                carrier.set_events(sink)
                await carrier.start()
        except BaseException:
            await asyncio.gather(*(c.close() for c in held), return_exceptions=True)
            raise
        for _ in range(50):  # give the first bind a moment so the first message need not wait for a poll
            if pool.ready:
                break
            await asyncio.sleep(0.02)
        yield
        await asyncio.gather(*(c.close() for c in held), return_exceptions=True)

    async def dispatcher(self, app: web.Application) -> AsyncIterator[None]:
        await app[app_keys.DISPATCHER].start()
        yield
        await app[app_keys.DISPATCHER].stop()

    async def registry(self, app: web.Application) -> AsyncIterator[None]:
        """The 10DLC registry as a CSP ([registry]: the simulator in this process, or the remote registry), its
        events changing what the send path allows at once."""
        settings = self.settings
        async with registry_service(settings, app[app_keys.SESSIONMAKER],
                                    webhook_secret=registry_webhook_secret(settings),
                                    simulator_secret=stored_secret(settings, "registry_simulator_secret")) as service:
            gate = app[app_keys.DISPATCHER].gate
            if gate is not None:
                service.csp.on_campaigns = gate.forget
            app[app_keys.REGISTRY] = service
            yield

    async def listener(self, app: web.Application) -> AsyncIterator[None]:
        """On PostgreSQL, other instances' work wakes this one at once."""
        url = self.settings.database_url
        if not url.startswith("postgresql"):
            yield
            return
        listener = PgListener(url, {QUEUE_CHANNEL: app[app_keys.DISPATCHER].notify,
                                    WEBHOOK_CHANNEL: app[app_keys.WEBHOOKS].notify},
                              on_error=app[app_keys.METRICS].alerts.failed)
        await listener.start()
        yield
        await listener.stop()

    async def inbound(self, app: web.Application) -> AsyncIterator[None]:
        await app[app_keys.INBOUND].start()
        yield
        await app[app_keys.INBOUND].stop()

    async def voice_calls(self, app: web.Application) -> AsyncIterator[None]:
        settings = self.settings
        if not settings.voice.enabled:
            yield
            return
        voice_url = settings.voice.carrier_url
        voice_sim = app.get(app_keys.VOICE_SIMULATOR)
        sim_cfg = settings.simulator
        if voice_sim is not None and voice_url.rstrip("/") == f"http://{sim_cfg.host}:{sim_cfg.voice_port}":
            voice_url = voice_sim.url  # the embedded voice simulator, on the port it really got
        calls = VoiceCalls(app[app_keys.SESSIONMAKER], settings,
                           Renderer(settings.path(settings.voice.cache_dir), workers=settings.voice.workers),
                           HttpVoiceCarrier("voice", voice_url, settings.voice.carrier_api_key),
                           stored_secret(settings, "voice_secret"), on_webhooks=app[app_keys.WEBHOOKS].notify,
                           metrics=app[app_keys.METRICS])
        app[app_keys.VOICE] = calls
        await calls.start()
        yield
        await calls.stop()
        await calls.carrier.close()
        calls.renderer.close()

    async def monitor(self, app: web.Application) -> AsyncIterator[None]:
        """[alerts]: binds, the queue, the database and Redis looked at every few seconds (gateway.metrics.monitor);
        what alerts counted and had not yet said is summed up when it stops."""
        monitor = Monitor(app[app_keys.METRICS], app[app_keys.SESSIONMAKER], lambda: app.get(app_keys.CARRIERS),
                          redis_url=self.settings.redis.url, redis_timeout_s=self.settings.redis.timeout_s)
        monitor.start()
        yield
        await monitor.stop()

    async def acceptor(self, app: web.Application) -> AsyncIterator[None]:
        """Stores single-message requests in groups; the first to stop, so that what it holds is stored."""
        acceptor = Acceptor(app[app_keys.SESSIONMAKER], self.settings.pricing, lambda: app[app_keys.CLOCK](),
                            on_queued=app[app_keys.DISPATCHER].notify, on_webhooks=app[app_keys.WEBHOOKS].notify,
                            router=app[app_keys.DISPATCHER].router, metrics=app[app_keys.METRICS])
        app[app_keys.ACCEPTOR] = acceptor
        yield
        await acceptor.stop()

    async def retention(self, app: web.Application) -> AsyncIterator[None]:
        """[retention]: finished work's bodies blanked once they are old (gateway.store.retention)."""
        purger = Purger(app[app_keys.SESSIONMAKER], self.settings.retention)
        purger.start()
        yield
        await purger.stop()


def create_app(settings: Settings, *, carriers: Sequence[Carrier] | None = None) -> web.Application:
    """Build the application. ``carriers`` replaces the configured ones (tests)."""
    app = web.Application(middlewares=[middleware.http_metrics, middleware.errors, middleware.auth],
                          client_max_size=settings.http.max_body_bytes)
    middleware.json_parser_errors(app)
    app[app_keys.SETTINGS] = settings
    metrics = app[app_keys.METRICS] = Metrics(settings.alerts)
    metrics.watch_carriers(lambda: app.get(app_keys.CARRIERS))
    metrics.watch_database()
    app[app_keys.OPERATOR_TOKEN] = operator_token(settings)
    app[app_keys.CARRIER_CALLBACK_SECRET] = carrier_callback_secret(settings)
    app[app_keys.CLOCK] = app_keys.Clock()
    app[app_keys.URL_POLICY] = AddressPolicy.of(settings.webhooks)
    app.cleanup_ctx.extend(Resources(settings, carriers).contexts())
    app.add_routes(health_routes)
    app.add_routes(carrier_routes)
    app.add_routes(routing_routes)
    app.add_routes(openapi_routes)
    app.add_routes(metrics_routes)
    app.add_routes(status_routes)
    app.add_routes(message_routes)
    app.add_routes(account_routes)
    app.add_routes(webhook_routes)
    app.add_routes(inbound_routes)
    app.add_routes(number_routes)
    app.add_routes(keyword_routes)
    app.add_routes(opt_out_routes)
    app.add_routes(voice_routes)
    app.add_routes(registry_routes)
    app.add_routes(toll_free_routes)
    app.add_routes(registry_admin_routes)
    app.add_routes(registry_event_routes)
    app.add_routes(admin_routes)
    app.add_routes(carrier_callback_routes)
    app.add_routes(stats_routes)
    app.add_routes(data_routes)
    console.setup(app, console.Wiring(app_keys.SESSIONMAKER, app_keys.OPERATOR_TOKEN, app_keys.CARRIERS,
                                      app_keys.WEBHOOKS, middleware.auth_failures, middleware.client_ip))
    return app
