"""Toll-free verification requests as the API runs them: a customer submits one for its toll-free numbers, reads it
and, once rejected, edits and resubmits it; the operator, as the reviewer, starts the review, verifies or rejects.
What a request must hold, its states and which numbers may send are in the registry leaf (registry.toll_free)."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from yarl import URL

from gateway.errors import Conflict, NotFound, Unprocessable
from gateway.validation import Fields, e164, origination, row_id
from registry import states, toll_free
from registry.models import Number
from registry.toll_free import TollFreeVerification

ADDRESS = ("street", "street2", "city", "region", "postal_code", "country")
CONTACT = ("first_name", "last_name", "email", "phone")
FIELDS = {"numbers", "business_name", "website", "address", "contact", "use_case", "use_case_summary",
          "monthly_volume", "opt_in_type", "opt_in_workflow", "opt_in_image_urls", "sample_messages",
          "additional_info"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DESCRIPTION = (20, 4096)  # characters of a summary or an opt-in workflow: a sentence or more


def _invalid(field: str, sentence: str) -> Unprocessable:
    return Unprocessable(sentence, code="invalid_field", details={"field": field})


def _web_url(value: Any, field: str) -> str:
    """An http(s) URL of a named host (a dot in it), as reviewers open them."""
    try:
        url = URL(value) if isinstance(value, str) and len(value) <= 2000 else None
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or "." not in (url.host or "") or any(
            c.isspace() for c in value):
        raise _invalid(field, f"The field '{field}' must be an http(s) URL such as https://acme.example/opt-in.png.")
    return value


def _nested(data: dict[str, Any], name: str, names: tuple[str, ...]) -> Fields:
    """The object ``name`` as Fields named '<name>.<field>' (unknown ones: 400 unknown_field)."""
    value = data.get(name)
    if value is None:
        raise Unprocessable(f"The field '{name}' is required.", code="missing_field", details={"field": name})
    if not isinstance(value, dict):
        raise _invalid(name, f"The field '{name}' must be an object with {', '.join(names)}.")
    return Fields({f"{name}.{k}": v for k, v in value.items()}, {f"{name}.{n}" for n in names})


def _choice(f: Fields, name: str, choices: tuple[str, ...]) -> str:
    value = f.text(name, required=True, max_length=60) or ""
    if value not in choices:
        raise _invalid(name, f"The field '{name}' is one of {', '.join(choices)}.")
    return value


def _description(f: Fields, name: str) -> str:
    value = (f.text(name, required=True, max_length=_DESCRIPTION[1], allow_empty=False) or "").strip()
    if len(value) < _DESCRIPTION[0]:
        raise _invalid(name, f"The field '{name}' describes it in {_DESCRIPTION[0]} to {_DESCRIPTION[1]:,} "
                             "characters.")
    return value


def _texts(data: dict[str, Any], name: str, max_length: int, url: bool = False) -> str:
    """A list of 1 to 5 texts (or URLs), stored as JSON."""
    value = data.get(name)
    if value is None:
        raise Unprocessable(f"The field '{name}' is required.", code="missing_field", details={"field": name})
    if not isinstance(value, list) or not 1 <= len(value) <= 5 or not all(
            isinstance(v, str) and v.strip() and len(v) <= max_length for v in value):
        raise _invalid(name, f"The field '{name}' is a list of 1 to 5 {'URLs' if url else 'texts'} of up to "
                             f"{max_length:,} characters.")
    return json.dumps([_web_url(v, name) for v in value] if url else value)


def _numbers(data: dict[str, Any]) -> list[str]:
    value = data.get("numbers")
    if value is None:
        raise Unprocessable("The field 'numbers' is required.", code="missing_field", details={"field": "numbers"})
    if not isinstance(value, list) or not 1 <= len(value) <= toll_free.MAX_NUMBERS or not all(
            isinstance(v, str) for v in value):
        raise _invalid("numbers", f"The field 'numbers' is a list of 1 to {toll_free.MAX_NUMBERS} toll-free numbers "
                                  "of this account.")
    return list(dict.fromkeys(origination(v, field="numbers") for v in value))


def parse(data: dict[str, Any], *, partial: bool = False) -> tuple[dict[str, Any], list[str] | None]:
    """The request's columns and its numbers (E.164) from a JSON body, each field checked (422 missing_field,
    invalid_field, invalid_phone, with the field; 400 unknown_field). ``partial``: only the fields given (an edit
    before resubmitting; numbers None when not given)."""
    f = Fields(data, FIELDS)
    out: dict[str, Any] = {}

    def given(name: str) -> bool:
        return not partial or name in data

    if given("business_name"):
        out["business_name"] = (f.text("business_name", required=True, max_length=255, allow_empty=False)
                                or "").strip()
    if given("website"):
        out["website"] = _web_url(f.text("website", required=True, max_length=255), "website")
    if given("address"):
        a = _nested(data, "address", ADDRESS)
        out.update({name: (a.text(f"address.{name}", required=True, max_length=size, allow_empty=False)
                           or "").strip() for name, size in (("street", 255), ("city", 100), ("region", 100),
                                                              ("postal_code", 20))})
        out["street2"] = (a.text("address.street2", max_length=255) or "").strip() or None
        country = (a.text("address.country", required=True) or "").strip().upper()
        if not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise _invalid("address.country", "The field 'address.country' is a country's two-letter ISO code (US).")
        out["country"] = country
    if given("contact"):
        c = _nested(data, "contact", CONTACT)
        for name in ("first_name", "last_name"):
            out[f"contact_{name}"] = (c.text(f"contact.{name}", required=True, max_length=100, allow_empty=False)
                                      or "").strip()
        email = (c.text("contact.email", required=True, max_length=255) or "").strip()
        if not _EMAIL.fullmatch(email):
            raise _invalid("contact.email", "The field 'contact.email' must be an e-mail address.")
        out["contact_email"] = email
        out["contact_phone"] = e164(c.text("contact.phone", required=True, max_length=40) or "",
                                    field="contact.phone")
    if given("use_case"):
        out["use_case"] = _choice(f, "use_case", toll_free.USE_CASES)
    for name in ("use_case_summary", "opt_in_workflow"):
        if given(name):
            out[name] = _description(f, name)
    if given("monthly_volume"):
        volume = f.integer("monthly_volume")
        if volume not in toll_free.MONTHLY_VOLUMES:
            raise _invalid("monthly_volume", "The field 'monthly_volume' is one of "
                           f"{', '.join(str(v) for v in toll_free.MONTHLY_VOLUMES)} (messages a month; the last: "
                           "that many or more).")
        out["monthly_volume"] = volume
    if given("opt_in_type"):
        out["opt_in_type"] = _choice(f, "opt_in_type", toll_free.OPT_IN_TYPES)
    if given("opt_in_image_urls"):
        out["opt_in_image_urls"] = _texts(data, "opt_in_image_urls", 2000, url=True)
    if given("sample_messages"):
        out["sample_messages"] = _texts(data, "sample_messages", 1024)
    if "additional_info" in data:
        out["additional_info"] = (f.text("additional_info", max_length=4096) or "").strip() or None
    return out, (_numbers(data) if given("numbers") else None)


async def _find(session: AsyncSession, ident: str, account_id: int | None) -> TollFreeVerification:
    key = row_id(ident)
    found = await session.get(TollFreeVerification, key) if key is not None else None
    if found is None or (account_id is not None and found.account_id != account_id):
        raise NotFound(f"No toll-free verification {ident}.", code="toll_free_verification_not_found")
    return found


async def _owned(session: AsyncSession, account_id: int, values: list[str]) -> list[Number]:
    """The account's numbers written ``values``, in that order; 422 number_not_owned for one it does not hold."""
    rows = (await session.scalars(select(Number).where(Number.number.in_(values), Number.account_id == account_id,
                                                       Number.status != "released"))).all()
    found = {n.number: n for n in rows}
    missing = [v for v in values if v not in found]
    if missing:
        raise Unprocessable(f"{missing[0]} is not a number of this account.", code="number_not_owned",
                            details={"field": "numbers", "number": missing[0]})
    return [found[v] for v in values]


async def submit(sessions: async_sessionmaker[AsyncSession], account_id: int, data: dict[str, Any],
                 actor: str) -> tuple[TollFreeVerification, list[str]]:
    """A new request of the account from a JSON body (see parse): submitted, for review."""
    fields, values = parse(data)
    async with sessions() as session, session.begin():
        numbers = await _owned(session, account_id, values or [])
        verification = await toll_free.submit(session, account_id, numbers, fields, actor)
        await _flush(session)
        return verification, [n.number for n in numbers]


async def _flush(session: AsyncSession) -> None:
    """Write the request's numbers: another request that took one of them meanwhile makes it a 409."""
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("A number of this request was put in another request meanwhile; a number is in one request "
                       "at a time.", code="toll_free_number_in_request") from None


async def listing(sessions: async_sessionmaker[AsyncSession], *, account_id: int | None = None,
                  status: str | None = None) -> list[tuple[TollFreeVerification, list[str]]]:
    """The requests (of one account, in one status), oldest first, each with its numbers."""
    stmt = select(TollFreeVerification).order_by(TollFreeVerification.id)
    if account_id is not None:
        stmt = stmt.where(TollFreeVerification.account_id == account_id)
    if status is not None:
        stmt = stmt.where(TollFreeVerification.status == status)
    async with sessions() as session:
        rows = list((await session.scalars(stmt)).all())
        numbers = await toll_free.numbers_of(session, [v.id for v in rows])
    return [(v, numbers[v.id]) for v in rows]


async def detail(sessions: async_sessionmaker[AsyncSession], ident: str, account_id: int | None = None
                 ) -> tuple[TollFreeVerification, list[str], list[dict]]:
    """A request (of the account, when one is given), its numbers and its state changes, oldest first."""
    async with sessions() as session:
        verification = await _find(session, ident, account_id)
        numbers = await toll_free.numbers_of(session, [verification.id])
        return verification, numbers[verification.id], await states.history(session, toll_free.ENTITY,
                                                                             verification.id)


async def resubmit(sessions: async_sessionmaker[AsyncSession], ident: str, account_id: int, data: dict[str, Any],
                   actor: str) -> tuple[TollFreeVerification, list[str]]:
    """Edit a rejected request of the account with the fields given (partial; ``numbers`` replaces its numbers)
    and submit it again."""
    changes, values = parse(data, partial=True)
    async with sessions() as session, session.begin():
        verification = await _find(session, ident, account_id)
        numbers = await _owned(session, account_id, values) if values is not None else None
        await toll_free.resubmit(session, verification, changes, numbers, actor)
        await _flush(session)
        return verification, (await toll_free.numbers_of(session, [verification.id]))[verification.id]


async def review(sessions: async_sessionmaker[AsyncSession], ident: str, action: str, reason: str | None,
                 actor: str) -> tuple[TollFreeVerification, list[str]]:
    """The reviewer's ``action`` on a request: start_review, verify or reject (with a reason)."""
    async with sessions() as session, session.begin():
        verification = await _find(session, ident, None)
        await toll_free.review(session, verification, action, reason, actor)
        return verification, (await toll_free.numbers_of(session, [verification.id]))[verification.id]


async def of_number(sessions: async_sessionmaker[AsyncSession], account_id: int, value: str
                    ) -> tuple[Number, TollFreeVerification | None, list[str]]:
    """One of the account's toll-free numbers, the request of its lease (None: in none) and that request's
    numbers; 404 number_not_found for a number the account does not hold, 422 number_not_toll_free."""
    async with sessions() as session:
        number = await session.scalar(select(Number).where(Number.number == value, Number.account_id == account_id,
                                                           Number.status != "released"))
        if number is None:
            raise NotFound(f"No number {value}.", code="number_not_found")
        if number.type != "toll_free":
            raise Unprocessable(f"{value} is a {number.type}, not a toll-free number: toll-free verification is for "
                                "toll-free numbers.", code="number_not_toll_free")
        verification = await toll_free.of_number(session, number)
        if verification is None:
            return number, None, []
        return number, verification, (await toll_free.numbers_of(session, [verification.id]))[verification.id]
