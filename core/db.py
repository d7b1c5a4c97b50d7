"""The PostgreSQL connection pool and the migrations runner.

Migrations are plain SQL files ``NNNN_name.sql`` in a folder the caller names (the service's
are ``kundlinow/migrations/``). They are applied in number order, each in its own transaction,
under a session-level advisory lock, so any number of processes may call
:meth:`Database.migrate` at once and each migration is applied exactly once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import asyncpg
import structlog

from core.embedded_pg import EmbeddedPostgres

log = structlog.get_logger(__name__)

MIGRATION_LOCK_KEY = 0x6B756E646C69  # "kundli": one constant shared by every process
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    """The leading number of the file name; applied in ascending order."""
    name: str
    """The file name, recorded in ``schema_migrations``."""
    sql: str


def discover_migrations(directory: Path) -> list[Migration]:
    """Every migration file in ``directory``, in order; duplicate numbers are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"two migrations numbered {version}: {found[version].name}, {path.name}"
            )
        found[version] = Migration(version, path.name, path.read_text())
    return [found[v] for v in sorted(found)]


class Database:
    """An asyncpg pool plus the schema it expects."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, migrations: Sequence[Migration] = ()) -> None:
        self.pool = pool
        self.dsn = dsn
        self.migrations = tuple(migrations)
        """The schema this process expects: applied by :meth:`migrate`, checked by ``/readyz``."""

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        migrations: Sequence[Migration] = (),
    ) -> Self:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=60
        )
        assert pool is not None  # create_pool returns None only when called without await
        return cls(pool, dsn, migrations)

    async def close(self) -> None:
        await self.pool.close()

    async def migrate(self, migrations: Sequence[Migration] | None = None) -> list[str]:
        """Apply pending migrations (default: this database's); the names applied by this call."""
        pending_source = self.migrations if migrations is None else migrations
        applied_now: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await conn.execute(
                    """CREATE TABLE IF NOT EXISTS schema_migrations (
                           version    integer PRIMARY KEY,
                           name       text NOT NULL,
                           applied_at timestamptz NOT NULL DEFAULT now())"""
                )
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
                for migration in pending_source:
                    if migration.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                    log.info("migration_applied", migration=migration.name)
                    applied_now.append(migration.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied_now

    async def pending_migrations(self) -> list[str]:
        """Names of migrations not yet applied (used by ``/readyz``)."""
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            done: set[int] = set()
            if exists:
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
        return [m.name for m in self.migrations if m.version not in done]


@asynccontextmanager
async def open_database(
    dsn: str | None,
    *,
    migrations: Sequence[Migration],
    migrate: bool,
    embedded_dir: Path,
    min_size: int = 1,
    max_size: int = 10,
) -> AsyncIterator[Database]:
    """The database at ``dsn`` (an embedded server under ``embedded_dir`` when ``None``),
    migrated when ``migrate``, closed on exit."""
    embedded: EmbeddedPostgres | None = None
    if dsn is None:
        embedded = EmbeddedPostgres(embedded_dir)
        dsn = await embedded.start()
    try:
        database = await Database.connect(
            dsn, min_size=min_size, max_size=max_size, migrations=migrations
        )
        try:
            if migrate:
                await database.migrate()
            yield database
        finally:
            await database.close()
    finally:
        if embedded is not None:
            await embedded.stop()
