"""Checks on a client's SDP before it reaches aiortc (RFC 8866 syntax, RFC 8839 §5 ICE
credentials, RFC 8842 §5 DTLS fingerprint): what aiortc would choke on, or accept and then
fail on mid-negotiation, is refused with ``BAD_SDP`` while the peer connection is untouched."""

from __future__ import annotations

from aiortc.sdp import SessionDescription

from media.errors import MediaError, MediaErrorCode

MAX_SDP_BYTES = 256 * 1024


def validate_sdp(sdp: str, expected_type: str) -> None:
    """Raise ``MediaError(BAD_SDP)`` unless ``sdp`` parses and every media section carries ICE
    credentials and DTLS parameters."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP_BYTES:
        raise MediaError(MediaErrorCode.BAD_SDP, f"{expected_type} is not an SDP document")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:
        raise MediaError(MediaErrorCode.BAD_SDP, f"unparsable SDP: {exc}") from exc
    if not parsed.media:
        raise MediaError(MediaErrorCode.BAD_SDP, "SDP has no media section")
    for media in parsed.media:
        ice = media.ice
        if ice is None or not ice.usernameFragment or not ice.password or media.dtls is None:
            raise MediaError(MediaErrorCode.BAD_SDP, "SDP lacks ICE credentials or DTLS")
