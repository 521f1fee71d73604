"""The real Alembic migrations, on SQLite and on the local PostgreSQL server: up, down, up, matching the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway.store.db import create_engine
from gateway.store.migrate import downgrade, upgrade
from gateway.store.models_all import metadata

TABLES = {"accounts", "api_keys", "numbers", "messages", "message_parts", "message_events", "unmatched_receipts",
          "opt_outs", "webhook_deliveries", "webhook_attempts", "inbound_messages", "inbound_parts", "inbound_seen",
          "number_keywords", "voice_messages", "voice_events", "brands", "campaigns", "transitions",
          "campaign_operations", "number_orders", "number_order_items", "registry_requests", "registry_events",
          "gateway_instances", "alembic_version"}


async def _check(url: str) -> None:
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert TABLES <= tables
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), metadata))
            assert diff == [], f"models and migrations differ: {diff}"
    finally:
        await engine.dispose()
    await downgrade(url, "base")
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            left = set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}
            assert left == set()
    finally:
        await engine.dispose()
    await upgrade(url)  # and up again


async def test_migrations_on_sqlite(settings):
    await _check(settings.database_url)
    engine = create_engine(settings.database_url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    await engine.dispose()


@pytest.mark.postgres
async def test_migrations_on_postgresql(postgres_url):
    await _check(postgres_url)
