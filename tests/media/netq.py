"""Issue 16's acceptance harness: a video consult through the web app between two headless
Chromium instances, each in a network namespace of its own behind a shaped link
(``tests.media.netns``), measured caller → astrologer with ``getStats`` (W3C webrtc-stats) in
the pages and the SFU's admin media stats. Used by ``tests/media/test_netq.py`` (short cases)
and ``bench/netq.py`` (the table).

Chromium is started by Playwright through a wrapper that runs it under ``ip netns exec``: the
DevTools pipe crosses namespaces, the browser's sockets do not. The server is plain http on a
non-loopback address, so each browser is told to treat that one origin as secure (getUserMedia
needs a secure context).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from playwright.async_api import Browser, Page, Playwright, expect

from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.factories import DEFAULT_PASSWORD, TestUser, auth, create_user
from tests.media.netns import LinkShape, Party, Topology, topology

SETTLE_S = 10.0
"""The issue's reaction time: the caller's rate is judged after this much of the run."""
CAMERA_CLIP = Path(tempfile.gettempdir()) / "kundlinow-netq-camera-640x480.y4m"
PAUSED_TEXT = "Video paused"
"""What the web app shows when the SFU pauses video to a weak party (issue 16)."""

STATS_JS = """async () => {
  const call = window.kundlinowCall;
  if (!call) return null;
  const out = { consultationId: call.consultationId, sentBytes: 0, sentFrames: 0, decoded: 0,
                freezes: 0, frozenS: 0, jbDelayS: 0, jbEmitted: 0, concealed: 0, samples: 0,
                pairBytesReceived: 0, rttTotalS: 0, rttResponses: 0, pairTimestampMs: 0,
                availableOutgoingBps: null, targetBps: null, sentWidth: null,
                qualityLimitation: null, nacksSent: 0, plisSent: 0 };
  // a party on Janus has two peer connections (publishing, receiving); the web app one
  for (const pc of call.pcs || [call.pc]) {
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "transport" && report.has(s.selectedCandidatePairId)) {
        const pair = report.get(s.selectedCandidatePairId);
        out.pairBytesReceived += pair.bytesReceived || 0;
        out.rttTotalS += pair.totalRoundTripTime || 0;
        out.rttResponses += pair.responsesReceived || 0;
        out.pairTimestampMs = pair.timestamp;
        out.availableOutgoingBps = pair.availableOutgoingBitrate ?? out.availableOutgoingBps;
      }
      if (s.type === "outbound-rtp" && s.kind === "video") {
        out.sentBytes += s.bytesSent || 0;
        out.sentFrames += s.framesSent || 0;
        out.targetBps = s.targetBitrate ?? null;
        out.sentWidth = s.frameWidth ?? null;
        out.qualityLimitation = s.qualityLimitationReason ?? null;
      }
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out.decoded += s.framesDecoded || 0;
        out.freezes += s.freezeCount || 0;
        out.frozenS += s.totalFreezesDuration || 0;
        out.jbDelayS += s.jitterBufferDelay || 0;
        out.jbEmitted += s.jitterBufferEmittedCount || 0;
        out.nacksSent += s.nackCount || 0;
        out.plisSent += s.pliCount || 0;
      }
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.concealed += s.concealedSamples || 0;
        out.samples += s.totalSamplesReceived || 0;
      }
    });
  }
  return out;
}"""


@dataclass(frozen=True)
class Case:
    """One run: the two parties' links while measuring; ``lift`` removes the caps afterwards
    and times how long video takes to come back."""

    name: str
    caller: LinkShape = field(default_factory=LinkShape)
    astrologer: LinkShape = field(default_factory=LinkShape)
    seconds: float = 45.0
    lift: bool = False
    warmup_s: float = 10.0
    """Clean links for this long after video first decodes (the encoder ramps up), then the
    shaping starts and with it the measurement: the bandwidth drops mid-call."""


@dataclass(frozen=True)
class Result:
    """Caller → astrologer over one run (rates and shares over the whole run unless noted)."""

    case: str
    caller_kbps: float
    """The caller's video outbound-rtp rate after ``SETTLE_S``."""
    sent_fps: float
    """Frames the caller's encoder sent per second: on a busy machine the encoder, not the
    network, may be what limits the frame rate."""
    fps: float
    freezes: int
    frozen_s: float
    jitter_buffer_ms: float
    concealed_pct: float
    forwarded: int
    """Video packets the SFU forwarded to the astrologer."""
    retransmitted: int
    paused_seen: bool
    resumed_s: float | None
    """After the lift: seconds until the astrologer decodes again (None: not lifted/never)."""
    server: str = "kundlinow"
    """The SFU the parties met on (``bench.netq_janus``: Janus, whose counters are not read)."""

    @property
    def retransmitted_pct(self) -> float:
        return 100.0 * self.retransmitted / self.forwarded if self.forwarded else 0.0


@dataclass
class Parties:
    caller: Page
    astrologer: Page
    consultation_id: str
    admin: TestUser
    base_url: str
    astrologer_id: str


@contextlib.asynccontextmanager
async def namespaced_browser(
    playwright: Playwright, ns: str, origin: str
) -> AsyncIterator[Browser]:
    """A headless Chromium whose process (and so its sockets) lives in namespace ``ns``."""
    with tempfile.TemporaryDirectory(prefix="netq-") as tmp:
        wrapper = Path(tmp) / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        args = [a for a in CHROMIUM_ARGS if a != "--allow-loopback-in-peer-connection"]
        browser = await playwright.chromium.launch(
            executable_path=str(wrapper),
            args=[
                *args,
                f"--unsafely-treat-insecure-origin-as-secure={origin}",
                f"--use-file-for-fake-video-capture={camera_y4m(CAMERA_CLIP)}",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def served(settings: Settings, address: str) -> AsyncIterator[str]:
    """The real app on ``address`` (its only ICE host address too); yields the base URL."""
    media = replace(settings.media, ice_host_addresses=(address,))
    async with serving(create_app(replace(settings, media=media)), address) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def serving(app: web.Application, address: str) -> AsyncIterator[str]:
    """``app`` on ``address``, a free port; yields the base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://{address}:{port}"
    finally:
        await runner.cleanup()


async def _login(browser: Browser, base_url: str, user: TestUser, role_word: str) -> Page:
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(f"{base_url}/app/login")
    await page.fill("#login input[name=email]", user.email)
    await page.fill("#login input[name=password]", DEFAULT_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#who")).to_contain_text(role_word)
    return page


async def start_video_consult(
    browsers: tuple[Browser, Browser], base_url: str, database: Database, settings: Settings
) -> Parties:
    """Caller and astrologer log in through the web app; the caller asks for a video consult
    and the astrologer accepts; returns once both pages decode the other's video."""
    caller_user = await create_user(database, settings, "user")
    await grant(database, caller_user.id, 1_000_000)
    consultant = await create_user(database, settings, "consultant")
    admin = await create_user(database, settings, "admin")
    caller = await _login(browsers[0], base_url, caller_user, "Caller")
    astrologer = await _login(browsers[1], base_url, consultant, "Astrologer")
    await expect(astrologer.locator("#requests")).to_contain_text("Waiting for requests")
    await caller.click("#nav a:has-text('Astrologers')")
    card = caller.locator(f'.consultant[data-id="{consultant.id}"]')
    await expect(card.locator(".status")).to_have_text("Online")
    await card.locator('button[data-mode="video"]').click()
    await astrologer.locator(".request .accept").click(timeout=20_000)
    for page in (caller, astrologer):
        await expect(page.locator("#consult-state")).to_contain_text("Live", timeout=20_000)
    stats = await decoding((caller, astrologer))
    return Parties(
        caller, astrologer, stats[0]["consultationId"], admin, base_url, str(consultant.id)
    )


async def decoding(pages: tuple[Page, Page], limit_s: float = 40.0) -> list[dict[str, Any]]:
    """Both pages' ``STATS_JS`` once each decodes the other's video and plays its audio."""
    deadline = time.monotonic() + limit_s
    while True:
        stats = [await page.evaluate(STATS_JS) for page in pages]
        if all(s and s["decoded"] > 10 and s["samples"] > 0 for s in stats):
            return stats
        assert time.monotonic() < deadline, f"no video decoded through the links: {stats}"
        await asyncio.sleep(0.5)


async def sfu_media(parties: Parties, http: aiohttp.ClientSession) -> dict[str, Any]:
    """The consult's admin media stats (``GET /admin/consultations/{id}/media``)."""
    url = f"{parties.base_url}/admin/consultations/{parties.consultation_id}/media"
    async with http.get(url, headers=auth(parties.admin.token)) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    assert parties.astrologer_id in body["participants"], f"astrologer not on the SFU: {body}"
    return body


@dataclass
class Sample:
    at: float
    caller: dict[str, Any]
    astrologer: dict[str, Any]
    media: dict[str, Any] | None
    """The SFU's admin media stats (None: another SFU)."""
    paused: bool
    astrologer_id: str

    @property
    def sfu(self) -> tuple[int, int]:
        """(forwarded, retransmitted) video packets the SFU sent the astrologer so far."""
        if self.media is None:
            return 0, 0
        subscribed = self.media["participants"][self.astrologer_id]["subscribed"]
        video = [down for down in subscribed if down["kind"] == "video"]
        return (
            sum(down["packets_forwarded"] for down in video),
            sum(down["packets_retransmitted"] for down in video),
        )


async def sample(parties: Parties, http: aiohttp.ClientSession, start: float) -> Sample:
    caller = await parties.caller.evaluate(STATS_JS)
    astrologer = await parties.astrologer.evaluate(STATS_JS)
    paused = await parties.astrologer.get_by_text(PAUSED_TEXT).count() > 0
    return Sample(
        time.monotonic() - start, caller, astrologer, await sfu_media(parties, http), paused,
        parties.astrologer_id,
    )


def summarise(
    case: Case, samples: list[Sample], resumed_s: float | None, server: str = "kundlinow"
) -> Result:
    first, last = samples[0], samples[-1]
    settled = next((s for s in samples if s.at >= SETTLE_S), first)
    span = max(last.at - first.at, 1e-6)

    def delta(key: str) -> float:
        return float(last.astrologer[key] - first.astrologer[key])

    emitted, samples_received = delta("jbEmitted"), delta("samples")
    return Result(
        case=case.name,
        caller_kbps=(last.caller["sentBytes"] - settled.caller["sentBytes"])
        * 8
        / 1000
        / max(last.at - settled.at, 1e-6),
        sent_fps=(last.caller["sentFrames"] - first.caller["sentFrames"]) / span,
        fps=delta("decoded") / span,
        freezes=int(delta("freezes")),
        frozen_s=delta("frozenS"),
        jitter_buffer_ms=1000 * delta("jbDelayS") / emitted if emitted else 0.0,
        concealed_pct=100 * delta("concealed") / samples_received if samples_received else 0.0,
        forwarded=last.sfu[0] - first.sfu[0],
        retransmitted=last.sfu[1] - first.sfu[1],
        paused_seen=any(s.paused for s in samples),
        resumed_s=resumed_s,
        server=server,
    )


def _cap(party: Party, shape: LinkShape) -> None:
    party.cap_down(shape.down_kbps)
    party.cap_up(shape.up_kbps)


async def _resume_time(astrologer: Page, limit_s: float = 20.0) -> float | None:
    """Seconds from now until the astrologer decodes 10 more frames (None: not in limit)."""
    start = time.monotonic()
    base = (await astrologer.evaluate(STATS_JS))["decoded"]
    while time.monotonic() - start < limit_s:
        await asyncio.sleep(0.2)
        if (await astrologer.evaluate(STATS_JS))["decoded"] >= base + 10:
            return time.monotonic() - start
    return None


@dataclass
class Consult:
    """A live consult between two namespaced parties: what a test or the bench acts on."""

    topo: Topology
    parties: Parties
    http: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def consult(
    playwright: Playwright,
    settings: Settings,
    database: Database,
    impairments: dict[str, LinkShape] | None = None,
) -> AsyncIterator[Consult]:
    """Namespaces (``c`` caller, ``a`` astrologer; loss/delay from ``impairments``), the app
    served, both browsers in the consult with video decoding; all removed on exit."""
    with topology(impairments or {"c": LinkShape(), "a": LinkShape()}) as topo:
        async with contextlib.AsyncExitStack() as stack:
            base_url = await stack.enter_async_context(served(settings, topo.server_ip))
            browsers = (
                await stack.enter_async_context(
                    namespaced_browser(playwright, topo.parties["c"].ns, base_url)
                ),
                await stack.enter_async_context(
                    namespaced_browser(playwright, topo.parties["a"].ns, base_url)
                ),
            )
            http = await stack.enter_async_context(aiohttp.ClientSession())
            parties = await start_video_consult(browsers, base_url, database, settings)
            yield Consult(topo, parties, http)


def link_impairments(case: Case) -> dict[str, LinkShape]:
    """The loss and delay of ``case``'s links, there from the start (the caps come after the
    warm-up, ``measure``)."""
    return {
        role: LinkShape(loss=shape.loss, one_way_delay_s=shape.one_way_delay_s)
        for role, shape in (("c", case.caller), ("a", case.astrologer))
    }


async def measure(
    case: Case,
    topo: Topology,
    astrologer: Page,
    take_sample: Callable[[float], Awaitable[Sample]],
    trace: Path | None = None,
    server: str = "kundlinow",
) -> Result:
    """Measure ``case`` on a live consult: clean links for the warm-up, then its caps, a
    sample (``take_sample(start)``) every second. ``trace``: also write every sample there,
    one JSON object per line (what each browser's ``getStats`` gave, the SFU's video counters
    towards the astrologer, the notice shown)."""
    await asyncio.sleep(case.warmup_s)  # a phase of the run, not synchronisation
    _cap(topo.parties["c"], case.caller)
    _cap(topo.parties["a"], case.astrologer)
    start = time.monotonic()
    samples = [await take_sample(start)]
    while samples[-1].at < case.seconds:
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - start - samples[-1].at)))
        samples.append(await take_sample(start))
    if trace is not None:
        lines = "".join(json.dumps(dataclasses.asdict(s)) + "\n" for s in samples)
        await asyncio.to_thread(trace.write_text, lines)
    resumed = None
    if case.lift:
        _cap(topo.parties["a"], LinkShape())
        resumed = await _resume_time(astrologer)
    return summarise(case, samples, resumed, server)


async def run_case(
    playwright: Playwright, settings: Settings, database: Database, case: Case,
    trace: Path | None = None,
) -> Result:
    """Hold a consult through the web app and ``measure`` ``case``."""
    async with consult(playwright, settings, database, link_impairments(case)) as call:
        parties = call.parties
        return await measure(
            case, call.topo, parties.astrologer,
            lambda start: sample(parties, call.http, start), trace,
        )
    raise AssertionError("unreachable")  # mypy: the exit stack may swallow exceptions


CAMERA_W, CAMERA_H, CAMERA_FPS = 640, 480, 30


def camera_y4m(path: Path, seconds: float = 2.0) -> Path:
    """A camera-like 640×480@30 clip for ``--use-file-for-fake-video-capture`` (Chromium loops
    it): a lit scene drifting across the frame with sensor noise, so the encoder has to spend
    what a real camera costs (Chromium's own fake device draws flat shapes that cost little).
    Written once per path (YUV4MPEG2, 4:2:0)."""
    if path.is_file():
        return path
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:CAMERA_H, 0:CAMERA_W].astype(np.float32)
    scene = 110 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 40 * np.sin((xx + yy) / 91.0)
    with open(partial, "wb") as out:
        out.write(f"YUV4MPEG2 W{CAMERA_W} H{CAMERA_H} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(int(seconds * CAMERA_FPS)):
            shift = int(4 * index)  # a slow pan: 120 px/s
            luma = np.roll(scene, (shift // 3, shift), axis=(0, 1))
            luma = luma + rng.normal(0, 6, luma.shape)
            chroma = np.full((CAMERA_H // 2, CAMERA_W // 2), 128, np.uint8)
            out.write(b"FRAME\n")
            out.write(np.clip(luma, 16, 235).astype(np.uint8).tobytes())
            out.write(chroma.tobytes())
            out.write((chroma + 10).tobytes())
    partial.rename(path)
    return path
