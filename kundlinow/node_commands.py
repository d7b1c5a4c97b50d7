"""``kundlinow node list|drain`` (registered in kundlinow.cli): the nodes' published load, and
draining one (see :mod:`signalling.drain`). Both need ``REDIS_URL``: that is where nodes meet.

``node drain`` defaults to ``NODE_ID``, so a Kubernetes ``preStop`` hook (``kundlinow node drain
--wait`` in the pod, whose NODE_ID is the pod's name) drains its own server; ``--wait`` returns
once the node hosts no room (or has gone), or after DRAIN_DEADLINE plus a margin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

import redis.asyncio as aioredis

from kundlinow.config import Settings
from signalling.placement import RedisPlacement
from signalling.presence import RedisPresenceStore

WAIT_MARGIN_S = 15.0
"""Beyond the drain deadline, time for the node to evict its rooms and publish it."""


@asynccontextmanager
async def _placement(settings: Settings) -> AsyncIterator[RedisPlacement]:
    assert settings.redis_url is not None
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        # The presence store owns the liveness key format; this one never starts.
        alive = RedisPresenceStore(client, settings.redis_prefix, "cli").node_key_prefix
        yield RedisPlacement(
            client, settings.redis_prefix, alive_prefix=alive,
            stale_s=settings.signalling.presence_node_ttl_s,
        )
    finally:
        await client.aclose()


def _needs_redis(settings: Settings) -> bool:
    if settings.redis_url:
        return True
    print("kundlinow node: REDIS_URL is not set (one node, nothing to place or drain)",
          file=sys.stderr)
    return False


def _list(settings: Settings, args: argparse.Namespace) -> int:
    if not _needs_redis(settings):
        return 2

    async def run() -> None:
        async with _placement(settings) as placement:
            for node, load in (await placement.loads()).items():
                print(json.dumps({"node": node, **asdict(load)}, sort_keys=True), flush=True)

    asyncio.run(run())
    return 0


async def drain_node(placement: RedisPlacement, node: str, *, wait_s: float | None,
                     poll_s: float = 0.5) -> bool:
    """Ask ``node`` to drain; with ``wait_s``, wait until it hosts no room or is gone.
    Returns whether it is drained (always ``True`` without waiting)."""
    await placement.request_drain(node)
    if wait_s is None:
        return True
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        load = (await placement.loads()).get(node)
        if load is None or (load.draining and load.rooms == 0):
            return True
        await asyncio.sleep(poll_s)
    return False


def _drain(settings: Settings, args: argparse.Namespace) -> int:
    if not _needs_redis(settings):
        return 2
    node = args.node or settings.node_id
    if not node:
        print("kundlinow node drain: give --node or set NODE_ID", file=sys.stderr)
        return 2
    wait_s = settings.drain_deadline_s + WAIT_MARGIN_S if args.wait else None

    async def run() -> bool:
        async with _placement(settings) as placement:
            return await drain_node(placement, node, wait_s=wait_s)

    drained = asyncio.run(run())
    print(json.dumps({"node": node, "drained": drained, "waited": args.wait}), flush=True)
    return 0 if drained else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = commands.add_parser("node", help="the cluster's nodes: load and drain")
    sub = node.add_subparsers(dest="node_command", required=True)
    sub.add_parser("list", help="every live node's published load (JSON lines)").set_defaults(
        func=_list
    )
    drain = sub.add_parser("drain", help="take no new rooms; move sockets and rooms elsewhere")
    drain.add_argument("--node", default=None, help="node id (default: NODE_ID)")
    drain.add_argument("--wait", action="store_true",
                       help="return once the node hosts no room (up to DRAIN_DEADLINE + 15 s)")
    drain.set_defaults(func=_drain)
