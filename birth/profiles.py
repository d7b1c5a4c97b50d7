"""The birth-profile store: sealed rows in PostgreSQL and the one rule of who may read them.

Readers: the owner; an admin; the astrologer of a consultation the caller started with the
profile, while it is requested or live and afterwards in its history (a request the astrologer
rejected or let time out does not count as history). Every read by anyone but the owner is
audit-logged by the caller of :meth:`ProfileStore.authorize`. Deleting a profile deletes the row
(and, by cascade, its links to consultations): nothing is kept.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from birth.details import BirthDetails
from birth.errors import BirthError, forbidden, not_found
from birth.sealing import Sealer
from core.audit import record
from core.db import Database

MAX_PROFILES_PER_CALLER = 20
Access = Literal["owner", "admin", "astrologer"]

_ASTROLOGER_MAY_READ = """
SELECT EXISTS (
    SELECT 1 FROM consultation_birth_profiles l JOIN consultations c ON c.id = l.consultation_id
    WHERE l.profile_id = $1 AND c.consultant_id = $2
      AND (c.state IN ('requested', 'active') OR c.started_at IS NOT NULL))
"""


@dataclass(frozen=True, slots=True)
class Profile:
    id: uuid.UUID
    owner_id: uuid.UUID
    details: BirthDetails
    created_at: datetime
    updated_at: datetime


class ProfileStore:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._db = database
        self._sealer = sealer

    @staticmethod
    def _associated(profile_id: uuid.UUID, owner_id: uuid.UUID) -> bytes:
        return profile_id.bytes + owner_id.bytes

    def _seal(self, profile_id: uuid.UUID, owner_id: uuid.UUID, details: BirthDetails) -> bytes:
        plain = json.dumps(details.to_json(), separators=(",", ":")).encode()
        return self._sealer.seal(plain, self._associated(profile_id, owner_id))

    def _profile(self, row: asyncpg.Record) -> Profile:
        pid, owner = row["id"], row["owner_id"]
        plain = self._sealer.open(row["sealed"], self._associated(pid, owner))
        details = BirthDetails.from_json(json.loads(plain))
        return Profile(pid, owner, details, row["created_at"], row["updated_at"])

    async def create(self, owner_id: uuid.UUID, details: BirthDetails) -> Profile:
        pid = uuid.uuid4()
        async with self._db.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('birth:' || $1::uuid::text, 0))",
                owner_id,
            )
            count = await conn.fetchval(
                "SELECT count(*) FROM birth_profiles WHERE owner_id = $1", owner_id
            )
            if count >= MAX_PROFILES_PER_CALLER:
                raise BirthError(
                    409, "TOO_MANY_PROFILES", "delete a birth profile before adding another",
                    limit=MAX_PROFILES_PER_CALLER,
                )  # fmt: skip
            row = await conn.fetchrow(
                "INSERT INTO birth_profiles (id, owner_id, sealed) VALUES ($1, $2, $3) RETURNING *",
                pid,
                owner_id,
                self._seal(pid, owner_id, details),
            )
        return self._profile(row)

    async def list(self, owner_id: uuid.UUID) -> list[Profile]:
        rows = await self._db.pool.fetch(
            "SELECT * FROM birth_profiles WHERE owner_id = $1 ORDER BY created_at, id", owner_id
        )
        return [self._profile(r) for r in rows]

    async def get(self, profile_id: uuid.UUID) -> Profile:
        row = await self._db.pool.fetchrow("SELECT * FROM birth_profiles WHERE id = $1", profile_id)
        if row is None:
            raise not_found()
        return self._profile(row)

    async def replace(
        self, profile_id: uuid.UUID, owner_id: uuid.UUID, details: BirthDetails
    ) -> Profile:
        row = await self._db.pool.fetchrow(
            "UPDATE birth_profiles SET sealed = $3, updated_at = now()"
            " WHERE id = $1 AND owner_id = $2 RETURNING *",
            profile_id,
            owner_id,
            self._seal(profile_id, owner_id, details),
        )
        if row is None:
            raise not_found()
        return self._profile(row)

    async def delete(self, profile_id: uuid.UUID, owner_id: uuid.UUID) -> None:
        done = await self._db.pool.execute(
            "DELETE FROM birth_profiles WHERE id = $1 AND owner_id = $2", profile_id, owner_id
        )
        if done == "DELETE 0":
            raise not_found()

    async def owned(self, profile_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
        found: bool = await self._db.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM birth_profiles WHERE id = $1 AND owner_id = $2)",
            profile_id,
            owner_id,
        )
        return found

    async def of_consultation(self, consultation_id: uuid.UUID) -> uuid.UUID:
        found: uuid.UUID | None = await self._db.pool.fetchval(
            "SELECT profile_id FROM consultation_birth_profiles WHERE consultation_id = $1",
            consultation_id,
        )
        if found is None:
            raise not_found()
        return found

    async def authorize(
        self, profile_id: uuid.UUID, user_id: uuid.UUID, role: str, what: str
    ) -> Profile:
        """The profile if ``user_id`` may read it (403 otherwise); audits non-owner reads."""
        profile = await self.get(profile_id)
        access: Access | None = None
        if profile.owner_id == user_id:
            access = "owner"
        elif role == "admin":
            access = "admin"
        elif role == "consultant" and await self._db.pool.fetchval(
            _ASTROLOGER_MAY_READ, profile_id, user_id
        ):
            access = "astrologer"
        if access is None:
            await record(
                self._db.pool, user_id, "birth_profile_read_refused", "birth_profile",
                str(profile_id), {"what": what},
            )  # fmt: skip
            raise forbidden()
        if access != "owner":
            await record(
                self._db.pool, user_id, "birth_profile_read", "birth_profile", str(profile_id),
                {"what": what, "access": access},
            )  # fmt: skip
        return profile
