"""The one interface the gateway holds for the outside telephony world.

Exception tree::

    CarrierError                 any failure talking to a carrier
    ├── CarrierRetryable         slow down and try again later (ESME_RTHROTTLED, ESME_RMSGQFUL,
    │                            not bound, connection lost, response timeout)
    └── CarrierRejected          the carrier refused this message for good (any other command_status)

Each carrier (SMPP, HTTP, the in-process loopback used by tests) implements :class:`Carrier`.
Receipts and mobile-originated messages flow back through a :class:`CarrierEvents` sink that the
gateway installs with :meth:`Carrier.set_events`; the carrier never knows what the gateway does with them.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import AsyncIterator, Collection, Protocol


class CarrierError(Exception):
    """A carrier could not take a message. ``code`` is stable and machine readable."""

    def __init__(self, message: str, *, code: str = "carrier_error", command_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.command_status = command_status


class CarrierRetryable(CarrierError):
    """Transient: throttled, queue full, not bound, timed out. Retry later; never a failure."""


class CarrierRejected(CarrierError):
    """Permanent: the carrier refused the message. ``command_status`` holds the SMPP code if any."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One SMS part as it goes on the wire, without any concatenation header."""

    payload: bytes  # GSM-7 unpacked septets (one byte each), UCS-2 big-endian, or Latin-1


@dataclass(frozen=True, slots=True)
class OutboundSms:
    source: str  # sending number: E.164 ("+14155550100") or short code digits ("12345")
    destination: str  # E.164
    data_coding: int  # 0x00 GSM-7 (SMSC default), 0x08 UCS-2, 0x03 Latin-1
    segments: tuple[Segment, ...]
    reference: int  # concatenation reference, 0-65535 (8-bit UDH uses the low byte)
    registered_delivery: bool = True


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What the carrier answered: one carrier message id per segment, in segment order."""

    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PartResult:
    """What the carrier answered to one part (one submit) of a message: its id, or the error that refused it."""

    seq: int  # the part number, from 1, as in the concatenation header
    message_id: str | None = None
    error: CarrierError | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt for one segment."""

    carrier_message_id: str  # as received (hex or decimal, any case, maybe leading zeros)
    stat: str  # DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN, REJECTD, ENROUTE
    error_code: str | None = None  # the receipt's err: field, if any
    done_at: dt.datetime | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A mobile-originated message (or one part of a multipart one), decoded to text."""

    source: str
    destination: str
    text: str
    data_coding: int = 0
    # concatenation info when the message is one part of several (from UDH or SAR TLVs)
    concat_ref: int | None = None
    concat_total: int | None = None
    concat_seq: int | None = None
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


class CarrierEvents(Protocol):
    """The sink the gateway installs to receive what comes back from a carrier. Each call returns once what it
    was handed is stored (the carrier acknowledges it then) and raises when it could not be (the carrier asks for
    it again). Calls may overlap; inbound messages are taken in the order of the calls (each call hands its
    message on before its first pause), so a carrier keeps arrival order by calling in arrival order."""

    async def on_receipt(self, carrier: str, receipt: Receipt) -> None: ...

    async def on_inbound(self, carrier: str, message: InboundSms) -> None: ...


class Carrier(abc.ABC):
    """Send SMS through one carrier connection. Implementations must be safe to call concurrently."""

    name: str
    kind = "other"  # what it speaks, as operators read it: smpp, http, loopback

    @abc.abstractmethod
    def set_events(self, events: CarrierEvents) -> None:
        """Install the sink for receipts and inbound messages (before :meth:`start`)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (and keep reconnecting in the background). Returns once the first attempt is made."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """True while the carrier can take messages (e.g. an SMPP bind is up)."""

    @abc.abstractmethod
    async def send_sms(self, message: OutboundSms) -> SubmitResult:
        """Submit every segment. Raises CarrierRetryable or CarrierRejected."""

    def submit_count(self, message: OutboundSms) -> int:
        """How many parts (submits, each with its own id and receipt) the message goes out as."""
        return len(message.segments)

    async def send_parts(self, message: OutboundSms, seqs: Collection[int] | None = None
                         ) -> AsyncIterator[PartResult]:
        """Submit the parts numbered ``seqs`` (every part when None), each on its own, and yield each part's
        answer as it comes: a part refused does not stop the others. This default, for carriers that take a
        message only whole, submits the whole message and answers for every part at once."""
        try:
            result = await self.send_sms(message)
        except CarrierError as exc:
            for seq in range(1, self.submit_count(message) + 1):
                yield PartResult(seq, error=exc)
            return
        for seq, message_id in enumerate(result.message_ids, start=1):
            yield PartResult(seq, message_id)

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop, unbinding cleanly."""
