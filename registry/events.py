"""What the registry says, applied to the gateway's tables: its events (webhooks) and its answers to polls.

Each change is about one aspect of one thing: a brand's identity (``BRAND_SCORE_UPDATE``, ``BRAND_DELETE``) or its
vetting (``BRAND_VETTING_UPDATE``), a campaign's status (``CAMPAIGN_EXPIRED``, ``CAMPAIGN_DEACTIVATED``) or its
sharing (``CAMPAIGN_SHARE_ACCEPT``/``_DECLINE``), one carrier's review of a campaign (``MNO_CAMPAIGN_OPERATION_*``),
one number order (``NUMBER_ORDER_UPDATE``). Each aspect keeps the mark of the last change applied to it: the
registry's createDate and sequence (``mark``). Events come at least once and in any order: one whose mark is not
newer than the one held changes nothing. A poll's answer counts as of its ``updateDate`` (after every event of that
instant); without one, it is applied when it differs and leaves the mark as it is.

An event about a brand, campaign or order whose registry id the gateway has not stored yet (the answer to its
registration is still on its way) is kept as unmatched and applied once the id is stored (``apply_unmatched``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from registry import states
from registry.models import Brand, Campaign, CampaignOperation, Number, NumberOrder, NumberOrderItem, RegistryEvent

EVENT = "registry event"
POLL = "registry poll"
POLL_SEQUENCE = 10**19 - 1  # a poll's answer comes after every event of its updateDate (above any int64)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# event type -> the field naming what it is about
SUBJECTS = {"BRAND_SCORE_UPDATE": "brandId", "BRAND_DELETE": "brandId", "BRAND_VETTING_UPDATE": "brandId",
            "CAMPAIGN_SHARE_ACCEPT": "campaignId", "CAMPAIGN_SHARE_DECLINE": "campaignId",
            "MNO_CAMPAIGN_OPERATION_APPROVED": "campaignId", "MNO_CAMPAIGN_OPERATION_REJECTED": "campaignId",
            "MNO_CAMPAIGN_OPERATION_SUSPENDED": "campaignId", "MNO_CAMPAIGN_OPERATION_UNSUSPENDED": "campaignId",
            "CAMPAIGN_EXPIRED": "campaignId", "CAMPAIGN_DEACTIVATED": "campaignId", "NUMBER_ORDER_UPDATE": "orderId"}
ORDER_STATUSES = {"PENDING": "placed", "COMPLETED": "completed", "FAILED": "failed"}
ITEM_STATUSES = {("ASSOCIATE", "ASSOCIATED"): "associated", ("ASSOCIATE", "FAILED"): "failed",
                 ("DISASSOCIATE", "DISASSOCIATED"): "disassociated", ("DISASSOCIATE", "FAILED"): "failed"}


class EventError(Exception):
    """An event the gateway cannot read (answered 422 invalid_event, not stored)."""

    code = "invalid_event"


@dataclass
class Event:
    event_id: str
    type: str
    at: dt.datetime | None  # createDate, on the registry's clock
    sequence: int | None
    subject: str | None  # the brandId, campaignId or orderId it is about
    data: dict[str, Any]

    @property
    def mark(self) -> str:
        return mark(self.at, self.sequence)


@dataclass
class Outcome:
    outcome: str  # applied | ignored | unmatched
    reason: str | None = None
    campaigns: set[int] = field(default_factory=set)  # campaigns whose sending rules may have changed


def mark(at: dt.datetime | None, sequence: int | None) -> str:
    """The order key of a change: its registry time, then its sequence (compared as text)."""
    when = (at or _EPOCH).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    return f"{when}Z#{sequence or 0:019d}"


def parse_time(value: Any, name: str) -> dt.datetime | None:
    """An ISO 8601 time of the registry (``2025-01-02T03:04:05.678Z``); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise EventError(f"{name} must be an ISO 8601 time.")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"{name} must be an ISO 8601 time, not {value[:40]!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _text(data: dict[str, Any], name: str, *, max_length: int = 20, allowed: tuple[str, ...] = ()) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise EventError(f"{name} is missing or not a short text.")
    if allowed and value not in allowed:
        raise EventError(f"{name} is one of {', '.join(allowed)}, not {value[:20]!r}.")
    return value


def _score(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise EventError(f"{name} must be a whole number from 0 to 100.")
    return value


def check(data: dict[str, Any]) -> Event:
    """The event in a webhook's JSON object, with its fields checked (EventError says what is wrong)."""
    event_id = _text(data, "eventId", max_length=80)
    kind = _text(data, "eventType", max_length=60)
    sequence = data.get("sequence")
    if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int)
                                 or not 0 <= sequence < 1 << 63):
        raise EventError("sequence must be a whole number of 0 or more.")
    event = Event(event_id, kind, parse_time(data.get("createDate"), "createDate"), sequence, None, data)
    if kind not in SUBJECTS:
        return event
    event.subject = _text(data, SUBJECTS[kind])
    if kind == "BRAND_SCORE_UPDATE":
        _text(data, "identityStatus", allowed=states.IDENTITY_STATUSES)
        _score(data, "brandScore")
    elif kind == "BRAND_VETTING_UPDATE":
        _text(data, "vettingStatus", allowed=("PENDING", "ACTIVE", "FAILED"))
        _score(data, "vettingScore")
    elif kind.startswith("MNO_CAMPAIGN_OPERATION_"):
        _text(data, "mno", allowed=states.MNOS)
    elif kind == "NUMBER_ORDER_UPDATE":
        _order_fields(data)
    return event


def _order_fields(data: dict[str, Any]) -> list[dict[str, Any]]:
    _text(data, "status", allowed=tuple(ORDER_STATUSES))
    numbers = data.get("numbers")
    if not isinstance(numbers, list) or len(numbers) > 1000 or not all(
            isinstance(n, dict) and isinstance(n.get("number"), str) and isinstance(n.get("status"), str)
            for n in numbers):
        raise EventError("numbers must be a list of {number, status, reason}.")
    return numbers


def _newer(new: str | None, held: str | None) -> bool:
    """Whether a change with mark ``new`` (None: a poll that cannot say when) may overwrite the state held."""
    return new is None or held is None or new > held


def _later(held: dt.datetime | None, at: dt.datetime | None) -> dt.datetime | None:
    return max(held, at) if held and at else held or at


def _older(new: str | None, held: str | None) -> str:
    return f"older than the state held ({new} <= {held})"


# --- brands ---------------------------------------------------------------------------------------------------------
async def _brand_campaigns(session: AsyncSession, brand: Brand) -> set[int]:
    return set((await session.scalars(select(Campaign.id).where(Campaign.brand_id == brand.id))).all())


async def set_identity(session: AsyncSession, brand: Brand, identity: str, score: int | None, new_mark: str | None,
                       at: dt.datetime | None, actor: str, detail: Any = None) -> Outcome:
    if not _newer(new_mark, brand.identity_mark):
        return Outcome("ignored", _older(new_mark, brand.identity_mark))
    before = (brand.status, brand.identity_status, brand.trust_score)
    brand.identity_status, brand.trust_score = identity, score
    if brand.status != "deleted":
        brand.status = states.brand_status(identity, score is not None)
    brand.identity_mark = new_mark or brand.identity_mark
    brand.registry_updated_at = _later(brand.registry_updated_at, at)
    if before == (brand.status, brand.identity_status, brand.trust_score):
        return Outcome("ignored", "no change")
    states.record(session, "brand", brand.id, before[0], brand.status, actor,
                  f"identity {identity}, trust score {score if score is not None else '-'}", detail)
    return Outcome("applied", None, await _brand_campaigns(session, brand))


async def set_vetting(session: AsyncSession, brand: Brand, vetting: str, vetting_id: str | None, new_mark: str | None,
                      at: dt.datetime | None, actor: str, detail: Any = None) -> Outcome:
    if not _newer(new_mark, brand.vetting_mark):
        return Outcome("ignored", _older(new_mark, brand.vetting_mark))
    if (brand.vetting_status, brand.vetting_id or vetting_id) == (vetting, vetting_id or brand.vetting_id):
        brand.vetting_mark = new_mark or brand.vetting_mark
        return Outcome("ignored", "no change")
    brand.vetting_status, brand.vetting_id = vetting, vetting_id or brand.vetting_id
    brand.vetting_mark = new_mark or brand.vetting_mark
    brand.registry_updated_at = _later(brand.registry_updated_at, at)
    states.record(session, "brand", brand.id, brand.status, brand.status, actor, f"vetting {vetting}", detail)
    return Outcome("applied")


async def set_deleted(session: AsyncSession, brand: Brand, new_mark: str | None, at: dt.datetime | None, actor: str,
                      detail: Any = None) -> Outcome:
    if brand.status == "deleted":
        return Outcome("ignored", "no change")
    if not _newer(new_mark, brand.identity_mark):
        return Outcome("ignored", _older(new_mark, brand.identity_mark))
    states.record(session, "brand", brand.id, brand.status, "deleted", actor, "deleted at the registry", detail)
    brand.status, brand.identity_mark = "deleted", new_mark or brand.identity_mark
    brand.registry_updated_at = _later(brand.registry_updated_at, at)
    return Outcome("applied", None, await _brand_campaigns(session, brand))


async def apply_brand(session: AsyncSession, brand: Brand, answer: dict[str, Any], actor: str = POLL) -> Outcome:
    """The registry's answer about a brand (GET, or a registration's answer): identity, score and vetting."""
    at = parse_time(answer.get("updateDate") or answer.get("createDate"), "updateDate")
    new_mark = mark(at, POLL_SEQUENCE) if at else None
    identity = answer.get("identityStatus")
    outcome = Outcome("ignored", "no change")
    if identity in states.IDENTITY_STATUSES:
        outcome = await set_identity(session, brand, identity, _score(answer, "brandScore"), new_mark, at, actor,
                                     {"poll": answer})
    vetting = answer.get("vettingStatus")
    if vetting in ("PENDING", "ACTIVE", "FAILED"):
        vetted = await set_vetting(session, brand, vetting, answer.get("vettingId"), new_mark, at, actor,
                                   {"poll": answer})
        if vetted.outcome == "applied" and outcome.outcome != "applied":
            outcome = vetted
    return outcome


# --- campaigns ------------------------------------------------------------------------------------------------------
async def restate(session: AsyncSession, campaign: Campaign, actor: str, reason: str, detail: Any = None) -> None:
    """Derive the campaign's state again and record the change (or, with the same state, what changed)."""
    operations = (await session.scalars(select(CampaignOperation.status)
                                        .where(CampaignOperation.campaign_id == campaign.id))).all()
    before = campaign.status
    campaign.status = states.campaign_status(campaign, operations)
    states.record(session, "campaign", campaign.id, before, campaign.status, actor, reason, detail)


async def set_sharing(session: AsyncSession, campaign: Campaign, sharing: str, new_mark: str | None,
                      at: dt.datetime | None, actor: str, detail: Any = None, reason: str | None = None) -> Outcome:
    if not _newer(new_mark, campaign.sharing_mark):
        return Outcome("ignored", _older(new_mark, campaign.sharing_mark))
    campaign.sharing_mark = new_mark or campaign.sharing_mark
    if campaign.sharing_status == sharing:
        return Outcome("ignored", "no change")
    campaign.sharing_status = sharing
    campaign.registry_updated_at = _later(campaign.registry_updated_at, at)
    if sharing == "ACCEPTED":  # every carrier reviews it now (those that answered already keep their answer)
        held = set((await session.scalars(select(CampaignOperation.mno)
                                          .where(CampaignOperation.campaign_id == campaign.id))).all())
        session.add_all(CampaignOperation(campaign_id=campaign.id, mno=mno, status="REVIEW", updated_at=at)
                        for mno in states.MNOS if mno not in held)
        await session.flush()
    await restate(session, campaign, actor, reason or f"sharing {sharing}", detail)
    return Outcome("applied", None, {campaign.id})


async def set_registry_status(session: AsyncSession, campaign: Campaign, status: str, new_mark: str | None,
                              at: dt.datetime | None, actor: str, detail: Any = None,
                              expires: dt.datetime | None = None) -> Outcome:
    if not _newer(new_mark, campaign.status_mark):
        return Outcome("ignored", _older(new_mark, campaign.status_mark))
    campaign.status_mark = new_mark or campaign.status_mark
    changed = campaign.registry_status != status or (expires is not None and campaign.expires_at != expires)
    if not changed or campaign.registry_status == "DEACTIVATED":  # deactivated for good
        return Outcome("ignored", "no change")
    campaign.registry_status = status
    campaign.expires_at = expires or campaign.expires_at
    campaign.registry_updated_at = _later(campaign.registry_updated_at, at)
    await restate(session, campaign, actor, f"registry status {status}" + (
        f", expires {expires.date().isoformat()}" if expires else ""), detail)
    return Outcome("applied", None, {campaign.id})


async def set_operation(session: AsyncSession, campaign: Campaign, mno: str, status: str, new_mark: str | None,
                        at: dt.datetime | None, actor: str, description: str | None = None,
                        detail: Any = None) -> Outcome:
    row = await session.scalar(select(CampaignOperation).where(CampaignOperation.campaign_id == campaign.id,
                                                               CampaignOperation.mno == mno))
    if row is None:
        row = CampaignOperation(campaign_id=campaign.id, mno=mno, status=status)
        session.add(row)
    elif not _newer(new_mark, row.mark):
        return Outcome("ignored", _older(new_mark, row.mark))
    elif row.status == status:
        row.mark = new_mark or row.mark
        return Outcome("ignored", "no change")
    row.status, row.description, row.mark = status, description, new_mark or row.mark
    row.updated_at = _later(row.updated_at, at)
    campaign.registry_updated_at = _later(campaign.registry_updated_at, at)
    await session.flush()
    await restate(session, campaign, actor, f"{mno} {status}" + (f": {description}" if description else ""), detail)
    return Outcome("applied", None, {campaign.id})


async def apply_campaign(session: AsyncSession, campaign: Campaign, answer: dict[str, Any],
                         operations: dict[str, Any] | None = None, actor: str = POLL) -> Outcome:
    """The registry's answers about a campaign (GET campaign, GET operationStatus): status, sharing, carriers."""
    at = parse_time(answer.get("updateDate"), "updateDate")
    new_mark = mark(at, POLL_SEQUENCE) if at else None
    results = []
    status = answer.get("status")
    if status in ("ACTIVE", "EXPIRED", "DEACTIVATED"):
        results.append(await set_registry_status(session, campaign, status, new_mark, at, actor, {"poll": answer},
                                                 parse_time(answer.get("expirationDate"), "expirationDate")))
    sharing = answer.get("sharingStatus")
    if sharing in ("PENDING", "ACCEPTED", "DECLINED"):
        results.append(await set_sharing(session, campaign, sharing, new_mark, at, actor, {"poll": answer}))
    for mno, op in (operations or {}).items():
        if mno in states.MNOS and op in states.OPERATION_STATUSES:
            results.append(await set_operation(session, campaign, mno, op, new_mark, at, actor,
                                               detail={"poll": operations}))
    applied = [r for r in results if r.outcome == "applied"]
    return Outcome("applied", None, set().union(*(r.campaigns for r in applied))) if applied else \
        Outcome("ignored", "no change")


# --- number orders --------------------------------------------------------------------------------------------------
async def apply_order(session: AsyncSession, order: NumberOrder, answer: dict[str, Any], new_mark: str | None,
                      actor: str, detail: Any = None) -> Outcome:
    """The DCA's word on an order (an event, or GET order): the order's status and each number's."""
    at = parse_time(answer.get("updateDate") or answer.get("createDate"), "updateDate")
    if new_mark is None and at is not None:
        new_mark = mark(at, POLL_SEQUENCE)
    if not _newer(new_mark, order.mark):
        return Outcome("ignored", _older(new_mark, order.mark))
    numbers = _order_fields(answer)
    order.mark = new_mark or order.mark
    order.registry_updated_at = _later(order.registry_updated_at, at)
    status = ORDER_STATUSES[answer["status"]]
    changed = order.status != status
    before = order.status
    order.status = status
    items = {i.number: i for i in (await session.scalars(select(NumberOrderItem)
                                                          .where(NumberOrderItem.order_id == order.id))).all()}
    for entry in numbers:
        item = items.get(entry["number"])
        to = ITEM_STATUSES.get((order.kind, entry["status"]))
        if item is None or to is None or item.status == to:
            continue
        changed = True
        item.status, item.reason = to, entry.get("reason") if isinstance(entry.get("reason"), str) else None
        number = await session.get(Number, item.number_id)
        if number is not None and number.campaign_id in (order.campaign_id, None):
            await states.finish_number(session, number, order.kind, to != "failed", actor,
                                       f"order {order.registry_id}: {to}" + (f" ({item.reason})" if item.reason
                                                                             else ""))
    if not changed:
        return Outcome("ignored", "no change")
    states.record(session, "order", order.id, before, order.status, actor, f"{order.kind} {answer['status']}", detail)
    return Outcome("applied", None, {order.campaign_id})


# --- events ---------------------------------------------------------------------------------------------------------
Handler = Callable[[AsyncSession, Event, Any], Awaitable[Outcome]]


async def _score_update(session: AsyncSession, e: Event, brand: Brand) -> Outcome:
    return await set_identity(session, brand, e.data["identityStatus"], e.data.get("brandScore"), e.mark, e.at,
                              EVENT, {"event": e.data})


async def _vetting(session: AsyncSession, e: Event, brand: Brand) -> Outcome:
    return await set_vetting(session, brand, e.data["vettingStatus"], e.data.get("vettingId"), e.mark, e.at, EVENT,
                             {"event": e.data})


async def _brand_delete(session: AsyncSession, e: Event, brand: Brand) -> Outcome:
    return await set_deleted(session, brand, e.mark, e.at, EVENT, {"event": e.data})


async def _share(session: AsyncSession, e: Event, campaign: Campaign) -> Outcome:
    answer = "ACCEPTED" if e.type == "CAMPAIGN_SHARE_ACCEPT" else "DECLINED"
    why = e.data.get("description")
    return await set_sharing(session, campaign, answer, e.mark, e.at, EVENT, {"event": e.data},
                             f"sharing {answer}" + (f": {why}" if isinstance(why, str) and why else ""))


async def _operation(session: AsyncSession, e: Event, campaign: Campaign) -> Outcome:
    status = e.type.rsplit("_", 1)[1]
    why = e.data.get("description")
    return await set_operation(session, campaign, e.data["mno"], "APPROVED" if status == "UNSUSPENDED" else status,
                               e.mark, e.at, EVENT, why if isinstance(why, str) and why else None, {"event": e.data})


async def _ended(session: AsyncSession, e: Event, campaign: Campaign) -> Outcome:
    status = "EXPIRED" if e.type == "CAMPAIGN_EXPIRED" else "DEACTIVATED"
    return await set_registry_status(session, campaign, status, e.mark, e.at, EVENT, {"event": e.data})


async def _order(session: AsyncSession, e: Event, order: NumberOrder) -> Outcome:
    return await apply_order(session, order, e.data, e.mark, EVENT, {"event": e.data})


HANDLERS: dict[str, tuple[type, Handler]] = {
    "BRAND_SCORE_UPDATE": (Brand, _score_update), "BRAND_VETTING_UPDATE": (Brand, _vetting),
    "BRAND_DELETE": (Brand, _brand_delete), "CAMPAIGN_SHARE_ACCEPT": (Campaign, _share),
    "CAMPAIGN_SHARE_DECLINE": (Campaign, _share), "CAMPAIGN_EXPIRED": (Campaign, _ended),
    "CAMPAIGN_DEACTIVATED": (Campaign, _ended), "NUMBER_ORDER_UPDATE": (NumberOrder, _order),
    **{f"MNO_CAMPAIGN_OPERATION_{s}": (Campaign, _operation)
       for s in ("APPROVED", "REJECTED", "SUSPENDED", "UNSUSPENDED")},
}


async def apply(session: AsyncSession, event: Event) -> Outcome:
    """Apply one checked event (not stored here: see ``store``)."""
    if event.type not in HANDLERS:
        return Outcome("ignored", f"event type {event.type} is not one the gateway follows")
    model, handler = HANDLERS[event.type]
    target = await session.scalar(select(model).where(model.registry_id == event.subject))
    if target is None:
        return Outcome("unmatched", f"no {model.__tablename__[:-1]} {event.subject} (yet)")
    return await handler(session, event, target)


async def store(session: AsyncSession, event: Event, payload: str) -> Outcome | None:
    """Store the event and apply it, in the caller's transaction; None when its eventId was stored before (a
    redelivery: nothing changes)."""
    if await session.scalar(select(RegistryEvent.id).where(RegistryEvent.event_id == event.event_id)) is not None:
        return None
    outcome = await apply(session, event)
    session.add(RegistryEvent(event_id=event.event_id, event_type=event.type, subject=event.subject,
                              registry_at=event.at, sequence=event.sequence, payload=payload,
                              outcome=outcome.outcome, reason=outcome.reason))
    return outcome


async def apply_unmatched(session: AsyncSession, subject: str) -> set[int]:
    """Apply the events kept about ``subject`` (a registry id just stored), oldest first; the campaigns changed."""
    waiting = (await session.scalars(select(RegistryEvent).where(RegistryEvent.subject == subject,
                                                                 RegistryEvent.outcome == "unmatched"))).all()
    changed: set[int] = set()
    for row in sorted(waiting, key=lambda r: mark(r.registry_at, r.sequence)):
        outcome = await apply(session, check(json.loads(row.payload)))
        row.outcome, row.reason = outcome.outcome, outcome.reason
        changed |= outcome.campaigns
    return changed
