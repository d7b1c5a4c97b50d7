"""Migrations: applied once, in order, whoever runs them concurrently."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from core.db import Database, Migration, MigrationEdited
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


async def test_checksums_recorded_backfilled_and_an_edit_refused(database: Database) -> None:
    async with database.pool.acquire() as conn:
        recorded = dict(await conn.fetch("SELECT name, sha256 FROM schema_migrations"))
    assert recorded == {m.name: m.sha256 for m in migrations()}
    async with database.pool.acquire() as conn:  # as applied before checksums existed
        await conn.execute("UPDATE schema_migrations SET sha256 = NULL WHERE version = 1")
    assert await database.migrate(migrations()) == []
    async with database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT sha256 FROM schema_migrations WHERE version = 1") == (
            migrations()[0].sha256
        )
    first = migrations()[0]
    edited = replace(first, sql=first.sql + "\n-- edited after landing\n")
    with pytest.raises(MigrationEdited) as refused:
        await database.migrate([edited, *migrations()[1:]])
    assert refused.value.name == "0001_init.sql"
    await database.verify()  # the files as they are still match


def test_an_edited_migration_stops_migrate_and_serve(db_dsn: str) -> None:
    """The recorded hash no longer matches 0001 (as if its file had been edited): both
    commands exit 1 with one line naming the file, and serve never listens."""

    async def tamper() -> None:
        db = await Database.connect(db_dsn, min_size=1, max_size=1)
        async with db.pool.acquire() as conn:
            await conn.execute("UPDATE schema_migrations SET sha256 = repeat('0', 64)"
                               " WHERE version = 1")
        await db.close()

    run_sync(tamper())
    env = {**os.environ, "DATABASE_URL": db_dsn, "LOG_FORMAT": "json", "HOST": "127.0.0.1",
           "PORT": "0", "MIGRATE_ON_START": "false"}
    env.pop("REDIS_URL", None)
    for command in ("migrate", "serve"):
        done = subprocess.run(
            [sys.executable, "-m", "kundlinow", command],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("kundlinow: migration 0001_init.sql was edited"), done.stderr
        assert done.stderr.count("0001_init.sql") == 1, done.stderr
