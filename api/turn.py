"""``GET /turn/credentials``: the ICE server list with a fresh TURN credential for the caller.

The credential is a TURN REST API credential (draft-uberti-behave-turn-rest-00 §2.2) that coturn
checks with its ``use-auth-secret`` (see ``turn/credentials.py``); the list has the shape of
WebRTC's ``RTCIceServer`` dictionaries, so a browser passes ``ice_servers`` unchanged to
``new RTCPeerConnection({iceServers})``. With no TURN configured the list is empty.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from api.auth import require_user
from api.errors import ApiError
from api.keys import TURN_GRANTS, TURN_SETTINGS
from api.openapi import operation
from turn.grants import TurnRateLimited

routes = web.RouteTableDef()


class IceServerOut(BaseModel):
    """One ``RTCIceServer`` (W3C webrtc-pc §4.2.1)."""

    urls: list[str] = Field(description="stun:/turn:/turns: URIs (RFC 7064, RFC 7065)")
    username: str | None = Field(None, description="TURN username: <expiry unix time>:<user id>")
    credential: str | None = Field(
        None, description="TURN password: base64(HMAC-SHA1(secret, username))"
    )


class TurnCredentialsOut(BaseModel):
    ice_servers: list[IceServerOut]
    ttl_s: int = Field(description="Lifetime of the TURN credential in seconds")
    expires_at: int | None = Field(
        description="Unix time when the TURN credential expires; null without TURN"
    )


@routes.get("/turn/credentials")
@operation(
    "ICE servers with a fresh TURN credential",
    response=TurnCredentialsOut,
    auth="any",
    errors=(403, 429),
    tags=("turn",),
)
async def turn_credentials(request: web.Request) -> web.Response:
    """The caller's ICE servers; 401 without a valid access token, 403 ``TURN_NOT_ALLOWED``
    outside an accepted consultation (astrologers: while online), 429 past the per-user limit
    (shared with ``join_consult``; see turn/grants.py)."""
    claims = await require_user(request)
    try:
        servers = await request.app[TURN_GRANTS].issue(claims.user_id, claims.role)
    except TurnRateLimited as exc:
        raise ApiError(
            429,
            "RATE_LIMITED",
            str(exc),
            {"retry_after_s": exc.retry_after_s, "scope": "user"},
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    # The TURN username is "<expiry unix time>:<user id>" (draft-uberti-behave-turn-rest-00).
    expiry = next((int(s["username"].split(":", 1)[0]) for s in servers if "username" in s), None)
    body = TurnCredentialsOut(
        ice_servers=[IceServerOut.model_validate(server) for server in servers],
        ttl_s=request.app[TURN_SETTINGS].ttl_s,
        expires_at=expiry,
    )
    payload = body.model_dump()
    # No "username": null on STUN entries: WebIDL would turn it into the string "null".
    payload["ice_servers"] = [s.model_dump(exclude_none=True) for s in body.ice_servers]
    # A credential is a secret for its lifetime: never cached by browsers or proxies.
    return web.json_response(payload, headers={"Cache-Control": "no-store"})
