"""The settings of carriers and their routing: ``[[carriers]]`` tables, ``[[routes]]`` tables (also given through
the operator API) and ``[health]``, read and checked here; gateway.sending.routing and gateway.sending.health use
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from carriers.http_sms import DEFAULT_STATUS_MAP, PROFILES, JsonFields
from gateway.settings_values import SettingsError, build, coerce

NUMBER_KINDS = ("short_code", "ten_dlc", "toll_free", "long_code")  # what routes may match on
RECIPIENT_CARRIERS = ("att", "tmobile", "verizon", "unknown")  # what the recipient lookup answers
MESSAGE_TYPES = ("transactional", "promotional")


@dataclass
class HealthSettings:
    enabled: bool = True
    window_s: float = 300.0  # the sliding window the rates are measured over
    min_samples: int = 20  # submits (or final receipts) the window must hold before their rates are judged
    max_submit_error_rate: float = 0.2  # share of submits refused or failed (not bound, timeouts, refusals)
    max_throttle_rate: float = 0.5  # share of submits answered "slow down" (ESME_RTHROTTLED, queue full, 429)
    max_undelivered_rate: float = 0.5  # share of final receipts that ended undelivered or rejected
    probe_share: float = 0.05  # share of a failover list's or split's traffic a degraded carrier still gets


@dataclass
class RouteSettings:
    """One ``[[routes]]`` table: what it matches (empty: anything) and its action (one of carrier, failover,
    split); see gateway.sending.routing."""

    name: str = ""
    countries: list[str] = field(default_factory=list)  # ISO codes of the destination's country: ["GB", "IE"]
    prefixes: list[str] = field(default_factory=list)  # the destination's first digits, with the +: ["+4477"]
    recipient_carriers: list[str] = field(default_factory=list)  # att | tmobile | verizon | unknown
    accounts: list[int] = field(default_factory=list)
    number_kinds: list[str] = field(default_factory=list)  # short_code | ten_dlc | toll_free | long_code
    message_types: list[str] = field(default_factory=list)  # transactional | promotional
    carrier: str = ""  # this carrier only
    failover: list[str] = field(default_factory=list)  # the first of these that can take the message now
    split: list[str] = field(default_factory=list)  # "carrier=percent", the percentages adding up to 100
    cost_per_segment: float | None = None  # None: the flat price of the sending number's kind

    def split_weights(self) -> list[tuple[str, float]]:
        """The split as (carrier, percent) pairs."""
        pairs = []
        for entry in self.split:
            name, sep, percent = entry.partition("=")
            try:
                value = float(percent) if sep else -1.0
            except ValueError:
                value = -1.0
            if not name.strip() or not 0 <= value <= 100:
                raise SettingsError(f"routes.{self.name}.split: {entry!r} is not \"carrier=percent\" "
                                    "with a percent from 0 to 100")
            pairs.append((name.strip(), value))
        return pairs


def parse_route(item: Mapping[str, Any], where: str) -> RouteSettings:
    """A ``[[routes]]`` table (or a route given to the API); its cost_per_segment is a number or absent (the flat
    price). ``where`` starts the errors' sentences."""
    data = dict(item)
    if isinstance(data.get("name"), str):
        where += f" ({data['name']})"
    cost = data.pop("cost_per_segment", None)
    route = build(RouteSettings, data, where)
    if cost is not None:
        route.cost_per_segment = coerce(float, cost, f"{where}.cost_per_segment")
    return route


def validate_route(route: RouteSettings, carriers: set[str]) -> None:
    """A route that can be used: a name, known criteria, exactly one action naming known carriers."""
    where = f"routes.{route.name or '?'}"
    if not route.name.strip():
        raise SettingsError("routes: every route needs a name")
    for country in route.countries:
        if len(country) != 2 or not country.isalpha() or not country.isupper():
            raise SettingsError(f"{where}.countries: {country!r} is not a two-letter ISO country code (\"GB\")")
    for prefix in route.prefixes:
        if not (prefix.startswith("+") and prefix[1:].isdigit()):
            raise SettingsError(f"{where}.prefixes: {prefix!r} is not a + followed by digits (\"+4477\")")
    for label, values, allowed in (("recipient_carriers", route.recipient_carriers, RECIPIENT_CARRIERS),
                                   ("number_kinds", route.number_kinds, NUMBER_KINDS),
                                   ("message_types", route.message_types, MESSAGE_TYPES)):
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise SettingsError(f"{where}.{label}: {', '.join(bad)} not among {', '.join(allowed)}")
    actions = [name for name in ("carrier", "failover", "split") if getattr(route, name)]
    if len(actions) != 1:
        raise SettingsError(f"{where}: give exactly one action, carrier, failover or split (got "
                            f"{', '.join(actions) or 'none'})")
    named = [route.carrier] if route.carrier else route.failover or [n for n, _ in route.split_weights()]
    unknown = sorted(set(named) - carriers)
    if unknown:
        raise SettingsError(f"{where}: no carrier named {', '.join(unknown)} (carriers: {', '.join(sorted(carriers))})")
    if len(set(named)) != len(named):
        raise SettingsError(f"{where}: a carrier is named twice")
    if route.split and abs(sum(p for _, p in route.split_weights()) - 100) > 1e-6:
        raise SettingsError(f"{where}.split: the percentages add up to "
                            f"{sum(p for _, p in route.split_weights()):g}, not 100")
    if route.cost_per_segment is not None and route.cost_per_segment < 0:
        raise SettingsError(f"{where}.cost_per_segment must be 0 or above")


@dataclass
class CarrierSettings:
    name: str = "sim"
    type: str = "smpp"  # smpp | http | loopback
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "gateway"
    password: str = field(default="secret", repr=False)
    system_type: str = ""
    bind_mode: str = "transceiver"  # transceiver | transmitter_receiver
    window: int = 100
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    concatenation: str = "udh"  # udh | sar | payload
    receipt_id_base: str = "same"  # same | hex_to_dec | dec_to_hex: how receipts quote submit_sm_resp ids
    binds: int = 1  # SMPP connections this instance opens to this carrier
    max_binds: int = 0  # connections to this carrier across all instances (0: no maximum); needs [redis]
    # type = "http": an HTTP SMS provider (carriers.http_sms); response_timeout is its request timeout
    profile: str = ""  # kannel | json
    url: str = ""  # Kannel's sendsms URL, or the JSON provider's endpoint
    username: str = ""  # kannel: the sendsms-user (its password is ``password``)
    auth_header: str = "Authorization"  # json: the header that authenticates us
    auth_value: str = field(default="", repr=False)  # json: its value, e.g. "Bearer <key>"
    concurrency: int = 10  # requests in flight at once, each on a kept-alive connection
    max_parts: int = 11  # longest message in parts (Kannel's sendsms-user max-messages must be at least this)
    dlr_mask: int = 19  # kannel: the receipts asked for (1 delivered + 2 undelivered + 16 refused by the SMSC)
    to_field: str = "to"  # json: field names of the request
    from_field: str = "from"
    text_field: str = "text"
    reference_field: str = ""  # "": our reference is not sent
    callback_field: str = "status_callback"  # "": the status report URL is configured at the provider
    id_path: str = "/id"  # json: JSON pointers of the provider's id in its answer, and in a status report
    report_id_path: str = "/id"
    report_status_path: str = "/status"
    report_error_path: str = "/error_code"
    status_map: list[str] = field(default_factory=list)  # "provider status=STAT" over the usual words

    def json_fields(self) -> JsonFields:
        """The json profile's field names, pointers and status words."""
        mapping = dict(DEFAULT_STATUS_MAP)
        for entry in self.status_map:
            word, sep, stat = entry.rpartition("=")
            if not sep or not word.strip():
                raise SettingsError(f"carriers.{self.name}.status_map: {entry!r} is not \"provider status=STAT\"")
            mapping[word.strip()] = stat.strip().upper()
        try:
            return JsonFields(to=self.to_field, from_=self.from_field, text=self.text_field,
                              reference=self.reference_field, callback=self.callback_field, id_path=self.id_path,
                              report_id_path=self.report_id_path, report_status_path=self.report_status_path,
                              report_error_path=self.report_error_path, status_map=mapping)
        except ValueError as exc:
            raise SettingsError(f"carriers.{self.name}: {exc}") from None


def validate_http(carrier: CarrierSettings) -> None:
    where = f"carriers.{carrier.name}"
    if carrier.profile not in PROFILES:
        raise SettingsError(f"{where}.profile must be {' or '.join(PROFILES)} for an http carrier")
    if not carrier.url.startswith(("http://", "https://")):
        raise SettingsError(f"{where}.url must be an http:// or https:// URL")
    if carrier.concurrency < 1 or carrier.max_parts < 1 or carrier.response_timeout <= 0:
        raise SettingsError(f"{where}: concurrency and max_parts must be at least 1, response_timeout above 0")
    if carrier.profile == "json":
        carrier.json_fields()
