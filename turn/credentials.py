"""TURN REST API credentials, as coturn's ``use-auth-secret`` mode checks them.

The scheme is draft-uberti-behave-turn-rest-00 ("A REST API For Access To TURN Services"):

- §2.2: the username is ``<expiry unix timestamp>:<user id>`` and the password is
  ``base64(HMAC-SHA1(shared secret, username))``; the TURN server holds the same secret,
  recomputes the password and refuses the username once its timestamp has passed.
- The TURN server then authenticates with the ordinary long-term credential mechanism of
  RFC 8489 §9.2 (STUN), which RFC 8656 §5 / RFC 5766 §4 (TURN) require for Allocate: the
  client's MESSAGE-INTEGRITY key is ``MD5(username ":" realm ":" password)``. A request with an
  expired or forged credential gets 401 Unauthorized (RFC 8489 §9.2.4).

No state is kept: any node holding the secret can mint credentials, and coturn needs no
user database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from turn.config import DEFAULT_TTL_S, MAX_TTL_S

#: coturn's default ``rest-api-separator`` between timestamp and user id.
SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """One time-limited TURN credential."""

    username: str
    """``<expiry>:<user id>`` (draft-uberti-behave-turn-rest-00 §2.2)."""
    password: str
    """base64(HMAC-SHA1(secret, username)) — the RFC 8489 long-term password."""
    expires_at: int
    """Unix time after which coturn refuses the credential."""


def compute_password(secret: str, username: str) -> str:
    """The password coturn expects for ``username`` (draft-uberti-behave-turn-rest-00 §2.2)."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def make_credential(
    secret: str,
    user_id: str,
    *,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> TurnCredential:
    """Mint a credential for ``user_id`` valid for ``ttl_s`` seconds from ``now``.

    ``now`` defaults to the current Unix time; tests pass a past time to mint an expired
    credential. Raises ``ValueError`` for an empty secret, a user id that is empty or holds the
    separator (coturn would read a different timestamp), or a TTL outside 1 … 86400 s.
    """
    if not secret:
        raise ValueError("TURN secret must not be empty")
    if not user_id or SEPARATOR in user_id:
        raise ValueError(f"TURN user id must be non-empty and free of {SEPARATOR!r}")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
        raise ValueError(f"TURN credential TTL must be 1 … {MAX_TTL_S} s, got {ttl_s!r}")
    issued = int(time.time() if now is None else now)
    expires_at = issued + ttl_s
    username = f"{expires_at}{SEPARATOR}{user_id}"
    return TurnCredential(
        username=username,
        password=compute_password(secret, username),
        expires_at=expires_at,
    )
