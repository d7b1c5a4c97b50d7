"""Lost database connections: retry a safe request once, else 503 with ``Retry-After``.

A connection can vanish under a request (failover, restart, ``pg_terminate_backend``): its
transaction was rolled back, so the request had no effect. A safe request (GET, HEAD, OPTIONS,
RFC 9110 §9.2.1) is run once more on a fresh connection; anything else is answered 503
DATABASE_UNAVAILABLE with ``Retry-After`` (RFC 9110 §10.2.3), because only the client knows
whether repeating it is what it wants (its idempotency key makes that safe for money).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from api.errors import ApiError, Handler
from core.db import is_connection_lost

log = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_AFTER_S = 2


@web.middleware
async def database_retry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    retry = (
        request.method in SAFE_METHODS
        and request.headers.get("Upgrade", "").lower() != "websocket"  # a socket may have begun
    )
    try:
        return await handler(request)
    except Exception as exc:
        if not is_connection_lost(exc):
            raise
        log.warning("database_connection_lost", path=request.path, retry=retry)
        if retry:
            try:
                return await handler(request)
            except Exception as again:
                if not is_connection_lost(again):
                    raise
        raise ApiError(
            503,
            "DATABASE_UNAVAILABLE",
            "the database connection was lost; try again",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
