"""A carrier that goes down mid-burst: the messages it had queued and in flight move to the next carrier of their
failover route. Two SMPP simulators over real sockets; none is lost, and duplicates are only among those that were
truly in flight on the first carrier (at most its window)."""

from __future__ import annotations

import asyncio
import collections

from sqlalchemy import func, select

from carriers.simulator import SmscSimulator
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.settings_routes import CarrierSettings, RouteSettings
from gateway.store.models import Message
from tests.conftest import new_customer, wait_for

TOTAL = 500
WINDOW = 20


async def test_messages_move_to_the_next_carrier_when_the_first_drops_mid_burst(aiohttp_client, migrated,
                                                                                sessionmaker):
    a, b = (SmscSimulator(accounts={"gateway": "secret"}, receipt_delay=0.02) for _ in range(2))
    await a.start()
    await b.start()
    try:
        migrated.carriers = [CarrierSettings(name="a", port=a.port, window=WINDOW, enquire_link_interval=5.0),
                             CarrierSettings(name="b", port=b.port, window=WINDOW, enquire_link_interval=5.0)]
        migrated.routes = [RouteSettings(name="fo", failover=["a", "b"])]
        client = await aiohttp_client(create_app(migrated))
        pool = client.app[app_keys.CARRIERS]
        await wait_for(lambda: asyncio.sleep(0, all(c.ready for c in pool.carriers)))
        customer = await new_customer(client, sessionmaker, "acme")
        numbers = [f"+1415555{i:04d}" for i in range(TOTAL)]

        async def send(chunk: list[str]) -> None:
            resp = await client.post("/v1/messages/batch", headers=customer.headers,
                                     json={"messages": [{"to": n, "body": "hi"} for n in chunk]})
            assert resp.status in (200, 202) and (await resp.json())["failed"] == 0

        sending = asyncio.gather(*(send(numbers[i:i + 50]) for i in range(0, TOTAL, 50)))
        await wait_for(lambda: asyncio.sleep(0, len(a.received) >= TOTAL // 5), timeout=30)
        await a.stop()  # carrier a goes down mid-burst, with messages queued and in flight
        taken_by_a = len(a.received)
        await sending
        assert taken_by_a < TOTAL  # the burst was really cut

        async def all_taken() -> bool:
            return {s.destination for s in a.received} | {s.destination for s in b.received} >= set(numbers)

        await wait_for(all_taken, timeout=60)
        await a.start()  # a comes back and reports the messages it had taken

        async def all_delivered() -> bool:
            async with sessionmaker() as session:
                counts = dict((await session.execute(
                    select(Message.status, func.count()).group_by(Message.status))).all())
            return counts == {"delivered": TOTAL}

        await wait_for(all_delivered, timeout=60)
        seen = collections.Counter(s.destination for s in a.received + b.received)
        duplicates = sum(n - 1 for n in seen.values())
        assert set(seen) == set(numbers) and len(b.received) > 0
        assert duplicates <= WINDOW, duplicates
    finally:
        await a.stop()
        await b.stop()
