"""Apply the Alembic migrations to the configured database (`gatewayctl db upgrade`, `make run`, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from gateway.store.db import create_engine

INI = Path(__file__).with_name("alembic.ini")


def alembic_config(url: str) -> Config:
    cfg = Config(str(INI))
    cfg.set_main_option("script_location", str(INI.parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def _run(url: str, action, revision: str) -> None:  # noqa: ANN001
    """Run an Alembic command in this event loop, on a connection of our own engine."""
    cfg = alembic_config(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            def _do(sync_conn) -> None:  # noqa: ANN001
                cfg.attributes["connection"] = sync_conn
                action(cfg, revision)

            await conn.run_sync(_do)
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "heads") -> None:
    await _run(url, command.upgrade, revision)


async def current(url: str) -> str | None:
    """The database's revision, or None for a database no migration has touched (a new one)."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            heads = await conn.run_sync(lambda sync_conn: MigrationContext.configure(sync_conn).get_current_heads())
    finally:
        await engine.dispose()
    return ",".join(sorted(heads)) or None


async def downgrade(url: str, revision: str) -> None:
    await _run(url, command.downgrade, revision)


def upgrade_sync(url: str) -> None:
    asyncio.run(upgrade(url))
