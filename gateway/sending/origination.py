"""Choosing the sending number (the origination identity) for a message: an SMS (``choose``) or a call
(``choose_voice``).

Rules (see the brief): a named ``from`` must belong to the account, be active, have SMS capability and be
allowed for the destination. Without one: the single eligible number if there is exactly one; otherwise a
short code, then a 10DLC number, then a toll-free number (then, abroad, a long code with international sending).
A toll-free number whose verification is not ``verified`` (``unverified``: registry.toll_free) is not eligible;
when it is all there is, it is chosen, and the send is refused as from it (toll_free_not_verified).
Within one kind the same recipient keeps the same number (sticky sender, by rendezvous hashing, so that adding
or removing a number moves only the recipients of that number).

Destination rules: an unregistered US long code never sends SMS to US numbers; 10DLC numbers send only to US
numbers; a short code sends only within its own country; toll-free numbers reach the US and Canada; other
countries are reached through long codes with international sending enabled.

Calls: a named ``from`` must be one of the account's active numbers that can place calls (short codes cannot).
Without one: a long code, then a 10DLC number, then a toll-free number; the oldest of its kind.
"""

from __future__ import annotations

import hashlib
from typing import Collection, Sequence

from gateway.errors import Conflict, Unprocessable
from registry.models import Number

PRIORITY = ("short_code", "ten_dlc", "toll_free", "long_code")
VOICE_PRIORITY = ("long_code", "ten_dlc", "toll_free")
TOLL_FREE_REACH = {"US", "CA"}


def refusal(number: Number, dest_region: str | None) -> tuple[str, str] | None:
    """Why this number may not send SMS to this destination region, as (code, sentence); None if it may."""
    region = dest_region or "??"
    kind = number.type
    if kind == "long_code":
        if number.country == "US" and region == "US":
            return ("unregistered_long_code",
                    f"{number.number} is an unregistered US long code: it may not send SMS to US numbers. "
                    "Associate it with an approved 10DLC campaign, or send from another number.")
        if region != number.country and not number.international:
            return ("destination_not_allowed",
                    f"{number.number} is not enabled for international sending to {region}.")
    elif kind == "ten_dlc":
        if region != "US":
            return ("destination_not_allowed", f"{number.number} is a 10DLC number: it sends only to US numbers.")
    elif kind == "short_code":
        if region != number.country:
            return ("destination_not_allowed",
                    f"The short code {number.number} sends only to numbers in {number.country}.")
    elif kind == "toll_free":
        if region not in TOLL_FREE_REACH:
            return ("destination_not_allowed", f"The toll-free number {number.number} reaches only the US and Canada.")
    return None


def _weight(number: str, recipient: str) -> bytes:
    return hashlib.blake2b(f"{number}|{recipient}".encode(), digest_size=8).digest()


def sticky(candidates: Sequence[Number], recipient: str) -> Number:
    """The candidate this recipient keeps getting (highest rendezvous weight)."""
    return max(candidates, key=lambda n: _weight(n.number, recipient))


def choose(numbers: Sequence[Number], destination: str, dest_region: str | None, source: str | None,
           unverified: Collection[str] = ()) -> Number:
    """Pick the sending number among the account's numbers (all statuses), or raise a clear error. ``unverified``:
    the toll-free numbers that may not send (chosen only when no other number may)."""
    if source is not None:
        number = next((n for n in numbers if n.number == source), None)
        if number is None:
            raise Unprocessable(f"{source} is not a number of this account.", code="invalid_from",
                                details={"field": "from"})
        if "sms" not in number.capability_set:
            raise Unprocessable(f"{source} cannot send SMS (capabilities: {number.capabilities}).",
                                code="number_not_sms_capable", details={"field": "from"})
        if number.status != "active":
            raise Conflict(f"{source} is not active (status: {number.status}).", code="number_not_active",
                           details={"field": "from", "status": number.status})
        why = refusal(number, dest_region)
        if why:
            raise Unprocessable(why[1], code=why[0], details={"field": "from"})
        return number
    sms = [n for n in numbers if "sms" in n.capability_set]
    eligible = [n for n in sms if n.status == "active" and refusal(n, dest_region) is None]
    if not eligible:
        if not sms:
            raise Unprocessable("This account has no number that can send SMS.", code="no_sending_number")
        raise Unprocessable(f"No active number of this account may send SMS to {destination}.",
                            code="no_sending_number", details={"destination_region": dest_region})
    if unverified:
        eligible = [n for n in eligible if n.number not in unverified] or [sticky(eligible, destination)]
    if len(eligible) == 1:
        return eligible[0]
    for kind in PRIORITY:
        of_kind = [n for n in eligible if n.type == kind]
        if of_kind:
            return sticky(of_kind, destination)
    return sticky(eligible, destination)


def choose_voice(numbers: Sequence[Number], source: str | None) -> Number:
    """Pick the calling number among the account's active numbers, or raise a clear error."""
    capable = [n for n in numbers if "voice" in n.capability_set and n.type != "short_code"]
    if source is not None:
        number = next((n for n in capable if n.number == source), None)
        if number is None:
            raise Unprocessable(f"{source} is not an active voice number of this account.", code="invalid_from",
                                details={"field": "from"})
        return number
    if not capable:
        raise Unprocessable("This account has no active number that can place calls.", code="no_voice_number")
    rank = {kind: i for i, kind in enumerate(VOICE_PRIORITY)}
    return min(capable, key=lambda n: (rank.get(n.type, len(rank)), n.id))
