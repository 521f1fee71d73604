"""Message statuses and the events customers are told about, in one table."""

from __future__ import annotations

from gateway.models import MessageStatus as S

TEXT_QUEUED = "TEXT_QUEUED"
TEXT_SENT = "TEXT_SENT"
TEXT_DELIVERED = "TEXT_DELIVERED"
TEXT_BLOCKED = "TEXT_BLOCKED"
TEXT_CARRIER_UNREACHABLE = "TEXT_CARRIER_UNREACHABLE"
TEXT_UNREACHABLE = "TEXT_UNREACHABLE"
TEXT_CARRIER_BLOCKED = "TEXT_CARRIER_BLOCKED"
TEXT_UNKNOWN = "TEXT_UNKNOWN"
TEXT_TTL_EXPIRED = "TEXT_TTL_EXPIRED"

# the events that end a message: customers who want "final" events get these (and only these)
FINAL_EVENTS = frozenset({TEXT_DELIVERED, TEXT_BLOCKED, TEXT_CARRIER_UNREACHABLE, TEXT_UNREACHABLE,
                          TEXT_CARRIER_BLOCKED, TEXT_UNKNOWN, TEXT_TTL_EXPIRED})

# receipt stat -> (message status, event) for final receipt states; others (ENROUTE, ACCEPTD) are not final
RECEIPT_OUTCOMES: dict[str, tuple[S, str]] = {
    "DELIVRD": (S.DELIVERED, TEXT_DELIVERED),
    "UNDELIV": (S.UNDELIVERED, TEXT_UNREACHABLE),
    "EXPIRED": (S.UNDELIVERED, TEXT_CARRIER_UNREACHABLE),
    "DELETED": (S.UNDELIVERED, TEXT_UNKNOWN),
    "UNKNOWN": (S.UNDELIVERED, TEXT_UNKNOWN),
    "REJECTD": (S.FAILED, TEXT_CARRIER_BLOCKED),
}

# how bad each final receipt state is: a multipart message takes its worst part's outcome
SEVERITY = {"DELIVRD": 0, "DELETED": 1, "UNKNOWN": 2, "EXPIRED": 3, "UNDELIV": 4, "REJECTD": 5}


def combine(stats: list[str | None]) -> str | None:
    """The final stat of a message from its parts' stats, or None while any part is not final."""
    if not stats or any(s not in SEVERITY for s in stats):
        return None
    return max(stats, key=lambda s: SEVERITY[s])  # type: ignore[arg-type]
