"""Carrier limits of a 10DLC campaign, derived from its brand's trust score (config/carrier_limits.toml), and the
carriers it may not reach now (those whose review has not approved it, or every one when it is not live)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

TABLES = Path(__file__).resolve().parent.parent / "config" / "carrier_limits.toml"
MIXED_USE_CASES = {"MIXED", "MARKETING"}
# the registry's carriers (MNOs) as the recipient lookup names them (config/carrier_lookup.toml)
MNO_CARRIERS = {"ATT": "att", "TMOBILE": "tmobile", "VERIZON": "verizon", "USCELLULAR": "uscellular"}


@dataclass(frozen=True, slots=True)
class CampaignLimits:
    campaign_key: str
    brand_key: str
    att_class: str
    att_per_minute: float
    tmobile_tier: str
    tmobile_per_day: int
    verizon_per_minute: float
    brand_per_second: float | None = None  # sole proprietors
    brand_per_day: int | None = None
    # recipients' carriers the campaign may not reach now, each with why ("*": none at all)
    blocked: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "blocked": dict(self.blocked)}


@lru_cache(maxsize=4)
def tables(path: str = str(TABLES)) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def derive(trust_score: int, use_case: str, entity_type: str, *, campaign_key: str = "c?", brand_key: str = "b?",
           path: str = str(TABLES), blocked: tuple[tuple[str, str], ...] = ()) -> CampaignLimits:
    t = tables(path)
    mixed = use_case.upper() in MIXED_USE_CASES
    if use_case.upper() == "LOW_VOLUME":
        att_class, att_tpm = t["att_low_volume"]["class"], t["att_low_volume"]["tpm"]
    else:
        row = next((r for r in t["att"] if r["min_score"] <= trust_score <= r["max_score"]), None)
        if row is None:  # score 0: the lowest class
            row = min(t["att"], key=lambda r: r["min_score"])
        att_class, att_tpm = row["class"], row["mixed_tpm" if mixed else "standard_tpm"]
    tier = next((r for r in t["tmobile"] if r["mixed" if mixed else "standard"][0] <= trust_score
                 <= r["mixed" if mixed else "standard"][1]), t["tmobile"][-1])
    sole = entity_type.upper() == "SOLE_PROPRIETOR"
    sp = t["sole_proprietor"]
    return CampaignLimits(campaign_key, brand_key, att_class, float(att_tpm), tier["tier"], int(tier["daily"]),
                          float(t["verizon"]["tpm_per_number"]), float(sp["per_second"]) if sole else None,
                          int(sp["per_day"]) if sole else None, blocked)


def blocked_carriers(status: str, operations: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The recipients' carriers a campaign may not reach: every one until the DCA accepted it and while it is not
    live (``"*"``); then each carrier that has not approved it (in review, rejected, suspended)."""
    if status not in ("active", "suspended"):
        return (("*", f"the campaign is {status}"),)
    return tuple((MNO_CARRIERS[mno], f"{mno} {op}") for mno, op in sorted(operations.items())
                 if op != "APPROVED" and mno in MNO_CARRIERS)


async def carrier_limits_for_campaign(session: AsyncSession, campaign_id: int) -> CampaignLimits | None:
    """The limits the send path enforces (from the brand's current score; 0 while it has none) and the carriers
    the campaign may not reach now; None for a campaign that does not exist."""
    from sqlalchemy import select

    from registry.models import Brand, Campaign, CampaignOperation

    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    brand = await session.get(Brand, campaign.brand_id)
    if brand is None:
        return None
    operations = dict((await session.execute(select(CampaignOperation.mno, CampaignOperation.status)
                                             .where(CampaignOperation.campaign_id == campaign_id))).all())
    return derive(brand.trust_score or 0, campaign.use_case, brand.entity_type, campaign_key=f"c{campaign.id}",
                  brand_key=f"b{brand.id}", blocked=blocked_carriers(campaign.status, operations))
