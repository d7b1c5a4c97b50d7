"""Ending sessions: change password, log out everywhere, disable an account (admins).

Each bumps the account's token version (api/revocation.py), so every access token issued before
stops working on REST, TURN credential requests and the signalling socket. Password change and
"log out everywhere" answer with nothing to reuse: the client signs in again, except that a
password change returns a fresh token for the device that made it.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.accounts import PASSWORD_MAX, PASSWORD_MIN, USER_COLUMNS, TokenOut, token_out, user_out
from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.openapi import operation
from api.revocation import revoke_tokens
from api.validation import parse_body
from kundlinow import audit
from kundlinow.keys import DATABASE, PASSWORDS, SETTINGS, USER_STATUS

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


class AccountStatusOut(BaseModel):
    user_id: str
    disabled: bool
    token_version: int


@routes.post("/auth/logout-all")
@operation(
    "Log out everywhere: every access token of this account stops working",
    status=204,
    content_type=None,
    auth="any",
    tags=("accounts",),
)
async def logout_all(request: web.Request) -> web.Response:
    claims = await require_user(request)
    await revoke_tokens(request.app[DATABASE].pool, claims.user_id)
    request.app[USER_STATUS].forget(claims.user_id)
    log.info("logged_out_everywhere")
    return web.Response(status=204)


@routes.post("/me/password")
@operation(
    "Change the password; every other session is signed out, this one gets a new token",
    body=PasswordChange,
    response=TokenOut,
    auth="any",
    errors=(403,),
    tags=("accounts",),
)
async def change_password(request: web.Request) -> web.Response:
    claims = await require_user(request)
    body = await parse_body(request, PasswordChange)
    database, passwords = request.app[DATABASE], request.app[PASSWORDS]
    row = await database.pool.fetchrow(
        f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1", claims.user_id
    )
    if row is None:
        raise ApiError(401, "UNAUTHENTICATED", "this account no longer exists")
    if not (await passwords.verify(row["password_hash"], body.current_password)).ok:
        raise ApiError(403, "INVALID_CREDENTIALS", "the current password is wrong")
    new_hash = await passwords.hash(body.new_password)
    async with database.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", claims.user_id, new_hash
        )
        version = await revoke_tokens(conn, claims.user_id)
    request.app[USER_STATUS].forget(claims.user_id)
    log.info("password_changed")
    token = token_out(request.app[SETTINGS], user_out(row), version or 0)
    return web.json_response(token.model_dump(mode="json"))


async def _set_disabled(request: web.Request, disable: bool) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    user_id = path_id(request, "user_id")
    if disable and user_id == claims.user_id:
        raise ApiError(409, "CANNOT_DISABLE_SELF", "an admin cannot disable their own account")
    pool = request.app[DATABASE].pool
    async with pool.acquire() as conn, conn.transaction():
        version = await revoke_tokens(conn, user_id, disable=disable)
        if version is None:
            raise ApiError(404, "NOT_FOUND", "no such user")
        action = "account_disabled" if disable else "account_enabled"
        await audit.record(conn, claims.user_id, action, "user", str(user_id))
    request.app[USER_STATUS].forget(user_id)
    body = AccountStatusOut(user_id=str(user_id), disabled=disable, token_version=version)
    return web.json_response(body.model_dump())


@routes.post("/admin/users/{user_id}/disable")
@operation(
    "Disable an account: it cannot sign in and every token it holds stops working",
    response=AccountStatusOut,
    auth=("admin",),
    errors=(404, 409),
    tags=("accounts",),
)
async def disable_account(request: web.Request) -> web.Response:
    return await _set_disabled(request, True)


@routes.post("/admin/users/{user_id}/enable")
@operation(
    "Enable a disabled account (its old tokens stay revoked)",
    response=AccountStatusOut,
    auth=("admin",),
    errors=(404,),
    tags=("accounts",),
)
async def enable_account(request: web.Request) -> web.Response:
    return await _set_disabled(request, False)
