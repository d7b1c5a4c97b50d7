"""Presence counts in memory and in real Redis, including a node that dies."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from signalling.presence import MemoryPresenceStore, RedisPresenceStore, user_key
from tests.polling import eventually


async def test_memory_counts() -> None:
    store = MemoryPresenceStore()
    key = user_key(uuid.uuid4())
    await store.add(key)
    await store.add(key)
    await store.remove(key)
    assert await store.counts([key, "other"]) == [1, 0]
    await store.remove(key)
    assert await store.counts([key]) == [0]


async def test_redis_counts_across_nodes_and_dead_node(redis_url: str, redis_prefix: str) -> None:
    redis = aioredis.from_url(redis_url)
    a = RedisPresenceStore(redis, redis_prefix, "node-a", node_ttl_s=0.6, heartbeat_s=0.2)
    b = RedisPresenceStore(redis, redis_prefix, "node-b", node_ttl_s=0.6, heartbeat_s=0.2)
    await a.start()
    await b.start()
    key = user_key(uuid.uuid4())
    try:
        await a.add(key)
        await b.add(key)
        await b.add(key)
        assert await a.counts([key]) == [3]
        await b.remove(key)
        assert await b.counts([key]) == [2]
        # node b dies without cleaning up: stop its heartbeat, leave its counts in Redis
        assert b._task is not None
        b._task.cancel()

        async def forgotten() -> bool:  # once node b's liveness key lapses (node_ttl_s)
            return await a.counts([key]) == [1]

        assert await eventually(forgotten), await a.counts([key])
        await a.remove(key)
        assert await a.counts([key]) == [0]
        # node b's stale field was forgotten by a reader
        assert await redis.hgetall(f"{redis_prefix}presence:{key}") == {}
    finally:
        await a.close()
        b._task = None
        await b.close()
        keys = await redis.keys(f"{redis_prefix}*")
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_redis_clean_close_withdraws_at_once(redis_url: str, redis_prefix: str) -> None:
    redis = aioredis.from_url(redis_url)
    a = RedisPresenceStore(redis, redis_prefix, "node-a")
    b = RedisPresenceStore(redis, redis_prefix, "node-b")
    await a.start()
    await b.start()
    key = user_key(uuid.uuid4())
    try:
        await b.add(key)
        assert await a.counts([key]) == [1]
        await b.close()
        assert await a.counts([key]) == [0]
    finally:
        await a.close()
        await redis.aclose()


async def test_redis_try_add_is_atomic_across_nodes(redis_url: str, redis_prefix: str) -> None:
    redis = aioredis.from_url(redis_url)
    a = RedisPresenceStore(redis, redis_prefix, "node-a")
    b = RedisPresenceStore(redis, redis_prefix, "node-b")
    await a.start()
    await b.start()
    key = user_key(uuid.uuid4())
    try:
        added = await asyncio.gather(*(s.try_add(key, 5) for s in [a, b] * 15))
        assert sum(added) == 5
        assert await a.counts([key]) == [5]
        await (a if added[0] else b).remove(key)
        assert await b.try_add(key, 5)
        assert not await a.try_add(key, 5)
        assert await a.counts([key]) == [5]
    finally:
        await a.close()
        await b.close()
        await redis.aclose()


async def test_memory_try_add_stops_at_the_cap() -> None:
    store = MemoryPresenceStore()
    key = user_key(uuid.uuid4())
    assert [await store.try_add(key, 2) for _ in range(3)] == [True, True, False]
    assert await store.counts([key]) == [2]
