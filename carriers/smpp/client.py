"""An asyncio SMPP 3.4 client (ESME) on smpplib's PDU codec.

One transceiver bind, or a transmitter and a receiver bind; a window of submit_sm in flight matched to their
responses by sequence number; enquire_link keep-alive and answers to the peer's; unbind and generic_nack;
reconnection with exponential backoff and jitter after a dropped connection; a clean unbind on close. Each
bind keeps its state (connecting, bound, unbound while it tries again, closed) with the time it entered it, and
its last few failures (bind refused, connection failed or lost), for the operator's status.

Reading never waits (as smpplib's Client reads: every PDU is taken off the socket and dispatched at once):
submit_sm_resp, enquire_link_resp and the peer's enquire_link and unbind are answered whatever the deliveries do.
Back-pressure falls on new deliver_sm only: each is answered once it is stored (its deliver_sm_resp waits), at
most DELIVER_WINDOW of them at once on one connection; one beyond that is answered ESME_RTHROTTLED at once, and
the SMSC sends it again later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from typing import Any, Awaitable, Callable

from smpplib import consts

from carriers._base import CarrierRejected, CarrierRetryable
from carriers.recent import RecentErrors
from carriers.smpp import _pdu as P

log = logging.getLogger(__name__)

DELIVER_WINDOW = 1000  # deliver_sm handled at once on one connection; beyond it: ESME_RTHROTTLED
DeliverHandler = Callable[[Any], Awaitable[int]]


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


class _Closed(Exception):
    """The connection ended (EOF, unbind, keep-alive failure, garbage)."""


class _Link:
    """One TCP connection and its bind."""

    def __init__(self, client: "SmppClient", reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: str):
        self.client = client
        self.reader, self.writer, self.role = reader, writer, role
        self.pending: dict[int, asyncio.Future] = {}
        self._seq = 0
        self.closed = asyncio.Event()
        self.ended: str | None = None  # why the connection ended, once it has
        self._out: list[bytes] = []  # PDUs sent during this turn of the event loop, written together
        self._loop = asyncio.get_running_loop()
        # deliver_sm are handled side by side (each is answered once it is stored, which takes a write batch):
        # at most DELIVER_WINDOW at once on one connection; more are answered ESME_RTHROTTLED (reading never waits)
        self._handlers: set[asyncio.Task] = set()
        self._throttling = False  # the window is full (logged once per spell)
        self.task: asyncio.Task | None = None  # the read loop, once bound

    def next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def send(self, raw: bytes) -> None:
        if self.writer.is_closing():
            raise _Closed("connection closing")
        if not self._out:
            self._loop.call_soon(self.flush)
        self._out.append(raw)

    def flush(self) -> None:
        """Write the PDUs sent during this turn of the event loop in one go: one system call for a whole window
        of submit_sm (or of deliver_sm_resp) instead of one per PDU."""
        out, self._out = self._out, []
        if out and not self.writer.is_closing():
            self.writer.write(out[0] if len(out) == 1 else b"".join(out))

    async def request(self, command: str, timeout: float, **fields: Any) -> tuple[int, bytes]:
        seq = self.next_seq()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self.pending[seq] = fut
        timer = loop.call_later(timeout, _expire, fut)  # cheaper than wait_for on the hot path
        try:
            self.send(P.build(command, seq, **fields))
            return await fut
        finally:
            timer.cancel()
            self.pending.pop(seq, None)

    def fail_pending(self, exc: Exception) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self.pending.clear()

    async def read_loop(self) -> None:
        try:
            await self._read()
        except _Closed as exc:
            self.ended = str(exc)
            log.info("%s: %s connection ended: %s", self.client.name, self.role, exc, extra=self.client.log_fields)

    async def _read(self) -> None:
        try:
            while True:
                try:
                    raw = await P.read_frame(self.reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    raise _Closed("connection closed by peer") from exc
                except P.FrameError as exc:
                    raise _Closed(str(exc)) from exc
                _, command_id, status, seq = P.header(raw)
                if command_id & P.RESPONSE_BIT:
                    fut = self.pending.get(seq)
                    if fut is not None and not fut.done():
                        fut.set_result((status, raw))
                    continue
                await self._on_request(raw, command_id, seq)
        finally:
            self.closed.set()
            self.fail_pending(CarrierRetryable("The SMPP connection was lost.", code="connection_lost"))

    async def _on_request(self, raw: bytes, command_id: int, seq: int) -> None:
        try:
            pdu = P.parse(raw)
        except ValueError:
            log.warning("%s: undecodable PDU 0x%08x from the SMSC answered with generic_nack", self.client.name,
                        command_id)
            self.send(P.build("generic_nack", seq, status=P.nack_status(command_id)))
            return
        if pdu.command == "enquire_link":
            self.send(P.build("enquire_link_resp", seq))
        elif pdu.command == "unbind":
            if self._handlers:  # answer the deliveries in hand first (bounded: the SMSC resends the rest)
                await asyncio.wait(list(self._handlers), timeout=5)
            self.send(P.build("unbind_resp", seq))
            raise _Closed("the SMSC unbound")
        elif pdu.command == "deliver_sm":
            if len(self._handlers) >= DELIVER_WINDOW:
                # slow down, not failed: the SMSC keeps it and sends it again; reading goes on meanwhile
                self.client.deliveries_throttled += 1
                if not self._throttling:
                    self._throttling = True
                    log.warning("%s: %d deliver_sm waiting to be stored; answering new ones ESME_RTHROTTLED",
                                self.client.name, len(self._handlers), extra=self.client.log_fields)
                self.send(P.build("deliver_sm_resp", seq, status=consts.SMPP_ESME_RTHROTTLED, message_id=""))
                return
            task = asyncio.create_task(self._deliver(pdu, seq))
            self._handlers.add(task)
            task.add_done_callback(self._delivered)
        else:
            self.send(P.build("generic_nack", seq, status=consts.SMPP_ESME_RINVCMDID))

    async def _deliver(self, pdu: Any, seq: int) -> None:
        """Hand a deliver_sm on and answer it: ESME_ROK once the gateway holds it, ESME_RX_T_APPN (the SMSC
        sends it again) when it could not be stored."""
        try:
            status = await self.client.on_deliver_sm(pdu)
        except Exception:
            log.exception("%s: handling deliver_sm failed; asking the SMSC to retry", self.client.name)
            status = consts.SMPP_ESME_RX_T_APPN
        with contextlib.suppress(_Closed):  # the connection ended meanwhile: the SMSC sends it again
            self.send(P.build("deliver_sm_resp", seq, status=status, message_id=""))

    def _delivered(self, task: asyncio.Task) -> None:
        self._handlers.discard(task)
        if self._throttling and len(self._handlers) < DELIVER_WINDOW // 2:
            self._throttling = False

    def drop_deliveries(self) -> None:
        """The connection is gone: the deliver_sm still in hand can no longer be answered, and an SMSC sends what
        it had no answer to again on the next bind. Their handlers end here rather than live on beside those of
        the next connection (which would handle the same messages again): without this, every reconnect under
        load left up to DELIVER_WINDOW handlers, their PDUs and this link behind, for good if they wait on
        something the new connection keeps busy."""
        for task in self._handlers:
            task.cancel()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.flush()
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def _no_deliveries(pdu: Any) -> int:
    return consts.SMPP_ESME_ROK


class _Window:
    """Slots for submit_sm in flight, granted in arrival order. Python 3.11's asyncio.Semaphore checks locked() at
    each acquire, which walks all its waiters: with the window full and the dispatcher's sends queued behind it,
    that was a scan per message. Here taking a free slot is a counter, and a released slot goes straight to the
    first waiter still waiting."""

    def __init__(self, size: int):
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        while self._waiters and self._waiters[0].done():  # cancelled waiters at the head
            self._waiters.popleft()
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted the slot, then cancelled: pass the slot on
                self._release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class SmppClient:
    def __init__(self, host: str, port: int, system_id: str, password: str, *, system_type: str = "",
                 bind_mode: str = "transceiver", window: int = 100, enquire_link_interval: float = 30.0,
                 response_timeout: float = 10.0, reconnect_min: float = 0.1, reconnect_max: float = 30.0,
                 on_deliver_sm: DeliverHandler | None = None, name: str = "smpp", carrier: str = ""):
        if bind_mode not in ("transceiver", "transmitter_receiver"):
            raise ValueError("bind_mode must be transceiver or transmitter_receiver")
        self.host, self.port, self.name = host, port, name
        self.log_fields = {"carrier": carrier or name, "bind": name}  # what its log records carry as fields
        self._system_id, self._password, self._system_type = system_id, password, system_type
        self.bind_mode = bind_mode
        self.window = window
        self.enquire_link_interval = enquire_link_interval
        self.response_timeout = response_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.on_deliver_sm = on_deliver_sm or _no_deliveries
        self._slots = _Window(window)
        self._tx: _Link | None = None
        self._links: list[_Link] = []
        self._bound = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self.binds = 0  # successful binds so far (reconnects show up here)
        self.deliveries_throttled = 0  # deliver_sm answered ESME_RTHROTTLED: the window was full
        self.last_error: str | None = None
        self.state, self.state_since = "connecting", time.time()  # connecting, bound, unbound, closed (epoch s)
        self.errors = RecentErrors()  # bind failures and lost connections

    def __repr__(self) -> str:  # never the password
        return f"SmppClient({self.name!r}, {self.host}:{self.port}, system_id={self._system_id!r})"

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    @property
    def window_in_use(self) -> int:
        """submit_sm in flight on this bind (slots of the window taken)."""
        return self.window - self._slots._free

    def _enter(self, state: str) -> None:
        if state != self.state:
            self.state, self.state_since = state, time.time()

    def _failed(self, code: str, message: str) -> None:
        self.last_error = message
        self.errors.add(code, message)
        self._enter("unbound")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"smpp-{self.name}")
        await self._first_attempt.wait()

    async def _bind(self, command: str, role: str) -> _Link:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.response_timeout)
        P.set_nodelay(writer)
        link = _Link(self, reader, writer, role)
        reader_task = asyncio.create_task(link.read_loop())
        try:
            status, _ = await link.request(command, self.response_timeout, system_id=self._system_id,
                                           password=self._password, system_type=self._system_type,
                                           interface_version=consts.SMPP_VERSION_34, addr_ton=consts.SMPP_TON_UNK,
                                           addr_npi=consts.SMPP_NPI_UNK, address_range="")
        except BaseException:
            reader_task.cancel()
            await link.close()
            raise
        if status != consts.SMPP_ESME_ROK:
            reader_task.cancel()
            await link.close()
            raise CarrierRejected(f"{self.name}: {command} refused with status 0x{status:02x}", code="bind_failed",
                                  command_status=status)
        link.task = reader_task
        return link

    async def _run(self) -> None:
        delay = self.reconnect_min
        while not self._closing:
            links: list[_Link] = []
            waits: list[asyncio.Task] = []  # the keep-alive and the watchers: cancelled however this ends
            try:
                if self.bind_mode == "transceiver":
                    links = [await self._bind("bind_transceiver", "trx")]
                else:
                    links = [await self._bind("bind_transmitter", "tx")]
                    links.append(await self._bind("bind_receiver", "rx"))
                self._links, self._tx = links, links[0]
                self.binds += 1
                self.last_error = None
                self._enter("bound")
                delay = self.reconnect_min
                log.info("%s: bound to %s:%s (%s)", self.name, self.host, self.port, self.bind_mode,
                         extra=self.log_fields)
                self._bound.set()
                self._first_attempt.set()
                keepalive = asyncio.create_task(self._keepalive(links))
                waits = [asyncio.create_task(link.closed.wait()) for link in links] + [keepalive]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not self._closing:
                    lost = [link for link in links if link.closed.is_set()]
                    if lost:
                        self._failed("connection_lost", f"The {lost[0].role} connection was lost: "
                                                        f"{lost[0].ended or 'closed'}.")
                    else:
                        self._failed("keepalive_timeout", "enquire_link went unanswered; reconnecting.")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: try again later
                self._failed(_failure_code(exc), f"{type(exc).__name__}: {exc}")
                log.warning("%s: SMPP connection to %s:%s failed: %s", self.name, self.host, self.port,
                            self.last_error, extra=self.log_fields)
            finally:
                for task in waits:
                    task.cancel()
                self._bound.clear()
                self._first_attempt.set()
                for link in links:
                    if link.task is not None:
                        link.task.cancel()
                    link.drop_deliveries()
                    link.fail_pending(CarrierRetryable("The SMPP connection was lost.", code="connection_lost"))
                    await link.close()
                self._links, self._tx = [], None
            if self._closing:
                break
            await asyncio.sleep(delay * random.uniform(0.5, 1.0) + 0.01)
            delay = min(self.reconnect_max, delay * 2)

    async def _keepalive(self, links: list[_Link]) -> None:
        while True:
            await asyncio.sleep(self.enquire_link_interval)
            for link in links:
                try:
                    await link.request("enquire_link", self.response_timeout)
                except (asyncio.TimeoutError, CarrierRetryable, _Closed):
                    log.warning("%s: enquire_link unanswered; reconnecting", self.name)
                    return

    async def submit_sm(self, **fields: Any) -> str:
        """Submit one message; return the SMSC's message id. Raises CarrierRetryable / CarrierRejected."""
        async with self._slots:
            link = self._tx
            if link is None or not self._bound.is_set():
                raise CarrierRetryable(f"{self.name} is not bound.", code="not_bound")
            try:
                status, raw = await link.request("submit_sm", self.response_timeout, **fields)
            except asyncio.TimeoutError:
                raise CarrierRetryable(f"{self.name}: no submit_sm_resp in time.", code="timeout") from None
            except _Closed:
                raise CarrierRetryable("The SMPP connection was lost.", code="connection_lost") from None
        if status in P.RETRYABLE:
            raise CarrierRetryable(f"{self.name} asked to slow down (0x{status:02x}).", code=P.RETRYABLE[status],
                                   command_status=status)
        if status != consts.SMPP_ESME_ROK:
            raise CarrierRejected(f"{self.name} rejected the message (command_status 0x{status:02x}).",
                                  code="rejected", command_status=status)
        try:
            return P.submit_sm_resp_id(raw)
        except ValueError:
            raise CarrierRejected(f"{self.name} answered with an undecodable submit_sm_resp.",
                                  code="bad_response") from None

    async def close(self) -> None:
        self._closing = True
        for link in list(self._links):
            with contextlib.suppress(Exception):
                await link.request("unbind", 2.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._bound.clear()
        self._enter("closed")


def _failure_code(exc: Exception) -> str:
    """The stable code of a failed connection or bind."""
    if isinstance(exc, CarrierRejected):
        return exc.code  # bind_failed: the SMSC refused the credentials or the bind
    if isinstance(exc, asyncio.TimeoutError):
        return "bind_timeout"
    if isinstance(exc, OSError):
        return "connect_failed"
    return "bind_error"
