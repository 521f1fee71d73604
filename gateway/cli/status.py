"""gatewayctl status: what a running gateway instance is doing (GET /admin/status), as Kannel's status page shows a
bearerbox: version and uptime, queue depth and webhook backlog, each carrier's rates over the last minute and
health, each bind's state and window, the last errors, and the instances sharing the database. ``--json`` prints
the answer as it came. The command gets the root's context object (a gateway.cli.Ctx) from click."""

from __future__ import annotations

import asyncio
from typing import Any

import click

CARRIER_COLUMNS = [("name", "CARRIER"), ("kind", "KIND"), ("ready", "READY"), ("sent_per_s", "SENT/S"),
                   ("receipts_per_s", "RCPT/S"), ("inbound_per_s", "IN/S"), ("sent", "SENT 1M"),
                   ("receipts", "RCPT 1M"), ("inbound", "IN 1M"), ("health", "HEALTH")]
BIND_COLUMNS = [("name", "BIND"), ("state", "STATE"), ("for", "FOR"), ("window", "WINDOW"), ("binds", "BINDS"),
                ("mode", "MODE")]
ERROR_COLUMNS = [("carrier", "CARRIER"), ("where", "WHERE"), ("code", "CODE"), ("count", "COUNT"),
                 ("at", "LAST (UTC)"), ("message", "MESSAGE")]
INSTANCE_COLUMNS = [("id", "INSTANCE"), ("host", "HOST"), ("pid", "PID"), ("started_at", "STARTED (UTC)"),
                    ("heartbeat", "HEARTBEAT"), ("alive", "ALIVE")]


def duration(seconds: float | None) -> str:
    """1h 02m 03s, 4m 05s, 6.2s."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def when(iso: str | None) -> str:
    """An answer's time as the tables show it: 2026-01-31 09:00:00 (UTC, to the second)."""
    return iso[:19].replace("T", " ") if iso else "-"


def _rates(minute: dict[str, Any]) -> dict[str, str]:
    return {key: f"{value:.2f}" for key, value in minute.items() if key.endswith("_per_s")}


def _health(carrier: dict[str, Any]) -> str:
    health = carrier.get("health")
    if not health:
        return "-"
    return health["state"] + (f" ({'; '.join(health['reasons'])})" if health["reasons"] else "")


def _summary(data: dict[str, Any]) -> list[str]:
    me, hooks = data["instance"], data["webhooks"]
    lines = [f"Gateway {me['version']}, instance {me['id']} on {me['host']} (pid {me['pid']}), "
             f"up {duration(me['uptime_s'])} since {when(me['started_at'])} UTC, on {me.get('event_loop', '?')}"]
    if me.get("sending_paused"):
        lines.append(f"Sending paused: {me['sending_paused']}")
    queue = ", ".join(f"{status} {count}" for status, count in data["queue"].items()) or "-"
    oldest = f", oldest {duration(hooks['oldest_pending_age_s'])}" if hooks["pending"] else ""
    lines.append(f"Queue: {queue}. Webhooks: {hooks['pending']} pending{oldest}. "
                 f"(read from the database {duration(data['read_age_s'])} ago)")
    return lines


@click.command("status")
@click.pass_obj
def status(obj: Any) -> None:
    """This instance's status: binds, windows, rates, queue, webhook backlog, last errors and peer instances."""
    data = asyncio.run(obj.call("GET", "/admin/status"))
    if obj.as_json:
        obj.emit(data)
        return
    for line in _summary(data):
        click.echo(line)
    carriers = data["carriers"]
    click.echo()
    obj.emit(data, CARRIER_COLUMNS, [{**c, **c["last_minute"], **_rates(c["last_minute"]),
                                      "ready": "yes" if c["ready"] else "no", "health": _health(c)}
                                     for c in carriers])
    binds = [{**b, "for": duration(b["for_s"]), "window": f"{b['window_in_use']}/{b['window']}"}
             for c in carriers for b in c["binds"] or ()]
    if binds:
        click.echo()
        obj.emit(data, BIND_COLUMNS, binds)
    errors = [{**e, "carrier": c["name"], "where": e["bind"] or e["source"], "at": when(e["at"])}
              for c in carriers for e in c["last_errors"]]
    click.echo()
    if errors:
        click.echo("Last errors:")
        obj.emit(data, ERROR_COLUMNS, errors)
    else:
        click.echo("Last errors: none")
    click.echo()
    alerts = data.get("alerts") or []
    click.echo("Recent alerts:" if alerts else "Recent alerts: none")
    for a in alerts[:10]:
        click.echo(f"  {when(a['at'])}  {a['level']:<7} {a['message']}")
    click.echo()
    obj.emit(data, INSTANCE_COLUMNS, [{**i, "id": i["id"] + (" (this)" if i["self"] else ""),
                                       "started_at": when(i["started_at"]),
                                       "heartbeat": f"{duration(i['heartbeat_age_s'])} ago",
                                       "alive": "yes" if i["alive"] else "no"} for i in data["instances"]])
