"""10DLC brands, registered with the registry as a CSP: registration (one brand per EIN), updates, identity
re-checks, external vetting, the registry's feedback, deletion; listing and history."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, GatewayError, NotFound, ServiceUnavailable, Unprocessable
from gateway.tendlc.csp import Csp, Result
from gateway.validation import row_id
from registry import states
from registry.csp.client import CspError
from registry.models import Account, Brand, Campaign, RegistryRequest

T = TypeVar("T")


async def find(session: AsyncSession, model: type[T], ident: str, what: str, account_id: int | None = None) -> T:
    """The brand or campaign whose id ``ident`` is (of the account, when one is given), or 404 <what>_not_found."""
    key = row_id(ident)
    obj = await session.get(model, key) if key is not None else None
    if obj is None or (account_id is not None and obj.account_id != account_id):
        raise NotFound(f"No {what} {ident}.", code=f"{what}_not_found")
    return obj


def reference_id(kind: str, ident: int) -> str:
    """Our id in a registration (the registry's referenceId): a retry answers what the first attempt made."""
    return f"{kind}{ident}-{secrets.token_hex(4)}"


def refusal(exc: CspError) -> GatewayError:
    """The registry's refusal as the API answers it: its code in lower case, 409 for a conflict, else 422."""
    code = exc.code.lower() if exc.code.replace("_", "").isalnum() else "registry_rejected"
    details = {"registry_code": exc.code, "registry_status": exc.status}
    if exc.status == 409:
        return Conflict(f"The registry refused it: {exc.message}", code=code, details=details)
    return Unprocessable(f"The registry refused it: {exc.message}", code=code, details=details)


def unavailable(exc: CspError) -> ServiceUnavailable:
    return ServiceUnavailable(f"The registry cannot be reached now ({exc.message}); nothing was changed. Try again "
                              "later.", code="registry_unavailable", headers={"Retry-After": "30"})


async def send(csp: Csp, request_id: int, events_base: str | None) -> Result:
    """Make a stored request (the registry first subscribed to our events): done or pending, or the registry's
    refusal raised."""
    await csp.subscribe(events_base)
    result = await csp.send(request_id)
    if result.status == "failed" and result.error is not None:
        raise refusal(result.error)
    return result


async def pending_of(sessions: async_sessionmaker[AsyncSession], entity: str, ident: int) -> list[dict[str, Any]]:
    """The requests still waiting to reach the registry for one brand, campaign or order."""
    async with sessions() as session:
        rows = (await session.scalars(select(RegistryRequest).where(
            RegistryRequest.entity == entity, RegistryRequest.entity_id == ident,
            RegistryRequest.status == "pending").order_by(RegistryRequest.id))).all()
    return [{"request_id": r.id, "operation": r.operation, "attempts": r.attempts, "error": r.last_error}
            for r in rows]


async def register(csp: Csp, account_id: int | None, fields: dict[str, Any], *, actor: str,
                   events_base: str | None = None) -> tuple[Brand | None, Result]:
    """A new brand of the account from checked ``fields`` (the EIN as NN-NNNNNNN), registered with the registry:
    stored first, then sent; it waits a moment for the identity check's result. 409 brand_exists when a brand
    has this EIN already (the registry keeps one per EIN)."""
    async with csp.sessions() as session, session.begin():
        if account_id is None or await session.get(Account, account_id) is None:
            raise NotFound(f"No account {account_id}.", code="account_not_found")
        ein = fields["ein"]
        existing = await session.scalar(select(Brand).where(Brand.ein == ein, Brand.status != "deleted")
                                        .order_by(Brand.id).limit(1))
        if existing is not None:
            raise Conflict(f"Brand {existing.id} already has the EIN {ein}.", code="brand_exists",
                           details={"brand_id": existing.id, "account_id": existing.account_id})
        brand = Brand(account_id=account_id, status="created", **fields)
        session.add(brand)
        await session.flush()
        brand.reference_id = reference_id("B", brand.id)
        states.record(session, "brand", brand.id, None, "created", actor)
        request = csp.request(session, "brand", brand.id, "register")
    result = await send(csp, request.id, events_base)
    if result.status == "done":
        await csp.wait_for(Brand, brand.id, ("submitted",), csp.settings.register_wait_s)
    async with csp.sessions() as session:
        return await session.get(Brand, brand.id), result


async def _registered(session: AsyncSession, ident: str) -> Brand:
    brand = await find(session, Brand, ident, "brand")
    if brand.registry_id is None:
        raise Conflict(f"Brand {brand.id} has not reached the registry yet (its registration is pending).",
                       code="brand_not_registered")
    if brand.status == "deleted":
        raise Conflict(f"Brand {brand.id} is deleted.", code="brand_deleted")
    return brand


async def act(csp: Csp, ident: str, operation: str, *, actor: str, body: dict[str, Any] | None = None,
              events_base: str | None = None) -> tuple[Brand, Result]:
    """``operation`` on a registered brand: update (``body["changes"]``: new field values, the gateway's once
    the registry took them), revet (its identity checked again), vet (external vetting), delete."""
    async with csp.sessions() as session, session.begin():
        brand = await _registered(session, ident)
        if operation == "delete":
            live = await session.scalar(select(Campaign.id).where(
                Campaign.brand_id == brand.id, Campaign.status.in_(states.LIVE_CAMPAIGN_STATES)).limit(1))
            if live is not None:
                raise Conflict(f"Brand {brand.id} has campaign {live} still live: deactivate its campaigns first.",
                               code="brand_has_active_campaigns")
        if operation == "vet" and brand.identity_status not in states.VERIFIED:
            raise Conflict(f"Brand {brand.id} is {brand.identity_status}: vetting needs a verified identity.",
                           code="brand_not_verified")
        states.record(session, "brand", brand.id, brand.status, brand.status, actor, f"{operation} requested")
        request = csp.request(session, "brand", brand.id, operation, body)
    result = await send(csp, request.id, events_base)
    async with csp.sessions() as session:
        return await session.get(Brand, brand.id), result


async def feedback(csp: Csp, ident: str) -> dict[str, Any]:
    """The registry's explanation of the brand's identity check (categories of what to fix; none when verified);
    503 registry_unavailable when it cannot be asked now."""
    async with csp.sessions() as session:
        brand = await _registered(session, ident)
    answer, error, calls = await csp.calling(lambda: csp.client.brand_feedback(brand.registry_id))
    async with csp.sessions() as session, session.begin():
        csp.record_calls(session, "brand", brand, calls)
    if error is not None:
        raise unavailable(error) if error.retryable else refusal(error)
    categories = answer.get("category") if isinstance(answer, dict) else None
    return {"brand_id": brand.id, "registry_id": brand.registry_id,
            "categories": categories if isinstance(categories, list) else []}


async def listing(sessions: async_sessionmaker[AsyncSession], model: type[T], account_id: int | None = None) -> list[T]:
    """Every brand or campaign (``model``), or the account's, in id order."""
    stmt = select(model).order_by(model.id)
    if account_id is not None:
        stmt = stmt.where(model.account_id == account_id)
    async with sessions() as session:
        return list((await session.scalars(stmt)).all())


async def list_brands(sessions: async_sessionmaker[AsyncSession], account_id: int | None = None) -> list[Brand]:
    return await listing(sessions, Brand, account_id)


async def brand_history(sessions: async_sessionmaker[AsyncSession], ident: str,
                        account_id: int | None = None) -> tuple[Brand, list[dict]]:
    async with sessions() as session:
        brand = await find(session, Brand, ident, "brand", account_id)
        return brand, await states.history(session, "brand", brand.id)
