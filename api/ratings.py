"""A caller rates a consultation: once, after it ended with at least one paid minute."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import DATABASE, SETTINGS
from api.openapi import operation
from api.validation import parse_body
from signalling.masking import mask

routes = web.RouteTableDef()


class RatingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int = Field(strict=True, ge=1, le=5)
    comment: str = Field(default="", max_length=1000)


@routes.post("/consultations/{id}/rating")
@operation(
    "Rate a finished consultation (the caller, once)",
    body=RatingRequest,
    status=201,
    auth=("user",),
    errors=(404, 409, 422),
    tags=("consultations",),
)
async def rate(request: web.Request) -> web.Response:
    """Stars 1-5 and an optional comment; the astrologer's rating aggregate is updated with it."""
    claims = await require_user(request, roles=("user",))
    body = await parse_body(request, RatingRequest)
    # the astrologer reads it: contact details in it would take the pair off the platform
    comment = mask(body.comment, request.app[SETTINGS].signalling.masking).text
    consultation_id = path_id(request)
    async with request.app[DATABASE].pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT caller_id, consultant_id, state, minutes_charged FROM consultations"
            " WHERE id = $1",
            consultation_id,
        )
        if row is None or row["caller_id"] != claims.user_id:
            raise ApiError(404, "NOT_FOUND", "consultation not found")
        if row["state"] != "ended" or row["minutes_charged"] < 1:
            raise ApiError(409, "NOT_RATEABLE", "only a finished, paid consultation can be rated")
        inserted = await conn.fetchval(
            "INSERT INTO consultation_ratings"
            " (consultation_id, caller_id, consultant_id, stars, comment)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consultation_id) DO NOTHING"
            " RETURNING consultation_id",
            consultation_id,
            claims.user_id,
            row["consultant_id"],
            body.stars,
            comment,
        )
        if inserted is None:
            raise ApiError(409, "ALREADY_RATED", "this consultation is already rated")
        await conn.execute(
            "UPDATE consultant_profiles SET rating_sum = rating_sum + $2,"
            " rating_count = rating_count + 1 WHERE user_id = $1",
            row["consultant_id"],
            body.stars,
        )
    return web.json_response(
        {"consultation_id": str(consultation_id), "stars": body.stars, "comment": comment},
        status=201,
    )
