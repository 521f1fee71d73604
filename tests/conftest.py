"""Shared fixtures: settings on a temporary SQLite file, a migrated database, the app, accounts."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select, text

from gateway.bench.processes import drop_redis_prefix, scratch_database
from gateway.settings import Settings, load_settings
from gateway.settings_routes import CarrierSettings
from gateway.store.db import create_engine, create_sessionmaker
from gateway.store.migrate import upgrade

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
OPERATOR_TOKEN = "op_test_token"


def make_settings(tmp_path: Path, **carrier: Any) -> Settings:
    settings = load_settings(env={})
    settings.server.data_dir = str(tmp_path)
    # never the defaults nor the repository's data/: `make run` may be using them while the tests run
    settings.server.port = settings.simulator.smpp_port = settings.simulator.http_port = 0
    settings.simulator.voice_port = 0
    settings.registry.simulator_port = 0  # the registry simulator, in the app's process
    settings.registry.simulator_snapshot = ""
    settings.registry.reconcile_interval_s = 3600.0  # tests reconcile when they mean to
    settings.voice.carrier_url = "http://127.0.0.1:0"  # an embedded voice simulator's, when a test embeds one
    settings.voice.cache_dir = str(tmp_path / "audio")
    settings.database.url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    settings.security.operator_token = OPERATOR_TOKEN
    settings.security.key_cache_seconds = 0.0
    settings.simulator.embedded = False
    settings.dispatcher.poll_interval_ms = 50
    settings.dispatcher.receipt_batch_ms = 5
    settings.dispatcher.retry_min_ms = 50
    settings.dispatcher.retry_max_ms = 200
    settings.pacing.enabled = False  # tests of pacing turn it on
    settings.webhooks.allow_private_addresses = True  # the tests' webhook receivers listen on 127.0.0.1
    settings.webhooks.processes = 0  # the sender in the app's process; tests of the worker processes turn them on
    settings.carriers = [CarrierSettings(**{"name": "sim", "port": 0, "enquire_link_interval": 5.0, **carrier})]
    return settings


@pytest.fixture
async def sim():
    """The SMSC simulator on free ports (SMPP and control API), with quick receipts."""
    from carriers.simulator import SimulatorServices

    services = SimulatorServices(accounts={"gateway": "secret"}, receipt_delay=0.02)
    await services.start()
    yield services.sim
    await services.stop()


@pytest.fixture
async def kannel_smsc():
    """The SMPP simulator for a real Kannel's SMSC (decimal ids, as Kannel's msg-id-type 0x00 reads them); skips
    (fails in CI) when Kannel is not installed."""
    from carriers.simulator import SmscSimulator
    from tests.kannel import require_kannel

    require_kannel()
    simulator = SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.05, id_format="decimal")
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def migrated(settings: Settings) -> Settings:
    await upgrade(settings.database_url)
    return settings


@pytest.fixture
async def sessionmaker(migrated: Settings):
    engine = create_engine(migrated.database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def _postgres_reachable(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    problem = await _postgres_reachable(POSTGRES_URL)
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL must be reachable in CI at {POSTGRES_URL}: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({problem})")
    async with scratch_database(POSTGRES_URL, "gw_test") as url:
        yield url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The test Redis server's URL; each test gets its own key prefix (``redis_prefix``) and cleans it up."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        await client.aclose()
        if IN_CI:
            pytest.fail(f"Redis must be reachable in CI at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({type(exc).__name__}: {exc})")
    try:
        yield REDIS_URL
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"gwtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    await drop_redis_prefix(redis_url, prefix)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll an async predicate until it is true; fail the test when the timeout passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@dataclass
class Customer:
    account_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


ADMIN = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def new_customer(client, sessionmaker, name: str,
                       numbers: tuple[tuple[str, str], ...] = (("12345", "short_code"),)) -> Customer:
    """Create an account through the admin API and give it numbers straight in the registry."""
    from registry.models import Number

    resp = await client.post("/admin/accounts", json={"name": name}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    async with sessionmaker() as session, session.begin():
        for number, kind in numbers:
            session.add(Number(number=number, type=kind, country="US", capabilities="sms,voice",
                               status="active", account_id=data["id"]))
    return Customer(data["id"], data["api_key"])


# a toll-free verification request as a customer writes it (the example's; its "numbers" aside)
TOLL_FREE_REQUEST = {k: v for k, v in json.loads((Path(__file__).parent.parent / "examples" /
                                                  "toll_free_verification.json").read_text()).items() if k != "numbers"}


async def live_campaign(session, account_id: int, trust_score: int, use_case: str = "2FA"):
    """A brand with ``trust_score`` and a campaign the registry made live (shared, every carrier approved), straight
    in the database, for tests of the send path that are not about registration (tests/gateway/tendlc is)."""
    from registry.models import Brand, Campaign, CampaignOperation

    brand = Brand(account_id=account_id, legal_name="Acme", ein="12-3456789", entity_type="PRIVATE_PROFIT",
                  vertical="RETAIL", website="https://acme.example", country="US", contact_email="a@acme.example",
                  status="complete", identity_status="VERIFIED", trust_score=trust_score,
                  registry_id=f"B{account_id:06d}")
    session.add(brand)
    await session.flush()
    campaign = Campaign(account_id=account_id, brand_id=brand.id, use_case=use_case, description="codes",
                        sample_messages="[]", opt_in_message="x", opt_out_message="y", help_message="z",
                        status="active", registry_id=f"C{account_id:06d}", registry_status="ACTIVE",
                        sharing_status="ACCEPTED")
    session.add(campaign)
    await session.flush()
    session.add_all(CampaignOperation(campaign_id=campaign.id, mno=mno, status="APPROVED")
                    for mno in ("ATT", "TMOBILE", "VERIZON", "USCELLULAR"))
    return campaign


async def verify_toll_free(sessionmaker, account_id: int, *numbers: str) -> None:
    """Give an account's toll-free numbers a verified toll-free verification straight in the registry (as
    new_customer gives numbers), for tests that send from them: carriers block unverified ones."""
    from gateway.numbers.toll_free import parse
    from registry import toll_free
    from registry.models import Number

    fields, _ = parse(TOLL_FREE_REQUEST, partial=True)
    async with sessionmaker() as session, session.begin():
        rows = (await session.scalars(select(Number).where(Number.number.in_(numbers)))).all()
        verification = await toll_free.submit(session, account_id, list(rows), fields, "test")
        for action in ("start_review", "verify"):
            await toll_free.review(session, verification, action, None, "test")
