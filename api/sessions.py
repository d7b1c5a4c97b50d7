"""Ending sessions: change password, log out everywhere.

Each bumps the account's token version (api/revocation.py), so every access token issued before
stops working on REST, TURN credential requests and the signalling socket. Disabling an account
(``kundlinow admin disable``, the admin console) bumps it too, in the database (migration 0012).
"Log out everywhere" leaves nothing to reuse; a password change returns a fresh token for the
device that made it.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.accounts import PASSWORD_MAX, PASSWORD_MIN, USER_COLUMNS, TokenOut, token_out, user_out
from api.auth import require_user
from api.errors import ApiError
from api.keys import DATABASE, PASSWORDS, SETTINGS, USER_STATUS
from api.openapi import operation
from api.revocation import revoke_tokens
from api.validation import parse_body

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)


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
