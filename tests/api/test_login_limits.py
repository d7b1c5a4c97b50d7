"""Login limits cannot be used to lock the owner out of their account (issue 11, point 14).

Clients are told apart by ``X-Forwarded-For`` from a trusted proxy (the test client connects
from 127.0.0.1, which is trusted here).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from core.db import Database
from core.forwarded import parse_networks
from kundlinow.config import Settings
from tests.conftest import AppFactory
from tests.factories import DEFAULT_PASSWORD, create_user

OWNER = "198.51.100.7"


async def _login(client: TestClient[Any, Any], email: str, password: str, ip: str) -> int:
    response = await client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
    )
    status: int = response.status
    return status


async def test_an_attacker_elsewhere_cannot_lock_out_the_owner(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    client = await aiohttp_client(make_app(trusted_proxies=parse_networks("127.0.0.0/8")))
    user = await create_user(database, settings)
    attacker = [await _login(client, user.email, f"guess-{n:04d}", "203.0.113.66")
                for n in range(30)]
    # The attacker's own (account, client) budget runs out ...
    assert attacker[:5] == [401] * 5 and set(attacker[5:]) == {429}
    # ... and the owner, from their address, still signs in with the right password.
    assert await _login(client, user.email, DEFAULT_PASSWORD, OWNER) == 200


async def test_a_distributed_attack_cannot_lock_out_a_client_that_signed_in_before(
    aiohttp_client: Any, make_app: AppFactory, database: Database, settings: Settings
) -> None:
    client = await aiohttp_client(
        make_app(
            trusted_proxies=parse_networks("127.0.0.0/8"),
            login_account_wide_limit=20,
        )
    )
    user = await create_user(database, settings)
    assert await _login(client, user.email, DEFAULT_PASSWORD, OWNER) == 200
    # Guesses from 10 addresses, 4 each: under every per-client limit, over the account's.
    for host in range(10):
        for n in range(4):
            status = await _login(client, user.email, f"guess-{n}", f"192.0.2.{host}")
            assert status in (401, 429)
    # A new client is now slowed down (the account-wide limit) ...
    assert await _login(client, user.email, DEFAULT_PASSWORD, "192.0.2.200") == 429
    # ... but the owner's known client is not.
    assert await _login(client, user.email, DEFAULT_PASSWORD, OWNER) == 200
