"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from api.errors import error_response
from api.keys import DATABASE, NODE
from api.openapi import operation

routes = web.RouteTableDef()


@routes.get("/healthz")
@operation("Liveness: the process answers", tags=("operations",))
async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@operation(
    "Readiness: not draining, database reachable and migrations applied",
    errors=(503,),
    tags=("operations",),
)
async def readyz(request: web.Request) -> web.Response:
    """Ready to serve: not draining, the database answers and every migration is applied."""
    node = request.app.get(NODE)
    if node is not None and node.state.draining:
        return error_response(503, "DRAINING", "this node is draining", {"node": node.node_id})
    try:
        pending = await request.app[DATABASE].pending_migrations()
    except (OSError, TimeoutError) as exc:
        return error_response(503, "DATABASE_UNREACHABLE", f"database unreachable: {exc}")
    if pending:
        return error_response(
            503, "MIGRATIONS_PENDING", "migrations are pending", {"pending": pending}
        )
    return web.json_response({"status": "ready"})
