"""The signalling socket (``GET /ws``), chat history and image uploads of a consultation.

History and uploads are for the consultation's participants and admins only.
"""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.errors import ApiError
from api.keys import HUB
from api.openapi import operation
from api.validation import parse_query
from billing.consultations import State
from signalling.upload_quota import UploadQuotaExceeded

routes = web.RouteTableDef()

_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def _sniff_ok(content_type: str, data: bytes) -> bool:
    """The bytes are what the Content-Type claims (so nothing else is stored as an image)."""
    if content_type == "image/webp":
        return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return any(data.startswith(m) for m in _MAGIC.get(content_type, ()))


def _consultation_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["consultation_id"])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", "no such consultation") from None


class HistoryQuery(BaseModel):
    before: int | None = Field(default=None, ge=1, description="Only messages with seq < before")
    limit: int = Field(default=50, ge=1, le=200)


class ChatMessageOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    seq: int = Field(description="Position in the consultation, from 1, gapless")
    sender_id: uuid.UUID
    client_id: str
    kind: str = Field(description="text | image")
    text: str | None
    upload_id: uuid.UUID | None
    masked: bool = Field(description="Contact details were hidden")
    created_at: str


class MessagesPage(BaseModel):
    messages: list[ChatMessageOut]
    next_before: int | None = Field(description="Pass as ``before`` for the previous page")


class UploadOut(BaseModel):
    upload_id: uuid.UUID
    content_type: str
    size_bytes: int
    sha256: str


def _quota_error(exc: UploadQuotaExceeded) -> ApiError:
    details = {"scope": exc.scope, "limit": exc.limit, "max": exc.value}
    if exc.scope == "consultation":  # final: this consultation holds all it may
        return ApiError(413, "UPLOAD_QUOTA_EXCEEDED", str(exc), details)
    retry = exc.retry_after_s or 1
    return ApiError(
        429, "UPLOAD_RATE_LIMITED", str(exc), {**details, "retry_after_s": retry},
        headers={"Retry-After": str(retry)},
    )


@routes.get("/ws")
@operation(
    "Signalling WebSocket (subprotocol kundlinow.v1; token as subprotocol bearer.<jwt> or a "
    "first auth message; see docs/PROTOCOL.md)",
    status=101,
    content_type=None,
    errors=(401,),
    tags=("signalling",),
)
async def websocket(request: web.Request) -> web.StreamResponse:
    """Upgrade to the signalling protocol (RFC 6455)."""
    return await request.app[HUB].handle(request)


@routes.get("/consultations/{consultation_id}/messages")
@operation(
    "Chat history of a consultation, oldest first",
    query=HistoryQuery,
    response=MessagesPage,
    auth="any",
    errors=(403, 404),
    tags=("signalling",),
)
async def list_messages(request: web.Request) -> web.Response:
    """A page of chat history, oldest first; page back with ``before`` = ``next_before``."""
    claims = await require_user(request)
    query = parse_query(request, HistoryQuery)
    hub = request.app[HUB]
    view = await hub.authorize(claims.user_id, claims.role, _consultation_id(request))
    messages = await hub.chat.before(view.id, query.before, query.limit)
    next_before = messages[0].seq if len(messages) == query.limit and messages[0].seq > 1 else None
    return web.json_response(
        {"messages": [m.to_json() for m in messages], "next_before": next_before}
    )


@routes.post("/consultations/{consultation_id}/uploads")
@operation(
    "Upload a chat image (raw body; Content-Type image/jpeg, png, webp or gif)",
    response=UploadOut,
    status=201,
    auth=("user", "consultant"),
    errors=(403, 404, 409, 413, 415, 429),
    tags=("signalling",),
)
async def upload_image(request: web.Request) -> web.Response:
    """Store an image (raw body, its type in Content-Type) for a ``message`` with ``upload_id``."""
    claims = await require_user(request)
    hub = request.app[HUB]
    cfg = hub.settings
    view = await hub.authorize(claims.user_id, claims.role, _consultation_id(request))
    if claims.user_id not in view.parties():
        raise ApiError(403, "FORBIDDEN", "only the participants may upload")
    if view.state != State.ACTIVE:
        raise ApiError(409, "CONSULT_NOT_ACTIVE", "the consultation is not active")
    content_type = request.content_type.lower()
    if content_type not in cfg.upload_types:
        raise ApiError(
            415, "UNSUPPORTED_MEDIA_TYPE", f"{content_type} is not accepted",
            {"accepted": sorted(cfg.upload_types)},
        )
    if request.content_length is not None and request.content_length > cfg.upload_max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "upload too large",
                       {"max_bytes": cfg.upload_max_bytes})
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > cfg.upload_max_bytes:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", "upload too large",
                           {"max_bytes": cfg.upload_max_bytes})
    if not data:
        raise ApiError(400, "EMPTY_UPLOAD", "the body is empty")
    if not _sniff_ok(content_type, bytes(data)):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the bytes are not a " + content_type)
    try:
        upload = await hub.chat.add_upload(
            view.id, claims.user_id, content_type, bytes(data), quota=cfg.upload_quota
        )
    except UploadQuotaExceeded as exc:
        raise _quota_error(exc) from None
    return web.json_response(
        {"upload_id": str(upload.id), "content_type": upload.content_type,
         "size_bytes": upload.size_bytes, "sha256": upload.sha256},
        status=201,
    )


@routes.get("/consultations/{consultation_id}/uploads/{upload_id}")
@operation(
    "The bytes of a chat image",
    auth="any",
    content_type=None,
    errors=(403, 404),
    tags=("signalling",),
)
async def get_upload(request: web.Request) -> web.Response:
    """The image bytes, to the participants and admins."""
    claims = await require_user(request)
    hub = request.app[HUB]
    view = await hub.authorize(claims.user_id, claims.role, _consultation_id(request))
    try:
        upload_id = uuid.UUID(request.match_info["upload_id"])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", "no such upload") from None
    found = await hub.chat.get_upload(upload_id)
    if found is None or found[0].consultation_id != view.id:
        raise ApiError(404, "NOT_FOUND", "no such upload")
    meta, data = found
    return web.Response(
        body=data,
        content_type=meta.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600",
                 "ETag": f'"{meta.sha256}"'},
    )
