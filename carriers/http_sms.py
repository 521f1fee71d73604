"""HTTP SMS carriers: one :class:`Carrier` for SMS providers reached over HTTP, in one of two profiles.

``kannel``
    Kannel's smsbox ``GET /cgi-bin/sendsms?username=&password=&from=&to=&text=&coding=&charset=&dlr-mask=&dlr-url=``.
    The whole text goes in one request; Kannel splits it into parts (at most its sendsms-user ``max-messages``,
    beyond which it cuts the text silently: ``max_parts`` here refuses such a message first). GSM-7 text goes as
    UTF-8 with coding=0, anything else as UTF-16BE bytes with coding=2. Kannel answers ``202 0: Accepted for
    delivery`` without an id, so the carrier makes one (a reference) and puts it in the dlr-url, on which Kannel
    calls back with the status (``%d``), the SMSC's id (``%F``) and answer (``%A``); for a long message Kannel
    asks a receipt for the first part only: the message is one submit here. A form-encoded POST is refused by
    Kannel, hence GET; its listener's backlog is 10 connections, hence keep-alive connections, at most
    ``concurrency`` of them.

``json``
    A generic JSON API: ``POST url`` with an auth header and a JSON object whose field names are configured
    (:class:`JsonFields`); the provider's message id is read from its answer at a JSON pointer (RFC 6901), and
    status reports (JSON, form-encoded or query parameters) are read the same way, their statuses mapped to
    receipt stats by a configured table.

HTTP answers map to the SMPP outcomes: 2xx taken; 429, 5xx, timeouts and connection errors CarrierRetryable;
other 4xx CarrierRejected. Status reports reach the gateway through :meth:`HttpSmsCarrier.report`, which the
gateway's callback route calls once it has authenticated the request; the receipt then takes the same path as an
SMPP receipt (``CarrierEvents.on_receipt``).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import aiohttp
from smpplib import consts

from carriers import gsm7
from carriers._base import (
    Carrier,
    CarrierEvents,
    CarrierRejected,
    CarrierRetryable,
    InboundSms,
    OutboundSms,
    Receipt,
    SubmitResult,
)
from carriers.smpp.receipts import parse_receipt_text

log = logging.getLogger(__name__)

PROFILES = ("kannel", "json")
# Kannel's dlr-url status (%d) -> receipt stat: 1 delivered, 2 undelivered, 4 buffered, 8 SMSC ack, 16 SMSC nack,
# 34 expired (Kannel 1.4.5)
KANNEL_STATUS = {1: "DELIVRD", 2: "UNDELIV", 4: "ENROUTE", 8: "ACCEPTD", 16: "REJECTD", 34: "EXPIRED"}
KANNEL_DLR_MASK = 1 | 2 | 16  # final outcomes only: delivered, undelivered (and expired), refused by the SMSC
# the query parameters the carrier adds to the callback URL it gives Kannel as dlr-url, with Kannel's placeholders
KANNEL_DLR_PARAMS = {"ref": None, "status": "%d", "smsc_id": "%F", "answer": "%A"}
# Kannel's sms-service get-url placeholders for an inbound message: sender, receiver, its text as it came (%a
# would join its words with single spaces, which breaks UTF-16 bytes), coding
KANNEL_INBOUND_PARAMS = {"from": "%p", "to": "%P", "text": "%b", "coding": "%c"}
# a typical provider's status words -> receipt stats (final: DELIVRD, UNDELIV, REJECTD, EXPIRED, DELETED, UNKNOWN)
DEFAULT_STATUS_MAP = {"queued": "ACCEPTD", "accepted": "ACCEPTD", "sending": "ENROUTE", "sent": "ENROUTE",
                      "enroute": "ENROUTE", "delivered": "DELIVRD", "undelivered": "UNDELIV", "failed": "UNDELIV",
                      "rejected": "REJECTD", "expired": "EXPIRED", "deleted": "DELETED", "unknown": "UNKNOWN"}
RECEIPT_STATS = {"DELIVRD", "UNDELIV", "REJECTD", "EXPIRED", "DELETED", "UNKNOWN", "ACCEPTD", "ENROUTE"}


class ReportError(ValueError):
    """A status report the carrier cannot read (no id, unknown status); ``code`` is stable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def pointer(document: Any, path: str) -> Any:
    """The value at a JSON pointer (RFC 6901: ``/messages/0/id``; "" is the whole document), or None."""
    if path == "":
        return document
    if not path.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {path!r}")
    node = document
    for token in path[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if node is None:
            return None
    return node


@dataclass(frozen=True, slots=True)
class JsonFields:
    """Where things are in a JSON provider's requests, answers and status reports."""

    to: str = "to"
    from_: str = "from"
    text: str = "text"
    reference: str = ""  # our reference for the message ("": not sent)
    callback: str = "status_callback"  # the status report URL ("": configured at the provider instead)
    id_path: str = "/id"  # JSON pointer of the provider's message id in its answer
    report_id_path: str = "/id"  # ... of that id in a status report
    report_status_path: str = "/status"
    report_error_path: str = "/error_code"  # "": reports carry no error code
    status_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))

    def __post_init__(self) -> None:
        for path in (self.id_path, self.report_id_path, self.report_status_path, self.report_error_path):
            if path and not path.startswith("/"):
                raise ValueError(f"a JSON pointer starts with '/': {path!r}")
        bad = {v for v in self.status_map.values() if v not in RECEIPT_STATS}
        if bad:
            raise ValueError(f"status_map: unknown receipt stat(s) {', '.join(sorted(bad))}")


def message_text(message: OutboundSms) -> str:
    """The text of a message from its segments, as the dispatcher encoded it."""
    payload = b"".join(s.payload for s in message.segments)
    if message.data_coding == consts.SMPP_ENCODING_ISO10646:
        return payload.decode("utf-16-be")
    if message.data_coding == consts.SMPP_ENCODING_ISO88591:
        return payload.decode("latin-1")
    return gsm7.decode(payload)


def _describe(exc: aiohttp.ClientError) -> str:
    """What went wrong, without the request's URL (which holds Kannel's password and the signed callback URL)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or type(exc.os_error).__name__})"
    return type(exc).__name__


class HttpSmsCarrier(Carrier):
    """One HTTP SMS provider. ``callback_url`` gives the (signed) URL the provider reports statuses to."""

    kind = "http"

    def __init__(self, name: str, profile: str, url: str, *, username: str = "", password: str = "",
                 auth_header: str = "Authorization", auth_value: str = "", fields: JsonFields | None = None,
                 callback_url: Callable[[], str] | None = None, timeout_s: float = 10.0, concurrency: int = 10,
                 max_parts: int = 11, dlr_mask: int = KANNEL_DLR_MASK):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        if concurrency < 1 or max_parts < 1 or timeout_s <= 0:
            raise ValueError("concurrency and max_parts must be at least 1, timeout_s above 0")
        self.name = name
        self.profile = profile
        self.url = url
        self._username, self._password = username, password
        self._auth_header, self._auth_value = auth_header, auth_value
        self.fields = fields or JsonFields()
        self._callback_url = callback_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.concurrency = concurrency
        self.max_parts = max_parts
        self.dlr_mask = dlr_mask
        self._slots = asyncio.Semaphore(concurrency)  # waiting for a slot is not part of the request's timeout
        self._session: aiohttp.ClientSession | None = None
        self._events: CarrierEvents | None = None
        self._ready = False

    def __repr__(self) -> str:  # never the password or the auth value
        return f"HttpSmsCarrier({self.name!r}, {self.profile!r}, {self.url!r})"

    def set_events(self, events: CarrierEvents) -> None:
        self._events = events

    async def start(self) -> None:
        if self._session is None:
            # keep-alive connections, as many as requests may be in flight (Kannel's backlog is 10)
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector)
        self._ready = True

    @property
    def ready(self) -> bool:
        return self._ready

    def submit_count(self, message: OutboundSms) -> int:
        return 1  # the provider splits a long text itself; one request, one id, one receipt

    async def send_sms(self, message: OutboundSms) -> SubmitResult:
        if self._session is None or not self._ready:
            raise CarrierRetryable(f"{self.name} is not started.", code="not_bound")
        if len(message.segments) > self.max_parts:
            raise CarrierRejected(f"The message has {len(message.segments)} parts; {self.name} takes at most "
                                  f"{self.max_parts} (max_parts).", code="too_many_parts")
        reference = uuid.uuid4().hex
        async with self._slots:
            if self.profile == "kannel":
                await self._request("GET", self._kannel_url(message, reference))
                return SubmitResult((reference,))
            answer = await self._request("POST", self.url, json=self._json_body(message, reference),
                                         headers={self._auth_header: self._auth_value} if self._auth_value else None)
        try:
            provider_id = pointer(answer, self.fields.id_path)
        except ValueError:
            provider_id = None
        if not isinstance(provider_id, (str, int)) or isinstance(provider_id, bool) or str(provider_id) == "":
            # it took the message (2xx) but said no id: no receipt can ever match it, yet sending again may
            # duplicate it; a permanent answer, with the reason
            raise CarrierRejected(f"{self.name} answered without a message id at {self.fields.id_path}.",
                                  code="bad_response")
        return SubmitResult((str(provider_id),))

    def _kannel_url(self, message: OutboundSms, reference: str) -> str:
        text = message_text(message)
        query: dict[str, Any] = {"username": self._username, "password": self._password,
                                 "from": message.source, "to": message.destination}
        if message.data_coding == consts.SMPP_ENCODING_DEFAULT:
            query.update(text=text.encode("utf-8"), coding=0, charset="UTF-8")
        else:  # UCS-2 on the air: the text as UTF-16BE bytes, percent-encoded
            query.update(text=text.encode("utf-16-be"), coding=2, charset="UTF-16BE")
        if message.registered_delivery and self._callback_url is not None:
            params = dict(KANNEL_DLR_PARAMS, ref=reference)
            # the placeholders stay literal (Kannel replaces them); the reference is hex, the rest ours
            tail = "&".join(f"{k}={v}" for k, v in params.items())
            base = self._callback_url()
            query.update({"dlr-mask": self.dlr_mask, "dlr-url": base + ("&" if "?" in base else "?") + tail})
        return self.url + ("&" if "?" in self.url else "?") + urllib.parse.urlencode(query)

    def _json_body(self, message: OutboundSms, reference: str) -> dict[str, Any]:
        f = self.fields
        body: dict[str, Any] = {f.to: message.destination, f.from_: message.source, f.text: message_text(message)}
        if f.reference:
            body[f.reference] = reference
        if f.callback and message.registered_delivery and self._callback_url is not None:
            body[f.callback] = self._callback_url()
        return body

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(method, url, timeout=self._timeout, **kwargs) as resp:
                text = await resp.text(errors="replace")
                if resp.status == 429 or resp.status >= 500:
                    raise CarrierRetryable(f"{self.name} answered {resp.status}: {text[:200]}",
                                           code="throttled" if resp.status in (429, 503) else "carrier_unavailable")
                if resp.status >= 400 or resp.status < 200:
                    raise CarrierRejected(f"{self.name} refused the message ({resp.status}): {text[:200]}",
                                          code=f"http_{resp.status}")
                if self.profile == "kannel":
                    return text
                try:
                    return await resp.json(content_type=None)
                except ValueError:
                    return None
        except asyncio.TimeoutError as exc:
            raise CarrierRetryable(f"{self.name} did not answer within {self._timeout.total} s.",
                                   code="timeout") from exc
        except aiohttp.ClientError as exc:
            raise CarrierRetryable(f"{self.name} is unreachable: {_describe(exc)}", code="carrier_unreachable") from exc

    # --- what comes back ------------------------------------------------------------------------------------------
    def read_report(self, data: Mapping[str, Any]) -> Receipt | None:
        """A receipt from a status report's fields (the callback's query, form or JSON body), or None for a
        status the mapping does not know (logged, then ignored). Raises ReportError when it names no message."""
        if self.profile == "kannel":
            ref = str(data.get("ref") or "")
            try:
                status = int(str(data.get("status", "")))
            except ValueError:
                raise ReportError("invalid_report", "A Kannel report's status is a number.") from None
            answer = str(data.get("answer") or "")
            stat = KANNEL_STATUS.get(status) or ("DELIVRD" if status & 1 else "UNDELIV" if status & 2
                                                  else "REJECTD" if status & 16 else None)
            error = parse_receipt_text(answer).get("err")
            if status & 16 and answer.upper().startswith("NACK/"):  # NACK/<command_status>/<text>
                error = answer.split("/")[1]
        else:
            f = self.fields
            ref = pointer(data, f.report_id_path)
            ref = "" if ref is None or isinstance(ref, (dict, list, bool)) else str(ref)
            raw_status = pointer(data, f.report_status_path)
            status = str(raw_status) if raw_status is not None else ""
            stat = f.status_map.get(status) or f.status_map.get(status.lower())
            error_value = pointer(data, f.report_error_path) if f.report_error_path else None
            error = None if error_value is None or isinstance(error_value, (dict, list)) else str(error_value)
            answer = ""
        if not ref:
            raise ReportError("invalid_report", "The report names no message.")
        if stat is None:
            log.warning("%s: status report with unknown status %r for %s ignored", self.name, status, ref)
            return None
        return Receipt(ref, stat, error[:32] if error else None, raw=answer[:500])

    async def report(self, data: Mapping[str, Any]) -> Receipt | None:
        """Read a status report and hand its receipt to the gateway; returns once it is stored."""
        receipt = self.read_report(data)
        if receipt is not None:
            assert self._events is not None, "set_events() first"
            await self._events.on_receipt(self.name, receipt)
        return receipt

    async def inbound(self, data: Mapping[str, Any]) -> InboundSms:
        """A mobile-originated message from Kannel's sms-service (``KANNEL_INBOUND_PARAMS``), handed on. Its text
        is UTF-8, or UTF-16BE bytes when its coding is 2 (UCS-2); bytes that were not UTF-8 arrive here as
        surrogate escapes (``errors="surrogateescape"``)."""
        source, destination, text = (str(data.get(k) or "") for k in ("from", "to", "text"))
        if not source or not destination:
            raise ReportError("invalid_inbound", "An inbound message needs from and to.")
        raw = text.encode("utf-8", "surrogateescape")
        coding = str(data.get("coding") or "0")
        text = raw.decode("utf-16-be", "replace") if coding == "2" else raw.decode("utf-8", "replace")
        message = InboundSms(source=source, destination=destination, text=text,
                             data_coding=consts.SMPP_ENCODING_ISO10646 if coding == "2" else 0)
        assert self._events is not None, "set_events() first"
        await self._events.on_inbound(self.name, message)
        return message

    async def close(self) -> None:
        self._ready = False
        if self._session is not None:
            await self._session.close()
            self._session = None
