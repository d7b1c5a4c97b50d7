"""Admin: the dashboard's numbers, live consultations, force end and the audit log."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.history import ITEM_SQL, item
from api.keys import CLOCK, CONSULTATIONS, DATABASE, PRESENCE
from api.openapi import operation
from api.validation import parse_body, parse_query
from billing.consultations import EndReason
from core import audit

routes = web.RouteTableDef()

MAX_ASTROLOGERS_COUNTED = 5000
"""The dashboard asks presence about at most this many astrologers (one lookup)."""

_TODAY_SQL = """
SELECT
  (SELECT COALESCE(sum(amount_paise), 0)::bigint FROM payment_orders
    WHERE status = 'paid' AND paid_at >= $1) AS recharges_paise,
  (SELECT COALESCE(sum(amount_paise), 0)::bigint FROM consultation_charges
    WHERE charged_at >= $1 AND reversal_transfer_id IS NULL AND source = 'wallet')
    AS charges_paise,
  (SELECT COALESCE(sum(e.amount_paise), 0)::bigint FROM ledger_transfers t
    JOIN ledger_entries e ON e.transfer_id = t.id
    JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'wallet'
    WHERE t.kind = 'refund' AND t.created_at >= $1) AS refunds_paise,
  (SELECT COALESCE(sum(e.amount_paise), 0)::bigint FROM ledger_entries e
    JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'platform_revenue'
    WHERE e.created_at >= $1) AS revenue_paise
"""


class ForceEndRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why (kept in the audit log)")


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_id: str | None = Field(None, max_length=100)
    action: str | None = Field(None, max_length=60)
    before: int | None = Field(None, ge=1, description="`next_before` of the last page")
    limit: int = Field(50, ge=1, le=200)


@routes.get("/admin/dashboard")
@operation(
    "Admin: live consultations, astrologers online, today's money (UTC day)",
    auth=("admin",),
    tags=("admin",),
)
async def dashboard(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    pool = request.app[DATABASE].pool
    now = request.app[CLOCK].now()
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    live = await pool.fetch(
        f"{ITEM_SQL} WHERE c.state IN ('requested', 'active') ORDER BY c.requested_at DESC"
        " LIMIT 200"
    )
    ids: list[uuid.UUID] = [
        r["id"]
        for r in await pool.fetch(
            "SELECT id FROM users WHERE role = 'consultant' AND disabled_at IS NULL LIMIT $1",
            MAX_ASTROLOGERS_COUNTED,
        )
    ]
    statuses = await request.app[PRESENCE].get_many(ids) if ids else {}
    today = await pool.fetchrow(_TODAY_SQL, midnight)
    return web.json_response(
        {
            "live": [item(r, emails=True) for r in live],
            "astrologers_online": sum(1 for s in statuses.values() if s == "online"),
            "astrologers_busy": sum(1 for s in statuses.values() if s == "busy"),
            "today": {"since": midnight.isoformat(), **dict(today)},
        }
    )


@routes.post("/admin/consultations/{id}/end")
@operation(
    "Admin: force end a consultation (reason audit-logged); returns its statement",
    body=ForceEndRequest,
    auth=("admin",),
    errors=(404, 409),
    tags=("admin",),
)
async def force_end(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    body = await parse_body(request, ForceEndRequest)
    cid = path_id(request)
    service = request.app[CONSULTATIONS]
    before = await service.get(cid)
    if before.state.value == "ended":
        raise ApiError(409, "ALREADY_ENDED", "the consultation has already ended")
    statement = await service.end(cid, EndReason.ADMIN, actor_id=claims.user_id)
    await audit.record(
        request.app[DATABASE].pool,
        claims.user_id,
        "consultation_force_ended",
        "consultation",
        str(cid),
        {"reason": body.reason, "minutes": statement.minutes},
    )
    return web.json_response(statement.to_json())


def _audit_item(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": row["created_at"].isoformat(),
        "actor": None
        if row["actor_id"] is None
        else {"id": str(row["actor_id"]), "name": row["actor_name"]},
        "action": row["action"],
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "details": json.loads(row["details"]),
    }


@routes.get("/admin/audit")
@operation("Admin: the audit log, newest first", query=AuditQuery, auth=("admin",), tags=("admin",))
async def audit_log(request: web.Request) -> web.Response:
    await require_user(request, roles=("admin",))
    q = parse_query(request, AuditQuery)
    conditions: list[str] = []
    args: list[Any] = []
    for column, value in (("l.subject_id", q.subject_id), ("l.action", q.action)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if q.before is not None:
        args.append(q.before)
        conditions.append(f"l.id < ${len(args)}")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await request.app[DATABASE].pool.fetch(
        "SELECT l.id, l.created_at, l.actor_id, u.display_name AS actor_name, l.action,"
        " l.subject_type, l.subject_id, l.details::text AS details"
        f" FROM audit_log l LEFT JOIN users u ON u.id = l.actor_id {where}"
        f" ORDER BY l.id DESC LIMIT {q.limit + 1}",
        *args,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return web.json_response(
        {"items": [_audit_item(r) for r in rows], "next_before": rows[-1]["id"] if more else None}
    )
