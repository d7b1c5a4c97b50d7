"""The event bus delivers to every subscriber of a topic, locally and through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import redis.asyncio as aioredis

from core.bus import EventBus, LocalBus, RedisBus


async def _exchange(publisher: EventBus, subscriber: EventBus) -> None:
    async with (
        subscriber.subscribe("consultations") as events,
        subscriber.subscribe("other") as other,
    ):
        await publisher.publish("consultations", {"event": "consult_state", "n": 1})
        await publisher.publish("consultations", {"event": "consult_state", "n": 2})
        received = [await asyncio.wait_for(anext(events), 2) for _ in range(2)]
        assert [e["n"] for e in received] == [1, 2]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(other), 0.2)


async def test_local_bus_fans_out_in_order() -> None:
    bus = LocalBus()
    await _exchange(bus, bus)
    await bus.close()


async def test_redis_bus_crosses_nodes(redis_url: str, redis_prefix: str) -> None:
    node_a = RedisBus.from_url(redis_url, redis_prefix)
    node_b = RedisBus.from_url(redis_url, redis_prefix)
    try:
        await _exchange(node_a, node_b)
    finally:
        await node_a.close()
        await node_b.close()


async def test_redis_subscription_survives_a_dropped_connection(
    redis_url: str, redis_prefix: str
) -> None:
    """Redis closes the subscriber's connection (restart, failover, idle timeout): the
    subscription comes back by itself and later events arrive."""
    name = f"kntest-bus-{uuid.uuid4().hex[:8]}"
    subscriber = RedisBus(
        aioredis.from_url(redis_url, decode_responses=True, client_name=name), redis_prefix
    )
    publisher = RedisBus.from_url(redis_url, redis_prefix)
    admin = aioredis.from_url(redis_url, decode_responses=True)
    try:
        async with subscriber.subscribe("consultations") as events:
            await publisher.publish("consultations", {"n": 0})
            assert (await asyncio.wait_for(anext(events), 2))["n"] == 0
            victims = [c["id"] for c in await admin.client_list() if c.get("name") == name]
            assert victims
            for client_id in victims:
                await admin.execute_command("CLIENT", "KILL", "ID", client_id)
            received: list[int] = []
            for n in range(1, 40):  # published until the subscription is back, 4 s at most
                await publisher.publish("consultations", {"n": n})
                with contextlib.suppress(TimeoutError):
                    received.append((await asyncio.wait_for(anext(events), 0.1))["n"])
                if len(received) >= 3:
                    break
            assert len(received) >= 3 and received == sorted(received)
    finally:
        await subscriber.close()
        await publisher.close()
        await admin.aclose()
