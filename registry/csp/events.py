"""The registry simulator's events and faults: the webhook subscriptions, every event generated with its
delivery record, the outbox the webhook sender takes them from, the events held back by ``webhook_reorder``, and
the faults to inject into the API and the webhooks (with their reproducible dice)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import time
import uuid
from typing import Any

from registry.csp.rules import EVENT_CATEGORIES, SimError, check_choice, stamp

FAULTS = {"http_5xx_rate": 0.0, "http_5xx_next": 0, "delay_ms": 0, "webhook_duplicate_rate": 0.0,
          "webhook_reorder": False, "webhook_drop_next": 0, "seed": 0}
CATEGORY = {"BRAND_SCORE_UPDATE": "BRAND", "BRAND_DELETE": "BRAND", "BRAND_VETTING_UPDATE": "VETTING",
            "NUMBER_ORDER_UPDATE": "NUMBER"}  # any other: CAMPAIGN
WANTED = {bool: "true or false", float: "a number from 0 to 1", int: "a whole number >= 0"}


class EventLog:
    """Events as generated (``records``, oldest first, at most ``max_events``), each with its delivery:
    ``{"event", "state": queued|held|sending|delivered|failed|dropped|unsubscribed, "delivered", "dropped",
    "attempts", "duplicates", "lastStatus", "lastError"}``."""

    def __init__(self, csp_id: str, max_events: int = 10_000):
        self.csp_id, self.max_events = csp_id, max_events
        self.records: list[dict[str, Any]] = []
        self.subscriptions: dict[str, str] = {}  # eventCategory -> webhookEndpoint
        self.sequence = 0  # the last event's
        self.emitted = 0  # events generated since the start
        self.outbox: collections.deque[dict[str, Any]] = collections.deque()  # records to send, in order
        self.held: list[dict[str, Any]] = []  # held back by webhook_reorder
        self.ready = asyncio.Event()  # set when the outbox has something
        self.faults: dict[str, Any] = dict(FAULTS)
        self.rng = random.Random(0)  # the faults' dice: reproducible with the `seed` fault

    def emit(self, at: dt.datetime, event_type: str, **fields: Any) -> None:
        """A new event dated ``at``: sent, held (webhook_reorder) or dropped (webhook_drop_next)."""
        self.sequence = max(self.sequence + 1, time.time_ns() // 1000)  # increasing across restarts too
        self.emitted += 1
        event = {"eventId": str(uuid.uuid4()), "eventType": event_type,
                 "eventCategory": CATEGORY.get(event_type, "CAMPAIGN"), "cspId": self.csp_id,
                 "createDate": stamp(at), "sequence": self.sequence} | fields
        record = {"event": event, "state": "queued", "delivered": False, "dropped": False, "attempts": 0,
                  "duplicates": 0, "lastStatus": None, "lastError": None}
        self.records.append(record)
        del self.records[:-self.max_events]
        if self.faults["webhook_drop_next"] > 0:
            self.faults["webhook_drop_next"] -= 1
            record.update(state="dropped", dropped=True)
        elif self.faults["webhook_reorder"]:
            record["state"] = "held"
            self.held.append(record)
        else:
            self.send(record)

    def subscribe(self, body: dict[str, Any]) -> dict[str, str]:
        check_choice(body, "eventCategory", EVENT_CATEGORIES)
        url = body.get("webhookEndpoint")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SimError(400, "INVALID_FIELD", "webhookEndpoint must be an http(s) URL.", "webhookEndpoint")
        self.subscriptions[body["eventCategory"]] = url
        return {"eventCategory": body["eventCategory"], "webhookEndpoint": url}

    def unsubscribe(self, category: str) -> dict[str, str]:
        if category not in self.subscriptions:
            raise SimError(404, "SUBSCRIPTION_NOT_FOUND", f"No subscription for {category}.")
        return {"eventCategory": category, "webhookEndpoint": self.subscriptions.pop(category)}

    def send(self, record: dict[str, Any]) -> None:
        record["state"] = "queued"
        self.outbox.append(record)
        self.ready.set()

    def release_held(self) -> int:
        """Send the events webhook_reorder held, newest first; how many."""
        held, self.held = self.held, []
        for record in reversed(held):
            self.send(record)
        return len(held)

    def redeliver(self) -> int:
        """Send every event again, oldest first (newest first while webhook_reorder is on)."""
        records = list(reversed(self.records)) if self.faults["webhook_reorder"] else list(self.records)
        for record in records:
            self.send(record)
        return len(records)

    def restore(self, records: list[dict[str, Any]], sequence: int, subscriptions: dict[str, str]) -> None:
        """The records of a snapshot; what was on its way when the simulator stopped goes out again."""
        self.records, self.sequence, self.subscriptions = records, sequence, subscriptions
        for record in records:
            if record["state"] in ("queued", "held", "sending"):
                self.send(record)

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the named faults (all checked first); all of them. Switching webhook_reorder off releases the
        held events."""
        for name, value in changes.items():
            if name not in FAULTS:
                raise SimError(400, "UNKNOWN_FAULT", f"No fault {name!r}; known: {', '.join(FAULTS)}.", name)
            kind = type(FAULTS[name])
            ok = isinstance(value, bool) if kind is bool else (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
                and (kind is float and value <= 1 or kind is int and float(value).is_integer()))
            if not ok:
                raise SimError(400, "INVALID_FIELD", f"{name} must be {WANTED[kind]}.", name)
        for name, value in changes.items():
            self.faults[name] = type(FAULTS[name])(value)
        if "seed" in changes:
            self.rng.seed(self.faults["seed"])
        if not self.faults["webhook_reorder"]:
            self.release_held()
        return dict(self.faults)

    def api_fault(self) -> bool:
        """Whether this API call answers 503 (the next n, or by the 5xx rate's dice)."""
        if self.faults["http_5xx_next"] > 0:
            self.faults["http_5xx_next"] -= 1
            return True
        return self.faults["http_5xx_rate"] > 0 and self.rng.random() < self.faults["http_5xx_rate"]
