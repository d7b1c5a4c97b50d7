"""Birth data at rest: AES-256-GCM (NIST SP 800-38D) through ``cryptography``.

A sealed value is ``version (1 byte) ‖ nonce (12 random bytes) ‖ ciphertext+tag``. The row's
identity (profile id and owner id) is the associated data, so a sealed value copied into another
row does not open.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that does not open with this key (wrong key, tampered, or other row)."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("the birth data key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        if sealed[:1] != _VERSION:
            raise SealError("unknown sealed-value version")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], associated)
        except InvalidTag:
            raise SealError("sealed value does not open with this key") from None


def load_or_create_key(path: Path) -> bytes:
    """The development key kept in ``path`` (base64), created (mode 0600) on first use."""
    if path.is_file():
        key = base64.b64decode(path.read_text().strip(), validate=True)
        if len(key) != KEY_BYTES:
            raise ValueError(f"{path}: not a 32-byte base64 key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(key).decode() + "\n")
    return key
