"""Settings of the signalling hub (built by ``kundlinow.config``; nothing here reads the env)."""

from __future__ import annotations

from dataclasses import dataclass, field

from signalling.upload_quota import UploadQuota

MASKABLE = frozenset({"phone", "email", "link", "social"})


@dataclass(frozen=True, slots=True)
class SignallingSettings:
    """Limits and timers of the WebSocket hub."""

    request_timeout_s: float = 60.0
    """A ``requested`` consultation not accepted within this ends with ``timeout``."""
    reconnect_grace_s: float = 30.0
    """A party that drops and is not back within this ends the consultation (``disconnected``)."""
    max_frame_bytes: int = 64 * 1024
    """Largest accepted client frame; larger ones get ``FRAME_TOO_LARGE`` (socket stays open)."""
    hard_frame_bytes: int = 1024 * 1024
    """Transport limit: a frame above this closes the socket (1009), it is never buffered."""
    rate_per_s: float = 20.0
    """Sustained client messages per second per connection (token bucket)."""
    rate_burst: int = 40
    """Token bucket size: messages a connection may send at once."""
    max_connections_per_user: int = 5
    """Concurrent sockets per user across all nodes (devices, tabs); checked and counted in one
    atomic step (a Redis script with several nodes), so simultaneous handshakes cannot pass it.
    A refused socket gets ``TOO_MANY_CONNECTIONS`` and close code 4429."""
    heartbeat_s: float = 20.0
    """WebSocket ping interval; no pong within half of it closes the socket."""
    auth_timeout_s: float = 5.0
    """Without a token in ``Sec-WebSocket-Protocol``, the first ``auth`` must come within this
    (a client sends it right after the socket opens; an idle unauthenticated socket is a cost)."""
    max_unauthenticated_per_address: int = 10
    """Sockets one client address (``request.remote``, after TRUSTED_PROXIES) may hold on a node
    before they authenticate; more get HTTP 429 ``TOO_MANY_CONNECTIONS`` before the upgrade."""
    token_check_s: float = 10.0
    """How often an open socket's token is re-checked (revoked, disabled, deleted); it is also
    checked at its expiry (signalling/tokenguard.py)."""
    masking: frozenset[str] = field(default_factory=lambda: MASKABLE)
    """Which of ``phone``, ``email``, ``link``, ``social`` (app names and handles) are masked in
    chat text and in display names and astrologer bios (empty: masking off)."""
    upload_max_bytes: int = 5 * 1024 * 1024
    """Largest chat image upload."""
    upload_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
    )
    """Accepted upload content types (checked against the file's magic bytes too)."""
    upload_quota: UploadQuota = field(default_factory=UploadQuota)
    """Images and bytes per consultation and per user per day (signalling/upload_quota.py)."""
    presence_node_ttl_s: float = 10.0
    """Redis presence: a node that misses heartbeats this long is dead; its users go offline."""
    presence_heartbeat_s: float = 3.0
    """Redis presence: how often a node renews its liveness key and re-asserts its counts."""
    chat_writers: int = 1
    """Dedicated PostgreSQL connections storing chat messages (the hot path), each carrying one
    group-committed batch at a time. With one, batches commit in the order they were formed and
    everything arriving meanwhile forms the next one; more writers overlap commits but make
    smaller batches, i.e. more commits and more CPU (measured: 600 msg/s, 1 writer vs 2, p99
    21-26 vs 67-70 ms, PostgreSQL 570-750 vs 850-1,390 us per message)."""
    waitlist_offer_s: float = 60.0
    """How long a waitlisted caller holds the freed slot before it passes to the next one."""
    recording: str = "off"
    """What the parties are told is recorded (``consult_state``): ``off``, ``audio`` or
    ``all``; ``create_app`` sets the recorder's ``RECORDING`` here."""
