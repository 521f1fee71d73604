"""A number's own keywords (auto-replies, extra opt-out and opt-in words): list, set, delete."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import keywords as kw
from gateway.errors import Conflict, NotFound
from gateway.store.models import NumberKeyword
from gateway.two_way.numbers import account_number

RESERVED = {"opt_out": sorted(kw.OPT_OUT_WORDS), "opt_in": sorted(kw.OPT_IN_WORDS), "help": sorted(kw.HELP_WORDS)}


async def number_keywords(sessions: async_sessionmaker[AsyncSession], account_id: int,
                          number: str) -> list[NumberKeyword]:
    async with sessions() as session:
        n = await account_number(session, account_id, number)
        return list((await session.scalars(select(NumberKeyword).where(NumberKeyword.number_id == n.id)
                                           .order_by(NumberKeyword.keyword))).all())


async def set_keyword(sessions: async_sessionmaker[AsyncSession], account_id: int, number: str, word: str,
                      action: str, message: str | None) -> NumberKeyword:
    """Add the keyword or change its action and message. Raises keywords.KeywordError when it is not allowed."""
    async with sessions() as session, session.begin():
        n = await account_number(session, account_id, number)
        word = word.strip().upper()
        existing = await session.scalar(select(NumberKeyword).where(NumberKeyword.number_id == n.id,
                                                                    NumberKeyword.keyword == word))
        count = await session.scalar(select(func.count()).select_from(NumberKeyword)
                                     .where(NumberKeyword.number_id == n.id))
        valid = kw.validate_keyword(word, action, message, count - (1 if existing else 0))
        if existing is None:
            existing = NumberKeyword(number_id=n.id, keyword=valid.keyword)
            session.add(existing)
        existing.action, existing.message = valid.action, valid.message
        await session.flush()
        return existing


async def delete_keyword(sessions: async_sessionmaker[AsyncSession], account_id: int, number: str,
                         word: str) -> str:
    """Remove the keyword; the word as removed (upper case). Reserved words stay (409)."""
    word = word.strip().upper()
    if word in kw.RESERVED:
        raise Conflict(f"{word} is a reserved keyword and cannot be removed.", code="reserved_keyword")
    async with sessions() as session, session.begin():
        n = await account_number(session, account_id, number)
        result = await session.execute(delete(NumberKeyword).where(NumberKeyword.number_id == n.id,
                                                                   NumberKeyword.keyword == word))
    if result.rowcount == 0:
        raise NotFound(f"{word} is not a keyword of this number.", code="keyword_not_found")
    return word
