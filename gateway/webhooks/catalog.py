"""Message statuses and the events customers are told about, in one table."""

from __future__ import annotations

import functools
from typing import Any

from carriers.voice_http import CALL_STATUSES, FINAL_CALL_STATUSES
from gateway.errors import Unprocessable
from gateway.store.models import MessageStatus as S

TEXT_QUEUED = "TEXT_QUEUED"
TEXT_SENT = "TEXT_SENT"
TEXT_DELIVERED = "TEXT_DELIVERED"
TEXT_BLOCKED = "TEXT_BLOCKED"
TEXT_CARRIER_UNREACHABLE = "TEXT_CARRIER_UNREACHABLE"
TEXT_UNREACHABLE = "TEXT_UNREACHABLE"
TEXT_CARRIER_BLOCKED = "TEXT_CARRIER_BLOCKED"
TEXT_UNKNOWN = "TEXT_UNKNOWN"
TEXT_TTL_EXPIRED = "TEXT_TTL_EXPIRED"

TEXT_EVENTS = (TEXT_QUEUED, TEXT_SENT, TEXT_DELIVERED, TEXT_BLOCKED, TEXT_CARRIER_UNREACHABLE, TEXT_UNREACHABLE,
               TEXT_CARRIER_BLOCKED, TEXT_UNKNOWN, TEXT_TTL_EXPIRED)
VOICE_EVENTS = tuple("VOICE_" + status.upper() for status in CALL_STATUSES)  # as gateway.voice_calls.worker names them
EVENT_TYPES = frozenset(TEXT_EVENTS + VOICE_EVENTS)
# the events that end a message: customers who want "final" events get these (and only these)
FINAL_EVENTS = frozenset({TEXT_DELIVERED, TEXT_BLOCKED, TEXT_CARRIER_UNREACHABLE, TEXT_UNREACHABLE,
                          TEXT_CARRIER_BLOCKED, TEXT_UNKNOWN, TEXT_TTL_EXPIRED}
                         | {"VOICE_" + status.upper() for status in FINAL_CALL_STATUSES})

# receipt stat -> (message status, event) for final receipt states; others (ENROUTE, ACCEPTD) are not final
RECEIPT_OUTCOMES: dict[str, tuple[S, str]] = {
    "DELIVRD": (S.DELIVERED, TEXT_DELIVERED),
    "UNDELIV": (S.UNDELIVERED, TEXT_UNREACHABLE),
    "EXPIRED": (S.UNDELIVERED, TEXT_CARRIER_UNREACHABLE),
    "DELETED": (S.UNDELIVERED, TEXT_UNKNOWN),
    "UNKNOWN": (S.UNDELIVERED, TEXT_UNKNOWN),
    "REJECTD": (S.FAILED, TEXT_CARRIER_BLOCKED),
}

# what a final receipt state that is not a delivery says happened (a message's error_message)
RECEIPT_SENTENCES = {
    "UNDELIV": "The carrier could not deliver it",
    "EXPIRED": "Its validity ran out at the carrier before it could be delivered",
    "DELETED": "The carrier deleted it before delivery",
    "UNKNOWN": "The carrier does not know whether it was delivered",
    "REJECTD": "The carrier rejected it",
}

# how bad each final receipt state is: a multipart message takes its worst part's outcome
SEVERITY = {"DELIVRD": 0, "DELETED": 1, "UNKNOWN": 2, "EXPIRED": 3, "UNDELIV": 4, "REJECTD": 5}


def combine(stats: list[str | None]) -> str | None:
    """The final stat of a message from its parts' stats, or None while any part is not final."""
    if not stats or any(s not in SEVERITY for s in stats):
        return None
    return max(stats, key=lambda s: SEVERITY[s])  # type: ignore[arg-type]


# --- which events a webhook wants -------------------------------------------------------------------------------
# A selection (an account's ``webhook_events``, a message's ``status_callback_events``) is stored as text: NULL for
# every event, "final", or the chosen event types joined by commas.

def parse_selection(value: Any, field: str) -> str | None:
    """The stored form of a selection given in the API: "all", "final" or a non-empty list of event types."""
    if value is None or value == "all":
        return None
    if value == "final":
        return "final"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        unknown = sorted(set(value) - EVENT_TYPES)
        if not unknown:
            return ",".join(sorted(set(value)))
        raise Unprocessable(f"{field} names unknown event types: {', '.join(unknown)[:200]}.", code="invalid_field",
                            details={"field": field})
    raise Unprocessable(f'{field} must be "all", "final" or a non-empty list of event types.',
                        code="invalid_field", details={"field": field})


def selection_view(stored: str | None) -> str | list[str]:
    """A stored selection as the API shows it."""
    return "all" if stored is None else stored if stored == "final" else stored.split(",")


@functools.lru_cache(maxsize=1024)
def _chosen(stored: str) -> frozenset[str]:
    return FINAL_EVENTS if stored == "final" else frozenset(stored.split(","))


def wanted(stored: str | None, event_type: str) -> bool:
    """Whether a webhook with this selection is told about ``event_type``."""
    return stored is None or event_type in _chosen(stored)
