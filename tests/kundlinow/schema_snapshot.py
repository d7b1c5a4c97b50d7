"""The schema the migrations build, as normalised ``pg_dump --schema-only`` text.

``tests/kundlinow/schema.sql`` is the checked-in snapshot; ``test_schema_snapshot`` fails when
the migrated schema differs, so schema drift shows in review. After adding a migration::

    python -m tests.kundlinow.schema_snapshot --write

migrates a scratch database on the test server (``TEST_DATABASE_URL`` or the local one), dumps
it and rewrites the snapshot; review the diff like code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import uuid
from pathlib import Path

import pgserver

from core.db import Database
from kundlinow.database import migrations

SNAPSHOT = Path(__file__).with_name("schema.sql")
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DUMP = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
"""pgserver's pg_dump (a dependency, so always there, and one version for every machine: its
output is what the snapshot is compared against). It dumps servers up to its own major."""

_DROPPED = re.compile(
    r"^(--|SET |SELECT pg_catalog\.set_config|\\(un)?restrict )"
    # Column options pg_attver=<n> that the shared test server stamps with a per-database
    # number: not part of what the migrations define.
    r"|ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(pg_attver=\d+\);$"
)


def normalise(dump: str) -> str:
    """Comments, session settings and runs of blank lines removed; one trailing newline."""
    lines = [line.rstrip() for line in dump.splitlines() if not _DROPPED.match(line)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def dump_schema(dsn: str) -> str:
    done = subprocess.run(
        [str(PG_DUMP), "--schema-only", "--no-owner", "--no-privileges", f"--dbname={dsn}"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return normalise(done.stdout)


def _with_database(dsn: str, name: str) -> str:
    head, _, _ = dsn.rpartition("/")
    return f"{head}/{name}"


async def _scratch_schema(server_dsn: str) -> str:
    import asyncpg

    name = f"kn_snapshot_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = _with_database(server_dsn, name)
        database = await Database.connect(dsn, min_size=1, max_size=1, migrations=migrations())
        try:
            await database.migrate()
        finally:
            await database.close()
        return await asyncio.to_thread(dump_schema, dsn)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite tests/kundlinow/schema.sql")
    args = parser.parse_args()
    server = os.environ.get("TEST_DATABASE_URL") or LOCAL_POSTGRES
    schema = asyncio.run(_scratch_schema(server))
    if args.write:
        SNAPSHOT.write_text(schema)
        print(f"wrote {SNAPSHOT} ({len(schema.splitlines())} lines)")
        return 0
    same = SNAPSHOT.exists() and SNAPSHOT.read_text() == schema
    print("schema matches the snapshot" if same else "schema differs from the snapshot")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
