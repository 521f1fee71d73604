"""gatewayctl routes: the route table of a running gateway (GET/POST/DELETE /admin/routes) and which route and
carrier a message would take (POST /admin/routes/test). The commands get the root's context object (a
gateway.cli.Ctx) from click, so this module needs nothing from gateway.cli."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import click

ROUTE_COLUMNS = [("position", "#"), ("name", "NAME"), ("source", "FROM"), ("matches", "MATCHES"),
                 ("does", "ACTION"), ("cost_per_segment", "COST/SEG")]
CRITERIA = (("countries", "country"), ("prefixes", "prefix"), ("recipient_carriers", "recipient carrier"),
            ("accounts", "account"), ("number_kinds", "number kind"), ("message_types", "message type"))


def _matches(route: dict[str, Any]) -> str:
    parts = [f"{label} {'/'.join(map(str, route[key]))}" for key, label in CRITERIA if route.get(key)]
    return ", ".join(parts) or "every message"


def _does(route: dict[str, Any]) -> str:
    action = route["action"]
    if action == "carrier":
        return f"carrier {route['carrier']}"
    if action == "failover":
        return "failover " + " > ".join(route["failover"])
    return "split " + ", ".join(route["split"])


def _list(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.group()
def routes() -> None:
    """Which carrier takes which messages: the route table, tried in order, the first match deciding."""


@routes.command("list")
@click.pass_obj
def routes_list(obj: Any) -> None:
    """The routes in the order they are tried: those added here, then the configured ones."""
    data = asyncio.run(obj.call("GET", "/admin/routes"))
    if obj.as_json:
        obj.emit(data)
        return
    rows = [{**r, "matches": _matches(r), "does": _does(r)} for r in data["routes"]]
    obj.emit(data, ROUTE_COLUMNS, rows)


@routes.command("add")
@click.argument("name")
@click.option("--country", "countries", multiple=True, help="The destination's country (ISO code); repeatable.")
@click.option("--prefix", "prefixes", multiple=True, help="The destination's first digits with the + (+4477).")
@click.option("--recipient-carrier", "recipient_carriers", multiple=True, help="att, tmobile, verizon, unknown.")
@click.option("--account", "accounts", type=int, multiple=True, help="The sending account's id.")
@click.option("--number-kind", "number_kinds", multiple=True, help="short_code, ten_dlc, toll_free, long_code.")
@click.option("--message-type", "message_types", multiple=True, help="transactional or promotional.")
@click.option("--carrier", default=None, help="Action: this carrier only.")
@click.option("--failover", default=None, help="Action: the first of these carriers that can take it (a,b).")
@click.option("--split", default=None, help="Action: a weighted draw (a=70,b=30).")
@click.option("--cost", "cost_per_segment", type=float, default=None, help="Cost per segment shown as the price.")
@click.option("--position", type=int, default=None, help="Place among the routes added here (0: first).")
@click.pass_obj
def routes_add(obj: Any, name: str, countries: tuple[str, ...], prefixes: tuple[str, ...],
               recipient_carriers: tuple[str, ...], accounts: tuple[int, ...], number_kinds: tuple[str, ...],
               message_types: tuple[str, ...], carrier: str | None, failover: str | None, split: str | None,
               cost_per_segment: float | None, position: int | None) -> None:
    """Add the route NAME (kept by the gateway, tried before the configured routes)."""
    body: dict[str, Any] = {"name": name, "countries": _list(countries), "prefixes": _list(prefixes),
                            "recipient_carriers": _list(recipient_carriers), "accounts": list(accounts),
                            "number_kinds": _list(number_kinds), "message_types": _list(message_types),
                            "carrier": carrier, "failover": _list((failover,)) if failover else [],
                            "split": _list((split,)) if split else [], "cost_per_segment": cost_per_segment,
                            "position": position}
    data = asyncio.run(obj.call("POST", "/admin/routes", body={k: v for k, v in body.items() if v is not None}))
    if obj.as_json:
        obj.emit(data)
        return
    click.echo(f"route {data['name']} added at {data['position']}: {_matches(data)} -> {_does(data)}")


@routes.command("remove")
@click.argument("name")
@click.pass_obj
def routes_remove(obj: Any, name: str) -> None:
    """Remove the route NAME (one added here; a configured route is removed from the configuration file)."""
    data = asyncio.run(obj.call("DELETE", "/admin/routes/" + urllib.parse.quote(name, safe="")))
    if obj.as_json:
        obj.emit(data)
    else:
        click.echo(f"route {name} removed")


@routes.command("test")
@click.argument("to")
@click.option("--account", type=int, required=True, help="The sending account's id.")
@click.option("--from", "source", default=None, help="The sending number (default: the one a send would choose).")
@click.option("--message-type", type=click.Choice(["transactional", "promotional"]), default=None)
@click.pass_obj
def routes_test(obj: Any, to: str, account: int, source: str | None, message_type: str | None) -> None:
    """Which route and carrier a message to TO from --account would take now, and why."""
    body = {"to": to, "account_id": account, "from": source, "message_type": message_type}
    data = asyncio.run(obj.call("POST", "/admin/routes/test", body={k: v for k, v in body.items() if v is not None}))
    if obj.as_json:
        obj.emit(data)
        return
    facts = data["facts"]
    click.echo(f"to {facts['to']} ({facts['country'] or 'unknown country'}, recipient carrier "
               f"{facts['recipient_carrier']}) from {data['from'] or 'no number'} ({facts['number_kind']}, "
               f"{facts['message_type']}), account {facts['account_id']}")
    click.echo(f"route: {data['route'] or '(none)'}")
    click.echo(f"carrier: {data['carrier'] or '(none can take it now)'}")
    if data.get("cost_per_segment") is not None:
        click.echo(f"cost per segment: {data['cost_per_segment']}")
    click.echo("why:")
    for line in data["why"]:
        click.echo(f"  {line}")

