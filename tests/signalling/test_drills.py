"""Failure drills on real server processes: the shared Redis or PostgreSQL restarts under them.

Each drill starts its own Redis or PostgreSQL (tests/private_servers.py) and restarts that one:
the machine's servers are shared by every test run on it. The node-death and drain drills are
in test_media_routing.py (``kill -9`` of a call's host) and below (SIGTERM).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from billing.audit import load_snapshot
from billing.invariants import check_all, minutes_due
from core.db import Database, is_connection_lost
from kundlinow.config import Settings
from kundlinow.database import migrations
from signalling.placement import RedisPlacement, now_ms
from tests.billing.helpers import grant
from tests.factories import create_user
from tests.polling import eventually
from tests.private_servers import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from tests.signalling.cluster import Node, node_logs, serve_nodes, wait_exit
from tests.signalling.media_peer import WsPeer, start_consult
from tests.signalling.wsclient import WsClient, connect

HEARTBEAT_S = 0.5
"""PRESENCE_HEARTBEAT: how soon a node re-asserts its presence in a restarted Redis."""


@pytest.fixture
async def own_redis() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        await server.ready()
        yield server


class Sender:
    """Sends chat messages under fresh client ids; a failed send is retried later with the same
    id (the server keeps a message once per client id), as the web client does."""

    def __init__(self, client: WsClient, cid: str, tag: str) -> None:
        self.client = client
        self.cid = cid
        self.tag = tag
        self._numbers = itertools.count(1)
        self.acked: dict[str, int] = {}
        """client id → seq, for every message the server acknowledged."""
        self.unacked: list[str] = []

    async def send(self) -> str:
        client_id = f"{self.tag}{next(self._numbers)}"
        await self._try(client_id)
        return client_id

    async def retry(self) -> None:
        waiting, self.unacked = self.unacked, []
        for client_id in waiting:
            await self._try(client_id)

    async def _try(self, client_id: str) -> None:
        frame = await self.client.request(
            "message", {"consultation_id": self.cid, "client_id": client_id, "text": client_id}
        )
        if frame["type"] == "ack":
            self.acked[client_id] = frame["data"]["message"]["seq"]
        else:
            self.unacked.append(client_id)


def _live(client: WsClient) -> dict[str, int]:
    """Text → seq of the ``message`` events this socket received (buffered so far)."""
    return {f["data"]["message"]["text"]: f["data"]["message"]["seq"]
            for f in client.events if f["type"] == "message"}


async def _delivered_live(sender: Sender, receiver: WsClient) -> bool:
    """A message sent now reaches the other party's socket, across nodes, within a second."""
    client_id = await sender.send()
    if client_id not in sender.acked:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while client_id not in _live(receiver):
        try:  # kept in ``events``: the resume below needs every message seen live
            receiver.events.append(await receiver._read(max(0.01, deadline - loop.time())))
        except TimeoutError:
            return False
    return True


async def test_redis_restarted_mid_chat(
    own_redis: PrivateRedis, database: Database, settings: Settings, db_dsn: str,
    redis_prefix: str, tmp_path: Path,
) -> None:
    """Redis is killed (every key and subscription gone) and started again, empty, while a
    caller on node a and an astrologer on node b chat. The sockets stay up, fan-out across the
    nodes comes back by itself, the consultation goes on, and every message either party sent
    is in the other's view after a resume from the database (``join_consult`` with ``since``)."""
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    async with serve_nodes(
        db_dsn, own_redis.url, redis_prefix, tmp_path, PRESENCE_HEARTBEAT=str(HEARTBEAT_S),
        PRESENCE_NODE_TTL="3",
    ) as (a, b), aiohttp.ClientSession() as session:
        caller = await connect(session, f"{a.url}/ws", caller_user.token)
        astro = await connect(session, f"{b.url}/ws", astro_user.token)
        cid = await start_consult(caller, astro, str(astro_user.id), mode="chat")
        senders = {"caller": Sender(caller, cid, "c"), "astro": Sender(astro, cid, "a")}
        for sender, receiver in ((senders["caller"], astro), (senders["astro"], caller)):
            assert await _delivered_live(sender, receiver), "no fan-out before the drill"

        own_redis.kill()
        for _ in range(3):  # while Redis is down: persisted, and acked or failed cleanly
            for sender in senders.values():
                await sender.send()
        own_redis.start()
        await own_redis.ready()
        restarted = time.monotonic()

        for sender in senders.values():
            await sender.retry()
        for sender, receiver in ((senders["caller"], astro), (senders["astro"], caller)):
            recovered = functools.partial(_delivered_live, sender, receiver)
            assert await eventually(recovered, 20, step=0.1), (
                f"fan-out did not recover: {node_logs(a, b)}"
            )
        print(f"fan-out both ways {time.monotonic() - restarted:.1f} s after Redis restarted")
        for sender in senders.values():
            assert not sender.unacked, sender.unacked

        # each party resumes after the last seq up to which it saw every message (its own
        # acks and the other's live events), as the web client does on a gap
        for receiver, own, other in ((astro, "astro", "caller"), (caller, "caller", "astro")):
            live = _live(receiver)
            known = set(live.values()) | set(senders[own].acked.values())
            since = next(n for n in itertools.count() if n + 1 not in known)
            seen = set(live) | set(await _resume(receiver, cid, since))
            missing = set(senders[other].acked) - seen
            assert not missing, sorted(missing)
        # the sockets were never dropped and the consultation is still live on both nodes
        for client in (caller, astro):
            assert not client.ws.closed
            assert not [f for f in client.events if f["type"] == "session_end"]

        async def astrologer_busy() -> bool:  # b re-asserts its counts at its next heartbeat
            ids = [str(astro_user.id)]
            statuses = (await caller.ok("presence", {"consultant_ids": ids}))["statuses"]
            return bool(statuses[ids[0]] == "busy")

        assert await eventually(astrologer_busy, 10 * HEARTBEAT_S, step=0.1)


async def _resume(client: WsClient, cid: str, since: int) -> dict[str, int]:
    """Text → seq of the messages a resume after ``since`` replays."""
    client.events.clear()
    ack = await client.ok("join_consult", {"consultation_id": cid, "since": since})
    replayed = ack.get("replayed", 0)
    out: dict[str, int] = {}
    while len(out) < replayed:
        message = (await client.event("message"))["message"]
        out[message["text"]] = message["seq"]
    return out


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[PrivatePostgres, Database]]:
    """A private PostgreSQL with the schema migrated, and the test's pool on it."""
    with private_postgres() as server:
        await server.ready()
        database = await Database.connect(server.dsn, migrations=migrations())
        try:
            await database.migrate()
            yield server, database
        finally:
            await database.close()


async def _charged(database: Database, cid: str) -> int:
    minutes: int = await database.pool.fetchval(
        "SELECT minutes_charged FROM consultations WHERE id = $1::uuid", cid
    )
    return minutes


async def _caught_up(database: Database, cid: str) -> bool:
    """Every minute due by now is charged (minute k is due once k - 1 minutes have run)."""
    return bool(await database.pool.fetchval(
        "SELECT minutes_charged >= floor(extract(epoch FROM now() - started_at)"
        " / minute_seconds) + 1 FROM consultations WHERE id = $1::uuid", cid
    ))


async def _ready(session: aiohttp.ClientSession, node: Node) -> bool:
    async with session.get(f"{node.url}/readyz") as response:
        return response.status == 200


async def test_postgres_restarted_during_ticks(
    own_postgres: tuple[PrivatePostgres, Database], settings: Settings, redis_url: str,
    redis_prefix: str, tmp_path: Path,
) -> None:
    """PostgreSQL crashes (immediate shutdown: ticks die mid-transaction) and comes back while
    both nodes tick a live consultation every 0.2 s with 1-second minutes. Both nodes' pools
    recover without a restart, billing catches up on the minutes that fell due meanwhile, and
    the ledger holds each minute exactly once, balanced (billing.invariants)."""
    server, database = own_postgres
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    newcomer = await create_user(database, settings)
    async with serve_nodes(
        server.dsn, redis_url, redis_prefix, tmp_path, BILLING_MINUTE_SECONDS="1",
        BILLING_TICK_INTERVAL="0.2", RECONNECT_GRACE="60",
        WS_TOKEN_CHECK="0.2",  # the sockets' token re-checks run while the database is away
    ) as (a, b), aiohttp.ClientSession() as session:
        caller = await connect(session, f"{a.url}/ws", caller_user.token)
        astro = await connect(session, f"{b.url}/ws", astro_user.token)
        cid = await start_consult(caller, astro, str(astro_user.id), mode="chat")
        assert await eventually(lambda: _charged_at_least(database, cid, 2))

        before = await _charged(database, cid)
        started_at = await database.pool.fetchval(
            "SELECT started_at FROM consultations WHERE id = $1::uuid", cid
        )
        server.crash()
        # Down until both nodes' ticks have failed, a minute boundary has passed, and each
        # socket's token re-check has found the database away (once the 5 s account-status
        # cache lapses): it keeps the socket (it closed it as UNAUTHENTICATED, logging
        # everyone out, before this drill).
        assert await eventually(
            lambda: all(_count(n, "billing_tick_failed") >= 2
                        and _count(n, "socket_token_check_deferred") >= 1 for n in (a, b))
            and minutes_due(started_at, datetime.now(UTC), 1) > before + 1
        ), node_logs(a, b)
        # a socket opening meanwhile gets no verdict on its token either: 503, try again
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(session, f"{a.url}/ws", newcomer.token)
        assert refused.value.status == 503
        # chat while the database is away: a stable, retryable error, every time (each failed
        # batch used to drop its writer connection: with none left, chat waited forever)
        for _ in range(3):
            frame = await caller.request("message", {"consultation_id": cid,
                                                     "client_id": "down", "text": "down"})
            assert frame["type"] == "error", frame
            assert frame["data"]["code"] == "DATABASE_UNAVAILABLE", frame
        server.start()
        await server.ready()
        restarted = time.monotonic()

        # the test's own pool recovers like the nodes' (its connections died too)
        assert await eventually(lambda: _caught_up_or_lost(database, cid), 30, step=0.1), (
            f"billing did not catch up: {node_logs(a, b)}"
        )
        print(f"caught up {time.monotonic() - restarted:.1f} s after PostgreSQL restarted")
        assert await _charged(database, cid) > before
        for node in (a, b):
            assert await eventually(functools.partial(_ready, session, node), 10), node.name
        # the first message after the restart is stored (its writer reconnects first), once
        sent = await caller.ok("message", {"consultation_id": cid, "client_id": "down",
                                           "text": "down"})
        assert sent["message"]["seq"] == 1 and not sent["duplicate"], sent
        assert (await astro.event("message"))["message"]["text"] == "down"

        await caller.ok("session_end", {"consultation_id": cid})
        assert (await astro.event("session_end"))["reason"] == "completed"
        violations = check_all(await load_snapshot(database.pool))
        assert violations == [], violations


async def _charged_at_least(database: Database, cid: str, minutes: int) -> bool:
    return await _charged(database, cid) >= minutes


async def _caught_up_or_lost(database: Database, cid: str) -> bool:
    try:
        return await _caught_up(database, cid)
    except Exception as exc:  # a dead pooled connection: the pool replaces it on release
        if not is_connection_lost(exc):
            raise
        return False


def _count(node: Node, event: str) -> int:
    """Log lines of ``event`` (JSON logs) a node has written so far."""
    return node.log.read_text(errors="replace").count(f'"event": "{event}"')


DRAIN_DEADLINE_S = 3.0
"""serve_nodes' DRAIN_DEADLINE."""
EXIT_SLACK_S = 30.0
"""deploy/k8s/server.yaml's terminationGracePeriodSeconds less DRAIN_DEADLINE: how long after
the deadline Kubernetes waits before it kills the pod."""


async def test_sigterm_on_a_hosting_node(
    database: Database, settings: Settings, db_dsn: str, redis_url: str, redis_prefix: str,
    tmp_path: Path,
) -> None:
    """SIGTERM node a while it hosts a live video call whose parties are both connected to it:
    placement stops choosing it at once (even for a room node a itself asks for), its parties
    are told to reconnect and are closed with 1012 at DRAIN_DEADLINE, they reconnect to node b
    and are back in media there, and node a exits well within Kubernetes' grace period."""
    astro_user = await create_user(database, settings, "consultant")
    caller_user = await create_user(database, settings)
    await grant(database, caller_user.id, 1_000_000)
    redis = aioredis.from_url(redis_url, decode_responses=True)
    placement = RedisPlacement(redis, redis_prefix, alive_prefix=f"{redis_prefix}presence:node:")
    peers: list[WsPeer] = []
    async with serve_nodes(
        db_dsn, redis_url, redis_prefix, tmp_path, MEDIA_ICE_HOSTS="127.0.0.1",
        PRESENCE_HEARTBEAT=str(HEARTBEAT_S),
    ) as (a, b), aiohttp.ClientSession() as session:
        try:
            caller = await connect(session, f"{a.url}/ws", caller_user.token)
            astro = await connect(session, f"{b.url}/ws", astro_user.token)
            cid = await start_consult(caller, astro, str(astro_user.id))
            await astro.close()  # both parties on node a, as a load balancer may put them
            astro = await connect(session, f"{a.url}/ws", astro_user.token)
            await astro.ok("join_consult", {"consultation_id": cid, "since": 0})
            peers += [WsPeer(caller, cid), WsPeer(astro, cid)]
            await _in_media(peers)
            assert await redis.get(f"{redis_prefix}media:room:{cid}") == "a"
            # node b looks busier (two rooms): placement asked by a would choose a...
            await redis.zadd(placement.rooms_prefix + "b", {"busy-1": now_ms(),
                                                            "busy-2": now_ms()})
            assert await _place(placement, redis_prefix, "probe-before") == "a"

            a.process.send_signal(signal.SIGTERM)
            termed = time.monotonic()
            # ...until it drains (SIGTERM handled: its drain request is in Redis): then b
            assert await eventually(lambda: placement.drain_requested("a"))
            for i in range(3):
                assert await _place(placement, redis_prefix, f"probe-after-{i}") == "b"
            async with session.get(f"{a.url}/readyz") as response:
                assert response.status == 503
            # the parties are told to move, and moved at the deadline
            for peer in peers:
                told = functools.partial(peer.got, "reconnect", reason="draining")
                assert await eventually(told)
            for peer in peers:
                closed = functools.partial(getattr, peer.client.ws, "closed")
                assert await eventually(closed, DRAIN_DEADLINE_S + 20)
                # 1012 at the deadline (1001 if the server's shutdown closes it first)
                assert peer.client.ws.close_code in (1012, 1001), peer.client.ws.close_code
                await peer.close()
            exit_code = await wait_exit(a, DRAIN_DEADLINE_S + EXIT_SLACK_S)
            exited_after = time.monotonic() - termed
            print(f"node a exited {exited_after:.1f} s after SIGTERM (code {exit_code})")
            assert exit_code == 0, node_logs(a)

            moved = []
            for user in (caller_user, astro_user):
                client = await connect(session, f"{b.url}/ws", user.token)
                await client.ok("join_consult", {"consultation_id": cid, "since": 0})
                moved.append(WsPeer(client, cid))
            peers[:] = moved
            await _in_media(peers)
            assert await redis.get(f"{redis_prefix}media:room:{cid}") == "b"
        finally:
            for peer in peers:
                await peer.close()
            await redis.aclose()


async def _in_media(peers: list[WsPeer]) -> None:
    """Each peer publishes and, within the deadline, receives the other's audio and video."""
    for peer in peers:
        peer.publish()
        await peer.connect()
    counts = lambda: [{k: len(v) for k, v in p.received.items()} for p in peers]  # noqa: E731
    assert await eventually(
        lambda: all(len(p.received[k]) >= 5 for p in peers for k in ("audio", "video"))
    ), counts()


async def _place(placement: RedisPlacement, prefix: str, room: str) -> str | None:
    """Where placement puts a new room that node a asks for (the claim key of
    signalling.media_routing.RedisMediaRoomRouter)."""
    return await placement.place(f"{prefix}media:room:{room}", 10_000, "a")
