"""Astrologers: ``GET /consultants``, ``GET /consultants/{id}``, ``PATCH /consultants/me``.

Listing is keyset-paginated: ``next_cursor`` is an opaque token naming the last row examined, so
pages neither repeat nor skip rows when profiles are added between requests. Status comes from
the :class:`core.presence.PresenceLookup` under ``PRESENCE`` (the signalling hub's), shown
as ``away`` when a connected astrologer has set the away flag.

A mode is offered when its rate is above zero; ``PATCH`` a rate to 0 to stop offering it.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.auth import require_user
from api.errors import ApiError
from api.hygiene import INT64_MAX, INT64_MIN
from api.keys import DATABASE, PRESENCE, SETTINGS
from api.openapi import operation
from api.validation import parse_body, parse_query
from core.presence import PresenceLookup, PresenceStatus
from signalling.masking import mask

routes = web.RouteTableDef()

Mode = Literal["chat", "voice", "video"]
MODES: tuple[Mode, ...] = ("chat", "voice", "video")
Status = Literal["online", "busy", "away", "offline"]
MAX_RATE_PAISE = 10_000_000
"""₹1,00,000 a minute: anything above is a typo."""
MAX_SCAN_BATCHES = 10
"""When filtering on presence, batches examined before returning a short page with a cursor."""
RATE_COLUMN: Mapping[Mode, str] = {
    "chat": "rate_chat_paise",
    "voice": "rate_voice_paise",
    "video": "rate_video_paise",
}
RATING_MILLI = "(CASE WHEN p.rating_count = 0 THEN 0 ELSE p.rating_sum * 1000 / p.rating_count END)"


def _tag(value: str) -> str:
    return value.strip().lower()


Tag = Annotated[str, AfterValidator(_tag), Field(min_length=1, max_length=40)]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Tags = Annotated[list[Tag], AfterValidator(_unique), Field(max_length=20)]


class ConsultantQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Tag | None = Field(None, description="only astrologers speaking this language")
    speciality: Tag | None = Field(None, description="only astrologers with this speciality")
    mode: Mode | None = Field(None, description="only astrologers offering this mode")
    online: bool | None = Field(
        None, description="true: only those free right now; false: only those who are not"
    )
    sort: Literal["rating", "price"] = Field(
        "rating", description="rating: best first; price: cheapest first (rate of `mode`, or chat)"
    )
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512, description="`next_cursor` of the last page")


class Rates(BaseModel):
    """Per-minute rates in paise; 0 means the mode is not offered."""

    chat: int
    voice: int
    video: int


class ConsultantOut(BaseModel):
    id: uuid.UUID
    display_name: str
    bio: str
    languages: list[str]
    specialities: list[str]
    rates: Rates
    modes: list[Mode]
    rating: float | None = Field(description="average stars, None before the first rating")
    rating_count: int
    away: bool
    status: Status
    verified: bool = Field(description="approved by the platform")
    photo_url: str | None = Field(description="the profile photo, null when there is none")


class ConsultantPage(BaseModel):
    items: list[ConsultantOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


Rate = Annotated[int, Field(ge=0, le=MAX_RATE_PAISE)]


class RatesPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat: Rate | None = None
    voice: Rate | None = None
    video: Rate | None = None


class ProfilePatch(BaseModel):
    """Only the fields present change; ``null`` is not a value for any of them."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=80)
    bio: str | None = Field(None, max_length=2000)
    languages: Tags | None = None
    specialities: Tags | None = None
    rates: RatesPatch | None = None
    away: bool | None = None


_PROFILE_COLUMNS = (
    "p.user_id, p.display_name, p.bio, p.languages, p.specialities, p.rate_chat_paise,"
    " p.rate_voice_paise, p.rate_video_paise, p.rating_sum, p.rating_count, p.away,"
    " p.approved_at IS NOT NULL AS verified,"
    " EXISTS (SELECT 1 FROM consultant_photos ph WHERE ph.user_id = p.user_id) AS has_photo"
)


def _status(presence: PresenceStatus, away: bool) -> Status:
    if presence == "offline":
        return "offline"
    return "away" if away else presence


async def _statuses(
    lookup: PresenceLookup, rows: Sequence[asyncpg.Record]
) -> dict[uuid.UUID, Status]:
    ids = [row["user_id"] for row in rows]
    found: Mapping[Any, PresenceStatus] = await lookup.get_many(ids) if ids else {}
    return {
        row["user_id"]: _status(
            found.get(row["user_id"], found.get(str(row["user_id"]), "offline")), row["away"]
        )
        for row in rows
    }


def _out(row: asyncpg.Record, status: Status) -> ConsultantOut:
    rates = Rates(
        chat=row["rate_chat_paise"], voice=row["rate_voice_paise"], video=row["rate_video_paise"]
    )
    count = row["rating_count"]
    return ConsultantOut(
        id=row["user_id"],
        display_name=row["display_name"],
        bio=row["bio"],
        languages=list(row["languages"]),
        specialities=list(row["specialities"]),
        rates=rates,
        modes=[m for m in MODES if getattr(rates, m) > 0],
        rating=round(row["rating_sum"] / count, 2) if count else None,
        rating_count=count,
        away=row["away"],
        status=status,
        verified=row["verified"],
        photo_url=f"/consultants/{row['user_id']}/photo" if row["has_photo"] else None,
    )


def _encode_cursor(sort: str, mode: str, key: int, user_id: uuid.UUID) -> str:
    raw = json.dumps({"s": sort, "m": mode, "k": key, "id": str(user_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str, mode: str) -> tuple[int, uuid.UUID]:
    invalid = ApiError(400, "INVALID_CURSOR", "cursor is not one this listing returned")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key, user_id = data["k"], uuid.UUID(data["id"])
        matches = data["s"] == sort and data["m"] == mode and isinstance(key, int)
        if not INT64_MIN <= key <= INT64_MAX:  # a forged key PostgreSQL's bigint cannot hold
            raise ValueError(key)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise invalid from None
    if not matches:
        raise ApiError(
            400, "INVALID_CURSOR", "cursor belongs to a listing with another sort or mode"
        )
    return key, user_id


class _Listing:
    """One ``GET /consultants`` query: the filters as SQL, plus the keyset position."""

    def __init__(self, query: ConsultantQuery) -> None:
        self.query = query
        self.price_mode: Mode = query.mode or "chat"
        self.conditions: list[str] = []
        self.args: list[Any] = []
        if query.language is not None:
            self.conditions.append(f"p.languages @> ARRAY[{self._arg(query.language)}]::text[]")
        if query.speciality is not None:
            self.conditions.append(
                f"p.specialities @> ARRAY[{self._arg(query.speciality)}]::text[]"
            )
        if query.mode is not None:
            self.conditions.append(f"p.{RATE_COLUMN[query.mode]} > 0")
        if query.sort == "rating":
            self.key_sql, self.order, self.after_op = RATING_MILLI, "DESC", "<"
        else:
            price = f"p.{RATE_COLUMN[self.price_mode]}"
            self.key_sql, self.order, self.after_op = price, "ASC", ">"

    def _arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    async def fetch(
        self, pool: asyncpg.Pool, after: tuple[int, uuid.UUID] | None, count: int
    ) -> list[asyncpg.Record]:
        conditions, args = list(self.conditions), list(self.args)
        if after is not None:
            k, i = f"${len(args) + 1}", f"${len(args) + 2}"
            conditions.append(
                f"({self.key_sql} {self.after_op} {k}"
                f" OR ({self.key_sql} = {k} AND p.user_id > {i}))"
            )
            args.extend(after)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows: list[asyncpg.Record] = await pool.fetch(
            f"SELECT {_PROFILE_COLUMNS}, {self.key_sql} AS sort_key"
            f" FROM consultant_profiles p {where}"
            f" ORDER BY sort_key {self.order}, p.user_id ASC LIMIT {count}",
            *args,
        )
        return rows

    def wanted(self, status: Status) -> bool:
        if self.query.online is None:
            return True
        return (status == "online") == self.query.online

    def cursor(self, after: tuple[int, uuid.UUID] | None) -> str | None:
        return None if after is None else _encode_cursor(self.query.sort, self.price_mode, *after)


async def list_consultants(
    pool: asyncpg.Pool, presence: PresenceLookup, query: ConsultantQuery
) -> ConsultantPage:
    listing = _Listing(query)
    after = _decode_cursor(query.cursor, query.sort, listing.price_mode) if query.cursor else None
    # Without a presence filter one extra row says whether there is a next page; with one,
    # rows are examined in batches until the page is full (bounded by MAX_SCAN_BATCHES).
    batch = query.limit + 1 if query.online is None else max(2 * query.limit, 50)
    items: list[ConsultantOut] = []
    for _ in range(MAX_SCAN_BATCHES):
        rows = await listing.fetch(pool, after, batch)
        statuses = await _statuses(presence, rows)
        for row in rows:
            if len(items) == query.limit:
                return ConsultantPage(items=items, next_cursor=listing.cursor(after))
            after = (row["sort_key"], row["user_id"])
            if listing.wanted(statuses[row["user_id"]]):
                items.append(_out(row, statuses[row["user_id"]]))
        if len(rows) < batch:
            return ConsultantPage(items=items, next_cursor=None)
    return ConsultantPage(items=items, next_cursor=listing.cursor(after))


async def _one(request: web.Request, user_id: uuid.UUID) -> ConsultantOut:
    row = await request.app[DATABASE].pool.fetchrow(
        f"SELECT {_PROFILE_COLUMNS} FROM consultant_profiles p WHERE p.user_id = $1", user_id
    )
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such astrologer")
    statuses = await _statuses(request.app[PRESENCE], [row])
    return _out(row, statuses[user_id])


@routes.get("/consultants")
@operation(
    "List astrologers: filter, sort, paginate",
    query=ConsultantQuery,
    response=ConsultantPage,
    errors=(400,),
    tags=("consultants",),
)
async def consultants(request: web.Request) -> web.Response:
    query = parse_query(request, ConsultantQuery)
    page = await list_consultants(request.app[DATABASE].pool, request.app[PRESENCE], query)
    return web.json_response(page.model_dump(mode="json"))


@routes.get("/consultants/{id}")
@operation("One astrologer", response=ConsultantOut, errors=(404,), tags=("consultants",))
async def consultant(request: web.Request) -> web.Response:
    try:
        user_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", "no such astrologer") from None
    return web.json_response((await _one(request, user_id)).model_dump(mode="json"))


@routes.patch("/consultants/me")
@operation(
    "Update my astrologer profile, rates and away flag",
    body=ProfilePatch,
    response=ConsultantOut,
    auth=("consultant",),
    errors=(404,),
    tags=("consultants",),
)
async def update_my_profile(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("consultant",))
    patch = await parse_body(request, ProfilePatch)
    nulls = [name for name in patch.model_fields_set if getattr(patch, name) is None]
    if patch.rates is not None:
        nulls += [
            f"rates.{name}"
            for name in patch.rates.model_fields_set
            if getattr(patch.rates, name) is None
        ]
    if nulls:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "request body is invalid",
            {"fields": [{"field": name, "problem": "may not be null"} for name in nulls]},
        )
    changes: dict[str, Any] = {
        name: getattr(patch, name)
        for name in ("display_name", "bio", "languages", "specialities", "away")
        if name in patch.model_fields_set
    }
    # A profile is read by every caller: contact details in it would take them off the platform.
    kinds = request.app[SETTINGS].signalling.masking
    for name in ("display_name", "bio"):
        if name in changes:
            changes[name] = mask(changes[name], kinds).text
    if patch.rates is not None:
        for mode in MODES:
            if mode in patch.rates.model_fields_set:
                changes[RATE_COLUMN[mode]] = getattr(patch.rates, mode)
    assignments = [f"{column} = ${n}" for n, column in enumerate(changes, start=2)]
    updated = await request.app[DATABASE].pool.fetchval(
        "UPDATE consultant_profiles SET "
        + ", ".join([*assignments, "updated_at = now()"])
        + " WHERE user_id = $1 RETURNING user_id",
        claims.user_id,
        *changes.values(),
    )
    if updated is None:
        raise ApiError(404, "NOT_FOUND", "you have no astrologer profile")
    return web.json_response((await _one(request, claims.user_id)).model_dump(mode="json"))
