"""An SMSC simulator: an asyncio SMPP 3.4 server that plays the carriers, for tests, the demo and benchmarks.

Shape (after aiosmtpd): :class:`~carriers.simulator.session.SmscProtocol` owns one connection's state machine,
one ``handle_<command>`` method per command gathered in a dispatch table, with per-connection state in a
``Session``. :class:`~carriers.simulator.scenario.SmscHandler` holds the scenario hooks (throttle, fail, delay,
per-carrier rate limits, receipt outcome) that tests and benchmarks set; :class:`SmscSimulator` (here) owns the
server, the receipts and the counters.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import heapq
import itertools
import logging
import random
import time
from typing import Any, Callable

from smpplib import consts

from carriers.encoding import encode as encode_text
from carriers.simulator.scenario import SmscHandler, Submitted
from carriers.simulator.session import SmscProtocol
from carriers.smpp import _pdu as P
from carriers.smpp.receipts import STATE_CODES, concat_udh, parse_inbound

log = logging.getLogger(__name__)


class SmscSimulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, accounts: dict[str, str] | None = None,
                 receipt_delay: float = 0.05, outcome: str | Callable[[str, str], str] = "DELIVRD",
                 handler: SmscHandler | None = None, id_format: str = "hex", receipt_id_format: str = "same"):
        if id_format not in ("hex", "decimal"):
            raise ValueError("id_format must be hex or decimal")
        if receipt_id_format not in ("same", "hex", "decimal", "padded"):
            raise ValueError("receipt_id_format must be same, hex, decimal or padded")
        self.receipt_id_format = receipt_id_format  # how receipts quote the id (some SMSCs change base or pad)
        self.host, self.port = host, port
        self.accounts = dict(accounts or {"gateway": "secret"})
        self.receipt_delay = receipt_delay
        self.handler = handler or SmscHandler()
        if outcome != "DELIVRD":
            self.handler.outcome = outcome
        self.id_format = id_format
        self._ids = itertools.count(0x1000 + random.randrange(0x100000))
        self._server: asyncio.base_events.Server | None = None
        self.connections: set[SmscProtocol] = set()
        self.received: list[Submitted] = []
        self.refusals: list[tuple[Submitted, int]] = []
        self._queued_receipts: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.per_second: collections.Counter[int] = collections.Counter()
        self._label_seconds: collections.Counter[tuple[str, int]] = collections.Counter()
        self.stats: collections.Counter[str] = collections.Counter()
        self._disconnector: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._due_receipts: list[tuple[float, int, Submitted]] = []  # a heap: (due, order, submit)
        self._receipt_order = itertools.count()
        self._receipt_timer: asyncio.Handle | None = None
        self._receipt_timer_at = 0.0  # when it fires (uvloop answers a call_at already due with a plain Handle)
        self._minutes: dict[int, str] = {}  # minute -> YYMMDDhhmm, for receipt dates

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self._due_receipts and self._receipt_timer is None:  # back after a stop: it still reports what it took
            self._receipt_timer_at = self._due_receipts[0][0]
            self._receipt_timer = asyncio.get_running_loop().call_at(self._receipt_timer_at, self._send_due_receipts)

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._disconnector:
            self._disconnector.cancel()
        if self._receipt_timer is not None:
            self._receipt_timer.cancel()
            self._receipt_timer = None
        if self._server is not None:
            self._server.close()
        self.disconnect()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = SmscProtocol(self, reader, writer)
        self.connections.add(protocol)
        self.stats["connections"] += 1
        await protocol.run()

    def connection_closed(self, protocol: SmscProtocol) -> None:
        self.connections.discard(protocol)
        # a deliver_sm the ESME never answered is sent again on the next bind, as a real SMSC retries it
        pending, protocol.pending_receipts = protocol.pending_receipts, {}
        for raw, attempt in pending.values():
            self.stats["redelivered"] += 1
            self.requeue_receipt(protocol.session.system_id, raw, attempt)

    def disconnect(self) -> int:
        """Drop every connection now (a carrier outage). Returns how many were dropped."""
        dropped = 0
        for protocol in list(self.connections):
            transport = protocol.writer.transport
            if transport is not None:
                transport.abort()
                dropped += 1
        self.stats["disconnects"] += dropped
        return dropped

    def disconnect_every(self, seconds: float | None) -> None:
        """Drop all connections every ``seconds`` (None stops it)."""
        if self._disconnector:
            self._disconnector.cancel()
            self._disconnector = None
        if seconds:
            async def _loop() -> None:
                while True:
                    await asyncio.sleep(seconds)
                    self.disconnect()

            self._disconnector = asyncio.create_task(_loop())

    # --- submits ---------------------------------------------------------------------------------------------
    def new_id(self) -> str:
        n = next(self._ids)
        return format(n, "X") if self.id_format == "hex" else str(n)

    def record(self, pdu: Any, system_id: str) -> Submitted:
        inbound = parse_inbound(pdu)  # decodes text, UDH/SAR the same way for both directions
        concat = ((inbound.concat_ref, inbound.concat_total, inbound.concat_seq)
                  if inbound.concat_ref is not None else None)
        destination = inbound.destination
        if destination and not destination.startswith("+") and (pdu.dest_addr_ton or 0) == consts.SMPP_TON_INTL:
            destination = "+" + destination
        short = pdu.short_message or b""
        return Submitted(message_id="", system_id=system_id, source=inbound.source, destination=destination,
                         data_coding=pdu.data_coding or 0, esm_class=pdu.esm_class or 0, text=inbound.text,
                         short_message=short if isinstance(short, bytes) else short.encode("latin-1"),
                         concat=concat, registered_delivery=pdu.registered_delivery or 0,
                         label=self.handler.label_of(destination))

    def count_this_second(self, label: str) -> int:
        return self._label_seconds[(label, int(time.time()))]

    def accepted(self, sub: Submitted) -> None:
        sub.message_id = self.new_id()
        second = int(sub.received_at)
        self.per_second[second] += 1
        self._label_seconds[(sub.label, second)] += 1
        self.received.append(sub)
        self.stats["submitted"] += 1

    def refused(self, sub: Submitted, status: int) -> None:
        self.refusals.append((sub, status))
        self.stats["throttled" if status == consts.SMPP_ESME_RTHROTTLED else "refused"] += 1

    # --- receipts and mobile-originated messages -------------------------------------------------------------
    def _receiver(self, system_id: str | None) -> SmscProtocol | None:
        candidates = [p for p in self.connections if p.session.can_receive
                      and (system_id is None or p.session.system_id == system_id)]
        return random.choice(candidates) if candidates else None

    def receipt_id(self, message_id: str) -> str:
        base = 16 if self.id_format == "hex" else 10
        value = int(message_id, base)
        return {"same": message_id, "hex": format(value, "x"), "decimal": str(value),
                "padded": message_id.lower().rjust(16, "0")}[self.receipt_id_format]

    def schedule_receipt(self, sub: Submitted) -> None:
        """Send the receipt for a submit ``receipt_delay`` from now. All pending receipts share one timer, set
        for the earliest; it sends every receipt then due in one go."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.receipt_delay
        heapq.heappush(self._due_receipts, (due, next(self._receipt_order), sub))
        if self._receipt_timer is None or due < self._receipt_timer_at:
            if self._receipt_timer is not None:
                self._receipt_timer.cancel()
            self._receipt_timer, self._receipt_timer_at = loop.call_at(due, self._send_due_receipts), due

    def _send_due_receipts(self) -> None:
        loop = asyncio.get_running_loop()
        due = self._due_receipts
        now = loop.time()
        while due and due[0][0] <= now:
            sub = heapq.heappop(due)[2]
            try:
                self.send_receipt(sub)
            except Exception:  # one bad scenario hook must not hold back the other receipts
                log.exception("simulator: the receipt for %s could not be sent", sub.message_id)
        self._receipt_timer = loop.call_at(due[0][0], self._send_due_receipts) if due else None
        self._receipt_timer_at = due[0][0] if due else 0.0

    def _minute(self, timestamp: float) -> str:
        """YYMMDDhhmm (UTC) of a Unix time, as receipts write dates; formatted once per minute."""
        minute = int(timestamp // 60)
        text = self._minutes.get(minute)
        if text is None:
            if len(self._minutes) > 1000:
                self._minutes.clear()
            text = self._minutes[minute] = dt.datetime.fromtimestamp(minute * 60, dt.timezone.utc).strftime(
                "%y%m%d%H%M")
        return text

    def send_receipt(self, sub: Submitted, message_id: str | None = None) -> None:
        """The delivery receipt for a submit (``message_id`` overrides the id it quotes)."""
        stat = self.handler.receipt_stat(sub)
        rid = message_id or self.receipt_id(sub.message_id)
        now = self._minute(time.time())
        submitted = self._minute(sub.received_at)
        body = (f"id:{rid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{submitted} "
                f"done date:{now} stat:{stat} err:{'000' if stat == 'DELIVRD' else self.handler.receipt_err or '001'} "
                f"text:{sub.text[:20]}")
        self.stats["receipts"] += 1
        if sub.report is not None:  # taken over HTTP: reported over HTTP
            sub.report(sub, stat, body)
            return
        short_code = sub.source.isdigit()
        fields = dict(source_addr_ton=consts.SMPP_TON_INTL, source_addr_npi=consts.SMPP_NPI_ISDN,
                      source_addr=sub.destination.lstrip("+"),
                      dest_addr_ton=consts.SMPP_TON_NWSPEC if short_code else consts.SMPP_TON_INTL,
                      dest_addr_npi=consts.SMPP_NPI_UNK if short_code else consts.SMPP_NPI_ISDN,
                      destination_addr=sub.source.lstrip("+"), esm_class=P.ESM_CLASS_SMSC_RECEIPT,
                      data_coding=consts.SMPP_ENCODING_DEFAULT, short_message=body.encode("ascii", "replace"),
                      receipted_message_id=rid,
                      message_state=STATE_CODES.get(stat, consts.SMPP_MESSAGE_STATE_UNKNOWN))
        self._deliver(sub.system_id, lambda seq: P.build("deliver_sm", seq, **fields))

    def requeue_receipt(self, system_id: str | None, raw: bytes, attempt: int) -> None:
        body = raw[16:]

        def rebuild(seq: int) -> bytes:
            return raw[:12] + seq.to_bytes(4, "big") + body

        self._deliver(system_id, rebuild, attempt)

    def _deliver(self, system_id: str | None, build: Callable[[int], bytes], attempt: int = 1) -> None:
        receiver = self._receiver(system_id)
        if receiver is None:
            self._queued_receipts[system_id or ""].append((build, attempt))
            self.stats["queued_for_receiver"] += 1
            return
        receiver.deliver(build, attempt)

    def bound(self, protocol: SmscProtocol) -> None:
        if not protocol.session.can_receive:
            return
        for key in (protocol.session.system_id or "", ""):
            queue = self._queued_receipts.get(key)
            while queue:
                build, attempt = queue.popleft()
                protocol.deliver(build, attempt)

    async def inject_mo(self, source: str, destination: str, text: str, *, system_id: str | None = None,
                        data_coding: int | None = None, concatenation: str = "udh", reference: int | None = None,
                        order: str = "forward", repeat: tuple[int, ...] = (), drop: tuple[int, ...] = ()) -> int:
        """Send a mobile-originated message to a bound receiver; long text goes in UDH or SAR parts, in
        ``order`` (forward | reverse), parts in ``repeat`` sent twice, parts in ``drop`` never.
        Returns the number of parts."""
        if data_coding == consts.SMPP_ENCODING_ISO88591:
            encoded_parts, coding = [text.encode("latin-1")], consts.SMPP_ENCODING_ISO88591
        else:
            enc = encode_text(text)
            encoded_parts, coding = list(enc.segments), enc.data_coding
        ref = random.randrange(256) if reference is None else reference
        total = len(encoded_parts)
        numbered = list(enumerate(encoded_parts, start=1))
        if order == "reverse":
            numbered.reverse()
        numbered = [p for p in numbered if p[0] not in drop] + [p for p in numbered if p[0] in repeat]
        for seq_no, payload in numbered:
            fields: dict[str, Any] = dict(
                source_addr_ton=consts.SMPP_TON_INTL if source.startswith("+") else consts.SMPP_TON_NWSPEC,
                source_addr_npi=consts.SMPP_NPI_ISDN, source_addr=source.lstrip("+"),
                dest_addr_ton=consts.SMPP_TON_INTL if destination.startswith("+") else consts.SMPP_TON_NWSPEC,
                dest_addr_npi=consts.SMPP_NPI_ISDN, destination_addr=destination.lstrip("+"), data_coding=coding,
                esm_class=consts.SMPP_MSGMODE_DEFAULT, short_message=payload)
            if total > 1 and concatenation == "sar":
                fields.update(sar_msg_ref_num=ref, sar_total_segments=total, sar_segment_seqnum=seq_no)
            elif total > 1:
                fields.update(esm_class=consts.SMPP_GSMFEAT_UDHI,
                              short_message=concat_udh(ref, total, seq_no) + payload)
            self._deliver(system_id, lambda seq, f=fields: P.build("deliver_sm", seq, **f))
        self.stats["mo"] += total
        return total

    def snapshot(self) -> dict[str, Any]:
        seconds = sorted(self.per_second)
        return {"stats": dict(self.stats), "received": len(self.received), "connections": len(self.connections),
                "per_second": {str(s): self.per_second[s] for s in seconds}}
