"""Consultation history: a caller's or astrologer's own consultations (cursor pages), one
consultation's receipt, and the same listing of any user for admins.

Items have the shape of the admin consultation search (``GET /admin/consultations``) so the web
client renders both with one component; e-mail addresses are included for admins only.
Pages are keyset-paginated on ``(requested_at, id)`` descending: ``next_cursor`` names the last
row returned, so pages neither repeat nor skip rows when consultations start meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import DATABASE
from api.openapi import operation
from api.validation import parse_query

routes = web.RouteTableDef()


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the last page")


ITEM_SQL = """
SELECT c.id, c.state, c.mode, c.caller_id, cu.display_name AS caller_name,
       cu.email AS caller_email, c.consultant_id, COALESCE(p.display_name, au.display_name)
       AS astrologer_name, au.email AS astrologer_email, c.requested_at, c.started_at,
       c.ended_at, c.end_reason, c.rate_paise, c.minutes_charged, c.amount_charged_paise,
       c.promo_paise, c.refunded_paise, r.stars,
       EXISTS (SELECT 1 FROM consultation_birth_profiles b WHERE b.consultation_id = c.id)
       AS birth_shared
FROM consultations c
JOIN users cu ON cu.id = c.caller_id
JOIN users au ON au.id = c.consultant_id
LEFT JOIN consultant_profiles p ON p.user_id = c.consultant_id
LEFT JOIN consultation_ratings r ON r.consultation_id = c.id
"""


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def item(row: asyncpg.Record, *, emails: bool) -> dict[str, Any]:
    """One consultation as the history and the admin search list it."""

    def party(prefix: str, id_column: str) -> dict[str, Any]:
        out = {"id": str(row[id_column]), "name": row[f"{prefix}_name"]}
        if emails:
            out["email"] = row[f"{prefix}_email"]
        return out

    return {
        "id": str(row["id"]),
        "status": row["state"],
        "mode": row["mode"],
        "caller": party("caller", "caller_id"),
        "astrologer": party("astrologer", "consultant_id"),
        "requested_at": _ts(row["requested_at"]),
        "started_at": _ts(row["started_at"]),
        "ended_at": _ts(row["ended_at"]),
        "end_reason": row["end_reason"],
        "rate_paise": row["rate_paise"],
        "minutes_charged": row["minutes_charged"],
        "charged_paise": row["amount_charged_paise"],
        "promo_paise": row["promo_paise"],
        "refunded_paise": row["refunded_paise"],
        "stars": row["stars"],
        "birth_shared": row["birth_shared"],
    }


def _encode(row: asyncpg.Record) -> str:
    raw = json.dumps({"t": row["requested_at"].isoformat(), "id": str(row["id"])})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(data["t"]), uuid.UUID(data["id"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "INVALID_CURSOR", "cursor is not one this listing returned") from None


async def consultations_of(
    pool: asyncpg.Pool, user_id: uuid.UUID, query: HistoryQuery, *, emails: bool
) -> dict[str, Any]:
    """A page of the consultations ``user_id`` took part in (either side), newest first."""
    args: list[Any] = [user_id]
    where = "(c.caller_id = $1 OR c.consultant_id = $1)"
    if query.cursor:
        args.extend(_decode(query.cursor))
        where += " AND (c.requested_at, c.id) < ($2, $3)"
    rows = await pool.fetch(
        f"{ITEM_SQL} WHERE {where} ORDER BY c.requested_at DESC, c.id DESC LIMIT {query.limit + 1}",
        *args,
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "items": [item(r, emails=emails) for r in rows],
        "next_cursor": _encode(rows[-1]) if more else None,
    }


@routes.get("/me/consultations")
@operation(
    "My consultations (as caller or astrologer), newest first",
    query=HistoryQuery,
    auth=("user", "consultant"),
    errors=(400,),
    tags=("consultations",),
)
async def my_consultations(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("user", "consultant"))
    q = parse_query(request, HistoryQuery)
    page = await consultations_of(request.app[DATABASE].pool, claims.user_id, q, emails=False)
    return web.json_response(page)


@routes.get("/admin/users/{id}/consultations")
@operation(
    "Admin: a user's consultations, newest first",
    query=HistoryQuery,
    auth=("admin",),
    errors=(400, 404),
    tags=("admin",),
)
async def user_consultations(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    q = parse_query(request, HistoryQuery)
    page = await consultations_of(request.app[DATABASE].pool, path_id(request), q, emails=True)
    return web.json_response(page)


@routes.get("/consultations/{id}/receipt")
@operation(
    "The receipt of a consultation: minutes, rate, each charge and refund",
    auth="any",
    errors=(404,),
    tags=("consultations",),
)
async def receipt(request: web.Request) -> web.Response:
    """For its caller, its astrologer (who sees their share, not the caller's wallet) or admins."""
    claims = await require_user(request)
    cid = path_id(request)
    pool = request.app[DATABASE].pool
    row = await pool.fetchrow(f"{ITEM_SQL} WHERE c.id = $1", cid)
    if row is None or (
        claims.role != "admin" and claims.user_id not in (row["caller_id"], row["consultant_id"])
    ):
        raise ApiError(404, "NOT_FOUND", "consultation not found")
    charges = await pool.fetch(
        "SELECT minute, amount_paise, consultant_share_paise, source, charged_at,"
        " reversal_transfer_id IS NOT NULL AS reversed"
        " FROM consultation_charges WHERE consultation_id = $1 ORDER BY minute",
        cid,
    )
    refunds = await pool.fetch(
        "SELECT t.created_at, t.memo, e.amount_paise FROM ledger_transfers t"
        " JOIN ledger_entries e ON e.transfer_id = t.id"
        " JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'wallet'"
        " WHERE t.consultation_id = $1 AND t.kind = 'refund' ORDER BY t.created_at",
        cid,
    )
    astrologer_view = claims.user_id == row["consultant_id"]
    return web.json_response(
        {
            "consultation": item(row, emails=claims.role == "admin"),
            "charges": [
                {
                    "minute": c["minute"],
                    "amount_paise": c["amount_paise"],
                    "source": c["source"],
                    "charged_at": _ts(c["charged_at"]),
                    "reversed": c["reversed"],
                    **(
                        {"your_share_paise": c["consultant_share_paise"]} if astrologer_view else {}
                    ),
                }
                for c in charges
            ],
            "refunds": [
                {"at": _ts(r["created_at"]), "amount_paise": r["amount_paise"], "reason": r["memo"]}
                for r in refunds
            ],
        }
    )
