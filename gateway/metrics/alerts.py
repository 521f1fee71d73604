"""The WARNINGs an operator acts on, rate-limited so that a storm gives a few lines rather than thousands.

Every alert is logged by the logger ``gateway.alerts`` with the fields ``alert`` (its kind, one of KINDS) and
``subject`` (the carrier, bind, account and webhook host, ...), and the last ``[alerts] recent`` of them are kept
in memory for the status page (``Alerts.recent()``). They come in two shapes:

- a *note* (webhook receivers failing, messages expired, receipts still unmatched, a task failing): the first of
  a kind and subject is logged at once; its repeats within ``interval_s`` are counted and summed up in one line
  when the interval ends ("messages expired (account 3): 1,234 more in the last 60 s"); an interval without any
  ends the run, and the next one is logged at once again.
- a *spell* (a carrier throttling, a bind down, the queue over its threshold, a carrier's undelivered receipts
  over their rate, the database or Redis unreachable): one line when it begins, one when it ends that says how
  long it lasted and how many times it happened meanwhile.

The services tell ``Alerts`` what happens (in-memory calls, no I/O); the monitor (gateway.metrics.monitor) looks
at what is a state (binds, queue depth, the database, Redis) every ``sample_s`` and calls ``tick``, which ends
the intervals and the spells that are over. Nothing here ever logs a URL's path or query, or a secret: webhook
receivers are named by host and port, errors by their type and first line with any credentials in a URL masked.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import exc as sa_exc
from yarl import URL

from gateway.settings import AlertSettings

log = logging.getLogger("gateway.alerts")

# the kinds of alert (the field ``alert`` of their log records)
THROTTLING = "throttling"  # spell, per carrier
BIND_DOWN = "bind_down"  # spell, per bind
BIND_FLAP = "bind_flap"  # note: lost and bound again between two looks
EXPIRED = "expired"  # note, per account
UNDELIVERED = "undelivered"  # spell, per carrier
UNMATCHED = "unmatched"  # note, per carrier (and the receipts dropped)
RECEIPT_ID_BASE = "receipt_id_base"  # note, per carrier
RECEIPT_TIMEOUT = "receipt_timeout"  # note
WEBHOOK_FAILING = "webhook_failing"  # note, per account and receiver host
WEBHOOK_GIVEN_UP = "webhook_given_up"  # note, per account and receiver host
QUEUE = "queue"  # spell
UNREACHABLE = "unreachable"  # spell, subject "database" or "redis"
DATABASE_BUSY = "database_busy"  # note, per route
CARRIER_HEALTH = "carrier_health"  # each change of a carrier's health
INBOUND_UNROUTED = "inbound_unrouted"  # note, per number
ERROR = "error"  # note, per task: a failure that is not an outage
KINDS = (THROTTLING, BIND_DOWN, BIND_FLAP, EXPIRED, UNDELIVERED, UNMATCHED, RECEIPT_ID_BASE, RECEIPT_TIMEOUT,
         WEBHOOK_FAILING, WEBHOOK_GIVEN_UP, QUEUE, UNREACHABLE, DATABASE_BUSY, CARRIER_HEALTH, INBOUND_UNROUTED,
         ERROR)

QUEUE_BACK_UNDER = 0.9  # a queue over its threshold is back once under this share of it (no line per wobble)
BIND_GRACE_S = 10.0  # a bind never seen up is reported down once it has been down this long (not while it binds)
OUTAGES = {"database": "the database", "redis": "Redis"}
_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")  # user:password@ in a URL
# what asyncpg raises when the server is gone (its classes are told by name: asyncpg is only there for PostgreSQL)
_PG_CONNECTION_ERRORS = {"PostgresConnectionError", "ConnectionDoesNotExistError", "CannotConnectNowError",
                         "ConnectionFailureError", "InterfaceError"}
_GONE = ("unable to open database", "connection is closed", "connection was closed", "disk i/o error",
         "the database system is", "connection refused", "connect call failed")


def span(seconds: float) -> str:
    """A duration as people read it: 0.4 s, 14 s, 3 min, 2.5 h."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe(exc: BaseException) -> str:
    """An error as its type and the first line of its text (the driver's, for a database error: never the SQL),
    with the credentials of any URL in it masked."""
    inner = getattr(exc, "orig", None)
    shown = inner if isinstance(inner, BaseException) else exc
    lines = str(shown).strip().splitlines()
    text = _CREDENTIALS.sub(r"\1***@", lines[0][:200]) if lines else ""
    name = type(exc).__name__
    if shown is not exc and type(shown).__name__ != name:
        name += f" ({type(shown).__name__})"
    return f"{name}: {text}" if text else name


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 10 and all(exc is not s for s in seen):
        seen.append(exc)
        orig = getattr(exc, "orig", None)
        exc = orig if isinstance(orig, BaseException) else exc.__cause__ or exc.__context__
    return seen


def outage(exc: BaseException) -> str | None:
    """``"redis"`` or ``"database"`` when the error says that one cannot be reached (a refused or dropped
    connection, a file that cannot be opened), None for any other failure (a locked SQLite, a pool timeout, a
    bug). Told from the exception, its cause and, for a database error, the driver's error."""
    chain = _chain(exc)
    if any(type(e).__module__.startswith("redis") for e in chain):
        return "redis" if any("Connection" in type(e).__name__ or "Timeout" in type(e).__name__
                              or isinstance(e, OSError) for e in chain) else None
    for e in chain:
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return "database"
        if isinstance(e, (OSError, TimeoutError)) and not isinstance(e, sa_exc.TimeoutError):
            return "database"
        if type(e).__module__.startswith("asyncpg") and {c.__name__ for c in type(e).__mro__} & _PG_CONNECTION_ERRORS:
            return "database"
        if type(e).__module__.startswith(("sqlite3", "aiosqlite", "asyncpg", "sqlalchemy")):
            if any(words in str(e).lower() for words in _GONE):
                return "database"
    return None


@functools.lru_cache(maxsize=1024)  # a storm of failures is many to a few receivers
def receiver_host(url: str) -> str:
    """A webhook URL's host (and port), without its scheme, credentials, path or query."""
    try:
        parsed = URL(url)
        host = parsed.host or "?"
    except (ValueError, TypeError):
        return "?"
    port = parsed.explicit_port
    return f"[{host}]:{port}" if port and ":" in host else f"{host}:{port}" if port else host


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert line as it was logged."""

    at: dt.datetime  # UTC
    level: str  # WARNING, ERROR
    kind: str
    subject: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"at": self.at.isoformat(timespec="seconds").replace("+00:00", "Z"), "level": self.level,
                "kind": self.kind, "subject": self.subject, "message": self.message}


@dataclass(slots=True)
class _Run:
    """A note's current interval: when it began and the repeats since."""

    started: float
    what: str
    level: int
    fields: dict[str, Any]
    repeats: int = 0


@dataclass(slots=True)
class Spell:
    """Something going on: since when, the last time it happened, how many times, the most it reached."""

    started: float
    last: float
    count: int = 1
    peak: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Bind:
    up: bool
    binds: int | None  # successful binds so far (an SMPP bind's reconnects show up here), None when not told
    since: float  # when it was last seen going down (or first seen, down)
    seen: float  # when it was last looked at


class Alerts:
    """The app's alerts: what services report, the spells going on, and the recent lines."""

    def __init__(self, settings: AlertSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or AlertSettings()
        self._clock = clock
        self._recent: collections.deque[Alert] = collections.deque(maxlen=self.settings.recent)
        self._runs: dict[tuple[str, str], _Run] = {}
        self.spells: dict[tuple[str, str], Spell] = {}
        self._binds: dict[tuple[str, str], _Bind] = {}
        self._receipts: dict[str, list[int]] = {}  # carrier -> [final receipts, undelivered] in this interval
        self._receipts_since = clock()
        self._started = clock()

    # --- what the status page reads ------------------------------------------------------------------------
    def recent(self, limit: int | None = None) -> list[Alert]:
        """The alerts logged lately, the newest first."""
        out = list(reversed(self._recent))
        return out if limit is None else out[:limit]

    def active(self, kind: str, subject: str) -> bool:
        return (kind, subject) in self.spells

    # --- the two shapes ------------------------------------------------------------------------------------
    def event(self, kind: str, subject: str, message: str, *, level: int = logging.WARNING,
              fields: dict[str, Any] | None = None, exc_info: BaseException | None = None) -> None:
        """Log an alert now (a change of state: no rate limit)."""
        log.log(level, "%s", message, exc_info=exc_info, extra={"alert": kind, "subject": subject, **(fields or {})})
        self._recent.append(Alert(dt.datetime.now(dt.timezone.utc), logging.getLevelName(level), kind, subject,
                                  message))

    def note(self, kind: str, subject: str, message: str, *, what: str, n: int = 1, level: int = logging.WARNING,
             fields: dict[str, Any] | None = None, exc_info: BaseException | None = None) -> None:
        """The first of its kind and subject is logged now; ``n`` repeats within the interval are counted and
        summed up when it ends: "<what> (<subject>): <repeats> more in the last <interval>"."""
        run = self._runs.get((kind, subject))
        if run is not None:
            run.repeats += n
            return
        self._runs[(kind, subject)] = _Run(self._clock(), what, level, fields or {})
        self.event(kind, subject, message, level=level, fields=fields, exc_info=exc_info)

    def begin(self, kind: str, subject: str, message: str, *, fields: dict[str, Any] | None = None,
              n: int = 1) -> Spell:
        """A spell begins (logged) or goes on (counted)."""
        now = self._clock()
        spell = self.spells.get((kind, subject))
        if spell is not None:
            spell.count += n
            spell.last = now
            return spell
        spell = self.spells[(kind, subject)] = Spell(now, now, n, fields=fields or {})
        self.event(kind, subject, message, fields=fields)
        return spell

    def end(self, kind: str, subject: str, message: Callable[[Spell, float], str]) -> None:
        """A spell is over, if one is going on: ``message(spell, now)`` says how long and how many."""
        spell = self.spells.pop((kind, subject), None)
        if spell is not None:
            self.event(kind, subject, message(spell, self._clock()), fields=spell.fields)

    def tick(self) -> None:
        """End what is over: intervals (their summary lines), throttling spells quiet long enough, and the
        interval of receipts (a carrier's undelivered share judged)."""
        now = self._clock()
        interval = self.settings.interval_s
        for key, run in list(self._runs.items()):
            if now - run.started >= interval:
                self._summary(key, run, now)
        for (kind, carrier), spell in list(self.spells.items()):
            if kind == THROTTLING and now - spell.last >= self.settings.throttle_quiet_s:
                self.end(THROTTLING, carrier,
                         lambda s, _now, c=carrier: f"carrier {c} throttling ended: {s.count:,} throttle(s) in "
                         f"{span(s.last - s.started)}")
        if now - self._receipts_since >= interval:
            self._judge_receipts(now - self._receipts_since)
            self._receipts, self._receipts_since = {}, now

    def close(self) -> None:
        """Sum up what was counted and not yet said (the app stops)."""
        now = self._clock()
        for key, run in list(self._runs.items()):
            self._summary(key, run, now)
        self._runs.clear()

    def _summary(self, key: tuple[str, str], run: _Run, now: float) -> None:
        if not run.repeats:
            del self._runs[key]
            return
        self.event(key[0], key[1], f"{run.what} ({key[1]}): {run.repeats:,} more in the last "
                   f"{span(now - run.started)}", level=run.level, fields=run.fields)
        run.started, run.repeats = now, 0

    # --- what the services report --------------------------------------------------------------------------
    def throttled(self, carrier: str) -> None:
        """A submit answered "slow down" (ESME_RTHROTTLED, queue full, HTTP 429)."""
        self.begin(THROTTLING, carrier, f"carrier {carrier} is throttling: it answers \"slow down\" (throttled or "
                   "queue full); the messages wait and are tried again", fields={"carrier": carrier})

    def expired(self, account_id: int) -> None:
        """A message's time to live ran out before a carrier took it."""
        subject = f"account {account_id}"
        self.note(EXPIRED, subject, f"messages of account {account_id} expire: their time to live ran out before "
                  "a carrier took them", what="messages expired", fields={"account_id": account_id})

    def receipt(self, carrier: str | None, status: str) -> None:
        """A message's final state from its receipts (delivered, undelivered, failed)."""
        counts = self._receipts.setdefault(carrier or "none", [0, 0])
        counts[0] += 1
        counts[1] += status != "delivered"

    def _judge_receipts(self, elapsed: float) -> None:
        rate, least = self.settings.undelivered_rate, self.settings.undelivered_min
        carriers = set(self._receipts) | {s for k, s in self.spells if k == UNDELIVERED}
        for carrier in sorted(carriers):
            total, bad = self._receipts.get(carrier, (0, 0))
            if total < least:
                continue  # too few to judge either way
            share = bad / total
            said = f"{share:.0%} of its final receipts undelivered in the last {span(elapsed)} ({bad:,} of {total:,})"
            if share > rate:
                self.begin(UNDELIVERED, carrier, f"carrier {carrier}: {said}, over alerts.undelivered_rate "
                           f"({rate:.0%})", fields={"carrier": carrier}, n=bad)
            else:
                self.end(UNDELIVERED, carrier,
                         lambda s, now, c=carrier, said=said: f"carrier {c}: undelivered receipts back under "
                         f"{rate:.0%} ({said}) after {span(now - s.started)}")

    def unmatched(self, carrier: str, n: int, after_s: float) -> None:
        """Receipts that matched no message for ``after_s`` seconds (still kept, for a part written later)."""
        self.note(UNMATCHED, f"carrier {carrier}", f"carrier {carrier}: {n:,} delivery receipt(s) matched no message "
                  f"for {span(after_s)} (kept until unmatched_receipt_ttl_h in case their message is stored late; "
                  "check the carrier's receipt_id_base)", what="receipts still unmatched", n=n,
                  fields={"carrier": carrier})

    def webhook_failed(self, account_id: int, url: str, reason: str) -> None:
        """A webhook POST failed (``reason``: an HTTP status or an error's type, never the URL)."""
        host = receiver_host(url)
        self.note(WEBHOOK_FAILING, f"account {account_id}, {host}", f"webhook deliveries of account {account_id} to "
                  f"{host} failing ({reason}); tried again with backoff", what="webhook deliveries failed",
                  fields={"account_id": account_id, "receiver": host})

    def webhook_given_up(self, account_id: int, url: str, delivery_id: str, attempts: int, why: str = "") -> None:
        host = receiver_host(url)
        self.note(WEBHOOK_GIVEN_UP, f"account {account_id}, {host}", f"webhook {delivery_id} of account {account_id} "
                  f"to {host} given up after {attempts} attempt(s){why}", what="webhook deliveries given up",
                  fields={"account_id": account_id, "receiver": host, "delivery_id": delivery_id})

    def unreachable(self, name: str, where: str, exc: BaseException) -> None:
        """The database or Redis (``name``) cannot be reached: the first failure is logged, the rest counted."""
        self.begin(UNREACHABLE, name, f"{OUTAGES[name][0].upper()}{OUTAGES[name][1:]} is unreachable: {where} "
                   f"failed ({describe(exc)})")

    def reachable(self, name: str) -> None:
        """The database or Redis answered: an outage, if there was one, is over."""
        if (UNREACHABLE, name) in self.spells:
            self.end(UNREACHABLE, name, lambda s, now: f"{OUTAGES[name][0].upper()}{OUTAGES[name][1:]} is reachable "
                     f"again after {span(now - s.started)} ({s.count:,} failed operation(s) meanwhile)")

    def failed(self, where: str, exc: BaseException) -> None:
        """A task's operation failed (``where``: what it was doing). An outage of the database or Redis is one
        spell, whoever meets it; any other failure is a note at ERROR, its first with the traceback."""
        name = outage(exc)
        if name is not None:
            self.unreachable(name, where, exc)
        else:
            self.note(ERROR, where, f"{where} failed: {describe(exc)}", what="failures", level=logging.ERROR,
                      exc_info=exc)

    def database_busy(self, where: str, exc: BaseException) -> None:
        """A request answered 503 because the database did not answer in time (or cannot be reached)."""
        if outage(exc) == "database":
            self.unreachable("database", where, exc)
        else:
            self.note(DATABASE_BUSY, where, f"database busy on {where}: {type(exc).__name__}",
                      what="requests answered 503 database_busy")

    # --- what the monitor looks at -------------------------------------------------------------------------
    def bind(self, carrier: str, bind: str, up: bool, binds: int | None = None, error: str | None = None) -> None:
        """A bind's state as the monitor saw it (``binds``: successful binds so far, if the carrier counts)."""
        now = self._clock()
        key = (carrier, bind)
        subject = carrier if bind == carrier else f"{carrier}/{bind}"
        fields = {"carrier": carrier, "bind": bind}
        why = f" ({error})" if error else ""
        prev = self._binds.get(key)
        if prev is None:  # first seen: a bind that bound before and is down now was lost (it is not binding)
            prev = self._binds[key] = _Bind(up or bool(binds), binds, now, now)
        if up and not prev.up:
            self.end(BIND_DOWN, subject, lambda s, now: f"carrier {carrier}: bind {bind} up again after "
                     f"{span(now - s.started)} down")
        elif not up and prev.up:
            prev.since = now
            self.begin(BIND_DOWN, subject, f"carrier {carrier}: bind {bind} lost{why}", fields=fields)
        elif not up and not self.active(BIND_DOWN, subject) and now - prev.since >= BIND_GRACE_S:
            self.begin(BIND_DOWN, subject, f"carrier {carrier}: bind {bind} down for {span(now - prev.since)}{why}",
                       fields=fields)
        elif up and binds is not None and prev.binds is not None and binds > prev.binds:
            self.note(BIND_FLAP, subject, f"carrier {carrier}: bind {bind} was lost and bound again within "
                      f"{span(now - prev.seen)}", what="binds lost and bound again", n=binds - prev.binds,
                      fields=fields)
        prev.up, prev.binds, prev.seen = up, binds, now

    def queue(self, waiting: int, by_status: dict[str, int]) -> None:
        """The messages waiting to be sent (queued and sending), against ``queue_depth``."""
        limit = self.settings.queue_depth
        if not limit:
            return
        detail = ", ".join(f"{status} {count:,}" for status, count in sorted(by_status.items()))
        spell = self.spells.get((QUEUE, "queue"))
        if spell is None:
            if waiting > limit:
                self.begin(QUEUE, "queue", f"queue over {limit:,} messages: {waiting:,} waiting ({detail})",
                           fields={"waiting": waiting}).peak = waiting
            return
        spell.peak = max(spell.peak, waiting)
        if waiting < limit * QUEUE_BACK_UNDER:
            self.end(QUEUE, "queue", lambda s, now: f"queue back under {int(limit * QUEUE_BACK_UNDER):,} messages: "
                     f"{waiting:,} waiting, after {span(now - s.started)} over {limit:,} (at most {int(s.peak):,})")
