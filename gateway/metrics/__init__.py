"""What the gateway exports at ``GET /metrics`` (Prometheus text format): one ``Metrics`` per app, with its own
registry, so that several apps in one process (tests, a bench) never share counters.

The services count what they do through the ``Metrics`` they are given (a throwaway one when none is). What lives
elsewhere is read at scrape time: binds and their windows from the carriers (carriers/ know nothing of this module),
queue depth by status and the webhook backlog (pending deliveries, the oldest one's age) from the database, at
most once every ``DB_CACHE_S`` seconds whatever the scrape rate (the operator's status reads the same:
``backlog``). What each carrier did over the last minute, for the status, is counted in memory (``activity``).
Labels are bounded: carrier names, account ids, number kinds, statuses, route patterns; never a phone number or a
message id.

The app's alerts (gateway.metrics.alerts: the WARNINGs an operator acts on) ride along as ``Metrics.alerts``, so
that every service that counts can also warn, through the one object it is given.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.metrics.activity import Activity
from gateway.metrics.alerts import Alerts
from gateway.settings import AlertSettings
from gateway.store.models import Message, MessageStatus, WebhookDelivery
from registry.db import utcnow
from registry.models import Number

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DB_CACHE_S = 5.0  # queue depth and the webhook backlog are read from the database at most this often
NO_CARRIER = "none"  # the carrier label of what no carrier took (refused before any submit)
UNKNOWN_KIND = "unknown"  # a sending number the gateway does not hold (or not known yet)

# submit answers take milliseconds to seconds; receipts seconds to hours
SUBMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECEIPT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
RENDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's metrics and its registry."""

    def __init__(self, alerts: AlertSettings | None = None) -> None:
        self.alerts = Alerts(alerts)
        self.registry = r = CollectorRegistry()
        msg = ("carrier", "account", "number_kind")
        self.accepted = Counter("gateway_messages_accepted_total", "Messages accepted by the API.",
                                ("account", "number_kind"), registry=r)
        self.submitted = Counter("gateway_messages_submitted_total", "Messages a carrier took (submit answered OK).",
                                 msg, registry=r)
        self.delivered = Counter("gateway_messages_delivered_total", "Messages with a delivered receipt.",
                                 msg, registry=r)
        self.undelivered = Counter("gateway_messages_undelivered_total", "Messages with an undelivered receipt.",
                                   msg, registry=r)
        self.failed = Counter("gateway_messages_failed_total", "Messages refused for good by a carrier.",
                              msg, registry=r)
        self.expired = Counter("gateway_messages_expired_total", "Messages whose time to live ran out.",
                               msg, registry=r)
        self.submit_seconds = Histogram("gateway_submit_answer_seconds",
                                        "Time from submit to the carrier's answer, per message.", ("carrier",),
                                        buckets=SUBMIT_BUCKETS, registry=r)
        self.receipt_seconds = Histogram("gateway_receipt_latency_seconds",
                                         "Time from a message's submit to its final receipt.", ("carrier",),
                                         buckets=RECEIPT_BUCKETS, registry=r)
        self.throttles = Counter("gateway_carrier_throttles_total",
                                 "Submits a carrier refused as throttled (or its queue full).", ("carrier",),
                                 registry=r)
        self.retries = Counter("gateway_send_retries_total", "Sends that will be tried again, by carrier.",
                               ("carrier",), registry=r)
        self.unmatched = Counter("gateway_receipts_unmatched_total",
                                 "Receipts that matched no message part when they came.", ("carrier",), registry=r)
        self.inbound = Counter("gateway_inbound_messages_total", "Inbound messages by the keyword action taken.",
                               ("action",), registry=r)
        self.inbound_repeats = Counter("gateway_inbound_repeats_total",
                                       "Inbound messages or parts a carrier handed again within inbound_dedupe_s "
                                       "(acknowledged, not handled twice).", ("carrier",), registry=r)
        self.webhook_deliveries = Counter("gateway_webhook_deliveries_total",
                                          "Webhook delivery attempts the receiver accepted.", registry=r)
        self.webhook_failures = Counter("gateway_webhook_failures_total",
                                        "Webhook delivery attempts that failed.", registry=r)
        self.pacing_waits = Counter("gateway_pacing_waits_total",
                                    "Sends held back to keep a pacing limit.", registry=r)
        self.voice_renders = Counter("gateway_voice_renders_total", "Voice messages rendered to audio.",
                                     registry=r)
        self.voice_cache_hits = Counter("gateway_voice_cache_hits_total",
                                        "Voice renders served from the audio cache.", registry=r)
        self.voice_calls = Counter("gateway_voice_calls_total", "Voice calls ended, by outcome.", ("outcome",),
                                   registry=r)
        self.http_requests = Counter("gateway_http_requests_total", "HTTP requests by route pattern and status.",
                                     ("method", "route", "status"), registry=r)
        self.number_kinds: dict[str, str] = {}  # the gateway's numbers and their kind (read with the queue depth)
        self.activity = Activity()  # each carrier's last minute, for the operator's status
        self._db: dict[str, Any] = {"queue": {}, "webhook_oldest_s": 0.0, "webhook_pending": 0}
        self.read_at = float("-inf")  # when the database was last read (time.monotonic)

    def kind(self, number: str) -> str:
        """The kind of a sending number (long_code, ten_dlc, short_code, toll_free), or ``unknown``."""
        return self.number_kinds.get(number, UNKNOWN_KIND)

    def message(self, counter: Counter, carrier: str | None, account: int, source: str) -> None:
        """Count one message on one of the per-message counters (an expired one is an alert too)."""
        counter.labels(carrier or NO_CARRIER, str(account), self.kind(source)).inc()
        if counter is self.expired:
            self.alerts.expired(account)

    def final(self, status: str, row: Any, now: dt.datetime | None = None) -> None:
        """Count a message that reached a final status (``row``: its account_id, carrier and source, and with
        ``now`` its sent_at, for the receipt latency)."""
        counter = {"delivered": self.delivered, "undelivered": self.undelivered, "failed": self.failed,
                   "expired": self.expired}.get(status)
        if counter is not None:
            self.message(counter, row.carrier, row.account_id, row.source)
        if now is not None and row.sent_at is not None and row.carrier:
            self.receipt_seconds.labels(row.carrier).observe(max(0.0, (now - row.sent_at).total_seconds()))

    def count_accepted(self, stored: Iterable[Any]) -> None:
        """Count the messages an accept stored for sending (``Accepted`` outcomes; not those stored blocked), and
        remember their numbers' kinds for the counts that follow."""
        for accepted in stored:
            if accepted.blocked is None:
                message = accepted.message
                self.number_kinds[message.source] = accepted.number_kind
                self.accepted.labels(str(message.account_id), accepted.number_kind).inc()

    def watch_carriers(self, pool: Callable[[], Any]) -> None:
        """Read bind states and windows from the app's carrier pool (``pool()``: None until it is built)."""
        self.registry.register(_Binds(pool))

    def watch_database(self) -> None:
        self.registry.register(_Database(self._db))

    def throttled(self, carrier: str) -> None:
        """A submit the carrier answered "slow down": counted, and part of the carrier's throttling spell."""
        self.throttles.labels(carrier).inc()
        self.alerts.throttled(carrier)

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Read queue depth, the webhook backlog and the numbers' kinds, unless they were read moments ago."""
        now = time.monotonic()
        if now - self.read_at < DB_CACHE_S:
            return
        self.read_at = now
        async with sessionmaker() as session:
            rows = await session.execute(select(Message.status, func.count()).group_by(Message.status)
                                         .where(Message.status.in_((MessageStatus.QUEUED.value,
                                                                    MessageStatus.SENDING.value,
                                                                    MessageStatus.SENT.value))))
            queue = {status.value: 0 for status in (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT)}
            queue.update({status: count for status, count in rows})
            pending, oldest = (await session.execute(
                select(func.count(), func.min(WebhookDelivery.created_at))
                .where(WebhookDelivery.status == "pending"))).one()
            kinds = {number: kind for number, kind in await session.execute(select(Number.number, Number.type))}
        self._db["queue"] = queue
        self._db["webhook_oldest_s"] = max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0
        self._db["webhook_pending"] = pending
        self.number_kinds = kinds

    def backlog(self) -> dict[str, Any]:
        """Queue depth by status and the webhook backlog as last read (``refresh``), and how old that read is."""
        return {"queue": dict(self._db["queue"]),
                "webhooks": {"pending": self._db["webhook_pending"],
                             "oldest_pending_age_s": round(self._db["webhook_oldest_s"], 3)},
                "read_age_s": (round(max(0.0, time.monotonic() - self.read_at), 3)
                               if self.read_at != float("-inf") else None)}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Binds(Collector):
    """Bind state (1 bound, 0 down) and submits in flight per bind, read from the carriers at scrape time."""

    def __init__(self, pool: Callable[[], Any]):
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("gateway_bind_up", "1 when the bind (or a bindless carrier) is ready, 0 when down.",
                               labels=("carrier", "bind"))
        window = GaugeMetricFamily("gateway_bind_window_in_use", "submit_sm in flight on the bind.",
                                   labels=("carrier", "bind"))
        size = GaugeMetricFamily("gateway_bind_window_size", "The bind's window (submits allowed in flight).",
                                 labels=("carrier", "bind"))
        pool = self._pool()
        for carrier in getattr(pool, "carriers", ()):
            clients = getattr(carrier, "clients", None)
            if not clients:
                up.add_metric((carrier.name, carrier.name), 1.0 if carrier.ready else 0.0)
                continue
            for client in clients:
                up.add_metric((carrier.name, client.name), 1.0 if client.bound else 0.0)
                window.add_metric((carrier.name, client.name), float(client.window_in_use))
                size.add_metric((carrier.name, client.name), float(client.window))
        yield from (up, window, size)


class _Database(Collector):
    """Queue depth by status and the oldest pending webhook's age, as last read (Metrics.refresh)."""

    def __init__(self, values: dict[str, Any]):
        self._values = values

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("gateway_queue_messages", "Messages not yet final, by status.", labels=("status",))
        for status, count in sorted(self._values["queue"].items()):
            depth.add_metric((status,), float(count))
        yield depth
        yield GaugeMetricFamily("gateway_webhook_oldest_pending_seconds",
                                "Age of the oldest webhook delivery still pending (0 when none).",
                                value=float(self._values["webhook_oldest_s"]))
        yield GaugeMetricFamily("gateway_webhook_pending_deliveries", "Webhook deliveries still pending.",
                                value=float(self._values["webhook_pending"]))
