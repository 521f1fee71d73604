"""Routes: which carrier takes a message.

An ordered table (``[[routes]]`` in the configuration): each route matches on the destination's country or number
prefix, the recipient's carrier (gateway.sending.lookup), the account, the sending number's kind and the message
type; an empty criterion matches anything. The first route that matches decides, with one of three actions:

- ``carrier``: that carrier, and only it (the message waits while it cannot take it);
- ``failover``: the first carrier of the list that can take it now;
- ``split``: a weighted choice among the carriers of the split that can take it now (percentages).

A message no route matches goes to any ready carrier, in turn (the behaviour without routes). A route may carry a
cost per segment, which answers and dry runs show instead of the flat price of the sending number's kind.

The matching (``first_match``, ``choose``) is pure; :class:`Router` adds what the sender needs: the facts of a
claimed message (its region, its recipient's carrier, its sending number's kind, cached) and the pool's carriers.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from carriers import Carrier
from carriers.pool import CarrierPool
from gateway.sending.health import Health
from gateway.sending.lookup import NumberLookup
from gateway.settings_routes import RouteSettings
from gateway.validation import region_of
from registry.models import Number

KIND_CACHE_S = 5.0


@dataclass(frozen=True, slots=True)
class Facts:
    """What routes match on, for one message."""

    destination: str  # E.164
    region: str | None  # ISO country of the destination ("GB")
    recipient_carrier: str  # att | tmobile | verizon | unknown
    account_id: int
    number_kind: str  # short_code | ten_dlc | toll_free | long_code
    message_type: str  # transactional | promotional


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the route table: what it matches (an empty criterion matches anything), then its action
    (exactly one of carrier, failover, split) and its cost per segment (None: the flat price)."""

    name: str
    countries: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()  # "+44", "+4477"
    recipient_carriers: tuple[str, ...] = ()
    accounts: tuple[int, ...] = ()
    number_kinds: tuple[str, ...] = ()
    message_types: tuple[str, ...] = ()
    carrier: str = ""
    failover: tuple[str, ...] = ()
    split: tuple[tuple[str, float], ...] = ()  # (carrier, percent)
    cost_per_segment: float | None = None

    @property
    def action(self) -> str:
        return "carrier" if self.carrier else "failover" if self.failover else "split"

    @property
    def carriers(self) -> tuple[str, ...]:
        return (self.carrier,) if self.carrier else self.failover or tuple(name for name, _ in self.split)

    def mismatch(self, facts: Facts) -> str | None:
        """Why this route does not match the message (the first criterion that fails), or None when it does."""
        if self.countries and facts.region not in self.countries:
            return f"country {facts.region or 'unknown'} is not {'/'.join(self.countries)}"
        if self.prefixes and not facts.destination.startswith(self.prefixes):
            return f"{facts.destination} starts with none of {', '.join(self.prefixes)}"
        if self.recipient_carriers and facts.recipient_carrier not in self.recipient_carriers:
            return f"recipient carrier {facts.recipient_carrier} is not {'/'.join(self.recipient_carriers)}"
        if self.accounts and facts.account_id not in self.accounts:
            return f"account {facts.account_id} is not {'/'.join(map(str, self.accounts))}"
        if self.number_kinds and facts.number_kind not in self.number_kinds:
            return f"number kind {facts.number_kind} is not {'/'.join(self.number_kinds)}"
        if self.message_types and facts.message_type not in self.message_types:
            return f"message type {facts.message_type} is not {'/'.join(self.message_types)}"
        return None

    def describe(self) -> str:
        """The route's criteria in a few words (for explanations)."""
        parts = [f"{label} {'/'.join(map(str, values))}" for label, values in (
            ("country", self.countries), ("prefix", self.prefixes), ("recipient carrier", self.recipient_carriers),
            ("account", self.accounts), ("number kind", self.number_kinds), ("message type", self.message_types))
            if values]
        return ", ".join(parts) or "every message"


def route_of_settings(settings: RouteSettings) -> Route:
    """The route a validated ``[[routes]]`` table (or a stored one) describes."""
    return Route(name=settings.name, countries=tuple(settings.countries), prefixes=tuple(settings.prefixes),
                 recipient_carriers=tuple(settings.recipient_carriers), accounts=tuple(settings.accounts),
                 number_kinds=tuple(settings.number_kinds), message_types=tuple(settings.message_types),
                 carrier=settings.carrier, failover=tuple(settings.failover), split=tuple(settings.split_weights()),
                 cost_per_segment=settings.cost_per_segment)


def first_match(routes: Iterable[Route], facts: Facts) -> Route | None:
    """The first route that matches, or None."""
    return next((route for route in routes if route.mismatch(facts) is None), None)


def choose(route: Route, is_ready: Callable[[str], bool], rand: Callable[[], float] = random.random,
           is_healthy: Callable[[str], bool] = lambda name: True, probe_share: float = 0.0) -> str | None:
    """The carrier the route's action gives now, or None when none of its carriers can take the message:
    its one carrier (whatever its health); the first ready and healthy one of a failover list, a degraded one
    before it getting ``probe_share`` of the traffic; a weighted draw among the ready carriers of a split (those
    not ready left out, a degraded one's weight times ``probe_share``). When every ready carrier is degraded, the
    route works as if all were healthy."""
    if route.carrier:
        return route.carrier if is_ready(route.carrier) else None
    if route.failover:
        ready = [name for name in route.failover if is_ready(name)]
        first = next((name for name in ready if is_healthy(name)), None)
        if first is None:
            return ready[0] if ready else None
        ahead = ready[:ready.index(first)]  # degraded carriers the list prefers: probed with a small share
        return ahead[0] if ahead and rand() < probe_share else first
    ready = [(name, weight) for name, weight in route.split if weight > 0 and is_ready(name)]
    if not ready:
        return None
    if any(is_healthy(name) for name, _ in ready):
        ready = [(name, weight if is_healthy(name) else weight * probe_share) for name, weight in ready]
        ready = [(name, weight) for name, weight in ready if weight > 0] or ready
    point = rand() * sum(weight for _, weight in ready)
    for name, weight in ready:
        point -= weight
        if point < 0:
            return name
    return ready[-1][0]


def route_cost(route: Route | None, segments: int) -> float | None:
    """What the message costs on this route, or None when the route has no cost (the flat price applies)."""
    if route is None or route.cost_per_segment is None:
        return None
    return round(route.cost_per_segment * segments, 6)


@dataclass
class Router:
    """The route table for the sender: the facts of a message, its route and the carrier it takes now."""

    configured: Sequence[Route]  # the [[routes]] of the configuration
    pool: CarrierPool
    lookup: NumberLookup | None = None
    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    rand: Callable[[], float] = random.random
    health: Health | None = None
    stored: list[Route] = field(default_factory=list)  # added through the API, tried before the configured ones
    _kinds: dict[str, tuple[str, float]] = field(default_factory=dict)  # sending number -> (kind, fresh until)

    @property
    def routes(self) -> list[Route]:
        """The whole table, in the order routes are tried."""
        return [*self.stored, *self.configured]

    @property
    def _needs_kinds(self) -> bool:
        return any(route.number_kinds for route in self.routes)

    async def prepare(self, sources: Iterable[str]) -> None:
        """Load the kinds of these sending numbers that the cache does not hold (only when a route asks)."""
        if not self.routes or not self._needs_kinds or self.sessionmaker is None:
            return
        now = time.monotonic()
        wanted = {s for s in sources if self._kinds.get(s, ("", 0.0))[1] < now}
        if not wanted:
            return
        async with self.sessionmaker() as session:
            rows = (await session.execute(select(Number.number, Number.type)
                                          .where(Number.number.in_(sorted(wanted))))).all()
        for number, kind in rows:
            self._kinds[number] = (kind, now + KIND_CACHE_S)

    def facts(self, *, destination: str, account_id: int, source: str, message_type: str | None,
              number_kind: str | None = None, region: str | None = None) -> Facts:
        """The facts of a message; its sending number's kind from ``number_kind`` or the cache (prepare)."""
        kind = number_kind or self._kinds.get(source, ("long_code", 0.0))[0]
        return Facts(destination=destination, region=region or region_of(destination),
                     recipient_carrier=self.lookup.carrier(destination) if self.lookup is not None else "unknown",
                     account_id=account_id, number_kind=kind, message_type=message_type or "transactional")

    def route_of(self, facts: Facts) -> Route | None:
        return first_match(self.routes, facts)

    def _ready(self, name: str) -> bool:
        carrier = self.pool.by_name(name)
        return carrier is not None and carrier.ready

    def pick(self, facts: Facts | None, prefer: str | None = None) -> tuple[Carrier | None, Route | None]:
        """The carrier that takes the message now and the route that chose it (None: no route matched, any ready
        carrier in turn). ``prefer``: the carrier that took the message's other parts, kept while it is ready."""
        route = self.route_of(facts) if facts is not None and self.routes else None
        if route is None:
            return self.pool.pick(prefer), None
        if prefer is not None and self._ready(prefer):  # the other parts' carrier: one message, one carrier
            return self.pool.by_name(prefer), route
        health = self.health
        name = (choose(route, self._ready, self.rand) if health is None or not health.settings.enabled else
                choose(route, self._ready, self.rand, health.is_healthy, health.settings.probe_share))
        return (self.pool.by_name(name) if name is not None else None), route


def explain(router: Router, facts: Facts) -> dict:
    """Which route and carrier a message with these facts would take now, and why, line by line."""
    why: list[str] = []
    route = None
    for candidate in router.routes:
        reason = candidate.mismatch(facts)
        if reason is None:
            route = candidate
            why.append(f"route {candidate.name} matches ({candidate.describe()})")
            break
        why.append(f"route {candidate.name} does not match: {reason}")
    states = {c.name: _state(router, c.name) for c in router.pool.carriers}
    if route is None:
        ready = [c.name for c in router.pool.carriers if c.ready]
        why.append("no route matches: any ready carrier, in turn (" + (", ".join(ready) or "none is ready") + ")")
        name = ready[0] if ready else None
    else:
        name = choose(route, router._ready, lambda: 0.0, *_health_args(router))  # the likeliest choice
        shown = {"carrier": route.carrier, "failover": " then ".join(route.failover),
                 "split": ", ".join(f"{n} {w:g}%" for n, w in route.split)}[route.action]
        why.append(f"its action: {route.action} {shown}; "
                   + "; ".join(f"{n} is {states.get(n, 'unknown')}" for n in route.carriers))
        if route.action == "split" and name is not None:
            why.append("a split draws among its ready carriers by weight: shown is the first of them")
    why.append(f"carrier: {name}" if name is not None else "no carrier can take it now: it would wait in the queue")
    return {"route": route.name if route else None, "action": route.action if route else None, "carrier": name,
            "cost_per_segment": route.cost_per_segment if route else None, "why": why,
            "facts": {"to": facts.destination, "country": facts.region, "recipient_carrier": facts.recipient_carrier,
                      "account_id": facts.account_id, "number_kind": facts.number_kind,
                      "message_type": facts.message_type}}


def _state(router: Router, name: str) -> str:
    carrier = router.pool.by_name(name)
    if carrier is None:
        return "not configured"
    health = router.health
    degraded = health is not None and health.settings.enabled and not health.is_healthy(name)
    return ("ready" if carrier.ready else "not ready") + (", degraded" if degraded else "")


def _health_args(router: Router) -> tuple:
    health = router.health
    if health is None or not health.settings.enabled:
        return ()
    return health.is_healthy, 0.0  # the choice without probing
