"""Builders for rows that many tests need; they write through the real database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from argon2 import PasswordHasher

from api.auth import Role, issue_token
from billing.config import BillingSettings
from billing.consultations import ConsultationService
from core.bus import LocalBus
from core.clock import SystemClock
from core.db import Database
from kundlinow.config import Settings
from tests.billing.helpers import grant
from tests.signalling.wsclient import WsClient, connect

DEFAULT_PASSWORD = "correct horse battery staple"


@cache
def _password_hash(password: str) -> str:
    # Hashing is deliberately slow; tests reuse one hash per distinct password.
    return PasswordHasher().hash(password)


@dataclass(frozen=True, slots=True)
class TestUser:
    __test__ = False  # not a test class, whatever its name says
    id: uuid.UUID
    email: str
    role: Role
    token: str


def auth(token: str) -> dict[str, str]:
    """Request headers that authenticate as the holder of ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def create_user(
    database: Database,
    settings: Settings,
    role: Role = "user",
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    rates: tuple[int, int, int] = (1000, 1500, 2000),
    languages: tuple[str, ...] = ("en", "hi"),
    specialities: tuple[str, ...] = ("vedic",),
) -> TestUser:
    """A user (with a consultant profile when ``role == "consultant"``) and a valid token."""
    email = (email or f"{role}-{uuid.uuid4().hex[:10]}@example.test").lower()
    name = email.split("@")[0]
    async with database.pool.acquire() as conn, conn.transaction():
        user_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            email,
            _password_hash(password),
            name,
            role,
        )
        if role == "consultant":
            await conn.execute(
                "INSERT INTO consultant_profiles (user_id, display_name, languages, specialities,"
                " rate_chat_paise, rate_voice_paise, rate_video_paise)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                user_id,
                name,
                list(languages),
                list(specialities),
                *rates,
            )
    return TestUser(user_id, email, role, issue_token(settings, user_id, role))


async def online_astrologer(
    server: Any, database: Database, settings: Settings
) -> tuple[TestUser, WsClient]:
    """An astrologer with a socket open on ``server`` (a test client of the app): online, so
    given TURN credentials (turn/grants.py). Keep the socket for as long as that should hold."""
    user = await create_user(database, settings, "consultant")
    return user, await connect(server, "/ws", user.token)


async def active_consultation(
    database: Database, settings: Settings, mode: str = "chat"
) -> uuid.UUID:
    """A consultation accepted by its astrologer (so ``active``), between two fresh users, made
    through the billing service as the API makes it."""
    caller = await create_user(database, settings)
    astrologer = await create_user(database, settings, "consultant")
    await grant(database, caller.id, 1_000_000)
    service = ConsultationService(database, LocalBus(), SystemClock(), BillingSettings())
    consultation = await service.request(caller.id, astrologer.id, mode)
    await service.accept(consultation.id, astrologer.id)
    return consultation.id
