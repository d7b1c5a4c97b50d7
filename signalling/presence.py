"""Presence: who is connected (on any node, any device), who set themself away, who is busy.

Counts are kept per key (``user:<id>`` for a user's sockets, ``room:<consultation>:<id>`` for a
party joined to a consultation) and per node. :class:`MemoryPresenceStore` serves one node.
:class:`RedisPresenceStore` keeps one hash per key (field = node id, value = that node's count);
each node owns only its own fields and renews a liveness key ``node:<id>`` (TTL) every few
seconds, re-asserting its counts. Readers ignore fields of nodes whose liveness key expired, so a
node killed with SIGKILL stops counting within the TTL, and its users show offline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol
from uuid import UUID

import asyncpg
import structlog
from redis.asyncio import Redis

from core.presence import PresenceStatus
from core.tasks import every

log = structlog.get_logger(__name__)

ONLINE = "online"
BUSY = "busy"
OFFLINE = "offline"
AWAY = "away"
Status = Literal["online", "busy", "away", "offline"]


def user_key(user_id: UUID) -> str:
    return f"user:{user_id}"


def room_key(room: UUID, user_id: UUID) -> str:
    return f"room:{room}:{user_id}"


class PresenceStore(Protocol):
    async def add(self, key: str) -> None:
        """This node holds one more socket under ``key``."""

    async def remove(self, key: str) -> None:
        """This node holds one socket less under ``key``."""

    async def try_add(self, key: str, cap: int) -> bool:
        """Like :meth:`add` unless ``cap`` sockets are already held under ``key`` on all live
        nodes: check and add are one atomic step, so concurrent handshakes cannot overshoot."""

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """Sockets under each key on all live nodes."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MemoryPresenceStore:
    """Single node: plain counters."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    async def add(self, key: str) -> None:
        self._counts[key] += 1

    async def try_add(self, key: str, cap: int) -> bool:
        if self._counts.get(key, 0) >= cap:
            return False
        self._counts[key] += 1  # no await between the check and the add: atomic on one loop
        return True

    async def remove(self, key: str) -> None:
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]

    async def counts(self, keys: Sequence[str]) -> list[int]:
        return [self._counts.get(k, 0) for k in keys]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


# KEYS[1] the count hash; ARGV: this node's id, the liveness-key prefix, the cap. Counts only
# fields of live nodes (as :meth:`RedisPresenceStore.counts` does) and adds under the cap in the
# same script, which Redis runs atomically. (The liveness keys are not in KEYS: fine on one Redis
# or a replicated one, not on Redis Cluster, which this deployment does not use.)
_TRY_ADD = """
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
    if redis.call('EXISTS', ARGV[2] .. fields[i]) == 1 then
        total = total + tonumber(fields[i + 1])
    end
end
if total >= tonumber(ARGV[3]) then
    return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
"""
# Decrement this node's field, dropping it at zero (increments are HINCRBY too, so a concurrent
# add on this node is never overwritten by a stale absolute value).
_REMOVE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
end
"""


class RedisPresenceStore:
    """Many nodes: per-node counts in Redis hashes, liveness by heartbeat with TTL."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        node_id: str,
        *,
        node_ttl_s: float = 10.0,
        heartbeat_s: float = 3.0,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}presence:"
        self._node_id = node_id
        self._ttl_ms = int(node_ttl_s * 1000)
        self._heartbeat_s = heartbeat_s
        self._local: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._try_add = redis.register_script(_TRY_ADD)
        self._remove = redis.register_script(_REMOVE)

    @property
    def node_key_prefix(self) -> str:
        """``+ node id`` is a node's liveness key: the one place its format is written
        (``signalling.media_routing.RedisMediaRoomRouter`` reads liveness through it)."""
        return f"{self._prefix}node:"

    def _node_key(self, node: str) -> str:
        return self.node_key_prefix + node

    async def start(self) -> None:
        await self._redis.set(self._node_key(self._node_id), "1", px=self._ttl_ms)
        self._task = asyncio.create_task(
            every(self._heartbeat_s, self._beat, failed_event="presence_heartbeat_failed"),
            name="presence-heartbeat",
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # A clean shutdown withdraws this node at once instead of waiting for the TTL.
        with contextlib.suppress(Exception):
            pipe = self._redis.pipeline(transaction=False)
            for key in self._local:
                pipe.hdel(self._prefix + key, self._node_id)
            pipe.delete(self._node_key(self._node_id))
            await pipe.execute()
        self._local.clear()

    async def _beat(self) -> None:
        """Renew this node's liveness key and re-assert its counts."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._node_key(self._node_id), "1", px=self._ttl_ms)
        # Put back fields a reader forgot while this node looked dead (a long pause); live
        # fields are only ever changed by increments, never overwritten.
        for key, count in self._local.items():
            pipe.hsetnx(self._prefix + key, self._node_id, count)
        await pipe.execute()

    async def add(self, key: str) -> None:
        self._local[key] += 1
        await self._redis.hincrby(self._prefix + key, self._node_id, 1)

    async def try_add(self, key: str, cap: int) -> bool:
        added = await self._try_add(
            keys=[self._prefix + key], args=[self._node_id, self._node_key(""), cap]
        )
        if added:
            self._local[key] += 1
        return bool(added)

    async def remove(self, key: str) -> None:
        self._local[key] -= 1
        if self._local[key] <= 0:
            del self._local[key]
        await self._remove(keys=[self._prefix + key], args=[self._node_id])

    async def counts(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._prefix + key)
        raw_tables: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        tables = [{_text(n): int(v) for n, v in t.items()} for t in raw_tables]
        nodes = sorted({n for table in tables for n in table})
        alive: dict[str, bool] = {}
        if nodes:
            flags = await self._redis.mget([self._node_key(n) for n in nodes])
            alive = {n: f is not None for n, f in zip(nodes, flags, strict=True)}
        dead = [n for n, ok in alive.items() if not ok]
        if dead:
            # Forget a dead node's counts (it can no longer do so itself).
            pipe = self._redis.pipeline(transaction=False)
            for key, table in zip(keys, tables, strict=True):
                stale = [n for n in table if n in dead]
                if stale:
                    pipe.hdel(self._prefix + key, *stale)
            await pipe.execute()
        return [
            sum(v for n, v in table.items() if alive.get(n, False)) for table in tables
        ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_STATUS_SQL = """
    SELECT u.id,
           COALESCE(p.away, false) AS away,
           EXISTS (SELECT 1 FROM consultations c
                   WHERE c.consultant_id = u.id AND c.state = 'active') AS busy
    FROM unnest($1::uuid[]) AS u(id)
    LEFT JOIN consultant_profiles p ON p.user_id = u.id
"""
_AWAY_SQL = """
    SELECT u.id, COALESCE(p.away, false) AS away, false AS busy
    FROM unnest($1::uuid[]) AS u(id)
    LEFT JOIN consultant_profiles p ON p.user_id = u.id
"""


# Whose presence a viewer may see: astrologers' is public (they sell their availability); a
# caller's only their own, an admin, or the other party of their requested or live consultation.
_VISIBLE_SQL = """
    SELECT u.id
    FROM unnest($1::uuid[]) AS u(id)
    JOIN users x ON x.id = u.id
    WHERE x.role = 'consultant' OR $3 = 'admin' OR u.id = $2
       OR EXISTS (SELECT 1 FROM consultations c
                  WHERE c.state IN ('requested', 'active')
                    AND ((c.caller_id = u.id AND c.consultant_id = $2)
                         OR (c.consultant_id = u.id AND c.caller_id = $2)))
"""


class PresenceService:
    """Astrologer status for listings: ``online``, ``busy``, ``away`` or ``offline``.

    Offline when no socket of theirs is open on any node; otherwise ``busy`` while one of their
    consultations is active, ``away`` when they said so (``consultant_profiles.away``, durable),
    else ``online``. The busy/away facts come from PostgreSQL in one query per call.
    """

    def __init__(self, store: PresenceStore, pool: asyncpg.Pool) -> None:
        self._store = store
        self._pool = pool

    async def statuses(self, consultant_ids: Iterable[UUID]) -> dict[UUID, Status]:
        """``online``, ``busy``, ``away`` or ``offline`` for each id."""
        ids = list(dict.fromkeys(consultant_ids))
        if not ids:
            return {}
        counts = await self._store.counts([user_key(u) for u in ids])
        connected = [u for u, n in zip(ids, counts, strict=True) if n > 0]
        busy: set[UUID] = set()
        away: set[UUID] = set()
        if connected:
            try:
                rows = await self._pool.fetch(_STATUS_SQL, connected)
            except asyncpg.UndefinedTableError:
                # Billing's consultations table is not there (yet): nobody is busy.
                rows = await self._pool.fetch(_AWAY_SQL, connected)
            busy = {r["id"] for r in rows if r["busy"]}
            away = {r["id"] for r in rows if r["away"]}
        result: dict[UUID, Status] = {}
        for user_id, count in zip(ids, counts, strict=True):
            if count <= 0:
                result[user_id] = "offline"
            elif user_id in busy:
                result[user_id] = "busy"
            elif user_id in away:
                result[user_id] = "away"
            else:
                result[user_id] = "online"
        return result

    async def get_many(self, ids: Iterable[UUID]) -> Mapping[UUID, PresenceStatus]:
        """``core.presence.PresenceLookup`` for ``GET /consultants``: ``online``, ``busy``
        or ``offline`` from the live sockets on all nodes (the listing applies the away flag)."""
        found = await self.statuses(ids)
        return {u: ("online" if s == "away" else s) for u, s in found.items()}

    async def visible_to(
        self, viewer_id: UUID, viewer_role: str, ids: Iterable[UUID]
    ) -> list[UUID]:
        """Those of ``ids`` whose presence the viewer may watch (in the order given)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self._pool.fetch(_VISIBLE_SQL, wanted, viewer_id, viewer_role)
        allowed = {r["id"] for r in rows}
        return [u for u in wanted if u in allowed]

    async def get(self, consultant_id: UUID) -> Status:
        return (await self.statuses([consultant_id]))[consultant_id]

    async def set_away(self, consultant_id: UUID, away: bool) -> bool:
        """Mark an astrologer away (or back); False when they have no profile."""
        result = await self._pool.execute(
            "UPDATE consultant_profiles SET away = $2, updated_at = now() WHERE user_id = $1",
            consultant_id, away,
        )
        return result != "UPDATE 0"
