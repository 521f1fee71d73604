"""The SMPP carrier: the Carrier interface over SmppClient binds."""

from __future__ import annotations

import asyncio
import logging
from operator import attrgetter
from typing import Any, AsyncIterator, Collection

from carriers._base import (
    Carrier,
    CarrierError,
    CarrierEvents,
    CarrierRetryable,
    OutboundSms,
    PartResult,
    SubmitResult,
)
from carriers.pool import RoundRobin
from carriers.smpp import _pdu as P
from carriers.smpp.client import SmppClient
from carriers.smpp.receipts import is_receipt, parse_inbound, parse_receipt

log = logging.getLogger(__name__)


def address(number: str) -> tuple[int, int, str]:
    """(TON, NPI, address) for a number: E.164 is international/ISDN without '+'; a short code is network
    specific; anything else (alphanumeric) is TON 5."""
    if number.startswith("+"):
        return 1, 1, number[1:]
    if number.isdigit() and len(number) <= 8:
        return 3, 0, number
    if number.isdigit():
        return 1, 1, number
    return 5, 0, number


class SmppCarrier(Carrier):
    def __init__(self, name: str, host: str, port: int, system_id: str, password: str, *, system_type: str = "",
                 bind_mode: str = "transceiver", window: int = 100, enquire_link_interval: float = 30.0,
                 response_timeout: float = 10.0, concatenation: str = "udh", binds: int = 1,
                 reconnect_min: float = 0.1, reconnect_max: float = 30.0):
        if concatenation not in ("udh", "sar", "payload"):
            raise ValueError("concatenation must be udh, sar or payload")
        self.name = name
        self.concatenation = concatenation
        self._events: CarrierEvents | None = None
        # deliver_sm are handled side by side; inbound messages still in arrival order (STOP then START)
        self._inbound_order = asyncio.Lock()
        self.clients = [
            SmppClient(host, port, system_id, password, system_type=system_type, bind_mode=bind_mode,
                       window=window, enquire_link_interval=enquire_link_interval,
                       response_timeout=response_timeout, reconnect_min=reconnect_min, reconnect_max=reconnect_max,
                       on_deliver_sm=self._on_deliver_sm, name=f"{name}#{i}")
            for i in range(max(1, binds))
        ]
        self._binds = RoundRobin(self.clients, attrgetter("bound"))

    def set_events(self, events: CarrierEvents) -> None:
        self._events = events

    async def start(self) -> None:
        await asyncio.gather(*(c.start() for c in self.clients))

    @property
    def ready(self) -> bool:  # asked for each message sent: a plain loop, no generator
        for client in self.clients:
            if client.bound:
                return True
        return False

    def _client(self) -> SmppClient:
        client = self._binds.pick()
        if client is None:
            raise CarrierRetryable(f"{self.name} is not bound.", code="not_bound")
        return client

    def submits(self, message: OutboundSms) -> list[dict[str, Any]]:
        """The submit_sm fields for each part of a message, by the configured concatenation."""
        src_ton, src_npi, src = address(message.source)
        dst_ton, dst_npi, dst = address(message.destination)
        common = dict(source_addr_ton=src_ton, source_addr_npi=src_npi, source_addr=src, dest_addr_ton=dst_ton,
                      dest_addr_npi=dst_npi, destination_addr=dst, data_coding=message.data_coding,
                      registered_delivery=1 if message.registered_delivery else 0)
        parts = [s.payload for s in message.segments]
        total = len(parts)
        if total == 1:
            return [dict(common, esm_class=0, short_message=parts[0])]
        if self.concatenation == "payload":
            return [dict(common, esm_class=0, short_message=b"", message_payload=b"".join(parts))]
        ref = message.reference & 0xFFFF
        out = []
        for seq, payload in enumerate(parts, start=1):
            if self.concatenation == "sar":
                out.append(dict(common, esm_class=0, short_message=payload, sar_msg_ref_num=ref,
                                sar_total_segments=total, sar_segment_seqnum=seq))
            else:
                if ref > 0xFF:
                    udh = bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))
                else:
                    udh = bytes((0x05, 0x00, 0x03, ref, total, seq))
                out.append(dict(common, esm_class=0x40, short_message=udh + payload))
        return out

    async def send_sms(self, message: OutboundSms) -> SubmitResult:
        client = self._client()
        submits = self.submits(message)
        if len(submits) == 1:
            return SubmitResult((await client.submit_sm(**submits[0]),))
        ids = await asyncio.gather(*(client.submit_sm(**fields) for fields in submits))
        return SubmitResult(tuple(ids))

    def submit_count(self, message: OutboundSms) -> int:
        return 1 if len(message.segments) == 1 or self.concatenation == "payload" else len(message.segments)

    async def send_parts(self, message: OutboundSms, seqs: Collection[int] | None = None
                         ) -> AsyncIterator[PartResult]:
        """Each part a submit_sm of its own, with the message's reference and its own part number (so a part
        submitted again joins the parts the handset already has); answers in the order they come."""
        client = self._client()
        submits = self.submits(message)
        wanted = range(1, len(submits) + 1) if seqs is None else [s for s in seqs if 1 <= s <= len(submits)]

        async def part(seq: int) -> PartResult:
            try:
                return PartResult(seq, await client.submit_sm(**submits[seq - 1]))
            except CarrierError as exc:
                return PartResult(seq, error=exc)

        tasks = [asyncio.ensure_future(part(seq)) for seq in wanted]  # submitted in part order
        for answer in asyncio.as_completed(tasks):
            yield await answer

    async def _on_deliver_sm(self, pdu: Any) -> int:
        if self._events is None:
            return P.ESME_RX_T_APPN
        if is_receipt(pdu):
            receipt = parse_receipt(pdu)
            if receipt is None:
                log.warning("%s: receipt without a message id ignored", self.name)
                return P.ESME_ROK
            await self._events.on_receipt(self.name, receipt)
        else:
            async with self._inbound_order:
                await self._events.on_inbound(self.name, parse_inbound(pdu))
        return P.ESME_ROK

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
