"""Shared fixtures: a real PostgreSQL (a fresh database per test), Redis, the app.

Database choice: ``TEST_DATABASE_URL`` when set, else a PostgreSQL answering on 127.0.0.1:5432,
else the embedded pgserver. The schema is migrated once per session into a template database;
each test gets ``CREATE DATABASE … TEMPLATE`` of it, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, async_playwright

from core.db import Database
from core.embedded_pg import EmbeddedPostgres
from kundlinow.app import create_app
from kundlinow.config import Settings
from kundlinow.database import migrations
from recording.config import RecordingSettings
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.s3server import S3Server, moto_server

T = TypeVar("T")
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
TEST_JWT_SECRET = "test-secret-" + "x" * 32


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop in its own thread (for sync fixtures)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """Admin DSN of the PostgreSQL server the tests use."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if run_sync(_reachable(LOCAL_POSTGRES)):
        yield LOCAL_POSTGRES
        return
    with tempfile.TemporaryDirectory(prefix="kundlinow-pg-") as data_dir:
        embedded = EmbeddedPostgres(Path(data_dir))
        yield run_sync(embedded.start())
        run_sync(embedded.stop())


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _create_template(server_dsn: str, name: str) -> None:
    await _admin(server_dsn, f'CREATE DATABASE "{name}"')
    database = await Database.connect(
        with_database(server_dsn, name), min_size=1, max_size=1, migrations=migrations()
    )
    try:
        await database.migrate()
    finally:
        await database.close()


@pytest.fixture(scope="session")
def template_database(pg_server_dsn: str) -> Iterator[str]:
    """A migrated database that every test database is copied from."""
    name = f"kn_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    run_sync(_create_template(pg_server_dsn, name))
    yield name
    run_sync(_admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_dsn(pg_server_dsn: str, template_database: str) -> Iterator[str]:
    """DSN of a brand-new, migrated database used by this test alone."""
    name = f"kn_t_{uuid.uuid4().hex[:16]}"
    run_sync(_admin(pg_server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield with_database(pg_server_dsn, name)
    run_sync(_admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database(db_dsn: str) -> AsyncIterator[Database]:
    db = await Database.connect(db_dsn, min_size=1, max_size=10, migrations=migrations())
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def settings(db_dsn: str, tmp_path: Path) -> Settings:
    """Settings for an app on this test's database; change fields with ``dataclasses.replace``.

    Recordings go under the test's ``tmp_path``, not ``./var/recordings`` (``RECORDINGS_DIR``)."""
    return Settings(
        env="test",
        database_url=db_dsn,
        jwt_secret=TEST_JWT_SECRET,
        log_format="console",
        log_level="WARNING",
        recording=RecordingSettings(directory=tmp_path / "recordings"),
    )


AppFactory = Callable[..., web.Application]


@pytest.fixture
def make_app(settings: Settings) -> AppFactory:
    """``make_app(**overrides)`` builds the real app with some settings replaced."""

    def build(**overrides: Any) -> web.Application:
        return create_app(replace(settings, **overrides) if overrides else settings)

    return build


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    make_app: AppFactory,
) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app())


async def reachable_redis() -> str:
    """The test Redis URL; skips only when there is none and this is not CI (fails in CI)."""
    url = os.environ.get("TEST_REDIS_URL", LOCAL_REDIS)
    client = aioredis.from_url(url)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI and is unreachable at {url}: {exc}")
        pytest.skip(f"Redis unreachable at {url}")
    finally:
        await client.aclose()
    return url


@pytest.fixture
async def redis_url() -> str:
    """A reachable Redis (see :func:`reachable_redis`)."""
    return await reachable_redis()


@pytest.fixture
def redis_prefix() -> str:
    """A key/channel prefix no other test uses."""
    return f"kntest:{uuid.uuid4().hex[:12]}:"


def require_program(path: str, what: str, install: str) -> None:
    """Skip a test whose program is missing with one line saying what to install — or fail
    with that line in CI, where every program must be present."""
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return
    message = f"{what} is not installed ({path} missing): {install}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium (see tests/browser.py), closed after the test."""
    require_program(
        CHROMIUM, "Chromium", "apt-get install chromium, or set CHROMIUM_PATH to a Chromium"
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server as a child process for this test module (tests/s3server.py)."""
    with moto_server() as server:
        yield server
