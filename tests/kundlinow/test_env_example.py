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


_COMPOSE_ENV_LINE = re.compile(r"^  ([A-Z][A-Z0-9_]+): (.*)$")
_SUBSTITUTION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::([-?])([^}]*))?\}")
GENERATED = "3f9c1be07d2a4e58b6c0f1a29d7e84b5c3a06f1e92d847b0a5c6e3f7019b2d48"


def _compose_server_env(dotenv: dict[str, str]) -> dict[str, str]:
    """The server's environment as ``docker compose`` builds it from ``.env`` (the x-secrets
    block, with ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` substituted)."""
    text = (REPO / "docker-compose.yml").read_text()
    block = text.split("x-secrets: &app-env\n", 1)[1].split("\n\n", 1)[0]

    def substitute(match: re.Match[str]) -> str:
        name, kind, arg = match.group(1), match.group(2), match.group(3)
        value = dotenv.get(name, "")
        if not value and kind == "?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return value or (arg if kind == "-" else "")

    env = {}
    for line in block.splitlines():
        found = _COMPOSE_ENV_LINE.match(line)
        if found:
            env[found.group(1)] = _SUBSTITUTION.sub(substitute, found.group(2)).strip('"')
    return env


def test_compose_with_the_copied_example_runs_production() -> None:
    """``cp .env.example .env`` then the documented secrets: the container is production."""
    dotenv = {k: v for k, v in dotenv_values(REPO / ".env.example").items() if v is not None}
    dotenv.update(
        JWT_SECRET=GENERATED, METRICS_TOKEN=GENERATED[::-1], TURN_SECRET=GENERATED,
        BIRTH_DATA_KEY="AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
    )
    image_env = {"ENV": "production", "HOST": "0.0.0.0"}  # the Dockerfile's ENV lines
    settings = from_env({**image_env, **_compose_server_env(dotenv)})
    assert settings.is_production
    # ENV=development in .env must not leak through either.
    leaked = _compose_server_env({**dotenv, "ENV": "development"})
    assert from_env({**image_env, **leaked}).is_production


def test_the_example_does_not_select_an_environment() -> None:
    values = dotenv_values(REPO / ".env.example")
    assert "ENV" not in values, "ENV in .env.example is read by docker compose and `serve`"
