"""The OpenAPI paths of 10DLC as a Campaign Service Provider: brands and campaigns (/admin, and the customers' views
under /v1), the registry and its simulator (/admin/registry), and the registry's events (/registry/events)."""

from __future__ import annotations

from typing import Any

from gateway.api.openapi_schemas import ID_PARAM, errors, operation, reply

_I = [ID_PARAM]
_PENDING = {"202": "The registry could not be reached: the request is kept (its 'pending' list) and the "
                   "reconciliation sends it again"}


def _action(*names: str) -> list[dict[str, Any]]:
    return _I + [{"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": list(names)}}]


REGISTRY_PATHS: dict[str, dict[str, Any]] = {
    "/admin/brands": {"post": operation("Register a 10DLC brand with the registry (its identity check's result comes "
                                        "as an event); 409 brand_exists with the existing brand's id when its EIN is "
                                        "registered already; the registry's refusal with its code", body="brand",
                                        status="201", also=_PENDING),
                      "get": operation("Brands", codes=(401,))},
    "/admin/brands/{id}": {
        "get": operation("A brand with what is pending and its history (events, calls and answers)", params=_I,
                         codes=(401, 404)),
        "patch": operation("Change a brand's fields at the registry (its identity is checked again)",
                           body="brand_update", params=_I, also=_PENDING),
        "delete": operation("Delete a brand at the registry (409 brand_has_active_campaigns while it has live "
                            "campaigns)", params=_I, also=_PENDING)},
    "/admin/brands/{id}/feedback": {"get": operation(
        "The registry's feedback on the brand's identity check (503 registry_unavailable when it cannot be asked)",
        params=_I, codes=(401, 404, 409, 503))},
    "/admin/brands/{id}/{action}": {"post": operation(
        "vet (external vetting, a verified brand; evp_id, vetting_class) or revet (the identity checked again)",
        body="brand_action", body_required=False, params=_action("vet", "revet"), also=_PENDING)},
    "/admin/campaigns": {"post": operation("Create a 10DLC campaign at the registry (409 brand_not_verified unless "
                                           "the registry verified the brand)", body="campaign", status="201",
                                           also=_PENDING),
                         "get": operation("Campaigns", codes=(401,))},
    "/admin/campaigns/{id}": {"get": operation(
        "A campaign: limits per carrier, each carrier's review, the carriers it may not reach now, its numbers and "
        "orders, what is pending, its history", params=_I, codes=(401, 404))},
    "/admin/campaigns/{id}/{action}": {"post": operation(
        "share (with the DCA: cnp_id), renew, deactivate (for good); associate (number or numbers: an order to the "
        "DCA; the numbers are associating until it completes) or disassociate a number",
        body="campaign_action", body_required=False, codes=(400, 401, 404, 409, 422),
        params=_action("share", "renew", "deactivate", "associate", "disassociate"), also=_PENDING)},
    "/admin/registry": {"get": operation("The registry: mode, URL, DCA, subscription, requests pending, events "
                                         "received, the simulator's clock", codes=(401,))},
    "/admin/registry/events": {"get": operation(
        "The registry's events received, newest first, each with what it changed or why not", codes=(401, 422),
        params=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])},
    "/admin/registry/reconcile": {"post": operation("Send the pending requests and poll what waits for the "
                                                    "registry's word, now", body="reconcile", body_required=False,
                                                    codes=(401, 422))},
    "/admin/registry/advance": {"post": operation("Advance the registry simulator's clock by days, then reconcile "
                                                  "(409 registry_not_simulated for a registry without a control "
                                                  "API)", body="advance", codes=(401, 409, 422, 503))},
    "/admin/registry/simulator/brands/{id}/review": {"post": operation(
        "Act as the simulator's identity check for a brand", body="review_brand", params=_I,
        codes=(401, 404, 409, 422, 503))},
    "/admin/registry/simulator/campaigns/{id}/review": {"post": operation(
        "Act as a carrier's reviewer of a campaign in the simulator (approve, reject, suspend, unsuspend)",
        body="review_campaign", params=_I, codes=(401, 404, 409, 422, 503))},
    "/admin/registry/simulator/faults": {"post": operation("Inject faults into the registry simulator",
                                                           body="faults", codes=(401, 409, 422, 503))},
    "/admin/registry/simulator/redeliver": {"post": operation("Have the registry simulator send every event again",
                                                              codes=(401, 409, 503))},
    "/registry/events/{token}": {"post": {
        "summary": "An event from the registry (webhook); the token in the URL authenticates it. Stored and "
                   "applied before the answer; a repeated eventId changes nothing", "security": [],
        "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": reply({"type": "object", "properties": {
            "eventId": {"type": "string"}, "outcome": {"type": "string", "enum": [
                "applied", "ignored", "unmatched", "duplicate"]}, "reason": {"type": ["string", "null"]}}}),
            **errors(400, 401, 408, 413, 422)}}},
    "/v1/brands": {"get": operation("The account's brands", admin=False, codes=(401,))},
    "/v1/brands/{id}": {"get": operation("One of the account's brands", params=_I, admin=False, codes=(401, 404))},
    "/v1/campaigns": {"get": operation("The account's campaigns", admin=False, codes=(401,))},
    "/v1/campaigns/{id}": {"get": operation("One of the account's campaigns with its limits", params=_I, admin=False,
                                            codes=(401, 404))},
}
