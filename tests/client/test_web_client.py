"""The web app in a real headless Chromium against the real server: a caller recharges, asks an
astrologer for a consultation, they chat (with masking), the caller ends it and is charged; and a
video consult where both pages decode the other's camera through the SFU, then the caller mutes
and turns the camera off (the astrologer is told and receives silence and no video) and back on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.factories import DEFAULT_PASSWORD, TestUser, create_user

ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def base_url(aiohttp_server: ServerFactory, settings: Settings) -> str:
    media = replace(settings.media, ice_host_addresses=("127.0.0.1",))
    server = await aiohttp_server(create_app(replace(settings, media=media)), host="127.0.0.1")
    return str(server.make_url("/")).rstrip("/")


ROLE_WORD = {"user": "Caller", "consultant": "Astrologer", "admin": "Admin"}


async def logged_in(browser: Browser, base_url: str, user: TestUser) -> Page:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(f"{base_url}/?loopback")
    await page.fill("#login input[name=email]", user.email)
    await page.fill("#login input[name=password]", DEFAULT_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#who")).to_contain_text(ROLE_WORD[user.role])
    return page


async def recharge(caller: Page, rupees: str) -> None:
    await caller.click("#nav a:has-text('Wallet')")
    await caller.fill("#recharge input[name=amount]", rupees)
    await caller.click("#recharge button:has-text('Recharge')")


async def start_consult(caller: Page, astrologer: Page, consultant: TestUser, mode: str) -> None:
    await expect(astrologer.locator("#requests")).to_contain_text("Waiting for requests")
    await caller.click("#nav a:has-text('Astrologers')")
    card = caller.locator(f'.consultant[data-id="{consultant.id}"]')
    await expect(card.locator(".status")).to_have_text("Online")  # pushed, no reload
    await card.locator(f'button[data-mode="{mode}"]').click()
    await expect(caller.locator("#consult-state")).to_contain_text("Waiting for")
    await astrologer.locator(".request .accept").click()
    await expect(astrologer.locator("#consult-state")).to_contain_text("Live")
    await expect(caller.locator("#consult-state")).to_contain_text("Live")


async def test_caller_recharges_consults_chats_and_pays(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    caller_user = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant", rates=(1000, 1500, 2000))
    caller = await logged_in(chromium, base_url, caller_user)
    await expect(caller.locator("#balance")).to_have_text("₹0")
    await recharge(caller, "500")
    await expect(caller.locator("#available")).to_have_text("₹500")

    astrologer = await logged_in(chromium, base_url, consultant)
    await start_consult(caller, astrologer, consultant, "chat")

    await caller.fill("#chat-input", "call me on 98765 43210")
    await caller.press("#chat-input", "Enter")
    await expect(astrologer.locator("#chat-log .msg")).to_have_count(1)
    received = await astrologer.locator("#chat-log .msg").inner_text()
    assert "98765" not in received and "43210" not in received  # masked on the platform
    await astrologer.fill("#chat-input", "Namaste! Your Jupiter looks strong.")
    await astrologer.press("#chat-input", "Enter")
    await expect(caller.locator("#chat-log .msg:not(.mine)")).to_have_text(
        "Namaste! Your Jupiter looks strong."
    )

    await caller.click("#end")
    await expect(caller.locator("#end-sentence")).to_have_text("The consultation has ended.")
    await expect(caller.locator("#ended")).to_contain_text("1 min · ₹10")
    await expect(astrologer.locator("#end-sentence")).to_have_text("The consultation has ended.")
    await expect(caller.locator("#balance")).to_have_text("₹490")
    # Hidden means hidden: no chat box, no call controls after the end.
    for gone in ("#chat-form", "#mute", "#camera", "#end"):
        await expect(caller.locator(gone)).to_have_count(0)
    await caller.click('#rating button[data-stars="4"]')
    await expect(caller.locator("#rating")).to_have_text("Thanks for rating ★★★★")
    assert await astrologer.locator("#rating").count() == 0  # only the caller rates


SEND_WHILE_RECONNECTING_JS = """async () => {
  const { app } = await import("/client/session.js");
  const socket = app.socket;
  await socket.ready;
  const lost = new Promise((resolve) => socket.addEventListener("disconnected", resolve, { once: true }));
  socket.ws.close();
  const whileClosing = socket.send("ping");
  await lost;
  const beforeReconnect = socket.send("ping");
  const outcome = (sent) => Promise.race([
    sent.then(() => "answered", (error) => error.message),
    new Promise((resolve) => setTimeout(() => resolve("never answered"), 30000)),
  ]);
  return Promise.all([outcome(whileClosing), outcome(beforeReconnect)]);
}"""
"""Sends made while the page's socket is closing and while it waits to reconnect."""


async def test_a_send_during_a_reconnect_waits_for_the_new_socket(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    """A frame written to a closed WebSocket vanishes without an error: a chat message typed in
    the half second before the reconnect was lost, the input cleared and nothing said."""
    caller = await logged_in(chromium, base_url, await create_user(database, settings, "user"))
    assert await caller.evaluate(SEND_WHILE_RECONNECTING_JS) == ["answered", "answered"]


RECEIVED_JS = """async () => {
  const s = window.kundlinowCall ? await window.kundlinowCall.stats() : {};
  return { frames: s.video ? (s.video.framesDecoded || 0) : 0,
           audio: s.audio ? (s.audio.packetsReceived || 0) : 0,
           energy: s.audio ? (s.audio.totalAudioEnergy || 0) : 0 };
}"""
"""What a page's call has received so far (getStats inbound-rtp, W3C webrtc-stats)."""


async def received(page: Page) -> dict[str, float]:
    stats: dict[str, float] = await page.evaluate(RECEIVED_JS)
    return stats


async def received_during(page: Page, seconds: float) -> dict[str, float]:
    before = await received(page)
    await asyncio.sleep(seconds)
    after = await received(page)
    return {key: after[key] - before[key] for key in after}


async def second_where(
    page: Page, holds: Callable[[dict[str, float]], bool], within_s: float
) -> dict[str, float]:
    """Measure one-second windows of what ``page`` receives until one ``holds``; fails with
    the last window if none does within ``within_s``."""
    deadline = asyncio.get_running_loop().time() + within_s
    window = await received_during(page, 1.0)
    while not holds(window):
        assert asyncio.get_running_loop().time() < deadline, window
        window = await received_during(page, 1.0)
    return window


LOUD = 0.01
"""Audio energy (W3C webrtc-stats: the sum of audioLevel² × duration) a second of the fake
microphone's beeps clearly exceeds (measured: 0.2-0.5)."""
SILENT = 1e-4
"""At most this much in a second is silence (an RMS level of 1 %, -40 dBFS)."""


async def test_video_consult_through_the_sfu_with_mute_and_camera_off(
    chromium: Browser, base_url: str, database: Database, settings: Settings
) -> None:
    caller_user = await create_user(database, settings, "user")
    consultant = await create_user(database, settings, "consultant")
    caller = await logged_in(chromium, base_url, caller_user)
    await recharge(caller, "500")
    await expect(caller.locator("#available")).to_have_text("₹500")
    astrologer = await logged_in(chromium, base_url, consultant)
    await start_consult(caller, astrologer, consultant, "video")

    for page in (caller, astrologer):
        deadline = asyncio.get_running_loop().time() + 20
        stats = await received(page)
        while not (stats["frames"] > 10 and stats["audio"] > 10):
            assert asyncio.get_running_loop().time() < deadline, stats
            await asyncio.sleep(0.25)
            stats = await received(page)
    assert re.search(r"\d+ min", await caller.locator("#meter").inner_text())

    # The caller mutes and turns the camera off: the astrologer's page says so, and what it
    # receives is silence (totalAudioEnergy stops growing) and no video frames at all, until the
    # caller turns both back on (which also shows that the energy measure hears the beeps).
    await caller.evaluate("() => { window.camera = kundlinowCall.local.getVideoTracks()[0]; }")
    await caller.click("#mute")
    await caller.click("#camera")
    await expect(caller.locator("#camera")).to_have_attribute("aria-pressed", "true")
    await expect(caller.locator("#mute")).to_have_attribute("aria-pressed", "true")
    await expect(caller.locator("#own-media")).to_have_text("You are muted · your camera is off")
    await expect(astrologer.locator("#remote-media")).to_have_text(
        "Caller muted · Caller's camera is off"
    )
    await expect(astrologer.locator("#remote-camera-off")).to_be_visible()
    assert await caller.evaluate("() => window.camera.readyState") == "ended"  # light off
    # what the jitter buffer held from before the mute plays out first (half a second on a
    # quiet machine, longer on a loaded one): poll for a silent second without a frame
    await second_where(astrologer, lambda w: w["energy"] < SILENT and w["frames"] == 0, 15)

    await caller.click("#mute")
    await caller.click("#camera")
    await expect(caller.locator("#camera")).to_have_attribute("aria-pressed", "false")
    await expect(astrologer.locator("#remote-media")).to_have_text("")
    await expect(astrologer.locator("#remote-camera-off")).to_be_hidden()
    await second_where(astrologer, lambda w: w["energy"] > LOUD and w["frames"] > 5, 10)
