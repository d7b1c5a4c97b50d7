"""The audit log: who did what to which subject, append-only, in PostgreSQL.

Money actions record inside their own transaction (pass the connection); others pass the pool.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg


async def record(
    executor: asyncpg.Connection | asyncpg.Pool,
    actor_id: uuid.UUID | None,
    action: str,
    subject_type: str,
    subject_id: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit record (``action`` in snake_case past tense, e.g. ``observer_joined``)."""
    await executor.execute(
        "INSERT INTO audit_log (actor_id, action, subject_type, subject_id, details)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        actor_id,
        action,
        subject_type,
        subject_id,
        json.dumps(dict(details or {})),
    )
