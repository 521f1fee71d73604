"""The settings of carrier routing: ``[[routes]]`` tables (also given through the operator API) and ``[health]``,
read and checked here; gateway.sending.routing and gateway.sending.health use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

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
