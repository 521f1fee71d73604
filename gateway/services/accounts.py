"""Accounts and API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import Conflict, Unauthorized, Unprocessable
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


class KeyAuthenticator:
    """Maps a bearer key to its account id, caching hits briefly so a hot path costs no query."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], cache_seconds: float = 30.0):
        self._sessionmaker = sessionmaker
        self._cache: dict[str, tuple[int, float]] = {}
        self._ttl = cache_seconds

    async def account_id(self, key: str) -> int:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit and hit[1] > now:
            return hit[0]
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
        self._cache[digest] = (row.account_id, now + self._ttl)
        return row.account_id

    def forget(self) -> None:
        self._cache.clear()


async def revoke_keys(session: AsyncSession, account_id: int) -> None:
    for key in (await session.scalars(select(ApiKey).where(ApiKey.account_id == account_id,
                                                           ApiKey.revoked_at.is_(None)))).all():
        key.revoked_at = utcnow()
