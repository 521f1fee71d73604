"""The OpenAPI paths of toll-free verification: the account's requests (``ACCOUNT_PATHS``, served under /v1 and
/admin/accounts/{account}) and the reviewer's (``ADMIN_PATHS``); gateway.api.openapi adds them to the document."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_schemas import ID_PARAM, NUMBER_PARAM, OPERATOR, errors, reply
from registry import toll_free

_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}
_NAME = {"type": "string", "minLength": 1, "maxLength": 100}
_DESCRIPTION = {"type": "string", "minLength": 20, "maxLength": 4096}
_STATUS = {"type": "string", "enum": list(toll_free.STATUSES)}
_ADDRESS = {"type": "object", "additionalProperties": False,
            "required": ["street", "city", "region", "postal_code", "country"],
            "properties": {"street": _TEXT, "street2": {"type": ["string", "null"], "maxLength": 255},
                           "city": _NAME, "region": {**_NAME, "description": "State or province"},
                           "postal_code": {"type": "string", "minLength": 1, "maxLength": 20},
                           "country": {"type": "string", "pattern": "^[A-Za-z]{2}$", "example": "US"}}}
_CONTACT = {"type": "object", "additionalProperties": False, "required": ["first_name", "last_name", "email", "phone"],
            "properties": {"first_name": _NAME, "last_name": _NAME, "email": {"type": "string", "maxLength": 255},
                           "phone": {"type": "string", "maxLength": 40, "description": "E.164 or national"}}}
_FIELDS = {
    "numbers": {"type": "array", "minItems": 1, "maxItems": toll_free.MAX_NUMBERS, "items": {"type": "string"},
                "description": "Toll-free numbers of the account (E.164), each in one request at a time"},
    "business_name": _TEXT,
    "website": {"type": "string", "maxLength": 255, "format": "uri", "example": "https://acme.example"},
    "address": _ADDRESS, "contact": _CONTACT,
    "use_case": {"type": "string", "enum": list(toll_free.USE_CASES)},
    "use_case_summary": {**_DESCRIPTION, "description": "What the messages are for and who gets them"},
    "monthly_volume": {"type": "integer", "enum": list(toll_free.MONTHLY_VOLUMES),
                       "description": "Messages a month (10000000: that many or more)"},
    "opt_in_type": {"type": "string", "enum": list(toll_free.OPT_IN_TYPES)},
    "opt_in_workflow": {**_DESCRIPTION, "description": "How recipients agree to receive the messages"},
    "opt_in_image_urls": {"type": "array", "minItems": 1, "maxItems": 5,
                          "items": {"type": "string", "maxLength": 2000, "format": "uri"},
                          "description": "Public http(s) URLs of screenshots or photos of the opt-in"},
    "sample_messages": {"type": "array", "minItems": 1, "maxItems": 5,
                        "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
    "additional_info": {"type": ["string", "null"], "maxLength": 4096},
}
_REQUIRED = [name for name in _FIELDS if name != "additional_info"]
_VERIFICATION = {"type": "object", "required": ["id", "account_id", "status", "numbers", "rejection_reason"],
                 "properties": {**{k: v for k, v in _FIELDS.items() if k not in ("use_case_summary",
                                                                                  "opt_in_workflow")},
                                "id": {"type": "integer"}, "account_id": {"type": "integer"}, "status": _STATUS,
                                "numbers": {"type": "array", "items": {"type": "string"}},
                                "use_case_summary": {"type": "string"}, "opt_in_workflow": {"type": "string"},
                                "rejection_reason": {"type": ["string", "null"]},
                                "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                                "history": {"type": "array", "items": {"type": "object"}}}}
_LIST = reply({"type": "object", "required": ["toll_free_verifications"], "properties": {
    "toll_free_verifications": {"type": "array", "items": _VERIFICATION}}})
_STATUS_QUERY = {"name": "status", "in": "query", "schema": _STATUS}


def _body(required: list[str], *, body_required: bool = True) -> dict[str, Any]:
    return {"required": body_required, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": required, "properties": _FIELDS}}}}


ACCOUNT_PATHS: dict[str, dict[str, Any]] = {
    "/toll-free-verifications": {
        "post": {"summary": "Ask for toll-free verification of some of the account's toll-free numbers (US and "
                            "Canadian carriers block SMS from unverified ones): submitted, for the operator's review",
                 "requestBody": _body(_REQUIRED),
                 "responses": {"201": reply(_VERIFICATION), **errors(400, 401, 409, 422)}},
        "get": {"summary": "The account's toll-free verification requests", "parameters": [_STATUS_QUERY],
                "responses": {"200": _LIST, **errors(400, 401)}}},
    "/toll-free-verifications/{id}": {"get": {
        "summary": "A toll-free verification request with its history", "parameters": [ID_PARAM],
        "responses": {"200": reply(_VERIFICATION), **errors(401, 404)}}},
    "/toll-free-verifications/{id}/resubmit": {"post": {
        "summary": "Edit a rejected request (the fields given; numbers replaces its numbers) and submit it again",
        "parameters": [ID_PARAM], "requestBody": _body([], body_required=False),
        "responses": {"200": reply(_VERIFICATION), **errors(400, 401, 404, 409, 422)}}},
    "/numbers/{number}/toll-free-verification": {"get": {
        "summary": "A toll-free number's verification status (none: in no request) and whether it may send SMS",
        "parameters": [NUMBER_PARAM],
        "responses": {"200": reply({"type": "object", "required": ["number", "status", "sms_allowed", "verification"],
                                    "properties": {"number": {"type": "string"},
                                                   "status": {"type": "string",
                                                              "enum": [toll_free.NONE, *toll_free.STATUSES]},
                                                   "sms_allowed": {"type": "boolean"},
                                                   "verification": {"oneOf": [_VERIFICATION, {"type": "null"}]}}}),
                      **errors(401, 404, 422)}}},
}

_REVIEW = {"start-review": ("Start reviewing a submitted request: in_review", False),
           "verify": ("Verify a request in review: its numbers may send SMS", False),
           "reject": ("Reject a request in review, with the reason the customer reads (it may edit and resubmit "
                      "it)", True)}
ADMIN_PATHS: dict[str, dict[str, Any]] = {
    "/admin/toll-free-verifications": {"get": {
        "summary": "Toll-free verification requests to review", "security": OPERATOR,
        "parameters": [_STATUS_QUERY, {"name": "account", "in": "query", "schema": {"type": "string"},
                                       "description": "Of this account (its id)"}],
        "responses": {"200": _LIST, **errors(400, 401)}}},
    "/admin/toll-free-verifications/{id}": {"get": {
        "summary": "A toll-free verification request with its history", "security": OPERATOR,
        "parameters": [ID_PARAM], "responses": {"200": reply(_VERIFICATION), **errors(401, 404)}}},
    **{f"/admin/toll-free-verifications/{{id}}/{action}": {"post": {
        "summary": summary, "security": OPERATOR, "parameters": [ID_PARAM],
        "requestBody": {"required": needs_reason, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["reason"] if needs_reason else [],
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 4096} if needs_reason else
                           {"type": ["string", "null"], "maxLength": 4096}}}}}},
        "responses": {"200": reply(_VERIFICATION), **errors(400, 401, 404, 409, 422)}}}
        for action, (summary, needs_reason) in _REVIEW.items()},
}
