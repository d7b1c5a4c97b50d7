"""Fixtures for hub tests: a running app (real sockets, real PostgreSQL) and funded users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.factories import TestUser, create_user
from tests.signalling.wsclient import WsClient, connect


@dataclass
class World:
    server: Any
    database: Database
    settings: Settings

    async def user(self, role: str = "user", *, paise: int = 0) -> TestUser:
        user = await create_user(self.database, self.settings, role)  # type: ignore[arg-type]
        if paise:
            await grant(self.database, user.id, paise)
        return user

    async def ws(self, user: TestUser) -> WsClient:
        return await connect(self.server, "/ws", user.token)


WorldFactory = Callable[..., Awaitable[World]]


def world_factory(aiohttp_client: Any, settings: Settings, database: Database) -> WorldFactory:
    """``await make_world(request_timeout_s=..., minute_seconds=...)``: signalling and billing
    settings by name; the internal billing ticker is off unless ``tick_interval_seconds`` is set."""

    async def build(**changes: Any) -> World:
        sig = {k: v for k, v in changes.items() if hasattr(settings.signalling, k)}
        bil = {k: v for k, v in changes.items() if hasattr(settings.billing, k)}
        bil.setdefault("internal_ticker", "tick_interval_seconds" in bil)
        configured = replace(
            settings,
            signalling=replace(settings.signalling, **sig),
            billing=replace(settings.billing, **bil),
        )
        from kundlinow.app import create_app

        server = await aiohttp_client(create_app(configured))
        return World(server, database, configured)

    return build


@pytest.fixture
def make_world(aiohttp_client: Any, settings: Settings, database: Database) -> WorldFactory:
    return world_factory(aiohttp_client, settings, database)
