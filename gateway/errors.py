"""Domain errors, each with an HTTP status and a stable machine-readable code.

Exception tree::

    GatewayError (500, internal_error)
    ├── BadRequest (400)          malformed request: invalid_json, invalid_query, unknown_field
    ├── Unauthorized (401)        missing_api_key, invalid_api_key, invalid_operator_token
    ├── NotFound (404)            not_found (also for another account's resources)
    ├── RequestTimeout (408)      body_timeout (the connection is closed too)
    ├── Conflict (409)            an illegal state change: recipient_opted_out, number_protected, ...
    ├── PayloadTooLarge (413)     body_too_large (the connection is closed too)
    ├── Unprocessable (422)       well-formed but invalid: missing_field, invalid_field, invalid_destination, ...
    ├── TooManyRequests (429)     rate_limited, queue_full, too_many_auth_failures (with Retry-After)
    └── ServiceUnavailable (503)  not_ready

The error middleware turns them into ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    default_code = "internal_error"
    close_connection = False  # answered with Connection: close (the request's body cannot be trusted to end)

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(GatewayError):
    status = 400
    default_code = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    default_code = "unauthorized"


class NotFound(GatewayError):
    status = 404
    default_code = "not_found"


class RequestTimeout(GatewayError):
    status = 408
    default_code = "body_timeout"
    close_connection = True


class PayloadTooLarge(GatewayError):
    status = 413
    default_code = "body_too_large"
    close_connection = True  # the rest of the body is never read, so nothing after it can be


class Conflict(GatewayError):
    status = 409
    default_code = "conflict"


class Unprocessable(GatewayError):
    status = 422
    default_code = "invalid_request"


class TooManyRequests(GatewayError):
    status = 429
    default_code = "rate_limited"


class ServiceUnavailable(GatewayError):
    status = 503
    default_code = "not_ready"
