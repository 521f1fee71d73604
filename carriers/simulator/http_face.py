"""The simulator's HTTP face: the same SMSC (:class:`~carriers.simulator.smsc.SmscSimulator`: its counts, its
messages, its scenario hooks and receipt delay) reached as the HTTP SMS carriers of ``carriers/http_sms.py``
reach a provider, on a port of its own.

``kannel`` profile, as Kannel 1.4.5's smsbox answers it::

    GET /cgi-bin/sendsms?username=&password=&from=&to=&text=&coding=&charset=&dlr-mask=&dlr-url=
        202 "0: Accepted for delivery"     the message is taken (one submit, however long its text)
        403 "Authorization failed for sendsms"   username/password not an account of the simulator
        400 "Missing receiver number, rejected" / "Missing text, rejected"
        503 "Service unavailable"          the simulator is stopped (POST /stop) or throttles (Kannel's overload)

  ``text`` is bytes in ``charset`` (default UTF-8 for ``coding`` 0, UTF-16BE for 2). When ``dlr-mask`` selects
  the outcome, the ``dlr-url`` is called (GET) the receipt delay later, its placeholders filled as Kannel does:
  ``%d`` status (1 delivered, 2 undelivered, 4 buffered, 16 refused by the SMSC, 34 expired), ``%F`` the SMSC's
  message id, ``%A`` the SMSC's receipt text (``id:... stat:DELIVRD err:000 ...``, or ``NACK/<status>/...``
  when the SMSC refused it), ``%p`` the recipient and ``%P`` the sender (swapped, as in Kannel), ``%T`` Unix
  time, ``%t`` its date, ``%i`` the SMSC id ``sim``, ``%%`` a percent sign. A message the scenario refuses
  (``fail``) is answered 202 and reported at once with status 16, as Kannel reports an SMSC's NACK.

``json`` profile, the shape the json profile's defaults expect (``to_field`` ... ``report_error_path``)::

    POST /json/messages  Authorization: Bearer <password>
         {"to", "from", "text", "status_callback"?: URL, "reference"?: str}
        201 {"id": "<message id>", "status": "queued"}
        401 wrong or missing key, 400 a field missing or not a string, or refused by the scenario (``fail``),
        429 throttled, 503 stopped

  The status report is ``POST status_callback`` with ``{"id", "status", "error_code", "reference"}``; status
  one of delivered, undelivered, rejected, expired, deleted, unknown, accepted.

Both count as the SMPP side counts (``/counts``, ``/messages``, ``/stats`` of the control API; ``/stats`` also
has ``accepted_over_http``), so duplicates and losses through an HTTP carrier are countable the same way; a
report that cannot be delivered is tried again (5 attempts), as the SMPP side sends a deliver_sm again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import web
from smpplib import consts

from carriers.encoding import encode
from carriers.simulator.scenario import NO_ANSWER, Submitted
from carriers.simulator.smsc import SmscSimulator

log = logging.getLogger("carriers.simulator.http")

SENDSMS = "/cgi-bin/sendsms"
JSON_MESSAGES = "/json/messages"
# receipt stat -> Kannel's dlr-url status (%d)
KANNEL_DLR = {"DELIVRD": 1, "UNDELIV": 2, "DELETED": 2, "UNKNOWN": 2, "REJECTD": 2, "EXPIRED": 34, "ACCEPTD": 4,
              "ENROUTE": 4}
KANNEL_NACK = 16
# receipt stat -> the JSON provider's status word
JSON_STATUS = {"DELIVRD": "delivered", "UNDELIV": "undelivered", "REJECTD": "rejected", "EXPIRED": "expired",
               "DELETED": "deleted", "UNKNOWN": "unknown", "ACCEPTD": "accepted", "ENROUTE": "sent"}
KANNEL_CODINGS = {"0": consts.SMPP_ENCODING_DEFAULT, "1": consts.SMPP_ENCODING_BINARY,
                  "2": consts.SMPP_ENCODING_ISO10646}
REPORT_ATTEMPTS = 5
THROTTLED = {consts.SMPP_ESME_RTHROTTLED, consts.SMPP_ESME_RMSGQFUL}


def fill_dlr_url(url: str, values: dict[str, str]) -> str:
    """A dlr-url with Kannel's placeholders (``%d``, ``%F``, ...) replaced by URL-encoded values; a percent sign
    not followed by a known letter stays as it is (as in Kannel)."""
    out, i = [], 0
    while i < len(url):
        letter = url[i + 1] if url[i] == "%" and i + 1 < len(url) else ""
        if letter == "%":
            out.append("%")
            i += 2
        elif letter in values:
            out.append(urllib.parse.quote(values[letter], safe=""))
            i += 2
        else:
            out.append(url[i])
            i += 1
    return "".join(out)


def _kannel(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class HttpFace:
    """The HTTP face of one simulated SMSC, served on ``host:port`` (0: any free port) by :meth:`start`."""

    def __init__(self, sim: SmscSimulator, host: str = "127.0.0.1", port: int = 0):
        self.sim = sim
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(SENDSMS, self.sendsms)
        app.router.add_post(JSON_MESSAGES, self.json_message)
        return app

    async def start(self) -> None:
        # keep-alive connections to the report URLs (the gateway), as many as reports may be on their way
        self._client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                             timeout=aiohttp.ClientTimeout(total=10))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.close()

    # --- what comes in -------------------------------------------------------------------------------------------
    def _submitted(self, system_id: str, source: str, destination: str, data_coding: int, text: str,
                   raw: bytes, registered: bool) -> Submitted:
        return Submitted(message_id="", system_id=system_id, source=source, destination=destination,
                         data_coding=data_coding, esm_class=0, text=text, short_message=raw, concat=None,
                         registered_delivery=1 if registered else 0, label=self.sim.handler.label_of(destination))

    async def _decide(self, sub: Submitted) -> int:
        """The scenario's answer to this submit (0: accepted), after its response delay; counted as SMPP's is."""
        status = self.sim.handler.submit_status(self.sim, sub)
        if status == NO_ANSWER:  # a lost answer has no HTTP equivalent here: taken as throttled (retry later)
            status = consts.SMPP_ESME_RTHROTTLED
        if status:
            self.sim.refused(sub, status)
        else:
            self.sim.accepted(sub)
            self.sim.stats["accepted_over_http"] += 1
        if self.sim.handler.response_delay > 0:
            await asyncio.sleep(self.sim.handler.response_delay)
        return status

    async def sendsms(self, request: web.Request) -> web.Response:
        # the raw query: text may be UTF-16BE bytes, which no UTF-8 reading of the query would keep
        raw = dict(urllib.parse.parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True,
                                          encoding="latin-1"))

        def field(name: str) -> str:
            return raw.get(name, "").encode("latin-1").decode("utf-8", "replace")

        username = field("username")
        if username not in self.sim.accounts or self.sim.accounts[username] != field("password"):
            return _kannel(403, "Authorization failed for sendsms")
        if not field("to"):
            return _kannel(400, "Missing receiver number, rejected")
        if "text" not in raw:
            return _kannel(400, "Missing text, rejected")
        coding = field("coding") or "0"
        if coding not in KANNEL_CODINGS:
            return _kannel(400, "Coding must be 0, 1 or 2, rejected")
        data = raw["text"].encode("latin-1")
        charset = field("charset") or ("UTF-16BE" if coding == "2" else "UTF-8")
        try:
            text = data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            return _kannel(400, f"Text is not {charset}, rejected")
        if not self.sim.listening:
            return _kannel(503, "Service unavailable")
        try:
            mask = int(field("dlr-mask") or "0")
        except ValueError:
            return _kannel(400, "dlr-mask must be a number, rejected")
        dlr_url = field("dlr-url")
        sub = self._submitted(username, field("from"), field("to"), KANNEL_CODINGS[coding], text, data,
                              bool(mask and dlr_url))
        status = await self._decide(sub)
        if status in THROTTLED:
            return _kannel(503, "Sendsms queue full, try again later")
        if status:  # refused by the SMSC: Kannel took it, and reports the NACK
            if mask & KANNEL_NACK and dlr_url:
                answer = f"NACK/0x{status:08X}/Refused by the SMSC"
                self._report(self._kannel_report(dlr_url, sub, KANNEL_NACK, answer))
            return _kannel(202, "0: Accepted for delivery")
        if sub.registered_delivery:
            def report(s: Submitted, stat: str, body: str) -> None:
                code = KANNEL_DLR.get(stat, 2)
                if code & mask:
                    self._report(self._kannel_report(dlr_url, s, code, body))

            sub.report = report
            self.sim.schedule_receipt(sub)
        return _kannel(202, "0: Accepted for delivery")

    async def json_message(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "")
        account = next((system_id for system_id, password in self.sim.accounts.items()
                        if key == f"Bearer {password}"), None)
        if account is None:
            return _json_error(401, "unauthorized", "Authorization: Bearer <password> of a simulator account.")
        try:
            body = await request.json()
        except ValueError:
            return _json_error(400, "invalid_json", "The body is not JSON.")
        if not isinstance(body, dict):
            return _json_error(400, "invalid_json", "The body must be a JSON object.")
        for name in ("to", "from", "text"):
            if not isinstance(body.get(name), str) or (name != "text" and not body[name]):
                return _json_error(400, "missing_field", f"'{name}' must be a string.")
        callback = body.get("status_callback")
        if callback is not None and not (isinstance(callback, str) and callback.startswith(("http://", "https://"))):
            return _json_error(400, "invalid_field", "'status_callback' must be an http(s) URL.")
        if not self.sim.listening:
            return _json_error(503, "unavailable", "The provider is down.")
        encoded = encode(body["text"])
        sub = self._submitted(account, body["from"], body["to"], encoded.data_coding, body["text"],
                              b"".join(encoded.segments), bool(callback))
        status = await self._decide(sub)
        if status in THROTTLED:
            return _json_error(429, "throttled", "Too many messages; try again later.")
        if status:
            return _json_error(400, "refused", f"Refused by the SMSC (command_status 0x{status:08X}).")
        if callback:
            reference = body.get("reference")

            def report(s: Submitted, stat: str, text: str) -> None:
                error = None if stat == "DELIVRD" else (self.sim.handler.receipt_err or "001")
                self._report(self._post_report(callback, {"id": s.message_id, "status": JSON_STATUS.get(stat, stat),
                                                          "error_code": error, "reference": reference}))

            sub.report = report
            self.sim.schedule_receipt(sub)
        return web.json_response({"id": sub.message_id, "status": "queued"}, status=201)

    # --- what goes back ------------------------------------------------------------------------------------------
    def _kannel_report(self, dlr_url: str, sub: Submitted, status: int, answer: str) -> Any:
        now = time.time()
        values = {"d": str(status), "F": sub.message_id, "A": answer, "p": sub.destination, "P": sub.source,
                  "T": str(int(now)), "i": "sim",
                  "t": dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}
        return self._deliver_report("GET", fill_dlr_url(dlr_url, values))

    def _post_report(self, url: str, payload: dict[str, Any]) -> Any:
        return self._deliver_report("POST", url, payload)

    def _report(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_report(self, method: str, url: str, payload: dict[str, Any] | None = None) -> None:
        """One status report, tried again after a connection error or a 5xx (up to REPORT_ATTEMPTS times)."""
        assert self._client is not None
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self._client.request(method, url, json=payload) as resp:
                    await resp.read()
                    if resp.status < 500:
                        if resp.status >= 400:
                            self.sim.stats["reports_refused"] += 1
                            log.info("simulator: a status report was refused (%d)", resp.status)
                        return
            if attempt < REPORT_ATTEMPTS:
                self.sim.stats["reports_retried"] += 1
                await asyncio.sleep(0.5 * attempt)
        self.sim.stats["reports_lost"] += 1
        log.warning("simulator: a status report could not be delivered after %d attempts", REPORT_ATTEMPTS)
