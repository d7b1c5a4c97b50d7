"""Builds the hub from settings and the shared resources (called by ``kundlinow.app``)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from api.auth import decode_token
from kundlinow import audit as audit_log
from kundlinow.bus import EventBus
from kundlinow.config import Settings
from kundlinow.db import Database
from signalling.chat import ChatStore
from signalling.hub import Hub, Identity
from signalling.media_routing import (
    LocalMediaRoomRouter,
    MediaEngineLike,
    MediaRoomRouter,
    RedisMediaRoomRouter,
    RoutedMedia,
)
from signalling.ports import Consultations
from signalling.presence import (
    MemoryPresenceStore,
    PresenceService,
    PresenceStore,
    RedisPresenceStore,
)
from signalling.waitlist import Waitlist
from turn.ice import build_ice_servers


def _ice_servers(settings: Settings, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The ICE server list of GET /turn/credentials, for the ``join_consult`` ack."""
    return [dict(server) for server in build_ice_servers(settings.turn, str(user_id))]


@asynccontextmanager
async def open_hub(
    settings: Settings,
    database: Database,
    bus: EventBus,
    consultations: Consultations,
    *,
    media: MediaEngineLike | None = None,
    node_id: str | None = None,
) -> AsyncIterator[Hub]:
    """A started hub; presence in Redis when ``REDIS_URL`` is set, in memory otherwise.

    ``media`` (the node's SFU engine) is wrapped in :class:`RoutedMedia`: with Redis, each
    room's media is hosted by the one node that claimed it; alone, always by this node.
    """
    node = node_id or uuid.uuid4().hex[:12]
    cfg = settings.signalling
    redis: Any = None
    store: PresenceStore
    if settings.redis_url:
        redis = aioredis.from_url(settings.redis_url)
        store = RedisPresenceStore(
            redis, settings.redis_prefix, node,
            node_ttl_s=cfg.presence_node_ttl_s, heartbeat_s=cfg.presence_heartbeat_s,
        )
    else:
        store = MemoryPresenceStore()

    def authenticate(token: str) -> Identity:
        claims = decode_token(settings, token)
        return Identity(claims.user_id, claims.role)

    routed: RoutedMedia | None = None
    if media is not None:
        router: MediaRoomRouter
        if redis is not None:
            router = RedisMediaRoomRouter(
                redis, settings.redis_prefix, node,
                node_key_prefix=f"{settings.redis_prefix}presence:node:",
                ttl_s=cfg.presence_node_ttl_s, refresh_s=cfg.presence_heartbeat_s,
            )
        else:
            router = LocalMediaRoomRouter(node)
        routed = RoutedMedia(media, router, bus)

    chat = await ChatStore.open(database.pool, database.dsn, writers=cfg.chat_writers)
    hub = Hub(
        cfg,
        bus=bus,
        store=store,
        presence=PresenceService(store, database.pool),
        chat=chat,
        waitlist=Waitlist(database.pool, cfg.waitlist_offer_s),
        consultations=consultations,
        authenticate=authenticate,
        media=routed,
        node_id=node,
        ice_servers=functools.partial(_ice_servers, settings),
        multi_node=settings.redis_url is not None,
        audit=functools.partial(audit_log.record, database.pool),
    )
    if routed is not None:
        routed.bind(hub.send_signal)
    try:
        await hub.start()
        if routed is not None:
            await routed.start()
        yield hub
    finally:
        if routed is not None:
            await routed.close()
        await hub.close()
        await chat.close()
        if redis is not None:
            await redis.aclose()
