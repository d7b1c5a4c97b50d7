"""The server side of ``bench/sfu.py``: one process, either our SFU or aiortc's stock relay.

A tiny HTTP signalling API (bench only, no auth) in front of either:

* ``--mode sfu``: ``media.MediaEngine`` (RTP forwarding, no decode/encode);
* ``--mode relay``: aiortc's ``MediaRelay`` as its examples use it — the publisher's tracks
  are decoded once and every subscriber's sender encodes its own copy;
* ``--mode frames``: design option (a), encoded-frame pass-through (no decode/encode, but
  aiortc's jitter buffer on receive and its packetiser per subscriber).

    POST /join   {"room", "pid", "publish"}
    POST /offer  {"room", "pid", "sdp"}        -> {"sdp"}
    POST /leave  {"room", "pid"}
    GET  /counters                             -> {"received", "forwarded"} (sfu only)

Prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import gc
import logging
import queue
import signal
import sys
import time
from typing import Any

import av
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from core.gcpolicy import freeze_startup_heap
from media.config import MediaSettings
from media.congestion import CongestionSettings
from media.engine import MediaEngine
from media.ice import IcePolicy, apply_ice_policy

LAG_TICK_S = 0.1
"""Event-loop lag sampling interval of the bench server."""


class RelayServer:
    """aiortc's stock fan-out: decode once, encode per subscriber."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.relay = MediaRelay()
        self.policy = IcePolicy(host_addresses=hosts)
        self.pcs: dict[tuple[str, str], RTCPeerConnection] = {}
        self.tracks: dict[str, list[Any]] = {}

    async def join(self, room: str, pid: str, publish: bool) -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs[(room, pid)] = pc
        if publish and not isinstance(self, FramesServer):
            pc.on("track", lambda track: self.tracks.setdefault(room, []).append(track))

    async def offer(self, room: str, pid: str, sdp: str) -> str:
        pc = self.pcs[(room, pid)]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        published = self.tracks.get(room, [])
        for t in pc.getTransceivers():
            source = next((x for x in published if x.kind == t.kind), None)
            if source is not None and t._offerDirection in ("sendonly", "sendrecv"):
                t.sender.replaceTrack(self.relay.subscribe(source))
                t.direction = "sendonly"
        apply_ice_policy(pc, self.policy)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def leave(self, room: str, pid: str) -> None:
        pc = self.pcs.pop((room, pid), None)
        if pc is not None:
            await pc.close()

    async def close(self) -> None:
        for key in list(self.pcs):
            await self.leave(*key)


class _PacketTrack(MediaStreamTrack):
    """Encoded frames of one received track, as ``av.Packet``s (no decoder)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        return await self.queue.get()


class _PassThroughQueue(queue.Queue[Any]):
    """Replaces an aiortc receiver's decoder queue: reassembled frames become packets."""

    def __init__(self, track: _PacketTrack) -> None:
        super().__init__()
        self.track = track

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)  # lets the idle decoder thread end
            return
        codec, frame = item
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        self.track.queue.put_nowait(packet)


class FramesServer(RelayServer):
    """Option (a) of the design: aiortc's receiver reassembles encoded frames (jitter buffer,
    depayloading), a pass-through "decoder" hands them on as ``av.Packet``s and every
    subscriber's sender re-packetises them with its encoder's ``pack()``."""

    async def offer(self, room: str, pid: str, sdp: str) -> str:
        pc = self.pcs[(room, pid)]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        published = self.tracks.setdefault(room, [])
        for t in pc.getTransceivers():
            if t._offerDirection in ("recvonly", "sendrecv") and t.receiver.track is not None:
                track = _PacketTrack(t.kind)
                t.receiver._RTCRtpReceiver__decoder_queue = _PassThroughQueue(track)  # type: ignore[attr-defined]
                published.append(track)
            source = next((x for x in published if x.kind == t.kind), None)
            if source is not None and t._offerDirection in ("sendonly", "sendrecv"):
                t.sender.replaceTrack(self.relay.subscribe(source))
                t.direction = "sendonly"
        apply_ice_policy(pc, self.policy)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp


class SfuServer:
    def __init__(
        self, hosts: tuple[str, ...], *, one_udp_port: bool = False, congestion: bool = False
    ) -> None:
        async def drop(room: str, pid: str, message: dict[str, Any]) -> None:
            logging.warning("server offer not expected in the bench: %s", message["type"])

        # one_udp_port: every peer connection on one kernel-picked port (media.udp_mux);
        # congestion: MEDIA_CONGESTION_CONTROL=on (estimates, REMB retargeting, pause, budget)
        settings = MediaSettings(
            ice_host_addresses=hosts,
            udp_port=0 if one_udp_port else None,
            congestion=CongestionSettings(enabled=congestion),
        )
        self.engine = MediaEngine(settings, drop)

    async def join(self, room: str, pid: str, publish: bool) -> None:
        await self.engine.join(room, pid, can_publish=publish)

    async def offer(self, room: str, pid: str, sdp: str) -> str:
        return await self.engine.handle_offer(room, pid, sdp)

    async def leave(self, room: str, pid: str) -> None:
        await self.engine.leave(room, pid)

    def counters(self) -> dict[str, int]:
        """Packets received from publishers and forwarded to subscribers, all rooms."""
        received = forwarded = 0
        for room in self.engine.room_ids:
            for stats in self.engine.stats(room).values():
                received += sum(p["packets_received"] for p in stats["published"])
                forwarded += stats["packets_forwarded"]
        return {"received": received, "forwarded": forwarded}

    async def close(self) -> None:
        dropped = forwarded = 0
        for room in self.engine.room_ids:
            for stats in self.engine.stats(room).values():
                for sub in stats["subscribed"]:
                    dropped += sub["packets_dropped"]
                    forwarded += sub["packets_forwarded"]
        print(f"forwarded={forwarded} dropped_congested={dropped}", file=sys.stderr, flush=True)
        for room in self.engine.room_ids[:3]:
            for pid, st in self.engine.stats(room).items():
                for pub in st["published"]:
                    print(
                        room,
                        pid,
                        {
                            k: pub[k]
                            for k in (
                                "kind",
                                "packets_received",
                                "frames_received",
                                "keyframes_received",
                                "packets_lost",
                                "nacks_sent",
                                "rtx_received",
                            )
                        },
                        file=sys.stderr,
                    )
                for sub in st["subscribed"]:
                    print(
                        room,
                        pid,
                        {
                            k: sub[k]
                            for k in (
                                "kind",
                                "packets_forwarded",
                                "frames_forwarded",
                                "packets_dropped",
                                "nacks_received",
                                "packets_retransmitted",
                                "keyframe_requests_received",
                            )
                        },
                        file=sys.stderr,
                    )
        await self.engine.close()


async def serve(
    mode: str, host: str, hosts: tuple[str, ...], one_udp_port: bool, congestion: bool
) -> None:
    backend: RelayServer | SfuServer = (
        RelayServer(hosts)
        if mode == "relay"
        else FramesServer(hosts)
        if mode == "frames"
        else SfuServer(hosts, one_udp_port=one_udp_port, congestion=congestion)
    )

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        await backend.join(body["room"], body["pid"], bool(body.get("publish")))
        return web.json_response({})

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            {"sdp": await backend.offer(body["room"], body["pid"], body["sdp"])}
        )

    async def leave(request: web.Request) -> web.Response:
        body = await request.json()
        await backend.leave(body["room"], body["pid"])
        return web.json_response({})

    async def counters(request: web.Request) -> web.Response:
        if not isinstance(backend, SfuServer):
            raise web.HTTPNotFound
        return web.json_response(backend.counters())

    app = web.Application()
    app.router.add_post("/join", join)
    app.router.add_post("/offer", offer)
    app.router.add_post("/leave", leave)
    app.router.add_get("/counters", counters)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    freeze_startup_heap()  # as ``kundlinow serve`` does
    print(f"READY {port}", flush=True)
    lags: list[float] = []
    gc_pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)

    async def watch_lag() -> None:
        # A coarse tick: the watcher runs inside the measured process, and 100 wake-ups a
        # second would be counted as SFU CPU. A late wake-up still shows the loop's lag.
        while True:
            t = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            lags.append(time.monotonic() - t - LAG_TICK_S)

    watcher = asyncio.ensure_future(watch_lag())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        lags.sort()
        if lags:
            print(
                f"loop lag p50={lags[len(lags) // 2] * 1000:.1f}ms "
                f"p99={lags[int(len(lags) * 0.99)] * 1000:.1f}ms "
                f"max={lags[-1] * 1000:.0f}ms; gc pauses n={len(gc_pauses)} "
                f"max={max(gc_pauses, default=0) * 1000:.0f}ms sum={sum(gc_pauses):.2f}s",
                file=sys.stderr,
                flush=True,
            )
        await backend.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("sfu", "relay", "frames"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--one-udp-port", action="store_true", help="sfu: all peer connections on one UDP port"
    )
    parser.add_argument(
        "--congestion-control", action="store_true", help="sfu: MEDIA_CONGESTION_CONTROL=on"
    )
    parser.add_argument("--profile", help="write a cProfile dump here on SIGTERM")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        asyncio.run(serve(
            args.mode, args.host, (args.host,), args.one_udp_port, args.congestion_control
        ))
    except KeyboardInterrupt:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
