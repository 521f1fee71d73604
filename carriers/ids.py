"""Carrier message ids as the gateway stores and looks them up.

Some SMSCs answer submit_sm with an id in one base and quote it in receipts in another (hex in submit_sm_resp,
decimal in the receipt, or the other way round), with other case or leading zeros. Guessing is unsafe ("10" is
valid in both bases and could match another message), so each carrier says how its receipts quote ids:
``receipt_id_base`` = ``same`` (default), ``hex_to_dec`` (submit hex, receipt decimal) or ``dec_to_hex``.
"""

from __future__ import annotations

RECEIPT_ID_BASES = ("same", "hex_to_dec", "dec_to_hex")


def normalize_message_id(value: str) -> str:
    """Lower case, no surrounding space, no leading zeros ("0" stays "0")."""
    return value.strip().lower().lstrip("0") or "0"


def receipt_lookup_id(receipt_id: str, base: str = "same") -> str:
    """The normalized submit-side id that a receipt's id refers to. Unconvertible ids stay as they are."""
    norm = normalize_message_id(receipt_id)
    try:
        if base == "hex_to_dec":  # the receipt says decimal; we stored the hex form
            return format(int(norm, 10), "x")
        if base == "dec_to_hex":  # the receipt says hex; we stored the decimal form
            return str(int(norm, 16))
    except ValueError:
        return norm
    if base != "same":
        raise ValueError(f"receipt_id_base must be one of {', '.join(RECEIPT_ID_BASES)}")
    return norm
