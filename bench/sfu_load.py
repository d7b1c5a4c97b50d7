"""The load generator of ``bench/sfu.py`` (its own process; for Janus, its own netns).

1 publisher (pre-encoded file, ``decode=False``) and N subscribers per room that never
decode: each subscriber's DTLS transport hands decrypted RTP to a counter (packets, video
frames by marker bit) instead of aiortc's jitter buffer and decoder.

Prints ``MEASURE_START`` / ``MEASURE_END`` lines (the orchestrator samples the server's CPU
between them) and finally one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from media.ice import IcePolicy, apply_ice_policy


class ClipTrack(MediaStreamTrack):
    """Plays pre-demuxed packets paced by their timestamps, on the event loop, looping the clip
    (timestamps go on increasing), so a measured window longer than the clip still carries
    media throughout.

    aiortc's ``MediaPlayer`` runs one demux thread per player; with tens of publishers in
    one process those threads starve the event loop of the GIL (5 ms switch interval),
    sockets overflow and the load generator, not the server, loses packets."""

    def __init__(self, kind: str, packets: list[tuple[float, Any]]) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._pts = [round(at / float(packet.time_base)) for at, packet in packets]
        """Each packet's own timestamp: the packets are shared by every track of the clip."""
        last = packets[-1][0]
        step = last - packets[-2][0] if len(packets) > 1 else 0.02
        self._length = last + step
        """Seconds the clip lasts, the last packet's own duration included."""
        self._index = 0
        self._loops = 0
        self._start: float | None = None

    async def recv(self) -> Any:
        if self._index >= len(self._packets):
            self._index = 0
            self._loops += 1
        at, packet = self._packets[self._index]
        pts = self._pts[self._index]
        self._index += 1
        at += self._loops * self._length
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time() - at
        delay = self._start + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # aiortc reads the timestamp as soon as this returns, before any other track runs
        packet.pts = pts + round(self._loops * self._length / float(packet.time_base))
        return packet


def demux(path: str) -> dict[str, list[tuple[float, Any]]]:
    """All packets of the clip, per kind, with their presentation time in seconds."""
    out: dict[str, list[tuple[float, Any]]] = {"audio": [], "video": []}
    with av.open(path) as container:
        first: dict[str, int] = {}
        for packet in container.demux():
            if not packet.size or packet.pts is None:
                continue
            kind = packet.stream.type
            first.setdefault(kind, packet.pts)
            packet.pts -= first[kind]
            out[kind].append((float(packet.pts * packet.time_base), packet))
    return out


@dataclass
class Counter:
    video_pts: set[int] = field(default_factory=set)
    video_packets: int = 0
    audio_packets: int = 0
    frames: int = 0


def _count_only(pc: RTCPeerConnection, counter: Counter) -> None:
    """Count SRTP packets from their clear-text RTP header (RFC 3711 §3.1 leaves it
    unencrypted) before aioice queues them: no decryption, no parsing, no decoding.
    STUN, DTLS and SRTCP still go to aiortc, so ICE consent and RTCP keep working."""
    for t in pc.getTransceivers():
        if t.kind == "video":
            counter.video_pts.update(c.payloadType or 0 for c in t._codecs)
    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    original = connection.data_received
    video_pts = counter.video_pts

    def data_received(data: bytes, component: int) -> None:
        if 127 < data[0] < 192 and not 191 < data[1] < 224:  # SRTP, not SRTCP (RFC 5761 §4)
            if data[1] & 0x7F in video_pts:
                counter.video_packets += 1
                if data[1] & 0x80:
                    counter.frames += 1
            else:
                counter.audio_packets += 1
            return
        original(data, component)

    connection.data_received = data_received  # type: ignore[method-assign]


class HttpSignal:
    """The bench server's signalling (bench/sfu_server.py)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.base + path, json=body) as resp:
            resp.raise_for_status()
            data: dict[str, Any] = await resp.json()
            return data

    async def publish(self, room: str, pid: str, pc: RTCPeerConnection) -> None:
        await self._post("/join", {"room": room, "pid": pid, "publish": True})
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._post(
            "/offer", {"room": room, "pid": pid, "sdp": pc.localDescription.sdp}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def subscribe(self, room: str, pid: str, pc: RTCPeerConnection) -> None:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await self._post("/join", {"room": room, "pid": pid, "publish": False})
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._post(
            "/offer", {"room": room, "pid": pid, "sdp": pc.localDescription.sdp}
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        pass


class JanusSignal:
    """Janus videoroom over the HTTP transport (janus.plugin.videoroom API)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.feeds: dict[str, int] = {}
        self.sessions: list[int] = []
        self._keepalive: asyncio.Task[None] | None = None

    def _tx(self) -> str:
        return f"{random.getrandbits(64):016x}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"transaction": self._tx(), **body}
        async with self.session.post(self.base + path, json=body) as resp:
            data: dict[str, Any] = await resp.json()
            if data.get("janus") == "error":
                raise RuntimeError(data)
            return data

    async def _handle(self) -> tuple[int, int]:
        s = (await self._post("/janus", {"janus": "create"}))["data"]["id"]
        self.sessions.append(s)
        if self._keepalive is None:
            self._keepalive = asyncio.ensure_future(self._keep())
        h = (
            await self._post(f"/janus/{s}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        )["data"]["id"]
        return s, h

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(20)
            for s in list(self.sessions):
                try:
                    await self._post(f"/janus/{s}", {"janus": "keepalive"})
                except Exception:
                    pass

    async def _event(self, s: int, want_jsep: bool) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            async with self.session.get(f"{self.base}/janus/{s}?maxev=1") as resp:
                data: dict[str, Any] = await resp.json()
            if data.get("janus") == "event" and (not want_jsep or "jsep" in data):
                return data
        raise TimeoutError("no event from Janus")

    async def publish(self, room: str, pid: str, pc: RTCPeerConnection) -> None:
        s, h = await self._handle()
        await pc.setLocalDescription(await pc.createOffer())
        await self._post(
            f"/janus/{s}/{h}",
            {
                "janus": "message",
                "body": {
                    "request": "joinandconfigure",
                    "ptype": "publisher",
                    "room": int(room),
                    "audio": True,
                    "video": True,
                },
                "jsep": {"type": "offer", "sdp": pc.localDescription.sdp},
            },
        )
        ev = await self._event(s, want_jsep=True)
        self.feeds[room] = ev["plugindata"]["data"]["id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="answer"))

    async def subscribe(self, room: str, pid: str, pc: RTCPeerConnection) -> None:
        s, h = await self._handle()
        await self._post(
            f"/janus/{s}/{h}",
            {
                "janus": "message",
                "body": {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": int(room),
                    "feed": self.feeds[room],
                },
            },
        )
        ev = await self._event(s, want_jsep=True)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._post(
            f"/janus/{s}/{h}",
            {
                "janus": "message",
                "body": {"request": "start", "room": int(room)},
                "jsep": {"type": "answer", "sdp": pc.localDescription.sdp},
            },
        )

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        for s in self.sessions:
            try:
                await self._post(f"/janus/{s}", {"janus": "destroy"})
            except Exception:
                pass


async def run(args: argparse.Namespace) -> dict[str, Any]:
    policy = IcePolicy(host_addresses=(args.ice_host,))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        signal: HttpSignal | JanusSignal = (
            JanusSignal(http, args.url) if args.janus else HttpSignal(http, args.url)
        )
        pcs: list[RTCPeerConnection] = []
        clip = demux(args.file)
        tracks: list[ClipTrack] = []
        counters: list[Counter] = []
        rooms = [str(args.room_base + i) for i in range(args.rooms)]
        subs_per_room = args.subscribers
        started = time.monotonic()

        def new_pc() -> RTCPeerConnection:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc)
            return pc

        try:
            for room in rooms:  # publishers
                pc = new_pc()
                for kind in ("video", "audio"):
                    track = ClipTrack(kind, clip[kind])
                    tracks.append(track)
                    pc.addTransceiver(track, direction="sendonly")
                apply_ice_policy(pc, policy)
                await signal.publish(room, "pub", pc)
            await asyncio.sleep(1.0)

            sem = asyncio.Semaphore(8)

            async def add_subscriber(room: str, i: int) -> None:
                async with sem:
                    pc = new_pc()
                    counter = Counter()
                    counters.append(counter)
                    apply_ice_policy(pc, policy)
                    if args.janus:
                        # Janus offers: the policy must be in place before our answer
                        orig = pc.setRemoteDescription

                        async def srd(desc: RTCSessionDescription) -> None:
                            await orig(desc)
                            apply_ice_policy(pc, policy)

                        pc.setRemoteDescription = srd  # type: ignore[method-assign, assignment]
                    await signal.subscribe(room, f"sub{i}", pc)
                    _count_only(pc, counter)

            await asyncio.gather(
                *(add_subscriber(room, i) for room in rooms for i in range(subs_per_room))
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # poll aiortc's state, bounded
                if all(pc.connectionState == "connected" for pc in pcs):
                    break
                await asyncio.sleep(0.2)
            connected = sum(pc.connectionState == "connected" for pc in pcs)
            setup_s = time.monotonic() - started
            await asyncio.sleep(args.warmup)

            lags: list[float] = []

            async def watch_lag() -> None:
                while True:
                    t = time.monotonic()
                    await asyncio.sleep(0.01)
                    lags.append(time.monotonic() - t - 0.01)

            lag_task = asyncio.ensure_future(watch_lag())
            before = [(c.frames, c.video_packets, c.audio_packets) for c in counters]
            print("MEASURE_START", flush=True)
            t0 = time.monotonic()
            await asyncio.sleep(args.duration)
            elapsed = time.monotonic() - t0
            print("MEASURE_END", flush=True)
            after = [(c.frames, c.video_packets, c.audio_packets) for c in counters]
            lag_task.cancel()
            lags.sort()
            fps = sorted((a[0] - b[0]) / elapsed for a, b in zip(after, before, strict=True))
            return {
                "subscribers": len(counters),
                "publishers": len(rooms),
                "connected": connected,
                "peer_connections": len(pcs),
                "setup_s": round(setup_s, 1),
                "loop_lag_p50_ms": round(lags[len(lags) // 2] * 1000, 1) if lags else None,
                "loop_lag_max_ms": round(lags[-1] * 1000, 1) if lags else None,
                "seconds": round(elapsed, 2),
                "fps_min": round(fps[0], 1) if fps else 0,
                "fps_median": round(fps[len(fps) // 2], 1) if fps else 0,
                "fps_mean": round(sum(fps) / len(fps), 1) if fps else 0,
                "video_pps": round(
                    sum(a[1] - b[1] for a, b in zip(after, before, strict=True)) / elapsed
                ),
                "audio_pps": round(
                    sum(a[2] - b[2] for a, b in zip(after, before, strict=True)) / elapsed
                ),
            }
        finally:
            await signal.close()
            for track in tracks:
                track.stop()
            await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--janus", action="store_true")
    parser.add_argument("--file", required=True)
    parser.add_argument("--rooms", type=int, default=1)
    parser.add_argument("--room-base", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=1, help="per room")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--ice-host", default="127.0.0.1")
    args = parser.parse_args()
    result = asyncio.run(asyncio.wait_for(run(args), timeout=args.duration + args.warmup + 150))
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
