"""The console's pages: each reads its query, calls one service or query function, and renders a template."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from aiohttp import web

from gateway.console import WIRING, charts, queries
from gateway.console.auth import page, refuse, render
from gateway.numbers import lifecycle
from gateway.store.models import MessageStatus
from gateway.tendlc import brands, campaigns
from gateway.webhooks import deliveries
from registry import states
from registry.db import utcnow

routes = web.RouteTableDef()
STATUSES = [s.value for s in MessageStatus]
QUEUE_ALERT_AGE = dt.timedelta(minutes=5)  # a queued message older than this: the queue is not draining
WEBHOOK_ALERT_AGE = dt.timedelta(minutes=5)
SHOWN = 1000  # rows of a listing shown at most (the filters narrow it)
BOARD_TTL_S = 10.0  # the dashboard's figures are read at most this often (they scan the last hour's messages)


class LatestBoard:
    """The last dashboard read, reused for BOARD_TTL_S: operators reloading pages do not each scan the hour."""

    def __init__(self) -> None:
        self.board: queries.Dashboard | None = None
        self.at = 0.0
        self.lock = asyncio.Lock()

    async def get(self, sessions: Any) -> queries.Dashboard:
        async with self.lock:
            if self.board is None or time.monotonic() - self.at > BOARD_TTL_S:
                self.board, self.at = await queries.dashboard(sessions, utcnow()), time.monotonic()
            return self.board


BOARD = web.AppKey("console_board", LatestBoard)


def when(value: dt.datetime | None) -> str:
    """A time as the pages show it (UTC, to the second)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _sessions(request: web.Request) -> Any:
    return request.app[request.app[WIRING].sessionmaker]


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def _time(request: web.Request, name: str) -> dt.datetime | None:
    """A time field (datetime-local: YYYY-MM-DDTHH:MM[:SS], taken as UTC)."""
    value = _text(request, name)
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"{name} must be a date and time like 2026-01-31T09:00.") from None


def binds(pool: Any) -> list[dict[str, Any]]:
    """Each carrier's binds as its connections report them (a carrier without binds: one line, its readiness)."""
    out = []
    for carrier in getattr(pool, "carriers", []):
        clients = getattr(carrier, "clients", None)
        if not clients:
            out.append({"carrier": carrier.name, "bind": carrier.name, "state": "ready" if carrier.ready else "down",
                        "binds": None, "mode": type(carrier).__name__, "window": None, "last_error": None})
            continue
        for client in clients:
            out.append({"carrier": carrier.name, "bind": client.name, "state": "bound" if client.bound else "down",
                        "binds": client.binds, "mode": client.bind_mode, "window": client.window,
                        "last_error": getattr(client, "last_error", None)})
    return out


def alerts(board: queries.Dashboard, bind_rows: list[dict[str, Any]], now: dt.datetime) -> list[str]:
    """What an operator should look at now."""
    out = [f"Carrier bind {b['bind']} is down" + (f": {b['last_error']}" if b["last_error"] else ".")
           for b in bind_rows if b["state"] == "down"]
    if board.oldest_queued is not None and now - board.oldest_queued > QUEUE_ALERT_AGE:
        out.append(f"The queue is not draining: {board.queue['queued']} queued, the oldest since "
                   f"{when(board.oldest_queued)}.")
    if board.oldest_pending_webhook is not None and now - board.oldest_pending_webhook > WEBHOOK_ALERT_AGE:
        out.append(f"{board.webhooks_pending} webhook deliveries pending, the oldest since "
                   f"{when(board.oldest_pending_webhook)}.")
    out += [f"Webhooks of {f['account']} to {f['url']} failing: {f['count']} in the last hour."
            for f in board.failing_webhooks]
    if board.unmatched_receipts:
        out.append(f"{board.unmatched_receipts} receipts in the last hour matched no message.")
    return out


@page("GET", "/console")
async def dashboard(request: web.Request) -> web.Response:
    now = utcnow()
    board = await request.app[BOARD].get(_sessions(request))
    labels = [when(board.since + dt.timedelta(seconds=board.bucket_s * (i + 1)))[11:16] for i in range(12)]
    per_minute = 60 / board.bucket_s
    throughput = charts.line_chart("Messages sent per minute", labels, {
        name: [n * per_minute for n in s.sent] for name, s in board.carriers.items()})
    rate = charts.line_chart("Delivery rate (delivered of settled)", labels, {
        name: s.rate() for name, s in board.carriers.items()}, y_max=1.0, percent=True)
    bind_rows = binds(request.app[request.app[WIRING].carriers])
    return render(request, "dashboard.html", {"board": board, "throughput": throughput, "rate": rate,
                                              "binds": bind_rows, "alerts": alerts(board, bind_rows, now)})


@page("GET", "/console/messages")
async def messages(request: web.Request) -> web.Response:
    try:
        since, until = _time(request, "since"), _time(request, "until")
    except ValueError as exc:
        return refuse(request, 400, str(exc))
    q = queries.Search(phone=_text(request, "phone"), id=_text(request, "id"), account=_text(request, "account"),
                       status=_text(request, "status"), error=_text(request, "error"), since=since, until=until)
    searched = any(vars(q).values())
    rows = await queries.search_messages(_sessions(request), q) if searched else []
    return render(request, "messages.html", {"q": request.query, "rows": rows, "searched": searched,
                                             "statuses": STATUSES})


@page("GET", "/console/messages/{id}")
async def message(request: web.Request) -> web.Response:
    timeline = await queries.message_timeline(_sessions(request), request.match_info["id"])
    return render(request, "message.html", {"t": timeline})


@page("GET", "/console/numbers")
async def numbers(request: web.Request) -> web.Response:
    account = _text(request, "account")
    rows = await lifecycle.list_numbers(_sessions(request), account_id=int(account) if account and account.isdigit()
                                        else None, free=request.query.get("free") == "1", kind=_text(request, "type"))
    return render(request, "numbers.html", {"rows": rows[:SHOWN], "total": len(rows), "q": request.query,
                                            "types": states.NUMBER_TYPES,
                                            "accounts": await queries.account_names(_sessions(request))})


@page("GET", "/console/numbers/{number}")
async def number(request: web.Request) -> web.Response:
    n, history = await lifecycle.number_history(_sessions(request), request.match_info["number"])
    return render(request, "entity.html", {"kind": "Number", "title": n.number, "history": history, "fields": {
        "type": n.type, "country": n.country, "status": n.status, "account": n.account_id, "carrier": n.carrier,
        "capabilities": n.capabilities, "campaign": n.campaign_id, "message type": n.message_type,
        "two-way": n.two_way_enabled, "opt-out list": n.opt_out_list, "leased": when(n.leased_at)}})


@page("GET", "/console/brands")
async def brand_list(request: web.Request) -> web.Response:
    rows = await brands.list_brands(_sessions(request))
    return render(request, "brands.html", {"rows": rows, "accounts": await queries.account_names(_sessions(request))})


@page("GET", "/console/brands/{id}")
async def brand(request: web.Request) -> web.Response:
    b, history = await brands.brand_history(_sessions(request), request.match_info["id"])
    return render(request, "entity.html", {"kind": "Brand", "title": f"{b.id} {b.legal_name}", "history": history,
                                           "fields": {"account": b.account_id, "status": b.status,
                                                      "identity": b.identity_status, "trust score": b.trust_score,
                                                      "vetting": b.vetting_status, "registry id": b.registry_id,
                                                      "entity type": b.entity_type, "vertical": b.vertical,
                                                      "country": b.country, "reason": b.reason}})


@page("GET", "/console/campaigns")
async def campaign_list(request: web.Request) -> web.Response:
    rows = await campaigns.list_campaigns(_sessions(request))
    return render(request, "campaigns.html", {"rows": rows,
                                              "accounts": await queries.account_names(_sessions(request))})


@page("GET", "/console/campaigns/{id}")
async def campaign(request: web.Request) -> web.Response:
    d = await campaigns.campaign_detail(_sessions(request), request.match_info["id"])
    c, b = d["campaign"], d["brand"]
    limits = await queries.campaign_limits(_sessions(request), c.id)
    reviews = ", ".join(f"{mno} {op['status']}" for mno, op in d["operations"].items())
    return render(request, "entity.html", {"kind": "Campaign", "title": f"{c.id} {c.use_case}",
                                           "history": d["history"], "limits": limits,
                                           "fields": {"account": c.account_id, "brand": b.legal_name if b else None,
                                                      "status": c.status, "registry id": c.registry_id,
                                                      "sharing": c.sharing_status, "carriers": reviews or "none",
                                                      "expires": when(c.expires_at), "reason": c.reason,
                                                      "numbers": ", ".join(d["numbers"]) or "none"}})


@page("GET", "/console/carriers")
async def carriers(request: web.Request) -> web.Response:
    board = await request.app[BOARD].get(_sessions(request))
    return render(request, "carriers.html", {"binds": binds(request.app[request.app[WIRING].carriers]),
                                             "traffic": {name: (sum(s.sent), sum(s.delivered), sum(s.settled))
                                                         for name, s in board.carriers.items()}})


@page("GET", "/console/webhooks")
async def webhooks(request: web.Request) -> web.Response:
    status = _text(request, "status")
    rows = await queries.webhook_deliveries(_sessions(request), status=status, account=_text(request, "account"))
    return render(request, "webhooks.html", {"rows": rows, "q": request.query, "statuses": deliveries.STATUSES,
                                             "replayed": _text(request, "replayed")})


@page("POST", "/console/webhooks/{id}/replay")
async def replay(request: web.Request) -> web.StreamResponse:
    public_id = request.match_info["id"]
    sessions = _sessions(request)
    account_id = await queries.delivery_account(sessions, public_id)
    await deliveries.replay_delivery(sessions, account_id, public_id)
    request.app[request.app[WIRING].webhooks].notify()
    raise web.HTTPSeeOther(f"/console/webhooks?replayed={public_id}")


@page("GET", "/console/opt-outs")
async def opt_outs(request: web.Request) -> web.Response:
    rows = await queries.opt_outs(_sessions(request), account=_text(request, "account"),
                                  phone=_text(request, "phone"), list_name=_text(request, "list"))
    return render(request, "opt_outs.html", {"rows": rows, "q": request.query})
