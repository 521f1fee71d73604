"""Accounts and API keys."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, NotFound, Unauthorized, Unprocessable
from registry.db import utcnow
from registry.models import Account, ApiKey

KEY_PREFIX = "gk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def create_account(session: AsyncSession, name: str, *, rate: float | None = None) -> tuple[Account, str]:
    name = name.strip()
    if not name or len(name) > 200:
        raise Unprocessable("An account name must have 1 to 200 characters.", code="invalid_field",
                            details={"field": "name"})
    if await session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise Conflict(f"An account named '{name}' exists already.", code="account_exists")
    account = Account(name=name, max_rate_per_s=rate or 20.0, webhook_secret=secrets.token_hex(32))
    session.add(account)
    await session.flush()
    key = await issue_key(session, account.id)
    return account, key


async def issue_key(session: AsyncSession, account_id: int, label: str = "") -> str:
    key = new_key()
    session.add(ApiKey(account_id=account_id, key_hash=hash_key(key), prefix=key[:10], label=label))
    await session.flush()
    return key


async def get_account(sessions: async_sessionmaker[AsyncSession], account_id: int | None,
                      shown: object = None) -> Account:
    """The account, or 404 account_not_found (its sentence names ``shown``, the id as the request wrote it)."""
    async with sessions() as session:
        return await _account(session, account_id, shown)


async def _account(session: AsyncSession, account_id: int | None, shown: object = None) -> Account:
    account = await session.get(Account, account_id) if account_id is not None else None
    if account is None:
        raise NotFound(f"No account {account_id if shown is None else shown}.", code="account_not_found")
    return account


async def list_accounts(sessions: async_sessionmaker[AsyncSession]) -> list[Account]:
    async with sessions() as session:
        return list((await session.scalars(select(Account).order_by(Account.id))).all())


async def open_account(sessions: async_sessionmaker[AsyncSession], name: str, *,
                       rate: float | None = None) -> tuple[Account, str]:
    """A new account and its first API key (shown this once)."""
    async with sessions() as session, session.begin():
        return await create_account(session, name, rate=rate)


async def new_api_key(sessions: async_sessionmaker[AsyncSession], account_id: int) -> str:
    async with sessions() as session, session.begin():
        await _account(session, account_id)
        return await issue_key(session, account_id)


async def update_account(sessions: async_sessionmaker[AsyncSession], account_id: int,
                         changes: dict[str, Any]) -> Account:
    """Set the given settings (attribute -> value, already checked) of the account."""
    async with sessions() as session, session.begin():
        account = await _account(session, account_id)
        for name, value in changes.items():
            setattr(account, name, value)
        return account


async def rotate_webhook_secret(sessions: async_sessionmaker[AsyncSession], account_id: int) -> Account:
    return await update_account(sessions, account_id, {"webhook_secret": secrets.token_hex(32)})


class KeyAuthenticator:
    """Maps a bearer key to its account id, caching hits briefly so a hot path costs no query.

    One lookup per key at a time: the requests that miss the cache while a lookup of their key is under way await
    that lookup (when the cache expires under load, every request in flight would otherwise query at once)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cache_seconds: float = 30.0):
        self._sessionmaker = sessionmaker
        self._cache: dict[str, tuple[int, float]] = {}
        self._inflight: dict[str, asyncio.Future[int]] = {}
        self._generation = 0  # bumped by forget(): a lookup begun before it is answered but not cached
        self._ttl = cache_seconds

    async def account_id(self, key: str) -> int:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        lookup = self._inflight.get(digest)
        if lookup is None:
            lookup = self._inflight[digest] = asyncio.ensure_future(self._lookup(digest, self._generation))
            lookup.add_done_callback(lambda done: self._done(digest, done))
        # shielded: a caller that goes away (client disconnected) does not cancel the others' lookup
        return await asyncio.shield(lookup)

    def _done(self, digest: str, lookup: asyncio.Future[int]) -> None:
        if self._inflight.get(digest) is lookup:
            del self._inflight[digest]
        if not lookup.cancelled():
            lookup.exception()  # retrieved, in case every caller went away (else asyncio logs it as never retrieved)

    async def _lookup(self, digest: str, generation: int) -> int:
        async with self._sessionmaker() as session:
            row = (await session.execute(
                select(ApiKey.account_id, ApiKey.key_hash, Account.status)
                .join(Account, Account.id == ApiKey.account_id)
                .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            )).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest) or row.status != "active":
            raise Unauthorized("The API key is not valid.", code="invalid_api_key")
        if len(self._cache) > 10_000:
            self._cache.clear()
        if generation == self._generation:
            self._cache[digest] = (row.account_id, time.monotonic() + self._ttl)
        return row.account_id

    def forget(self) -> None:
        self._cache.clear()
        self._inflight.clear()
        self._generation += 1


async def revoke_keys(session: AsyncSession, account_id: int) -> None:
    for key in (await session.scalars(select(ApiKey).where(ApiKey.account_id == account_id,
                                                           ApiKey.revoked_at.is_(None)))).all():
        key.revoked_at = utcnow()
