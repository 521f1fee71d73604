"""The SMPP carrier: the Carrier interface over SmppClient binds."""

from __future__ import annotations

import asyncio
import logging
from operator import attrgetter
from typing import Any, AsyncIterator, Collection

from smpplib import consts

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
from carriers.smpp.client import SmppClient
from carriers.smpp.receipts import concat_udh, is_receipt, parse_inbound, parse_receipt

log = logging.getLogger(__name__)


def address(number: str) -> tuple[int, int, str]:
    """(TON, NPI, address) for a number: E.164 is international/ISDN without '+'; a short code is network
    specific; anything else (alphanumeric) is TON 5."""
    if number.startswith("+"):
        return consts.SMPP_TON_INTL, consts.SMPP_NPI_ISDN, number[1:]
    if number.isdigit() and len(number) <= 8:
        return consts.SMPP_TON_NWSPEC, consts.SMPP_NPI_UNK, number
    if number.isdigit():
        return consts.SMPP_TON_INTL, consts.SMPP_NPI_ISDN, number
    return consts.SMPP_TON_ALNUM, consts.SMPP_NPI_UNK, number


class SmppCarrier(Carrier):
    kind = "smpp"

    def __init__(self, name: str, host: str, port: int, system_id: str, password: str, *, system_type: str = "",
                 bind_mode: str = "transceiver", window: int = 100, enquire_link_interval: float = 30.0,
                 response_timeout: float = 10.0, concatenation: str = "udh", binds: int = 1,
                 reconnect_min: float = 0.1, reconnect_max: float = 30.0):
        if concatenation not in ("udh", "sar", "payload"):
            raise ValueError("concatenation must be udh, sar or payload")
        self.name = name
        self.concatenation = concatenation
        self._events: CarrierEvents | None = None
        self.clients = [
            SmppClient(host, port, system_id, password, system_type=system_type, bind_mode=bind_mode,
                       window=window, enquire_link_interval=enquire_link_interval,
                       response_timeout=response_timeout, reconnect_min=reconnect_min, reconnect_max=reconnect_max,
                       on_deliver_sm=self._on_deliver_sm, name=f"{name}#{i}", carrier=name)
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
                      registered_delivery=(consts.SMPP_SMSC_DELIVERY_RECEIPT_BOTH if message.registered_delivery
                                           else consts.SMPP_SMSC_DELIVERY_RECEIPT_NONE))
        parts = [s.payload for s in message.segments]
        total = len(parts)
        if total == 1:
            return [dict(common, esm_class=consts.SMPP_MSGMODE_DEFAULT, short_message=parts[0])]
        if self.concatenation == "payload":
            return [dict(common, esm_class=consts.SMPP_MSGMODE_DEFAULT, short_message=b"",
                         message_payload=b"".join(parts))]
        ref = message.reference & 0xFFFF
        out = []
        for seq, payload in enumerate(parts, start=1):
            if self.concatenation == "sar":
                out.append(dict(common, esm_class=consts.SMPP_MSGMODE_DEFAULT, short_message=payload,
                                sar_msg_ref_num=ref, sar_total_segments=total, sar_segment_seqnum=seq))
            else:
                out.append(dict(common, esm_class=consts.SMPP_GSMFEAT_UDHI,
                                short_message=concat_udh(ref, total, seq) + payload))
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
            return consts.SMPP_ESME_RX_T_APPN
        if is_receipt(pdu):
            receipt = parse_receipt(pdu)
            if receipt is None:
                log.warning("%s: receipt without a message id ignored", self.name)
                return consts.SMPP_ESME_ROK
            await self._events.on_receipt(self.name, receipt)
        else:
            # deliver_sm are handled side by side, each handed on as it was read (the sink keeps that order:
            # STOP then START) and answered once the sink has stored it with the others of its batch
            await self._events.on_inbound(self.name, parse_inbound(pdu))
        return consts.SMPP_ESME_ROK

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
