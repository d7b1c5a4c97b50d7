"""What every screen of the web app must pass in the browser tests: no horizontal scroll at its
viewport, no amount in paise, no serious or critical axe-core violation, no console error
(:class:`ConsoleWatch`); and a screenshot of it
under ``var/screens/`` (git-ignored) for people to look at.

axe-core is used by the tests only and is not committed: :func:`axe_source` takes
``AXE_JS`` (a path), else ``tests/client/vendor/axe.min.js``, else unpacks the pinned npm
package there with ``npm pack`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from playwright.async_api import ConsoleMessage, Page

AXE_VERSION = "4.14.1"
VENDOR = Path(__file__).parent / "vendor"
SCREENS = Path(__file__).resolve().parents[2] / "var" / "screens"
IMPACTS = ("serious", "critical")
TO_TOP = """() => new Promise((done) => {
  scrollTo(0, 0);
  requestAnimationFrame(() => requestAnimationFrame(done));
})"""


@cache
def axe_source() -> str:
    configured = os.environ.get("AXE_JS")
    path = Path(configured) if configured else VENDOR / "axe.min.js"
    if not path.is_file():
        npm = shutil.which("npm")
        assert npm, "axe-core is needed: install npm (or set AXE_JS to axe.min.js)"
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [npm, "pack", f"axe-core@{AXE_VERSION}", "--silent"],
                cwd=tmp, check=True, capture_output=True, timeout=300,
            )
            with tarfile.open(Path(tmp) / f"axe-core-{AXE_VERSION}.tgz") as archive:
                member = archive.extractfile("package/axe.min.js")
                assert member is not None
                VENDOR.mkdir(exist_ok=True)
                path.write_bytes(member.read())
    return path.read_text()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught page errors of the pages it watches."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page, name: str) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{name}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"{name}: {error}"))


async def check_screen(page: Page, name: str) -> None:
    """Screenshot, horizontal overflow and axe-core (serious/critical) for the current screen."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_load_state("networkidle")
    # From the top, after a frame: a sticky header is drawn mid-page otherwise.
    await page.evaluate(TO_TOP)
    await page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: scrolls sideways by {overflow}px"
    assert "paise" not in (await page.locator("body").inner_text()).lower(), f"{name}: paise shown"
    if not await page.evaluate("() => Boolean(window.axe)"):
        # Evaluated through the DevTools protocol: a Content-Security-Policy without inline
        # scripts (the app's) does not apply to it, as it would to a <script> tag.
        await page.evaluate(axe_source())
    violations = await page.evaluate(
        """async (impacts) => {
          const result = await axe.run(document, { resultTypes: ["violations"] });
          const where = (v) => v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ");
          return result.violations.filter((v) => impacts.includes(v.impact))
            .map((v) => `${v.id} (${v.impact}): ${v.help} — ${where(v)}`);
        }""",
        list(IMPACTS),
    )
    assert not violations, f"{name}: " + "; ".join(violations)
