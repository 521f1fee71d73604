"""An SMSC simulator: an asyncio SMPP 3.4 server that plays the carriers, for tests, the demo and benchmarks.

Shape (after aiosmtpd): :class:`SmscProtocol` owns one connection's state machine, one ``handle_<command>``
method per command gathered in a dispatch table, with per-connection state in a :class:`Session`.
:class:`SmscHandler` holds the scenario hooks (throttle, fail, delay, per-carrier rate limits, receipt
outcome) that tests and benchmarks set; :class:`SmscSimulator` owns the server, the receipts and the counters.
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
from dataclasses import dataclass, field
from typing import Any, Callable

from smpplib import consts

from carriers.encoding import encode as encode_text
from carriers.smpp import _pdu as P
from carriers.smpp.receipts import STATE_CODES, concat_udh, parse_inbound

log = logging.getLogger(__name__)

BIND_COMMANDS = {"bind_transmitter": "tx", "bind_receiver": "rx", "bind_transceiver": "trx"}
NO_ANSWER = -1  # a submit_status meaning: never answer this submit_sm (a response lost at the SMSC)


@dataclass
class Submitted:
    """A submit_sm as the simulator received it."""

    message_id: str
    system_id: str
    source: str
    destination: str
    data_coding: int
    esm_class: int
    text: str
    short_message: bytes
    concat: tuple[int, int, int] | None  # (ref, total, seq) from UDH or SAR
    registered_delivery: int
    label: str  # the carrier this destination belongs to (for per-carrier limits)
    received_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "system_id": self.system_id, "source": self.source,
                "destination": self.destination, "data_coding": self.data_coding, "esm_class": self.esm_class,
                "text": self.text, "concat": list(self.concat) if self.concat else None, "label": self.label,
                "received_at": self.received_at}


class SmscHandler:
    """Scenario hooks. Each may be changed while the simulator runs."""

    def __init__(self) -> None:
        self.throttle_all = False  # answer ESME_RTHROTTLED to every submit_sm
        self.throttle_fraction = 0.0  # ... or to this random fraction of them
        self.fail: dict[str, int] = {}  # destination -> command_status to answer
        self.response_delay = 0.0  # seconds before each submit_sm_resp
        self.rate_limits: dict[str, float] = {}  # carrier label -> submits per calendar second
        self.label_of: Callable[[str], str] = lambda destination: "default"
        self.outcome: str | Callable[[str, str], str] = "DELIVRD"  # receipt stat, or f(destination, text)
        self.outcomes_by_destination: dict[str, str] = {}
        self.receipt_err: str | None = None  # the err: of receipts that are not DELIVRD (default 001)
        # every Nth part of a concatenated message (counted over all of them, first submits and repeats alike)
        # is answered with this command_status, or not answered at all (NO_ANSWER); 0: off
        self.every_nth_part = 0
        self.nth_part_status = consts.SMPP_ESME_RTHROTTLED
        self._parts_seen = 0

    def submit_status(self, sim: "SmscSimulator", sub: Submitted) -> int:
        """The command_status to answer a submit_sm with (0: accepted)."""
        if sub.destination in self.fail:
            return self.fail[sub.destination]
        if self.every_nth_part and sub.concat is not None:
            self._parts_seen += 1
            if self._parts_seen % self.every_nth_part == 0:
                return self.nth_part_status
        if self.throttle_all or (self.throttle_fraction and random.random() < self.throttle_fraction):
            return consts.SMPP_ESME_RTHROTTLED
        limit = self.rate_limits.get(sub.label)
        if limit is not None and sim.count_this_second(sub.label) >= limit:
            return consts.SMPP_ESME_RTHROTTLED
        return consts.SMPP_ESME_ROK

    def receipt_stat(self, sub: Submitted) -> str:
        if sub.destination in self.outcomes_by_destination:
            return self.outcomes_by_destination[sub.destination]
        return self.outcome(sub.destination, sub.text) if callable(self.outcome) else self.outcome


@dataclass
class Session:
    peer: str
    system_id: str | None = None
    mode: str | None = None  # tx | rx | trx

    @property
    def can_receive(self) -> bool:
        return self.mode in ("rx", "trx")


class SmscProtocol:
    def __init__(self, sim: "SmscSimulator", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.sim = sim
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.session = Session(peer=f"{peer[0]}:{peer[1]}" if peer else "?")
        self._seq = itertools.count(1)
        self.pending_receipts: dict[int, tuple[bytes, int]] = {}
        self._out: list[bytes] = []  # PDUs sent during this turn of the event loop, written together
        self.handlers: dict[str, Callable[[Any, int], Any]] = {
            "bind_transmitter": self.handle_bind, "bind_receiver": self.handle_bind,
            "bind_transceiver": self.handle_bind, "submit_sm": self.handle_submit_sm,
            "enquire_link": self.handle_enquire_link, "unbind": self.handle_unbind,
        }

    def send(self, raw: bytes) -> None:
        if self.writer.is_closing():
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self.flush)
        self._out.append(raw)

    def flush(self) -> None:
        """Write the PDUs sent during this turn of the event loop in one go (one system call, not one per PDU)."""
        out, self._out = self._out, []
        if out and not self.writer.is_closing():
            self.writer.write(out[0] if len(out) == 1 else b"".join(out))

    def next_seq(self) -> int:
        return next(self._seq)

    async def run(self) -> None:
        P.set_nodelay(self.writer)
        try:
            while True:
                try:
                    raw = await P.read_frame(self.reader)
                except P.FrameError as exc:
                    log.info("simulator: closing %s: %s", self.session.peer, exc)
                    self.sim.stats["garbage"] += 1
                    break
                _, command_id, status, seq = P.header(raw)
                if command_id & P.RESPONSE_BIT:
                    self.on_response(command_id, status, seq)
                    continue
                try:
                    pdu = P.parse(raw)
                except ValueError:
                    self.sim.stats["garbage"] += 1
                    self.send(P.build("generic_nack", seq, status=P.nack_status(command_id)))
                    continue
                handler = self.handlers.get(pdu.command)
                if handler is None:
                    self.send(P.build("generic_nack", seq, status=consts.SMPP_ESME_RINVCMDID))
                    continue
                if await handler(pdu, seq) is False:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.sim.connection_closed(self)
            with contextlib.suppress(Exception):
                self.flush()
                self.writer.close()

    def on_response(self, command_id: int, status: int, seq: int) -> None:
        pending = self.pending_receipts.pop(seq, None)
        if pending is not None and status == consts.SMPP_ESME_ROK:
            self.sim.stats["acknowledged"] += 1  # the ESME took this deliver_sm: it is never sent again
        elif pending is not None:
            raw, attempt = pending  # the ESME asked us to retry: again in a moment
            self.sim.stats["receipts_refused"] += 1
            if attempt < 5:
                asyncio.get_running_loop().call_later(0.5 * attempt, self.sim.requeue_receipt,
                                                      self.session.system_id, raw, attempt + 1)

    async def handle_bind(self, pdu: Any, seq: int) -> None:
        resp = pdu.command + "_resp"
        if self.session.mode is not None:
            self.send(P.build(resp, seq, status=consts.SMPP_ESME_RALYBND, system_id="smsc-sim"))
            return
        system_id, password = P.text(pdu.system_id), P.text(pdu.password)
        if system_id not in self.sim.accounts:
            status = consts.SMPP_ESME_RINVSYSID
        elif self.sim.accounts[system_id] != password:
            status = consts.SMPP_ESME_RINVPASWD
        else:
            status = consts.SMPP_ESME_ROK
        self.send(P.build(resp, seq, status=status, system_id="smsc-sim"))
        if status == consts.SMPP_ESME_ROK:
            self.session.system_id, self.session.mode = system_id, BIND_COMMANDS[pdu.command]
            self.sim.bound(self)
        else:
            self.sim.stats["bind_refused"] += 1

    async def handle_enquire_link(self, pdu: Any, seq: int) -> None:
        self.sim.stats["enquire_link"] += 1
        self.send(P.build("enquire_link_resp", seq))

    async def handle_unbind(self, pdu: Any, seq: int) -> bool:
        self.sim.stats["unbind"] += 1
        self.send(P.build("unbind_resp", seq))
        self.flush()
        with contextlib.suppress(Exception):
            await self.writer.drain()
        return False

    async def handle_submit_sm(self, pdu: Any, seq: int) -> None:
        if self.session.mode not in ("tx", "trx"):
            self.send(P.build("submit_sm_resp", seq, status=consts.SMPP_ESME_RINVBNDSTS, message_id=""))
            return
        sub = self.sim.record(pdu, self.session.system_id or "")
        status = self.sim.handler.submit_status(self.sim, sub)
        delay = self.sim.handler.response_delay
        if status == NO_ANSWER:
            self.sim.stats["unanswered"] += 1
            return
        if status != consts.SMPP_ESME_ROK:
            self.sim.refused(sub, status)
            raw = P.build("submit_sm_resp", seq, status=status, message_id="")
        else:
            self.sim.accepted(sub)
            raw = P.build("submit_sm_resp", seq, message_id=sub.message_id)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.send, raw)
        else:
            self.send(raw)
        if status == consts.SMPP_ESME_ROK and sub.registered_delivery & consts.SMPP_SMSC_DELIVERY_RECEIPT_BITMASK:
            self.sim.schedule_receipt(sub)

    def deliver(self, raw_without_seq: Callable[[int], bytes], attempt: int = 1) -> None:
        seq = self.next_seq()
        raw = raw_without_seq(seq)
        self.pending_receipts[seq] = (raw, attempt)
        self.send(raw)


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
        self._receipt_timer: asyncio.TimerHandle | None = None
        self._minutes: dict[int, str] = {}  # minute -> YYMMDDhhmm, for receipt dates

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

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
        if self._receipt_timer is None or due < self._receipt_timer.when():
            if self._receipt_timer is not None:
                self._receipt_timer.cancel()
            self._receipt_timer = loop.call_at(due, self._send_due_receipts)

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
        self.stats["receipts"] += 1

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
