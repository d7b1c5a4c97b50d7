"""Configuration is validated at start; a bad value names its variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kundlinow.config import ConfigError, from_env

REPO = Path(__file__).resolve().parents[2]


def test_defaults_need_no_configuration() -> None:
    settings = from_env({})
    assert settings.database_url is None and settings.redis_url is None
    assert settings.port == 8080


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://x"),
        ("ENV", "staging"),
        ("MIGRATE_ON_START", "maybe"),
        ("JWT_TTL_SECONDS", "-5"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}:"):
        from_env({name: value})


def test_production_requires_a_strong_jwt_secret() -> None:
    with pytest.raises(ConfigError, match=r"^JWT_SECRET:"):
        from_env({"ENV": "production", "JWT_SECRET": "short"})


def test_server_refuses_to_start_with_one_clear_line() -> None:
    env = {**os.environ, "PORT": "not-a-port"}
    proc = subprocess.run(
        [sys.executable, "-m", "kundlinow", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    expected = "kundlinow: configuration error: PORT: must be an integer, got 'not-a-port'"
    assert proc.stderr.strip() == expected
