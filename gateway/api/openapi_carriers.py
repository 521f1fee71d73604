"""The OpenAPI paths of carriers as operators run them: HTTP carriers' signed callbacks, the carriers with their
binds and health, the route table, and the instance's status (gateway.api.openapi adds them to the document)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_schemas import OPERATOR, errors, reply, takes

CARRIER_PATHS: dict[str, dict[str, Any]] = {}

_CARRIER = {"name": "carrier", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "query", "required": True, "schema": {"type": "string"},
          "description": "<expires>.<HMAC of the carrier, the kind of callback and expires> (never logged)"}


def _query(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]


_FIELDS_BODY = {"required": False, "content": {"application/json": {"schema": {"type": "object"}},
                                               "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}
_ANSWER = reply({"type": "object", "properties": {"ok": {"type": "boolean"}, "applied": {"type": "boolean"}}})
CARRIER_PATHS["/callbacks/carriers/{carrier}/reports"] = {
    "get": {"summary": "A status report from an HTTP SMS carrier: Kannel's dlr-url (signed token)", "security": [],
            "parameters": [_CARRIER, _TOKEN, *_query("ref", "status", "smsc_id", "answer")],
            "responses": {"200": _ANSWER, **errors(401, 422)}},
    "post": {"summary": "A status report from a JSON SMS provider: JSON, form or query fields (signed token)",
             "security": [], "parameters": [_CARRIER, _TOKEN], "requestBody": _FIELDS_BODY,
             "responses": {"200": _ANSWER, **errors(401, 422)}}}
CARRIER_PATHS["/callbacks/carriers/{carrier}/inbound"] = {
    method: {"summary": "An inbound message from Kannel's sms-service get-url (signed token)", "security": [],
             "parameters": [_CARRIER, _TOKEN, *_query("from", "to", "text", "coding")],
             **({"requestBody": _FIELDS_BODY} if method == "post" else {}),
             "responses": {"200": {"description": "Stored (an empty body: no reply)"}, **errors(401, 422)}}
    for method in ("get", "post")}
CARRIER_PATHS["/admin/carriers/{carrier}/callback-urls"] = {"get": {
    "summary": "Signed callback URLs of an HTTP carrier, to set at a provider that is not given them with each "
               "message (Kannel's sms-service get-url, a provider's dashboard)", "security": OPERATOR,
    "parameters": [_CARRIER, {"name": "days", "in": "query", "required": False,
                              "schema": {"type": "integer", "minimum": 1, "maximum": 3660}}],
    "responses": {"200": reply({"type": "object"}), **errors(401, 404, 422)}}}

_HEALTH = {"type": ["object", "null"], "properties": {
    "state": {"type": "string", "enum": ["healthy", "degraded"]},
    "reasons": {"type": "array", "items": {"type": "string"}},
    "changed_at": {"type": ["number", "null"]}, "window_s": {"type": "number"}, "submits": {"type": "integer"},
    "receipts": {"type": "integer"}, "submit_error_rate": {"type": "number"}, "throttle_rate": {"type": "number"},
    "undelivered_rate": {"type": "number"}}}
CARRIER_PATHS["/admin/carriers"] = {"get": {
    "summary": "The carriers: whether each can take messages now, its SMPP binds, and its health over the sliding "
               "window ([health]): submit error rate, throttle rate, share of receipts undelivered or rejected",
    "security": OPERATOR,
    "responses": {"200": reply({"type": "object", "required": ["carriers"], "properties": {"carriers": {
        "type": "array", "items": {"type": "object", "required": ["name", "type", "ready", "binds", "health"],
                                   "properties": {
                                       "name": {"type": "string"}, "type": {"type": "string"},
                                       "ready": {"type": "boolean"},
                                       "binds": {"type": ["array", "null"], "items": {"type": "object"}},
                                       "health": _HEALTH}}}}}),
                  **errors(401)}}}

_STRINGS = {"type": "array", "items": {"type": "string"}}
_ROUTE_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "countries": {**_STRINGS, "description": 'ISO codes of the destination\'s country ("GB")'},
    "prefixes": {**_STRINGS, "description": 'The destination\'s first digits with the + ("+4477")'},
    "recipient_carriers": {**_STRINGS, "description": "att, tmobile, verizon, unknown (the recipient lookup)"},
    "accounts": {"type": "array", "items": {"type": "integer"}},
    "number_kinds": {**_STRINGS, "description": "short_code, ten_dlc, toll_free, long_code"},
    "message_types": {**_STRINGS, "description": "transactional, promotional"},
    "carrier": {"type": ["string", "null"], "description": "This carrier only (one action of three)"},
    "failover": {**_STRINGS, "description": "The first of these carriers that can take the message now"},
    "split": {**_STRINGS, "description": 'A weighted draw: "carrier=percent", adding up to 100'},
    "cost_per_segment": {"type": ["number", "null"], "minimum": 0,
                         "description": "Shown as the price instead of [pricing]; null: the flat price"},
}
_ROUTE = {"type": "object", "required": ["name", "position", "source", "action"], "properties": {
    **_ROUTE_FIELDS, "position": {"type": "integer"}, "source": {"type": "string", "enum": ["config", "api"]},
    "action": {"type": "string", "enum": ["carrier", "failover", "split"]}}}
_ROUTE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
CARRIER_PATHS["/admin/routes"] = {
    "get": {"summary": "The route table in the order routes are tried: those added here, then the configured ones",
            "security": OPERATOR, "responses": {"200": reply({"type": "object", "required": ["routes"],
                                                              "properties": {"routes": {"type": "array",
                                                                                        "items": _ROUTE}}}),
                                                **errors(401)}},
    "post": {"summary": "Add a route (kept in the database, applied at once on every instance): what it matches, "
                        "exactly one action (carrier, failover or split), a cost per segment; tried before the "
                        "configured routes, at position among those added here (default: last)",
             "security": OPERATOR,
             "requestBody": takes({"type": "object", "required": ["name"], "additionalProperties": False,
                                   "properties": {**_ROUTE_FIELDS,
                                                  "position": {"type": "integer", "minimum": 0, "maximum": 100000}}}),
             "responses": {"201": reply(_ROUTE), **errors(400, 401, 409, 422)}}}
CARRIER_PATHS["/admin/routes/{name}"] = {"delete": {
    "summary": "Remove a route added through the API (a configured one: 409 route_in_config)", "security": OPERATOR,
    "parameters": [_ROUTE_NAME],
    "responses": {"200": reply({"type": "object", "properties": {"deleted": {"type": "string"}}}),
                  **errors(401, 404, 409)}}}
CARRIER_PATHS["/admin/routes/test"] = {"post": {
    "summary": "Which route and carrier a message would take now, and why (gatewayctl routes test)",
    "security": OPERATOR,
    "requestBody": takes({"type": "object", "required": ["to", "account_id"], "additionalProperties": False,
                          "properties": {"to": {"type": "string", "maxLength": 40},
                                         "account_id": {"type": "integer", "minimum": 1},
                                         "from": {"type": ["string", "null"], "maxLength": 40},
                                         "message_type": {"type": ["string", "null"],
                                                          "enum": ["transactional", "promotional", None]}}}),
    "responses": {"200": reply({"type": "object", "required": ["route", "carrier", "why"], "properties": {
        "route": {"type": ["string", "null"]}, "action": {"type": ["string", "null"]},
        "carrier": {"type": ["string", "null"]}, "cost_per_segment": {"type": ["number", "null"]},
        "from": {"type": ["string", "null"]}, "why": {"type": "array", "items": {"type": "string"}},
        "facts": {"type": "object"}}}), **errors(400, 401, 422)}}}

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_SECONDS = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_BIND_STATE = {"type": "object", "required": ["name", "state", "since", "for_s", "window_in_use", "window"],
               "properties": {
                   "name": {"type": "string"},
                   "state": {"type": "string", "enum": ["connecting", "bound", "unbound", "closed"],
                             "description": "unbound: the connection failed or was lost; it is being tried again"},
                   "since": _TIME, "for_s": {**_SECONDS, "description": "Time in this state (a bound bind's uptime)"},
                   "mode": {"type": "string"}, "window_in_use": _COUNT, "window": _COUNT,
                   "binds": {**_COUNT, "description": "Successful binds since start (reconnects show here)"}}}
_LAST_ERROR = {"type": "object", "required": ["source", "code", "message", "count", "at"], "properties": {
    "source": {"type": "string", "enum": ["submit", "bind"]}, "bind": {"type": ["string", "null"]},
    "code": {"type": "string"}, "message": {"type": "string"},
    "count": {"type": "integer", "minimum": 1, "description": "Times in a row with this code"},
    "first_at": _TIME, "at": _TIME}}
_LAST_MINUTE = {"type": "object", "properties": {
    "window_s": {"type": "integer"}, **{k: _COUNT for k in ("sent", "receipts", "inbound")},
    **{f"{k}_per_s": _SECONDS for k in ("sent", "receipts", "inbound")}}}
_ALERT = {"type": "object", "required": ["at", "level", "kind", "subject", "message"], "properties": {
    "at": _TIME, "level": {"type": "string"}, "kind": {"type": "string"}, "subject": {"type": "string"},
    "message": {"type": "string"}}}
_STATUS = {"type": "object", "required": ["instance", "carriers", "queue", "webhooks", "instances", "alerts"],
           "properties": {
    "instance": {"type": "object", "required": ["id", "version", "uptime_s"], "properties": {
        "id": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"},
        "version": {"type": "string"}, "started_at": _TIME, "uptime_s": _SECONDS,
        "event_loop": {"type": "string", "enum": ["uvloop", "asyncio"]},
        "sending_paused": {"type": ["string", "null"]}}},
    "carriers": {"type": "array", "items": {
        "type": "object", "required": ["name", "kind", "ready", "binds", "last_minute", "last_errors", "health"],
        "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "ready": {"type": "boolean"},
                       "binds": {"type": ["array", "null"], "items": _BIND_STATE}, "last_minute": _LAST_MINUTE,
                       "last_errors": {"type": "array", "items": _LAST_ERROR}, "health": _HEALTH}}},
    "queue": {"type": "object", "additionalProperties": _COUNT,
              "description": "Messages not yet final by status (queued, sending, sent)"},
    "webhooks": {"type": "object", "properties": {"pending": _COUNT, "oldest_pending_age_s": _SECONDS}},
    "read_age_s": {"type": ["number", "null"], "description": "Age of the database read behind queue and webhooks"},
    "instances": {"type": "array", "items": {"type": "object", "required": ["id", "self", "alive"], "properties": {
        "id": {"type": "string"}, "self": {"type": "boolean"}, "host": {"type": "string"}, "pid": {"type": "integer"},
        "started_at": _TIME_OR_NULL, "heartbeat_at": _TIME_OR_NULL, "heartbeat_age_s": _SECONDS,
        "alive": {"type": "boolean"}}}},
    "alerts": {"type": "array", "items": _ALERT,
               "description": "The operator's alerts (WARNINGs of gateway.alerts) logged lately, newest first"}}}
CARRIER_PATHS["/admin/status"] = {"get": {
    "summary": "This instance's status, as Kannel's status page (gatewayctl status): version and uptime; per carrier "
               "its kind, each bind's state since when and window in use, sent, receipts and inbound per second "
               "over the last minute, last errors and health; queue depth by status and the webhook backlog (read "
               "at most every few seconds); the instances sharing the database with their last heartbeat; the "
               "recent alerts",
    "security": OPERATOR, "responses": {"200": reply(_STATUS), **errors(401)}}}
