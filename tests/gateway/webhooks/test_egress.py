"""Customer-set webhook URLs never lead into the operator's network unless the operator allows it: refused when set
(422 webhook_url_not_allowed) and again when the gateway connects, over real HTTP to a receiver on 127.0.0.1."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from yarl import URL

from carriers.loopback import LoopbackCarrier
from gateway.api import app_keys
from gateway.api.app import create_app
from gateway.store.models import Message, WebhookDelivery
from gateway.webhooks.egress import AddressNotAllowed, AddressPolicy, PolicyResolver
from gateway.webhooks.outbox import enqueue, new_delivery
from registry.db import utcnow
from tests.conftest import ADMIN, new_customer, wait_for
from tests.gateway.webhooks.test_webhooks import receiver  # the fixture: a receiver on 127.0.0.1

REFUSED = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/", "http://168.63.129.16/machine",  # AWS IPv6, Azure
    "http://100.100.100.200/latest/meta-data",  # Alibaba (shared address space)
    "http://127.0.0.1:8080/admin/accounts", "http://[::1]/", "http://localhost:6379/", "http://api.localhost/",
    "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://[fd12::1]/",  # private
    "http://[fe80::1]/", "http://169.254.1.1/",  # link-local
    "http://224.0.0.1/", "http://[ff02::1]/", "http://0.0.0.0:8080/", "http://[::]/", "http://240.0.0.1/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[64:ff9b::a00:1]/",  # IPv4 in IPv6
    "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",  # 127.0.0.1, disguised
    "http://user:pw@10.0.0.1/", "https://10.0.0.1:443/hook",
    "http://169.254.169.254./latest/meta-data/", "http://127.0.0.1.:8080/", "http://%31%32%37.0.0.1/",  # dot, %
]
ALLOWED = ["https://93.184.215.14/hook", "http://[2606:4700:4700::1111]/hook"]


@pytest.fixture(params=[0, 2], ids=["posts in process", "posts from 2 workers"])
async def client(request, aiohttp_client, migrated, sessionmaker):
    """The policy holds where the POSTs are made: in the app's process, or in its webhook worker processes."""
    migrated.webhooks.processes = request.param
    migrated.webhooks.allow_private_addresses = False  # the default; the shared fixtures allow loopback
    migrated.webhooks.poll_interval_ms = 50
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    return client


async def _error(resp) -> tuple[int, str, str | None]:
    body = await resp.json()
    return resp.status, body["error"]["code"], body["error"].get("details", {}).get("field")


async def test_every_customer_url_field_refuses_the_operators_network(client):
    headers = client.customer.headers
    for url in REFUSED:
        resp = await client.patch("/v1/account", json={"event_webhook_url": url}, headers=headers)
        assert await _error(resp) == (422, "webhook_url_not_allowed", "event_webhook_url"), url
    message = (await (await client.patch("/v1/account", json={"event_webhook_url": REFUSED[0]},
                                         headers=headers)).json())["error"]["message"]
    assert "cloud metadata" in message
    for url in ALLOWED:  # public addresses: no lookup needed, accepted
        resp = await client.patch("/v1/account", json={"event_webhook_url": url}, headers=headers)
        assert resp.status == 200 and (await resp.json())["event_webhook_url"] == url
    resp = await client.patch("/v1/account", json={"event_webhook_url": "ftp://93.184.215.14/"}, headers=headers)
    assert (await _error(resp))[:2] == (422, "invalid_field")

    # a message's status_callback: refused, and nothing stored
    resp = await client.post("/v1/messages", json={"to": "+14155550123", "body": "hi",
                                                   "status_callback": "http://[::ffff:169.254.169.254]/"},
                             headers=headers)
    assert await _error(resp) == (422, "webhook_url_not_allowed", "status_callback")
    async with client.app[app_keys.SESSIONMAKER]() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    # in a batch, that message alone is refused
    resp = await client.post("/v1/messages/batch", json={"messages": [
        {"to": "+14155550123", "body": "a", "status_callback": "http://2130706433/"},
        {"to": "+14155550124", "body": "b", "status_callback": ALLOWED[0]}]}, headers=headers)
    results = (await resp.json())["results"]
    assert [r["status_code"] for r in results] == [422, 202]
    assert results[0]["error"]["code"] == "webhook_url_not_allowed"

    # a voice message's status_callback, on its own route and through channel voice
    resp = await client.post("/v1/voice-messages", json={"to": "+14155550123", "script": "hi",
                                                         "status_callback": "http://169.254.169.254/"}, headers=headers)
    assert await _error(resp) == (422, "webhook_url_not_allowed", "status_callback")
    resp = await client.post("/v1/messages", json={"to": "+14155550123", "body": "hi", "channel": "voice",
                                                   "status_callback": "http://[::1]:8080/"}, headers=headers)
    assert await _error(resp) == (422, "webhook_url_not_allowed", "status_callback")

    # two-way forwarding, by the customer and by the operator
    resp = await client.patch("/v1/numbers/12345", json={"two_way_enabled": True,
                                                         "two_way_webhook_url": "http://localhost:8080/"},
                              headers=headers)
    assert await _error(resp) == (422, "webhook_url_not_allowed", "two_way_webhook_url")
    resp = await client.patch("/admin/numbers/12345", json={"two_way_webhook_url": "http://10.0.0.8/"}, headers=ADMIN)
    assert await _error(resp) == (422, "webhook_url_not_allowed", "two_way_webhook_url")
    resp = await client.patch("/v1/numbers/12345", json={"two_way_enabled": True, "two_way_webhook_url": ALLOWED[1]},
                              headers=headers)
    assert resp.status == 200


async def _deliveries(client, urls: list[str]) -> list[str]:
    """Deliveries written straight into the outbox, as a URL accepted before its name moved (or this release)."""
    rows = [new_delivery(client.customer.account_id, url, "event", "TEXT_SENT", {"n": i}, utcnow())
            for i, url in enumerate(urls)]
    async with client.app[app_keys.SESSIONMAKER]() as session, session.begin():
        await enqueue(session, rows)
    client.app[app_keys.WEBHOOKS].notify()
    return [r["public_id"] for r in rows]


async def _settled(client, ids: list[str]) -> list[WebhookDelivery]:
    async def done() -> bool:
        async with client.app[app_keys.SESSIONMAKER]() as session:
            statuses = (await session.scalars(select(WebhookDelivery.status)
                                              .where(WebhookDelivery.public_id.in_(ids)))).all()
        return "pending" not in statuses

    await wait_for(done, timeout=10)
    async with client.app[app_keys.SESSIONMAKER]() as session:
        return list((await session.scalars(select(WebhookDelivery).where(WebhookDelivery.public_id.in_(ids))
                                           .order_by(WebhookDelivery.id))).all())


async def test_sending_refuses_a_private_address_whatever_the_url_says(client, receiver):
    """An IP literal (the socket factory) and a name that resolves to loopback (the resolver) both fail at once,
    the reason recorded, and the receiver on 127.0.0.1 is never reached."""
    port = URL(receiver.url).port
    ids = await _deliveries(client, [f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook",
                                     f"http://[::ffff:127.0.0.1]:{port}/hook"])
    for d in await _settled(client, ids):
        assert d.status == "failed" and d.attempts == 1 and d.last_status_code is None, d.url
        assert "webhook_url_not_allowed" in d.last_error and "loopback" in d.last_error, d.last_error
    assert receiver.requests == []
    resp = await client.get(f"/v1/webhooks/deliveries/{ids[1]}", headers=client.customer.headers)
    assert "webhook_url_not_allowed" in (await resp.json())["attempt_log"][0]["error"]


@pytest.mark.parametrize("processes", [0, 1], ids=["in process", "from a worker"])
@pytest.mark.parametrize("allow", [{"allow_private_addresses": True}, {"allowed_networks": ["127.0.0.0/8"]}])
async def test_the_operator_can_allow_private_addresses(aiohttp_client, migrated, sessionmaker, receiver,
                                                        allow, processes):
    migrated.webhooks.processes = processes
    migrated.webhooks.allow_private_addresses = False
    migrated.webhooks.poll_interval_ms = 50
    for name, value in allow.items():
        setattr(migrated.webhooks, name, value)
    client = await aiohttp_client(create_app(migrated, carriers=[LoopbackCarrier("sim")]))
    client.customer = await new_customer(client, sessionmaker, "acme")
    port = URL(receiver.url).port
    url = f"http://localhost:{port}/hook"
    resp = await client.patch("/v1/account", json={"event_webhook_url": url}, headers=client.customer.headers)
    assert resp.status == 200, await resp.text()
    ids = await _deliveries(client, [f"http://127.0.0.1:{port}/hook", url])
    assert [d.status for d in await _settled(client, ids)] == ["delivered", "delivered"]
    assert len(receiver.requests) == 2
    if "allowed_networks" in allow:  # only the listed networks
        resp = await client.patch("/v1/account", json={"event_webhook_url": "http://10.0.0.1/"},
                                  headers=client.customer.headers)
        assert resp.status == 422


async def test_the_resolver_drops_refused_addresses():
    with pytest.raises(AddressNotAllowed, match="localhost resolves to 127.0.0.1 is a loopback address"):
        await PolicyResolver(AddressPolicy()).resolve("localhost", 80)
    found = await PolicyResolver(AddressPolicy(allowed_networks=["127.0.0.0/8"])).resolve("localhost", 80)
    assert [r["host"] for r in found] == ["127.0.0.1"]


def test_networks_are_lists_in_toml_or_comma_separated_in_the_environment(tmp_path):
    from gateway.settings import SettingsError, load_settings

    path = tmp_path / "gateway.toml"
    path.write_text('[security]\ntrusted_proxies = ["10.0.0.0/8", "192.0.2.7"]\n'
                    '[webhooks]\nallowed_networks = ["fd00::/8"]\n')
    settings = load_settings(path, env={"GATEWAY_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true"})
    assert settings.security.trusted_proxies == ["10.0.0.0/8", "192.0.2.7"]
    assert settings.webhooks.allowed_networks == ["fd00::/8"] and settings.webhooks.allow_private_addresses
    env = {"GATEWAY_WEBHOOKS_ALLOWED_NETWORKS": "10.20.0.0/16, 127.0.0.1"}
    assert load_settings(path, env=env).webhooks.allowed_networks == ["10.20.0.0/16", "127.0.0.1"]
    assert load_settings(env={}).webhooks.allow_private_addresses is False  # config/gateway.toml: refused
    with pytest.raises(SettingsError, match="trusted_proxies: 'proxy.internal' is not an IP address"):
        load_settings(path, env={"GATEWAY_SECURITY_TRUSTED_PROXIES": "proxy.internal"})
