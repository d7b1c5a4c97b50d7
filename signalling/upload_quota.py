"""Upload quotas: how many chat images, and how many bytes, one consultation and one user may
store (issue 11, point 11: one consultation once stored 100 MiB in 2 s).

The check and the insert share one transaction that holds transaction-level advisory locks on
the consultation and on the uploader (always in that order, so two uploads cannot deadlock), so
concurrent uploads cannot all pass a check that only one of them fits in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class UploadQuota:
    consultation_count: int = 20
    """Images one consultation may hold, from both parties together."""
    consultation_bytes: int = 25 * 1024 * 1024
    """Bytes one consultation may hold."""
    user_count: int = 100
    """Images one user may upload per ``user_window_s`` (across consultations)."""
    user_bytes: int = 100 * 1024 * 1024
    """Bytes one user may upload per ``user_window_s``."""
    user_window_s: int = 24 * 3600


class UploadQuotaExceeded(Exception):
    """The upload would exceed a quota. ``scope`` is ``consultation`` (413: final for this
    consultation) or ``user`` (429: ``retry_after_s`` until the window frees room)."""

    def __init__(self, scope: str, limit: str, value: int, retry_after_s: int | None = None):
        super().__init__(f"{scope} upload quota exceeded ({limit} {value})")
        self.scope = scope
        self.limit = limit
        self.value = value
        self.retry_after_s = retry_after_s


async def reserve(
    conn: asyncpg.Connection, quota: UploadQuota, consultation_id: UUID, uploader_id: UUID,
    size: int,
) -> None:
    """Raise :class:`UploadQuotaExceeded` unless an upload of ``size`` bytes fits; call inside
    the transaction that then inserts it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('upload:c:' || $1::uuid::text, 0)),"
        " pg_advisory_xact_lock(hashtextextended('upload:u:' || $2::uuid::text, 0))",
        consultation_id, uploader_id,
    )
    room = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS bytes"
        " FROM chat_uploads WHERE consultation_id = $1",
        consultation_id,
    )
    if room["n"] + 1 > quota.consultation_count:
        raise UploadQuotaExceeded("consultation", "count", quota.consultation_count)
    if room["bytes"] + size > quota.consultation_bytes:
        raise UploadQuotaExceeded("consultation", "bytes", quota.consultation_bytes)
    user = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS bytes,"
        " extract(epoch FROM min(created_at) + make_interval(secs => $2) - now()) AS frees_in"
        " FROM chat_uploads WHERE uploader_id = $1"
        " AND created_at > now() - make_interval(secs => $2)",
        uploader_id, quota.user_window_s,
    )
    retry = max(1, math.ceil(float(user["frees_in"] or 1)))
    if user["n"] + 1 > quota.user_count:
        raise UploadQuotaExceeded("user", "count", quota.user_count, retry)
    if user["bytes"] + size > quota.user_bytes:
        raise UploadQuotaExceeded("user", "bytes", quota.user_bytes, retry)
