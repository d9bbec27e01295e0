"""The ``/ops`` page in headless Chromium (Debian's), against the running services."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from services import admin
from shared.db.engine import create_engine, create_session_factory
from shared.db.uow import UnitOfWorkFactory
from shared.settings import DatabaseSettings
from shared.vocabulary import Role
from tests.support.factories import (
    SeededPartner,
    eventually,
    issue_body,
    routed_issues,
    seed_partner,
)
from tests.support.stack import Stack

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.single_db,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Debian's chromium is installed by `make test` (scripts/system-tools)",
    ),
]
# What the machine's Chromium needs to start headless as root with no network of its own.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


async def reader_key(database_url: str, partner: SeededPartner) -> str:
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        uows = UnitOfWorkFactory(create_session_factory(engine))
        key = await admin.create_key(uows, partner_id=partner.id, role=Role.READER, pepper="")
    finally:
        await engine.dispose()
    return key.plaintext


async def post(stack: Stack, partner: SeededPartner, **body: str) -> None:
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        answer = await client.post("/v1/issues", json=issue_body(**body))
        assert answer.status_code == 202, answer.text


async def routed(engine: AsyncEngine, count: int) -> bool:
    return await routed_issues(engine) == count


async def sign_in(page: Page, url: str, key: str) -> None:
    await page.goto(f"{url}/ops")
    await page.fill("#key", key)
    await page.click("#login button[type=submit]")


async def test_the_ops_page_shows_the_figures_and_follows_new_routings_live(
    stack: Stack, database_url: str, engine: AsyncEngine, browser: Browser, tmp_path: Path
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    await post(stack, partner, category="bug", service="Microsoft Teams")
    await post(stack, partner, category="billing", service="Billing", title="Factura duplicada")
    await eventually(lambda: routed(engine, 2), timeout=30, message=stack.logs)

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await sign_in(page, stack.intake_url, await reader_key(database_url, partner))

    await page.wait_for_selector("#recent tbody tr:nth-child(2)")
    assert await page.inner_text("#received") == "2"
    assert await page.inner_text("#unrouted") == "0"
    panel = await page.inner_text("#panel")
    assert "escalated_to_microsoft" in panel
    assert "partner_resolves" in panel
    assert "Microsoft Teams" in panel

    await post(stack, partner, category="bug", service="SharePoint Online")
    await eventually(lambda: routed(engine, 3), timeout=30, message=stack.logs)
    # No reload: the page polls and swaps the panel in.
    await expect(page.locator("#recent tbody tr")).to_have_count(3, timeout=15_000)
    assert await page.inner_text("#received") == "3"
    assert "SharePoint Online" in await page.inner_text("#recent tbody tr:first-child")
    assert await page.is_hidden("#login")
    await page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
    assert errors == []


async def test_a_key_without_the_reader_role_is_sent_back_to_the_key_form(
    stack: Stack, database_url: str, browser: Browser
) -> None:
    billing = await seed_partner(database_url, role=Role.BILLING_ADMIN)
    await stack.start("intake")
    page = await browser.new_page()
    await sign_in(page, stack.intake_url, billing.api_key)
    await page.wait_for_selector("#login:not([hidden])")
    assert "billing_admin may not do this" in await page.inner_text("#panel")
    await sign_in(page, stack.intake_url, "csp_not_a_key")
    await expect(page.locator("#panel")).not_to_be_empty()
    assert await page.is_visible("#key")
