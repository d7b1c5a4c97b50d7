"""One WebSocket connection: the handshake (RFC 6455), authentication, limits and the read loop.

The token comes in ``Sec-WebSocket-Protocol`` (``kundlinow.token.<jwt>``) or in a first ``auth``
frame within ``auth_timeout_s``. Then a per-user connection cap, a token bucket per socket and a
frame size limit apply; each text frame is decoded, rate-limited and dispatched. A
:class:`~signalling.tokenguard.TokenGuard` closes the socket when its token expires or is
revoked, unless a later ``auth`` frame brought a fresh one.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import WSMsgType, web

from core.db import is_connection_lost
from signalling import errors, protocol
from signalling.connection import Connection, TokenBucket
from signalling.context import HubContext, Identity
from signalling.dispatch import dispatch
from signalling.presence import user_key
from signalling.rooms import disconnected
from signalling.tokenguard import TokenGuard
from signalling.watchers import status_changed

log = structlog.get_logger(__name__)


def _offered_token(request: web.Request) -> str | None:
    offered = [
        p.strip()
        for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        if p.strip()
    ]
    prefix = protocol.TOKEN_PREFIX
    return next((p[len(prefix) :] for p in offered if p.startswith(prefix)), None)


async def handle(ctx: HubContext, request: web.Request) -> web.StreamResponse:
    """``GET /ws``: authenticate, admit, greet, then read until the socket closes."""
    settings = ctx.settings
    identity: Identity | None = None
    token = _offered_token(request)
    if token is not None:
        try:
            identity = await ctx.services.authenticate(token)
        except Exception as exc:
            if is_connection_lost(exc):
                raise  # 503 DATABASE_UNAVAILABLE (api/dbretry.py): no verdict on the token
            return web.json_response(
                {"error": {"code": _auth_code(exc), "message": "invalid token", "details": {}}},
                status=401,
            )
    address = request.remote or ""
    unauthenticated = identity is None
    if unauthenticated and not ctx.pending_auth.enter(
        address, settings.max_unauthenticated_per_address
    ):
        return web.json_response(
            {"error": {"code": errors.TOO_MANY_CONNECTIONS,
                       "message": "too many sockets waiting to authenticate",
                       "details": {"max": settings.max_unauthenticated_per_address}}},
            status=429,
        )
    ws = web.WebSocketResponse(
        protocols=(protocol.PROTOCOL,),
        heartbeat=settings.heartbeat_s,
        max_msg_size=settings.hard_frame_bytes,
        compress=False,
    )
    try:
        await ws.prepare(request)
        if identity is None or token is None:
            authenticated = await _await_auth(ctx, ws)
            identity, token = authenticated if authenticated is not None else (None, None)
    finally:
        if unauthenticated:
            ctx.pending_auth.leave(address)
    if identity is None or token is None:
        return ws
    store = ctx.services.store
    # One atomic check-and-add across all nodes: concurrent handshakes cannot overshoot.
    if not await store.try_add(user_key(identity.user_id), settings.max_connections_per_user):
        await ws.send_str(
            protocol.error(None, errors.TOO_MANY_CONNECTIONS, "too many connections",
                           {"max": settings.max_connections_per_user})
        )
        await ws.close(code=errors.CLOSE_TOO_MANY_CONNECTIONS, message=b"too many connections")
        return ws
    bucket = TokenBucket(settings.rate_per_s, settings.rate_burst)
    conn = Connection(ws, request.transport, identity.user_id, identity.role, bucket)
    ctx.registry.add(conn)
    if conn.role == "consultant":
        await status_changed(ctx, conn.user_id)
    structlog.contextvars.bind_contextvars(user_id=str(conn.user_id))
    log.info("socket_connected", conn=conn.id, node=ctx.node_id)
    guard = TokenGuard(ws, ctx.services.authenticate, token, identity, settings.token_check_s)
    guard.start()
    try:
        await conn.send(
            protocol.event(
                "hello",
                {
                    "protocol": protocol.PROTOCOL,
                    "version": protocol.VERSION,
                    "user_id": str(conn.user_id),
                    "role": conn.role,
                    "heartbeat_s": settings.heartbeat_s,
                    "max_frame_bytes": settings.max_frame_bytes,
                    "rate_per_s": settings.rate_per_s,
                },
            )
        )
        await _read_loop(ctx, conn, guard)
    finally:
        await disconnected(ctx, conn)
        await guard.close()
    return ws


def _auth_code(exc: Exception) -> str:
    """The refusal's stable code (TOKEN_EXPIRED, TOKEN_REVOKED, ACCOUNT_DISABLED, ...), or
    DATABASE_UNAVAILABLE when the account could not be looked up (no verdict on the token)."""
    if is_connection_lost(exc):
        return errors.DATABASE_UNAVAILABLE
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else errors.UNAUTHENTICATED


async def _await_auth(
    ctx: HubContext, ws: web.WebSocketResponse
) -> tuple[Identity, str] | None:
    deadline = time.monotonic() + ctx.settings.auth_timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            msg = await ws.receive(timeout=remaining)
        except TimeoutError:
            await ws.send_str(protocol.error(None, errors.AUTH_TIMEOUT, "no auth message in time"))
            await ws.close(code=errors.CLOSE_UNAUTHENTICATED, message=b"auth timeout")
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return None
            await ws.send_str(protocol.error(None, errors.UNAUTHENTICATED, "auth first"))
            continue
        try:
            message = protocol.decode(msg.data, ctx.settings.max_frame_bytes)
        except protocol.ProtocolError as exc:
            await ws.send_str(protocol.error(exc.msg_id, exc.code, exc.message, exc.details))
            continue
        if message.type != "auth":
            await ws.send_str(protocol.error(message.id, errors.UNAUTHENTICATED, "send auth first"))
            continue
        token = message.data["token"]
        try:
            identity = await ctx.services.authenticate(token)
        except Exception as exc:
            code = _auth_code(exc)
            await ws.send_str(protocol.error(message.id, code, "invalid token"))
            if code == errors.DATABASE_UNAVAILABLE:  # no verdict: come back, same token
                await ws.close(code=errors.CLOSE_TRY_AGAIN, message=b"try again")
            else:
                await ws.close(code=errors.CLOSE_UNAUTHENTICATED, message=b"invalid token")
            return None
        await ws.send_str(protocol.ack(message.id, {"user_id": str(identity.user_id)}))
        return identity, token


async def _read_loop(ctx: HubContext, conn: Connection, guard: TokenGuard) -> None:
    async for msg in conn.ws:
        if msg.type == WSMsgType.TEXT:
            await _on_frame(ctx, conn, guard, msg.data)
        elif msg.type == WSMsgType.BINARY:
            await conn.send(
                protocol.error(None, errors.INVALID_MESSAGE, "binary frames are not accepted")
            )
        elif msg.type == WSMsgType.ERROR:
            log.info("socket_error", conn=conn.id, error=str(conn.ws.exception()))
            break


async def _on_frame(ctx: HubContext, conn: Connection, guard: TokenGuard, text: str) -> None:
    try:
        message = protocol.decode(text, ctx.settings.max_frame_bytes)
    except protocol.ProtocolError as exc:
        await conn.send(protocol.error(exc.msg_id, exc.code, exc.message, exc.details))
        return
    if not conn.bucket.take():
        await conn.send(
            protocol.error(message.id, errors.RATE_LIMITED, "too many messages",
                           {"rate_per_s": ctx.settings.rate_per_s})
        )
        return
    if message.type == "auth":  # a fresh token keeps the socket open past the old one's expiry
        try:
            identity = await guard.reauthenticate(message.data["token"])
        except Exception as exc:
            await conn.send(protocol.error(message.id, _auth_code(exc), "token refused"))
            return
        await conn.send(protocol.ack(message.id, {"user_id": str(conn.user_id),
                                                  "expires_at": identity.expires_at}))
        return
    await conn.send(await dispatch(ctx, conn, message))
