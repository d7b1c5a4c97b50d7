"""Admin review of consultations: search, one consultation, its session log and transcript.

Admins only (403 for other roles, 404 for an unknown id); every read is audit-logged
(``core.audit``) with what was read. The search is keyset-paginated newest first:
``next_cursor`` names the last row returned, so pages neither repeat nor skip rows when
consultations are requested between two pages. ``charged_paise`` is what the caller's wallet
paid (free minutes paid by promotions are not in it), ``refunded_paise`` what was given back.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import DATABASE, SESSION_LOG
from api.openapi import operation
from api.validation import parse_query
from billing.timeline import consultation_timeline
from core import audit

routes = web.RouteTableDef()

Status = Literal["requested", "active", "ended"]
Mode = Literal["chat", "voice", "video"]
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""No control characters (PostgreSQL text cannot hold NUL: it would fail as a 500)."""


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    mode: Mode | None = None
    caller: str | None = Field(
        None, min_length=1, max_length=100, pattern=_PRINTABLE,
        description="substring of the caller's email or display name (case-insensitive)",
    )
    astrologer: str | None = Field(
        None, min_length=1, max_length=100, pattern=_PRINTABLE,
        description="substring of the astrologer's email or display name (case-insensitive)",
    )
    from_: AwareDatetime | None = Field(
        None, alias="from", description="requested at or after (ISO 8601 with offset)"
    )
    to: AwareDatetime | None = Field(None, description="requested before (ISO 8601 with offset)")
    cursor: str | None = Field(None, max_length=512, description="`next_cursor` of the last page")
    limit: int = Field(20, ge=1, le=100)


class Party(BaseModel):
    id: uuid.UUID
    name: str
    email: str


class ConsultationOut(BaseModel):
    id: uuid.UUID
    status: Status
    mode: Mode
    caller: Party
    astrologer: Party
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    rate_paise: int
    minutes_charged: int
    charged_paise: int = Field(description="paid from the caller's wallet")
    refunded_paise: int


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class FormatQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv"] = Field("json", description="csv: one row per event")


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "text"] = Field("json", description="text: one line per message")


class EventOut(BaseModel):
    at: datetime
    kind: str = Field(description="snake_case past tense: requested, first_media, ended ...")
    actor_id: uuid.UUID | None
    node_id: str | None
    data: dict[str, Any]


class EventLogOut(BaseModel):
    items: list[EventOut]


class TranscriptLine(BaseModel):
    at: datetime
    seq: int
    sender_id: uuid.UUID
    sender_role: Literal["caller", "astrologer"]
    kind: Literal["text", "image"]
    body: str | None = Field(description="the text as stored (contact details masked)")
    upload_id: uuid.UUID | None
    masked: bool


class TranscriptOut(BaseModel):
    items: list[TranscriptLine]


_SELECT = """
SELECT k.id, k.state, k.mode, k.requested_at, k.started_at, k.ended_at, k.end_reason,
       k.rate_paise, k.minutes_charged, k.amount_charged_paise, k.refunded_paise,
       k.caller_id, cu.display_name AS caller_name, cu.email AS caller_email,
       k.consultant_id, COALESCE(p.display_name, au.display_name) AS astrologer_name,
       au.email AS astrologer_email
  FROM consultations k
  JOIN users cu ON cu.id = k.caller_id
  JOIN users au ON au.id = k.consultant_id
  LEFT JOIN consultant_profiles p ON p.user_id = k.consultant_id
"""


def _item(r: asyncpg.Record) -> dict[str, Any]:
    def ts(d: datetime | None) -> str | None:
        return d.isoformat() if d else None

    return {
        "id": str(r["id"]),
        "status": r["state"],
        "mode": r["mode"],
        "caller": {"id": str(r["caller_id"]), "name": r["caller_name"],
                   "email": r["caller_email"]},
        "astrologer": {"id": str(r["consultant_id"]), "name": r["astrologer_name"],
                       "email": r["astrologer_email"]},
        "requested_at": ts(r["requested_at"]),
        "started_at": ts(r["started_at"]),
        "ended_at": ts(r["ended_at"]),
        "end_reason": r["end_reason"],
        "rate_paise": r["rate_paise"],
        "minutes_charged": r["minutes_charged"],
        "charged_paise": r["amount_charged_paise"],
        "refunded_paise": r["refunded_paise"],
    }


def _encode_cursor(requested_at: datetime, cid: uuid.UUID) -> str:
    raw = json.dumps({"t": requested_at.isoformat(), "id": str(cid)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(data["t"])
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, uuid.UUID(data["id"])
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ApiError(400, "INVALID_CURSOR", "cursor is not one this listing returned") from None


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_sql(q: SearchQuery) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.status:
        conditions.append(f"k.state = {arg(q.status)}")
    if q.mode:
        conditions.append(f"k.mode = {arg(q.mode)}")
    if q.caller:
        p = arg(_like(q.caller))
        conditions.append(f"(cu.email ILIKE {p} OR cu.display_name ILIKE {p})")
    if q.astrologer:
        p = arg(_like(q.astrologer))
        conditions.append(
            f"(au.email ILIKE {p} OR au.display_name ILIKE {p} OR p.display_name ILIKE {p})"
        )
    if q.from_:
        conditions.append(f"k.requested_at >= {arg(q.from_)}")
    if q.to:
        conditions.append(f"k.requested_at < {arg(q.to)}")
    if q.cursor:
        at, cid = _decode_cursor(q.cursor)
        conditions.append(f"(k.requested_at, k.id) < ({arg(at)}, {arg(cid)})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (
        f"{_SELECT}{where} ORDER BY k.requested_at DESC, k.id DESC LIMIT {arg(q.limit + 1)}",
        args,
    )


async def _admin(request: web.Request) -> uuid.UUID:
    return (await require_user(request, roles=("admin",))).user_id


async def _consultation(pool: asyncpg.Pool, cid: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow(f"{_SELECT} WHERE k.id = $1", cid)
    if row is None:
        raise ApiError(404, "NOT_FOUND", "consultation not found")
    return row


@routes.get("/admin/consultations")
@operation(
    "Admin: search consultations, newest first (cursor pages)",
    query=SearchQuery,
    response=ConsultationPage,
    auth=("admin",),
    errors=(400,),
    tags=("admin",),
)
async def search_consultations(request: web.Request) -> web.Response:
    admin_id = await _admin(request)
    query = parse_query(request, SearchQuery)
    if query.from_ and query.to and query.from_ >= query.to:
        raise ApiError(422, "VALIDATION_FAILED", "`from` must be before `to`")
    pool = request.app[DATABASE].pool
    sql, args = _search_sql(query)
    rows = await pool.fetch(sql, *args)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    await audit.record(
        pool, admin_id, "consultations_searched", "consultation", "*",
        query.model_dump(mode="json", by_alias=True, exclude_none=True),
    )
    next_cursor = _encode_cursor(page[-1]["requested_at"], page[-1]["id"]) if more else None
    return web.json_response({"items": [_item(r) for r in page], "next_cursor": next_cursor})


@routes.get("/admin/consultations/{id}")
@operation(
    "Admin: one consultation with its parties and money",
    response=ConsultationOut,
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def get_consultation(request: web.Request) -> web.Response:
    admin_id = await _admin(request)
    cid = path_id(request)
    pool = request.app[DATABASE].pool
    row = await _consultation(pool, cid)
    await audit.record(pool, admin_id, "consultation_viewed", "consultation", str(cid))
    return web.json_response(_item(row))


def _log_csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "kind", "actor_id", "node_id", "data"])
    for e in items:
        writer.writerow([e["at"], e["kind"], e["actor_id"] or "", e["node_id"] or "",
                         json.dumps(e["data"], sort_keys=True)])
    return out.getvalue()


@routes.get("/admin/consultations/{id}/log")
@operation(
    "Admin: the session log of a consultation, oldest first (JSON, or CSV with ?format=csv)",
    query=FormatQuery,
    response=EventLogOut,
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def consultation_log(request: web.Request) -> web.Response:
    """Events written on other nodes appear once their writer's batch is in (< 1 s)."""
    admin_id = await _admin(request)
    query = parse_query(request, FormatQuery)
    cid = path_id(request)
    pool = request.app[DATABASE].pool
    await _consultation(pool, cid)
    await request.app[SESSION_LOG].flush()  # this node's queued events first
    items = [
        {"at": e.at.isoformat(), "kind": e.kind,
         "actor_id": str(e.actor_id) if e.actor_id else None, "node_id": e.node_id,
         "data": dict(e.data)}
        for e in await consultation_timeline(pool, cid)
    ]
    await audit.record(pool, admin_id, "consultation_log_viewed", "consultation", str(cid),
                       {"format": query.format, "events": len(items)})
    if query.format == "csv":
        return web.Response(
            text=_log_csv(items), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="consultation-{cid}-log.csv"'},
        )
    return web.json_response({"items": items})


def _transcript_text(items: list[dict[str, Any]]) -> str:
    lines = []
    for m in items:
        said = m["body"] if m["kind"] == "text" else f"[image {m['upload_id']}]"
        lines.append(f"{m['at']} {m['sender_role']}: {said}")
    return "\n".join(lines) + ("\n" if lines else "")


@routes.get("/admin/consultations/{id}/transcript")
@operation(
    "Admin: the chat transcript of a consultation, oldest first (JSON, or ?format=text)",
    query=TranscriptQuery,
    response=TranscriptOut,
    auth=("admin",),
    errors=(404,),
    tags=("admin",),
)
async def consultation_transcript(request: web.Request) -> web.Response:
    """Chat consultations keep their transcript as their record; voice and video ones list
    whatever was typed alongside the call."""
    admin_id = await _admin(request)
    query = parse_query(request, TranscriptQuery)
    cid = path_id(request)
    pool = request.app[DATABASE].pool
    consultation = await _consultation(pool, cid)
    rows = await pool.fetch(
        "SELECT seq, sender_id, kind, body, upload_id, masked, created_at FROM chat_messages"
        " WHERE consultation_id = $1 ORDER BY seq",
        cid,
    )
    items = [
        {"at": r["created_at"].isoformat(), "seq": r["seq"], "sender_id": str(r["sender_id"]),
         "sender_role": "caller" if r["sender_id"] == consultation["caller_id"] else "astrologer",
         "kind": r["kind"], "body": r["body"],
         "upload_id": str(r["upload_id"]) if r["upload_id"] else None, "masked": r["masked"]}
        for r in rows
    ]
    await audit.record(pool, admin_id, "consultation_transcript_viewed", "consultation",
                       str(cid), {"format": query.format, "messages": len(items)})
    if query.format == "text":
        return web.Response(text=_transcript_text(items), content_type="text/plain",
                            charset="utf-8")
    return web.json_response({"items": items})
