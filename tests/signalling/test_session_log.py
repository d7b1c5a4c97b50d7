"""The hub writes the session log: sockets joining and dropping (with the node), mute/camera,
deliberate leaves, the reconnect grace, and a waitlist offer taken; read back over the admin API."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from api.keys import HUB
from core.db import Database
from core.session_log import read_events
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import auth, create_user
from tests.signalling.cluster import serve_nodes
from tests.signalling.conftest import World, WorldFactory
from tests.signalling.test_lifecycle import FUNDS, _in_room, _start
from tests.signalling.wsclient import WsClient, connect


async def _log(world: World, cid: str, until: str, count: int = 1) -> list[dict[str, Any]]:
    """The admin's view of the log, once it holds ``count`` events of kind ``until``."""
    admin = await world.user("admin")
    deadline = time.monotonic() + 20
    while True:
        response = await world.server.get(f"/admin/consultations/{cid}/log",
                                          headers=auth(admin.token))
        items: list[dict[str, Any]] = (await response.json())["items"]
        if sum(e["kind"] == until for e in items) >= count:
            return items
        assert time.monotonic() < deadline, [e["kind"] for e in items]
        await asyncio.sleep(0.1)


async def _ok(ws: WsClient, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    frame = await ws.request(kind, data, wait_s=30)
    assert frame["type"] == "ack", frame
    result: dict[str, Any] = frame["data"]
    return result


def _hub_events(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    billing = {"requested", "accepted", "minute_charged", "minute_reversed", "ended",
               "balance_warning"}
    return [(e["kind"], e["actor_id"]) for e in items if e["kind"] not in billing]


async def test_sockets_media_state_drops_and_leaves_are_logged(make_world: WorldFactory) -> None:
    world = await make_world(reconnect_grace_s=0.5)
    astro_user, caller_user, astro, caller, cid = await _in_room(world)
    node = world.server.app[HUB].node_id
    caller_id, astro_id = str(caller_user.id), str(astro_user.id)
    await caller.ok("media_state", {"consultation_id": cid, "audio": False, "video": True})
    await astro.ok("leave_consult", {"consultation_id": cid})
    await caller.close()  # the caller drops; the grace runs out and the consultation ends
    items = await _log(world, cid, "ended")

    assert _hub_events(items) == [
        ("socket_connected", caller_id),
        ("socket_connected", astro_id),
        ("media_state_changed", caller_id),
        ("socket_left", astro_id),
        ("socket_disconnected", caller_id),
        ("party_dropped", caller_id),
    ]
    hub_items = [e for e in items if e["kind"].startswith(("socket", "party", "media"))]
    assert all(e["node_id"] == node for e in hub_items)
    connected = [e["data"] for e in items if e["kind"] == "socket_connected"]
    assert [d["role"] for d in connected] == ["caller", "astrologer"]
    assert all(d["state"] == "active" and d["conn"] and d["connected_at"] for d in connected)
    muted = next(e for e in items if e["kind"] == "media_state_changed")
    assert muted["data"] == {"audio": False, "video": True}
    dropped = next(e for e in items if e["kind"] == "party_dropped")
    assert dropped["data"]["grace_s"] == 0.5
    ended = items[-1]
    assert ended["kind"] == "ended" and ended["data"]["reason"] == "disconnected"
    assert ended["actor_id"] == caller_id


async def test_an_observer_and_a_taken_waitlist_offer_are_logged(
    make_world: WorldFactory,
) -> None:
    world = await make_world(waitlist_offer_s=30)
    astro_user = await world.user("consultant")
    first_user, second_user = await world.user(paise=FUNDS), await world.user(paise=FUNDS)
    astro, first, second = [await world.ws(u) for u in (astro_user, first_user, second_user)]
    cid = await _start(first, astro, str(astro_user.id))
    admin = await world.ws(await world.user("admin"))
    await admin.ok("join_consult", {"consultation_id": cid})
    request = {"consultant_id": str(astro_user.id), "mode": "chat"}
    assert (await second.ok("consult_request", {**request, "waitlist": True}))["position"] == 1
    await astro.ok("session_end", {"consultation_id": cid})
    await second.event("waitlist")
    next_cid = (await second.ok("consult_request", request))["consultation"]["id"]

    observed = await _log(world, cid, "socket_connected")
    assert [e["data"]["role"] for e in observed if e["kind"] == "socket_connected"] == [
        "observer"
    ]
    items = await _log(world, next_cid, "offered")
    assert [e["kind"] for e in items] == ["offered", "requested"]  # offered first, by time
    assert items[0]["actor_id"] == str(second_user.id) and items[0]["data"] == {"mode": "chat"}


async def test_each_node_logs_its_own_sockets(
    db_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path, database: Database,
    settings: Settings,
) -> None:
    """Two server processes: each party's socket events carry the id of the node holding it."""
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, FUNDS)
    async with serve_nodes(db_dsn, redis_url, redis_prefix, tmp_path) as (a, b), \
            aiohttp.ClientSession() as session:
        astro = await connect(session, f"{a.url}/ws", astro_user.token)
        caller = await connect(session, f"{b.url}/ws", caller_user.token)
        # fresh processes on a loaded machine: wait longer than WsClient.ok's 5 s
        request = {"consultant_id": str(astro_user.id), "mode": "chat"}
        ack = await _ok(caller, "consult_request", request)
        cid = ack["consultation"]["id"]
        await astro.event("consult_request", wait_s=30)
        await _ok(astro, "accept", {"consultation_id": cid})
        await _ok(caller, "join_consult", {"consultation_id": cid})
        await _ok(astro, "join_consult", {"consultation_id": cid})
        await caller.close()
        deadline = time.monotonic() + 30
        while True:  # each node writes its own batch
            events = await read_events(database.pool, uuid.UUID(cid))
            kinds = [e.kind for e in events]
            if "socket_disconnected" in kinds and kinds.count("socket_connected") == 2:
                break
            assert time.monotonic() < deadline, kinds
            await asyncio.sleep(0.2)
    nodes = {(e.kind, e.actor_id): e.node_id for e in events if e.kind.startswith("socket")}
    caller_node = nodes[("socket_connected", caller_user.id)]
    assert caller_node and caller_node == nodes[("socket_disconnected", caller_user.id)]
    assert nodes[("socket_connected", astro_user.id)] not in (None, caller_node)
