"""The sliding-window limiter: the same contract in memory and in Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.conftest import reachable_redis


class FakeTime:
    def __init__(self) -> None:
        self.value = 1_700_000_000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, clock: FakeTime) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(now=clock)
        return
    url = await reachable_redis()
    prefix = f"kntest:{uuid.uuid4().hex[:12]}:"
    redis_limiter = RedisRateLimiter(aioredis.from_url(url), prefix, now=clock)
    try:
        yield redis_limiter
    finally:
        client = aioredis.from_url(url)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await redis_limiter.close()


async def test_allows_up_to_limit_then_refuses_with_retry_after(
    limiter: RateLimiter, clock: FakeTime
) -> None:
    decisions = []
    for _ in range(3):
        decisions.append(await limiter.hit("k", 3, 60))
        clock.value += 10
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await limiter.hit("k", 3, 60)
    assert not refused.allowed
    # The first hit (t=0) leaves the window at t=60; now is t=30.
    assert refused.retry_after_s == 30
    clock.value += 29
    assert not (await limiter.hit("k", 3, 60)).allowed
    clock.value += 1.5
    assert (await limiter.hit("k", 3, 60)).allowed


async def test_refused_attempts_do_not_extend_the_lockout(
    limiter: RateLimiter, clock: FakeTime
) -> None:
    assert (await limiter.hit("k", 1, 10)).allowed
    for _ in range(5):
        clock.value += 1
        assert not (await limiter.hit("k", 1, 10)).allowed
    clock.value += 5.5
    assert (await limiter.hit("k", 1, 10)).allowed


async def test_peek_records_nothing_and_reset_forgets(
    limiter: RateLimiter, clock: FakeTime
) -> None:
    for _ in range(5):
        assert (await limiter.peek("k", 2, 60)).allowed
    await limiter.hit("k", 2, 60)
    await limiter.hit("k", 2, 60)
    assert not (await limiter.peek("k", 2, 60)).allowed
    await limiter.reset("k")
    assert (await limiter.peek("k", 2, 60)).allowed


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert (await limiter.hit("a", 1, 60)).allowed
    assert not (await limiter.hit("a", 1, 60)).allowed
    assert (await limiter.hit("b", 1, 60)).allowed


async def test_memory_limiter_forgets_idle_keys(clock: FakeTime) -> None:
    limiter = MemoryRateLimiter(now=clock)
    for n in range(MemoryRateLimiter.SWEEP_EVERY - 1):
        await limiter.hit(f"ip-{n}", 5, 10)
    assert len(limiter) == MemoryRateLimiter.SWEEP_EVERY - 1
    clock.value += 11
    await limiter.hit("fresh", 5, 10)
    assert len(limiter) == 1
