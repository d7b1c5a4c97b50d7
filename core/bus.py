"""The event bus: ``publish(topic, event)`` / ``subscribe(topic)``.

In-process (:class:`LocalBus`) on one node; Redis pub/sub (:class:`RedisBus`) across nodes. The
choice is made once, in the composition root. Events are JSON-serialisable dicts. Delivery is
at-most-once, as in Redis pub/sub: anything a client must not lose is persisted before it is
published, so a subscriber that missed an event recovers from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from core.tasks import stop_if_cancelled

log = structlog.get_logger(__name__)

Event = dict[str, Any]
SUBSCRIBER_QUEUE_LIMIT = 10_000
"""Events buffered per local subscriber before the oldest is dropped (a stuck consumer must not
grow memory without bound)."""
RECONNECT_BACKOFF_MIN_S = 0.05
RECONNECT_BACKOFF_MAX_S = 2.0


class EventBus(Protocol):
    async def publish(self, topic: str, event: Mapping[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]: ...

    async def close(self) -> None: ...


class _Subscription:
    """The events of one subscription. Unlike an async generator, a read that is cancelled
    (``asyncio.wait_for(anext(events), t)`` timing out) leaves the iterator usable."""

    __slots__ = ("_queue",)

    def __init__(self, queue: asyncio.Queue[Event]) -> None:
        self._queue = queue

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()


def _dump(event: Mapping[str, Any]) -> bytes:
    """An event as JSON; values JSON has no type for (UUID, datetime, Decimal) become strings."""
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


def _offer(queue: asyncio.Queue[Event], event: Event, topic: str) -> None:
    if queue.full():
        queue.get_nowait()
        log.warning("bus_event_dropped", topic=topic, reason="subscriber_queue_full")
    queue.put_nowait(event)


class LocalBus:
    """Fan-out inside one process."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}

    async def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        # Round-trip through JSON so local and Redis delivery hand subscribers the same values.
        payload: Event = orjson.loads(_dump(event))
        for queue in self._subscribers.get(topic, ()):
            _offer(queue, payload, topic)

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT)
        self._subscribers.setdefault(topic, set()).add(queue)
        try:
            yield _Subscription(queue)
        finally:
            subscribers = self._subscribers[topic]
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[topic]

    async def close(self) -> None:
        self._subscribers.clear()


class RedisBus:
    """Fan-out across nodes through Redis pub/sub; channels are ``prefix + topic``."""

    def __init__(self, redis: aioredis.Redis, prefix: str, *, owns_client: bool = True) -> None:
        self._redis = redis
        self._prefix = prefix
        self._owns_client = owns_client
        """False when the process's one shared client is given: its owner closes it."""

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisBus:
        return cls(aioredis.from_url(url, decode_responses=True), prefix)

    async def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        await self._redis.publish(self._prefix + topic, _dump(event))

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._prefix + topic)
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_LIMIT)

        async def pump() -> None:
            backoff = RECONNECT_BACKOFF_MIN_S
            while True:
                try:
                    async for message in pubsub.listen():
                        backoff = RECONNECT_BACKOFF_MIN_S
                        if message.get("type") == "message":
                            _offer(queue, orjson.loads(message["data"]), topic)
                except (RedisError, OSError) as exc:
                    stop_if_cancelled()  # a cancelled read may come back as a Redis error
                    # redis-py reconnects on the next read and re-subscribes in on_connect; what
                    # was published meanwhile is lost (pub/sub is at-most-once, see above).
                    # RedisError, not only its ConnectionError: a reconnect on a busy machine can
                    # fail with redis' TimeoutError (5 s socket timeouts since redis-py 8), which
                    # would otherwise end this task and leave the node deaf to the bus for good.
                    log.warning("bus_subscription_lost", topic=topic, error=str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_S)

        pump_task = asyncio.create_task(pump(), name=f"redis-bus:{topic}")
        try:
            yield _Subscription(queue)
        finally:
            pump_task.cancel()
            await asyncio.gather(pump_task, return_exceptions=True)
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()


Handler = Callable[[Event], Awaitable[None]]


async def start_subscriber(
    bus: EventBus, topic: str, handle: Handler, *, name: str, failed_event: str
) -> asyncio.Task[None]:
    """A task handing every event of ``topic`` to ``handle`` (a failure is logged as
    ``failed_event`` and the next event handled), returned once the subscription is live, so
    nothing published afterwards is missed; raises why subscribing failed."""
    ready = asyncio.Event()

    async def listen() -> None:
        async with bus.subscribe(topic) as events:
            ready.set()
            async for event in events:
                try:
                    await handle(event)
                except Exception:
                    log.exception(failed_event, kind=event.get("event", event.get("k")))

    task = asyncio.create_task(listen(), name=name)
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    return task
