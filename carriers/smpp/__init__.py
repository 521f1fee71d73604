"""SMPP 3.4: an asyncio client on smpplib's PDU codec, and the Carrier built on it."""

from __future__ import annotations

from carriers.smpp.carrier import SmppCarrier, address
from carriers.smpp.client import SmppClient

__all__ = ["SmppCarrier", "SmppClient", "address"]
