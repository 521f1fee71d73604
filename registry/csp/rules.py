"""The registry simulator's vocabulary and deterministic rules (documented in ``registry.csp.simulator``): the
enumerations of the CSP API, ids and times as the registry writes them, business days and months on its clock,
the identity check, vetting, the DCA's answer, the carriers' review, number checks, and the checks of a brand's
and a campaign's fields."""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
import string
from typing import Any

from registry.states import ENTITY_TYPES, USE_CASES as STANDARD_USE_CASES, VERTICALS

BRAND_RELATIONSHIPS = ("BASIC_ACCOUNT", "SMALL_ACCOUNT", "MEDIUM_ACCOUNT", "LARGE_ACCOUNT", "KEY_ACCOUNT")
# the registry's standard use cases (as the gateway knows them) and its special ones
USE_CASES = STANDARD_USE_CASES + ("AGENTS_FRANCHISES", "CARRIER_EXEMPT", "CHARITY", "EMERGENCY",
                                  "K12_EDUCATION", "POLITICAL", "PROXY", "SOCIAL", "SOLE_PROPRIETOR", "SWEEPSTAKE")
IDENTITY_STATUSES = ("VERIFIED", "UNVERIFIED", "SELF_DECLARED", "VETTED_VERIFIED")
VERIFIED = ("VERIFIED", "VETTED_VERIFIED")
MNOS = ("ATT", "TMOBILE", "VERIZON", "USCELLULAR")
REVIEW_OUTCOMES = ("APPROVED", "REJECTED", "SUSPENDED", "UNSUSPENDED")
EVENT_CATEGORIES = ("BRAND", "CAMPAIGN", "VETTING", "NUMBER")
DCA_ID = "DCASIM1"
SHORTENERS = ("bit.ly", "tinyurl.com", "is.gd", "ow.ly", "rb.gy")
REJECT_TAG = re.compile(r"\[reject:(ATT|TMOBILE|VERIZON|USCELLULAR)\]", re.IGNORECASE)
NANP = re.compile(r"^\+1[2-9]\d{2}[2-9]\d{6}$")
TOLL_FREE_AREAS = ("800", "833", "844", "855", "866", "877", "888")
ID_ALPHABET = string.ascii_uppercase + string.digits
BRAND_STRINGS = ("displayName", "companyName", "ein", "phone", "street", "city", "state", "postalCode", "country",
                 "email", "website", "vertical", "referenceId", "entityType", "brandRelationship")
CAMPAIGN_STRINGS = ("usecase", "description", "sample1", "sample2", "sample3", "sample4", "sample5", "messageFlow",
                    "helpMessage", "optinMessage", "optoutMessage", "optoutKeywords", "helpKeywords", "optinKeywords",
                    "referenceId")
CAMPAIGN_FLAGS = ("subscriberOptin", "subscriberOptout", "subscriberHelp", "embeddedLink", "embeddedPhone",
                  "numberPool", "ageGated", "directLending", "autoRenewal")


class SimError(Exception):
    """An answer the registry refuses with: HTTP ``status``, ``code`` and ``description`` (and the ``field``)."""

    def __init__(self, status: int, code: str, description: str, field: str | None = None):
        super().__init__(description)
        self.status, self.code, self.description, self.field = status, code, description, field

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "description": self.description} | ({"field": self.field} if self.field else {})


def new_id(prefix: str, taken: Any, rng: random.Random) -> str:
    """``prefix`` and six upper-case letters or digits, not in ``taken``."""
    while True:
        candidate = prefix + "".join(rng.choice(ID_ALPHABET) for _ in range(6))
        if candidate not in taken:
            return candidate


def stamp(value: dt.datetime) -> str:
    """A time as the registry writes it: ISO 8601 UTC with milliseconds and a Z."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    """``days`` business days (Monday to Friday) after ``start``, at the same time of day; 0: ``start``."""
    current = start
    while days > 0:
        current += dt.timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def add_months(start: dt.datetime, months: int) -> dt.datetime:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def _digits(value: Any) -> str:
    return "".join(c for c in str(value or "") if c.isdigit())


def identity(brand: dict[str, Any]) -> tuple[str, int]:
    """The identity check: SOLE_PROPRIETOR -> SELF_DECLARED 0; an EIN starting 000 -> UNVERIFIED 0; else VERIFIED,
    50 + (sum of the EIN's digits mod 26). A brand whose vetting is ACTIVE is VETTED_VERIFIED, that score + 25
    (at most 100)."""
    if brand.get("entityType") == "SOLE_PROPRIETOR":
        return "SELF_DECLARED", 0
    ein = _digits(brand.get("ein"))
    status, score = ("UNVERIFIED", 0) if ein.startswith("000") else ("VERIFIED", 50 + sum(map(int, ein)) % 26)
    if brand.get("vettingStatus") == "ACTIVE":
        return "VETTED_VERIFIED", min(100, score + 25)
    return status, score


def vetting_passes(brand: dict[str, Any]) -> bool:
    """Vetting fails for an EIN starting 999, passes otherwise."""
    return not _digits(brand.get("ein")).startswith("999")


def feedback(brand: dict[str, Any]) -> list[dict[str, Any]]:
    """Why the identity check failed (empty when it did not)."""
    if brand.get("identityStatus") != "UNVERIFIED":
        return []
    return [{"id": "TAX_ID", "displayName": "Tax ID",
             "description": "The EIN does not match the legal company name in the IRS records.",
             "fields": ["ein", "companyName"]}]


def dca_accepts(campaign: dict[str, Any]) -> bool:
    return "[decline]" not in str(campaign.get("description") or "").lower()


def review(campaign: dict[str, Any]) -> dict[str, str]:
    """Each carrier's verdict: REJECTED by ATT and TMOBILE when a sample or the description holds a public URL
    shortener, by the MNO a ``[reject:<MNO>]`` in the description names; APPROVED otherwise."""
    texts = [str(campaign.get(k) or "").lower() for k in ("description", "sample1", "sample2", "sample3", "sample4",
                                                          "sample5")]
    rejected = {m.upper() for m in REJECT_TAG.findall(texts[0])}
    if any(s in t for t in texts for s in SHORTENERS):
        rejected |= {"ATT", "TMOBILE"}
    return {mno: "REJECTED" if mno in rejected else "APPROVED" for mno in MNOS}


def number_problem(number: Any) -> str | None:
    """Why the DCA cannot associate this number with a 10DLC campaign (None: it can)."""
    if not isinstance(number, str) or not NANP.match(number):
        return "Not a US +1 NANP number in E.164 (+1NPANXXXXXX)."
    if number[2:5] in TOLL_FREE_AREAS:
        return "A toll-free number cannot be associated with a 10DLC campaign."
    return None


def _check_strings(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            raise SimError(400, "INVALID_FIELD", f"{name} must be a string.", name)


def _require(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if not str(body.get(name) or "").strip():
            raise SimError(400, "MISSING_FIELD", f"{name} is required.", name)


def check_choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    if body.get(name) not in allowed:
        raise SimError(400, "INVALID_FIELD", f"{name} must be one of {', '.join(allowed)}.", name)


def check_brand(body: dict[str, Any]) -> dict[str, Any]:
    """The brand's fields the registry keeps, or SimError naming the first bad one."""
    _check_strings(body, BRAND_STRINGS)
    check_choice(body, "entityType", ENTITY_TYPES)
    sole = body["entityType"] == "SOLE_PROPRIETOR"
    _require(body, ("displayName", "phone", "country", "email") + (() if sole else ("companyName", "ein")))
    check_choice(body, "brandRelationship", BRAND_RELATIONSHIPS)
    if body.get("vertical") or not sole:
        check_choice(body, "vertical", VERTICALS)
    if body.get("ein") and len(_digits(body["ein"])) != 9:
        raise SimError(400, "INVALID_FIELD", "ein must have 9 digits.", "ein")
    if len(body["country"]) != 2 or not body["country"].isalpha():
        raise SimError(400, "INVALID_FIELD", "country must be an ISO 3166 two-letter code.", "country")
    if "@" not in body["email"]:
        raise SimError(400, "INVALID_FIELD", "email must be an e-mail address.", "email")
    return {k: body[k] for k in BRAND_STRINGS if body.get(k) is not None}


def check_campaign(body: dict[str, Any]) -> dict[str, Any]:
    """The campaign's fields the registry keeps (autoRenewal true unless given), or SimError."""
    _check_strings(body, CAMPAIGN_STRINGS)
    _require(body, ("brandId", "usecase", "description", "sample1", "sample2"))
    check_choice(body, "usecase", USE_CASES)
    for name in CAMPAIGN_FLAGS:
        if name in body and not isinstance(body[name], bool):
            raise SimError(400, "INVALID_FIELD", f"{name} must be true or false.", name)
    fields = {k: body[k] for k in CAMPAIGN_STRINGS + CAMPAIGN_FLAGS if body.get(k) is not None}
    return {"autoRenewal": True} | fields
