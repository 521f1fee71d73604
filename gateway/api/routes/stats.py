"""Traffic stats: GET /v1/stats (the caller's account) and GET /admin/stats (every account, or ?account=<id>).

Query: ``from`` and ``to`` (ISO 8601; without an offset, UTC; default: the last 7 days by day, the last 24 hours
by hour), ``group_by`` (day | hour), ``by`` (number | campaign | carrier). The counting is gateway.store.stats.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_choice
from gateway.errors import BadRequest
from gateway.store import accounts, stats
from gateway.validation import row_id
from registry.db import iso, utcnow

routes = web.RouteTableDef()
_PLUS_AS_SPACE = re.compile(r" (\d{2}(?::?\d{2})?)$")  # "...T10:00:00 02:00": a "+" a query string made a space


def query_time(request: web.Request, name: str) -> dt.datetime | None:
    """An ISO 8601 time from the query (UTC when it has no offset), or None when absent; 400 invalid_time."""
    value = request.query.get(name)
    if value is None:
        return None
    text = value.strip()
    if "T" in text:
        text = _PLUS_AS_SPACE.sub(r"+\1", text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 time, such as 2026-11-29T00:00:00Z; got {value!r}.",
                         code="invalid_time", details={"parameter": name}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if not 1970 <= moment.year <= 9998:
        raise BadRequest(f"{name} must lie between the years 1970 and 9998.", code="invalid_time",
                         details={"parameter": name})
    return moment.astimezone(dt.timezone.utc)


def query_range(request: web.Request) -> stats.Range:
    group_by = query_choice(request, "group_by", stats.GROUPS) or "day"
    by = query_choice(request, "by", stats.BY)
    start, end = query_time(request, "from"), query_time(request, "to")
    end = end or utcnow()
    if start is None:
        start = end - stats.DEFAULT_RANGE[group_by]
    if start >= end:
        raise BadRequest("from must be earlier than to.", code="invalid_time_range",
                         details={"from": iso(start), "to": iso(end)})
    if end - start > stats.MAX_RANGE[group_by]:
        raise BadRequest(f"A range by {group_by} spans at most {stats.MAX_RANGE[group_by].days} days; ask for "
                         "several ranges, or group by day.", code="time_range_too_long",
                         details={"max_days": stats.MAX_RANGE[group_by].days})
    return stats.Range(start, end, group_by, by)


async def _answer(request: web.Request, account_ids: list[int] | None, r: stats.Range) -> web.Response:
    settings = request.app[app_keys.SETTINGS]
    got = await stats.stats(request.app[app_keys.SESSIONMAKER], account_ids, r, settings.pricing)
    body: dict[str, Any] = {"from": iso(r.start), "to": iso(r.end), "group_by": r.group_by, "by": r.by,
                            "currency": settings.pricing.currency,
                            "rows": [{**row, "start": iso(row["start"])} for row in got["rows"]],
                            "totals": got["totals"]}
    if account_ids is not None:
        body["account_id"] = account_ids[0]
    return web.json_response(body)


@routes.get("/v1/stats")
async def account_stats(request: web.Request) -> web.Response:
    return await _answer(request, [request[app_keys.ACCOUNT_ID]], query_range(request))


@routes.get("/admin/stats")
async def operator_stats(request: web.Request) -> web.Response:
    r = query_range(request)
    shown = request.query.get("account")
    if shown is None:
        return await _answer(request, None, r)
    account = await accounts.get_account(request.app[app_keys.SESSIONMAKER], row_id(shown), shown)
    return await _answer(request, [account.id], r)
