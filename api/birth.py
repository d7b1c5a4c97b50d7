"""REST for birth profiles, birthplaces and the chart (issue 15).

Birth details are personal data: they are sealed at rest (birth/sealing.py), never logged (the
access log has the path only, which carries ids), and read only by the owner, admins and the
astrologer of a consultation started with the profile — every read by anyone but the owner is
audit-logged. Bad input gets 400 with a stable code: ``INVALID_DATE``, ``DATE_OUT_OF_RANGE``,
``INVALID_TIME``, ``TIME_DOES_NOT_EXIST``, ``UNKNOWN_PLACE``, ``COORDINATES_OUT_OF_RANGE``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import Claims, Role, require_user
from api.errors import ApiError
from api.keys import BIRTH_PROFILES, CLOCK, DATABASE, RATE_LIMITER, SETTINGS
from api.openapi import operation
from api.validation import parse_body, parse_query
from astrology.chart import Chart, compute_chart
from astrology.places import DEFAULT_LIMIT, MAX_LIMIT, PlaceError, from_coordinates, gazetteer
from astrology.report import chart_to_json
from astrology.svg import render
from birth.details import BirthDetails, build_details
from birth.profiles import Profile, ProfileStore
from birth.sealing import Sealer, load_or_create_key

routes = web.RouteTableDef()

#: Requests per user per minute, by kind (autocomplete sends one per pause in typing).
RATE_LIMITS = {"places": 300, "profiles": 120, "charts": 120}
RATE_WINDOW_S = 60
Gender = Literal["female", "male", "other", "undisclosed"]


class BirthProfileIn(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    gender: Gender
    date: str = Field(description="local date of birth, YYYY-MM-DD (1900-01-01 … today)")
    time: str | None = Field(
        None, description="local clock time HH:MM[:SS]; null or absent when unknown"
    )
    place_id: int | None = Field(None, description="id from GET /places")
    latitude: float | None = Field(None, description="typed coordinates instead of place_id")
    longitude: float | None = None
    place_name: str | None = Field(None, max_length=120, description="label for coordinates")


class PlaceOut(BaseModel):
    id: int | None
    name: str
    latitude: float
    longitude: float
    time_zone: str


class PlaceList(BaseModel):
    items: list[PlaceOut]


class BirthProfileOut(BaseModel):
    id: uuid.UUID
    name: str
    gender: Gender
    date: str
    time: str | None
    time_known: bool
    place: PlaceOut
    utc: str = Field(description="birth instant in UTC (local noon when the time is unknown)")
    utc_offset: str = Field(description="local time minus UTC at birth, e.g. +06:30")
    local_mean_time: bool = Field(description="the place kept no standard time yet: LMT used")
    created_at: str
    updated_at: str


class BirthProfileList(BaseModel):
    items: list[BirthProfileOut]


class PlaceQuery(BaseModel):
    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class CoordinatesQuery(BaseModel):
    latitude: float
    longitude: float


class SvgQuery(BaseModel):
    style: Literal["north", "south"] = "north"


def _offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    minutes = round(abs(seconds) / 60)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def profile_json(profile: Profile) -> dict[str, Any]:
    d = profile.details
    resolved = d.resolve()
    return {
        "id": str(profile.id),
        **{k: v for k, v in d.to_json().items() if k != "place"},
        "time_known": d.time is not None,
        "place": d.place.as_dict(),
        "utc": resolved.utc.isoformat(),
        "utc_offset": _offset(resolved.offset_seconds),
        "local_mean_time": resolved.local_mean_time,
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
    }


async def _limited(request: web.Request, kind: str, claims: Claims) -> None:
    decision = await request.app[RATE_LIMITER].hit(
        f"birth:{kind}:{claims.user_id}", RATE_LIMITS[kind], RATE_WINDOW_S
    )
    if not decision.allowed:
        raise ApiError(
            429,
            "RATE_LIMITED",
            "too many requests; try again later",
            {"retry_after_s": decision.retry_after_s, "scope": kind},
            headers={"Retry-After": str(decision.retry_after_s)},
        )


async def _caller(request: web.Request, kind: str, roles: tuple[Role, ...] | None = None) -> Claims:
    claims = await require_user(request, roles=roles)
    await _limited(request, kind, claims)
    return claims


def _profile_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "BIRTH_PROFILE_NOT_FOUND", "birth profile not found") from None


async def _details(request: web.Request) -> BirthDetails:
    body = await parse_body(request, BirthProfileIn)
    now: datetime = request.app[CLOCK].now()
    return build_details(body.model_dump(), now.astimezone(UTC))


async def _readable(request: web.Request, claims: Claims, what: str) -> Profile:
    return await request.app[BIRTH_PROFILES].authorize(
        _profile_id(request), claims.user_id, claims.role, what
    )


async def _owned(request: web.Request, claims: Claims) -> Profile:
    profile = await request.app[BIRTH_PROFILES].get(_profile_id(request))
    if profile.owner_id != claims.user_id:
        raise ApiError(403, "FORBIDDEN", "only its owner may change a birth profile")
    return profile


@routes.get("/places")
@operation(
    "Birthplace autocomplete from the offline gazetteer (towns of 5,000+)",
    query=PlaceQuery, response=PlaceList, auth="any", errors=(429,), tags=("birth",),
)  # fmt: skip
async def search_places(request: web.Request) -> web.Response:
    await _caller(request, "places")
    query = parse_query(request, PlaceQuery)
    found = await asyncio.to_thread(lambda: gazetteer().search(query.q, query.limit))
    return web.json_response({"items": [p.as_dict() for p in found]})


@routes.get("/places/at")
@operation(
    "Typed coordinates: their time zone (400 COORDINATES_OUT_OF_RANGE / UNKNOWN_PLACE)",
    query=CoordinatesQuery, response=PlaceOut, auth="any", errors=(400, 429), tags=("birth",),
)  # fmt: skip
async def place_at(request: web.Request) -> web.Response:
    await _caller(request, "places")
    query = parse_query(request, CoordinatesQuery)
    try:
        place = await asyncio.to_thread(from_coordinates, query.latitude, query.longitude)
    except PlaceError as error:
        raise ApiError(400, error.code.upper(), str(error)) from None
    return web.json_response(place.as_dict())


@routes.get("/birth-profiles")
@operation(
    "My birth profiles", response=BirthProfileList, auth=("user",), errors=(429,),
    tags=("birth",),
)  # fmt: skip
async def list_profiles(request: web.Request) -> web.Response:
    claims = await _caller(request, "profiles", ("user",))
    profiles = await request.app[BIRTH_PROFILES].list(claims.user_id)
    return web.json_response({"items": [profile_json(p) for p in profiles]})


@routes.post("/birth-profiles")
@operation(
    "Add a birth profile (self, partner, child…)", body=BirthProfileIn,
    response=BirthProfileOut, status=201, auth=("user",), errors=(409, 429), tags=("birth",),
)  # fmt: skip
async def create_profile(request: web.Request) -> web.Response:
    claims = await _caller(request, "profiles", ("user",))
    details = await _details(request)
    profile = await request.app[BIRTH_PROFILES].create(claims.user_id, details)
    return web.json_response(profile_json(profile), status=201)


@routes.get("/birth-profiles/{id}")
@operation(
    "One birth profile (owner, admins, the astrologer of a consultation that used it)",
    response=BirthProfileOut, auth="any", errors=(403, 404, 429), tags=("birth",),
)  # fmt: skip
async def get_profile(request: web.Request) -> web.Response:
    claims = await _caller(request, "profiles")
    return web.json_response(profile_json(await _readable(request, claims, "profile")))


@routes.put("/birth-profiles/{id}")
@operation(
    "Replace one of my birth profiles", body=BirthProfileIn, response=BirthProfileOut,
    auth=("user",), errors=(404, 429), tags=("birth",),
)  # fmt: skip
async def replace_profile(request: web.Request) -> web.Response:
    claims = await _caller(request, "profiles", ("user",))
    await _owned(request, claims)
    details = await _details(request)
    profile = await request.app[BIRTH_PROFILES].replace(
        _profile_id(request), claims.user_id, details
    )
    return web.json_response(profile_json(profile))


@routes.delete("/birth-profiles/{id}")
@operation(
    "Delete one of my birth profiles for good", status=204, content_type=None,
    auth=("user",), errors=(404, 429), tags=("birth",),
)  # fmt: skip
async def delete_profile(request: web.Request) -> web.Response:
    claims = await _caller(request, "profiles", ("user",))
    await _owned(request, claims)
    await request.app[BIRTH_PROFILES].delete(_profile_id(request), claims.user_id)
    return web.Response(status=204)


async def _chart(profile: Profile) -> Chart:
    return await asyncio.to_thread(compute_chart, profile.details.moment())


@routes.get("/birth-profiles/{id}/chart")
@operation(
    "The kundli of a birth profile: Lahiri sidereal grahas, lagna, houses, Vimshottari dasha",
    auth="any", errors=(403, 404, 429), tags=("birth",),
)  # fmt: skip
async def profile_chart(request: web.Request) -> web.Response:
    claims = await _caller(request, "charts")
    profile = await _readable(request, claims, "chart")
    return web.json_response(chart_to_json(await _chart(profile)))


@routes.get("/birth-profiles/{id}/chart.svg")
@operation(
    "The rashi chart of a birth profile as SVG, North or South Indian style",
    query=SvgQuery, content_type="image/svg+xml", auth="any", errors=(403, 404, 429),
    tags=("birth",),
)  # fmt: skip
async def profile_chart_svg(request: web.Request) -> web.Response:
    claims = await _caller(request, "charts")
    query = parse_query(request, SvgQuery)
    profile = await _readable(request, claims, f"chart_svg_{query.style}")
    svg = render(await _chart(profile), query.style)
    return web.Response(
        text=svg,
        content_type="image/svg+xml",
        headers={
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@routes.get("/consultations/{id}/birth-profile")
@operation(
    "The birth profile and chart a consultation was started with (its astrologer, caller, admins)",
    auth="any", errors=(403, 404, 429), tags=("birth",),
)  # fmt: skip
async def consultation_profile(request: web.Request) -> web.Response:
    claims = await _caller(request, "charts")
    try:
        consultation_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "BIRTH_PROFILE_NOT_FOUND", "birth profile not found") from None
    store = request.app[BIRTH_PROFILES]
    profile_id = await store.of_consultation(consultation_id)
    profile = await store.authorize(profile_id, claims.user_id, claims.role, "consultation")
    chart = chart_to_json(await _chart(profile))
    return web.json_response({"profile": profile_json(profile), "chart": chart})


def _key(app: web.Application) -> bytes:
    settings = app[SETTINGS]
    if settings.birth_data_key is not None:
        return settings.birth_data_key
    if settings.env == "test":
        return secrets.token_bytes(32)  # each test app seals with its own throwaway key
    return load_or_create_key(settings.birth_data_key_file)


async def _birth_ctx(app: web.Application) -> AsyncIterator[None]:
    app[BIRTH_PROFILES] = ProfileStore(app[DATABASE], Sealer(_key(app)))
    # Loading the gazetteer takes seconds: start it now rather than on the first keystroke.
    warm = asyncio.ensure_future(asyncio.to_thread(gazetteer))
    yield
    await warm


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_birth_ctx)
