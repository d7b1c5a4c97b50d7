"""Astrologers' statuses pushed to the sockets that watch them (``presence`` with ``watch``):
connect, away and back, busy in a consultation, free again, gone — on one node and across two
(real Redis bus, separate server processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.signalling.cluster import Node, serve_nodes
from tests.signalling.conftest import WorldFactory
from tests.signalling.wsclient import connect


async def test_watched_astrologer_status_is_pushed(make_world: WorldFactory) -> None:
    world = await make_world()
    astrologer = await world.user("consultant")
    caller = await world.user(paise=100_000)
    watcher = await world.ws(caller)
    ack = await watcher.ok("presence", {"consultant_ids": [str(astrologer.id)], "watch": True})
    assert ack["statuses"] == {str(astrologer.id): "offline"}

    def status(value: str) -> dict[str, str]:
        return {"consultant_id": str(astrologer.id), "status": value}

    astro = await world.ws(astrologer)
    assert await watcher.event("consultant_status") == status("online")
    await astro.ok("presence", {"status": "away"})
    assert await watcher.event("consultant_status") == status("away")
    await astro.ok("presence", {"status": "online"})
    assert await watcher.event("consultant_status") == status("online")

    ack = await watcher.ok("consult_request", {"consultant_id": str(astrologer.id), "mode": "chat"})
    cid = ack["consultation"]["id"]
    await astro.ok("accept", {"consultation_id": cid})
    assert await watcher.event("consultant_status") == status("busy")
    await watcher.ok("session_end", {"consultation_id": cid})
    assert await watcher.event("consultant_status") == status("online")

    await astro.close()
    assert await watcher.event("consultant_status") == status("offline")

    other = await world.ws(await world.user())  # did not watch: told nothing
    await world.ws(astrologer)
    assert await watcher.event("consultant_status") == status("online")
    assert not [f for f in await other.drain() if f["type"] == "consultant_status"]


@pytest.fixture
async def nodes(
    db_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[list[Node]]:
    async with serve_nodes(db_dsn, redis_url, redis_prefix, tmp_path) as started:
        yield started


async def test_status_reaches_watchers_on_another_node(
    nodes: list[Node], database: Database, settings: Settings
) -> None:
    a, b = nodes
    astrologer = await create_user(database, settings, "consultant")
    caller = await create_user(database, settings)
    await grant(database, caller.id, 10_000)
    async with aiohttp.ClientSession() as session:
        watcher = await connect(session, f"{b.url}/ws", caller.token)
        await watcher.ok("presence", {"consultant_ids": [str(astrologer.id)], "watch": True})
        astro = await connect(session, f"{a.url}/ws", astrologer.token)
        event = await watcher.event("consultant_status", wait_s=30)
        assert event == {"consultant_id": str(astrologer.id), "status": "online"}
        await astro.close()
        event = await watcher.event("consultant_status", wait_s=30)
        assert event["status"] == "offline"
