"""``.env.example`` documents every variable ``kundlinow/config.py`` reads (and only those)."""

from __future__ import annotations

import re
from pathlib import Path

from dotenv import dotenv_values

from kundlinow.config import from_env

REPO = Path(__file__).resolve().parents[2]
_READS = re.compile(
    r"""(?:_parse|_text)\(\s*env,\s*"([A-Z][A-Z0-9_]+)"|env\.get\(\s*"([A-Z][A-Z0-9_]+)\""""
)
_MENTIONED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]+)=", re.MULTILINE)


def test_every_variable_read_is_documented() -> None:
    source = (REPO / "kundlinow" / "config.py").read_text()
    read = {a or b for a, b in _READS.findall(source)}
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} <= read
    documented = set(_MENTIONED.findall((REPO / ".env.example").read_text()))
    assert not read - documented, f"add to .env.example: {sorted(read - documented)}"
    assert not documented - read, f"documented but never read: {sorted(documented - read)}"


def test_the_example_values_are_valid() -> None:
    values = {k: v for k, v in dotenv_values(REPO / ".env.example").items() if v is not None}
    settings = from_env(values)
    assert settings.database_url is None and settings.port == 8080
