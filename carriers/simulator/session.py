"""One SMPP connection to the SMSC simulator: its state machine, one ``handle_<command>`` method per command, and
its per-connection state (:class:`Session`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from smpplib import consts

from carriers.simulator.scenario import NO_ANSWER
from carriers.smpp import _pdu as P

if TYPE_CHECKING:
    from carriers.simulator.smsc import SmscSimulator

log = logging.getLogger("carriers.simulator.smsc")

BIND_COMMANDS = {"bind_transmitter": "tx", "bind_receiver": "rx", "bind_transceiver": "trx"}
THROTTLED_RETRY_S = 0.2  # a deliver_sm answered ESME_RTHROTTLED goes again after this (not counted as an attempt)


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
        elif pending is not None and status == consts.SMPP_ESME_RTHROTTLED:
            # the ESME asks to slow down, which is no failed attempt: the SMSC keeps it and sends it again shortly
            self.sim.stats["deliveries_throttled"] += 1
            raw, attempt = pending
            asyncio.get_running_loop().call_later(THROTTLED_RETRY_S, self.sim.requeue_receipt,
                                                  self.session.system_id, raw, attempt)
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
