"""What the SFU tells a consultation's session log about each party's peer connection.

The engine reports through a :data:`MediaEventSink` (the composition root binds it to
``core.session_log.EventLog``, which only queues): ``joined``/``left`` (the party's peer
connection on the SFU), ``ice_state_changed`` with the types of the selected candidate pair,
``dtls_state_changed`` and ``first_media`` once per published track. Every call returns at once:
these fire from aiortc callbacks and the RTP path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection

from media.aiortc_glue import selected_pair

MediaEventSink = Callable[[str, str, str, dict[str, Any]], None]
"""(room id, participant id, kind, data) -> queued; must not block or raise."""


def no_events(room_id: str, participant_id: str, kind: str, data: dict[str, Any]) -> None:
    """The sink until the composition root binds one (and in tests without a session log)."""


def ice_state_data(pc: RTCPeerConnection) -> dict[str, Any]:
    """``ice_state_changed`` details: aiortc's ICE connection state (it has no ``connected``:
    ``completed`` means a pair is nominated and media can flow) and, once there, the pair."""
    state = pc.iceConnectionState
    return {"state": state, **(selected_pair(pc) if state == "completed" else {})}
