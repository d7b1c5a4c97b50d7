"""Every failure has the one error shape with a stable code."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


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
