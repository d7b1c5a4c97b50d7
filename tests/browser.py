"""Headless Chromium for the browser tests: Debian's build, driven by Playwright.

Media stays on loopback: pages offer 127.0.0.1 candidates only with
``--allow-loopback-in-peer-connection`` (and filter out their other addresses themselves).
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
"""Debian's ``chromium`` (installed by .ci/run); CHROMIUM_PATH points elsewhere (e.g. the
GitHub workflow's Playwright build)."""

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine's network is closed: no background fetches, no component updates.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
