"""Every failure has the one error shape with a stable code."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import terminate_backend_waiting_on
from tests.factories import auth, create_user


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}
    assert ready.headers["X-Request-Id"]


async def test_unknown_route_has_error_shape(client: TestClient[Any, Any]) -> None:
    response = await client.get("/no/such/route")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "NOT_FOUND"
    assert set(body["error"]) == {"code", "message", "details"}


async def test_wrong_method_has_error_shape(client: TestClient[Any, Any]) -> None:
    response = await client.post("/healthz")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_lost_database_connection_is_retried_or_answered_503(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    consultant = await create_user(database, settings, "consultant")
    for method, path, body, status in (
        ("GET", "/earnings", None, 200),  # safe to repeat: retried once
        ("POST", "/payouts", {"amount_paise": 100_000}, 503),  # not: the client decides
    ):
        holder = await asyncpg.connect(database.dsn)
        try:
            tr = holder.transaction()
            await tr.start()
            await holder.execute("LOCK TABLE ledger_accounts IN ACCESS EXCLUSIVE MODE")
            call = asyncio.ensure_future(
                client.request(method, path, json=body, headers=auth(consultant.token))
            )
            await terminate_backend_waiting_on(database, holder)
            await tr.rollback()
        finally:
            await holder.close()
        r = await call
        assert r.status == status, await r.text()
        if status == 503:
            assert (await r.json())["error"]["code"] == "DATABASE_UNAVAILABLE"
            assert int(r.headers["Retry-After"]) >= 1
