"""An astrologer's profile photo: ``PUT /consultants/me/photo`` (raw image body, its type in
Content-Type, checked against the magic bytes like chat uploads) and
``GET /consultants/{id}/photo``."""

from __future__ import annotations

from aiohttp import web

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import DATABASE
from api.messages import _sniff_ok
from api.openapi import operation

routes = web.RouteTableDef()

PHOTO_MAX_BYTES = 2 * 1024 * 1024
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


@routes.put("/consultants/me/photo")
@operation(
    "Upload my profile photo (raw body; image/jpeg, png or webp, at most 2 MiB)",
    auth=("consultant",),
    errors=(400, 404, 413, 415),
    tags=("consultants",),
)
async def put_photo(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("consultant",))
    content_type = request.content_type.lower()
    if content_type not in PHOTO_TYPES:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"{content_type} is not accepted",
            {"accepted": sorted(PHOTO_TYPES)},
        )
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > PHOTO_MAX_BYTES:
            raise ApiError(
                413, "PAYLOAD_TOO_LARGE", "photo too large", {"max_bytes": PHOTO_MAX_BYTES}
            )
    if not data:
        raise ApiError(400, "EMPTY_UPLOAD", "the body is empty")
    if not _sniff_ok(content_type, bytes(data)):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the bytes are not a " + content_type)
    stored = await request.app[DATABASE].pool.fetchval(
        "INSERT INTO consultant_photos (user_id, content_type, bytes)"
        " SELECT user_id, $2, $3 FROM consultant_profiles WHERE user_id = $1"
        " ON CONFLICT (user_id) DO UPDATE SET content_type = EXCLUDED.content_type,"
        " bytes = EXCLUDED.bytes, updated_at = now() RETURNING user_id",
        claims.user_id,
        content_type,
        bytes(data),
    )
    if stored is None:
        raise ApiError(404, "NOT_FOUND", "you have no astrologer profile")
    return web.json_response({"photo_url": f"/consultants/{claims.user_id}/photo"})


@routes.get("/consultants/{id}/photo")
@operation(
    "An astrologer's profile photo (the image bytes)",
    content_type="image/*",
    errors=(404,),
    tags=("consultants",),
)
async def get_photo(request: web.Request) -> web.Response:
    row = await request.app[DATABASE].pool.fetchrow(
        "SELECT content_type, bytes, updated_at FROM consultant_photos WHERE user_id = $1",
        path_id(request),
    )
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no photo")
    return web.Response(
        body=row["bytes"],
        content_type=row["content_type"],
        headers={"Cache-Control": "public, max-age=60", "X-Content-Type-Options": "nosniff"},
    )
