"""Register, log in, ``/me``; credentials, tokens, roles and login throttling."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from api.auth import issue_token
from core.db import Database
from core.forwarded import parse_networks
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.factories import DEFAULT_PASSWORD, create_user

Client = TestClient[Any, Any]


def _email() -> str:
    return f"acct-{uuid.uuid4().hex[:10]}@Example.test"


async def _register(client: Client, **fields: Any) -> Any:
    body = {"email": _email(), "password": "s3cret-enough", "display_name": "Asha", **fields}
    return await client.post("/auth/register", json=body)


async def _error_code(response: Any) -> str:
    body = await response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    code: str = body["error"]["code"]
    return code


async def test_register_login_me(client: Client) -> None:
    email = _email()
    registered = await _register(client, email=email)
    assert registered.status == 201
    body = await registered.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    assert body["user"]["email"] == email.lower()
    assert body["user"]["role"] == "user"

    login = await client.post(
        "/auth/login", json={"email": email.upper(), "password": "s3cret-enough"}
    )
    assert login.status == 200
    token = (await login.json())["access_token"]

    me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200
    assert await me.json() == body["user"]
    assert "password_hash" not in await me.text()


async def test_register_consultant_creates_profile(client: Client, database: Database) -> None:
    response = await _register(client, role="consultant", display_name="Pandit Rao")
    assert response.status == 201
    user_id = uuid.UUID((await response.json())["user"]["id"])
    profile = await database.pool.fetchrow(
        "SELECT display_name FROM consultant_profiles WHERE user_id = $1", user_id
    )
    assert profile is not None and profile["display_name"] == "Pandit Rao"
    listed = await client.get(f"/consultants/{user_id}")
    assert listed.status == 200


async def test_register_stores_an_argon2id_hash(client: Client, database: Database) -> None:
    email = _email()
    assert (await _register(client, email=email)).status == 201
    stored = await database.pool.fetchval(
        "SELECT password_hash FROM users WHERE email = $1", email.lower()
    )
    assert stored.startswith("$argon2id$")
    assert "s3cret-enough" not in stored


async def test_admin_cannot_register_over_http(client: Client) -> None:
    response = await _register(client, role="admin")
    assert response.status == 422
    assert await _error_code(response) == "VALIDATION_FAILED"


async def test_duplicate_email_is_409(client: Client) -> None:
    email = _email()
    assert (await _register(client, email=email)).status == 201
    again = await _register(client, email=email.swapcase())
    assert again.status == 409
    assert await _error_code(again) == "EMAIL_TAKEN"


async def test_wrong_password_and_unknown_email_answer_alike(
    client: Client, database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    wrong = await client.post("/auth/login", json={"email": user.email, "password": "nope-nope"})
    unknown = await client.post(
        "/auth/login", json={"email": _email(), "password": DEFAULT_PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert await _error_code(wrong) == "INVALID_CREDENTIALS"


async def test_unknown_email_costs_a_hash_like_a_wrong_password(
    client: Client, database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)

    async def timed(email: str) -> float:
        started = time.perf_counter()
        response = await client.post("/auth/login", json={"email": email, "password": "x" * 9})
        assert response.status == 401
        return time.perf_counter() - started

    await timed(_email())  # the first unknown email pays for the dummy hash once
    known = min([await timed(user.email) for _ in range(2)])
    unknown = min([await timed(_email()) for _ in range(2)])
    # Both run one argon2id verification; without the dummy hash "unknown" would be ~100x faster.
    assert unknown > known / 4


async def test_invalid_registration_is_422_with_fields(client: Client) -> None:
    response = await _register(client, email="not-an-email", password="short")
    assert response.status == 422
    body = await response.json()
    fields = {f["field"] for f in body["error"]["details"]["fields"]}
    assert fields == {"email", "password"}


def _forge(payload: dict[str, Any], header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(payload)}."


async def test_tampered_expired_and_alg_none_tokens_are_401(
    client: Client, database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    header, payload, signature = user.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    expired = issue_token(
        settings, user.id, "user", now=datetime.now(UTC) - timedelta(seconds=settings.jwt_ttl_s + 5)
    )
    none_token = _forge(claims, {"alg": "none", "typ": "JWT"})
    wrong_key = jwt.encode(claims, "another-secret-" + "y" * 32, algorithm="HS256")
    cases = {
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "expired": expired,
        "alg_none": none_token,
        "wrong_key": wrong_key,
        "garbage": "not.a.token",
    }
    for name, token in cases.items():
        response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401, name
        assert await _error_code(response) in ("UNAUTHENTICATED", "TOKEN_EXPIRED"), name
    assert (await client.get("/me")).status == 401
    ok = await client.get("/me", headers={"Authorization": f"Bearer {user.token}"})
    assert ok.status == 200


async def test_wrong_role_is_403(client: Client, database: Database, settings: Settings) -> None:
    caller = await create_user(database, settings, "user")
    response = await client.patch(
        "/consultants/me", json={"bio": "hi"}, headers={"Authorization": f"Bearer {caller.token}"}
    )
    assert response.status == 403
    assert await _error_code(response) == "FORBIDDEN"


async def test_brute_force_on_one_account_is_429_with_retry_after(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    client = await aiohttp_client(make_app(login_account_limit=3, login_ip_limit=100))
    user = await create_user(database, settings)
    for _ in range(3):
        wrong = await client.post("/auth/login", json={"email": user.email, "password": "guess-1"})
        assert wrong.status == 401
    # Even the right password is refused while the account is locked.
    locked = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert locked.status == 429
    assert await _error_code(locked) == "RATE_LIMITED"
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_window_s
    # Another account is not affected.
    other = await create_user(database, settings)
    ok = await client.post("/auth/login", json={"email": other.email, "password": DEFAULT_PASSWORD})
    assert ok.status == 200


async def test_successful_login_clears_failed_attempts(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    client = await aiohttp_client(make_app(login_account_limit=2, login_ip_limit=100))
    user = await create_user(database, settings)
    good = {"email": user.email, "password": DEFAULT_PASSWORD}
    for _ in range(3):
        assert (
            await client.post("/auth/login", json={**good, "password": "bad-one"})
        ).status == 401
        assert (await client.post("/auth/login", json=good)).status == 200
        # 1 failure, then success resets: never reaches the limit of 2


async def test_many_logins_from_one_ip_are_429(aiohttp_client: Any, make_app: AppFactory) -> None:
    client = await aiohttp_client(make_app(login_ip_limit=4, login_account_limit=100))
    statuses = [
        (await client.post("/auth/login", json={"email": _email(), "password": "x" * 8})).status
        for _ in range(6)
    ]
    assert statuses == [401] * 4 + [429] * 2


LoginFrom = Callable[[str], Awaitable[int]]


async def _proxied_logins(aiohttp_client: Any, make_app: AppFactory, trusted: str) -> LoginFrom:
    """``login_from(x_forwarded_for)`` → status of a failing login, 2 allowed per client IP.
    The test client connects from 127.0.0.1."""
    client = await aiohttp_client(
        make_app(login_ip_limit=2, login_account_limit=100, trusted_proxies=parse_networks(trusted))
    )

    async def login_from(forwarded_for: str) -> int:
        body = {"email": _email(), "password": "x" * 8}
        headers = {"X-Forwarded-For": forwarded_for}
        status: int = (await client.post("/auth/login", json=body, headers=headers)).status
        return status

    return login_from


async def test_behind_a_trusted_proxy_each_client_has_its_own_login_budget(
    aiohttp_client: Any, make_app: AppFactory
) -> None:
    login_from = await _proxied_logins(aiohttp_client, make_app, "127.0.0.0/8")  # the proxy
    # A client cannot escape its budget by prepending made-up hops: only the right-most
    # untrusted hop (what our proxy saw) counts.
    assert [
        await login_from(f"{fake}, 203.0.113.5") for fake in ("1.1.1.1", "2.2.2.2", "3.3.3.3")
    ] == [401, 401, 429]
    assert await login_from("198.51.100.9") == 401


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    aiohttp_client: Any, make_app: AppFactory
) -> None:
    login_from = await _proxied_logins(aiohttp_client, make_app, "10.0.0.0/8")
    assert [await login_from(f"192.0.2.{n}") for n in range(3)] == [401, 401, 429]


async def test_login_limits_are_shared_through_redis(
    aiohttp_client: Any,
    make_app: AppFactory,
    database: Database,
    settings: Settings,
    redis_url: str,
    redis_prefix: str,
) -> None:
    overrides = {
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "login_account_limit": 2,
        "login_ip_limit": 100,
    }
    node_a = await aiohttp_client(make_app(**overrides))
    node_b = await aiohttp_client(make_app(**overrides))
    user = await create_user(database, settings)
    bad = {"email": user.email, "password": "wrong-pass"}
    assert (await node_a.post("/auth/login", json=bad)).status == 401
    assert (await node_b.post("/auth/login", json=bad)).status == 401
    blocked = await node_a.post("/auth/login", json={**bad, "password": DEFAULT_PASSWORD})
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0


async def test_oversized_body_is_413(aiohttp_client: Any, make_app: AppFactory) -> None:
    client = await aiohttp_client(make_app(max_body_bytes=1024))
    response = await client.post(
        "/auth/register",
        data=json.dumps({"email": _email(), "password": "p" * 2000, "display_name": "x"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert await _error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_malformed_json_is_400_invalid_json(client: Client) -> None:
    response = await client.post(
        "/auth/login",
        data=b'{"email": "a@b.c", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert await _error_code(response) == "INVALID_JSON"
    not_utf8 = await client.post("/auth/login", data=b"\xff\xfe{}")
    assert not_utf8.status == 400
    assert await _error_code(not_utf8) == "INVALID_JSON"


async def test_me_for_a_deleted_account_is_401(
    client: Client, database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    await database.pool.execute("DELETE FROM users WHERE id = $1", user.id)
    response = await client.get("/me", headers={"Authorization": f"Bearer {user.token}"})
    assert response.status == 401


async def test_registrations_per_ip_are_limited(aiohttp_client: Any, make_app: AppFactory) -> None:
    client = await aiohttp_client(make_app(login_ip_limit=2))
    statuses = [(await _register(client)).status for _ in range(3)]
    assert statuses == [201, 201, 429]
    # Logins from the same IP have their own budget.
    login = await client.post("/auth/login", json={"email": _email(), "password": "x" * 9})
    assert login.status == 401


async def test_registered_display_name_is_masked(client: Client, database: Database) -> None:
    response = await _register(client, role="consultant", display_name="Pandit ⑨⑧⑦⑥⑤④③②①⓪")
    assert response.status == 201
    assert (await response.json())["user"]["display_name"] == "Pandit [hidden]"
    user_id = uuid.UUID((await response.json())["user"]["id"])
    profile = await database.pool.fetchval(
        "SELECT display_name FROM consultant_profiles WHERE user_id = $1", user_id
    )
    assert profile == "Pandit [hidden]"
