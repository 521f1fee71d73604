"""Compliance checks on an outbound SMS: public URL shorteners in 10DLC traffic, quiet hours."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as pn_timezone

# Carriers reject public shorteners in 10DLC traffic; links must use the brand's own domain.
URL_SHORTENERS = ("bit.ly", "bitly.com", "tinyurl.com", "is.gd", "ow.ly", "rb.gy", "t.co", "goo.gl", "buff.ly",
                  "cutt.ly", "shorturl.at", "tiny.cc", "rebrand.ly", "t.ly", "v.gd", "s.id", "lnkd.in")
_SHORTENER = re.compile(r"(?<![\w.-])(?:https?://)?(?:www\.)?(" + "|".join(re.escape(d) for d in URL_SHORTENERS)
                        + r")(?=/|\s|$|[?#),.!])", re.IGNORECASE)

QUIET_START, QUIET_END = dt.time(21, 0), dt.time(8, 0)


def public_shortener(body: str) -> str | None:
    """The first public URL shortener domain in the text, if any."""
    match = _SHORTENER.search(body)
    return match.group(1).lower() if match else None


def recipient_zones(number: str) -> list[str]:
    try:
        zones = [z for z in pn_timezone.time_zones_for_number(phonenumbers.parse(number, None))
                 if z != "Etc/Unknown"]
    except phonenumbers.NumberParseException:
        zones = []
    return zones or ["America/New_York", "America/Los_Angeles"]


def in_quiet_hours(number: str, now: dt.datetime) -> bool:
    """True when it is 21:00-08:00 in any time zone the recipient's number may be in."""
    for zone in recipient_zones(number):
        local = now.astimezone(ZoneInfo(zone)).time()
        if local >= QUIET_START or local < QUIET_END:
            return True
    return False
