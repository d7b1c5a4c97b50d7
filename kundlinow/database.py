"""This service's database: ``core.db`` opened with the configured settings and migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core import db
from core.db import Database, Migration, discover_migrations
from kundlinow.config import Settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def migrations() -> list[Migration]:
    """Every migration of the service's schema, in order."""
    return discover_migrations(MIGRATIONS_DIR)


@asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[Database]:
    """The configured database (the embedded server when ``DATABASE_URL`` is unset), migrated
    when ``migrate`` (default: ``settings.migrate_on_start``), closed on exit."""
    async with db.open_database(
        settings.database_url,
        migrations=migrations(),
        migrate=settings.migrate_on_start if migrate is None else migrate,
        embedded_dir=settings.embedded_pg_dir,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
    ) as database:
        yield database
