"""The migrated schema equals the checked-in snapshot (regenerate: see schema_snapshot.py)."""

from __future__ import annotations

import difflib

from tests.kundlinow.schema_snapshot import SNAPSHOT, dump_schema


def test_migrated_schema_matches_the_snapshot(db_dsn: str) -> None:
    schema = dump_schema(db_dsn)
    expected = SNAPSHOT.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), schema.splitlines(keepends=True),
            "tests/kundlinow/schema.sql", "migrated",
        )
    )
    assert not diff, (
        "the migrated schema differs from tests/kundlinow/schema.sql; if the change is meant,"
        " run `python -m tests.kundlinow.schema_snapshot --write` and commit it:\n" + diff
    )
