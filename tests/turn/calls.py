"""Two aiortc peers holding a one-way audio call, for the relay tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack


@dataclass(frozen=True, slots=True)
class CallOutcome:
    connected: bool
    """Both peer connections reached ``connected``."""
    frames_received: int
    """Audio frames the callee decoded from the caller."""
    caller_local_types: tuple[str, ...]
    """Types of the caller's gathered candidates."""
    caller_pair: tuple[str, str] | None
    """(local, remote) candidate types of the caller's selected pair."""
    callee_pair: tuple[str, str] | None
    """(local, remote) candidate types of the callee's selected pair."""
    caller_relay_server: tuple[str, int] | None
    """The TURN server the caller's selected local candidate goes through."""


def selected_pair(pc: RTCPeerConnection) -> tuple[tuple[str, str], object] | None:
    """The nominated ICE candidate pair (RFC 8445 §8.1.1) of ``pc``'s single (bundled)
    transport as candidate types, and its aioice protocol.

    aiortc has no public API for the selected pair (getStats() has no candidate-pair entries),
    so this reads aioice's ``Connection._nominated``.
    """
    transports = {t.sender.transport for t in pc.getTransceivers()}
    for dtls in transports:
        connection = dtls.transport._connection
        pair = connection._nominated.get(1)
        if pair is not None:
            return (pair.local_candidate.type, pair.remote_candidate.type), pair.protocol
    return None


async def _count_frames(track: MediaStreamTrack, counter: list[int]) -> None:
    with contextlib.suppress(Exception):
        while True:
            await track.recv()
            counter[0] += 1


async def relay_call(
    caller_ice_servers: list[RTCIceServer],
    *,
    frames: int = 25,
    within_s: float = 30.0,
) -> CallOutcome:
    """Caller (relay-only, RFC 9429 §3.5.3 / webrtc-pc ``iceTransportPolicy="relay"``) sends
    audio to a callee that uses host candidates. Returns once the callee has ``frames`` frames,
    or after ``within_s`` s, or when a side fails."""
    caller = RTCPeerConnection(
        RTCConfiguration(
            iceServers=caller_ice_servers,
            iceTransportPolicy=RTCIceTransportPolicy("relay"),
        )
    )
    callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = [0]
    tasks: list[asyncio.Task[None]] = []
    track_arrived = asyncio.Event()

    @callee.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.create_task(_count_frames(track, counter)))
        track_arrived.set()

    try:
        caller.addTrack(AudioStreamTrack())
        await caller.setLocalDescription(await caller.createOffer())
        caller_types = tuple(
            c.type
            for t in caller.getTransceivers()
            for c in t.sender.transport.transport.iceGatherer.getLocalCandidates()
        )
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            states = {caller.connectionState, callee.connectionState}
            if states & {"failed", "closed"}:
                break
            if counter[0] >= frames:
                break
            await asyncio.sleep(0.05)

        connected = caller.connectionState == "connected" and callee.connectionState == "connected"
        caller_sel = selected_pair(caller)
        callee_sel = selected_pair(callee)
        relay_server = None
        if caller_sel is not None:
            relay_server = getattr(
                getattr(caller_sel[1], "transport", None), "_TurnTransport__inner_protocol", None
            )
            relay_server = getattr(relay_server, "server", None)
        return CallOutcome(
            connected=connected,
            frames_received=counter[0],
            caller_local_types=caller_types,
            caller_pair=caller_sel[0] if caller_sel else None,
            callee_pair=callee_sel[0] if callee_sel else None,
            caller_relay_server=relay_server,
        )
    finally:
        await caller.close()
        await callee.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
