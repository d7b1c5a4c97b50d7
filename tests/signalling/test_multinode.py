"""Two real server processes (``python -m kundlinow serve``) sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant, withdraw_available
from tests.factories import create_user
from tests.polling import eventually
from tests.signalling.cluster import Node, serve_nodes, wait_exit
from tests.signalling.wsclient import WsClient, connect

REPO = Path(__file__).resolve().parents[2]
WATCHDOG_S = 0.5
"""Each node's room watchdog runs every presence heartbeat (PRESENCE_HEARTBEAT)."""
FUNDED_MINUTES = 1000
"""Minutes (1 s each here) the cross-node session's caller can pay for: far more than the
steps take however busy the machine; the test empties the wallet when it wants the end."""
END_WAIT_S = 60
"""How long the unfunded end may take to reach a socket: on a quiet machine the next tick
(0.2 s); a loaded one has been seen to run the ticker 10+ s late."""
VIDEO_RATE_PAISE = 2000
"""tests.factories' default video rate per minute."""
GRACE_S = 5
"""RECONNECT_GRACE: long enough for a loaded machine to reconnect a socket and rejoin."""


@pytest.fixture
async def nodes(
    db_dsn: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[list[Node]]:
    async with serve_nodes(
        db_dsn, redis_url, redis_prefix, tmp_path,
        BILLING_MINUTE_SECONDS="1", BILLING_TICK_INTERVAL="0.2", RECONNECT_GRACE=str(GRACE_S),
        PRESENCE_HEARTBEAT=str(WATCHDOG_S),
    ) as started:
        yield started


async def _ws(session: aiohttp.ClientSession, node: Node, token: str) -> WsClient:
    return await connect(session, f"{node.url}/ws", token)


async def test_cross_node_session(
    nodes: list[Node], database: Database, settings: Settings
) -> None:
    a, b = nodes
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    # Funded for far longer than the steps take: with only a few seconds' worth, a loaded
    # machine ran out of money mid-way and the consultation ended under the test (a message
    # then answered CONSULT_NOT_ACTIVE, or an in-flight one found the room already closed).
    await grant(database, caller_user.id, FUNDED_MINUTES * VIDEO_RATE_PAISE)
    async with aiohttp.ClientSession() as session:
        astro = await _ws(session, a, astro_user.token)
        caller = await _ws(session, b, caller_user.token)
        # the request on node b reaches the astrologer on node a
        ack = await caller.ok("consult_request", {"consultant_id": str(astro_user.id),
                                                  "mode": "video"})
        cid = ack["consultation"]["id"]
        assert (await astro.event("consult_request"))["consultation"]["id"] == cid
        accepted = await astro.ok("accept", {"consultation_id": cid})
        started_at = datetime.fromisoformat(accepted["consultation"]["started_at"])
        await caller.ok("join_consult", {"consultation_id": cid})
        await astro.ok("join_consult", {"consultation_id": cid})
        # chat both ways
        await caller.ok("message", {"consultation_id": cid, "client_id": "c1", "text": "hello"})
        assert (await astro.event("message"))["message"]["text"] == "hello"
        await astro.ok("message", {"consultation_id": cid, "client_id": "a1", "text": "namaste"})
        assert (await caller.event("message"))["message"]["text"] == "namaste"
        # typing
        await astro.ok("typing", {"consultation_id": cid, "typing": True})
        assert (await caller.event("typing"))["user_id"] == str(astro_user.id)
        # SDP and candidates relayed peer to peer across nodes
        sdp = "v=0\r\no=- 7 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        await caller.ok("call_offer", {"consultation_id": cid, "sdp": sdp, "target": "peer"})
        assert (await astro.event("call_offer"))["sdp"] == sdp
        await astro.ok("call_answer", {"consultation_id": cid, "sdp": sdp, "target": "peer"})
        assert (await caller.event("call_answer"))["from"] == str(astro_user.id)
        candidate = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host",
                     "sdpMid": "0", "sdpMLineIndex": 0}
        await astro.ok("ice_candidate", {"consultation_id": cid, "candidate": candidate,
                                         "target": "peer"})
        assert (await caller.event("ice_candidate"))["candidate"] == candidate
        # billing ticks reach both nodes; once the wallet is empty the unfunded minute ends it
        # on both
        assert (await caller.event("billing_tick"))["consultation_id"] == cid
        assert await withdraw_available(database, caller_user.id) > 0
        for side in (caller, astro):
            ended = await side.event("session_end", wait_s=END_WAIT_S)
            assert ended["reason"] == "insufficient_balance"
            # The end is the boundary of the first minute the wallet could not pay (a whole
            # number of 1 s minutes after the start), not a grace or presence timeout. (The
            # minutes are refunded: no media ever flowed, so the receipt says 0.)
            ended_at = datetime.fromisoformat(ended["ended_at"])
            served = (ended_at - started_at).total_seconds()
            assert served >= 1 and served.is_integer(), (served, ended)
            assert (datetime.now(UTC) - ended_at).total_seconds() < END_WAIT_S, ended_at


async def test_killed_node_takes_its_astrologers_offline(
    nodes: list[Node], database: Database, settings: Settings
) -> None:
    """SIGKILL node a: its astrologer shows offline on node b within 15 s, and their live
    consultation with a caller on node b ends ``disconnected`` after the grace."""
    a, b = nodes
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    ids = [str(astro_user.id)]
    async with aiohttp.ClientSession() as session:
        astro = await _ws(session, a, astro_user.token)
        caller = await _ws(session, b, caller_user.token)
        statuses = (await caller.ok("presence", {"consultant_ids": ids}))["statuses"]
        assert statuses == {ids[0]: "online"}
        async with session.get(f"{b.url}/consultants/{astro_user.id}") as response:
            assert (await response.json())["status"] == "online"
        ack = await caller.ok("consult_request", {"consultant_id": ids[0], "mode": "chat"})
        cid = ack["consultation"]["id"]
        await astro.event("consult_request")
        await astro.ok("accept", {"consultation_id": cid})
        await astro.ok("join_consult", {"consultation_id": cid})
        await caller.ok("join_consult", {"consultation_id": cid})
        # Node b's watchdog must have seen the astrologer connected before node a dies. That
        # state is inside node b's process, so no condition can be polled from here: the test
        # lets ten watchdog rounds pass, which a loaded machine still completes.
        await asyncio.sleep(10 * WATCHDOG_S)
        a.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        a.process.wait()

        async def astrologer_offline() -> bool:
            statuses = (await caller.ok("presence", {"consultant_ids": ids}))["statuses"]
            return bool(statuses[ids[0]] == "offline")

        # PRESENCE_NODE_TTL (10 s) after the last heartbeat of the dead node
        assert await eventually(astrologer_offline, 30, step=0.25), "astrologer still online"
        offline_after = time.monotonic() - killed
        async with session.get(f"{b.url}/consultants/{astro_user.id}") as response:
            assert (await response.json())["status"] == "offline"
        print(f"astrologer offline {offline_after:.1f} s after SIGKILL of their node")
        notice = await caller.event("presence", status="reconnecting", wait_s=30)
        assert notice["user_id"] == ids[0]
        ended = await caller.event("session_end", wait_s=GRACE_S + 15)
        assert ended["reason"] == "disconnected"
        assert datetime.fromisoformat(ended["ended_at"]) < datetime.now(UTC)
        await astro.ws.close()


async def test_clean_shutdown_withdraws_presence_at_once(
    nodes: list[Node], database: Database, settings: Settings
) -> None:
    a, b = nodes
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    ids = [str(astro_user.id)]
    async with aiohttp.ClientSession() as session:
        astro = await _ws(session, a, astro_user.token)
        watcher = await _ws(session, b, caller_user.token)
        assert (await watcher.ok("presence", {"consultant_ids": ids}))["statuses"][ids[0]] == (
            "online"
        )
        # The caller drops on node b and comes back on node a within the grace (GRACE_S):
        # node b's grace timer is cancelled from node a, the session goes on.
        ack = await watcher.ok("consult_request", {"consultant_id": ids[0], "mode": "chat"})
        cid = ack["consultation"]["id"]
        await astro.event("consult_request")
        await astro.ok("accept", {"consultation_id": cid})
        await astro.ok("join_consult", {"consultation_id": cid})
        await watcher.ok("join_consult", {"consultation_id": cid})
        await watcher.ws.close()
        notice = await astro.event("presence", status="reconnecting")
        assert notice["user_id"] == str(caller_user.id)
        back = await _ws(session, a, caller_user.token)
        await back.ok("join_consult", {"consultation_id": cid, "since": 0})
        assert (await astro.event("presence", status="online"))["user_id"] == str(caller_user.id)
        # An observation window longer than the grace: a session_end would be seen in it.
        assert not [f for f in await astro.during(GRACE_S + 1) if f["type"] == "session_end"]
        sent = await back.ok("message", {"consultation_id": cid, "client_id": "r",
                                         "text": "back"})
        assert sent["message"]["seq"] == 1
        a.process.send_signal(signal.SIGTERM)
        # SIGTERM drains: the live consultation's sockets are told to reconnect elsewhere and
        # stay until DRAIN_DEADLINE (3 s here), then close (1012 service restart, or 1001 when
        # the server's own shutdown closes them first).
        frames = []
        msg = await astro.ws.receive(timeout=30)
        while msg.type == aiohttp.WSMsgType.TEXT:  # events still in flight
            frames.append(json.loads(msg.data))
            msg = await astro.ws.receive(timeout=30)
        assert "reconnect" in [f.get("type") for f in frames]
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data in (1012, 1001), msg
        await wait_exit(a, 30)  # Kubernetes waits 30 s after the deadline before it kills
        watcher = await _ws(session, b, caller_user.token)
        assert (await watcher.ok("presence", {"consultant_ids": ids}))["statuses"][ids[0]] == (
            "offline"
        )
