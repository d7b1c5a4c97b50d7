"""Settings of the TURN relay as the service sees them.

Only ``kundlinow/config.py`` reads the environment; it builds a :class:`TurnSettings` from
``TURN_URLS``, ``TURN_SECRET``, ``TURN_TTL_S`` and ``TURN_REALM`` and reports a ``ValueError``
raised here as a bad value of the variable named in its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Default lifetime of TURN REST credentials: one hour. draft-uberti-behave-turn-rest-00 §2.2
#: recommends one day; shorter limits what a leaked credential is worth.
DEFAULT_TTL_S = 3600
#: Longest lifetime accepted: 24 hours, the draft's recommended value. Longer would turn a
#: leaked credential into a long-lived relay for anyone.
MAX_TTL_S = 86400

#: URI schemes of RFC 7064 (stun, stuns) and RFC 7065 (turn, turns).
STUN_SCHEMES = ("stun:", "stuns:")
TURN_SCHEMES = ("turn:", "turns:")


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """Where the STUN/TURN servers are and how credentials for them are minted."""

    urls: tuple[str, ...] = ()
    """STUN and TURN URIs handed to clients, e.g. ``turn:turn.example.com:3478?transport=udp``
    (RFC 7065) or ``stun:turn.example.com:3478`` (RFC 7064). Empty: no TURN, host candidates
    only."""
    secret: str | None = field(default=None, repr=False)
    """The secret shared with coturn (``static-auth-secret``); required with any ``turn:`` URI."""
    ttl_s: int = DEFAULT_TTL_S
    """Lifetime of each credential in seconds, 1 … :data:`MAX_TTL_S`."""
    realm: str | None = None
    """coturn's ``realm``; informational (clients learn it from the 401 challenge, RFC 8489
    §9.2.4), kept so the deployment can check both sides agree."""
    credentials_limit: int = 30
    """TURN credentials one user may be given per ``credentials_window_s``, over REST and
    ``join_consult`` together (``TURN_CREDENTIALS_LIMIT``); past it: 429 ``RATE_LIMITED``."""
    credentials_window_s: int = 60
    """The window of ``credentials_limit`` in seconds (``TURN_CREDENTIALS_WINDOW_S``)."""

    def __post_init__(self) -> None:
        if isinstance(self.ttl_s, bool) or not isinstance(self.ttl_s, int):
            raise ValueError(f"TURN_TTL_S must be an integer number of seconds, got {self.ttl_s!r}")
        if not 1 <= self.ttl_s <= MAX_TTL_S:
            raise ValueError(
                f"TURN_TTL_S must be between 1 and {MAX_TTL_S} seconds, got {self.ttl_s}"
            )
        for url in self.urls:
            if not url.startswith(STUN_SCHEMES + TURN_SCHEMES):
                raise ValueError(
                    f"TURN_URLS entries must start with stun:, stuns:, turn: or turns:, got {url!r}"
                )
        if self.turn_urls and not self.secret:
            raise ValueError("TURN_SECRET must be set when TURN_URLS lists a turn:/turns: URI")

    @property
    def stun_urls(self) -> tuple[str, ...]:
        """The ``stun:``/``stuns:`` URIs, which need no credentials."""
        return tuple(u for u in self.urls if u.startswith(STUN_SCHEMES))

    @property
    def turn_urls(self) -> tuple[str, ...]:
        """The ``turn:``/``turns:`` URIs, which need credentials."""
        return tuple(u for u in self.urls if u.startswith(TURN_SCHEMES))

    @property
    def enabled(self) -> bool:
        """Whether any STUN or TURN server is configured."""
        return bool(self.urls)


def parse_urls(value: str) -> tuple[str, ...]:
    """Split a comma- or whitespace-separated ``TURN_URLS`` value into URIs."""
    return tuple(part for part in value.replace(",", " ").split() if part)
