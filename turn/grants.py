"""Who is given TURN credentials, and how often (one rule for REST and the socket).

A TURN credential lets its holder relay any traffic through our server for its lifetime
(draft-uberti-behave-turn-rest-00 §2.2; RFC 8656 allocations), so it is minted only for
someone about to carry a call: a party of an accepted (``active``) consultation, or an
astrologer who is online (a call may come at any moment). ``GET /turn/credentials`` and the
``join_consult`` acknowledgement both mint through :meth:`TurnGrants.issue`, under one per-user
limit (``TurnSettings.credentials_limit`` per ``credentials_window_s``); coturn's user quota
counts allocations per username, and every credential has its own username, so this limit is
what bounds one person's concurrent relay allocations.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from core.errors import CodedError
from core.ratelimit import RateLimiter
from turn.config import TurnSettings
from turn.ice import IceServer, build_ice_servers

_PARTY_SQL = """
    SELECT EXISTS (SELECT 1 FROM consultations
                   WHERE state = 'active' AND (caller_id = $1 OR consultant_id = $1)
                     AND ($2::uuid IS NULL OR id = $2))
"""


class TurnNotAllowed(CodedError):
    """403: the user is in no accepted consultation (and is not an online astrologer)."""

    status = 403
    code = "TURN_NOT_ALLOWED"


class TurnRateLimited(CodedError):
    """429: the user's credentials for this window are used up."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "too many TURN credential requests; try again later",
            {"retry_after_s": retry_after_s, "scope": "user"},
        )
        self.retry_after_s = retry_after_s


class TurnGrants:
    def __init__(
        self,
        settings: TurnSettings,
        pool: asyncpg.Pool,
        limiter: RateLimiter,
        is_online: Callable[[UUID], Awaitable[bool]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._limiter = limiter
        self._is_online = is_online
        self._clock = clock

    async def issue(
        self, user_id: UUID, role: str, consultation_id: UUID | None = None
    ) -> list[IceServer]:
        """The user's ICE servers with a fresh TURN credential, for ``consultation_id`` if given
        (else any accepted consultation of theirs). :class:`TurnNotAllowed`,
        :class:`TurnRateLimited`. Without a ``turn:`` URI there is no secret to protect."""
        if not self.settings.turn_urls:
            return self.stun_only()
        s = self.settings
        decision = await self._limiter.hit(
            f"turn:credentials:{user_id}", s.credentials_limit, s.credentials_window_s
        )
        if not decision.allowed:
            raise TurnRateLimited(decision.retry_after_s)
        party = await self._pool.fetchval(_PARTY_SQL, user_id, consultation_id)
        if not party and not (role == "consultant" and await self._is_online(user_id)):
            raise TurnNotAllowed("TURN credentials are for parties of an accepted consultation")
        return build_ice_servers(s, str(user_id), now=self._clock())

    def stun_only(self) -> list[IceServer]:
        """The servers that need no credential (STUN), for anyone."""
        return [{"urls": list(self.settings.stun_urls)}] if self.settings.stun_urls else []
