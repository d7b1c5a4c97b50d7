"""The ICE server list handed to browsers and to aiortc.

The list has the shape of WebRTC's ``RTCIceServer`` dictionary (W3C webrtc-pc §4.2.1):
``{"urls": [...], "username": ..., "credential": ...}``. STUN URIs (RFC 7064) go in one entry
without credentials, TURN URIs (RFC 7065) in another with a fresh TURN REST credential
(draft-uberti-behave-turn-rest-00), so a browser can pass it unchanged to
``new RTCPeerConnection({iceServers})`` and the server can pass it to
:func:`to_rtc_ice_servers` for its own aiortc peer connections.

With no servers configured the list is empty: ICE then uses host candidates only
(RFC 8445 §5.1.1.1), which is enough when the server has a public address.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NotRequired, TypedDict

from aiortc import RTCIceServer

from turn.config import TurnSettings
from turn.credentials import make_credential


class IceServer(TypedDict):
    """One ``RTCIceServer`` dictionary (W3C webrtc-pc §4.2.1)."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


def build_ice_servers(
    settings: TurnSettings, user_id: str, *, now: float | None = None
) -> list[IceServer]:
    """ICE servers for ``user_id``, with a TURN credential minted now (or at ``now``)."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls:
        # TurnSettings guarantees a secret whenever there is a turn: URI.
        secret = settings.secret or ""
        credential = make_credential(secret, user_id, ttl_s=settings.ttl_s, now=now)
        servers.append(
            {
                "urls": list(settings.turn_urls),
                "username": credential.username,
                "credential": credential.password,
            }
        )
    return servers


def ice_servers_factory(
    settings: TurnSettings, user_id: str, *, clock: Callable[[], float] = time.time
) -> Callable[[], list[IceServer]]:
    """A callable returning a fresh list on every call.

    For long-lived users of TURN such as the SFU: credentials expire after ``ttl_s``, so each new
    peer connection should ask for a new list rather than keep one from start-up.
    """

    def factory() -> list[IceServer]:
        return build_ice_servers(settings, user_id, now=clock())

    return factory


#: The TURN user id of the SFU's own peer connections (coturn logs it; quotas count it).
SFU_TURN_USER = "sfu"


def sfu_ice_servers_factory(settings: TurnSettings) -> Callable[[], list[IceServer]] | None:
    """The factory for the SFU's own peer connections, or None without a ``turn:`` URI.

    With it, each SFU peer connection also gathers a relayed candidate (RFC 8656), for an SFU
    that is itself behind a NAT or firewall; ICE picks the best pair (RFC 8445 §6.1.2.6).
    """
    if not settings.turn_urls:
        return None
    return ice_servers_factory(settings, SFU_TURN_USER)


def to_rtc_ice_servers(servers: Sequence[IceServer]) -> list[RTCIceServer]:
    """The same list as aiortc ``RTCIceServer`` objects for ``RTCConfiguration(iceServers=…)``."""
    return [
        RTCIceServer(
            urls=list(server["urls"]),
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in servers
    ]
