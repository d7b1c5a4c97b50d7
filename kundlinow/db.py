"""The PostgreSQL connection pool and the migrations runner.

Migrations are plain SQL files ``kundlinow/migrations/NNNN_name.sql``. They are applied in number
order, each in its own transaction, under a session-level advisory lock, so any number of
processes may call :meth:`Database.migrate` at once and each migration is applied exactly once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import asyncpg
import structlog

from kundlinow.config import Settings
from kundlinow.embedded_pg import EmbeddedPostgres

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 0x6B756E646C69  # "kundli": one constant shared by every process
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    """The leading number of the file name; applied in ascending order."""
    name: str
    """The file name, recorded in ``schema_migrations``."""
    sql: str


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
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

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Self:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=60
        )
        assert pool is not None  # create_pool returns None only when called without await
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    async def migrate(self, migrations: list[Migration] | None = None) -> list[str]:
        """Apply pending migrations; returns the names applied by this call."""
        pending_source = discover_migrations() if migrations is None else migrations
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
        return [m.name for m in discover_migrations() if m.version not in done]


@asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Database]:
    """The configured database (the embedded server when ``DATABASE_URL`` is unset), migrated
    when ``migrate`` (default: ``settings.migrate_on_start``), closed on exit."""
    embedded: EmbeddedPostgres | None = None
    dsn = settings.database_url
    if dsn is None:
        embedded = EmbeddedPostgres(settings.embedded_pg_dir)
        dsn = await embedded.start()
    try:
        database = await Database.connect(
            dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        try:
            if settings.migrate_on_start if migrate is None else migrate:
                await database.migrate()
            yield database
        finally:
            await database.close()
    finally:
        if embedded is not None:
            await embedded.stop()


_LOST = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and asyncpg's closed-connection error
    asyncpg.exceptions.AdminShutdownError,  # 57P01: pg_terminate_backend, fast shutdown
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, in recovery
    ConnectionError,
)


def is_connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the database connection going away, rather than the
    statement failing: the work it interrupted was rolled back and may be tried again."""
    seen: BaseException | None = exc
    for _ in range(8):  # a rollback on a dead connection raises from inside the first error
        if seen is None:
            return False
        if isinstance(seen, _LOST):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and "connection" in str(seen).lower():
            return True  # "cannot call ... : connection is closed"
        seen = seen.__cause__ or seen.__context__
    return False
