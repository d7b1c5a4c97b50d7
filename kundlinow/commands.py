"""Account subcommands: ``kundlinow admin create|disable|enable`` and ``kundlinow seed-demo``
(the API's data).

Admins exist only through ``admin create`` (never over HTTP). The password comes from
``--password``, else from standard input (one line) when it is not a terminal, else from a
prompt (asked twice).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import sys
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from api.accounts import PASSWORD_MAX, PASSWORD_MIN, Email, EmailTaken, create_account
from api.keys import DATABASE, PASSWORDS, SETTINGS
from api.passwords import Passwords
from api.seed import SeededAccount, seed_demo
from core import audit
from kundlinow.config import Settings
from kundlinow.database import open_database


def register(commands: Any) -> None:
    admin = commands.add_parser("admin", help="manage admin accounts")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_commands.add_parser("create", help="create an admin account")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password",
        default=None,
        help="the password (else read from stdin, or prompted for on a terminal)",
    )
    create.add_argument("--display-name", default="Administrator")
    create.set_defaults(func=_admin_create)
    for name, disable, what in (
        ("disable", True, "disable an account: it cannot sign in, its tokens stop working"),
        ("enable", False, "enable a disabled account (its old tokens stay revoked)"),
    ):
        command = admin_commands.add_parser(name, help=what)
        command.add_argument("--email", required=True)
        command.set_defaults(func=functools.partial(_admin_set_disabled, disable=disable))

    seed = commands.add_parser(
        "seed-demo", help="create demo accounts (admin, astrologers, caller); idempotent"
    )
    seed.set_defaults(func=_seed_demo)


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password: str = args.password
        return password
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords differ")
    return first


def _admin_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        email = TypeAdapter(Email).validate_python(args.email)
    except ValidationError:
        print(f"kundlinow: not an email address: {args.email!r}", file=sys.stderr)
        return 2
    try:
        password = _read_password(args)
    except (ValueError, EOFError) as exc:
        print(f"kundlinow: {exc}", file=sys.stderr)
        return 2
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        print(
            f"kundlinow: the password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters",
            file=sys.stderr,
        )
        return 2

    async def run() -> str:
        passwords = Passwords(workers=1)
        try:
            password_hash = await passwords.hash(password)
        finally:
            passwords.close()
        async with open_database(settings) as database:
            user = await create_account(
                database,
                email=email,
                password_hash=password_hash,
                display_name=args.display_name,
                role="admin",
            )
        return str(user.id)

    try:
        user_id = asyncio.run(run())
    except EmailTaken:
        print(f"kundlinow: EMAIL_TAKEN: an account with {email} already exists", file=sys.stderr)
        return 1
    print(f"admin created: {email} (id {user_id})")
    return 0


def _admin_set_disabled(settings: Settings, args: argparse.Namespace, *, disable: bool) -> int:
    """Disabling bumps the token version in the database (migration 0012), so the account's
    tokens stop working on every node within the status cache time."""

    async def run() -> str | None:
        async with open_database(settings) as database, database.pool.acquire() as conn:
            async with conn.transaction():
                user_id = await conn.fetchval(
                    "UPDATE users SET disabled_at = CASE WHEN $2 THEN"
                    " coalesce(disabled_at, now()) END WHERE email = $1 RETURNING id",
                    args.email.strip().lower(), disable,
                )
                if user_id is None:
                    return None
                action = "account_disabled" if disable else "account_enabled"
                await audit.record(conn, None, action, "user", str(user_id), {"via": "cli"})
                return str(user_id)

    user_id = asyncio.run(run())
    if user_id is None:
        print(f"kundlinow: NOT_FOUND: no account with {args.email}", file=sys.stderr)
        return 1
    print(f"{'disabled' if disable else 'enabled'}: {args.email} (id {user_id})")
    return 0


def _seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    if settings.is_production:
        print("kundlinow: seed-demo is refused when ENV=production", file=sys.stderr)
        return 2

    async def run() -> tuple[list[Any], list[str]]:
        passwords = Passwords()
        try:
            async with open_database(settings) as database:
                return await seed_demo(database, settings, passwords)
        finally:
            passwords.close()

    seeded, lines = asyncio.run(run())
    print("\n".join(_demo_lines(seeded, lines)))
    return 0


def _demo_lines(seeded: list[SeededAccount], extra: list[str]) -> list[str]:
    created = sum(1 for s in seeded if s.created)
    out = [f"Demo accounts ({created} created, {len(seeded) - created} already there):"]
    width = max(len(s.account.email) for s in seeded)
    for s in seeded:
        role = {"consultant": "astrologer", "user": "caller"}.get(s.account.role, s.account.role)
        note = "" if s.created else "  (existed: password unchanged by this run)"
        out.append(f"  {role:<10}  {s.account.email:<{width}}  {s.account.password}{note}")
    return out + extra


async def seed_demo_on_startup(app: web.Application, *, lines: list[str]) -> None:
    """``kundlinow serve --demo``: seed inside the server (its database is already up) and
    leave the logins in ``lines`` for the banner printed once the server listens."""
    seeded, extra = await seed_demo(app[DATABASE], app[SETTINGS], app[PASSWORDS])
    lines.extend(_demo_lines(seeded, extra))
