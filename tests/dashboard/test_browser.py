"""The dashboard as a person uses it: Debian's headless Chromium (driven by Playwright) against ``x402 serve --dev``.

Sign in with one click, pay ``/demo/paid`` with the example agent and see the payment on the overview, in the
payments table and in its detail (with the transaction); create a key (shown once, it works) and revoke it (it stops
working); pause a wallet and approve its pending payment; a rules error is shown. Every page is photographed into
``tests/.artifacts/screenshots/`` (untracked; the overview also at phone width, where nothing may scroll sideways).
With ``X402_UPDATE_SCREENSHOTS=1`` the photographs also replace the committed ones in ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, Page, ViewportSize, async_playwright

from tests.harness.procs import ROOT, Service, run_agent_example, x402_serve
from tests.harness.services import free_port
from x402.service.demo import DEMO_AMOUNT

CHROMIUM = os.environ.get("X402_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "tests" / ".artifacts" / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("X402_UPDATE_SCREENSHOTS") == "1"
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 375, "height": 812}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if UPDATE_DOCS:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / f"{name}.png", DOC_SHOTS / f"{name}.png")


async def _open(page: Page, svc: Service, path: str) -> None:
    await page.goto(svc.base_url + path)
    await page.wait_for_selector("body[data-ready]")


async def _api(svc: Service, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, svc.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        return r.status, await r.json()


async def test_a_person_uses_the_dashboard(database_url: str, browser: Browser, tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": database_url,
        "X402_DEV_ANVIL_PORT": str(free_port()),
        "X402_MASTER_KEY": "11" * 32,
        "X402_ALLOW_PRIVATE_OUTBOUND": "1",  # the wallet pays the demo route on 127.0.0.1
        "X402_DATA_DIR": str(tmp_path),
    }
    async with x402_serve("--dev", env=env, port=free_port()) as svc:
        async with aiohttp.ClientSession() as s, s.get(svc.base_url + "/.well-known/x402") as r:
            dev_key = (await r.json())["dev"]["apiKey"]
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # sign in: no session sends the browser to sign-in; in dev mode one click signs the dev tenant in
        await page.goto(svc.base_url + "/dashboard/payments")
        assert "/dashboard/login" in page.url
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await _shot(page, "login")
        await page.click("#dev-login")
        await page.wait_for_url("**/dashboard/payments")
        cookie = next(c for c in await context.cookies() if c["name"] == "x402_session")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"

        # pay /demo/paid with the example agent; the payment shows on the overview and in the payments table
        paid = await run_agent_example({"X402_URL": svc.base_url})
        assert paid["status"] == 200, paid
        payer, tx = paid["settlement"]["payer"], paid["settlement"]["transaction"]
        await _open(page, svc, "/dashboard/overview")
        await page.wait_for_selector(f'#latest td[title="{payer}"]')
        assert "success" in await page.inner_text("#latest tbody")
        # the charts come from the analytics time series: today's bucket holds the payment
        await page.wait_for_selector("#chart-revenue canvas")
        await page.wait_for_selector("#chart-payments canvas")
        assert "succeeded total 1" in (await page.get_attribute("#chart-payments", "aria-label") or "")
        await _shot(page, "overview")

        await _open(page, svc, "/dashboard/payments?kind=settle")
        row = page.locator(f'#payments tr:has(td[title="{payer}"])')
        assert await row.count() == 1
        assert await row.locator("td.num").inner_text() == str(DEMO_AMOUNT / 10**6)
        await _shot(page, "payments")
        await row.locator("a").click()
        await page.wait_for_selector(f"#onchain code:has-text('{tx}')")
        assert "/demo/paid" in await page.inner_text("#record")
        # its verification carries the risk stage's assessment
        await _open(page, svc, "/dashboard/payments?kind=verify")
        await page.locator(f'#payments tr:has(td[title="{payer}"]) a').click()
        await page.wait_for_selector("#risk dd:has-text('accept')")
        assert "first_time_payer" in await page.inner_text("#risk")
        await _shot(page, "payment")

        # create a key (shown once; it works), then revoke it (it stops working)
        await _open(page, svc, "/dashboard/keys")
        await page.fill("#k-name", "browser-made")
        await page.check("input[name=scopes][value=admin]")
        await page.click("#create-key button[type=submit]")
        await page.wait_for_selector("#new-key:not([hidden])")
        new_key = (await page.inner_text("#new-key-value")).strip()
        assert new_key.startswith("x402_test_")
        assert (await _api(svc, new_key, "GET", "/v1/payments"))[0] == 200
        prefix = new_key.split("_")[2]
        await _shot(page, "keys")

        async def accept(dialog: Dialog) -> None:
            await dialog.accept()

        page.once("dialog", accept)
        await page.click(f'tr[data-prefix="{prefix}"] button:has-text("Revoke")')
        await page.wait_for_selector(f'tr[data-prefix="{prefix}"] .badge:has-text("revoked")')
        status, body = await _api(svc, new_key, "GET", "/v1/payments")
        assert (status, body["code"]) == (401, "api_key_revoked")

        # a wallet with an approval threshold asks before paying the demo route; pause it, approve the payment
        status, wallet = await _api(
            svc,
            dev_key,
            "POST",
            "/v1/wallets",
            {"name": "agent-7", "chains": ["evm"], "policy": {"approvalThreshold": "5000", "dailyCap": "2000000"}},
        )
        assert status == 201, wallet
        status, pending = await _api(
            svc, dev_key, "POST", f"/v1/wallets/{wallet['id']}/pay", {"url": svc.base_url + "/demo/paid"}
        )
        assert (status, pending["code"]) == (202, "approval_pending"), pending
        await _open(page, svc, "/dashboard/wallets")
        card = page.locator(f"#wallet-{wallet['id']}")
        await card.get_by_role("button", name="Pause wallet agent-7").click()
        await page.wait_for_selector(f"#wallet-{wallet['id']} .badge:has-text('paused')")
        assert (await _api(svc, dev_key, "GET", f"/v1/wallets/{wallet['id']}"))[1]["status"] == "paused"
        await card.get_by_role("button", name="Approve payment").click()
        await page.wait_for_selector("#flash:has-text('Payment approved')")
        _, approvals = await _api(svc, dev_key, "GET", f"/v1/wallets/{wallet['id']}/approvals")
        assert [a["status"] for a in approvals["approvals"]] == ["approved"]
        await _shot(page, "wallets")

        # the risk rules editor shows the API's validation error
        await _open(page, svc, "/dashboard/risk")
        await page.fill("#rules", '{"bogus": 1}')
        await page.click("#rules-form button[type=submit]")
        await page.wait_for_selector("#rules-error:has-text('invalid_risk_config')")
        await _shot(page, "risk")

        # a webhook endpoint added through the form; its secret is shown once; a ping shows in its delivery log
        await _open(page, svc, "/dashboard/webhooks")
        await page.fill("#wh-url", f"http://127.0.0.1:{free_port()}/hook")
        await page.click("#create-webhook button[type=submit]")
        await page.wait_for_selector("#flash:has-text('signing secret')")
        await page.wait_for_selector("#webhooks td:has-text('/hook')")
        ping = page.get_by_role("button", name="Ping")
        if await ping.count():  # the webhook machinery (delivery log, ping, replay) is mounted
            await ping.click()
            await page.wait_for_selector("#deliveries tbody td:has-text('webhook.ping')")
        await _shot(page, "webhooks")

        for slug in ("resources", "usage"):
            await _open(page, svc, f"/dashboard/{slug}")
            await _shot(page, slug)

        # phone width: one column, nothing scrolls sideways
        await page.set_viewport_size(PHONE)
        await _open(page, svc, "/dashboard/overview")
        await page.wait_for_selector(f'#latest td[title="{payer}"]')
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await _shot(page, "overview-phone")

        # sign out: the session is gone, the pages send the browser back to sign-in
        await page.click("text=Sign out")
        await page.wait_for_url("**/dashboard/login")
        await page.goto(svc.base_url + "/dashboard/overview")
        assert "/dashboard/login" in page.url
        assert errors == []
        await context.close()
