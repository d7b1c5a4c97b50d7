"""Access tokens (PyJWT, HS256 pinned) and the request guard every handler uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
import structlog
from aiohttp import web

from api.config import ApiSettings
from api.errors import ApiError
from api.keys import SETTINGS, USER_STATUS

ALGORITHM = "HS256"
Role = Literal["user", "consultant", "admin"]
ROLES: tuple[Role, ...] = ("user", "consultant", "admin")


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: uuid.UUID
    """The ``sub`` claim."""
    role: Role
    token_id: str
    """The ``jti`` claim: unique per token, for audit."""
    expires_at: datetime
    version: int = 0
    """The ``ver`` claim: the account's ``token_version`` when issued (api/revocation.py)."""


def issue_token(
    settings: ApiSettings,
    user_id: uuid.UUID,
    role: Role,
    *,
    version: int = 0,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "role": role,
        "ver": version,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=settings.jwt_ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, settings.jwt_secret, algorithm=ALGORITHM)


def decode_token(settings: ApiSettings, token: str) -> Claims:
    """Verify signature, expiry and shape; raises 401 ``UNAUTHENTICATED`` otherwise.

    The algorithm list is pinned, so ``alg: none`` and algorithm-confusion tokens are refused.
    """
    try:
        payload = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "iat", "exp", "jti", "ver"]},
        )
        role, version = payload["role"], payload["ver"]
        if role not in ROLES:
            raise jwt.InvalidTokenError("unknown role")
        if not isinstance(version, int) or isinstance(version, bool):
            raise jwt.InvalidTokenError("bad version")
        return Claims(
            user_id=uuid.UUID(payload["sub"]),
            role=role,
            token_id=str(payload["jti"]),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            version=version,
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "TOKEN_EXPIRED", "access token has expired") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise ApiError(401, "UNAUTHENTICATED", "access token is invalid") from None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def require_user(request: web.Request, roles: tuple[Role, ...] | None = None) -> Claims:
    """The authenticated caller; 401 without a valid token or when it was revoked (deleted or
    disabled account, older token version: api/revocation.py), 403 when the role is not
    allowed."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "UNAUTHENTICATED", "an access token is required")
    claims = decode_token(request.app[SETTINGS], token)
    await request.app[USER_STATUS].verify(claims.user_id, claims.version)
    structlog.contextvars.bind_contextvars(user_id=str(claims.user_id))
    if roles is not None and claims.role not in roles:
        raise ApiError(403, "FORBIDDEN", "this action is not allowed for your role")
    return claims
