"""The OpenAPI 3 document served at /openapi.json: its paths, here, and the schemas, parameters and bodies they
share (gateway.api.openapi_schemas). A test fails if a route is missing from it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from carriers.voice_http import CALL_STATUSES
from gateway.api.openapi_carriers import CARRIER_PATHS
from gateway.api.openapi_registry import REGISTRY_PATHS
from gateway.api.openapi_schemas import (
    ACCOUNT_PARAM,
    BODIES,
    EVENT_SELECTION,
    ID_PARAM,
    IDEMPOTENCY_KEY,
    KEYWORD_PARAM,
    LIMIT,
    LIST_NAME,
    LIST_NAME_OR_NULL,
    NUMBER_PARAM,
    OPERATOR,
    PAGE,
    PHONE_PARAM,
    SCHEMAS,
    WEBHOOK_URL,
    WEBHOOK_URL_OR_NULL,
    errors,
    operation,
    ref,
    reply,
    takes,
)
from gateway.api.openapi_toll_free import ACCOUNT_PATHS as TOLL_FREE_PATHS, ADMIN_PATHS as TOLL_FREE_ADMIN
from gateway.store.models import MessageStatus
from gateway.webhooks.sender import MAX_BATCH

routes = web.RouteTableDef()

PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {"get": {"summary": "Liveness", "security": [],
                         "responses": {"200": reply({"type": "object"})}}},
    "/readyz": {"get": {"summary": "Readiness: database migrated and a carrier bound", "security": [],
                        "responses": {"200": reply({"type": "object"}),
                                      "503": reply({"type": "object"}, "Not ready")}}},
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": reply({"type": "object"})}}},
    "/metrics": {"get": {"summary": "The instance's metrics in Prometheus text format (README: Metrics)",
                         "security": OPERATOR + [{"scrapeToken": []}],
                         "responses": {"200": {"description": "Prometheus text exposition format 0.0.4",
                                               "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/v1/messages": {
        "post": {
            "summary": "Send an SMS",
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": takes(ref("SendMessage")),
            "responses": {"202": reply(ref("Message"), "Accepted and queued"),
                          "200": reply(ref("Message"), "Dry run (nothing stored, sent or called), or the message "
                                                        "of a repeated Idempotency-Key"),
                          **errors(400, 401, 409, 422, 429, 503)},
            "description": "Refusals after validation (recipient_opted_out, public_url_shortener, "
                           "number_not_active, quiet_hours) are stored as blocked messages with a TEXT_BLOCKED "
                           "event; the error's details carry their message_id.",
        },
        "get": {
            "summary": "List messages, newest first",
            "parameters": [LIMIT,
                           {"name": "status", "in": "query", "schema": {"type": "string", "enum": [
                               s.value for s in MessageStatus]}},
                           {"name": "to", "in": "query", "schema": {"type": "string"},
                            "description": "A destination, as it is sent to (E.164 or national)"},
                           {"name": "before", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": reply({"type": "object", "properties": {
                "messages": {"type": "array", "items": ref("Message")},
                "next": {"type": ["string", "null"]}}}), **errors(400, 401)},
        },
    },
    "/v1/messages/batch": {"post": {
        "summary": "Send up to 1,000 SMS; each is answered on its own",
        "parameters": [{**IDEMPOTENCY_KEY, "description": "Message i of the batch is keyed '<key>:<i>' and "
                                                          "checked on its own"}],
        "requestBody": takes({"type": "object", "required": ["messages"], "additionalProperties": False,
                              "properties": {"messages": {"type": "array", "minItems": 1, "maxItems": 1000,
                                                          "items": ref("BatchMessage")}}}),
        "responses": {"200": reply({"type": "object", "properties": {
            "accepted": {"type": "integer"}, "failed": {"type": "integer"},
            "results": {"type": "array", "items": {"type": "object"}}}}), **errors(400, 401, 422)}}},
    "/v1/messages/{id}": {"get": {"summary": "A message with its status, parts and events",
                                  "parameters": [ID_PARAM],
                                  "responses": {"200": reply(ref("Message")), **errors(401, 404)}}},
    "/v1/account": {
        "get": {"summary": "The caller's account, with its event webhook URL and webhook signing secret",
                "responses": {"200": reply(ref("AccountSelf")), **errors(401)}},
        "patch": {"summary": "Account settings: event webhook, HELP/STOP program details, encoding, quiet hours, "
                             "queue policy",
                  "requestBody": takes({"type": "object", "additionalProperties": False, "properties": {
                      "event_webhook_url": WEBHOOK_URL_OR_NULL,
                      "program_name": {"type": ["string", "null"]}, "support_contact": {"type": ["string", "null"]},
                      "message_frequency": {"type": ["string", "null"]}, "smart_encoding": {"type": "boolean"},
                      "quiet_hours": {"type": "boolean"}, "queue_policy": {"type": "string",
                                                                           "enum": ["queue", "reject"]},
                      "max_queued": {"type": "integer", "minimum": 1}, "webhook_events": EVENT_SELECTION,
                      "webhook_batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH, "description":
                                             "Status events per POST: above 1, a JSON array of up to this many"}}}),
                  "responses": {"200": reply(ref("AccountSelf")), **errors(400, 401, 422)}},
    },
    "/v1/account/webhook-secret": {"post": {"summary": "Rotate the secret that signs webhooks",
                                            "responses": {"200": reply(ref("AccountSelf")), **errors(401)}}},
    "/v1/webhooks/deliveries": {"get": {
        "summary": "Webhook deliveries, newest first",
        "parameters": [LIMIT,
                       {"name": "status", "in": "query", "schema": {"type": "string",
                                                                     "enum": ["pending", "delivered", "failed"]}}],
        "responses": {"200": reply({"type": "object"}), **errors(400, 401)}}},
    "/v1/webhooks/deliveries/{id}": {"get": {
        "summary": "One webhook delivery with every attempt (time, response code)", "parameters": [ID_PARAM],
        "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}},
    "/v1/webhooks/deliveries/{id}/replay": {"post": {
        "summary": "Deliver again (a failed or delivered webhook; 409 payload_purged once [retention] blanked it)",
        "parameters": [ID_PARAM], "responses": {"202": reply({"type": "object"}), **errors(401, 404, 409)}}},
    "/admin/accounts": {
        "post": {"summary": "Create an account; the answer holds its first API key", "security": OPERATOR,
                 "requestBody": takes({"type": "object", "required": ["name"], "additionalProperties": False,
                                       "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                                                      "max_rate_per_s": {"type": ["integer", "null"], "minimum": 1,
                                                                         "maximum": 10000}}}),
                 "responses": {"201": reply(ref("Account")), **errors(400, 401, 409, 422)}},
        "get": {"summary": "List accounts", "security": OPERATOR,
                "responses": {"200": reply({"type": "object"}), **errors(401)}},
    },
    "/admin/accounts/{id}": {"patch": {
        "summary": "An account's send rate (msg/s, raised on request) and status (active, suspended)",
        "security": OPERATOR, "parameters": [ID_PARAM],
        "requestBody": takes({"type": "object", "additionalProperties": False, "properties": {
            "max_rate_per_s": {"type": "integer", "minimum": 1, "maximum": 10000}, "status": {"type": "string",
                                                                           "enum": ["active", "suspended"]}}}),
        "responses": {"200": reply(ref("Account")), **errors(400, 401, 404, 422)}}},
    "/admin/accounts/{id}/keys": {"post": {"summary": "Issue another API key for an account", "security": OPERATOR,
                                           "parameters": [ID_PARAM],
                                           "responses": {"201": reply({"type": "object"}), **errors(401, 404)}}},
}

TWO_WAY: dict[str, dict[str, Any]] = {
    "/inbound": {"get": {"summary": "Inbound messages, newest first", "parameters": PAGE + [
        {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("to", "from", "keyword")],
        "description": "to and from are read as phone numbers (E.164, national or a short code).",
        "responses": {"200": reply({"type": "object"}), **errors(400, 401, 404)}}},
    "/inbound/{id}": {"get": {"summary": "One inbound message", "parameters": [ID_PARAM],
                              "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}},
    "/numbers": {"get": {"summary": "The account's numbers with their two-way settings",
                         "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}},
    "/numbers/{number}": {"patch": {
        "summary": "Two-way settings: forwarding webhook, opt-out list, self-managed opt-outs, HELP/STOP replies",
        "parameters": [NUMBER_PARAM],
        "requestBody": takes({"type": "object", "additionalProperties": False, "properties": {
            "two_way_enabled": {"type": "boolean"}, "two_way_webhook_url": WEBHOOK_URL_OR_NULL,
            "opt_out_list": LIST_NAME_OR_NULL, "self_managed_opt_outs": {"type": "boolean"},
            "help_message": {"type": ["string", "null"]}, "stop_message": {"type": ["string", "null"]}}}),
        "responses": {"200": reply({"type": "object"}), **errors(400, 401, 404, 422)}}},
    "/numbers/{number}/keywords": {"get": {
        "summary": "A number's keywords (and the reserved ones)", "parameters": [NUMBER_PARAM],
        "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}},
    "/numbers/{number}/keywords/{keyword}": {
        "put": {"summary": "Add or change a keyword (up to 30 per number)", "parameters": [NUMBER_PARAM, KEYWORD_PARAM],
                "requestBody": takes({"type": "object", "required": ["action"], "additionalProperties": False,
                                      "properties": {"action": {"type": "string",
                                                                "enum": ["auto_response", "opt_out", "opt_in"]},
                                                     "message": {"type": "string", "maxLength": 1600}}}),
                "responses": {"200": reply({"type": "object"}), **errors(400, 401, 404, 409, 422)}},
        "delete": {"summary": "Remove a keyword (reserved ones cannot be removed)",
                   "parameters": [NUMBER_PARAM, KEYWORD_PARAM],
                   "responses": {"200": reply({"type": "object"}), **errors(401, 404, 409)}}},
    "/opt-outs": {
        "get": {"summary": "Opted-out phone numbers, newest first; total counts what the list and phone filters "
                           "select", "parameters": PAGE + [
            {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("list", "phone")],
            "responses": {"200": reply({"type": "object"}), **errors(400, 401, 404)}},
        "post": {"summary": "Add a phone number to a list (default: the account's default list)",
                 "requestBody": takes({"type": "object", "required": ["phone"], "additionalProperties": False,
                                       "properties": {"phone": {"type": "string"}, "list": LIST_NAME}}),
                 "responses": {"201": reply({"type": "object"}), "200": reply({"type": "object"}),
                               **errors(400, 401, 404, 422)}}},
    "/opt-outs/{phone}": {"delete": {
        "summary": "Take a phone number off a list", "parameters": [PHONE_PARAM, {
            "name": "list", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": reply({"type": "object"}), **errors(401, 404, 422)}}},
    "/opt-outs/import": {"post": {
        "summary": "Import a CSV (phone[,list]); bad rows are reported, good ones kept",
        "parameters": [{"name": "list", "in": "query", "schema": LIST_NAME}],
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
        "responses": {"200": reply({"type": "object"}), **errors(400, 401, 404, 422)}}},
    "/opt-outs/export": {"get": {
        "summary": "Export as CSV (cells starting with = + - @ tab or CR, E.164 numbers aside, get a leading ')",
        "parameters": [{"name": "list", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                      **errors(401, 404)}}},
}
PATHS["/v1/voice-messages"] = {"post": {
    "summary": "Deliver a text script as a phone call (plain script up to 3,000 characters or markup up to 6,000: "
               "speak, break, say-as digits, prosody rate; see docs/voice-markup.md)",
    "requestBody": takes({"type": "object", "required": ["to"], "additionalProperties": False, "properties": {
        "to": {"type": "string"}, "from": {"type": "string"}, "script": {"type": "string", "maxLength": 3000},
        "markup": {"type": "string", "maxLength": 6000}, "voice": {"type": "string", "example": "en-us"},
        "language": {"type": "string", "example": "en"},
        "variables": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "status_callback": WEBHOOK_URL,
        "dry_run": {"type": "boolean", "description": "Validate and choose the number; store nothing, call no one"}}}),
    "parameters": [IDEMPOTENCY_KEY],
    "responses": {"202": reply({"type": "object"}, "Queued; rendered and placed by the worker"),
                  "200": reply({"type": "object"}, "Dry run, or the call of a repeated Idempotency-Key"),
                  **errors(400, 401, 422, 503)}}}
PATHS["/v1/voice-messages/{id}"] = {"get": {"summary": "A call's status, outcome, duration and events",
                                            "parameters": [ID_PARAM],
                                            "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}}
PATHS["/v1/voice-metrics"] = {"get": {"summary": "Calls per number and account: completed, failed, busy, "
                                                 "no answer, minutes",
                                      "responses": {"200": reply({"type": "object"}), **errors(401)}}}
PATHS["/audio/{key}.wav"] = {"get": {
    "summary": "Rendered telephony audio for the voice carrier (signed, expiring link)", "security": [],
    "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                   {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
                   {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "8 kHz mono mu-law WAV", "content": {"audio/wav": {}}},
                  **errors(401, 404)}}}
PATHS["/callbacks/voice/{token}"] = {"post": {
    "summary": "Status callbacks from the voice carrier (docs/voice-carrier-api.md)", "security": [],
    "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": takes({"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": list(CALL_STATUSES)}, "duration_s": {"type": ["number", "null"]},
        "error": {"type": ["string", "null"]}}}),
    "responses": {"200": reply({"type": "object"}), **errors(400, 401, 422)}}}

PATHS.update(CARRIER_PATHS)
PATHS.update(REGISTRY_PATHS)


_op = operation


_N = [NUMBER_PARAM]
_I = [ID_PARAM]
PATHS.update({
    "/admin/inventory/import": {"post": {**_op("Import numbers from CSV: number,type,country,capabilities,carrier,"
                                               "monthly_price (a header may reorder them; number, type and country "
                                               "are required); each bad row reported with its line, good ones kept",
                                               codes=(400, 401)),
                                         "requestBody": {"required": True, "content": {"text/csv": {
                                             "schema": {"type": "string"}}}}}},
    "/admin/numbers": {"get": _op("The inventory, or part of it", codes=(401,), params=[
        {"name": "account", "in": "query", "schema": {"type": "string"}, "description": "leased to this account"},
        {"name": "free", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]},
         "description": "true: only numbers leased to no account"},
        {"name": "type", "in": "query", "schema": {"type": "string"}}])},
    "/admin/numbers/lease": {"post": _op("Lease a free number of a kind to an account", body="lease",
                                         status="201")},
    "/admin/numbers/{number}/registry": {"get": _op("A number with its history", params=_N, codes=(401, 404))},
    "/admin/numbers/{number}/{action}": {"post": _op("activate (a pending short code) or release (refused while "
                                                     "protected)", params=_N + [{"name": "action", "in": "path",
                                                     "required": True, "schema": {"type": "string", "enum": [
                                                         "activate", "release"]}}])},
})

_COUNT = {"type": "integer", "minimum": 0}
_STATS_ROW = {"type": "object", "required": ["start", "messages", "delivered", "delivered_pct", "cost"], "properties": {
    "start": {"type": "string", "format": "date-time", "description": "The bucket's first moment (UTC)"},
    "key": {"type": ["string", "null"], "description": "With by: the sending number, campaign id or carrier "
                                                      "(null: messages that have none)"},
    **{name: _COUNT for name in ("messages", "pending", "delivered", "undelivered", "failed", "expired", "blocked",
                                 "segments", "opt_outs", "inbound")},
    "cost": {"type": "number", "description": "Segments handed to a carrier, priced by the sending number's kind"},
    "delivered_pct": {"type": ["number", "null"], "description": "delivered / (delivered + undelivered + failed + "
                                                                 "expired), in percent; null when none is final"}}}
_STATS_QUERY = [
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "ISO 8601, UTC without an offset (default: 7 days, or 24 hours by hour, before to); "
                    "400 invalid_time, invalid_time_range (from not before to), time_range_too_long"},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"},
     "description": "ISO 8601, exclusive (default: now); at most 400 days after from by day, 31 by hour"},
    {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": ["day", "hour"]}},
    {"name": "by", "in": "query", "schema": {"type": "string", "enum": ["number", "campaign", "carrier"]},
     "description": "Rows per bucket and sending number, 10DLC campaign or carrier; without it, one row per "
                    "bucket, empty ones included"}]
_STATS = reply({"type": "object", "required": ["from", "to", "group_by", "rows", "totals"], "properties": {
    "from": {"type": "string"}, "to": {"type": "string"}, "group_by": {"type": "string"},
    "by": {"type": ["string", "null"]}, "currency": {"type": "string"}, "account_id": {"type": "integer"},
    "rows": {"type": "array", "items": _STATS_ROW}, "totals": {"type": "object"}}})
PATHS["/v1/stats"] = {"get": {
    "summary": "The account's messages by state, delivery rate, segments, cost, opt-outs (STOP received) and "
               "inbound messages, by hour or day (UTC) and optionally by number, campaign or carrier",
    "parameters": _STATS_QUERY, "responses": {"200": _STATS, **errors(400, 401)}}}
PATHS["/admin/stats"] = {"get": {
    "summary": "As /v1/stats, for every account together or one (account)", "security": OPERATOR,
    "parameters": _STATS_QUERY + [{"name": "account", "in": "query", "schema": {"type": "string"},
                                   "description": "An account's id (404 account_not_found)"}],
    "responses": {"200": _STATS, **errors(400, 401, 404)}}}
TWO_WAY["/data"] = {"delete": {
    "summary": "Erase what is held about one person: messages to the number, messages and message parts from "
               "it, calls to it, and the webhook deliveries about them; the opt-out records stay (STOP keeps "
               "being honoured). The answer counts what was removed",
    "parameters": [{"name": "phone", "in": "query", "required": True, "schema": {"type": "string"},
                    "description": "The person's phone number (E.164 or national)"}],
    "responses": {"200": reply({"type": "object", "required": ["phone", "removed"], "properties": {
        "phone": {"type": "string"}, "removed": {"type": "object", "additionalProperties": _COUNT},
        "kept": {"type": "object", "additionalProperties": _COUNT}}}),
        **errors(400, 401, 409)}}}

for _path in ("/webhooks/deliveries", "/webhooks/deliveries/{id}", "/webhooks/deliveries/{id}/replay"):
    TWO_WAY[_path] = PATHS.pop("/v1" + _path)
PATHS["/admin/numbers/{number}"] = {"get": {"summary": "A number and the account leasing it", "security": OPERATOR,
                                            "parameters": [NUMBER_PARAM],
                                            "responses": {"200": reply({"type": "object"}), **errors(401, 404)}}}
PATHS["/admin/numbers/{number}"]["patch"] = {
    "summary": "Update a number: two-way and webhook, message type, opt-out list, deletion protection, "
               "international sending", "security": OPERATOR, "parameters": [NUMBER_PARAM],
    "requestBody": takes(BODIES["number"]), "responses": {"200": reply({"type": "object"}),
                                                           **errors(400, 401, 404, 422)}}
TWO_WAY.update(TOLL_FREE_PATHS)
PATHS.update(TOLL_FREE_ADMIN)
for _path, _ops in TWO_WAY.items():
    PATHS["/v1" + _path] = _ops
    PATHS["/admin/accounts/{account}" + _path] = {
        method: {**op, "security": OPERATOR, "parameters": [ACCOUNT_PARAM] + op.get("parameters", []),
                 "responses": {**op["responses"], **errors(404)}}  # account_not_found
        for method, op in _ops.items()}

for _ops in PATHS.values():  # what the middleware may answer anywhere
    for _operation in _ops.values():
        _responses = _operation["responses"]
        if _operation.get("security") != []:  # 401; 429 too_many_auth_failures
            _responses.update({k: v for k, v in errors(401, 429).items() if k not in _responses})
        _responses.setdefault("400", errors(400)["400"])  # unknown_query_parameter, anywhere; invalid_json
        if "requestBody" in _operation:  # every body is read under one size limit and one timeout
            _responses.update({k: v for k, v in errors(408, 413).items() if k not in _responses})


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "SMS and voice gateway", "version": "1"},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An account's API key"},
            "operatorToken": {"type": "http", "scheme": "bearer", "description": "The operator token"},
            "scrapeToken": {"type": "http", "scheme": "bearer",
                            "description": "[metrics] scrape_token: opens GET /metrics only"}}},
        "security": [{"apiKey": []}],
    }


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
