"""Group commit for single-message requests (POST /v1/messages).

Each request used to open its own transaction on the database connection (SQLite has one): requests in flight
queued for it, each paying several trips to the connection's thread, and the event loop sat idle between them.
Now a request parses and validates on its own, then joins the waiting group; one writer task stores a whole
group in one transaction (what a batch does: account, numbers, opt-outs and the queued count read once per
account, the rows inserted by one statement), and requests that arrive while it commits make the next group.

What stays exact:
- stored before 202: a request is answered only after the commit that holds its row;
- Idempotency-Key: a key given twice in one group makes one message (the second request answers it, or 422
  when it is another request); a key stored meanwhile by another instance answers 409 idempotency_conflict;
- each request's own refusals (compliance, queue_full, a reused key) are answered to that request only;
- a database error fails the group as a whole: its transaction is rolled back, nothing of it is stored, and
  each of its requests is answered 503 not_stored (to be sent again).
On PostgreSQL each instance groups its own requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import GatewayError, ServiceUnavailable
from gateway.metrics import Metrics
from gateway.sending import messages as svc
from gateway.sending.routing import Router
from gateway.settings import PricingSettings
from gateway.store.group_commit import GroupCommit

MAX_GROUP = 500  # requests stored by one transaction; more wait for the next one


@dataclass(slots=True)
class _Waiting:
    account_id: int
    req: svc.SendRequest
    key: str | None
    fingerprint: str | None
    answer: asyncio.Future  # resolved with an Accepted or the request's GatewayError


def not_stored() -> ServiceUnavailable:
    return ServiceUnavailable("The message could not be stored (a database error); nothing was stored. "
                              "Send the request again.", code="not_stored", headers={"Retry-After": "1"})


class Acceptor:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], pricing: PricingSettings,
                 clock: Callable[[], dt.datetime], on_queued: Callable[[], None], on_webhooks: Callable[[], None],
                 router: Router | None = None, metrics: Metrics | None = None):
        self._sm = sessionmaker
        self._pricing = pricing
        self._router = router  # the route table, for a route's cost per segment in the answers
        self._clock = clock
        self._on_queued = on_queued  # wakes the dispatcher, once per group
        self._on_webhooks = on_webhooks  # wakes the webhook sender, when the group queued deliveries
        self._metrics = metrics or Metrics()
        self._groups: GroupCommit[_Waiting] = GroupCommit(self._write, MAX_GROUP, "accept-writer")
        self.stats = {"joined": 0, "groups": 0, "requests": 0, "failed_groups": 0}

    async def accept(self, account_id: int, req: svc.SendRequest, *, idempotency_key: str | None = None,
                     fingerprint: str | None = None) -> svc.Accepted:
        """Store one message (or find the one its key names) with the requests waiting beside it; raise its
        error. Returns after the commit."""
        answer = asyncio.get_running_loop().create_future()
        self._groups.add(_Waiting(account_id, req, idempotency_key, fingerprint, answer))
        self.stats["joined"] += 1
        result = await answer
        if isinstance(result, GatewayError):
            raise result
        return result

    async def stop(self) -> None:
        """Let the groups waiting be written (requests in flight still get their answers)."""
        await self._groups.drain()

    async def _write(self, group: list[_Waiting]) -> None:
        try:
            async with self._sm() as session, session.begin():
                outcomes = await self._accept(session, group)
        except BaseException as exc:  # the transaction is rolled back: none of the group is stored
            self.stats["failed_groups"] += 1
            if isinstance(exc, Exception):  # answered 503 not_stored; the database's outage is one alert
                self._metrics.alerts.failed("storing accepted messages", exc)
            for w in group:
                if not w.answer.done():
                    w.answer.set_result(not_stored())
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self.stats["groups"] += 1
        self.stats["requests"] += len(group)
        stored = [o for o in outcomes if isinstance(o, svc.Accepted) and o.created]
        self._metrics.count_accepted(stored)
        if any(o.blocked is None for o in stored):
            self._on_queued()
        if any(o.hooked for o in stored):
            self._on_webhooks()
        for w, outcome in zip(group, outcomes):
            if not w.answer.done():  # not when the request was cancelled meanwhile (its message is stored)
                w.answer.set_result(outcome)

    async def _accept(self, session: AsyncSession, group: list[_Waiting]) -> list[svc.Accepted | GatewayError]:
        """One accept_many per account of the group, in one transaction."""
        by_account: dict[int, list[int]] = {}
        for i, w in enumerate(group):
            by_account.setdefault(w.account_id, []).append(i)
        outcomes: list[svc.Accepted | GatewayError] = [None] * len(group)  # type: ignore[list-item]
        now = self._clock()
        for account_id, indexes in by_account.items():
            results = await svc.accept_many(session, account_id, [group[i].req for i in indexes], self._pricing,
                                            idempotency_keys=[group[i].key for i in indexes],
                                            fingerprints=[group[i].fingerprint for i in indexes], now=now,
                                            router=self._router)
            for i, result in zip(indexes, results):
                outcomes[i] = result
        return outcomes
