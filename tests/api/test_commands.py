"""``kundlinow admin create`` and ``kundlinow seed-demo``, run as the real command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from api.seed import DEMO_ACCOUNTS
from core.db import Database
from kundlinow.cli import build_parser
from kundlinow.config import Settings
from tests.conftest import run_sync

REPO = Path(__file__).resolve().parents[2]


def _kundlinow(
    db_dsn: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_dsn, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json"}
    return subprocess.run(
        [sys.executable, "-m", "kundlinow", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_in_process(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(settings, args)
    return result


def test_admin_create_reads_stdin_and_refuses_a_taken_email(
    db_dsn: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"root-{uuid.uuid4().hex[:8]}@Example.test"
    created = _kundlinow(db_dsn, "admin", "create", "--email", email, stdin="from-stdin-pw\n")
    assert created.returncode == 0, created.stderr
    assert email.lower() in created.stdout

    async def stored() -> Any:
        db = await Database.connect(db_dsn, min_size=1, max_size=1)
        try:
            return await db.pool.fetchrow(
                "SELECT role, password_hash FROM users WHERE email = $1", email.lower()
            )
        finally:
            await db.close()

    row = run_sync(stored())
    assert row["role"] == "admin"
    assert PasswordHasher().verify(row["password_hash"], "from-stdin-pw")

    again = _run_in_process(settings, "admin", "create", "--email", email, "--password", "x" * 12)
    assert again == 1
    assert "EMAIL_TAKEN" in capsys.readouterr().err


def test_admin_create_refuses_bad_input(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    short = _run_in_process(settings, "admin", "create", "--email", "a@b.co", "--password", "short")
    assert short == 2 and "password" in capsys.readouterr().err
    bad_email = _run_in_process(
        settings, "admin", "create", "--email", "nope", "--password", "x" * 10
    )
    assert bad_email == 2 and "email" in capsys.readouterr().err


def test_seed_demo_is_refused_in_production(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    production = replace(settings, env="production")
    assert _run_in_process(production, "seed-demo") == 2
    assert "production" in capsys.readouterr().err


async def test_seed_demo_is_idempotent_and_its_logins_work(
    client: TestClient[Any, Any], db_dsn: str, database: Database
) -> None:
    first = _kundlinow(db_dsn, "seed-demo")
    assert first.returncode == 0, first.stderr
    for account in DEMO_ACCOUNTS:
        assert account.email in first.stdout and account.password in first.stdout
    counts = await database.pool.fetchrow(
        "SELECT (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM consultant_profiles) AS profiles"
    )
    second = _kundlinow(db_dsn, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert "0 created" in second.stdout
    assert counts == await database.pool.fetchrow(
        "SELECT (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM consultant_profiles) AS profiles"
    )
    assert counts is not None and counts["profiles"] == 4
    caller = next(a for a in DEMO_ACCOUNTS if a.role == "user")
    login = await client.post(
        "/auth/login", json={"email": caller.email, "password": caller.password}
    )
    assert login.status == 200
    listing = await (await client.get("/consultants?mode=video")).json()
    assert len(listing["items"]) == 2  # one astrologer offers no video, one only chat
