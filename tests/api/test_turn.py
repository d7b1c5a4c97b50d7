"""GET /turn/credentials through the real app: authentication, shape, and a credential that
verifies against the configured secret."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.conftest import AppFactory
from tests.factories import auth, create_user, online_astrologer
from tests.signalling.wsclient import connect
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
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))
    user, _online = await online_astrologer(client, database, settings)
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
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))
    (first, _a), (second, _b) = [
        await online_astrologer(client, database, settings) for _ in range(2)
    ]
    for _ in range(TURN.credentials_limit):
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


async def test_only_parties_of_an_accepted_consultation_get_credentials(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    """A fresh account gets no relay; the caller and astrologer of an active consultation do,
    until it ends; an astrologer while online."""
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=TURN))

    async def status(token: str) -> tuple[int, str | None]:
        response = await client.get("/turn/credentials", headers=auth(token))
        body = await response.json()
        return response.status, body.get("error", {}).get("code")

    caller = await create_user(database, settings)
    astrologer = await create_user(database, settings, "consultant")
    assert await status(caller.token) == (403, "TURN_NOT_ALLOWED")
    assert await status(astrologer.token) == (403, "TURN_NOT_ALLOWED")  # offline
    await grant(database, caller.id, 100_000)
    body = {"consultant_id": str(astrologer.id), "mode": "voice"}
    created = await client.post("/consultations", json=body, headers=auth(caller.token))
    cid = (await created.json())["id"]
    assert await status(caller.token) == (403, "TURN_NOT_ALLOWED")  # requested, not accepted
    await client.post(f"/consultations/{cid}/accept", headers=auth(astrologer.token))
    assert await status(caller.token) == (200, None)
    assert await status(astrologer.token) == (200, None)
    await client.post(f"/consultations/{cid}/end", headers=auth(caller.token))
    assert await status(caller.token) == (403, "TURN_NOT_ALLOWED")
    online, _socket = await online_astrologer(client, database, settings)
    assert await status(online.token) == (200, None)


async def test_rest_and_join_consult_share_one_limit(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    limited = replace(TURN, credentials_limit=2)
    client: TestClient[Any, Any] = await aiohttp_client(make_app(turn=limited))
    astrologer, astro_ws = await online_astrologer(client, database, settings)
    caller = await create_user(database, settings)
    await grant(database, caller.id, 100_000)
    caller_ws = await connect(client, "/ws", caller.token)
    ack = await caller_ws.ok("consult_request", {"consultant_id": str(astrologer.id),
                                                 "mode": "voice"})
    cid = ack["consultation"]["id"]
    await astro_ws.ok("accept", {"consultation_id": cid})
    for _ in range(2):  # each join mints a credential, counted like a REST fetch
        joined = await caller_ws.ok("join_consult", {"consultation_id": cid})
        assert any("credential" in s for s in joined["ice_servers"])
    response = await client.get("/turn/credentials", headers=auth(caller.token))
    assert response.status == 429
    joined = await caller_ws.ok("join_consult", {"consultation_id": cid})
    assert joined["ice_servers"] == [{"urls": ["stun:turn.example.test:3478"]}]  # STUN only
