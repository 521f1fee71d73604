"""The pieces the OpenAPI document (gateway.api.openapi) is made of: the answers, parameters and fields many
operations share, the request bodies of the admin and registry routes, and the component schemas."""

from __future__ import annotations

from typing import Any

from gateway.webhooks.catalog import EVENT_TYPES
from registry import states

ERROR = {"$ref": "#/components/schemas/Error"}


def errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Missing or invalid credentials", 404: "Not found",
            408: "The request body stopped arriving (body_timeout)", 409: "Illegal state change",
            413: "The request body is larger than [http] max_body_bytes (body_too_large)", 422: "Invalid input",
            429: "Too many requests", 503: "Not ready, or not stored (nothing was): retry"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def reply(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def takes(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
WEBHOOK_URL = {"type": "string", "format": "uri", "maxLength": 2000,
               "description": "http(s) URL of a public address: loopback, private, link-local, cloud metadata and "
                              "other non-public addresses (also names resolving to them) are refused with 422 "
                              "webhook_url_not_allowed unless the operator allows them ([webhooks])"}
WEBHOOK_URL_OR_NULL = {**WEBHOOK_URL, "type": ["string", "null"]}
EVENT_SELECTION = {"description": 'Which events the webhook gets: "all" (the default), "final" (the events that end a '
                                  'message or call) or a list of event types; the others are not sent at all',
                   "oneOf": [{"type": "string", "enum": ["all", "final"]},
                             {"type": "array", "minItems": 1,
                              "items": {"type": "string", "enum": sorted(EVENT_TYPES)}}]}
LIST_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
             "description": "An opt-out list's name (422 invalid_list_name otherwise)"}
LIST_NAME_OR_NULL = {**LIST_NAME, "type": ["string", "null"]}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                   "description": "The same key with the same request (route and JSON body) answers the first "
                                  "message or call again (200); with another request, 422 idempotency_key_reused. "
                                  "SMS and calls share the keys of an account."}
LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1},
         "description": "At most this many (1 or more; above the maximum, the maximum)"}
OPERATOR = [{"operatorToken": []}]

NUMBER_PARAM = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"},
                "description": "E.164 (URL-encoded '+') or short code"}
KEYWORD_PARAM = {"name": "keyword", "in": "path", "required": True, "schema": {"type": "string"}}
PHONE_PARAM = {"name": "phone", "in": "path", "required": True, "schema": {"type": "string"}}
PAGE = [LIMIT,
        {"name": "before", "in": "query", "schema": {"type": "string"}}]
ACCOUNT_PARAM = {"name": "account", "in": "path", "required": True, "schema": {"type": "integer"}}
_OBJ = {"type": "object"}


def operation(summary: str, *, body: str | None = None, params: list | None = None,
              codes: tuple = (401, 404, 409, 422), admin: bool = True, status: str = "200",
              body_required: bool = True, also: dict[str, str] | None = None) -> dict[str, Any]:
    """An operation answering a JSON object (``also``: more statuses it answers, with their descriptions)."""
    op: dict[str, Any] = {"summary": summary, "responses": {status: reply(_OBJ), **{
        s: reply(_OBJ, d) for s, d in (also or {}).items()}, **errors(*codes)}}
    if admin:
        op["security"] = OPERATOR
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {**takes(BODIES[body]), "required": body_required}
    return op


def _obj(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    """A closed JSON object: these properties only."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}
_TEXT_OR_NULL = {"type": ["string", "null"], "maxLength": 4096}
_FLAG = {"type": "boolean"}
_ID = {"type": "integer", "minimum": 1, "maximum": (1 << 63) - 1}
_SHARE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0, "maximum": 1_000_000}
BRAND_PROPERTIES = {
    "legal_name": _TEXT, "ein": {"type": "string", "pattern": r"^\d{2}-?\d{7}$"},
    "entity_type": {"type": "string", "enum": list(states.ENTITY_TYPES)},
    "vertical": {"type": "string", "enum": list(states.VERTICALS)},
    "website": {"type": "string", "maxLength": 255, "pattern": "^https?://[^/\\s]+\\.[^/\\s]+",
                "description": "the brand's http(s) site"},
    "country": {"type": ["string", "null"], "description": "ISO 3166 alpha-2; default US"},
    "contact_email": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "@"},
    "contact_phone": {"type": "string", "minLength": 1, "maxLength": 255, "description": "E.164 or national"},
    **{name: {"type": ["string", "null"], "maxLength": length}
       for name, length in (("street", 255), ("city", 100), ("state", 20), ("postal_code", 20))},
    "relationship": {"type": ["string", "null"], "enum": [*states.RELATIONSHIPS, None]}}
BODIES: dict[str, dict[str, Any]] = {
    "lease": _obj({"account_id": _ID, "type": {"type": "string", "enum": list(states.NUMBER_TYPES)},
                   "country": {"type": ["string", "null"], "description": "ISO 3166 alpha-2; default US"},
                   "capabilities": {"type": ["string", "null"],
                                    "description": "sms, voice or sms,voice (default sms)"}},
                  "account_id", "type"),
    "brand": _obj({"account_id": _ID, **BRAND_PROPERTIES}, "account_id", "legal_name", "ein", "entity_type",
                  "vertical", "website", "contact_email", "contact_phone"),
    "brand_update": _obj(BRAND_PROPERTIES),
    "brand_action": _obj({"evp_id": {"type": ["string", "null"], "description": "vet: the vetting provider (AEGIS)"},
                          "vetting_class": {"type": ["string", "null"], "description": "vet: STANDARD"}}),
    "campaign": _obj({"brand_id": _ID, "use_case": {"type": "string", "enum": list(states.USE_CASES)},
                      "description": {**_TEXT, "maxLength": 4096},
                      "sample_messages": {"type": "array", "items": {"type": "string", "minLength": 1},
                                          "minItems": 2, "maxItems": 5},
                      "opt_in_message": {**_TEXT, "maxLength": 4096}, "opt_out_message": {**_TEXT, "maxLength": 4096},
                      "help_message": {**_TEXT, "maxLength": 4096}, "embedded_links": {"type": ["boolean", "null"]},
                      "number_pooling": {"type": ["boolean", "null"]}, "age_gated": {"type": ["boolean", "null"]},
                      "auto_renewal": {"type": ["boolean", "null"], "description": "default true"}},
                     "brand_id", "use_case", "description", "sample_messages", "opt_in_message", "opt_out_message",
                     "help_message"),
    "campaign_action": _obj({"cnp_id": {"type": ["string", "null"], "description": "share: the DCA's id "
                                                                                    "(default [registry] cnp_id)"},
                             "number": {"type": "string", "description": "associate, disassociate"},
                             "numbers": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                         "maxItems": 100, "description": "associate: several numbers, one order"}}),
    "advance": _obj({"days": {"type": "integer", "minimum": 0, "maximum": 3650}}, "days"),
    "reconcile": _obj({"full": {"type": ["boolean", "null"], "description": "every live brand and campaign"},
                       "force": {"type": ["boolean", "null"], "description": "pending requests whatever their "
                                                                            "backoff (default true)"}}),
    "review_brand": _obj({"identity_status": {"type": "string", "enum": list(states.IDENTITY_STATUSES)},
                          "score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100}}, "identity_status"),
    "review_campaign": _obj({"mno": {"type": "string", "enum": list(states.MNOS)},
                             "status": {"type": "string", "enum": ["APPROVED", "REJECTED", "SUSPENDED",
                                                                   "UNSUSPENDED"]},
                             "description": {"type": ["string", "null"], "maxLength": 1000}}, "mno", "status"),
    "faults": _obj({"http_5xx_rate": _SHARE, "http_5xx_next": _COUNT_OR_NULL, "delay_ms": _COUNT_OR_NULL,
                    "webhook_duplicate_rate": _SHARE, "webhook_reorder": {"type": ["boolean", "null"]},
                    "webhook_drop_next": _COUNT_OR_NULL, "seed": {"type": ["integer", "null"]}}),
    "number": _obj({"two_way_enabled": _FLAG, "two_way_webhook_url": WEBHOOK_URL_OR_NULL,
                    "message_type": {"type": "string", "enum": ["transactional", "promotional"]},
                    "opt_out_list": LIST_NAME_OR_NULL, "deletion_protection": _FLAG,
                    "international": _FLAG}),
}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}},
    "SendMessage": {"type": "object", "required": ["to", "body"], "additionalProperties": False, "properties": {
        "to": {"type": "string", "description": "Destination, E.164 or national (default country): digits, "
                                                "spaces and + ( ) [ ] - . / only, no letters, no extension"},
        "body": {"type": "string", "minLength": 1, "description": "Not only whitespace (422 empty_body)"},
        "from": {"type": "string", "description": "A sending number of the account; chosen when absent"},
        "status_callback": WEBHOOK_URL, "status_callback_events": EVENT_SELECTION,
        "ttl": {"type": "integer", "minimum": 5, "maximum": 259200, "description": "Seconds to live"},
        "channel": {"type": "string", "enum": ["sms", "voice", "auto"],
                    "description": "auto: a call for landlines (from the number lookup), SMS otherwise"},
        "message_type": {"type": "string", "enum": ["transactional", "promotional"],
                         "description": "Default: the sending number's message type"},
        "dry_run": {"type": "boolean"}}},
    "Message": {"type": "object", "properties": {
        "id": {"type": ["string", "null"]}, "status": {"type": "string", "enum": [
            "queued", "sending", "sent", "delivered", "undelivered", "failed", "blocked", "expired", "dry_run"]},
        "from": {"type": "string"}, "to": {"type": "string"}, "body": {"type": "string"},
        "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]}, "segments": {"type": "integer"},
        "characters": {"type": "integer"}, "error_code": {"type": ["string", "null"]},
        "message_type": {"type": "string"}, "price": {"type": ["object", "null"]},
        "carrier_message_id": {"type": ["string", "null"]},
        "error_message": {"type": ["string", "null"],
                          "description": "Why it failed, expired or was not delivered (a receipt's stat and err)"},
        "carrier_message_ids": {"type": "array", "items": {"type": "string"},
                                "description": "The ids of the parts the carrier accepted"},
        "parts": {"type": "array", "description": "Each submit of the message: what the carrier answered "
                  "(accepted, or the refusal it is submitted again after), how often, and its receipt", "items": {
                      "type": "object", "properties": {
                          "seq": {"type": "integer"}, "carrier_message_id": {"type": ["string", "null"]},
                          "attempts": {"type": "integer"}, "answer": {"type": ["string", "null"]},
                          "stat": {"type": ["string", "null"]}, "error_code": {"type": ["string", "null"]}}}},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "done_at": {"type": ["string", "null"], "format": "date-time"}}},
    "AccountSelf": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "max_rate_per_s": {"type": "number"},
        "event_webhook_url": {"type": ["string", "null"]}, "webhook_secret": {"type": "string"},
        "webhook_events": EVENT_SELECTION, "webhook_batch_size": {"type": "integer"}}},
    "Account": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                                 "api_key": {"type": "string"}}},
}


SCHEMAS["BatchMessage"] = {**SCHEMAS["SendMessage"], "description": "A message of a batch: no channel, no dry run",
                           "properties": {k: v for k, v in SCHEMAS["SendMessage"]["properties"].items()
                                          if k not in ("channel", "dry_run")}}
