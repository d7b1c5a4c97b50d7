"""Birth details in a real headless Chromium against the real server (issue 15): a caller adds a
birth profile with place autocomplete and starts a consultation with it; the astrologer's request
card shows the name, the birth data and the chart before accepting, and the side panel during
the session; another astrologer and another caller get 403 for that profile and its chart."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.client.test_web_client import logged_in
from tests.factories import auth, create_user


@pytest.fixture
async def base_url(aiohttp_server: Any, settings: Settings) -> str:
    media = replace(settings.media, ice_host_addresses=("127.0.0.1",))
    server: TestServer = await aiohttp_server(
        create_app(replace(settings, media=media)), host="127.0.0.1"
    )
    return str(server.make_url("/")).rstrip("/")


async def test_caller_shares_birth_details_and_the_astrologer_sees_the_chart(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    caller_user = await create_user(database, settings, "user")
    await grant(database, caller_user.id, 50_000)
    consultant = await create_user(database, settings, "consultant")
    caller = await logged_in(chromium, base_url, caller_user)

    await caller.click("#nav a:has-text('Astrologers')")
    await caller.click("#birth-box > summary")
    await caller.click("#birth summary")
    await caller.fill("#birth-profile-form input[name=name]", "Meera Joshi")
    await caller.select_option("#birth-profile-form select[name=gender]", "female")
    await caller.fill("#birth-profile-form input[name=date]", "1943-06-15")
    await caller.fill("#birth-profile-form input[name=time]", "10:00")
    await caller.type("#birth-place", "Mumb", delay=60)
    option = caller.locator(".place-option", has_text="Mumbai, India")
    await expect(option).to_be_visible(timeout=30_000)  # the gazetteer may still be loading
    await option.click()
    await caller.click("#birth-profile-form button:has-text('Save')")
    card = caller.locator(".birth-profile")
    await expect(card).to_contain_text("Meera Joshi")
    await expect(card).to_contain_text("UTC+06:30")  # war time in 1943
    profile_id = await card.get_attribute("data-id")
    assert profile_id
    await expect(caller.locator("#birth-profile-picker")).to_have_value(profile_id)

    astrologer = await logged_in(chromium, base_url, consultant)
    await expect(astrologer.locator("#requests")).to_contain_text("Waiting for requests")
    consultant_card = caller.locator(f'.consultant[data-id="{consultant.id}"]')
    await expect(consultant_card.locator(".status")).to_have_text("Online")  # pushed
    await consultant_card.locator('button[data-mode="chat"]').click()
    await expect(caller.locator("#consult-state")).to_contain_text("Waiting for")

    request = astrologer.locator(".request")
    await expect(request.locator(".birth-name")).to_have_text("Meera Joshi")
    await expect(request.locator(".birth-data")).to_contain_text("1943-06-15 · 10:00")
    await expect(request.locator(".birth-data")).to_contain_text("Mumbai, India")
    chart = request.locator("img.chart-svg")
    await expect(chart).to_be_visible()
    assert await chart.evaluate("img => img.naturalWidth") > 0  # the SVG decoded

    await request.locator(".accept").click()
    await expect(astrologer.locator("#consult-state")).to_contain_text("Live")
    await expect(astrologer.locator("#birth-side .birth-name")).to_have_text("Meera Joshi")
    await expect(astrologer.locator("#birth-side img.chart-svg")).to_be_visible()

    other_astrologer = await create_user(database, settings, "consultant")
    other_caller = await create_user(database, settings, "user")
    async with ClientSession() as http:
        for outsider in (other_astrologer, other_caller):
            for path in ("", "/chart", "/chart.svg?style=south"):
                url = f"{base_url}/birth-profiles/{profile_id}{path}"
                async with http.get(url, headers=auth(outsider.token)) as denied:
                    assert denied.status == 403, (outsider.role, path)
