"""The composition root: ``create_app(settings)`` builds and wires every component.

Each resource opens and closes with the application through one ``cleanup_ctx`` generator.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from api.auth import decode_token
from api.dbretry import database_retry_middleware
from api.errors import Handler, error_middleware
from api.hygiene import input_hygiene_middleware
from api.keys import (
    BUS,
    CLOCK,
    CONSULTATIONS,
    DATABASE,
    HUB,
    MEDIA,
    MEDIA_STATS,
    METRICS,
    NODE,
    NODE_ID,
    PASSWORDS,
    PAYMENTS,
    PAYOUTS,
    PRESENCE,
    RATE_LIMITER,
    RECORDER,
    REDIS,
    SESSION_LOG,
    SETTINGS,
    TRACING,
    TURN_GRANTS,
    TURN_SETTINGS,
    USER_STATUS,
    WALLETS,
    WEBHOOK_METRICS,
)
from api.metrics import metrics_middleware
from api.passwords import Passwords
from api.revocation import UserStatusCache
from api.seed import disable_demo_accounts
from billing.consultations import ConsultationService
from billing.gateway import build_gateway
from billing.metrics import TickMetrics, WebhookMetrics
from billing.payments import PaymentService
from billing.payouts import PayoutService
from billing.ticker import Ticker
from billing.wallets import WalletReader
from core import audit as audit_log
from core.bus import EventBus, LocalBus, RedisBus
from core.clock import Clock, SystemClock
from core.db import Database
from core.forwarded import trusted_proxy_middleware
from core.gcpolicy import GcPauses, freeze_startup_heap
from core.metrics import EventLoopLag, HttpMetrics
from core.presence import NoPresence
from core.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from core.session_log import EventLog
from core.tracing import Tracing
from kundlinow.config import Settings
from kundlinow.database import open_database
from media.engine import MediaEngine
from media.metrics import MediaCollector
from recording.backends import open_store
from recording.catalog import Catalog
from recording.metrics import RecordingMetrics
from recording.recorder import Recorder, recover
from signalling.chat import ChatStore
from signalling.context import HubServices, Identity
from signalling.drain import NodeDrain, drain_on_sigterm
from signalling.hub import Hub
from signalling.media_routing import (
    LocalMediaRoomRouter,
    MediaRoomRouter,
    RedisMediaRoomRouter,
    RoutedMedia,
)
from signalling.metrics import ChatMetrics, HubCollector
from signalling.placement import RedisPlacement
from signalling.ports import BillingConsultations
from signalling.presence import (
    MemoryPresenceStore,
    PresenceService,
    PresenceStore,
    RedisPresenceStore,
    user_key,
)
from signalling.waitlist import Waitlist
from turn.grants import TurnGrants
from turn.ice import sfu_ice_servers_factory

log = structlog.get_logger(__name__)

ROUTE_MODULES: tuple[str, ...] = (
    "api.health",
    "api.openapi",
    "api.metrics",
    "api.accounts",
    "api.sessions",
    "api.consultants",
    "api.consultations",
    "api.ratings",
    "api.turn",
    "api.wallet",
    "api.webhooks",
    "api.payouts",
    "api.messages",
    "api.recordings",
    "api.admin_consultations",
    "api.history",
    "api.admin_users",
    "api.admin_console",
    "api.profile_photo",
    "api.security_headers",
    "api.client",
    "api.birth",
)
"""Modules exposing ``routes: web.RouteTableDef`` (or ``setup(app)``), added in this order.
Document every handler with :func:`api.openapi.operation` (a test checks)."""

REQUEST_ID_HEADER = "X-Request-Id"


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id for every log line of this request and write one access line."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")[:64] or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        # The path only, never the query string: it may carry a one-time token.
        log.info(
            "request_handled",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            remote=request.remote,
        )


CleanupContext = Callable[[web.Application], AsyncIterator[None]]


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    """First in, last out: every other resource's spans are exported before the flush."""
    tracing = app[TRACING]
    tracing.start()
    yield
    await asyncio.to_thread(tracing.close)


def _database_ctx(settings: Settings) -> CleanupContext:
    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_database(settings) as database:
            app[DATABASE] = database
            app[USER_STATUS] = UserStatusCache(database.pool)
            if settings.is_production:
                disabled = await disable_demo_accounts(database)
                if disabled:  # their passwords are public (README, api/seed.py)
                    log.warning("demo_accounts_disabled", emails=disabled)
            yield

    return database_ctx


REDIS_POOL_SIZE = 100
"""Connections of the process's Redis client (each bus subscription holds one for good)."""
REDIS_POOL_WAIT_S = 10.0
"""How long a command waits for a free connection before it fails."""


def _redis_ctx(settings: Settings) -> CleanupContext:
    """The one Redis client of the process (``REDIS_URL`` set), shared by every Redis user."""

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        if not settings.redis_url:
            yield
            return
        # Blocking: a burst of more commands than connections (hundreds of sockets joining or
        # leaving at once) waits for a free one; redis-py's default pool raises "Too many
        # connections" past 100, which failed heartbeats and made whole nodes look dead.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_WAIT_S,
            decode_responses=True,
        )
        client = aioredis.Redis.from_pool(pool)
        app[TRACING].instrument_redis(client)
        app[REDIS] = client
        yield
        await client.aclose()

    return redis_ctx


async def _session_log_ctx(app: web.Application) -> AsyncIterator[None]:
    session_log = EventLog(app[DATABASE].pool)
    session_log.start()
    app[SESSION_LOG] = session_log
    yield
    await session_log.close()


def _bus_ctx(settings: Settings) -> CleanupContext:
    async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
        redis = app.get(REDIS)
        bus: EventBus = (
            RedisBus(redis, settings.redis_prefix, owns_client=False)
            if redis is not None
            else LocalBus()
        )
        app[BUS] = bus
        yield
        await bus.close()

    return bus_ctx


def _billing_ctx(settings: Settings) -> CleanupContext:
    async def billing_ctx(app: web.Application) -> AsyncIterator[None]:
        service = ConsultationService(
            app[DATABASE], app[BUS], app[CLOCK], settings.billing, tracer=app[TRACING].tracer
        )
        app[CONSULTATIONS] = service
        clock = app[CLOCK]
        app[PAYMENTS] = PaymentService(
            app[DATABASE], build_gateway(settings.billing), clock, settings.billing
        )
        app[PAYOUTS] = PayoutService(app[DATABASE], clock, settings.billing)
        app[WALLETS] = WalletReader(app[DATABASE])
        metrics = TickMetrics(app[METRICS].registry, app[NODE_ID])
        ticker = Ticker(service, settings.billing.tick_interval_seconds, metrics)
        if settings.billing.internal_ticker:
            ticker.start()
        yield
        await ticker.close()

    return billing_ctx


async def _unbound_signal(room_id: str, participant_id: str, message: dict[str, Any]) -> None:
    log.warning("media_signal_dropped", room_id=room_id, participant_id=participant_id)


def _media_ctx(settings: Settings) -> CleanupContext:
    async def media_ctx(app: web.Application) -> AsyncIterator[None]:
        # The signalling hub (_open_hub) binds the engine's callback.
        media_settings = settings.media
        sfu_ice_servers = sfu_ice_servers_factory(settings.turn)
        if sfu_ice_servers is not None and media_settings.ice_servers_factory is None:
            # The SFU's own peer connections use TURN too, with fresh credentials each.
            media_settings = replace(media_settings, ice_servers_factory=sfu_ice_servers)
        recorder = app[RECORDER]
        observer = recorder if settings.recording.enabled else None
        engine = MediaEngine(media_settings, _unbound_signal, observer)
        app[MEDIA] = engine
        collector = MediaCollector(engine, app[NODE_ID])
        app[METRICS].registry.register(collector)
        yield
        await engine.close()
        app[METRICS].registry.unregister(collector)

    return media_ctx


def _recording_ctx(settings: Settings) -> CleanupContext:
    async def recording_ctx(app: web.Application) -> AsyncIterator[None]:
        # Before the SFU (closed after it): files a crash left open are finalised first.
        store = open_store(settings.recording)
        catalog = Catalog(app[DATABASE].pool)
        await recover(store, catalog)
        metrics = RecordingMetrics(app[METRICS].registry, app[NODE_ID])
        recorder = Recorder(settings.recording, store, catalog, metrics=metrics)
        app[RECORDER] = recorder
        yield
        await recorder.close()

    return recording_ctx


async def _event_loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    lag = EventLoopLag(app[METRICS].registry, app[NODE_ID])
    lag.start()
    pauses = GcPauses(app[METRICS].registry, app[NODE_ID])  # the other cause of lag
    pauses.install()
    yield
    pauses.remove()
    await lag.close()


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    passwords = Passwords()
    app[PASSWORDS] = passwords
    yield
    await asyncio.to_thread(passwords.close)


def _rate_limiter_ctx(settings: Settings) -> CleanupContext:
    async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
        redis = app.get(REDIS)
        limiter: RateLimiter = (
            RedisRateLimiter(redis, settings.redis_prefix + "rl:", owns_client=False)
            if redis is not None
            else MemoryRateLimiter()
        )
        app[RATE_LIMITER] = limiter
        yield
        await limiter.close()

    return rate_limiter_ctx


async def _authenticate(settings: Settings, status: UserStatusCache, token: str) -> Identity:
    """The socket's identity: a valid token of an existing, enabled account, not revoked."""
    claims = decode_token(settings, token)
    await status.verify(claims.user_id, claims.version)
    return Identity(claims.user_id, claims.role, claims.expires_at.timestamp())


def _presence_store(settings: Settings, redis: aioredis.Redis | None, node: str) -> PresenceStore:
    if redis is None:
        return MemoryPresenceStore()
    cfg = settings.signalling
    return RedisPresenceStore(
        redis, settings.redis_prefix, node,
        node_ttl_s=cfg.presence_node_ttl_s, heartbeat_s=cfg.presence_heartbeat_s,
    )


def _media_router(
    settings: Settings, redis: aioredis.Redis | None, store: PresenceStore, node: str,
    placement: RedisPlacement | None,
) -> MediaRoomRouter:
    """With Redis, each room's media is hosted by the one node it was placed on (by load);
    alone, here."""
    if redis is None or not isinstance(store, RedisPresenceStore):
        return LocalMediaRoomRouter(node)
    cfg = settings.signalling
    return RedisMediaRoomRouter(
        redis, settings.redis_prefix, node, node_key_prefix=store.node_key_prefix,
        ttl_s=cfg.presence_node_ttl_s, refresh_s=cfg.presence_heartbeat_s,
        placement=placement,
    )


@asynccontextmanager
async def _open_hub(
    settings: Settings, app: web.Application, database: Database
) -> AsyncIterator[tuple[Hub, RoutedMedia]]:
    """A started hub and its routed media, presence and media routing in Redis when it is
    configured."""
    node = app[NODE_ID]
    redis = app.get(REDIS)
    cfg = settings.signalling
    store = _presence_store(settings, redis, node)
    placement = (
        RedisPlacement(redis, settings.redis_prefix, alive_prefix=store.node_key_prefix,
                       stale_s=cfg.presence_node_ttl_s)
        if isinstance(store, RedisPresenceStore) else None
    )
    router = _media_router(settings, redis, store, node, placement)
    routed = RoutedMedia(app[MEDIA], router, app[BUS])
    chat = await ChatStore.open(database.pool, database.dsn, writers=cfg.chat_writers,
                                metrics=ChatMetrics(app[METRICS].registry, node))

    async def online(user_id: uuid.UUID) -> bool:
        return (await store.counts([user_key(user_id)]))[0] > 0

    # One rule and one limit for TURN credentials: GET /turn/credentials and join_consult.
    grants = TurnGrants(settings.turn, database.pool, app[RATE_LIMITER], online)
    app[TURN_GRANTS] = grants
    services = HubServices(
        bus=app[BUS],
        store=store,
        presence=PresenceService(store, database.pool),
        chat=chat,
        waitlist=Waitlist(database.pool, cfg.waitlist_offer_s),
        consultations=BillingConsultations(app[CONSULTATIONS]),
        authenticate=functools.partial(_authenticate, settings, app[USER_STATUS]),
        media=routed,
        turn=grants,
        audit=functools.partial(audit_log.record, database.pool),
        session_log=app[SESSION_LOG].emitter(node),
        tracer=app[TRACING].tracer,
    )
    # the parties are told what the recorder records (consult_state "recording")
    hub_settings = replace(cfg, recording=settings.recording.mode)
    hub = Hub(hub_settings, services, node_id=node, multi_node=redis is not None)
    routed.bind(hub.send_signal)
    drain = NodeDrain(node, hub.registry, routed, placement,
                      deadline_s=settings.drain_deadline_s, interval_s=cfg.presence_heartbeat_s)
    app[NODE] = drain
    collector = HubCollector(hub.registry, drain.state, node)
    app[METRICS].registry.register(collector)
    try:
        await hub.start()
        await routed.start()
        await drain.start()
        yield hub, routed
    finally:
        app[METRICS].registry.unregister(collector)
        await drain.close()
        await routed.close()
        await hub.close()
        await chat.close()


def _media_started(consultations: ConsultationService) -> Callable[[str], Awaitable[None]]:
    """The SFU's first two-way media of a room, told to billing (the room id is the
    consultation id); a failure is logged: the media goes on."""

    async def started(room_id: str) -> None:
        try:
            await consultations.media_started(uuid.UUID(room_id))
        except Exception:
            log.exception("media_started_not_recorded", consultation_id=room_id)

    return started


def _signalling_ctx(settings: Settings) -> CleanupContext:
    async def signalling_ctx(app: web.Application) -> AsyncIterator[None]:
        async with _open_hub(settings, app, app[DATABASE]) as (hub, routed):
            app[HUB] = hub
            app[MEDIA_STATS] = routed.room_stats
            log_event = app[SESSION_LOG].emitter(hub.node_id)
            app[MEDIA].bind_events(log_event)
            app[RECORDER].bind_events(log_event)  # recording_started/segment/stopped
            if isinstance(app[PRESENCE], NoPresence):  # keep a lookup injected before start
                app[PRESENCE] = hub.presence
            app[MEDIA].bind_media_flowing(_media_started(app[CONSULTATIONS]))
            yield
            app[MEDIA].bind_media_flowing(None)
            app[MEDIA].bind_signal(_unbound_signal)

    return signalling_ctx


async def drain_on_sigterm_hook(app: web.Application) -> None:
    """on_startup of ``kundlinow serve``: SIGTERM drains this node before it exits."""
    drain_on_sigterm(app[NODE])


async def freeze_startup_heap_hook(app: web.Application) -> None:
    """on_startup of ``kundlinow serve``, after every resource opened: full collections stop
    walking the start-up heap (``core.gcpolicy``). Not in ``create_app``: the tests build many
    applications in one process, and each would freeze the garbage of those before it."""
    frozen = freeze_startup_heap()  # on the loop: nothing is served yet
    log.info("gc_startup_heap_frozen", objects=frozen)


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown: every socket gets GOING_AWAY before the resources close."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.shutdown()


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The whole service as one aiohttp application."""
    # The proxy rewrite runs first so the access log and the rate limits see the real client.
    proxy = [trusted_proxy_middleware(settings.trusted_proxies)] if settings.trusted_proxies else []
    # The request's span encloses the access line, so that line carries its trace id.
    tracing = Tracing(settings.tracing, settings.node_id)
    app = web.Application(
        middlewares=[
            *proxy,
            *tracing.server_middlewares(),
            access_log_middleware,
            metrics_middleware,
            error_middleware,
            database_retry_middleware,
            input_hygiene_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TRACING] = tracing
    app.cleanup_ctx.append(_tracing_ctx)
    app[CLOCK] = clock or SystemClock()
    app[TURN_SETTINGS] = settings.turn
    app.cleanup_ctx.append(_database_ctx(settings))
    app.cleanup_ctx.append(_session_log_ctx)
    app.cleanup_ctx.append(_redis_ctx(settings))
    app.cleanup_ctx.append(_bus_ctx(settings))
    app.cleanup_ctx.append(_billing_ctx(settings))
    app.cleanup_ctx.append(_recording_ctx(settings))
    app.cleanup_ctx.append(_media_ctx(settings))
    app.cleanup_ctx.append(_rate_limiter_ctx(settings))
    app[NODE_ID] = settings.node_id or uuid.uuid4().hex[:12]
    app[METRICS] = HttpMetrics(app[NODE_ID])
    app[WEBHOOK_METRICS] = WebhookMetrics(app[METRICS].registry, app[NODE_ID])
    app.cleanup_ctx.append(_event_loop_lag_ctx)
    app.cleanup_ctx.append(_passwords_ctx)
    app[PRESENCE] = NoPresence()  # the signalling hub stores its own lookup here
    app.cleanup_ctx.append(_signalling_ctx(settings))
    app.on_shutdown.append(_close_sockets)
    for module_name in ROUTE_MODULES:
        module = importlib.import_module(module_name)
        if hasattr(module, "setup"):
            module.setup(app)
        else:
            app.router.add_routes(module.routes)
    return app
