"""Accounts: ``POST /auth/register``, ``POST /auth/login``, ``GET /me``.

Passwords are argon2id hashes (:mod:`api.passwords`). Login answers an unknown email exactly like
a wrong password (same code, same work), and is throttled per client, per (account, client) and,
far more loosely, per account (:class:`_LoginBudget`) → 429 ``RATE_LIMITED`` with
``Retry-After``; registrations have their own per-IP budget of the same size. Admin accounts
are never created over HTTP: ``kundlinow admin create``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import structlog
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.auth import Role, issue_token, require_user
from api.config import ApiSettings
from api.errors import ApiError
from api.keys import DATABASE, PASSWORDS, RATE_LIMITER, SETTINGS
from api.openapi import operation
from api.validation import parse_body
from core.db import Database
from core.errors import CodedError
from core.ratelimit import Decision, RateLimiter
from signalling.masking import mask

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
PASSWORD_MIN = 8
PASSWORD_MAX = 256
"""Long enough for any passphrase, short enough that hashing cannot be used to burn CPU."""


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[
    str,
    AfterValidator(_normalise_email),
    Field(max_length=254, pattern=EMAIL_PATTERN, examples=["asha@example.com"]),
]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    email: Email
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    display_name: str = Field(min_length=1, max_length=80)
    role: Literal["user", "consultant"] = Field(
        default="user", description="`consultant` also creates an (empty) astrologer profile"
    )


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    user: UserOut


class EmailTaken(CodedError):
    status = 409
    code = "EMAIL_TAKEN"


USER_COLUMNS = "id, email::text AS email, display_name, role, created_at"


def user_out(row: asyncpg.Record) -> UserOut:
    return UserOut(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        role=row["role"],
        created_at=row["created_at"],
    )


async def create_account(
    database: Database,
    *,
    email: str,
    password_hash: str,
    display_name: str,
    role: Role,
) -> UserOut:
    """Insert a user (and an empty profile for a consultant); :class:`EmailTaken` on a duplicate."""
    async with database.pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO users (email, password_hash, display_name, role)"
                f" VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}",
                email,
                password_hash,
                display_name,
                role,
            )
        except asyncpg.UniqueViolationError:
            raise EmailTaken("an account with this email already exists") from None
        if row is None:  # INSERT … RETURNING always returns the row
            raise RuntimeError("user insert returned no row")
        if role == "consultant":
            await conn.execute(
                "INSERT INTO consultant_profiles (user_id, display_name) VALUES ($1, $2)",
                row["id"],
                display_name,
            )
    return user_out(row)


def token_out(settings: ApiSettings, user: UserOut, version: int = 0) -> TokenOut:
    """A fresh access token of the account's current ``token_version``."""
    return TokenOut(
        access_token=issue_token(settings, user.id, user.role, version=version),
        expires_in=settings.jwt_ttl_s,
        user=user,
    )


def _rate_limited(decision: Decision, scope: str) -> ApiError:
    return ApiError(
        429,
        "RATE_LIMITED",
        "too many attempts; try again later",
        {"retry_after_s": decision.retry_after_s, "scope": scope},
        headers={"Retry-After": str(decision.retry_after_s)},
    )


KNOWN_CLIENT_S = 30 * 24 * 3600
"""How long a client that signed in to an account stays exempt from that account's
account-wide failure limit."""


class _LoginBudget:
    """The three login limits (docs/SECURITY.md):

    - per client: every attempt counts (``LOGIN_IP_LIMIT`` per ``LOGIN_WINDOW_SECONDS``);
    - per (account, client): failures count, a success clears them (``LOGIN_ACCOUNT_LIMIT``);
    - per account: failures from every client count (``LOGIN_ACCOUNT_WIDE_LIMIT`` per
      ``LOGIN_ACCOUNT_WIDE_WINDOW_SECONDS``, far higher and slower), and it never applies to a
      client that signed in to this account within :data:`KNOWN_CLIENT_S` — so an attacker
      spreading guesses over many addresses slows new sign-ins but cannot lock out the owner.
    """

    def __init__(
        self, limiter: RateLimiter, settings: ApiSettings, email: str, client: str
    ) -> None:
        self._limiter = limiter
        self._settings = settings
        self._pair = f"login:account:{email}:client:{client}"
        self._account = f"login:account:{email}"
        self._known = f"login:known:{email}:client:{client}"

    async def check(self) -> None:
        s = self._settings
        pair = await self._limiter.peek(self._pair, s.login_account_limit, s.login_window_s)
        if not pair.allowed:
            raise _rate_limited(pair, "account_client")
        # A limit of 1 as a remembered fact: refused means this client signed in before.
        known = not (await self._limiter.peek(self._known, 1, KNOWN_CLIENT_S)).allowed
        if not known:
            wide = await self._limiter.peek(
                self._account, s.login_account_wide_limit, s.login_account_wide_window_s
            )
            if not wide.allowed:
                raise _rate_limited(wide, "account")

    async def failed(self) -> None:
        s = self._settings
        await self._limiter.hit(self._pair, s.login_account_limit, s.login_window_s)
        await self._limiter.hit(
            self._account, s.login_account_wide_limit, s.login_account_wide_window_s
        )

    async def succeeded(self) -> None:
        await self._limiter.reset(self._pair)
        await self._limiter.reset(self._known)  # restart the 30 days
        await self._limiter.hit(self._known, 1, KNOWN_CLIENT_S)


@routes.post("/auth/register")
@operation(
    "Create a caller or astrologer account and sign in",
    body=RegisterRequest,
    response=TokenOut,
    status=201,
    errors=(409, 429),
    tags=("accounts",),
)
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterRequest)
    settings = request.app[SETTINGS]
    # Each registration costs an argon2id hash: the same per-IP budget as logins (its own key).
    by_ip = await request.app[RATE_LIMITER].hit(
        f"register:ip:{request.remote}", settings.login_ip_limit, settings.login_window_s
    )
    if not by_ip.allowed:
        raise _rate_limited(by_ip, "ip")
    password_hash = await request.app[PASSWORDS].hash(body.password)
    user = await create_account(
        request.app[DATABASE],
        email=body.email,
        password_hash=password_hash,
        # Names are shown to the other party: no phone number or handle smuggled in them.
        display_name=mask(body.display_name.strip(), settings.signalling.masking).text
        or body.email,
        role=body.role,
    )
    log.info("account_registered", user_id=str(user.id), role=user.role)
    return web.json_response(token_out(settings, user).model_dump(mode="json"), status=201)


@routes.post("/auth/login")
@operation(
    "Exchange email and password for an access token",
    body=LoginRequest,
    response=TokenOut,
    errors=(401, 403, 429),
    tags=("accounts",),
)
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    settings = request.app[SETTINGS]
    limiter = request.app[RATE_LIMITER]
    window = settings.login_window_s
    by_ip = await limiter.hit(f"login:ip:{request.remote}", settings.login_ip_limit, window)
    if not by_ip.allowed:
        raise _rate_limited(by_ip, "ip")
    email = _normalise_email(body.email)
    budget = _LoginBudget(limiter, settings, email, str(request.remote))
    await budget.check()

    database = request.app[DATABASE]
    row = await database.pool.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash, token_version, disabled_at IS NOT NULL"
        " AS disabled FROM users WHERE email = $1",
        email,
    )
    verdict = await request.app[PASSWORDS].verify(
        row["password_hash"] if row else None, body.password
    )
    if row is None or not verdict.ok:
        await budget.failed()
        log.info("login_failed", known_account=row is not None)
        raise ApiError(401, "INVALID_CREDENTIALS", "email or password is wrong")
    await budget.succeeded()
    if row["disabled"]:
        log.info("login_refused_disabled", user_id=str(row["id"]))
        raise ApiError(403, "ACCOUNT_DISABLED", "this account is disabled")
    if verdict.new_hash is not None:
        await database.pool.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", row["id"], verdict.new_hash
        )
    user = user_out(row)
    structlog.contextvars.bind_contextvars(user_id=str(user.id))
    log.info("login_succeeded")
    return web.json_response(
        token_out(settings, user, row["token_version"]).model_dump(mode="json")
    )


@routes.get("/me")
@operation("The signed-in account", response=UserOut, auth="any", tags=("accounts",))
async def me(request: web.Request) -> web.Response:
    claims = await require_user(request)
    row = await request.app[DATABASE].pool.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", claims.user_id
    )
    if row is None:
        raise ApiError(401, "UNAUTHENTICATED", "this account no longer exists")
    return web.json_response(user_out(row).model_dump(mode="json"))
