"""The session log of a real consult: two headless Chromium pages hold a video consult through
the real server and SFU while the billing ticker charges short minutes; afterwards an admin
reads ``/admin/consultations/{id}/log`` (JSON and CSV) and finds every step in order: billing's,
the hub's (sockets) and the SFU's (ICE with the candidate types, DTLS, first media)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from playwright.async_api import Browser

from core.db import Database
from kundlinow.config import Settings
from media.config import MediaSettings
from tests.factories import auth
from tests.media.test_browser import PEER_JS, STATS_JS
from tests.signalling.conftest import world_factory

CANDIDATE_TYPES = {"host", "srflx", "prflx", "relay"}


def _in_order(kinds: list[str], expected: list[str]) -> bool:
    """``expected`` is a subsequence of ``kinds``."""
    remaining = iter(kinds)
    return all(kind in remaining for kind in expected)


async def test_a_chromium_video_consult_is_logged_in_order(
    aiohttp_client: Any, settings: Settings, database: Database, chromium: Browser
) -> None:
    settings = replace(settings, media=MediaSettings(ice_host_addresses=("127.0.0.1",)))
    world = await world_factory(aiohttp_client, settings, database)(
        minute_seconds=3, tick_interval_seconds=0.5
    )
    astro, caller = await world.user("consultant"), await world.user(paise=1_000_000)
    admin = await world.user("admin")
    astro_ws, caller_ws = await world.ws(astro), await world.ws(caller)
    ack = await caller_ws.ok("consult_request", {"consultant_id": str(astro.id), "mode": "video"})
    cid = ack["consultation"]["id"]
    await astro_ws.event("consult_request")
    await astro_ws.ok("accept", {"consultation_id": cid})

    port = world.server.server.port
    pages = []
    for user in (caller, astro):
        page = await (await chromium.new_context()).new_page()
        await page.goto(f"http://127.0.0.1:{port}/health")  # a secure-context origin
        await page.evaluate(PEER_JS, {"wsUrl": f"ws://127.0.0.1:{port}/ws", "token": user.token,
                                      "consultationId": cid, "codec": "video/VP8"})
        pages.append(page)
    deadline = time.monotonic() + 60
    stats: list[Any] = []
    while time.monotonic() < deadline:  # media both ways, and a minute charged by the tick
        stats = [await p.evaluate(STATS_JS) for p in pages]
        if all(s and s["framesDecoded"] > 0 and s["audioPackets"] > 0 for s in stats):
            minutes = await database.pool.fetchval(
                "SELECT minutes_charged FROM consultations WHERE id = $1::uuid", cid
            )
            if minutes >= 2:
                break
        await asyncio.sleep(0.5)
    assert all(s and s["framesDecoded"] > 0 for s in stats), json.dumps(stats)
    await caller_ws.ok("session_end", {"consultation_id": cid})

    url = f"/admin/consultations/{cid}/log"
    items = (await (await world.server.get(url, headers=auth(admin.token))).json())["items"]
    kinds = [e["kind"] for e in items]

    assert _in_order(kinds, ["requested", "accepted", "minute_charged", "socket_connected",
                             "joined",
                             "ice_state_changed", "dtls_state_changed", "first_media",
                             "minute_charged", "ended"]), kinds
    parties = {str(caller.id), str(astro.id)}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for e in items:
        by_kind.setdefault(e["kind"], []).append(e)
    assert {e["actor_id"] for e in by_kind["socket_connected"]} == parties
    completed = [e for e in by_kind["ice_state_changed"] if e["data"]["state"] == "completed"]
    assert {e["actor_id"] for e in completed} == parties
    assert all(e["data"]["remote_candidate_type"] in CANDIDATE_TYPES
               and e["data"]["local_candidate_type"] == "host" for e in completed), completed
    assert {e["data"]["state"] for e in by_kind["dtls_state_changed"]} >= {"connected"}
    first = {(e["actor_id"], e["data"]["kind"]) for e in by_kind["first_media"]}
    assert first == {(p, k) for p in parties for k in ("audio", "video")}
    assert len(by_kind["first_media"]) == 4  # once per track, however many SSRCs
    assert all(e["node_id"] for e in completed + by_kind["first_media"] + by_kind["joined"])
    assert [e["data"]["minute"] for e in by_kind["minute_charged"]][:2] == [1, 2]
    ended = by_kind["ended"][0]
    assert ended["data"]["reason"] == "completed" and ended["actor_id"] == str(caller.id)
    times = [datetime.fromisoformat(e["at"]) for e in items]
    assert times == sorted(times)

    as_csv = await world.server.get(url + "?format=csv", headers=auth(admin.token))
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert [r["kind"] for r in rows][: len(kinds)] == kinds
    assert all(isinstance(json.loads(r["data"]), dict) for r in rows)
