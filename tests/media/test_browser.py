"""Real browsers through the real server: two headless Chromium pages hold a video consult
over ``/ws`` and the SFU, with VP8 and with H.264 (``getStats`` shows decoded video and
received audio on both sides)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import pytest
from playwright.async_api import Browser

from api.keys import MEDIA
from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from tests.media.conftest import DATA
from tests.signalling.conftest import world_factory
from tests.sockets import udp_sockets_on

PEER_JS = (DATA / "browser_peer.js").read_text()
STATS_JS = """async () => {
  const p = window.__peer;
  if (!p || !p.pc) return null;
  const out = { framesDecoded: 0, audioPackets: 0, videoCodec: null, error: p.error,
                state: p.pc.connectionState };
  const report = await p.pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded += s.framesDecoded || 0;
      if (s.codecId) out.videoCodec = codecs[s.codecId] || null;
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audioPackets += s.packetsReceived || 0;
  });
  return out;
}"""


@pytest.mark.parametrize(
    "codec,single_port",
    [("video/VP8", False), ("video/H264", False), ("video/VP8", True)],
    ids=["vp8", "h264", "vp8-one-udp-port"],
)
async def test_two_chromium_pages_hold_a_video_consult(
    aiohttp_client: Any,
    settings: Settings,
    database: Database,
    chromium: Browser,
    codec: str,
    single_port: bool,
) -> None:
    """With ``single_port`` the node runs on one UDP port (MEDIA_UDP_PORT; media.udp_mux):
    both browsers' media goes through the node's one socket."""
    media = MediaSettings(ice_host_addresses=("127.0.0.1",), udp_port=0 if single_port else None)
    settings = replace(settings, media=media)
    world = await world_factory(aiohttp_client, settings, database)()
    astro_user = await world.user("consultant")
    caller_user = await world.user(paise=1_000_000)
    astro_ws, caller_ws = await world.ws(astro_user), await world.ws(caller_user)
    ack = await caller_ws.ok(
        "consult_request", {"consultant_id": str(astro_user.id), "mode": "video"}
    )
    cid = ack["consultation"]["id"]
    await astro_ws.event("consult_request")
    assert (await astro_ws.ok("accept", {"consultation_id": cid}))["consultation"][
        "state"
    ] == "active"

    # UDP sockets of this process on the address before the call: earlier tests' aiortc peers
    # may still be closing (the event loop is busy on a loaded machine)
    sockets_before = set(udp_sockets_on("127.0.0.1"))
    server = world.server.server
    base = f"http://127.0.0.1:{server.port}"
    ws_url = f"ws://127.0.0.1:{server.port}/ws"
    pages = []
    for user in (caller_user, astro_user):
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(base + "/health")  # a secure-context origin for getUserMedia
        await page.evaluate(
            PEER_JS,
            {"wsUrl": ws_url, "token": user.token, "consultationId": cid, "codec": codec},
        )
        pages.append(page)
    deadline = time.monotonic() + 20
    stats: list[Any] = []
    while time.monotonic() < deadline:
        stats = [await p.evaluate(STATS_JS) for p in pages]
        if all(s and s["framesDecoded"] > 0 and s["audioPackets"] > 0 for s in stats):
            break
        await asyncio.sleep(0.5)
    assert all(s and s["framesDecoded"] > 0 for s in stats), json.dumps(stats)
    assert all(s["audioPackets"] > 0 for s in stats), json.dumps(stats)
    assert all(s["videoCodec"] == codec for s in stats), json.dumps(stats)
    assert all(s["error"] is None for s in stats), json.dumps(stats)
    shared = world.server.app[MEDIA].shared_port
    if single_port:
        # Chromium runs in processes of its own: the call opened no UDP socket in this
        # process on the node's address; the server's one socket carried it.
        assert shared is not None
        sockets_after = set(udp_sockets_on("127.0.0.1"))
        assert ("127.0.0.1", shared.port) in sockets_after
        assert sockets_after - sockets_before == set(), (sockets_before, sockets_after)
    else:
        assert shared is None
