"""The web app in a real headless Chromium against the real server: a caller recharges, asks an
astrologer for a consultation, they chat (with masking), the caller ends it and is charged; and a
video consult where both pages decode the other's camera through the SFU."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from kundlinow.app import create_app
from kundlinow.config import Settings
from kundlinow.db import Database
from tests.factories import DEFAULT_PASSWORD, TestUser, create_user

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def base_url(aiohttp_server: ServerFactory, settings: Settings) -> str:
    media = replace(settings.media, ice_host_addresses=("127.0.0.1",))
    server = await aiohttp_server(create_app(replace(settings, media=media)), host="127.0.0.1")
    return str(server.make_url("/")).rstrip("/")


async def logged_in(browser: Browser, base_url: str, user: TestUser) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{base_url}/?loopback")
    await page.fill("#login input[name=email]", user.email)
    await page.fill("#login input[name=password]", DEFAULT_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#who")).to_contain_text(user.role)
    return page


async def start_consult(caller: Page, astrologer: Page, consultant: TestUser, mode: str) -> None:
    await expect(astrologer.locator("#requests")).to_contain_text("Waiting for requests")
    card = caller.locator(f'.consultant[data-id="{consultant.id}"]')
    await caller.click("#filters button")  # refresh: the astrologer is online now
    await expect(card.locator(".status")).to_have_text("online")
    await card.locator(f'button[data-mode="{mode}"]').click()
    await expect(caller.locator("#consult-state")).to_contain_text("Waiting for the astrologer")
    await astrologer.locator(".request .accept").click()
    await expect(astrologer.locator("#consult-state")).to_contain_text("Live")
    await expect(caller.locator("#consult-state")).to_contain_text("Live")


async def test_caller_recharges_consults_chats_and_pays(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    caller_user = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant", rates=(1000, 1500, 2000))
    caller = await logged_in(chromium, base_url, caller_user)
    await expect(caller.locator("#available")).to_have_text("₹0.00")
    await caller.fill("#recharge input[name=amount]", "500")
    await caller.click("#recharge button")
    await expect(caller.locator("#available")).to_have_text("₹500.00")

    astrologer = await logged_in(chromium, base_url, consultant)
    await start_consult(caller, astrologer, consultant, "chat")

    await caller.fill("#chat-form input", "call me on 98765 43210")
    await caller.press("#chat-form input", "Enter")
    await expect(astrologer.locator("#chat-log .msg")).to_have_count(1)
    received = await astrologer.locator("#chat-log .msg").inner_text()
    assert "98765" not in received and "43210" not in received  # masked on the platform
    await astrologer.fill("#chat-form input", "Namaste! Your Jupiter looks strong.")
    await astrologer.press("#chat-form input", "Enter")
    await expect(caller.locator("#chat-log .msg:not(.mine)")).to_have_text(
        "Namaste! Your Jupiter looks strong."
    )

    await caller.click("#end")
    await expect(caller.locator("#consult-state")).to_contain_text(
        "Ended (completed): 1 min, ₹10.00"
    )
    await expect(astrologer.locator("#consult-state")).to_contain_text("Ended (completed)")
    await expect(caller.locator("#balance")).to_have_text("Wallet ₹490.00")
    await caller.click('#rating button[data-stars="4"]')
    await expect(caller.locator("#rating")).to_have_text("Thanks for rating ★★★★")
    assert await astrologer.locator("#rating").count() == 0  # only the caller rates


async def test_video_consult_through_the_sfu(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    caller_user = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    caller = await logged_in(chromium, base_url, caller_user)
    await caller.fill("#recharge input[name=amount]", "500")
    await caller.click("#recharge button")
    await expect(caller.locator("#available")).to_have_text("₹500.00")
    astrologer = await logged_in(chromium, base_url, consultant)
    await start_consult(caller, astrologer, consultant, "video")

    async def decoding(page: Page) -> dict[str, Any]:
        stats: dict[str, Any] = await page.evaluate(
            """async () => {
                 const s = window.kundlinowCall ? await window.kundlinowCall.stats() : {};
                 return { frames: s.video ? (s.video.framesDecoded || 0) : 0,
                          audio: s.audio ? (s.audio.packetsReceived || 0) : 0 };
               }"""
        )
        return stats

    for page in (caller, astrologer):
        deadline = asyncio.get_running_loop().time() + 20
        stats = await decoding(page)
        while not (stats["frames"] > 10 and stats["audio"] > 10):
            assert asyncio.get_running_loop().time() < deadline, stats
            await asyncio.sleep(0.25)
            stats = await decoding(page)
    assert re.search(r"\d+ min", await caller.locator("#meter").inner_text())
