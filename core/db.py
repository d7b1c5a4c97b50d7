"""The PostgreSQL connection pool and the migrations runner.

Migrations are plain SQL files ``NNNN_name.sql`` in a folder the caller names (the service's
are ``kundlinow/migrations/``). They are applied in number order, each in its own transaction,
under a session-level advisory lock, so any number of processes may call
:meth:`Database.migrate` at once and each migration is applied exactly once. The SHA-256 of each
applied file is recorded; a file edited after it was applied stops ``migrate`` and start-up
with :class:`MigrationEdited` (a landed migration is never edited: add a new one).
"""

from __future__ import annotations

import hashlib
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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationEdited(Exception):
    """A migration file differs from the one applied to this database."""

    def __init__(self, name: str, applied: str, on_disk: str) -> None:
        super().__init__(
            f"migration {name} was edited after it was applied (sha256 {applied[:12]} applied, "
            f"{on_disk[:12]} on disk): restore it and add a new migration instead"
        )
        self.name = name


_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""
# Added after 0010 had landed: rows applied before it get the file's hash on first sight.
_ADD_CHECKSUM = "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text"


def _check(migrations: Sequence[Migration], applied: dict[int, str | None]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.sha256:
            raise MigrationEdited(migration.name, recorded, migration.sha256)


async def _applied(conn: asyncpg.Connection) -> dict[int, str | None]:
    rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations")
    return {r["version"]: r["sha256"] for r in rows}


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
                await conn.execute(_CREATE_TABLE)
                await conn.execute(_ADD_CHECKSUM)
                applied = await _applied(conn)
                _check(pending_source, applied)
                for migration in pending_source:
                    if migration.version in applied:
                        if applied[migration.version] is None:
                            await conn.execute(
                                "UPDATE schema_migrations SET sha256 = $2 WHERE version = $1",
                                migration.version, migration.sha256,
                            )
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, sha256)"
                            " VALUES ($1, $2, $3)",
                            migration.version, migration.name, migration.sha256,
                        )
                    log.info("migration_applied", migration=migration.name)
                    applied_now.append(migration.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied_now

    async def verify(self) -> None:
        """Raise :class:`MigrationEdited` if an applied migration differs from its file."""
        async with self.pool.acquire() as conn:
            has_checksums = await conn.fetchval(
                "SELECT count(*) = 1 FROM information_schema.columns"
                " WHERE table_name = 'schema_migrations' AND column_name = 'sha256'"
                " AND table_schema = current_schema()"
            )
            if has_checksums:
                _check(self.migrations, await _applied(conn))

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
    migrated when ``migrate`` (else its applied migrations verified), closed on exit."""
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
            else:
                await database.verify()
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
