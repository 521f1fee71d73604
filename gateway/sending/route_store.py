"""Routes the operator adds through the API (``/admin/routes``, ``gatewayctl routes``): kept in the ``routes`` table,
tried before the configured ones in their order, and read again by every instance (the dispatcher's sweep), so
that a route added on one instance applies on all within seconds."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, GatewayError, NotFound, Unprocessable
from gateway.sending import origination
from gateway.sending.routing import Route, Router, explain, route_of_settings
from gateway.settings import SettingsError
from gateway.settings_routes import RouteSettings, parse_route, validate_route
from gateway.store.models import StoredRoute
from gateway.validation import Fields, region_of
from registry import toll_free
from registry.models import Number, NumberStatus

log = logging.getLogger(__name__)

ROUTE_FIELDS = {f.name for f in dataclasses.fields(RouteSettings)}


def route_view(route: Route, source: str, position: int) -> dict[str, Any]:
    """A route as the API shows it (the keys of a [[routes]] table), with where it comes from and its place."""
    return {"name": route.name, "position": position, "source": source,
            "countries": list(route.countries), "prefixes": list(route.prefixes),
            "recipient_carriers": list(route.recipient_carriers), "accounts": list(route.accounts),
            "number_kinds": list(route.number_kinds), "message_types": list(route.message_types),
            "action": route.action, "carrier": route.carrier or None, "failover": list(route.failover),
            "split": [f"{name}={weight:g}" for name, weight in route.split],
            "cost_per_segment": route.cost_per_segment}


def table_view(router: Router) -> list[dict[str, Any]]:
    stored = {r.name for r in router.stored}
    return [route_view(r, "api" if r.name in stored else "config", i) for i, r in enumerate(router.routes)]


def _spec(router: Router, data: dict[str, Any]) -> tuple[RouteSettings, int | None]:
    """The route a POST body describes (the keys of a [[routes]] table, ``position`` among the stored routes)."""
    unknown = set(data) - ROUTE_FIELDS - {"position"}
    if unknown:
        raise Unprocessable(f"Unknown field(s): {', '.join(sorted(unknown))}.", code="invalid_route",
                            details={"fields": sorted(unknown)})
    position = Fields(data, ROUTE_FIELDS | {"position"}).integer("position", minimum=0, maximum=100_000)
    if not isinstance(data.get("name"), str) or not 0 < len(data["name"].strip()) <= 100:
        raise Unprocessable("A route needs a name (text of at most 100 characters).", code="invalid_route",
                            details={"field": "name"})
    spec = {k: v for k, v in data.items() if k != "position" and v is not None}
    for key, value in spec.items():
        if not _typed(key, value):
            raise Unprocessable(f"The field '{key}' must be {_TYPES.get(key, 'a string')}.", code="invalid_route",
                                details={"field": key})
    try:
        route = parse_route(spec, "route")
        validate_route(route, {c.name for c in router.pool.carriers})
    except SettingsError as exc:
        raise Unprocessable(f"{exc}.", code="invalid_route") from None
    return route, position


_LISTS = {"countries", "prefixes", "recipient_carriers", "number_kinds", "message_types", "failover", "split"}
_TYPES = {**dict.fromkeys(_LISTS, "a list of strings"), "accounts": "a list of account ids",
          "cost_per_segment": "a number"}


def _typed(key: str, value: Any) -> bool:
    """Whether a field of a route has its JSON type (the API takes no "1" for 1, nor "a,b" for a list)."""
    if key in _LISTS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if key == "accounts":
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if key == "cost_per_segment":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


async def add(sessionmaker: async_sessionmaker[AsyncSession], router: Router, data: dict[str, Any]
              ) -> dict[str, Any]:
    """Store a new route at ``position`` among the stored ones (default: after them); it applies at once."""
    spec, position = _spec(router, data)
    if any(r.name == spec.name for r in router.configured):
        raise Conflict(f"A configured route is named {spec.name}.", code="route_exists")
    async with sessionmaker() as session, session.begin():
        if await session.scalar(select(StoredRoute.id).where(StoredRoute.name == spec.name)) is not None:
            raise Conflict(f"A route named {spec.name} exists already.", code="route_exists")
        count = await session.scalar(select(func.count()).select_from(StoredRoute))
        position = count if position is None else min(position, count)
        await session.execute(update(StoredRoute).where(StoredRoute.position >= position)
                              .values(position=StoredRoute.position + 1))
        session.add(StoredRoute(name=spec.name, position=position, spec=json.dumps(dataclasses.asdict(spec))))
    await reload(sessionmaker, router)
    return next(v for v in table_view(router) if v["name"] == spec.name)


async def remove(sessionmaker: async_sessionmaker[AsyncSession], router: Router, name: str) -> None:
    if any(r.name == name for r in router.configured):
        raise Conflict(f"The route {name} comes from the configuration file; remove it there.",
                       code="route_in_config")
    async with sessionmaker() as session, session.begin():
        if not (await session.execute(delete(StoredRoute).where(StoredRoute.name == name))).rowcount:
            raise NotFound(f"No route named {name}.", code="route_not_found")
    await reload(sessionmaker, router)


async def reload(sessionmaker: async_sessionmaker[AsyncSession], router: Router) -> None:
    """Read the stored routes again; one that no longer fits (its carrier left the configuration) is skipped with
    a WARNING."""
    async with sessionmaker() as session:
        rows = (await session.execute(select(StoredRoute.name, StoredRoute.spec)
                                      .order_by(StoredRoute.position, StoredRoute.id))).all()
    carriers = {c.name for c in router.pool.carriers}
    routes = []
    for name, spec in rows:
        try:
            settings = parse_route(json.loads(spec), f"stored route {name}")
            validate_route(settings, carriers)
        except (SettingsError, ValueError) as exc:
            if not any(r.name == name for r in router.stored):  # said once, not at every reload
                log.warning("the stored route %s is not used: %s", name, exc)
            continue
        routes.append(route_of_settings(settings))
    router.stored = routes


async def test(sessionmaker: async_sessionmaker[AsyncSession], router: Router, data: dict[str, Any]
               ) -> dict[str, Any]:
    """Which route and carrier a message would take now, and why: to ``to`` from ``account_id``, from the number
    ``from`` (default: the account's first number that may send there, as a send would choose) with
    ``message_type`` (default: the number's, else transactional)."""
    f = Fields(data, {"to", "account_id", "from", "message_type"})
    to = (f.text("to", required=True, max_length=40) or "").strip()
    account_id = f.integer("account_id", minimum=1)
    if account_id is None:
        raise Unprocessable("The field 'account_id' is required.", code="missing_field",
                            details={"field": "account_id"})
    source = f.text("from", max_length=40)
    message_type = f.text("message_type")
    if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
        raise Unprocessable(f"'{to}' is not a number in E.164 form (+447700900123).", code="invalid_destination",
                            details={"field": "to"})
    if message_type is not None and message_type not in ("transactional", "promotional"):
        raise Unprocessable("message_type must be transactional or promotional.", code="invalid_field",
                            details={"field": "message_type"})
    region = region_of(to) or _country_of(to)
    async with sessionmaker() as session:
        numbers = (await session.scalars(select(Number).where(
            Number.account_id == account_id, Number.status != NumberStatus.RELEASED.value).order_by(Number.id))).all()
        unverified = await toll_free.unverified(session, numbers)
    number = _sending_number(list(numbers), to, region, source, unverified)
    kind = number.type if number is not None else "long_code"
    facts = router.facts(destination=to, account_id=account_id, source=number.number if number else "",
                         message_type=message_type or (number.message_type if number else None),
                         number_kind=kind, region=region)
    answer = explain(router, facts)
    answer["from"] = number.number if number is not None else None
    if number is None:
        answer["why"].insert(0, "no number of this account may send there (a send would be refused); "
                                "taken as a long code")
    return answer


def _country_of(number: str) -> str | None:
    """The country of a number that is not valid (a test range, say) by its country calling code."""
    import phonenumbers

    try:
        return phonenumbers.region_code_for_country_code(phonenumbers.parse(number, None).country_code)
    except phonenumbers.NumberParseException:
        return None


def _sending_number(numbers: list[Number], to: str, region: str | None, source: str | None,
                    unverified: dict[str, str]) -> Number | None:
    """The number a send would go from (as gateway.sending.origination chooses); None when the account has none
    that may send there (a named one that may not is the error a send would get)."""
    try:
        return origination.choose(numbers, to, region, source, unverified)
    except GatewayError:
        if source is not None:
            raise
        return None
