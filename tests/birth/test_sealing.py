"""AES-GCM sealing of birth data and the key's configuration."""

from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from birth.sealing import Sealer, SealError, load_or_create_key
from kundlinow.config import ConfigError, from_env


def test_sealed_values_open_only_in_their_own_row_with_their_key() -> None:
    sealer = Sealer(b"k" * 32)
    sealed = sealer.seal(b'{"name":"Asha"}', b"row-1")
    assert b"Asha" not in sealed
    assert sealer.open(sealed, b"row-1") == b'{"name":"Asha"}'
    with pytest.raises(SealError):
        sealer.open(sealed, b"row-2")
    with pytest.raises(SealError):
        Sealer(b"j" * 32).open(sealed, b"row-1")
    assert sealer.seal(b"same", b"r") != sealer.seal(b"same", b"r")  # fresh nonce each time


def test_development_key_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "birth_data.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key


def test_production_refuses_to_start_without_a_key() -> None:
    base = {"ENV": "production", "JWT_SECRET": secrets.token_hex(32),
            "METRICS_TOKEN": secrets.token_hex(32)}
    with pytest.raises(ConfigError, match="BIRTH_DATA_KEY"):
        from_env(base)
    with pytest.raises(ConfigError, match="BIRTH_DATA_KEY"):
        from_env({**base, "BIRTH_DATA_KEY": base64.b64encode(b"short").decode()})
    key = base64.b64encode(bytes(range(32))).decode()
    settings = from_env({**base, "BIRTH_DATA_KEY": key})
    assert settings.birth_data_key == bytes(range(32))
    assert key not in repr(settings)
