"""Recordings for admins: the list of a consultation's files with signed URLs, the content
(HTTP Range, RFC 9110 §14: 206, 416, ``HEAD``, ``Accept-Ranges``) and deletion. Access is by
recording id, never by path, and every access is audit-logged."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.consultations import path_id
from api.errors import ApiError
from api.keys import RECORDER, SETTINGS
from api.openapi import operation
from api.validation import parse_body
from core import audit
from recording import retention, signing
from recording.catalog import row_json
from recording.store import RecordingStore

routes = web.RouteTableDef()

CONTENT_TYPES = {
    "webm": "video/webm", "mka": "audio/x-matroska", "mkv": "video/x-matroska",
    "mp4": "video/mp4",
}


class DeleteRecordings(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class ContentQuery(BaseModel):
    """A signed URL's parameters; without them the request needs a bearer token."""

    exp: int | None = None
    by: uuid.UUID | None = None
    sig: str | None = None


def _url_key(request: web.Request) -> bytes:
    return signing.url_key(request.app[SETTINGS].jwt_secret)


@routes.get("/admin/consultations/{id}/recordings")
@operation(
    "Admin: a consultation's recordings, each with a short-lived signed content URL",
    auth=("admin",), errors=(404,), tags=("admin", "recordings"),
)
async def list_recordings(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    cid = path_id(request)
    recorder = request.app[RECORDER]
    rows = await recorder.catalog.for_consultation(cid)
    if not rows and await recorder.catalog.consultation(str(cid)) is None:
        raise ApiError(404, "NOT_FOUND", "no such consultation")
    exp = int(time.time()) + request.app[SETTINGS].recording.url_ttl_s
    key = _url_key(request)
    items = [
        {**row_json(row), "url": signing.signed_path(key, row["id"], claims.user_id, exp)}
        for row in rows
    ]
    await audit.record(
        recorder.catalog.pool, claims.user_id, "recordings_listed", "consultation", str(cid),
        {"files": len(items)},
    )
    return web.json_response({"items": items})


@routes.delete("/admin/consultations/{id}/recordings")
@operation(
    "Admin: delete a consultation's recordings (files and rows), with a reason",
    body=DeleteRecordings, auth=("admin",), errors=(404, 422), tags=("admin", "recordings"),
)
async def delete_recordings(request: web.Request) -> web.Response:
    claims = await require_user(request, roles=("admin",))
    cid = path_id(request)
    body = await parse_body(request, DeleteRecordings)
    recorder = request.app[RECORDER]
    if await recorder.catalog.consultation(str(cid)) is None:
        raise ApiError(404, "NOT_FOUND", "no such consultation")
    deleted = await retention.delete_consultation(
        recorder.store, recorder.catalog, cid, claims.user_id, body.reason
    )
    return web.json_response({"deleted": deleted})


async def _reader(request: web.Request, recording_id: uuid.UUID) -> tuple[uuid.UUID, bool]:
    """Who is reading, and whether as an admin (bearer or a signed URL issued to one)."""
    query = request.query
    if "sig" in query:
        try:
            exp, by, sig = int(query["exp"]), uuid.UUID(query["by"]), query["sig"]
        except (KeyError, ValueError):
            raise ApiError(403, "BAD_SIGNATURE", "malformed signed URL") from None
        problem = signing.check(_url_key(request), recording_id, exp, by, sig, time.time())
        if problem is not None:
            raise ApiError(403, problem, "this link is not valid (anymore)")
        return by, True
    claims = await require_user(request)
    if claims.role == "admin":
        return claims.user_id, True
    if not request.app[SETTINGS].recording.participant_access:
        raise ApiError(403, "FORBIDDEN", "recordings are for admins")
    return claims.user_id, False


@routes.get("/recordings/{id}/content")
@operation(
    "A recording's bytes (Range requests; admins, a signed URL, or the parties when allowed)",
    query=ContentQuery, auth="any", errors=(403, 404, 416), content_type=None,
    tags=("recordings",),
)
async def recording_content(request: web.Request) -> web.StreamResponse:
    recording_id = path_id(request)
    reader, as_admin = await _reader(request, recording_id)
    recorder = request.app[RECORDER]
    row = await recorder.catalog.get(recording_id)
    try:
        if row is None:
            raise FileNotFoundError(recording_id)
        size = await asyncio.to_thread(recorder.store.size, row["storage_key"])
    except FileNotFoundError:
        raise ApiError(404, "NOT_FOUND", "no such recording") from None
    if not as_admin:  # a participant, with participant access on
        info = await recorder.catalog.consultation(str(row["consultation_id"]))
        if info is None or str(reader) not in info.parties:
            raise ApiError(403, "FORBIDDEN", "not a party of this consultation")
    await audit.record(
        recorder.catalog.pool, reader, "recording_accessed", "recording", str(recording_id),
        {"range": request.headers.get("Range"), "method": request.method,
         "signed": "sig" in request.query},
    )
    etag = f'"{row["sha256"]}"' if row["sha256"] else None
    return await _send(request, recorder.store, row["storage_key"], size, etag)


def _range_applies(request: web.Request, etag: str | None) -> bool:
    """RFC 9110 §13.1.5 If-Range: a range is served only if the client's copy is this one (a
    strong match of the entity tag); otherwise the whole object, so a download resumed across
    a change (a live file finalised, a partial one recovered) never splices two files. A date
    never matches: no Last-Modified is sent."""
    condition = request.headers.get("If-Range")
    return condition is None or (etag is not None and condition == etag)


def _requested_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The one byte range asked for as ``(start, end)``, end exclusive (RFC 9110 §14.1.2);
    ``None``: the whole object. A range that cannot be served raises 416 (§15.5.17)."""
    try:
        asked = request.http_range  # one range; a list of ranges is refused as unsatisfiable
    except ValueError:
        asked = None
    if asked is not None and asked.start is None and asked.stop is None:
        return None
    if asked is not None and asked.start is not None:
        start, stop = asked.start, asked.stop
        if start < 0:  # a suffix: the last -start bytes
            start, stop = max(0, size + start), size
        else:
            stop = size if stop is None else min(stop, size)
        if start < stop:
            return start, stop
    raise ApiError(416, "RANGE_NOT_SATISFIABLE", "the asked range is not in the recording",
                   headers={"Content-Range": f"bytes */{size}"})


async def _send(
    request: web.Request, store: RecordingStore, key: str, size: int, etag: str | None
) -> web.StreamResponse:
    """The object's bytes, or the asked range of them read from storage as a ranged read.
    ``etag``: the file's SHA-256 once it is finalised (a file still being recorded has none)."""
    ext = key.rsplit(".", 1)[-1]
    response = web.StreamResponse(headers={
        "Content-Type": CONTENT_TYPES.get(ext, "application/octet-stream"),
        "Cache-Control": "private, no-store", "Accept-Ranges": "bytes",
    })
    if etag is not None:
        response.headers["ETag"] = etag
    span = _requested_range(request, size) if _range_applies(request, etag) else None
    start, end = span if span is not None else (0, size)
    if span is not None:
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    await response.prepare(request)
    if request.method != "HEAD" and end > start:
        async for chunk in store.read_range(key, start, end):
            await response.write(chunk)
    await response.write_eof()
    return response
