"""Settings of the media service (the SFU), built by ``kundlinow.config``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from media.congestion import CongestionSettings


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Everything the SFU needs to know about the network and its budgets."""

    ice_host_addresses: tuple[str, ...] = ()
    """Addresses to gather ICE host candidates on (RFC 8445 §5.1.1.1). Empty: every
    non-loopback interface, as aioice does by default. Tests use ``("127.0.0.1",)``."""
    public_ip: str | None = None
    """1:1 NAT: advertise this address as a server-reflexive candidate with the same port
    as each IPv4 host candidate (RFC 8445 §5.1.1.2), like Janus' ``nat_1_1_mapping``."""
    udp_port_min: int = 0
    """Lowest UDP port for host candidates; 0 with ``udp_port_max`` 0 means ephemeral."""
    udp_port_max: int = 0
    """Highest UDP port for host candidates (inclusive)."""
    udp_port: int | None = None
    """The node's one UDP port for every peer connection (``media.udp_mux``), on each of
    ``ice_host_addresses`` (required then); 0 lets the kernel pick one at start. None: a
    socket per peer connection, from ``udp_port_min..udp_port_max`` or ephemeral."""
    udp_recv_buffer_bytes: int = 4 * 1024 * 1024
    """SO_RCVBUF of each media socket (the kernel caps it at ``net.core.rmem_max``): absorbs
    the moments the single-threaded server is not scheduled, instead of dropping packets."""
    ice_servers: tuple[dict[str, Any], ...] = ()
    """RTCIceServer dictionaries (``urls``, ``username``, ``credential``) from ``turn/``."""
    ice_servers_factory: Callable[[], Sequence[Mapping[str, Any]]] | None = None
    """Called for every new peer connection for fresh RTCIceServer dictionaries (TURN REST
    credentials expire: ``turn.ice.sfu_ice_servers_factory``); when set, wins over
    ``ice_servers``. ``create_app`` sets it when TURN is configured."""
    pli_interval_s: float = 0.5
    """Minimum interval between PLIs sent to one publisher (RFC 4585 §6.3.1)."""
    nack_history: int = 1024
    """Packets kept per published video track to answer NACKs (RFC 4585 §6.2.1); a power of 2."""
    remb_bitrate_bps: int = 1_500_000
    """Receiver-estimated maximum bitrate advertised to publishers (draft-alvestrand-rmcat-remb)
    while no subscriber's downlink estimate is lower; the start and ceiling of each estimate."""
    congestion: CongestionSettings = field(default_factory=CongestionSettings)
    """Floors and shares of each subscriber's downlink (``media.congestion``)."""
    rtcp_interval_s: float = 1.0
    """Mean RTCP report interval (RFC 3550 §6.2), randomised over [0.5, 1.5] x this."""
    video_codecs: tuple[str, ...] = field(default=("VP8", "H264"))
    """Video codecs the SFU negotiates, in order of preference."""

    def __post_init__(self) -> None:
        if (self.udp_port_min, self.udp_port_max) != (0, 0) and not (
            0 < self.udp_port_min <= self.udp_port_max <= 65535
        ):
            raise ValueError("udp_port_min..udp_port_max must be a valid port range")
        if self.udp_port is not None:
            if not 0 <= self.udp_port <= 65535:
                raise ValueError("udp_port must be a port number")
            if self.udp_port_min or self.udp_port_max:
                raise ValueError("udp_port (one port) excludes udp_port_min/max (a range)")
            if not self.ice_host_addresses:
                raise ValueError("udp_port needs ice_host_addresses (the addresses to bind it on)")
        if self.nack_history & (self.nack_history - 1) or self.nack_history < 64:
            raise ValueError("nack_history must be a power of two >= 64")
