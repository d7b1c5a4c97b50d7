"""Sliding-window rate limits: in-process (one node) or in Redis (shared by every node).

The choice is made once, in the composition root (``REDIS_URL`` set → :class:`RedisRateLimiter`).
A key's window holds the instants of the attempts it allowed; an attempt is allowed while fewer
than ``limit`` of them fall within the last ``window_s`` seconds. A refused attempt is not
recorded, so a client that waits ``retry_after_s`` (RFC 9110 §10.2.3 ``Retry-After``) is allowed.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

Now = Callable[[], float]
"""Seconds since the epoch (or any monotonic origin shared by the limiter's callers)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    """Whether this attempt may proceed."""
    retry_after_s: int
    """Whole seconds until an attempt would be allowed again (0 when allowed)."""
    remaining: int
    """Attempts left in the current window after this one."""


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        """Record one attempt under ``key`` if allowed, and say whether it was."""
        ...

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        """Whether an attempt would be allowed now, recording nothing."""
        ...

    async def reset(self, key: str) -> None:
        """Forget every attempt under ``key`` (e.g. after a successful login)."""
        ...

    async def close(self) -> None: ...


def _retry_after(oldest: float, window_s: int, now: float) -> int:
    return max(1, math.ceil(oldest + window_s - now))


class MemoryRateLimiter:
    """Attempts kept in this process; right for one node (no ``REDIS_URL``)."""

    SWEEP_EVERY = 1024
    """Hits between sweeps that drop keys whose windows are empty (bounds memory)."""

    def __init__(self, now: Now = time.monotonic) -> None:
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self._windows: dict[str, int] = {}
        self._since_sweep = 0

    def _window(self, key: str, window_s: int, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        return hits

    def _decide(self, hits: deque[float], limit: int, window_s: int, now: float) -> Decision:
        if len(hits) >= limit:
            return Decision(False, _retry_after(hits[-limit], window_s, now), 0)
        return Decision(True, 0, limit - len(hits) - 1)

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = self._now()
        self._sweep(now)
        hits = self._window(key, window_s, now)
        decision = self._decide(hits, limit, window_s, now)
        if decision.allowed:
            self._hits[key] = hits
            self._windows[key] = window_s
            hits.append(now)
        return decision

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        now = self._now()
        return self._decide(self._window(key, window_s, now), limit, window_s, now)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)
        self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._since_sweep += 1
        if self._since_sweep < self.SWEEP_EVERY:
            return
        self._since_sweep = 0
        for key in [
            k
            for k, hits in self._hits.items()
            if not hits or hits[-1] <= now - self._windows.get(k, 0)
        ]:
            del self._hits[key]
            self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._hits)

    async def close(self) -> None:
        self._hits.clear()
        self._windows.clear()


# KEYS[1] sorted set of attempt instants (ms); ARGV: now_ms, window_ms, limit, member, record.
# Returns {allowed, retry_after_ms, remaining}. Atomic on the Redis server, so every node shares
# one window per key.
_SLIDING_WINDOW = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  local edge = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return {0, tonumber(edge[2]) + window - now, 0}
end
if ARGV[5] == '1' then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  count = count + 1
  return {1, 0, limit - count}
end
return {1, 0, limit - count - 1}
"""


class RedisRateLimiter:
    """Attempts kept in Redis sorted sets ``prefix + key``, one Lua script per decision."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, now: Now = time.time, *, owns_client: bool = True
    ) -> None:
        self._redis = redis
        self._owns_client = owns_client
        """False when the process's one shared client is given: its owner closes it."""
        self._prefix = prefix
        self._now = now
        self._script = redis.register_script(_SLIDING_WINDOW)

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisRateLimiter:
        return cls(aioredis.from_url(url), prefix)

    async def _run(self, key: str, limit: int, window_s: int, record: bool) -> Decision:
        now_ms = int(self._now() * 1000)
        member = f"{now_ms}:{secrets.token_hex(4)}"
        allowed, retry_ms, remaining = await self._script(
            keys=[self._prefix + key],
            args=[now_ms, window_s * 1000, limit, member, "1" if record else "0"],
        )
        retry_after = 0 if allowed else max(1, math.ceil(int(retry_ms) / 1000))
        return Decision(bool(allowed), retry_after, int(remaining))

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        return await self._run(key, limit, window_s, record=True)

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        return await self._run(key, limit, window_s, record=False)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
