"""The console in a real browser: Debian's chromium, driven by Playwright, against a real gateway process with its
embedded SMSC simulator on free ports. Sign in, send an SMS through the API, find it in the console delivered, open
its timeline, replay one of its webhooks; screenshots of each step go to test-artifacts/console/ (or the folder
GATEWAY_TEST_ARTIFACTS names). Without /usr/bin/chromium (or the browser GATEWAY_TEST_CHROMIUM names) or the
playwright package the test is skipped, unless CI is set: then it fails."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from gateway.bench.processes import Gateway, base_env, free_port, stop
from tests.conftest import IN_CI, OPERATOR_TOKEN
from tests.gateway.webhooks.test_webhook_delivery import _receiver

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
ARTIFACTS = Path(os.environ.get("GATEWAY_TEST_ARTIFACTS", Path(__file__).resolve().parents[3] / "test-artifacts"))
PHONE = "+14155550142"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: the console's browser test must run)")
    pytest.skip(reason)


@pytest.fixture
def playwright_api():
    """playwright.async_api, once Debian's chromium and the package are there (checked before any gateway starts)."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright import async_api
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[test]')")
    return async_api


@pytest.fixture
def shots() -> Path:
    folder = ARTIFACTS / "console"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
async def gateway(tmp_path: Path):
    """`gatewayctl run --demo` with the embedded simulator, every port free."""
    log = open(tmp_path / "gateway.log", "w")
    gw = Gateway(tmp_path, {}, log)
    smpp, control, voice = free_port(), free_port(), free_port()
    gw.env = {**base_env(), "GATEWAY_PORT": str(gw.port), "GATEWAY_SERVER_DATA_DIR": str(tmp_path),
              "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
              "GATEWAY_OPERATOR_TOKEN": OPERATOR_TOKEN, "GATEWAY_SIMULATOR_EMBEDDED": "true",
              "GATEWAY_SIMULATOR_SMPP_PORT": str(smpp), "GATEWAY_CARRIER_SIM_PORT": str(smpp),
              "GATEWAY_SIMULATOR_HTTP_PORT": str(control), "GATEWAY_SIMULATOR_VOICE_PORT": str(voice),
              "GATEWAY_VOICE_CARRIER_URL": f"http://127.0.0.1:{voice}", "GATEWAY_VOICE_CACHE_DIR": str(tmp_path / "a"),
              "GATEWAY_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true"}
    gw.start()
    try:
        await gw.ready(timeout=60)
        yield gw
    finally:
        stop(gw.process)
        log.close()


async def test_console_in_chromium(playwright_api, gateway, aiohttp_server, shots):
    async_playwright, expect = playwright_api.async_playwright, playwright_api.expect
    receiver = await _receiver(aiohttp_server)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {gateway.api_key}"}) as http:
        async with http.post(gateway.url + "/v1/messages", json={
                "to": PHONE, "body": "Hello from the browser test", "status_callback": receiver.url}) as resp:
            assert resp.status == 202, await resp.text()
            message_id = (await resp.json())["id"]

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []  # console errors (a CSP violation shows here) and failed requests
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: problems.append(f"{r.url}: {r.failure}"))

            # signing in: a page of the console leads there first; a wrong token is refused
            await page.goto(gateway.url + "/console/messages")
            await expect(page).to_have_url(f"{gateway.url}/console/sign-in?next=/console/messages")
            await page.fill("input[name=token]", "wrong token")
            await page.click("button[type=submit]")
            await expect(page.locator("#error")).to_contain_text("not the operator token")
            await page.screenshot(path=shots / "1-sign-in-refused.png", full_page=True)
            assert [p for p in problems if "401" not in p] == []  # the refusal's own status, as the browser says
            problems.clear()
            await page.fill("input[name=token]", OPERATOR_TOKEN)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(gateway.url + "/console/messages")
            cookie = next(c for c in await page.context.cookies() if c["name"] == "gateway_console")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            # the stylesheet applied (the page's policy lets it in)
            assert await page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor") == \
                "rgb(17, 24, 39)"

            # the message, searched by phone number, until the simulator's receipt says delivered
            await page.fill("input[name=phone]", PHONE)
            await page.click("form.search button[type=submit]")
            row = page.locator("#results tr", has_text=message_id)
            for _ in range(100):
                if await row.count() and "delivered" in await row.locator("td.status").inner_text():
                    break
                await asyncio.sleep(0.2)
                await page.reload()
            await expect(row.locator("td.status")).to_have_text("delivered")
            await page.screenshot(path=shots / "2-search.png", full_page=True)
            await row.locator("a").click()
            await expect(page.locator("#status")).to_have_text("delivered")
            await expect(page.locator("#parts")).to_contain_text("DELIVRD")
            await expect(page.locator("#events")).to_contain_text("TEXT_DELIVERED")
            await page.screenshot(path=shots / "3-timeline.png", full_page=True)

            # its webhooks, delivered to the receiver; one replayed from the console
            for _ in range(100):
                if any(e.get("event_type") == "TEXT_DELIVERED" for _, e in receiver.events()):
                    break
                await asyncio.sleep(0.1)
            delivered_hooks = [d for d, e in receiver.events() if e.get("message_id") == message_id]
            assert delivered_hooks, receiver.events()
            target = delivered_hooks[0]
            await page.click("nav >> text=Webhooks")
            delivery_row = page.locator(f"#delivery-{target}")
            for _ in range(50):  # the delivery's row says delivered once the gateway has recorded the answer
                if await delivery_row.count() and await delivery_row.get_by_role("button", name="Replay").count():
                    break
                await asyncio.sleep(0.1)
                await page.reload()
            before = len(receiver.events())
            await delivery_row.get_by_role("button", name="Replay").click()
            await expect(page.locator("#replayed")).to_contain_text(target)
            for _ in range(100):
                if len(receiver.events()) > before:
                    break
                await asyncio.sleep(0.1)
            assert [d for d, _ in receiver.events()[before:]] == [target]
            await page.reload()
            await page.screenshot(path=shots / "4-webhooks-replayed.png", full_page=True)

            await page.click("nav >> text=Dashboard")
            await expect(page.locator("svg.chart").first).to_be_visible()
            await expect(page.locator("table.binds")).to_contain_text("bound")
            await page.screenshot(path=shots / "5-dashboard.png", full_page=True)
            await page.click(".sign-out button")
            await expect(page).to_have_url(gateway.url + "/console/sign-in")
            assert problems == []
        finally:
            await browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == ["1-sign-in-refused.png", "2-search.png",
                                                           "3-timeline.png", "4-webhooks-replayed.png",
                                                           "5-dashboard.png"]
