"""TurnSettings validation: bad values are refused when the configuration is built."""

from __future__ import annotations

import pytest

from kundlinow.config import ConfigError, from_env
from turn.config import MAX_TTL_S, TurnSettings, parse_urls


def test_defaults_mean_no_turn() -> None:
    settings = TurnSettings()
    assert not settings.enabled
    assert settings.ttl_s == 3600


def test_ttl_above_24_hours_is_refused() -> None:
    assert TurnSettings(ttl_s=MAX_TTL_S).ttl_s == 86400
    with pytest.raises(ValueError, match="TURN_TTL_S"):
        TurnSettings(ttl_s=MAX_TTL_S + 1)
    with pytest.raises(ValueError, match="TURN_TTL_S"):
        TurnSettings(ttl_s=0)


def test_turn_url_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="TURN_SECRET"):
        TurnSettings(urls=("turn:turn.example.com:3478",))
    # STUN needs no credentials.
    assert TurnSettings(urls=("stun:turn.example.com:3478",)).enabled


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="TURN_URLS"):
        TurnSettings(urls=("https://turn.example.com",), secret="s")


def test_urls_split_by_kind() -> None:
    settings = TurnSettings(
        urls=parse_urls(
            "stun:t.example:3478, turn:t.example:3478?transport=udp turns:t.example:5349"
        ),
        secret="s",
    )
    assert settings.stun_urls == ("stun:t.example:3478",)
    assert settings.turn_urls == ("turn:t.example:3478?transport=udp", "turns:t.example:5349")
    assert parse_urls("  ") == ()


def test_settings_from_environment() -> None:
    settings = from_env(
        {
            "TURN_URLS": "turn:t.example:3478?transport=udp,turns:t.example:5349",
            "TURN_SECRET": "s3cret",
            "TURN_TTL_S": "900",
            "TURN_REALM": "t.example",
        }
    ).turn
    assert settings == TurnSettings(
        urls=("turn:t.example:3478?transport=udp", "turns:t.example:5349"),
        secret="s3cret",
        ttl_s=900,
        realm="t.example",
    )
    assert from_env({}).turn == TurnSettings()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"TURN_TTL_S": "86401"}, "TURN_TTL_S"),
        ({"TURN_TTL_S": "soon"}, "TURN_TTL_S"),
        ({"TURN_URLS": "turn:t.example:3478"}, "TURN_SECRET"),
        ({"TURN_URLS": "http://t.example", "TURN_SECRET": "s"}, "TURN_URLS"),
        (
            {"ENV": "production", "JWT_SECRET": "9f2b6c1e0a7d4b38e5c2f1a0b9d8c7e6f5",
             "TURN_SECRET": "short"},
            "TURN_SECRET",
        ),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        from_env(env)


def test_secret_is_not_in_the_repr() -> None:
    settings = TurnSettings(urls=("turn:t:3478",), secret="do-not-log-me")
    assert "do-not-log-me" not in repr(settings)
