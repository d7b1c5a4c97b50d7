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
        ("MEDIA_CONGESTION_CONTROL", "sometimes"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}:"):
        from_env({name: value})


def test_production_requires_a_strong_jwt_secret() -> None:
    with pytest.raises(ConfigError, match=r"^JWT_SECRET:"):
        from_env({"ENV": "production", "JWT_SECRET": "short"})


ENV_EXAMPLE_JWT = next(
    line.split("=", 1)[1]
    for line in (REPO / ".env.example").read_text().splitlines()
    if line.lstrip("# ").startswith("JWT_SECRET=")
)


@pytest.mark.parametrize(
    "secret",
    [
        ENV_EXAMPLE_JWT,  # the placeholder everyone can read
        "a" * 32,
        "abcdefghij" * 4,  # ten distinct characters, but one repeated unit
        "ab" * 32,
        "0123456789" + "0" * 30,
        "my-jwt-secret-example-for-production-use",
        "test-secret-" + "x" * 32,
    ],
)
def test_production_refuses_placeholder_and_low_entropy_secrets(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"^JWT_SECRET:"):
        from_env({"ENV": "production", "JWT_SECRET": secret, "METRICS_TOKEN": STRONG})
    with pytest.raises(ConfigError, match=r"^TURN_SECRET:"):
        from_env({"ENV": "production", "JWT_SECRET": STRONG, "TURN_SECRET": secret,
                  "METRICS_TOKEN": STRONG})


STRONG = "3f9c1be07d2a4e58b6c0f1a29d7e84b5c3a06f1e92d847b0a5c6e3f7019b2d48"
"""What ``openssl rand -hex 32`` prints."""
BIRTH_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
"""Base64 of 32 bytes (BIRTH_DATA_KEY, required in production too)."""


@pytest.mark.parametrize(
    "secret",
    [STRONG, "Zx8_qLr2-Vt0pWmN4kYs9bHc7dJe1fGa3iUo5nEl6Q", "9f2b6c1e0a7d4b38e5c2f1a0b9d8c7e6"],
)
def test_production_accepts_generated_secrets(secret: str) -> None:
    settings = from_env({"ENV": "production", "JWT_SECRET": secret, "TURN_SECRET": secret,
                         "METRICS_TOKEN": STRONG, "BIRTH_DATA_KEY": BIRTH_KEY})
    assert settings.jwt_secret == secret


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


def test_congestion_control_is_opt_in() -> None:
    assert from_env({}).media.congestion.enabled is False
    assert from_env({"MEDIA_CONGESTION_CONTROL": "on"}).media.congestion.enabled is True
    assert from_env({"MEDIA_CONGESTION_CONTROL": "off"}).media.congestion.enabled is False


def test_one_udp_port_is_opt_in_and_needs_host_addresses() -> None:
    assert from_env({}).media.udp_port is None  # default: a socket per peer connection
    media = from_env({"MEDIA_UDP_PORT": "7882", "MEDIA_ICE_HOSTS": "10.0.0.5"}).media
    assert (media.udp_port, media.ice_host_addresses) == (7882, ("10.0.0.5",))
    with pytest.raises(ConfigError, match=r"^MEDIA_UDP_PORT.*ice_host_addresses"):
        from_env({"MEDIA_UDP_PORT": "7882"})
    with pytest.raises(ConfigError, match=r"^MEDIA_UDP_PORT.*range"):
        from_env(
            {
                "MEDIA_UDP_PORT": "7882",
                "MEDIA_ICE_HOSTS": "10.0.0.5",
                "MEDIA_UDP_PORT_MIN": "40000",
                "MEDIA_UDP_PORT_MAX": "40100",
            }
        )


def test_recording_storage_s3_reads_the_bucket_and_the_aws_variables() -> None:
    settings = from_env({
        "RECORDING_STORAGE": "s3", "RECORDING_S3_BUCKET": "recs", "RECORDING_S3_PREFIX": "/a/b/",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "ap-south-1",
        "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "AWS_SESSION_TOKEN": "tok",
    }).recording
    assert settings.storage == "s3" and settings.s3 is not None
    s3 = settings.s3
    assert (s3.bucket, s3.prefix, s3.endpoint, s3.region) == (
        "recs", "a/b", "http://127.0.0.1:9000", "ap-south-1")
    assert (s3.access_key_id, s3.secret_access_key, s3.session_token) == ("AKID", "s3cr3t", "tok")
    assert "s3cr3t" not in repr(settings) and "tok" not in repr(settings)
    assert from_env({}).recording.storage == "local" and from_env({}).recording.s3 is None


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"RECORDING_STORAGE": "ftp"}, "RECORDING_STORAGE"),
        ({"RECORDING_STORAGE": "s3"}, "RECORDING_S3_BUCKET"),
        ({"RECORDING_STORAGE": "s3", "RECORDING_S3_BUCKET": "b", "AWS_ENDPOINT_URL": "s3.local"},
         "AWS_ENDPOINT_URL"),
    ],
)
def test_bad_recording_storage_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}:"):
        from_env(env)
