"""Settings: config/gateway.toml (or the file GATEWAY_CONFIG names), overridden by environment variables.

Every scalar setting ``[section] key`` can be overridden by ``GATEWAY_<SECTION>_<KEY>`` (upper case), for
example ``GATEWAY_DATABASE_URL`` or ``GATEWAY_SIMULATOR_SMPP_PORT``. Short aliases: ``GATEWAY_PORT`` and
``GATEWAY_HOST`` for the HTTP server, ``GATEWAY_OPERATOR_TOKEN`` for the admin token.
Carriers are a list of tables (``[[carriers]]``); ``GATEWAY_CARRIER_<NAME>_<KEY>`` overrides a key of the carrier
with that name (``GATEWAY_CARRIER_SIM_PASSWORD``): keep carrier passwords in the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_type_hints

from carriers.simulator.fleet import SimulatedCarrier
from gateway.settings_registry import RegistrySettings, validate_registry
from gateway.settings_routes import (
    CarrierSettings,
    HealthSettings,
    RouteSettings,
    parse_route,
    validate_http,
    validate_route,
)
from gateway.settings_values import SettingsError, build

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "gateway.toml"

ALIASES = {
    "GATEWAY_PORT": ("server", "port"),
    "GATEWAY_HOST": ("server", "host"),
    "GATEWAY_OPERATOR_TOKEN": ("security", "operator_token"),
}


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # base URL that outside parties (carriers) use to reach us; default http://host:port
    data_dir: str = "data"
    event_loop: str = "uvloop"  # the servers' event loop (gatewayctl run, simulator): uvloop, or asyncio's own

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


@dataclass
class HttpSettings:
    max_body_bytes: int = 20 << 20  # every request body, JSON or CSV, chunked or not; more: 413 body_too_large
    body_timeout_s: float = 30.0  # a body that sends nothing for this long: 408 body_timeout, connection closed


@dataclass
class DatabaseSettings:
    url: str = field(default="sqlite+aiosqlite:///data/gateway.db", repr=False)  # may hold a password
    echo: bool = False
    pool_size: int = 10
    busy_timeout_s: float = 30.0


@dataclass
class SecuritySettings:
    operator_token: str = field(default="", repr=False)  # empty: generated once into data_dir/operator_token
    # signs the tokens in the callback URLs HTTP carriers report to; empty: generated once into data_dir
    carrier_callback_secret: str = field(default="", repr=False)
    key_cache_seconds: float = 30.0
    # failed authentications (missing or wrong API key or operator token) allowed per client IP, and per presented
    # key prefix, within auth_failure_window_s; beyond that 429 too_many_auth_failures with Retry-After (0: off)
    auth_failure_limit: int = 20
    auth_failure_window_s: float = 60.0
    # proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; from anyone else it is ignored
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class SimulatorSettings:
    embedded: bool = True
    host: str = "127.0.0.1"
    smpp_port: int = 2775
    http_port: int = 2776
    system_id: str = "gateway"
    password: str = field(default="secret", repr=False)
    receipt_delay_ms: int = 50
    id_format: str = "hex"
    receipt_id_format: str = "same"  # same | hex | decimal | padded: how receipts quote the ids
    voice_port: int = 2777  # the embedded voice carrier simulator
    sms_http_port: int = -1  # the SMSC's HTTP face (Kannel sendsms, JSON) for HTTP carriers; -1: off, 0: any free
    carriers: list[SimulatedCarrier] = field(default_factory=list)  # [[simulator.carriers]]: more, named SMSCs


@dataclass
class DispatcherSettings:
    batch_size: int = 500
    poll_interval_ms: int = 250
    concurrency: int = 400  # messages in flight to carriers at once
    retry_min_ms: int = 200
    retry_max_ms: int = 30_000
    receipt_batch_ms: int = 20
    # an instance's claim on the messages it is sending lasts this long past its last heartbeat; then another
    # instance sends them again (several instances on PostgreSQL)
    lease_s: float = 20.0
    # a message the carrier took but never sent a receipt for ends 'undelivered' (receipt_timeout) after this
    receipt_timeout_h: float = 72.0
    # receipts that matched no message are dropped after this (0: receipt_timeout_h)
    unmatched_receipt_ttl_h: float = 0.0

    @property
    def unmatched_ttl_h(self) -> float:
        return self.unmatched_receipt_ttl_h or self.receipt_timeout_h


@dataclass
class RedisSettings:
    # Empty: limits live in this process (one gateway process). Set it to share them among several instances.
    url: str = field(default="", repr=False)  # may hold a password
    key_prefix: str = "gw:"
    timeout_s: float = 2.0  # a Redis call that takes longer counts as Redis unreachable: sending pauses


@dataclass
class PacingSettings:
    enabled: bool = True
    account_per_s: float = 20.0  # default for accounts; each account has its own (max_rate_per_s)
    recipient_per_s: float = 1.0  # to one phone number
    short_code_per_s: float = 100.0
    toll_free_per_s: float = 3.0
    long_code_per_s: float = 1.0
    ten_dlc_per_s: float = 100.0  # a 10DLC number's own ceiling; its campaign's carrier limits apply too
    headroom: float = 0.98  # fraction of each limit actually used: a margin for send-time jitter
    horizon_s: float = 2.0  # how far ahead slots are reserved in memory; later traffic waits in the queue
    throttle_penalty_s: float = 1.0  # pause a carrier key after it answered ESME_RTHROTTLED anyway
    lookup_file: str = "config/carrier_lookup.toml"


@dataclass
class WebhookSettings:
    processes: int = 1  # worker processes that make the POSTs (gateway.webhooks.posting); 0: the gateway's own
    concurrency: int = 200  # POSTs in flight in all
    per_receiver_concurrency: int = 64  # POSTs in flight to one receiver (scheme, host and port)
    claim_batch: int = 500  # deliveries claimed by one statement
    timeout_s: float = 10.0
    retry_base_s: float = 1.0  # first retry after this, doubling
    retry_max_s: float = 600.0  # longest pause between two attempts
    max_age_h: float = 24.0  # keep trying this long before a delivery is marked failed
    poll_interval_ms: int = 500
    # customer-set URLs may point at loopback, private, link-local and other non-public addresses (tests, demo)
    allow_private_addresses: bool = False
    allowed_networks: list[str] = field(default_factory=list)  # CIDRs allowed although not public


@dataclass
class MessageSettings:
    default_ttl_s: int = 72 * 3600
    min_ttl_s: int = 5
    max_ttl_s: int = 72 * 3600
    default_country: str = "US"  # region used to read numbers written without a leading +
    reassembly_timeout_s: float = 120.0  # an inbound multipart message still incomplete after this is handed on
    # an inbound message (or part) the carrier hands again within this is a repeat (an SMSC sends a deliver_sm
    # again when its answer was lost with a connection): acknowledged, not handled twice. 0: no such check
    inbound_dedupe_s: float = 300.0


@dataclass
class VoiceSettings:
    enabled: bool = True
    carrier_url: str = "http://127.0.0.1:2777"  # the HTTP voice carrier (default: the embedded voice simulator)
    carrier_api_key: str = field(default="voice-secret", repr=False)
    workers: int = 2  # speech synthesis processes
    cache_dir: str = "data/audio"
    audio_url_ttl_s: int = 3600  # how long a carrier may fetch a call's audio
    retry_s: float = 5.0  # pause before placing a call again after the carrier was unavailable
    max_attempts: int = 10


@dataclass
class MetricsSettings:
    # a token that opens GET /metrics only (the operator token opens it too); empty: only the operator token
    scrape_token: str = field(default="", repr=False)


@dataclass
class PricingSettings:
    currency: str = "USD"
    short_code: float = 0.0100  # per segment
    ten_dlc: float = 0.0079
    toll_free: float = 0.0083
    long_code: float = 0.0079


@dataclass
class LoggingSettings:
    level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR | CRITICAL
    format: str = "text"  # text | json (one JSON object a line: timestamp, level, logger, message, extra fields)


@dataclass
class AlertSettings:
    interval_s: float = 60.0  # a repeated alert is logged once, then summed up in one line per interval
    sample_s: float = 5.0  # how often the monitor looks at binds, queue depth, the database and Redis
    throttle_quiet_s: float = 10.0  # a carrier's throttling spell ends after this long without a throttle
    queue_depth: int = 10_000  # messages waiting (queued, sending) over which it warns (back under 90%); 0: off
    undelivered_rate: float = 0.2  # share of a carrier's final receipts in an interval over which it warns...
    undelivered_min: int = 20  # ... once the interval holds this many
    unmatched_after_s: float = 30.0  # receipts still unmatched after this long are warned about
    recent: int = 200  # alerts kept in memory for the status page


@dataclass
class RetentionSettings:
    # message bodies, inbound message bodies, call scripts and webhook payloads older than this many days are
    # blanked (the rows stay, for stats); 0 keeps them for ever
    days: int = 90
    interval_s: float = 3600.0  # how often the purge runs
    batch_size: int = 2000  # rows blanked by one statement


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    messages: MessageSettings = field(default_factory=MessageSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    pacing: PacingSettings = field(default_factory=PacingSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    carriers: list[CarrierSettings] = field(default_factory=lambda: [CarrierSettings()])
    routes: list[RouteSettings] = field(default_factory=list)
    health: HealthSettings = field(default_factory=HealthSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)

    @property
    def data_path(self) -> Path:
        path = Path(self.server.data_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def path(self, value: str) -> Path:
        """A configured path, relative to the project root unless absolute."""
        path = Path(value)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the project root."""
        url = self.database.url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url[len(prefix):].startswith("/") and ":memory:" not in url:
            return prefix + str(PROJECT_ROOT / url[len(prefix):])
        return url


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (default: GATEWAY_CONFIG or config/gateway.toml), then apply the environment."""
    env = os.environ if env is None else env
    config_path = Path(path or env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if config_path.exists():
        with config_path.open("rb") as fh:
            raw = tomllib.load(fh)
    elif path is not None or "GATEWAY_CONFIG" in env:
        raise SettingsError(f"configuration file {config_path} does not exist")

    sections = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(raw) - set(sections)
    if unknown:
        raise SettingsError(f"{config_path}: unknown section(s) {', '.join(sorted(unknown))}")

    values: dict[str, Any] = {}
    hints = get_type_hints(Settings)
    for name in hints:
        if name in ("carriers", "routes"):
            continue
        section = dict(raw.get(name, {}))
        values[name] = section
    # environment overrides
    for key, value in env.items():
        if not key.startswith("GATEWAY_"):
            continue
        if key in ALIASES:
            section, option = ALIASES[key]
            values[section][option] = value
            continue
        rest = key[len("GATEWAY_"):].lower()
        for section in values:
            if rest.startswith(section + "_"):
                option = rest[len(section) + 1:]
                fields = {f.name for f in dataclasses.fields(hints[section])}
                if option in fields:
                    values[section][option] = value
                break
    sim_carriers = values["simulator"].pop("carriers", None) or []
    if not isinstance(sim_carriers, list) or not all(isinstance(c, dict) for c in sim_carriers):
        raise SettingsError("simulator.carriers: expected [[simulator.carriers]] tables in the configuration file")
    built = {name: build(hints[name], data, name) for name, data in values.items()}
    built["simulator"].carriers = [build(SimulatedCarrier, dict(c), f"simulator.carriers[{i}]")
                                   for i, c in enumerate(sim_carriers)]
    carriers_raw = raw.get("carriers")
    carriers_raw = [dict(c) for c in carriers_raw] if carriers_raw is not None else [{}]
    carrier_fields = {f.name for f in dataclasses.fields(CarrierSettings)}
    for item in carriers_raw:  # GATEWAY_CARRIER_<NAME>_<KEY>, e.g. GATEWAY_CARRIER_SIM_PASSWORD
        prefix = "GATEWAY_CARRIER_" + str(item.get("name", "sim")).upper().replace("-", "_") + "_"
        for key, value in env.items():
            if key.startswith(prefix) and key[len(prefix):].lower() in carrier_fields - {"name"}:
                item[key[len(prefix):].lower()] = value
    carriers = [build(CarrierSettings, item, f"carriers[{i}]") for i, item in enumerate(carriers_raw)]
    routes = [parse_route(item, f"routes[{i}]") for i, item in enumerate(raw.get("routes") or [])]
    settings = Settings(**built, carriers=carriers, routes=routes)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if not 0 < settings.server.port < 65536:
        raise SettingsError("server.port must be between 1 and 65535")
    if not 0 <= settings.webhooks.processes <= 64:
        raise SettingsError("webhooks.processes must be from 0 (in the gateway's process) to 64")
    if settings.server.event_loop not in ("uvloop", "asyncio"):
        raise SettingsError("server.event_loop must be uvloop or asyncio")
    names = [c.name for c in settings.carriers]
    if len(set(names)) != len(names):
        raise SettingsError("carriers: names must be unique")
    for carrier in settings.carriers:
        if carrier.type not in {"smpp", "http", "loopback"}:
            raise SettingsError(f"carriers.{carrier.name}.type must be smpp, http or loopback")
        if carrier.type == "http":
            validate_http(carrier)
        if carrier.bind_mode not in {"transceiver", "transmitter_receiver"}:
            raise SettingsError(f"carriers.{carrier.name}.bind_mode must be transceiver or transmitter_receiver")
        if carrier.concatenation not in {"udh", "sar", "payload"}:
            raise SettingsError(f"carriers.{carrier.name}.concatenation must be udh, sar or payload")
        if carrier.receipt_id_base not in {"same", "hex_to_dec", "dec_to_hex"}:
            raise SettingsError(f"carriers.{carrier.name}.receipt_id_base must be same, hex_to_dec or dec_to_hex")
    h = settings.health
    if h.window_s <= 0 or h.min_samples < 1:
        raise SettingsError("health.window_s must be above 0 and health.min_samples at least 1")
    for name in ("max_submit_error_rate", "max_throttle_rate", "max_undelivered_rate", "probe_share"):
        if not 0 <= getattr(h, name) <= 1:
            raise SettingsError(f"health.{name} must be a share from 0 to 1")
    route_names = [r.name for r in settings.routes]
    for route in settings.routes:
        validate_route(route, set(names))
    if len(set(route_names)) != len(route_names):
        raise SettingsError("routes: names must be unique")
    for carrier in settings.carriers:
        if carrier.binds < 1 or carrier.max_binds < 0:
            raise SettingsError(f"carriers.{carrier.name}: binds must be at least 1 and max_binds at least 0")
    if settings.redis.url and not settings.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("redis.url must start with redis://, rediss:// or unix://")
    if settings.dispatcher.receipt_timeout_h <= 0:
        raise SettingsError("dispatcher.receipt_timeout_h must be above 0")
    if settings.dispatcher.unmatched_receipt_ttl_h < 0:
        raise SettingsError("dispatcher.unmatched_receipt_ttl_h must be 0 (the receipt timeout) or above")
    if settings.simulator.receipt_id_format not in {"same", "hex", "decimal", "padded"}:
        raise SettingsError("simulator.receipt_id_format must be same, hex, decimal or padded")
    if not -1 <= settings.simulator.sms_http_port <= 65535:
        raise SettingsError("simulator.sms_http_port must be -1 (off), 0 (any free port) or a port")
    sim_names = [c.name for c in settings.simulator.carriers]
    problems = [p for c in settings.simulator.carriers for p in c.problems()]
    if problems or len(set(sim_names)) != len(sim_names):
        raise SettingsError(problems[0] if problems else "simulator.carriers: names must be unique")
    if settings.dispatcher.lease_s < 5:
        raise SettingsError("dispatcher.lease_s must be at least 5 seconds")
    if settings.http.max_body_bytes < 1024 or settings.http.body_timeout_s <= 0:
        raise SettingsError("http.max_body_bytes must be at least 1024 and http.body_timeout_s above 0")
    if settings.security.auth_failure_limit < 0 or settings.security.auth_failure_window_s <= 0:
        raise SettingsError("security.auth_failure_limit must be at least 0 and auth_failure_window_s above 0")
    for where, networks in (("security.trusted_proxies", settings.security.trusted_proxies),
                            ("webhooks.allowed_networks", settings.webhooks.allowed_networks)):
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(f"{where}: {network!r} is not an IP address or CIDR network") from None
    p = settings.pacing
    if not 0 < p.headroom <= 1:
        raise SettingsError("pacing.headroom must be above 0 and at most 1")
    for name in ("account_per_s", "recipient_per_s", "short_code_per_s", "toll_free_per_s", "long_code_per_s",
                 "ten_dlc_per_s", "horizon_s"):
        if getattr(p, name) <= 0:
            raise SettingsError(f"pacing.{name} must be above 0")
    if settings.logging.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError("logging.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if settings.logging.format not in {"text", "json"}:
        raise SettingsError("logging.format must be text or json")
    a = settings.alerts
    if min(a.interval_s, a.sample_s, a.throttle_quiet_s) <= 0 or a.unmatched_after_s < 0 or a.queue_depth < 0:
        raise SettingsError("alerts: interval_s, sample_s and throttle_quiet_s must be above 0, the others 0 or more")
    if not 0 <= a.undelivered_rate <= 1 or a.undelivered_min < 1 or a.recent < 1:
        raise SettingsError("alerts.undelivered_rate must be a share from 0 to 1, undelivered_min and recent 1 or more")
    r = settings.retention
    if r.days < 0 or r.interval_s <= 0 or r.batch_size < 1:
        raise SettingsError("retention.days must be 0 (keep) or more, interval_s above 0 and batch_size at least 1")
    validate_registry(settings.registry)
    m = settings.messages
    if not m.min_ttl_s <= m.default_ttl_s <= m.max_ttl_s:
        raise SettingsError("messages.default_ttl_s must lie between min_ttl_s and max_ttl_s")
    if m.inbound_dedupe_s < 0:
        raise SettingsError("messages.inbound_dedupe_s must be 0 (no check) or more")
