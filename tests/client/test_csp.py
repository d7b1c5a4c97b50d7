"""The web client runs under the Content-Security-Policy without a single violation, and a
violation would be seen (issue 11, point 21)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, expect

from api.keys import CSP_VIOLATIONS
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.factories import DEFAULT_PASSWORD, create_user

ServerFactory = Callable[..., Awaitable[TestServer]]


def _violations(server: TestServer) -> float:
    counter: Any = server.app[CSP_VIOLATIONS] if server.app is not None else None
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def test_the_client_signs_in_and_renders_without_csp_violations(
    chromium: Browser, aiohttp_server: ServerFactory, settings: Settings, database: Database
) -> None:
    server = await aiohttp_server(create_app(settings), host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    user = await create_user(database, settings, "user")
    page = await (await chromium.new_context()).new_page()
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            console.append(message.text)

    page.on("console", on_console)
    await page.goto(f"{base}/?loopback")
    await page.fill("#login input[name=email]", user.email)
    await page.fill("#login input[name=password]", DEFAULT_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#who")).not_to_be_empty()
    # The camera preview path: getUserMedia into a <video> (fake device, see tests/browser.py).
    await page.evaluate(
        """async () => {
            const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
            const video = document.createElement("video");
            video.muted = true; video.srcObject = stream; document.body.append(video);
            await video.play();
            stream.getTracks().forEach((t) => t.stop());
        }"""
    )
    await page.wait_for_load_state("networkidle")
    assert console == []
    assert _violations(server) == 0

    # The control: an inline script is refused, and the browser's report is counted.
    await page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__inline = 1"; document.body.append(s); }"""
    )
    assert await page.evaluate("window.__inline === undefined")
    deadline = time.monotonic() + 30
    while _violations(server) < 1:
        assert time.monotonic() < deadline, "the violation report never arrived"
        await asyncio.sleep(0.1)
    assert any("Content Security Policy" in text for text in console)
