"""An open socket does not outlive its token: it closes at expiry or on revocation
(issue 11, point 12), unless the client re-authenticates with a fresh token."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from api.auth import issue_token
from core.db import Database
from kundlinow.config import Settings
from signalling import errors
from tests.factories import auth, create_user
from tests.signalling.wsclient import WsClient, connect

CHECK_S = 0.5


def _fast_checks(settings: Settings) -> Settings:
    return replace(settings, signalling=replace(settings.signalling, token_check_s=CHECK_S))


async def _closed_with(client: WsClient, wait_s: float = 20.0) -> tuple[int | None, str]:
    """Read until the socket closes; the close code and the last error frame's code."""
    code = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        msg = await client.ws.receive(timeout=max(0.01, deadline - loop.time()))
        if msg.type == aiohttp.WSMsgType.TEXT:
            frame = json.loads(msg.data)
            if frame["type"] == "error":
                code = frame["data"]["code"]
            continue
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING):
            return client.ws.close_code, code


def _short_token(settings: Settings, user_id: Any, role: Any, lifetime_s: float) -> str:
    # issue_token's ttl is whole seconds from "now": back-date issuance to get a short lifetime.
    now = datetime.now(UTC) - timedelta(seconds=settings.jwt_ttl_s - lifetime_s)
    return issue_token(settings, user_id, role, now=now)


async def test_a_socket_closes_when_its_token_expires(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
) -> None:
    server = await aiohttp_client(make_app(signalling=_fast_checks(settings).signalling))
    user = await create_user(database, settings)
    client = await connect(server, "/ws", _short_token(settings, user.id, user.role, 3))
    assert await client.ok("ping")
    assert await _closed_with(client) == (errors.CLOSE_UNAUTHENTICATED, "TOKEN_EXPIRED")


async def test_a_fresh_auth_keeps_the_socket_open_past_the_old_expiry(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
) -> None:
    server = await aiohttp_client(make_app(signalling=_fast_checks(settings).signalling))
    user = await create_user(database, settings)
    other = await create_user(database, settings)
    client = await connect(server, "/ws", _short_token(settings, user.id, user.role, 3))
    assert await client.fail("auth", {"token": other.token}) == "FORBIDDEN"  # not the same user
    ack = await client.ok("auth", {"token": user.token})
    assert ack["expires_at"] > datetime.now(UTC).timestamp() + 60
    await asyncio.sleep(4)  # past the first token's expiry (3 s): nothing to poll for here
    assert await client.ok("ping")
    await client.close()


async def test_revocation_closes_open_sockets(
    aiohttp_client: Any, make_app: Any, database: Database, settings: Settings
) -> None:
    server = await aiohttp_client(make_app(signalling=_fast_checks(settings).signalling))
    caller = await create_user(database, settings)
    astrologer = await create_user(database, settings, "consultant")
    logged_out = await connect(server, "/ws", caller.token)
    disabled = await connect(server, "/ws", astrologer.token)
    assert (await server.post("/auth/logout-all", headers=auth(caller.token))).status == 204
    # As the admin console or `kundlinow admin disable` do.
    await database.pool.execute(
        "UPDATE users SET disabled_at = now() WHERE id = $1", astrologer.id
    )
    assert await _closed_with(logged_out) == (errors.CLOSE_UNAUTHENTICATED, "TOKEN_REVOKED")
    assert await _closed_with(disabled) == (errors.CLOSE_UNAUTHENTICATED, "ACCOUNT_DISABLED")
    # And a revoked token cannot open a new one.
    try:
        await connect(server, "/ws", caller.token)
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 401
    else:
        raise AssertionError("a revoked token opened a socket")
