"""Tokens stop working when the account is deleted or disabled, after a password change and
after "log out everywhere" — on REST and on TURN credential requests (issue 11, point 12)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from api.revocation import STATUS_CACHE_S
from core.db import Database
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.factories import DEFAULT_PASSWORD, auth, create_user

PROTECTED = ("/me", "/turn/credentials", "/wallet")
REPO = Path(__file__).resolve().parents[2]


async def _codes(client: TestClient[Any, Any], token: str) -> dict[str, tuple[int, str]]:
    found = {}
    for path in PROTECTED:
        response = await client.get(path, headers=auth(token))
        body = await response.json()
        code = body["error"]["code"] if response.status >= 400 else ""
        found[path] = (response.status, code)
    return found


def _all(status: int, code: str) -> dict[str, tuple[int, str]]:
    return {path: (status, code) for path in PROTECTED}


async def _kundlinow(db_dsn: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": db_dsn, "LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kundlinow", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _eventually(client: TestClient[Any, Any], token: str, expected: tuple[int, str]) -> None:
    """The statuses once every node's status cache (STATUS_CACHE_S) has caught up."""
    deadline = time.monotonic() + STATUS_CACHE_S + 10
    while (codes := await _codes(client, token)) != _all(*expected):
        assert time.monotonic() < deadline, codes
        await asyncio.sleep(0.2)


async def test_a_disabled_account_is_refused_everywhere_and_cannot_sign_in(
    client: TestClient[Any, Any], database: Database, settings: Settings, db_dsn: str
) -> None:
    user = await create_user(database, settings)
    assert await _codes(client, user.token) == _all(200, "")
    assert (await _kundlinow(db_dsn, "admin", "disable", "--email", user.email))[0] == 0
    await _eventually(client, user.token, (401, "ACCOUNT_DISABLED"))
    login = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status == 403 and (await login.json())["error"]["code"] == "ACCOUNT_DISABLED"
    audited = await database.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'account_disabled' AND subject_id = $1",
        str(user.id),
    )
    assert audited == 1
    # Enabled again: a new sign-in works, the old token stays revoked.
    assert (await _kundlinow(db_dsn, "admin", "enable", "--email", user.email))[0] == 0
    await _eventually(client, user.token, (401, "TOKEN_REVOKED"))
    login = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status == 200
    assert await _codes(client, (await login.json())["access_token"]) == _all(200, "")
    code, out = await _kundlinow(db_dsn, "admin", "disable", "--email", "nobody@example.test")
    assert code == 1 and "NOT_FOUND" in out


async def test_disabling_by_any_path_revokes_tokens(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    """The admin console, the CLI or SQL by hand: the database bumps the token version."""
    user = await create_user(database, settings)
    await database.pool.execute("UPDATE users SET disabled_at = now() WHERE id = $1", user.id)
    await database.pool.execute("UPDATE users SET disabled_at = NULL WHERE id = $1", user.id)
    await _eventually(client, user.token, (401, "TOKEN_REVOKED"))


async def test_a_deleted_account_is_refused(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    assert (await client.get("/turn/credentials", headers=auth(user.token))).status == 200
    await database.pool.execute("DELETE FROM users WHERE id = $1", user.id)
    await _eventually(client, user.token, (401, "UNAUTHENTICATED"))


async def test_a_password_change_revokes_every_other_token(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    other_device = (
        await (
            await client.post(
                "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
            )
        ).json()
    )["access_token"]
    wrong = await client.post(
        "/me/password",
        json={"current_password": "not-it-at-all", "new_password": "a new passphrase"},
        headers=auth(user.token),
    )
    assert wrong.status == 403
    changed = await client.post(
        "/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a new passphrase"},
        headers=auth(user.token),
    )
    assert changed.status == 200
    fresh = (await changed.json())["access_token"]
    assert await _codes(client, user.token) == _all(401, "TOKEN_REVOKED")
    assert await _codes(client, other_device) == _all(401, "TOKEN_REVOKED")
    assert await _codes(client, fresh) == _all(200, "")
    relogin = await client.post(
        "/auth/login", json={"email": user.email, "password": "a new passphrase"}
    )
    assert relogin.status == 200


async def test_log_out_everywhere_reaches_other_nodes_within_the_cache_time(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    node_a = await aiohttp_client(make_app())
    node_b = await aiohttp_client(make_app())
    user = await create_user(database, settings)
    assert await _codes(node_b, user.token) == _all(200, "")  # node B caches the status
    assert (await node_a.post("/auth/logout-all", headers=auth(user.token))).status == 204
    assert await _codes(node_a, user.token) == _all(401, "TOKEN_REVOKED")  # at once
    started = time.monotonic()
    while (await node_b.get("/me", headers=auth(user.token))).status != 401:
        assert time.monotonic() - started < STATUS_CACHE_S + 10
        await asyncio.sleep(0.2)
    assert await _codes(node_b, user.token) == _all(401, "TOKEN_REVOKED")


async def test_a_token_without_a_version_is_refused(
    client: TestClient[Any, Any], database: Database, settings: Settings
) -> None:
    user = await create_user(database, settings)
    claims = jwt.decode(user.token, settings.jwt_secret, algorithms=["HS256"])
    del claims["ver"]
    legacy = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    assert (await client.get("/me", headers=auth(legacy))).status == 401
