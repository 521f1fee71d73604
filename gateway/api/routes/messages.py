"""Customer routes for outbound SMS."""

from __future__ import annotations

from aiohttp import web

from gateway.api import app_keys
from gateway.api.bodies import query_choice, query_limit, query_phone, read_json_object
from gateway.api.routes.voice import accept_call
from gateway.errors import GatewayError, Unprocessable
from gateway.sending import history, messages as svc
from gateway.store.idempotency import fingerprint, request_key
from gateway.store.models import MessageStatus
from gateway.validation import Fields, check_text

routes = web.RouteTableDef()


@routes.post("/v1/messages")
async def send_message(request: web.Request) -> web.Response:
    settings = request.app[app_keys.SETTINGS]
    data = await read_json_object(request)
    idem = request_key(request)
    request_hash = fingerprint(request.path, data) if idem is not None else None
    channel = data.pop("channel", "sms")
    if channel not in ("sms", "voice", "auto"):
        raise Unprocessable("channel must be sms, voice or auto.", code="invalid_field", details={"field": "channel"})
    req = svc.parse_send(data, settings.messages)
    await request.app[app_keys.URL_POLICY].check(req.status_callback, "status_callback")
    lookup = request.app[app_keys.CARRIERS].lookup
    if channel == "voice" or (channel == "auto" and lookup is not None and lookup.is_landline(req.to)):
        # a landline cannot take SMS: the body is read to the person as a call
        body = {"to": req.to, "script": req.body, "dry_run": req.dry_run} | (
            {"status_callback": req.status_callback} if req.status_callback else {})
        view, created = await accept_call(request, body, idempotency_key=idem, request_hash=request_hash)
        return web.json_response(view, status=202 if created else 200)
    # stored with the requests that arrive beside it, in one transaction (gateway.sending.accepting); answered after it
    result = await request.app[app_keys.ACCEPTOR].accept(request[app_keys.ACCOUNT_ID], req, idempotency_key=idem,
                                                     fingerprint=request_hash)
    if result.blocked is not None:
        raise result.blocked  # stored as blocked, with its TEXT_BLOCKED event
    body = {**svc.message_summary(result.message), "price": result.price or None}
    if req.dry_run:
        body.update(id=None, status="dry_run")
        return web.json_response(body, status=200)
    return web.json_response(body, status=202 if result.created else 200)


MAX_BATCH = 1000


@routes.post("/v1/messages/batch")
async def send_batch(request: web.Request) -> web.Response:
    """Up to 1,000 messages; each is answered on its own (status_code 202, or the error it would have had)."""
    settings = request.app[app_keys.SETTINGS]
    data = await read_json_object(request, text=False)  # each message is checked on its own below
    f = Fields(data, {"messages"})
    items = data.get("messages")
    if not isinstance(items, list) or not items:
        raise Unprocessable("'messages' must be a non-empty list.", code="invalid_field", details={"field": "messages"})
    if len(items) > MAX_BATCH:
        raise Unprocessable(f"At most {MAX_BATCH} messages per batch.", code="batch_too_large")
    del f
    idem = request_key(request)
    reqs: list = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise Unprocessable("Each message must be a JSON object.", code="invalid_field")
            check_text(item)
            req = svc.parse_send(item, settings.messages)
            await request.app[app_keys.URL_POLICY].check(req.status_callback, "status_callback")
            if req.dry_run:
                raise Unprocessable("dry_run is not available in batches.", code="invalid_field",
                                    details={"field": "dry_run"})
            reqs.append(req)
        except GatewayError as exc:
            reqs.append(exc)
    async with request.app[app_keys.SESSIONMAKER]() as session, session.begin():
        outcomes = await svc.accept_many(session, request[app_keys.ACCOUNT_ID], reqs, settings.pricing,
                                         idempotency_keys=[f"{idem}:{i}" if idem else None for i in range(len(reqs))],
                                         fingerprints=[fingerprint(request.path, item) if idem else None
                                                       for item in items],
                                         now=request.app[app_keys.CLOCK]())
        results: list[dict] = []
        for index, outcome in enumerate(outcomes):
            error = outcome if isinstance(outcome, GatewayError) else outcome.blocked
            if error is not None:
                results.append({"index": index, "status_code": error.status, **error.to_json()})
            else:
                results.append({"index": index, "status_code": 202 if outcome.created else 200,
                                "message": svc.message_summary(outcome.message)})
    stored = [o for o in outcomes if not isinstance(o, GatewayError) and o.created]
    request.app[app_keys.METRICS].count_accepted(stored)
    if stored:
        request.app[app_keys.DISPATCHER].notify()
    if any(o.hooked for o in stored):
        request.app[app_keys.WEBHOOKS].notify()
    accepted = sum(1 for r in results if r["status_code"] < 300)
    return web.json_response({"accepted": accepted, "failed": len(results) - accepted, "results": results})


@routes.get("/v1/messages/{id}")
async def get_message(request: web.Request) -> web.Response:
    async with request.app[app_keys.SESSIONMAKER]() as session:
        message = await svc.get_message(session, request[app_keys.ACCOUNT_ID], request.match_info["id"])
        return web.json_response(await svc.message_view(session, message))


@routes.get("/v1/messages")
async def list_messages(request: web.Request) -> web.Response:
    limit = query_limit(request)
    status = query_choice(request, "status", [s.value for s in MessageStatus])
    to = query_phone(request, "to", default_region=request.app[app_keys.SETTINGS].messages.default_country)
    rows = await history.list_messages(request.app[app_keys.SESSIONMAKER], request[app_keys.ACCOUNT_ID],
                                       status=status, to=to, before=request.query.get("before"), limit=limit)
    items = [svc.message_summary(m) for m in rows]
    return web.json_response({"messages": items, "next": items[-1]["id"] if len(items) == limit else None})
