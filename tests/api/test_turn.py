"""GET /turn/credentials through the real app: authentication, shape, and a credential that
verifies against the configured secret."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from api.turn import CREDENTIALS_LIMIT
from core.db import Database
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.factories import create_user
from turn.config import TurnSettings
from turn.credentials import compute_password

TURN = TurnSettings(
    urls=("stun:turn.example.test:3478", "turn:turn.example.test:3478?transport=udp"),
    secret="endpoint-test-secret",
    ttl_s=600,
)


async def test_requires_a_token(aiohttp_client: Any, make_app: AppFactory) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))
    response = await client.get("/turn/credentials")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHENTICATED"
    response = await client.get(
        "/turn/credentials", headers={"Authorization": "Bearer not.a.token"}
    )
    assert response.status == 401


async def test_returns_ice_servers_with_a_fresh_credential(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))
    before = int(time.time())
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {user.token}"}
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    stun_entry, turn_entry = body["ice_servers"]
    assert stun_entry == {"urls": ["stun:turn.example.test:3478"]}
    assert turn_entry["urls"] == ["turn:turn.example.test:3478?transport=udp"]
    expiry, user_id = turn_entry["username"].split(":")
    assert user_id == str(user.id)
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert body["expires_at"] == int(expiry)
    assert body["ttl_s"] == 600
    assert turn_entry["credential"] == compute_password(TURN.secret or "", turn_entry["username"])


async def test_without_turn_the_list_is_empty(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {user.token}"}
    )
    assert response.status == 200
    assert await response.json() == {"ice_servers": [], "ttl_s": 3600, "expires_at": None}


async def test_fetching_is_rate_limited_per_user(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    first, second = await create_user(database, settings), await create_user(database, settings)
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))
    for _ in range(CREDENTIALS_LIMIT):
        response = await client.get(
            "/turn/credentials", headers={"Authorization": f"Bearer {first.token}"}
        )
        assert response.status == 200
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {first.token}"}
    )
    assert response.status == 429
    assert (await response.json())["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another user is not affected.
    response = await client.get(
        "/turn/credentials", headers={"Authorization": f"Bearer {second.token}"}
    )
    assert response.status == 200
