"""Which limits a message is subject to: its account, its sending number's kind, its recipient, and for a
10DLC number its campaign's per-carrier limits (from the brand's trust score); and whether its campaign may reach
the recipient's carrier at all (``CampaignGate``: not while that carrier has not approved it or suspended it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.sending.lookup import NumberLookup
from gateway.sending.pacing import DailyCap, Limit, Rate
from gateway.settings import PacingSettings
from registry.models import Account, Number

CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class CarrierLimits:
    """A 10DLC campaign's limits per carrier (see config/carrier_limits.toml)."""

    campaign_key: str  # e.g. "c42"
    brand_key: str  # e.g. "b7"
    att_per_minute: float | None = None  # SMS per minute per campaign
    tmobile_per_day: int | None = None  # segments per day per brand (midnight US Pacific)
    verizon_per_minute: float | None = None  # SMS per minute per number
    brand_per_second: float | None = None  # sole proprietor brands: 1 msg/s
    brand_per_day: int | None = None  # sole proprietor brands: 1,000 a day
    blocked: tuple[tuple[str, str], ...] = ()  # recipients' carriers it may not reach now, and why ("*": all)


# campaign id -> its limits, or None when it has none (not approved, no brand score): the registry supplies it
CampaignLimitsSource = Callable[[AsyncSession, int], Awaitable[CarrierLimits | None]]


@dataclass(slots=True)
class _Sender:
    type: str
    campaign_id: int | None


class CampaignGate:
    """The sending numbers' kinds and campaigns, and those campaigns' limits and the recipients' carriers they may
    not reach now; each kept CACHE_SECONDS, or until ``forget`` (the registry changed the campaign)."""

    def __init__(self, lookup: NumberLookup, sessionmaker: async_sessionmaker[AsyncSession],
                 campaign_limits: CampaignLimitsSource | None = None):
        self.lookup = lookup
        self.sessionmaker = sessionmaker
        self._campaign_source = campaign_limits
        self._senders: dict[str, tuple[_Sender, float]] = {}
        self._campaigns: dict[int, tuple[CarrierLimits | None, float]] = {}

    async def prepare(self, sources: Iterable[str], session: AsyncSession | None = None) -> None:
        """Load the sending numbers (and their campaigns) the cache does not hold fresh."""
        now = time.monotonic()
        want = {s for s in sources if self._senders.get(s, (None, 0.0))[1] < now}
        stale = any(s.campaign_id is not None and self._campaigns.get(s.campaign_id, (None, 0.0))[1] < now
                    for s, _ in self._senders.values()) if self._campaign_source is not None else False
        if not want and not stale:
            return
        if session is None:
            async with self.sessionmaker() as session:
                await self._load(session, want, now)
        else:
            await self._load(session, want, now)

    async def _load(self, session: AsyncSession, want: set[str], now: float) -> None:
        if want:
            for row in (await session.execute(select(Number.number, Number.type, Number.campaign_id)
                                              .where(Number.number.in_(want)))).all():
                self._senders[row[0]] = (_Sender(row[1], row[2]), now + CACHE_SECONDS)
        if self._campaign_source is not None:
            for sender, _ in list(self._senders.values()):
                cid = sender.campaign_id
                if cid is not None and self._campaigns.get(cid, (None, 0.0))[1] < now:
                    self._campaigns[cid] = (await self._campaign_source(session, cid), now + CACHE_SECONDS)

    def forget(self, campaign_ids: Iterable[int]) -> None:
        """The registry changed these campaigns (or their numbers): load them again before the next send."""
        ids = set(campaign_ids)
        for cid in ids:
            self._campaigns.pop(cid, None)
        if ids:
            for number, (sender, _) in list(self._senders.items()):
                if sender.campaign_id in ids or sender.type != "ten_dlc":
                    self._senders.pop(number, None)

    def sender(self, source: str) -> _Sender | None:
        return self._senders.get(source, (None, 0.0))[0]

    def campaign(self, source: str) -> CarrierLimits | None:
        """The limits of a 10DLC number's campaign (None: not a 10DLC number, or no campaign)."""
        sender = self.sender(source)
        if sender is None or sender.type != "ten_dlc" or sender.campaign_id is None:
            return None
        return self._campaigns.get(sender.campaign_id, (None, 0.0))[0]

    def blocked(self, source: str, destination: str) -> str | None:
        """Why a 10DLC number's campaign may not reach this recipient's carrier now, or None (an unknown carrier:
        blocked when any carrier is, as the strictest limits apply to it)."""
        campaign = self.campaign(source)
        if campaign is None or not campaign.blocked:
            return None
        why = dict(campaign.blocked)
        carrier = self.lookup.carrier(destination)
        if "*" in why:
            return why["*"]
        if carrier == "unknown":
            return next(iter(why.values()))
        return why.get(carrier)


class PacingPolicy:
    def __init__(self, settings: PacingSettings, gate: CampaignGate):
        self.settings = settings
        self.gate = gate
        self.lookup = gate.lookup
        self._sm = gate.sessionmaker
        self._accounts: dict[int, tuple[float, float]] = {}

    async def prepare(self, account_ids: Iterable[int], sources: Iterable[str]) -> None:
        """Load what the next batch needs and the cache does not hold (fresh for CACHE_SECONDS)."""
        now = time.monotonic()
        want_accounts = {a for a in account_ids if self._accounts.get(a, (0, 0))[1] < now}
        if want_accounts:
            async with self._sm() as session:
                for row in (await session.execute(select(Account.id, Account.max_rate_per_s)
                                                  .where(Account.id.in_(want_accounts)))).all():
                    self._accounts[row.id] = (float(row.max_rate_per_s or self.settings.account_per_s),
                                              now + CACHE_SECONDS)
        await self.gate.prepare(sources)

    def limits(self, account_id: int, source: str, destination: str) -> list[Limit]:
        s = self.settings
        k = s.headroom
        rate = self._accounts.get(account_id, (s.account_per_s, 0))[0]
        limits: list[Limit] = [Rate(f"acct:{account_id}", rate * k), Rate(f"rcpt:{destination}", s.recipient_per_s * k)]
        sender = self.gate.sender(source)
        kind = sender.type if sender else "long_code"
        per_kind = {"short_code": s.short_code_per_s, "toll_free": s.toll_free_per_s,
                    "long_code": s.long_code_per_s, "ten_dlc": s.ten_dlc_per_s}.get(kind, s.long_code_per_s)
        limits.append(Rate(f"num:{source}", per_kind * k))
        campaign = self.gate.campaign(source)
        if campaign is not None:
            limits.extend(self._carrier_limits(campaign, source, self.lookup.carrier(destination), k))
        return limits

    @staticmethod
    def _carrier_limits(c: CarrierLimits, source: str, carrier: str, k: float) -> list[Limit]:
        """The recipient's carrier's limits; all of them when the carrier is unknown (the strictest wins)."""
        out: list[Limit] = []
        if carrier in ("att", "unknown") and c.att_per_minute:
            out.append(Rate(f"att:{c.campaign_key}", c.att_per_minute / 60 * k))
        if carrier in ("tmobile", "unknown") and c.tmobile_per_day:
            out.append(DailyCap(f"tmo:{c.brand_key}", int(c.tmobile_per_day * k)))
        if carrier in ("verizon", "unknown") and c.verizon_per_minute:
            out.append(Rate(f"vzw:{source}", c.verizon_per_minute / 60 * k))
        if c.brand_per_second:
            out.append(Rate(f"sp:{c.brand_key}", c.brand_per_second * k))
        if c.brand_per_day:
            out.append(DailyCap(f"spd:{c.brand_key}", int(c.brand_per_day * k)))
        return out
