"""The event bus delivers to every subscriber of a topic, locally and through Redis."""

from __future__ import annotations

import asyncio

import pytest

from kundlinow.bus import EventBus, LocalBus, RedisBus


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
