"""A socket lives no longer than the token that opened it (issue 11, point 12).

A WebSocket is authenticated once, at the handshake, but its token expires and can be revoked
(password change, "log out everywhere", a disabled or deleted account: api/revocation.py).
:class:`TokenGuard` re-checks the token every ``token_check_s`` and at its expiry, and closes the
socket with 4401 and an ``error`` frame naming why (``TOKEN_EXPIRED``, ``TOKEN_REVOKED``,
``ACCOUNT_DISABLED``, ``UNAUTHENTICATED``). A client keeps its socket past the expiry by sending
``auth`` with a fresh token of the same user (:meth:`TokenGuard.reauthenticate`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from core.db import is_connection_lost
from core.errors import CodedError
from core.tasks import stop_if_cancelled
from signalling import errors, protocol
from signalling.context import Authenticator, Identity
from signalling.errors import SignalError

log = structlog.get_logger(__name__)


class TokenGuard:
    """Owns one task per socket that closes it when its token stops being valid."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        authenticate: Authenticator,
        token: str,
        identity: Identity,
        check_s: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._ws = ws
        self._authenticate = authenticate
        self._token = token
        self.identity = identity
        self._check_s = check_s
        self._now = now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signalling-token-guard")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def reauthenticate(self, token: str) -> Identity:
        """Replace the socket's token with a fresh one of the same user (extends its life)."""
        identity = await self._authenticate(token)
        if identity.user_id != self.identity.user_id or identity.role != self.identity.role:
            raise SignalError(errors.FORBIDDEN, "the token belongs to another account")
        self._token, self.identity = token, identity
        return identity

    async def _run(self) -> None:
        while True:
            expires_at = self.identity.expires_at
            wait = self._check_s
            if expires_at is not None:
                wait = min(wait, max(0.0, expires_at - self._now()))
            await asyncio.sleep(wait)
            try:
                # Re-checks expiry, signature and the account (deleted, disabled, revoked).
                await self._authenticate(self._token)
            except CodedError as exc:  # a verdict: expired, revoked, disabled, deleted
                await self._expel(exc.code, str(exc))
                return
            except Exception as exc:
                stop_if_cancelled()  # a cancelled check may come back as a database error
                # No verdict on the token: the database is away (restart, failover) or too
                # busy to answer in time. Expelling would log clients out; check next round.
                log.warning("socket_token_check_deferred", error=repr(exc),
                            connection_lost=is_connection_lost(exc),
                            user_id=str(self.identity.user_id))

    async def _expel(self, code: str, message: str) -> None:
        log.info("socket_token_invalid", code=code, user_id=str(self.identity.user_id))
        try:
            await self._ws.send_str(protocol.error(None, code, message or "token invalid"))
        except (ConnectionError, RuntimeError):
            pass  # already going away
        await self._ws.close(code=errors.CLOSE_UNAUTHENTICATED, message=code.encode())
