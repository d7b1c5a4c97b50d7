"""Demo data for ``kundlinow seed-demo``: an admin, four astrologers and a caller.

Idempotent: accounts that exist (by email) are left alone, so running it again changes nothing.
Their passwords are published (README, this file): a production server disables them at start
(:func:`disable_demo_accounts`).
Other packages add their part (e.g. the caller's wallet top-up) through :data:`SEED_HOOK_MODULES`:
each listed module has ``async def seed_demo(database, settings, accounts) -> list[str]``,
returning lines to print.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from api.auth import Role
from api.config import ApiSettings
from api.passwords import Passwords
from core.db import Database

SEED_HOOK_MODULES: tuple[str, ...] = ("billing.seed",)
"""Modules whose ``seed_demo(database, settings, accounts)`` runs after the accounts exist."""


@dataclass(frozen=True, slots=True)
class DemoProfile:
    bio: str
    languages: tuple[str, ...]
    specialities: tuple[str, ...]
    rates: tuple[int, int, int]
    """Chat, voice, video in paise per minute; 0 = mode not offered."""
    rating: tuple[int, int]
    """(sum of stars, number of ratings)."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    password: str
    display_name: str
    role: Role
    profile: DemoProfile | None = None


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("admin@kundlinow.local", "kundlinow-admin", "Demo Admin", "admin"),
    DemoAccount(
        "vivek@kundlinow.local",
        "kundlinow-astro",
        "Acharya Vivek Sharma",
        "consultant",
        DemoProfile(
            "Vedic astrologer for 18 years: kundli reading, matching and muhurat.",
            ("hi", "en"),
            ("vedic", "kundli matching", "muhurat"),
            (1500, 2500, 4000),
            (576, 120),
        ),
    ),
    DemoAccount(
        "meera@kundlinow.local",
        "kundlinow-astro",
        "Meera Iyer",
        "consultant",
        DemoProfile(
            "Tarot and numerology; career and relationship questions.",
            ("ta", "en", "kn"),
            ("tarot", "numerology"),
            (1000, 1800, 3000),
            (231, 50),
        ),
    ),
    DemoAccount(
        "raghunath@kundlinow.local",
        "kundlinow-astro",
        "Pandit Raghunath Joshi",
        "consultant",
        DemoProfile(
            "Vastu and Vedic remedies. Voice and chat only.",
            ("hi", "mr"),
            ("vastu", "vedic"),
            (2000, 3000, 0),
            (88, 20),
        ),
    ),
    DemoAccount(
        "sana@kundlinow.local",
        "kundlinow-astro",
        "Sana Kapoor",
        "consultant",
        DemoProfile(
            "Palmistry and tarot over chat.",
            ("en", "hi", "pa"),
            ("palmistry", "tarot"),
            (800, 0, 0),
            (0, 0),
        ),
    ),
    DemoAccount("caller@kundlinow.local", "kundlinow-caller", "Demo Caller", "user"),
)


@dataclass(frozen=True, slots=True)
class SeededAccount:
    account: DemoAccount
    user_id: str
    created: bool
    """False when the account already existed (its password may have been changed since)."""


async def seed_accounts(
    database: Database,
    passwords: Passwords,
    accounts: Sequence[DemoAccount] = DEMO_ACCOUNTS,
) -> list[SeededAccount]:
    """Create the missing demo accounts (and astrologer profiles); never touches existing ones."""
    seeded: list[SeededAccount] = []
    for account in accounts:
        existing = await database.pool.fetchval(
            "SELECT id FROM users WHERE email = $1", account.email
        )
        if existing is not None:
            seeded.append(SeededAccount(account, str(existing), created=False))
            continue
        password_hash = await passwords.hash(account.password)
        async with database.pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "INSERT INTO users (email, password_hash, display_name, role)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING id",
                account.email,
                password_hash,
                account.display_name,
                account.role,
            )
            if user_id is None:  # created concurrently by another seeder
                user_id = await conn.fetchval(
                    "SELECT id FROM users WHERE email = $1", account.email
                )
                seeded.append(SeededAccount(account, str(user_id), created=False))
                continue
            if account.profile is not None:
                profile = account.profile
                await conn.execute(
                    "INSERT INTO consultant_profiles (user_id, display_name, bio, languages,"
                    " specialities, rate_chat_paise, rate_voice_paise, rate_video_paise,"
                    " rating_sum, rating_count)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT (user_id) DO NOTHING",
                    user_id,
                    account.display_name,
                    profile.bio,
                    list(profile.languages),
                    list(profile.specialities),
                    *profile.rates,
                    *profile.rating,
                )
        seeded.append(SeededAccount(account, str(user_id), created=True))
    return seeded


async def seed_demo(
    database: Database, settings: ApiSettings, passwords: Passwords
) -> tuple[list[SeededAccount], list[str]]:
    """The demo accounts, then every hook; returns the accounts and the hooks' lines."""
    seeded = await seed_accounts(database, passwords)
    lines: list[str] = []
    for module_name in SEED_HOOK_MODULES:
        hook = importlib.import_module(module_name).seed_demo
        lines.extend(await hook(database, settings, seeded))
    return seeded, lines


async def disable_demo_accounts(database: Database) -> list[str]:
    """Disable every demo account that exists and revoke its tokens; the emails disabled.

    Production calls this at start, so a database that was once seeded (or a copy of a
    development one) never serves logins whose passwords anyone can read.
    """
    rows = await database.pool.fetch(
        "UPDATE users SET disabled_at = now(), token_version = token_version + 1"
        " WHERE email = ANY($1::text[]) AND disabled_at IS NULL RETURNING email::text AS email",
        [account.email for account in DEMO_ACCOUNTS],
    )
    return sorted(row["email"] for row in rows)
