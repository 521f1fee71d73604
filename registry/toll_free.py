"""Toll-free verification: what US and Canadian carriers ask about a business before they carry SMS from its
toll-free numbers, the request's states, and which toll-free numbers may send.

Since 31 January 2024 carriers block SMS from toll-free numbers that are not verified, those whose request is still
pending included (before then, a pending number could send under daily, weekly and monthly caps). So only a number
whose request is ``verified`` may send SMS: ``unverified`` names the others.

States: submitted -> in_review -> verified | rejected (with a reason); a rejected request is edited and submitted
again (rejected -> submitted). Each change is a registry Transition of entity ``toll_free_verification``, made by
``_move``, which raises states.RegistryError with a stable code when it is not allowed.

A request covers one or more toll-free numbers of one account, as the industry's form does; a number is in one
request at a time, and the request counts only while the number is that account's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from registry import states
from registry.db import Base, UTCDateTime, utcnow
from registry.models import Number

ENTITY = "toll_free_verification"
WHAT = "Toll-free verification"  # how refusals name a request
MOVES = {"submitted": {"in_review"}, "in_review": {"verified", "rejected"}, "rejected": {"submitted"},
         "verified": set()}
STATUSES = tuple(MOVES)
# what the reviewer does (gatewayctl toll-free review / verify / reject): the state it needs, the state it gives
REVIEW_ACTIONS = {"start_review": ("submitted", "in_review"), "verify": ("in_review", "verified"),
                  "reject": ("in_review", "rejected")}
# the industry form's use-case categories, opt-in types and monthly volumes (10,000,000 means that many or more)
USE_CASES = ("TWO_FACTOR_AUTHENTICATION", "ACCOUNT_NOTIFICATIONS", "CUSTOMER_CARE", "CHARITY_NONPROFIT",
             "DELIVERY_NOTIFICATIONS", "FRAUD_ALERT_MESSAGING", "EVENTS", "HIGHER_EDUCATION", "K12", "MARKETING",
             "POLLING_AND_VOTING_NON_POLITICAL", "POLITICAL_ELECTION_CAMPAIGNS", "PUBLIC_SERVICE_ANNOUNCEMENT",
             "SECURITY_ALERT")
OPT_IN_TYPES = ("VERBAL", "WEB_FORM", "PAPER_FORM", "VIA_TEXT", "MOBILE_QR_CODE")
MONTHLY_VOLUMES = (10, 100, 1_000, 10_000, 100_000, 250_000, 500_000, 750_000, 1_000_000, 5_000_000, 10_000_000)
MAX_NUMBERS = 100  # numbers in one request
NONE = "none"  # the verification status of a toll-free number that is in no request


class TollFreeVerification(Base):
    """A toll-free verification request: the business, its use case and how its recipients opt in."""

    __tablename__ = "toll_free_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    business_name: Mapped[str] = mapped_column(String(255))
    website: Mapped[str] = mapped_column(String(255))
    street: Mapped[str] = mapped_column(String(255))
    street2: Mapped[str | None] = mapped_column(String(255), nullable=True)
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100))  # state or province
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    contact_first_name: Mapped[str] = mapped_column(String(100))
    contact_last_name: Mapped[str] = mapped_column(String(100))
    contact_email: Mapped[str] = mapped_column(String(255))
    contact_phone: Mapped[str] = mapped_column(String(20))
    use_case: Mapped[str] = mapped_column(String(40))
    use_case_summary: Mapped[str] = mapped_column(Text)
    monthly_volume: Mapped[int] = mapped_column(Integer)
    opt_in_type: Mapped[str] = mapped_column(String(20))
    opt_in_workflow: Mapped[str] = mapped_column(Text)
    opt_in_image_urls: Mapped[str] = mapped_column(Text)  # JSON list of 1-5 URLs
    sample_messages: Mapped[str] = mapped_column(Text)  # JSON list of 1-5 messages
    additional_info: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it was rejected
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TollFreeNumber(Base):
    """A toll-free number in a request, with the account it was submitted for."""

    __tablename__ = "toll_free_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    verification_id: Mapped[int] = mapped_column(ForeignKey("toll_free_verifications.id", ondelete="CASCADE"),
                                                 index=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id", ondelete="CASCADE"), unique=True)
    account_id: Mapped[int] = mapped_column(Integer)


def _current(number: Number, link: TollFreeNumber) -> bool:
    """Whether the link counts: the number is still the account's it was submitted for."""
    return link.account_id == number.account_id


async def unverified(session: AsyncSession, numbers: Iterable[Number]) -> dict[str, str]:
    """The toll-free numbers among ``numbers`` that may not send SMS, each with its verification status (none,
    submitted, in_review or rejected). One query, and none when there is no toll-free number."""
    toll_free = {n.id: n for n in numbers if n.type == "toll_free"}
    if not toll_free:
        return {}
    status = dict.fromkeys((n.number for n in toll_free.values()), NONE)
    rows = await session.execute(select(TollFreeNumber, TollFreeVerification.status).join(
        TollFreeVerification, TollFreeVerification.id == TollFreeNumber.verification_id).where(
        TollFreeNumber.number_id.in_(list(toll_free))))
    for link, verification_status in rows.all():
        number = toll_free[link.number_id]
        if _current(number, link):
            status[number.number] = verification_status
    return {number: s for number, s in status.items() if s != "verified"}


async def numbers_of(session: AsyncSession, verification_ids: list[int]) -> dict[int, list[str]]:
    """verification id -> its numbers (those not released), in the order they were given."""
    found: dict[int, list[str]] = {v: [] for v in verification_ids}
    if verification_ids:
        rows = await session.execute(select(TollFreeNumber.verification_id, Number.number).join(
            Number, Number.id == TollFreeNumber.number_id).where(
            TollFreeNumber.verification_id.in_(verification_ids), Number.status != "released",
            Number.account_id == TollFreeNumber.account_id).order_by(TollFreeNumber.id))
        for verification_id, number in rows.all():
            found[verification_id].append(number)
    return found


async def of_number(session: AsyncSession, number: Number) -> TollFreeVerification | None:
    """The number's request, if any."""
    link = await session.scalar(select(TollFreeNumber).where(TollFreeNumber.number_id == number.id))
    if link is None or not _current(number, link):
        return None
    return await session.get(TollFreeVerification, link.verification_id)


async def _link(session: AsyncSession, verification: TollFreeVerification, numbers: list[Number]) -> None:
    """Make ``numbers`` the request's numbers: toll-free numbers of its account, in no other open request (a
    rejected one gives them up)."""
    if not numbers:
        raise states.RegistryError("missing_numbers", "A verification request names 1 or more toll-free numbers.",
                                   "invalid")
    for number in numbers:
        if number.account_id != verification.account_id or number.status == "released":
            raise states.RegistryError("number_not_owned", f"{number.number} is not a number of this account.",
                                       "invalid")
        if number.type != "toll_free":
            raise states.RegistryError("number_not_toll_free", f"{number.number} is a {number.type}, not a "
                                       "toll-free number: toll-free verification is for toll-free numbers.", "invalid")
    ids = [n.id for n in numbers]
    links = (await session.scalars(select(TollFreeNumber).where(TollFreeNumber.number_id.in_(ids)))).all()
    by_id = {n.id: n for n in numbers}
    taken = [link for link in links if link.verification_id != verification.id and _current(by_id[link.number_id],
                                                                                             link)]
    if taken:
        others = {v.id: v for v in (await session.scalars(select(TollFreeVerification).where(
            TollFreeVerification.id.in_([link.verification_id for link in taken])))).all()}
        for link in taken:
            other = others[link.verification_id]
            if other.status != "rejected":
                raise states.RegistryError(
                    "toll_free_number_in_request", f"{by_id[link.number_id].number} is in verification request "
                    f"{other.id} ({other.status}) already; a number is in one request at a time.")
    await session.execute(delete(TollFreeNumber).where(
        (TollFreeNumber.number_id.in_(ids)) | (TollFreeNumber.verification_id == verification.id)))
    for number in numbers:
        session.add(TollFreeNumber(verification_id=verification.id, number_id=number.id,
                                   account_id=number.account_id))


async def submit(session: AsyncSession, account_id: int, numbers: list[Number], fields: dict[str, Any],
                 actor: str) -> TollFreeVerification:
    """A new request of the account for ``numbers`` with the checked ``fields``: submitted."""
    verification = TollFreeVerification(account_id=account_id, status="submitted", **fields)
    session.add(verification)
    await session.flush()
    await _link(session, verification, numbers)
    states.record(session, ENTITY, verification.id, None, "submitted", actor)
    return verification


async def resubmit(session: AsyncSession, verification: TollFreeVerification, changes: dict[str, Any],
                   numbers: list[Number] | None, actor: str) -> None:
    """Edit a rejected request (the fields in ``changes``; its numbers when ``numbers`` is given) and submit it
    again."""
    if verification.status != "rejected":
        raise states.RegistryError("verification_not_rejected", f"Toll-free verification {verification.id} is "
                                   f"{verification.status}: only a rejected request is edited and submitted again.")
    if numbers is None:  # the numbers it still has (a newer request may have taken some)
        numbers = list((await session.scalars(select(Number).join(
            TollFreeNumber, TollFreeNumber.number_id == Number.id).where(
            TollFreeNumber.verification_id == verification.id, Number.status != "released").order_by(
            TollFreeNumber.id))).all())
    await _link(session, verification, numbers)
    for name, value in changes.items():
        setattr(verification, name, value)
    verification.reason = None
    await states.move(session, ENTITY, verification, MOVES, "submitted", actor, "edited and resubmitted",
                      "verification_not_rejected", WHAT)


async def review(session: AsyncSession, verification: TollFreeVerification, action: str, reason: str | None,
                 actor: str) -> None:
    """The reviewer's ``action`` (REVIEW_ACTIONS): start_review, verify, or reject (with a reason)."""
    needs, to = REVIEW_ACTIONS[action]
    if verification.status != needs:
        raise states.RegistryError(f"verification_not_{needs}", f"Toll-free verification {verification.id} is "
                                   f"{verification.status}: {action.replace('_', ' ')} needs one that is "
                                   f"{needs.replace('_', ' ')}.")
    if action == "reject":
        if not (reason or "").strip():
            raise states.RegistryError("missing_reason", "A rejection gives its reason, for the customer to fix.",
                                       "invalid")
        verification.reason = reason
    await states.move(session, ENTITY, verification, MOVES, to, actor, reason, f"verification_not_{needs}", WHAT)
