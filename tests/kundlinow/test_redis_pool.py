"""The process's one Redis client under a burst of more commands than it has connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from api.keys import REDIS
from kundlinow.app import REDIS_POOL_SIZE
from tests.conftest import AppFactory


async def test_a_burst_beyond_the_pool_waits_instead_of_failing(
    make_app: AppFactory, redis_url: str, redis_prefix: str,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> None:
    """Twice as many concurrent commands as connections: each waits for a free connection and
    all succeed (the default pool raised ``Too many connections`` past its size, which failed
    presence heartbeats of busy nodes)."""
    client = await aiohttp_client(make_app(redis_url=redis_url, redis_prefix=redis_prefix))
    redis = client.app[REDIS]
    # All sent before any reply is read: each holds a connection until its reply arrives.
    burst = [redis.ping() for _ in range(2 * REDIS_POOL_SIZE)]
    results = await asyncio.gather(*burst, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], [(type(f).__mro__, str(f)) for f in failures[:3]]
    assert results == [True] * len(burst)
