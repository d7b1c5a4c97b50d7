"""``/metrics`` (Prometheus text format) and the middleware that counts and times requests.

The collectors live in :class:`core.metrics.HttpMetrics`, one per app under
``api.keys.METRICS``; other components may register their own on ``app[METRICS].registry``.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest

from api.errors import ApiError, Handler
from api.keys import METRICS, SETTINGS
from api.openapi import operation

routes = web.RouteTableDef()

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests that matched no route (keeps label cardinality bounded)."""


def route_label(request: web.Request) -> str:
    """The matched route's template (``/consultants/{id}``), never the raw path."""
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(
            request.method, route_label(request), status, time.perf_counter() - started
        )


@routes.get("/metrics")
@operation(
    "Prometheus metrics (text exposition format)",
    content_type=CONTENT_TYPE_LATEST.split(";")[0],
    errors=(401,),
    tags=("operations",),
)
async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(
                401,
                "METRICS_TOKEN_REQUIRED",
                "/metrics needs the METRICS_TOKEN bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
