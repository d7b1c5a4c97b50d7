"""The hub is composed in one place (``kundlinow.app``): one Redis client per process."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.keys import BUS, HUB, RATE_LIMITER, REDIS
from core.db import Database
from kundlinow.app import create_app
from kundlinow.config import Settings
from tests.factories import create_user
from tests.signalling.wsclient import connect

SIGNALLING = Path(__file__).resolve().parents[2] / "signalling"


def _calls_and_imports(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text(), str(path))
    calls: set[str] = set()
    imports: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            calls.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
    return calls, imports


def test_signalling_opens_no_redis_client_and_imports_no_api() -> None:
    modules = sorted(SIGNALLING.rglob("*.py"))
    assert modules
    for path in modules:
        calls, imports = _calls_and_imports(path)
        name = path.relative_to(SIGNALLING.parent)
        assert not calls & {"from_url", "Redis", "StrictRedis", "ConnectionPool"}, name
        assert "api" not in imports, f"{name} imports the API layer"


async def test_one_redis_client_per_process(
    aiohttp_client: Any, settings: Settings, database: Database, redis_url: str,
    redis_prefix: str,    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``REDIS_URL`` set, starting the whole app creates exactly one Redis client, and the
    bus, the rate limiter, presence and media routing all hold it."""
    created: list[aioredis.Redis] = []
    original = aioredis.Redis.__init__

    def counting_init(self: aioredis.Redis, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(aioredis.Redis, "__init__", counting_init)
    configured = replace(settings, redis_url=redis_url, redis_prefix=redis_prefix)
    client = await aiohttp_client(create_app(configured))
    app = client.app
    assert created == [app[REDIS]]
    assert app[BUS] is not None and app[RATE_LIMITER] is not None and app[HUB].media is not None
    user = await create_user(database, configured)
    socket = await connect(client, "/ws", user.token)  # presence is written through Redis
    assert (await socket.ok("ping"))["server_time"]
    await socket.close()
    assert created == [app[REDIS]]
