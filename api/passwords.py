"""Password hashing with argon2id (RFC 9106), off the event loop.

Hashing is deliberately slow (tens of milliseconds of CPU and 64 MiB per hash at the defaults),
so it runs in this object's own small thread pool: the event loop keeps serving other requests,
a burst of logins cannot take more than ``workers × 64 MiB`` of memory, and it cannot starve the
default executor that other components use for their blocking calls.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    """The password matches the hash."""
    new_hash: str | None = None
    """A fresh hash when the stored one used weaker parameters (store it); else ``None``."""


class Passwords:
    """argon2id hashing with the library's RFC 9106 low-memory profile by default."""

    def __init__(self, hasher: PasswordHasher | None = None, workers: int | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 2, thread_name_prefix="argon2"
        )

    def close(self) -> None:
        """Stop the worker threads (after the queued hashes finish)."""
        self._pool.shutdown(wait=True)

    def _dummy(self) -> str:
        # Verified against when the account does not exist, so an unknown email costs the same
        # time as a wrong password and the two cannot be told apart.
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash("no such account: constant-time dummy")
        return self._dummy_hash

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    def _verify(self, stored: str | None, password: str) -> Verification:
        try:
            self._hasher.verify(stored or self._dummy(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(False)
        if stored is None:
            return Verification(False)
        if self._hasher.check_needs_rehash(stored):
            return Verification(True, self._hasher.hash(password))
        return Verification(True)

    async def verify(self, stored: str | None, password: str) -> Verification:
        """Check ``password`` against ``stored`` (``None``: unknown account, always fails after
        spending the same effort)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify, stored, password
        )
