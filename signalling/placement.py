"""Room placement by load, and draining, across nodes sharing Redis (LiveKit's node selector).

Every node publishes its load (:class:`NodeLoad`: rooms and participants its SFU hosts, the
bitrate it forwards, its process CPU, whether it drains) into one Redis hash
``<prefix>nodes:load`` each presence heartbeat, and the rooms it hosts into a sorted set
``<prefix>nodes:rooms:<node>`` (score: when last seen). A room nobody hosts yet goes to the
least-loaded live node that is not draining: one Lua script picks the node with the fewest rooms
in its set (on a tie the node asking, which saves a bus hop, then the lowest CPU, then the
smallest id), claims the room for it and adds the room to that node's set at once, so rooms
placed between two heartbeats, or still on their way to the node, count too. An operator
drains a node by setting ``<prefix>nodes:drain:<node>`` (``kundlinow node drain``); the script
skips such nodes at once, and the node itself notices the key at its next heartbeat.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node's load as published with its heartbeat."""

    rooms: int = 0
    participants: int = 0
    bitrate_bps: int = 0
    """Media the SFU forwards: the bitrate of every track it sends to a subscriber."""
    cpu: float = 0.0
    """Share of one core this process used since the previous sample (0.0-1.0 per core)."""
    draining: bool = False
    at: float = 0.0
    """Wall-clock time of the sample, milliseconds since the epoch (staleness check)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> NodeLoad:
        data = json.loads(raw)
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# KEYS[1] room claim, KEYS[2] load hash; ARGV[1] now ms, ARGV[2] staleness ms, ARGV[3] claim
# TTL ms, ARGV[4] drain key prefix, ARGV[5] liveness key prefix, ARGV[6] the asking node,
# ARGV[7] rooms key prefix, ARGV[8] the room. Per-node keys are built here (one Redis, not a
# cluster). Order: fewest rooms, then the asking node (no bus hop), then the lowest CPU, then
# the smallest id.
_PLACE = """
local owner = redis.call('get', KEYS[1])
if owner then return owner end
local now, stale, me = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[6]
local function better(node, rooms, cpu, best, best_rooms, best_cpu)
  if best == nil then return true end
  if rooms ~= best_rooms then return rooms < best_rooms end
  if node == me or best == me then return node == me end
  if cpu ~= best_cpu then return cpu < best_cpu end
  return node < best
end
local best, best_rooms, best_cpu
local all = redis.call('hgetall', KEYS[2])
for i = 1, #all, 2 do
  local node, load = all[i], cjson.decode(all[i + 1])
  if now - load.at <= stale and not load.draining
     and redis.call('exists', ARGV[4] .. node) == 0
     and redis.call('exists', ARGV[5] .. node) == 1 then
    local rooms = redis.call('zcard', ARGV[7] .. node)
    if better(node, rooms, load.cpu, best, best_rooms, best_cpu) then
      best, best_rooms, best_cpu = node, rooms, load.cpu
    end
  end
end
if best == nil then return false end
redis.call('set', KEYS[1], best, 'PX', ARGV[3])
redis.call('zadd', ARGV[7] .. best, now, ARGV[8])
return best
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def now_ms() -> float:
    return time.time() * 1000


class RedisPlacement:
    """Node loads, drain requests and the placement script, under one key prefix."""

    def __init__(
        self, redis: Any, prefix: str, *, alive_prefix: str, stale_s: float = 10.0
    ) -> None:
        self._redis = redis
        self._alive_prefix = alive_prefix
        """``+ node id``: the presence liveness key (``RedisPresenceStore.node_key_prefix``)."""
        self.load_key = f"{prefix}nodes:load"
        self.drain_prefix = f"{prefix}nodes:drain:"
        self.rooms_prefix = f"{prefix}nodes:rooms:"
        self._stale_ms = int(stale_s * 1000)

    async def publish(self, node: str, load: NodeLoad) -> None:
        await self._redis.hset(self.load_key, node, load.to_json())

    async def withdraw(self, node: str) -> None:
        """A node that stops takes no more rooms (its entry, rooms and drain request go)."""
        await self._redis.hdel(self.load_key, node)
        await self._redis.delete(self.drain_prefix + node, self.rooms_prefix + node)

    async def hosting(self, node: str, rooms: list[str]) -> None:
        """Heartbeat: ``node`` hosts ``rooms``. A room placed on it that it never joined within
        the staleness window (the joining request was lost) stops counting."""
        now = now_ms()
        key = self.rooms_prefix + node
        pipe = self._redis.pipeline(transaction=False)
        if rooms:
            pipe.zadd(key, dict.fromkeys(rooms, now))
        pipe.zremrangebyscore(key, "-inf", now - self._stale_ms)
        await pipe.execute()

    async def released(self, node: str, room: str) -> None:
        await self._redis.zrem(self.rooms_prefix + node, room)

    async def loads(self) -> dict[str, NodeLoad]:
        """Every node that published within the staleness window."""
        raw = await self._redis.hgetall(self.load_key)
        loads = {_text(n): NodeLoad.from_json(v) for n, v in raw.items()}
        cutoff = now_ms() - self._stale_ms
        return {n: load for n, load in sorted(loads.items()) if load.at >= cutoff}

    async def place(self, claim_key: str, ttl_ms: int, asking: str) -> str | None:
        """The room's host: its current claim, else the least-loaded live node that is not
        draining (on a tie ``asking``), now claimed for it; ``None`` when no node takes rooms."""
        room = claim_key.rsplit(":", 1)[-1]
        chosen = await self._redis.eval(
            _PLACE, 2, claim_key, self.load_key, now_ms(), self._stale_ms, ttl_ms,
            self.drain_prefix, self._alive_prefix, asking, self.rooms_prefix, room,
        )
        return None if chosen is None else _text(chosen)

    async def request_drain(self, node: str) -> None:
        await self._redis.set(self.drain_prefix + node, "1")

    async def drain_requested(self, node: str) -> bool:
        return bool(await self._redis.exists(self.drain_prefix + node))


class CpuMeter:
    """This process's CPU use between two calls (user + system time over wall time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = (clock(), _cpu_seconds())

    def sample(self) -> float:
        wall, cpu = self._clock(), _cpu_seconds()
        last_wall, last_cpu = self._last
        self._last = (wall, cpu)
        return round((cpu - last_cpu) / (wall - last_wall), 3) if wall > last_wall else 0.0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def media_load(stats_by_room: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """(rooms, participants, forwarded bitrate) from ``MediaEngine.stats`` of each room."""
    participants = 0
    bitrate = 0
    for stats in stats_by_room.values():
        participants += len(stats)
        for participant in stats.values():
            for track in participant.get("subscribed", ()):
                bitrate += int(track.get("bitrate_bps", 0))
    return len(stats_by_room), participants, bitrate
