"""Token revocation: is the holder of a valid signature still allowed in?

A JWT stays cryptographically valid until it expires, so every authenticated request also asks
:class:`UserStatusCache` whether the account still exists, is not disabled, and whether the
token's ``ver`` claim equals the account's ``token_version`` (bumped by a password change, by
"log out everywhere" and by disabling: :func:`revoke_tokens`). Answers are cached for
:data:`STATUS_CACHE_S` per node: a revocation takes effect at once on the node that made it and
within that many seconds on the others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from api.errors import ApiError

STATUS_CACHE_S = 5.0
"""Seconds a user's status is reused without asking PostgreSQL (docs/SECURITY.md)."""
_MAX_ENTRIES = 100_000
"""Past this many cached users the cache starts over (bounds memory; a miss is one query)."""


@dataclass(frozen=True, slots=True)
class UserStatus:
    token_version: int
    """Tokens whose ``ver`` differs were revoked."""
    disabled: bool


class UserStatusCache:
    """``users.token_version`` and ``disabled_at`` per user, briefly cached."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_s: float = STATUS_CACHE_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._now = now
        self._entries: dict[uuid.UUID, tuple[float, UserStatus | None]] = {}

    async def status(self, user_id: uuid.UUID) -> UserStatus | None:
        """The account's status; ``None`` when it no longer exists."""
        now = self._now()
        cached = self._entries.get(user_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT token_version, disabled_at IS NOT NULL AS disabled FROM users WHERE id = $1",
            user_id,
        )
        found = None if row is None else UserStatus(row["token_version"], row["disabled"])
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[user_id] = (now, found)
        return found

    async def verify(self, user_id: uuid.UUID, token_version: int) -> None:
        """401 unless the account exists, is enabled and the token is of its current version."""
        status = await self.status(user_id)
        if status is None:
            raise ApiError(401, "UNAUTHENTICATED", "this account no longer exists")
        if status.disabled:
            raise ApiError(401, "ACCOUNT_DISABLED", "this account is disabled")
        if status.token_version != token_version:
            raise ApiError(401, "TOKEN_REVOKED", "this access token was revoked; sign in again")

    def forget(self, user_id: uuid.UUID) -> None:
        """Drop the cached status (after this node changed it)."""
        self._entries.pop(user_id, None)


async def revoke_tokens(
    executor: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID
) -> int | None:
    """Bump the user's token version: every token issued so far stops working. The new
    version; ``None`` for an unknown user. (Disabling bumps it by itself: migration 0012.)"""
    version: int | None = await executor.fetchval(
        "UPDATE users SET token_version = token_version + 1 WHERE id = $1"
        " RETURNING token_version",
        user_id,
    )
    return version
