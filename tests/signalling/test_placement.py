"""Room placement by load and node drain: three real apps (each with its SFU, hub and heartbeat)
on one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from api.keys import HUB, MEDIA, NODE, REDIS, SETTINGS
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from kundlinow.node_commands import drain_node
from signalling.errors import CLOSE_SERVICE_RESTART
from signalling.media_routing import RoutedMedia
from signalling.placement import RedisPlacement
from tests.factories import create_user
from tests.signalling.wsclient import connect

HEARTBEAT_S = 0.3
ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


@pytest.fixture
async def nodes(
    settings: Settings, redis_url: str, redis_prefix: str, aiohttp_client: ClientFactory
) -> AsyncIterator[list[TestClient[Any, Any]]]:
    """Apps ``n0``, ``n1``, ``n2`` sharing this test's database and Redis prefix (the database
    is set up first so that it outlives the apps)."""
    configured = replace(
        settings, redis_url=redis_url, redis_prefix=redis_prefix, drain_deadline_s=60.0,
        signalling=replace(settings.signalling, presence_heartbeat_s=HEARTBEAT_S),
    )
    clients = [
        await aiohttp_client(create_app(replace(configured, node_id=f"n{i}"))) for i in range(3)
    ]
    yield clients
    await _close(clients)


async def _close(clients: list[TestClient[Any, Any]]) -> None:
    """Closed here, while the database and Redis are still there (aiohttp_client's own
    teardown of several apps hung on this machine)."""
    for client in clients:
        await asyncio.wait_for(client.close(), 60)


def _routed(client: TestClient[Any, Any]) -> RoutedMedia:
    media = client.app[HUB].media
    assert isinstance(media, RoutedMedia)
    return media


def _rooms(clients: list[TestClient[Any, Any]]) -> list[int]:
    return [len(c.app[MEDIA].room_ids) for c in clients]


def _placement(client: TestClient[Any, Any]) -> RedisPlacement:
    """The placement as the CLI sees it, on the app's own Redis client."""
    prefix = client.app[SETTINGS].redis_prefix
    return RedisPlacement(client.app[REDIS], prefix, alive_prefix=f"{prefix}presence:node:")


async def test_thirty_rooms_from_one_node_spread_over_three(
    nodes: list[TestClient[Any, Any]]
) -> None:
    placement = _placement(nodes[0])
    """Every room is asked for by n0 (the old rule, "the first node that needs it claims it",
    would put all 30 there); placement by load spreads them, also when several start at once."""
    assert await eventually(lambda: _loads_published(placement, 3))
    asking = _routed(nodes[0])
    gate = asyncio.Semaphore(5)  # five consultations starting at any moment

    async def start(i: int) -> None:
        async with gate:
            await asking.join(f"room-{i}", "caller")

    await asyncio.gather(*(start(i) for i in range(30)))
    counts = _rooms(nodes)
    print(f"rooms per node after 30 placements: {counts}")
    assert sum(counts) == 30
    assert max(counts) <= 1.3 * min(counts), counts
    # the published loads catch up with the engines at the next heartbeats
    assert await eventually(
        lambda: _published_rooms(placement, counts), seconds=30
    ), counts


async def test_the_least_loaded_node_gets_the_next_rooms(
    nodes: list[TestClient[Any, Any]]
) -> None:
    placement = _placement(nodes[0])
    assert await eventually(lambda: _loads_published(placement, 3))
    for i in range(4):  # n1's SFU already carries 4 rooms (straight on its engine)
        await nodes[1].app[MEDIA].join(f"old-{i}", "caller")
    assert await eventually(lambda: _published_rooms(placement, [0, 4, 0]))
    for i in range(8):
        await _routed(nodes[2]).join(f"new-{i}", "caller")
    assert _rooms(nodes) == [4, 4, 4]


async def test_a_draining_node_takes_no_rooms_says_so_and_is_not_ready(
    nodes: list[TestClient[Any, Any]], database: Database, settings: Settings
) -> None:
    placement = _placement(nodes[0])
    assert await eventually(lambda: _loads_published(placement, 3))
    n2 = nodes[2]
    await _routed(n2).join("live", "caller")  # a live room n2 hosts (asked by n2: a tie)
    assert n2.app[MEDIA].room_ids == ["live"]
    user = await create_user(database, settings)
    idle = await connect(n2, "/ws", user.token)
    assert (await n2.get("/readyz")).status == 200

    # `kundlinow node drain --node n2 --wait`: returns once n2 hosts no room
    waiting = asyncio.create_task(drain_node(placement, "n2", wait_s=30, poll_s=0.1))
    assert await eventually(lambda: _status(n2, 503))
    body = await (await n2.get("/readyz")).json()
    assert body["error"]["code"] == "DRAINING"
    assert n2.app[NODE].state.draining
    # its sockets are told to reconnect; one in no consultation is closed with 1012
    notice = await idle.event("reconnect")
    assert notice == {"reason": "draining", "deadline_s": 60.0}
    closed = await idle.ws.receive(timeout=30)
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == CLOSE_SERVICE_RESTART

    # no new room lands on n2, even when n2 itself asks
    for i in range(9):
        await _routed(nodes[i % 3]).join(f"after-drain-{i}", "caller")
    counts = _rooms(nodes)
    assert counts[2] == 1 and counts[0] + counts[1] == 9, counts
    assert "n2" not in {n for n, load in (await placement.loads()).items() if not load.draining}

    # the live room finishes; the drain wait returns then, not before
    await asyncio.sleep(3 * HEARTBEAT_S)
    assert not waiting.done()
    await _routed(n2).leave("live", "caller")
    assert await asyncio.wait_for(waiting, 20) is True
    assert await eventually(lambda: _set(n2.app[NODE].state.done))


async def test_the_deadline_evicts_rooms(
    settings: Settings, redis_url: str, redis_prefix: str, aiohttp_client: ClientFactory
) -> None:
    configured = replace(
        settings, redis_url=redis_url, redis_prefix=redis_prefix, drain_deadline_s=1.0,
        signalling=replace(settings.signalling, presence_heartbeat_s=HEARTBEAT_S),
    )
    a = await aiohttp_client(create_app(replace(configured, node_id="a")))
    b = await aiohttp_client(create_app(replace(configured, node_id="b")))
    try:
        await _evicted_at_the_deadline(a, b, redis_prefix)
    finally:
        await _close([a, b])


async def _evicted_at_the_deadline(
    a: TestClient[Any, Any], b: TestClient[Any, Any], redis_prefix: str
) -> None:
    placement = _placement(a)
    assert await eventually(lambda: _loads_published(placement, 2))
    await _routed(a).join("stays-too-long", "caller")
    assert a.app[MEDIA].room_ids == ["stays-too-long"]
    a.app[NODE].begin()
    assert await eventually(lambda: _set(a.app[NODE].state.done), 30)
    assert a.app[MEDIA].room_ids == []
    claim = await a.app[REDIS].get(f"{redis_prefix}media:room:stays-too-long")
    assert claim is None  # released: the parties' rejoin places it again
    await _routed(b).join("stays-too-long", "caller")
    assert b.app[MEDIA].room_ids == ["stays-too-long"]


async def _loads_published(placement: RedisPlacement, count: int) -> bool:
    return len(await placement.loads()) == count


async def _published_rooms(placement: RedisPlacement, counts: list[int]) -> bool:
    loads = await placement.loads()
    return [loads[f"n{i}"].rooms for i in range(3)] == counts


async def _status(client: TestClient[Any, Any], status: int) -> bool:
    return (await client.get("/readyz")).status == status


async def _set(event: asyncio.Event) -> bool:
    return event.is_set()
