"""What production refuses (issue 11, point 22): public /metrics, usable demo accounts."""

from __future__ import annotations

from typing import Any

import pytest

from api.passwords import Passwords
from api.seed import DEMO_ACCOUNTS, seed_accounts
from core.db import Database
from kundlinow.config import ConfigError, from_env
from tests.conftest import AppFactory
from tests.factories import auth

GENERATED = "3f9c1be07d2a4e58b6c0f1a29d7e84b5c3a06f1e92d847b0a5c6e3f7019b2d48"


def test_production_does_not_start_with_a_public_metrics_endpoint() -> None:
    with pytest.raises(ConfigError, match=r"^METRICS_TOKEN: required in production"):
        from_env({"ENV": "production", "JWT_SECRET": GENERATED})
    with pytest.raises(ConfigError, match=r"^METRICS_TOKEN:"):
        from_env({"ENV": "production", "JWT_SECRET": GENERATED, "METRICS_TOKEN": "x" * 40})
    settings = from_env(
        {"ENV": "production", "JWT_SECRET": GENERATED, "METRICS_TOKEN": GENERATED[::-1],
         "BIRTH_DATA_KEY": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}
    )
    assert settings.metrics_token == GENERATED[::-1]


async def test_demo_accounts_are_disabled_when_production_starts(
    aiohttp_client: Any, make_app: AppFactory, database: Database
) -> None:
    passwords = Passwords(workers=1)
    try:
        await seed_accounts(database, passwords)
    finally:
        passwords.close()
    development = await aiohttp_client(make_app())
    admin = DEMO_ACCOUNTS[0]
    login = await development.post(
        "/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert login.status == 200
    token = (await login.json())["access_token"]

    production = await aiohttp_client(make_app(env="production", metrics_token=GENERATED))
    for account in DEMO_ACCOUNTS:
        refused = await production.post(
            "/auth/login", json={"email": account.email, "password": account.password}
        )
        assert refused.status == 403, account.email
        assert (await refused.json())["error"]["code"] == "ACCOUNT_DISABLED"
    assert (await production.get("/me", headers=auth(token))).status == 401
    metrics = await production.get("/metrics")
    assert metrics.status == 401
