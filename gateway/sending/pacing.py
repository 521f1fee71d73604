"""Pacing: every limit a message is subject to, taken at once, so carriers never see more than they accept.

Rates use GCRA (the generic cell rate algorithm) with virtual scheduling: a message that may not leave now
gets the earliest time at which ALL its limits allow it, and that slot is reserved on each of them, so
messages behind it line up after it (order per limit is kept) and no limit is ever exceeded. A burst
allowance lets a limit spend up to ``burst`` units at once after idling; the default of 1 spaces traffic
evenly, which is what "no second above N" needs. Costs are in segments where carriers count segments; the
segments of one message leave together, so a one-second window may hold up to (segments - 1) units above the
rate, paid back by the wait that follows.

Daily caps (T-Mobile per brand, sole proprietors) are counters that reset at midnight in a given time zone.

:class:`MemoryLimiter` serves one gateway process; several processes share the same limits through
:class:`RedisLimiter`, which runs the same algorithm atomically in Redis.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Iterable, Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``per_second`` units a second on average, ``burst`` at once."""

    key: str
    per_second: float
    burst: float = 1.0

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second


@dataclass(frozen=True, slots=True)
class DailyCap:
    """At most ``limit`` units per calendar day in ``tz`` (e.g. T-Mobile: midnight US Pacific)."""

    key: str
    limit: int
    tz: str = "America/Los_Angeles"


Limit = Rate | DailyCap


class Limiter(Protocol):
    def reserve(self, limits: Iterable[Limit], cost: float, now: float, horizon: float) -> float | None:
        """Reserve the earliest slot at which every limit allows ``cost`` units, if it lies within
        ``horizon`` seconds; return its time (>= now). Return None, reserving nothing, when it lies further
        out; ``earliest`` then says when to ask again."""

    def earliest(self, limits: Iterable[Limit], cost: float, now: float) -> float: ...


def _next_midnight(now: float, tz: str) -> float:
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(now, zone)
    tomorrow = (local + dt.timedelta(days=1)).date()
    return dt.datetime.combine(tomorrow, dt.time(0), zone).timestamp()


def _day(now: float, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(now, ZoneInfo(tz)).date()


class MemoryLimiter:
    """GCRA and daily counters in this process's memory."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}  # theoretical arrival time per rate key
        self._daily: dict[tuple[str, dt.date], float] = {}  # units used per (key, local day)

    def _rate_start(self, rate: Rate, cost: float, now: float) -> float:
        """Earliest time at which a message of ``cost`` units conforms to ``rate``: when its first unit does.
        Its whole cost is then charged, so the next message waits for all of it."""
        tat = self._tat.get(rate.key, now)
        return max(now, tat - (rate.burst - 1) * rate.interval)

    def _cap_start(self, cap: DailyCap, cost: float, now: float) -> float:
        if cost > cap.limit:
            return float("inf")
        at = now
        while self._daily.get((cap.key, _day(at, cap.tz)), 0.0) + cost > cap.limit:
            at = _next_midnight(at, cap.tz)
        return at

    def earliest(self, limits: Iterable[Limit], cost: float, now: float) -> float:
        start = now
        for limit in limits:
            if isinstance(limit, Rate):
                start = max(start, self._rate_start(limit, cost, now))
            else:
                start = max(start, self._cap_start(limit, cost, now))
        return start

    def reserve(self, limits: Iterable[Limit], cost: float, now: float, horizon: float) -> float | None:
        limits = list(limits)
        at = self.earliest(limits, cost, now)
        if at - now > horizon:
            return None
        for limit in limits:
            if isinstance(limit, Rate):
                tat = max(self._tat.get(limit.key, at), at)
                self._tat[limit.key] = tat + cost * limit.interval
            else:
                slot = (limit.key, _day(at, limit.tz))
                self._daily[slot] = self._daily.get(slot, 0.0) + cost
        return at

    async def reserve_many(self, requests: list[tuple[list[Limit], float, float]], now: float
                           ) -> list[float | None]:
        """Reserve each (limits, cost, horizon) in order (the interface the dispatcher uses)."""
        return [self.reserve(limits, cost, now, horizon) for limits, cost, horizon in requests]

    def forget_before(self, now: float) -> None:
        """Drop state that can no longer matter (rate keys idle since before ``now``, past days)."""
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        yesterday = dt.date.fromtimestamp(now) - dt.timedelta(days=1)
        self._daily = {k: v for k, v in self._daily.items() if k[1] >= yesterday}

    async def penalize(self, key: str, seconds: float, now: float) -> None:
        """Pause a rate key until ``seconds`` from now (a carrier said "slow down" although we kept to its
        limit). One pause, not one per answer: a carrier that throttles a whole window at once must not push
        the schedule back by the window times the pause."""
        self._tat[key] = max(self._tat.get(key, now), now + seconds)


# Several instances: no send leaves in the last this-many seconds of a second. What leaves then may reach the
# carrier in the next second (a busy event loop between the check and the write, the way there), where the
# shared window did not count it; it waits for the next second and is counted there.
SEND_GUARD_S = 0.05


def send_cap(rate: Rate) -> int:
    """Sends a second under a rate key: the paced rate (the limit less its headroom), rounded up. At 20/s that is
    20, at 1,000/s 980 (the rest is margin for sends that cross into the next second on their way); a fractional
    rate is a per-minute limit (AT&T's 75 a minute is 1.225 a second after headroom) and gets 2, its slots
    keeping the minute."""
    return max(1, math.ceil(rate.per_second - 1e-6))


class SendWindows:
    """What this process actually sent under each rate key in the last second: the carrier's own view.

    Reserved slots keep every limit on schedule, but a send can leave later than its slot (a busy event loop,
    a slot that passed while the message sat in the queue), and several late sends leaving together could put
    more into one second than a carrier takes. Every paced send therefore also checks this window: it goes when
    the last second's sends under each of its keys leave room for it (``send_cap``), else it waits until they
    do. Late sends are not moved to the back of the
    schedule, so a process that cannot keep up with its reservations does not waste them."""

    WINDOW = 1.0

    def __init__(self) -> None:
        self._sent: dict[str, collections.deque[float]] = {}

    def wait(self, limits: Iterable[Limit], cost: int, now: float) -> float:
        """Seconds until ``cost`` more units fit every key's window (0: now)."""
        wait = 0.0
        for limit in limits:
            if not isinstance(limit, Rate):
                continue
            sent = self._sent.get(limit.key)
            if not sent:
                continue
            while sent and sent[0] <= now - self.WINDOW:
                sent.popleft()
            cap = send_cap(limit)
            over = len(sent) + min(cost, cap) - cap
            if over > 0:  # the over-th oldest send must leave the window first
                wait = max(wait, sent[over - 1] + self.WINDOW - now)
        return wait

    def record(self, limits: Iterable[Limit], cost: int, now: float) -> None:
        for limit in limits:
            if isinstance(limit, Rate):
                self._sent.setdefault(limit.key, collections.deque()).extend([now] * cost)

    def forget_before(self, now: float) -> None:
        self._sent = {k: q for k, q in self._sent.items() if q and q[-1] > now - self.WINDOW}


# --- several processes: the same limits in Redis ------------------------------------------------------------

# One reservation, atomically, in Redis's own clock (instances on several hosts agree on it).
# KEYS: the rate keys, then for each daily cap two keys (today's and tomorrow's counter).
# ARGV: cost, horizon, number of rates, then per rate: interval, burst; then per cap: limit, seconds to the
# end of today, seconds to the end of tomorrow (from the caller's clock), absolute ms of those two ends.
# Returns {reserved (1|0), delay seconds as text}; delay -1 when no slot exists within two days.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local nrates = tonumber(ARGV[3])
local at = now
for i = 1, nrates do
  local interval = tonumber(ARGV[2 + 2 * i])
  local burst = tonumber(ARGV[3 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  local start = tat - (burst - 1) * interval
  if start > at then at = start end
end
local ncaps = (#KEYS - nrates) / 2
local base = 3 + 2 * nrates
local day = {}
for pass = 1, 3 do
  for c = 1, ncaps do
    local limit = tonumber(ARGV[base + 4 * (c - 1) + 1])
    local today_end = now + tonumber(ARGV[base + 4 * (c - 1) + 2])
    local today = tonumber(redis.call('GET', KEYS[nrates + 2 * c - 1]) or 0)
    if at < today_end and today + cost <= limit then
      day[c] = 1
    else
      local tomorrow = tonumber(redis.call('GET', KEYS[nrates + 2 * c]) or 0)
      if tomorrow + cost > limit or cost > limit then return {0, '-1'} end
      day[c] = 2
      if today_end > at then at = today_end end
    end
  end
end
if at - now > horizon then return {0, tostring(at - now)} end
for i = 1, nrates do
  local interval = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or at)
  if tat < at then tat = at end
  tat = tat + cost * interval
  redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 60000)
end
for c = 1, ncaps do
  local key = KEYS[nrates + 2 * c - 2 + day[c]]
  redis.call('INCRBYFLOAT', key, cost)
  redis.call('PEXPIREAT', key, ARGV[base + 4 * (c - 1) + 2 + day[c]])
end
return {1, tostring(at - now)}
"""

# Pause a rate key until ARGV[1] seconds from now (a carrier said "slow down" although its limit was kept);
# as MemoryLimiter.penalize: one pause, however many answers said so.
PENALIZE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now + tonumber(ARGV[1]) then tat = now + tonumber(ARGV[1]) end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 60000)
return tostring(tat - now)
"""


# A send takes its place in the current second (Redis's clock) under each of its rate keys and learns which
# second that is ("0 <second>"), or learns how long until the next second ("<seconds>"). KEYS: the keys'
# prefixes; ARGV: cost, then each key's cap. A lone send larger than a cap goes into an empty second. (Counting a
# send in the second it will probably arrive in, a little ahead, was tried: the sends held for the next second then
# leave together just before it begins, worse.)
TAKE_SEND_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local sec = math.floor(now)
local cost = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key .. sec) or 0)
  if used > 0 and used + cost > tonumber(ARGV[1 + i]) then return tostring(sec + 1 - now) end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key .. sec, cost)
  redis.call('PEXPIRE', key .. sec, 3000)
end
return '0 ' .. sec
"""


class LimiterUnavailable(Exception):
    """The shared limits cannot be reached: nothing may be sent that needs them until they can."""


def _unavailable(exc: Exception) -> LimiterUnavailable:
    return LimiterUnavailable(f"Redis: {type(exc).__name__}: {exc}")


class RedisLimiter:
    """GCRA and daily counters in Redis, shared by every gateway instance that names the same Redis.

    Each reservation is one Lua script run (atomic: the combined traffic of all instances keeps every limit);
    a batch's reservations go in one pipeline, executed in order. Rate keys expire a minute after their
    schedule runs out; a daily counter expires at the end of its day in the cap's time zone.
    """

    def __init__(self, url: str, *, prefix: str = "gw:", timeout: float = 2.0):
        import redis.asyncio as aioredis

        self.prefix = prefix
        # a bounded pool: hundreds of sends may ask for their place at once; they queue for a connection
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=timeout,
                                                        socket_timeout=timeout, socket_connect_timeout=timeout,
                                                        health_check_interval=10)
        self._redis = aioredis.Redis(connection_pool=pool)
        self._reserve = self._redis.register_script(RESERVE_LUA)
        self._penalize = self._redis.register_script(PENALIZE_LUA)
        self._take_send = self._redis.register_script(TAKE_SEND_LUA)
        self._takes: list[tuple[list[str], list, asyncio.Future]] = []  # asked during this turn of the loop
        self._take_tasks: set[asyncio.Task] = set()

    async def close(self) -> None:
        await self._redis.aclose()

    def _args(self, limits: Iterable[Limit], cost: float, horizon: float, now: float) -> tuple[list[str], list]:
        rates = [lim for lim in limits if isinstance(lim, Rate)]
        caps = [lim for lim in limits if isinstance(lim, DailyCap)]
        keys = [f"{self.prefix}rate:{r.key}" for r in rates]
        args: list = [cost, horizon, len(rates)]
        for r in rates:
            args += [repr(r.interval), repr(r.burst)]
        for cap in caps:
            end_today = _next_midnight(now, cap.tz)
            end_tomorrow = _next_midnight(end_today + 1, cap.tz)
            keys += [f"{self.prefix}day:{cap.key}:{_day(now, cap.tz)}",
                     f"{self.prefix}day:{cap.key}:{_day(end_today + 1, cap.tz)}"]
            args += [cap.limit, repr(end_today - now), int(end_today * 1000), int(end_tomorrow * 1000)]
        return keys, args

    async def reserve_many(self, requests: list[tuple[list[Limit], float, float]], now: float
                           ) -> list[float | None]:
        """Reserve each (limits, cost, horizon) in order; the slot times are on this process's clock."""
        from redis.exceptions import RedisError

        if not requests:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for limits, cost, horizon in requests:
                    keys, args = self._args(limits, cost, horizon, now)
                    await self._reserve(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        local = time.time()
        return [local + float(delay) if int(ok) == 1 else None for ok, delay in results]

    async def penalize(self, key: str, seconds: float, now: float) -> None:
        from redis.exceptions import RedisError

        try:
            await self._penalize(keys=[f"{self.prefix}rate:{key}"], args=[seconds])
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def take_send(self, limits: Iterable[Limit], cost: int) -> tuple[float, int | None]:
        """The instances' send window, shared: (0, second) when this send took its place in that second under
        each of its rate keys (counted across all instances), else (seconds to wait before asking again, None).
        The sends that ask during one turn of the event loop go to Redis together, in one pipeline."""
        rates = [lim for lim in limits if isinstance(lim, Rate)]
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._takes.append(([f"{self.prefix}sent:{r.key}:" for r in rates],
                            [cost, *(send_cap(r) for r in rates)], answer))
        if len(self._takes) == 1:
            loop.call_soon(self._start_takes)
        return await answer

    def _start_takes(self) -> None:
        task = asyncio.ensure_future(self._run_takes())
        self._take_tasks.add(task)
        task.add_done_callback(self._take_tasks.discard)

    async def _run_takes(self) -> None:
        from redis.exceptions import RedisError

        batch, self._takes = self._takes, []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    await self._take_send(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(_unavailable(exc))
            return
        for (*_, answer), result in zip(batch, results):
            if not answer.done():
                wait, _, second = (result.decode() if isinstance(result, bytes) else str(result)).partition(" ")
                answer.set_result((float(wait), int(second) if second else None))

    def forget_before(self, now: float) -> None:
        """Nothing to do: Redis expires what can no longer matter."""

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:  # noqa: BLE001 - any failure means not reachable
            return False
