"""The outside telephony world: the Carrier interface, SMPP client, SMSC simulator, test carriers.

Imports none of the project's other packages.
"""

from __future__ import annotations

from carriers._base import (
    Carrier,
    CarrierError,
    CarrierEvents,
    CarrierRejected,
    CarrierRetryable,
    InboundSms,
    OutboundSms,
    PartResult,
    Receipt,
    Segment,
    SubmitResult,
)

__all__ = [
    "Carrier",
    "CarrierError",
    "CarrierEvents",
    "CarrierRejected",
    "CarrierRetryable",
    "InboundSms",
    "OutboundSms",
    "PartResult",
    "Receipt",
    "Segment",
    "SubmitResult",
]
