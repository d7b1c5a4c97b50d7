"""Admin: users — search, disable/enable, approve an astrologer, commission override.

Every change is audit-logged (``core.audit``) in the transaction that makes it. A disabled
account cannot log in (``ACCOUNT_DISABLED``); tokens it already holds expire with ``JWT_TTL``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import DATABASE
from api.openapi import operation
from api.validation import parse_body, parse_query
from core import audit

routes = web.RouteTableDef()


class UserQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None, max_length=100, description="e-mail or name substring, case-insensitive"
    )
    role: Literal["user", "consultant", "admin"] | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


class CommissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commission_percent: int | None = Field(
        ..., ge=0, le=100, description="the platform's share of this astrologer; null: default"
    )


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


_SELECT = """
SELECT u.id, u.email, u.display_name, u.role, u.created_at, u.disabled_at,
       p.approved_at, p.commission_percent
FROM users u LEFT JOIN consultant_profiles p ON p.user_id = u.id
"""


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _user(row: asyncpg.Record) -> dict[str, Any]:
    astrologer = row["role"] == "consultant"
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "name": row["display_name"],
        "role": row["role"],
        "created_at": _ts(row["created_at"]),
        "disabled": row["disabled_at"] is not None,
        "approved": row["approved_at"] is not None if astrologer else None,
        "commission_percent": row["commission_percent"] if astrologer else None,
    }


def _cursor(row: asyncpg.Record) -> str:
    raw = json.dumps({"t": row["created_at"].isoformat(), "id": str(row["id"])})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(data["t"]), uuid.UUID(data["id"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "INVALID_CURSOR", "cursor is not one this listing returned") from None


@routes.get("/admin/users")
@operation(
    "Admin: users, newest first; search by e-mail or name",
    query=UserQuery,
    auth=("admin",),
    errors=(400,),
    tags=("admin",),
)
async def list_users(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    q = parse_query(request, UserQuery)
    conditions: list[str] = []
    args: list[Any] = []
    if q.q:
        args.append("%" + q.q.lower().replace("\\", "\\\\").replace("%", "\\%") + "%")
        conditions.append(f"(u.email LIKE ${len(args)} OR lower(u.display_name) LIKE ${len(args)})")
    if q.role:
        args.append(q.role)
        conditions.append(f"u.role = ${len(args)}")
    if q.cursor:
        args.extend(_after(q.cursor))
        conditions.append(f"(u.created_at, u.id) < (${len(args) - 1}, ${len(args)})")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await request.app[DATABASE].pool.fetch(
        f"{_SELECT} {where} ORDER BY u.created_at DESC, u.id DESC LIMIT {q.limit + 1}", *args
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return web.json_response(
        {"items": [_user(r) for r in rows], "next_cursor": _cursor(rows[-1]) if more else None}
    )


@routes.get("/admin/users/{id}")
@operation("Admin: one user", auth=("admin",), errors=(404,), tags=("admin",))
async def get_user(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    row = await request.app[DATABASE].pool.fetchrow(f"{_SELECT} WHERE u.id = $1", path_id(request))
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such user")
    return web.json_response(_user(row))


async def _change(
    request: web.Request, sql: str, action: str, details: dict[str, Any], *args: Any
) -> web.Response:
    """Run one UPDATE on the user ``{id}`` (``$1``) and audit it, in one transaction."""
    claims = await require_user(request, roles=("admin",))
    user_id = path_id(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(sql, user_id, *args) is None:
            raise ApiError(404, "NOT_FOUND", "no such user (or not an astrologer)")
        await audit.record(conn, claims.user_id, action, "user", str(user_id), details)
        row = await conn.fetchrow(f"{_SELECT} WHERE u.id = $1", user_id)
    return web.json_response(_user(row))


@routes.post("/admin/users/{id}/disable")
@operation(
    "Admin: disable an account (it can no longer log in)",
    body=ReasonRequest,
    auth=("admin",),
    errors=(404, 409),
    tags=("admin",),
)
async def disable_user(request: web.Request) -> web.Response:
    body = (
        await parse_body(request, ReasonRequest)
        if request.can_read_body
        else ReasonRequest(reason="")
    )
    claims = await require_user(request, roles=("admin",))
    if path_id(request) == claims.user_id:
        raise ApiError(409, "CANNOT_DISABLE_SELF", "an admin cannot disable their own account")
    return await _change(
        request,
        "UPDATE users SET disabled_at = COALESCE(disabled_at, now()) WHERE id = $1 RETURNING id",
        "user_disabled",
        {"reason": body.reason},
    )


@routes.post("/admin/users/{id}/enable")
@operation("Admin: enable a disabled account", auth=("admin",), errors=(404,), tags=("admin",))
async def enable_user(request: web.Request) -> web.Response:
    return await _change(
        request,
        "UPDATE users SET disabled_at = NULL WHERE id = $1 RETURNING id",
        "user_enabled",
        {},
    )


@routes.post("/admin/users/{id}/approve")
@operation(
    "Admin: approve an astrologer (shown as verified)",
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def approve_astrologer(request: web.Request) -> web.Response:
    return await _change(
        request,
        "UPDATE consultant_profiles SET approved_at = COALESCE(approved_at, now())"
        " WHERE user_id = $1 RETURNING user_id",
        "astrologer_approved",
        {},
    )


@routes.put("/admin/users/{id}/commission")
@operation(
    "Admin: set or clear an astrologer's commission override (applies to new consultations)",
    body=CommissionRequest,
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def set_commission(request: web.Request) -> web.Response:
    body = await parse_body(request, CommissionRequest)
    return await _change(
        request,
        "UPDATE consultant_profiles SET commission_percent = $2 WHERE user_id = $1"
        " RETURNING user_id",
        "commission_changed",
        {"commission_percent": body.commission_percent},
        body.commission_percent,
    )
