"""Migrations: applied once, in order, whoever runs them concurrently."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from core.db import Database, Migration
from kundlinow.database import migrations
from tests.conftest import _admin, run_sync, with_database

REPO = Path(__file__).resolve().parents[2]


def test_migrations_are_numbered_uniquely_and_in_order() -> None:
    found = migrations()
    versions = [m.version for m in found]
    assert versions == sorted(set(versions))
    assert found[0].name == "0001_init.sql"


async def test_concurrent_migrate_applies_each_migration_once(pg_server_dsn: str) -> None:
    name = f"kn_mig_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(pg_server_dsn, name)
    # A migration that is not idempotent: applying it twice would fail on the second run.
    probe = Migration(
        9999,
        "9999_probe.sql",
        "CREATE TABLE migration_probe (id int); INSERT INTO migration_probe VALUES (1);",
    )
    try:
        databases = [await Database.connect(dsn, min_size=1, max_size=2) for _ in range(4)]
        results = await asyncio.gather(
            *(db.migrate([*migrations(), probe]) for db in databases)
        )
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(m.name for m in [*migrations(), probe])
        async with databases[0].pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM migration_probe") == 1
        for db in databases:
            await db.close()
    finally:
        await _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_processes_migrating_at_once_apply_each_migration_once(pg_server_dsn: str) -> None:
    name = f"kn_mig_{uuid.uuid4().hex[:12]}"
    run_sync(_admin(pg_server_dsn, f'CREATE DATABASE "{name}"'))
    dsn = with_database(pg_server_dsn, name)
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "json"}
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "kundlinow", "migrate"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        applied_lines = sum(err.count('"migration_applied"') for _, err in outputs)
        assert applied_lines == len(migrations())

        async def versions() -> list[int]:
            db = await Database.connect(dsn, min_size=1, max_size=1)
            async with db.pool.acquire() as conn:
                rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            await db.close()
            return [r["version"] for r in rows]

        assert run_sync(versions()) == [m.version for m in migrations()]
    finally:
        run_sync(_admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
