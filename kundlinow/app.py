"""The composition root: ``create_app(settings)`` builds and wires every component.

Each resource opens and closes with the application through one ``cleanup_ctx`` generator.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from api.errors import Handler, error_middleware
from api.hygiene import input_hygiene_middleware
from api.metrics import metrics_middleware
from api.passwords import Passwords
from api.revocation import UserStatusCache
from billing.consultations import ConsultationService
from billing.gateway import build_gateway
from billing.payments import PaymentService
from billing.payouts import PayoutService
from billing.ticker import Ticker
from billing.wallets import WalletReader
from kundlinow.bus import EventBus, LocalBus, RedisBus
from kundlinow.clock import Clock, SystemClock
from kundlinow.config import Settings
from kundlinow.db import open_database
from kundlinow.forwarded import trusted_proxy_middleware
from kundlinow.keys import (
    BUS,
    CLOCK,
    CONSULTATIONS,
    DATABASE,
    HUB,
    MEDIA,
    METRICS,
    PASSWORDS,
    PAYMENTS,
    PAYOUTS,
    PRESENCE,
    RATE_LIMITER,
    SETTINGS,
    TURN_SETTINGS,
    USER_STATUS,
    WALLETS,
)
from kundlinow.metrics import HttpMetrics
from kundlinow.presence import NoPresence
from kundlinow.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from media.engine import MediaEngine
from signalling.compose import open_hub
from signalling.ports import BillingConsultations
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
    "api.client",
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


def _database_ctx(settings: Settings) -> CleanupContext:
    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_database(settings) as database:
            app[DATABASE] = database
            app[USER_STATUS] = UserStatusCache(database.pool)
            yield

    return database_ctx


def _bus_ctx(settings: Settings) -> CleanupContext:
    async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
        bus: EventBus = (
            RedisBus.from_url(settings.redis_url, settings.redis_prefix)
            if settings.redis_url
            else LocalBus()
        )
        app[BUS] = bus
        yield
        await bus.close()

    return bus_ctx


def _billing_ctx(settings: Settings) -> CleanupContext:
    async def billing_ctx(app: web.Application) -> AsyncIterator[None]:
        service = ConsultationService(app[DATABASE], app[BUS], app[CLOCK], settings.billing)
        app[CONSULTATIONS] = service
        clock = app[CLOCK]
        app[PAYMENTS] = PaymentService(
            app[DATABASE], build_gateway(settings.billing), clock, settings.billing
        )
        app[PAYOUTS] = PayoutService(app[DATABASE], clock, settings.billing)
        app[WALLETS] = WalletReader(app[DATABASE])
        ticker = Ticker(service, settings.billing.tick_interval_seconds)
        if settings.billing.internal_ticker:
            ticker.start()
        yield
        await ticker.close()

    return billing_ctx


async def _unbound_signal(room_id: str, participant_id: str, message: dict[str, Any]) -> None:
    log.warning("media_signal_dropped", room_id=room_id, participant_id=participant_id)


def _media_ctx(settings: Settings) -> CleanupContext:
    async def media_ctx(app: web.Application) -> AsyncIterator[None]:
        # The signalling hub (signalling.compose.open_hub) binds the engine's callback.
        media_settings = settings.media
        sfu_ice_servers = sfu_ice_servers_factory(settings.turn)
        if sfu_ice_servers is not None and media_settings.ice_servers_factory is None:
            # The SFU's own peer connections use TURN too, with fresh credentials each.
            media_settings = replace(media_settings, ice_servers_factory=sfu_ice_servers)
        engine = MediaEngine(media_settings, _unbound_signal)
        app[MEDIA] = engine
        yield
        await engine.close()

    return media_ctx


async def _passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    passwords = Passwords()
    app[PASSWORDS] = passwords
    yield
    await asyncio.to_thread(passwords.close)


def _rate_limiter_ctx(settings: Settings) -> CleanupContext:
    async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
        limiter: RateLimiter = (
            RedisRateLimiter.from_url(settings.redis_url, settings.redis_prefix + "rl:")
            if settings.redis_url
            else MemoryRateLimiter()
        )
        app[RATE_LIMITER] = limiter
        yield
        await limiter.close()

    return rate_limiter_ctx


def _signalling_ctx(settings: Settings) -> CleanupContext:
    async def signalling_ctx(app: web.Application) -> AsyncIterator[None]:
        engine = app[MEDIA]
        async with open_hub(
            settings, app[DATABASE], app[BUS], BillingConsultations(app[CONSULTATIONS]),
            media=engine,
        ) as hub:
            app[HUB] = hub
            if isinstance(app[PRESENCE], NoPresence):  # keep a lookup injected before start
                app[PRESENCE] = hub.presence
            yield
            engine.bind_signal(_unbound_signal)

    return signalling_ctx


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown: every socket gets GOING_AWAY before the resources close."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.shutdown()


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The whole service as one aiohttp application."""
    # The proxy rewrite runs first so the access log and the rate limits see the real client.
    proxy = [trusted_proxy_middleware(settings.trusted_proxies)] if settings.trusted_proxies else []
    app = web.Application(
        middlewares=[
            *proxy, access_log_middleware, metrics_middleware, error_middleware,
            input_hygiene_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[TURN_SETTINGS] = settings.turn
    app.cleanup_ctx.append(_database_ctx(settings))
    app.cleanup_ctx.append(_bus_ctx(settings))
    app.cleanup_ctx.append(_billing_ctx(settings))
    app.cleanup_ctx.append(_media_ctx(settings))
    app.cleanup_ctx.append(_rate_limiter_ctx(settings))
    app[METRICS] = HttpMetrics()
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
