"""The registry simulator's state: brands, campaigns, number orders, its clock and the work coming due on it; the
subscriptions, the events it generated, their delivery and the faults are its ``log`` (``events.EventLog``). In
memory, optionally kept in a JSON snapshot file. Every operation is synchronous (no await inside), so the HTTP
handlers, the clock's ticker and the webhook sender never see a half-made change. The rules themselves are in
``rules``; the HTTP API in ``simulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import os
import random
import re
from pathlib import Path
from typing import Any

from registry.csp import rules
from registry.csp.events import EventLog
from registry.csp.rules import SimError, add_business_days, add_months, parse_stamp, stamp

RENEWAL_MONTHS = 3


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SimState:
    """One simulated registry (and its DCA). ``start`` sets the clock's time now (default: the real time); the
    ``*_days`` are business days on that clock; ``score_delay_s`` real seconds before a brand's identity result."""

    def __init__(self, api_key: str, api_secret: str, *, csp_id: str = "SSIM001", snapshot_path: str | None = None,
                 start: dt.datetime | None = None, score_delay_s: float = 0.05, vetting_days: int = 1,
                 sharing_days: int = 1, review_days: int = 3, association_days: int = 5,
                 disassociation_days: int = 1, webhook_attempts: int = 6,
                 webhook_backoff: tuple[float, float] = (0.05, 1.0), webhook_timeout_s: float = 5.0,
                 max_events: int = 10_000):
        if not re.fullmatch(r"S[A-Z0-9]{6}", csp_id):
            raise ValueError(f"csp_id {csp_id!r}: expected S and six upper-case letters or digits")
        self.api_key, self.api_secret, self.csp_id = api_key, api_secret, csp_id
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self.score_delay_s, self.vetting_days, self.sharing_days = score_delay_s, vetting_days, sharing_days
        self.review_days, self.association_days = review_days, association_days
        self.disassociation_days = disassociation_days
        self.webhook_attempts, self.webhook_backoff = webhook_attempts, webhook_backoff
        self.webhook_timeout_s, self.max_events = webhook_timeout_s, max_events
        self.offset_s = (start - _utcnow()).total_seconds() if start else 0.0
        self.brands: dict[str, dict[str, Any]] = {}
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.operation: dict[str, dict[str, str]] = {}  # campaignId -> {MNO: status}
        self.orders: dict[str, dict[str, Any]] = {}
        self.numbers: dict[str, str] = {}  # an associated number -> its campaignId
        self.refs: dict[str, dict[str, str]] = {"brand": {}, "campaign": {}, "order": {}}
        self.schedule: list[tuple[str, int, str, dict[str, Any]]] = []  # heap of (due stamp, n, kind, args)
        self.scheduled = 0
        self.log = EventLog(csp_id, max_events)  # the events, their delivery, and the faults
        self.ids = random.Random()  # ids never repeat across restarts without a snapshot
        self.due_changed = asyncio.Event()
        if self.snapshot_path and self.snapshot_path.exists():
            self._load()

    # the clock
    def now(self) -> dt.datetime:
        return _utcnow() + dt.timedelta(seconds=self.offset_s)

    def advance(self, days: float) -> dict[str, Any]:
        """Move the clock ``days`` on, do all that came due and release the events webhook_reorder held."""
        self.offset_s += days * 86400
        before = self.log.emitted
        processed = self.process_due()
        released = self.log.release_held()
        self.save()
        return {"now": stamp(self.now()), "processed": processed, "events": self.log.emitted - before,
                "released": released}

    def clock(self) -> dict[str, Any]:
        nxt = self.schedule[0][0] if self.schedule else None
        return {"now": stamp(self.now()), "offsetDays": round(self.offset_s / 86400, 6), "nextDue": nxt,
                "pending": len(self.schedule)}

    def _at(self, due: dt.datetime, kind: str, **args: Any) -> None:
        self.scheduled += 1
        heapq.heappush(self.schedule, (stamp(due), self.scheduled, kind, args))
        self.due_changed.set()

    def _after_days(self, days: int, kind: str, **args: Any) -> None:
        self._at(add_business_days(self.now(), days), kind, **args)

    def seconds_to_next_due(self) -> float | None:
        if not self.schedule:
            return None
        return max(0.0, (parse_stamp(self.schedule[0][0]) - self.now()).total_seconds())

    def process_due(self) -> int:
        """Do everything due on the clock, oldest first; each change is dated when it came due."""
        done = 0
        while self.schedule and parse_stamp(self.schedule[0][0]) <= self.now():
            due, _, kind, args = heapq.heappop(self.schedule)
            getattr(self, f"_due_{kind}")(parse_stamp(due), **args)
            done += 1
        return done

    # lookups
    def brand(self, brand_id: str) -> dict[str, Any]:
        if brand_id not in self.brands:
            raise SimError(404, "BRAND_NOT_FOUND", f"No brand {brand_id}.")
        return self.brands[brand_id]

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        if campaign_id not in self.campaigns:
            raise SimError(404, "CAMPAIGN_NOT_FOUND", f"No campaign {campaign_id}.")
        return self.campaigns[campaign_id]

    def order(self, order_id: str) -> dict[str, Any]:
        if order_id not in self.orders:
            raise SimError(404, "ORDER_NOT_FOUND", f"No number order {order_id}.")
        return self.orders[order_id]

    def feedback(self, brand_id: str) -> dict[str, Any]:
        return {"brandId": brand_id, "category": rules.feedback(self.brand(brand_id))}

    # brands
    def register_brand(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("referenceId")
        if isinstance(ref, str) and ref in self.refs["brand"]:
            return self.brands[self.refs["brand"][ref]]
        fields = rules.check_brand(body)
        now = stamp(self.now())
        brand_id = rules.new_id("B", self.brands, self.ids)
        brand = {"brandId": brand_id, "cspId": self.csp_id} | fields | {
            "identityStatus": "UNVERIFIED", "brandScore": None, "vettingStatus": None, "vettingId": None,
            "vettingScore": None, "createDate": now, "updateDate": now}
        self.brands[brand_id] = brand
        if ref:
            self.refs["brand"][ref] = brand_id
        self._check_identity(brand_id)
        return brand

    def _check_identity(self, brand_id: str) -> None:
        self._at(self.now() + dt.timedelta(seconds=self.score_delay_s), "identity", brand_id=brand_id)

    def update_brand(self, brand_id: str, body: dict[str, Any]) -> dict[str, Any]:
        brand = self.brand(brand_id)
        merged = {k: brand.get(k) for k in rules.BRAND_STRINGS} | {
            k: v for k, v in body.items() if k in rules.BRAND_STRINGS and k != "referenceId"}
        brand.update(rules.check_brand(merged))
        brand["updateDate"] = stamp(self.now())
        self._check_identity(brand_id)
        return brand

    def revet_brand(self, brand_id: str) -> dict[str, Any]:
        self._check_identity(self.brand(brand_id)["brandId"])
        return self.brands[brand_id]

    def order_vetting(self, brand_id: str, body: dict[str, Any]) -> dict[str, Any]:
        brand = self.brand(brand_id)
        if brand.get("entityType") == "SOLE_PROPRIETOR":
            raise SimError(400, "VETTING_NOT_ALLOWED", "A sole proprietor brand cannot be vetted.")
        if brand.get("vettingStatus") == "PENDING":
            raise SimError(409, "VETTING_IN_PROGRESS", f"Brand {brand_id}'s vetting {brand['vettingId']} is pending.")
        for name in ("evpId", "vettingClass"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise SimError(400, "MISSING_FIELD", f"{name} is required.", name)
        vetting_id = rules.new_id("V", {b.get("vettingId") for b in self.brands.values()}, self.ids)
        brand.update(vettingStatus="PENDING", vettingId=vetting_id, updateDate=stamp(self.now()),
                     evpId=body["evpId"], vettingClass=body["vettingClass"])
        self._after_days(self.vetting_days, "vetting", brand_id=brand_id, vetting_id=vetting_id)
        return {"brandId": brand_id, "vettingId": vetting_id, "evpId": body["evpId"],
                "vettingClass": body["vettingClass"], "vettingStatus": "PENDING"}

    def delete_brand(self, brand_id: str) -> dict[str, Any]:
        self.brand(brand_id)
        if any(c["brandId"] == brand_id and c["status"] == "ACTIVE" for c in self.campaigns.values()):
            raise SimError(409, "BRAND_HAS_ACTIVE_CAMPAIGNS", f"Brand {brand_id} has active campaigns.")
        brand = self.brands.pop(brand_id)
        self.refs["brand"] = {r: b for r, b in self.refs["brand"].items() if b != brand_id}
        self.log.emit(self.now(), "BRAND_DELETE", brandId=brand_id)
        return {"brandId": brand_id, "deleted": True, "referenceId": brand.get("referenceId")}

    def review_brand(self, brand_id: str, body: dict[str, Any]) -> dict[str, Any]:
        brand = self.brand(brand_id)
        rules.check_choice(body, "identityStatus", rules.IDENTITY_STATUSES)
        score = body.get("brandScore")
        if score is not None and (not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 100):
            raise SimError(400, "INVALID_FIELD", "brandScore must be a whole number from 0 to 100, or null.",
                           "brandScore")
        self._score(brand, self.now(), body["identityStatus"], score)
        return brand

    def _score(self, brand: dict[str, Any], at: dt.datetime, status: str, score: int | None) -> None:
        brand.update(identityStatus=status, brandScore=score, updateDate=stamp(at))
        self.log.emit(at, "BRAND_SCORE_UPDATE", brandId=brand["brandId"], identityStatus=status, brandScore=score)

    def _due_identity(self, at: dt.datetime, brand_id: str) -> None:
        if brand_id in self.brands:
            self._score(self.brands[brand_id], at, *rules.identity(self.brands[brand_id]))

    def _due_vetting(self, at: dt.datetime, brand_id: str, vetting_id: str) -> None:
        brand = self.brands.get(brand_id)
        if brand is None or brand.get("vettingId") != vetting_id:
            return
        passed = rules.vetting_passes(brand)
        brand["vettingStatus"] = "ACTIVE" if passed else "FAILED"
        status, score = rules.identity(brand)
        brand["vettingScore"] = score if passed else 0
        self.log.emit(at, "BRAND_VETTING_UPDATE", brandId=brand_id, vettingId=vetting_id,
                   vettingStatus=brand["vettingStatus"], vettingScore=brand["vettingScore"])
        self._score(brand, at, status, score)

    # campaigns
    def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("referenceId")
        if isinstance(ref, str) and ref in self.refs["campaign"]:
            return self.campaigns[self.refs["campaign"][ref]]
        fields = rules.check_campaign(body)
        brand = self.brand(str(body["brandId"]))
        sole = brand["identityStatus"] == "SELF_DECLARED" and fields["usecase"] == "SOLE_PROPRIETOR"
        if brand["identityStatus"] not in rules.VERIFIED and not sole:
            raise SimError(400, "BRAND_NOT_VERIFIED", f"Brand {brand['brandId']}'s identity is "
                           f"{brand['identityStatus']}: campaigns need VERIFIED or VETTED_VERIFIED.", "brandId")
        if fields["usecase"] == "SOLE_PROPRIETOR" and brand.get("entityType") != "SOLE_PROPRIETOR":
            raise SimError(400, "INVALID_FIELD", "The SOLE_PROPRIETOR use case is for sole proprietor brands.",
                           "usecase")
        now = self.now()
        campaign_id = rules.new_id("C", self.campaigns, self.ids)
        campaign = {"campaignId": campaign_id, "cspId": self.csp_id, "brandId": brand["brandId"]} | fields | {
            "status": "ACTIVE", "sharingStatus": None, "upstreamCnpId": None, "createDate": stamp(now),
            "billedDate": stamp(now), "expirationDate": stamp(add_months(now, RENEWAL_MONTHS)),
            "updateDate": stamp(now)}
        self.campaigns[campaign_id] = campaign
        self.operation[campaign_id] = {}
        if ref:
            self.refs["campaign"][ref] = campaign_id
        self._at(add_months(now, RENEWAL_MONTHS), "expiry", campaign_id=campaign_id)
        return campaign

    def _active(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.campaign(campaign_id)
        if campaign["status"] != "ACTIVE":
            raise SimError(409, "CAMPAIGN_NOT_ACTIVE", f"Campaign {campaign_id} is {campaign['status']}.")
        return campaign

    def share_campaign(self, campaign_id: str, cnp_id: str) -> dict[str, Any]:
        campaign = self._active(campaign_id)
        if cnp_id != rules.DCA_ID:
            raise SimError(400, "INVALID_CNP", f"No connectivity partner {cnp_id}; the simulator's DCA is "
                           f"{rules.DCA_ID}.", "upstreamCnpId")
        if campaign["sharingStatus"] in ("PENDING", "ACCEPTED"):
            raise SimError(409, "CAMPAIGN_ALREADY_SHARED", f"Campaign {campaign_id} is already shared "
                           f"({campaign['sharingStatus']}).")
        campaign.update(sharingStatus="PENDING", upstreamCnpId=cnp_id, updateDate=stamp(self.now()))
        self._after_days(self.sharing_days, "share", campaign_id=campaign_id)
        return {"campaignId": campaign_id, "upstreamCnpId": cnp_id, "sharingStatus": "PENDING"}

    def renew_campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self._active(campaign_id)
        expires = add_months(parse_stamp(campaign["expirationDate"]), RENEWAL_MONTHS)
        campaign.update(expirationDate=stamp(expires), billedDate=stamp(self.now()), updateDate=stamp(self.now()))
        self._at(expires, "expiry", campaign_id=campaign_id)
        return campaign

    def deactivate_campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self.campaign(campaign_id)
        if campaign["status"] == "DEACTIVATED":
            return campaign
        campaign.update(status="DEACTIVATED", updateDate=stamp(self.now()))
        self.log.emit(self.now(), "CAMPAIGN_DEACTIVATED", campaignId=campaign_id)
        return campaign

    def review_campaign(self, campaign_id: str, body: dict[str, Any]) -> dict[str, str]:
        campaign = self._active(campaign_id)
        rules.check_choice(body, "mno", rules.MNOS)
        rules.check_choice(body, "status", rules.REVIEW_OUTCOMES)
        if campaign["sharingStatus"] != "ACCEPTED":
            raise SimError(409, "CAMPAIGN_NOT_SHARED", f"Campaign {campaign_id} is not accepted by the DCA: no "
                           "carrier reviews it yet.")
        statuses, mno, outcome = self.operation[campaign_id], body["mno"], body["status"]
        if outcome == "UNSUSPENDED" and statuses.get(mno) != "SUSPENDED":
            raise SimError(409, "NOT_SUSPENDED", f"{mno} has not suspended campaign {campaign_id}.")
        self._operate(campaign, self.now(), mno, outcome, str(body.get("description") or ""))
        return dict(statuses)

    def _operate(self, campaign: dict[str, Any], at: dt.datetime, mno: str, outcome: str, description: str) -> None:
        self.operation[campaign["campaignId"]][mno] = "APPROVED" if outcome == "UNSUSPENDED" else outcome
        campaign["updateDate"] = stamp(at)
        self.log.emit(at, f"MNO_CAMPAIGN_OPERATION_{outcome}", campaignId=campaign["campaignId"], mno=mno,
                   description=description or f"{mno} {outcome.lower()} the campaign.")

    def _due_share(self, at: dt.datetime, campaign_id: str) -> None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or campaign["status"] != "ACTIVE" or campaign["sharingStatus"] != "PENDING":
            return
        accepted = rules.dca_accepts(campaign)
        campaign.update(sharingStatus="ACCEPTED" if accepted else "DECLINED", updateDate=stamp(at))
        self.log.emit(at, "CAMPAIGN_SHARE_ACCEPT" if accepted else "CAMPAIGN_SHARE_DECLINE", campaignId=campaign_id,
                   upstreamCnpId=campaign["upstreamCnpId"],
                   description="Accepted by the DCA." if accepted else "Declined by the DCA: [decline].")
        if accepted:
            self.operation[campaign_id] = dict.fromkeys(rules.MNOS, "REVIEW")
            self._at(add_business_days(at, self.review_days), "review", campaign_id=campaign_id)

    def _due_review(self, at: dt.datetime, campaign_id: str) -> None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or campaign["status"] != "ACTIVE":
            return
        for mno, outcome in rules.review(campaign).items():
            if self.operation[campaign_id].get(mno) == "REVIEW":
                why = "Public URL shortener or a rejection tag." if outcome == "REJECTED" else ""
                self._operate(campaign, at, mno, outcome, why)

    def _due_expiry(self, at: dt.datetime, campaign_id: str) -> None:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None or campaign["status"] != "ACTIVE" or parse_stamp(campaign["expirationDate"]) > at:
            return
        if campaign.get("autoRenewal", True):
            expires = add_months(parse_stamp(campaign["expirationDate"]), RENEWAL_MONTHS)
            campaign.update(expirationDate=stamp(expires), billedDate=stamp(at), updateDate=stamp(at))
            self._at(expires, "expiry", campaign_id=campaign_id)
            return
        campaign.update(status="EXPIRED", updateDate=stamp(at))
        self.log.emit(at, "CAMPAIGN_EXPIRED", campaignId=campaign_id)

    # the DCA's number orders
    def associate(self, campaign_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ref = body.get("referenceId")
        if isinstance(ref, str) and ref in self.refs["order"]:
            return self.orders[self.refs["order"][ref]]
        campaign = self._active(campaign_id)
        if campaign["sharingStatus"] != "ACCEPTED":
            raise SimError(409, "CAMPAIGN_NOT_SHARED", f"Campaign {campaign_id} is not shared with and accepted by "
                           f"the DCA ({campaign['sharingStatus']}).")
        numbers = body.get("numbers")
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
            raise SimError(400, "INVALID_FIELD", "numbers must be a non-empty list of E.164 numbers.", "numbers")
        order = self._order(campaign_id, "ASSOCIATE", list(dict.fromkeys(numbers)), self.association_days)
        if ref:
            self.refs["order"][ref] = order["orderId"]
        return order

    def disassociate(self, campaign_id: str, number: str) -> dict[str, Any]:
        self.campaign(campaign_id)
        return self._order(campaign_id, "DISASSOCIATE", [number], self.disassociation_days)

    def _order(self, campaign_id: str, kind: str, numbers: list[str], days: int) -> dict[str, Any]:
        order_id = rules.new_id("O", self.orders, self.ids)
        order = {"orderId": order_id, "campaignId": campaign_id, "kind": kind, "status": "PENDING",
                 "numbers": [{"number": n, "status": "PENDING", "reason": None} for n in numbers],
                 "createDate": stamp(self.now()), "updateDate": stamp(self.now())}
        self.orders[order_id] = order
        self._after_days(days, "order", order_id=order_id)
        return order

    def _due_order(self, at: dt.datetime, order_id: str) -> None:
        order = self.orders[order_id]
        campaign_id = order["campaignId"]
        for item in order["numbers"]:
            number, held_by = item["number"], self.numbers.get(item["number"])
            if order["kind"] == "ASSOCIATE":
                problem = rules.number_problem(number) or (
                    f"Already associated with campaign {held_by}." if held_by not in (None, campaign_id) else None)
                if problem is None:
                    self.numbers[number] = campaign_id
            else:
                problem = None if held_by == campaign_id else f"Not associated with campaign {campaign_id}."
                if problem is None:
                    del self.numbers[number]
            done = "ASSOCIATED" if order["kind"] == "ASSOCIATE" else "DISASSOCIATED"
            item.update(status="FAILED" if problem else done, reason=problem)
        ok = any(item["status"] != "FAILED" for item in order["numbers"])
        order.update(status="COMPLETED" if ok else "FAILED", updateDate=stamp(at))
        self.log.emit(at, "NUMBER_ORDER_UPDATE", campaignId=campaign_id, orderId=order_id, kind=order["kind"],
                   status=order["status"], numbers=[dict(n) for n in order["numbers"]])

    # the snapshot
    SNAPSHOT_KEYS = ("offset_s", "brands", "campaigns", "operation", "orders", "numbers", "refs", "schedule",
                     "scheduled")

    def save(self) -> None:
        """Write the snapshot (when there is a file): whole, then renamed over the old one."""
        if self.snapshot_path is None:
            return
        log = self.log
        data = {k: getattr(self, k) for k in self.SNAPSHOT_KEYS} | {
            "sequence": log.sequence, "events": log.records, "subscriptions": log.subscriptions}
        self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot_path.with_name(self.snapshot_path.name + ".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, self.snapshot_path)

    def _load(self) -> None:
        data = json.loads(self.snapshot_path.read_text())
        for key in self.SNAPSHOT_KEYS:
            if key in data:
                setattr(self, key, data[key])
        self.schedule = [tuple(item) for item in self.schedule]
        heapq.heapify(self.schedule)
        self.log.restore(data.get("events", []), data.get("sequence", 0), data.get("subscriptions", {}))
