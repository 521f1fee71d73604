"""The operator's number inventory: one row of an inventory CSV checked and read into a Number's fields.

A wrong row must never become a number that sends: a 10-digit "short code" would reach US phones without 10DLC,
a toll-free number typed as a long code would be paced and priced as one, a number of another country than stated
would be leased for the wrong destinations.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Sequence

import phonenumbers
from phonenumbers import PhoneNumberType

from registry.states import CAPABILITIES, NUMBER_TYPES

COLUMNS = ("number", "type", "country", "capabilities", "carrier", "monthly_price")  # the order without a header
REQUIRED = ("number", "type", "country")
# what a long code or a 10DLC number may be: a number people have at home or in their pocket, not toll-free,
# premium, shared-cost, personal or a pager
LONG_CODE_TYPES = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                             PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.VOIP})


class RowError(ValueError):
    """A row (or the header) that cannot be imported: a stable code and a sentence."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def is_header(row: Sequence[str]) -> bool:
    return any(cell.strip().lower() == "number" for cell in row)


def header_columns(row: Sequence[str]) -> list[str]:
    """The columns a header row names, in its order; RowError naming the required ones it lacks or unknown ones
    (a misspelt "monthly price" would otherwise drop every price without a word)."""
    names = [cell.strip().lower() for cell in row]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise RowError("unknown_columns", f"Unknown column(s) {', '.join(map(repr, unknown))}: the columns are "
                                          f"{','.join(COLUMNS)}.")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise RowError("missing_columns", f"The header lacks the column(s) {', '.join(missing)} (the columns are "
                                          f"{','.join(COLUMNS)}; {', '.join(REQUIRED)} are required).")
    return names


def number_fields(row: Sequence[str], columns: Sequence[str], carriers: Collection[str]) -> dict[str, Any]:
    """A data row under ``columns`` as a free Number's fields (number normalized: a short code's digits or E.164),
    or RowError with the first thing wrong in it."""
    if len(row) > len(columns):
        raise RowError("too_many_columns", f"The row has {len(row)} cells for {len(columns)} columns "
                                           f"({','.join(columns)}); quote a list such as \"sms,voice\".")
    cells = dict(zip(columns, (c.strip() for c in row)))
    missing = [name for name in REQUIRED if not cells.get(name)]
    if missing:
        raise RowError("missing_value", f"The row has no {', '.join(missing)}.")
    kind, country = cells["type"], cells["country"].upper()
    if kind not in NUMBER_TYPES:
        raise RowError("unknown_type", f"type {kind!r} is not one of {', '.join(NUMBER_TYPES)}")
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise RowError("invalid_country", f"country {cells['country']!r} is not a two-letter country code")
    return {"number": _number(cells["number"], kind, country), "type": kind, "country": country,
            "capabilities": _capabilities(cells.get("capabilities", "")),
            "carrier": _carrier(cells.get("carrier", ""), carriers),
            "monthly_price": _price(cells.get("monthly_price", ""))}


def _number(value: str, kind: str, country: str) -> str:
    if kind == "short_code":
        if not (value.isascii() and value.isdigit() and 5 <= len(value) <= 6):
            raise RowError("invalid_number", f"{value!r} is not a short code: a short code has 5 or 6 digits")
        return value
    if kind == "ten_dlc" and country != "US":
        raise RowError("invalid_country", f"10DLC numbers are US numbers, not {country}")
    try:
        parsed = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number_for_region(parsed, country):
        raise RowError("invalid_number", f"{value!r} is not a valid number of {country}")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    number_type = phonenumbers.number_type(parsed)
    if kind == "toll_free" and number_type != PhoneNumberType.TOLL_FREE:
        raise RowError("invalid_number", f"{e164} is not a toll-free number")
    if kind != "toll_free" and number_type not in LONG_CODE_TYPES:
        hint = " (it is toll-free: type toll_free)" if number_type == PhoneNumberType.TOLL_FREE else ""
        raise RowError("invalid_number", f"{e164} is not a geographic or mobile number, so not a {kind}{hint}")
    return e164


def _capabilities(value: str) -> str:
    found = {c.strip() for c in value.replace(";", ",").replace("|", ",").split(",") if c.strip()} or {"sms"}
    if not found <= set(CAPABILITIES):
        raise RowError("invalid_capabilities", f"capabilities {value!r} are not sms and/or voice")
    return ",".join(sorted(found))


def _carrier(value: str, carriers: Collection[str]) -> str | None:
    if value and value not in carriers:
        raise RowError("unknown_carrier", f"carrier {value!r} is not configured (known: {', '.join(sorted(carriers))})")
    return value or None


def _price(value: str) -> float | None:
    if not value:
        return None
    try:
        price = float(value)
    except ValueError:
        price = math.nan
    if not (math.isfinite(price) and price >= 0):
        raise RowError("invalid_price", f"monthly_price {value!r} is not a non-negative number")
    return price
