"""Cluster benchmark: three server nodes on this machine carrying chat and video consultations.

Starts N ``python -m kundlinow serve`` processes sharing a fresh database (on ``BENCH_PG``,
default 127.0.0.1:5432) and one Redis (``BENCH_REDIS``, default 127.0.0.1:6379, a unique key
prefix), then, at the same time:

- ``--chat`` chat consultations, the caller on node i and the astrologer on node i+1 (so every
  message crosses nodes through Redis), sending ``--rate`` messages per second in all for
  ``--seconds``: delivery latency from send to the other party's receipt (p50/p99);
- ``--video`` video consultations, two aiortc peers each (pre-encoded VP8 + Opus, looped, never
  decoded), the parties again on different nodes; placement puts each room's media on one node.
  Reported: parties in media, media packets per second each party receives (median).

Per node: CPU (share of one core, user + system, over the measured window) and its UDP sockets
(one per peer connection, or one in all in single-port mode); client_cpu is this load
generator's own (all sockets and peers run in it: near 1.0 it, not the servers, is the limit).
Errors: chat requests refused or unanswered, messages never delivered, parties that never
received media.

    python -m bench.cluster                                  # the issue's figures
    python -m bench.cluster --chat 30 --video 2 --seconds 5  # a quick run
    python -m bench.cluster --ice per-connection --ice single-port   # both, side by side

``--ice single-port`` gives every node one UDP port (``MEDIA_UDP_PORT``); the udp_sockets
column shows whether the servers took it. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bench.sfu_load import Counter, _count_only, demux
from bench.ws import (
    Bench,
    Server,
    Sock,
    bench_database,
    chat_load,
    create_users,
    free_port,
    open_socket,
    raise_nofile,
    start_server,
    stop_server,
    table,
)
from media.ice import IcePolicy, apply_ice_policy

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "media" / "data" / "vp8_opus_320x240_20s.webm"
LOOPBACK = IcePolicy(host_addresses=("127.0.0.1",))
SETUP_GATE = 20
"""Consultations being set up at once (sockets, request, accept, joins)."""
VIDEO_GATE = 4
"""Peer connections being negotiated at once."""
DEADLINE_S = 1200.0
"""Hard stop of the whole benchmark."""

ICE_MODES: dict[str, Callable[[], dict[str, str]]] = {
    "per-connection": dict,
    "single-port": lambda: {"MEDIA_UDP_PORT": str(free_port())},
}
"""The media environment of one node per ICE mode (single-port: issue 14's one UDP port per
node, the env var the server reads for it). A new mode is one line here."""


class LoopedClip(MediaStreamTrack):
    """A pre-encoded clip's packets, paced by their timestamps, from the start again at its end
    (the packets are shared by every track and never changed)."""

    def __init__(self, kind: str, packets: list[tuple[float, Any]]) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._length = packets[-1][0] + (packets[-1][0] - packets[-2][0])
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> Any:
        loops, index = divmod(self._index, len(self._packets))
        at, packet = self._packets[index]
        self._index += 1
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time() - at
        delay = self._start + loops * self._length + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return packet


@dataclass
class VideoParty:
    """One party of a video consultation: an aiortc peer signalled over its socket."""

    sock: Sock
    cid: str
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    counter: Counter = field(default_factory=Counter)
    answering: asyncio.Task[None] | None = None
    held: list[dict[str, Any]] = field(default_factory=list)
    """Signalling frames read while waiting for another kind (an early renegotiation offer)."""

    def publish(self, clip: dict[str, list[tuple[float, Any]]]) -> None:
        for kind in ("video", "audio"):
            self.pc.addTransceiver(LoopedClip(kind, clip[kind]), direction="sendrecv")

    async def connect(self) -> None:
        offer = await self.pc.createOffer()
        apply_ice_policy(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(offer)
        sent = await self.sock.request(
            "call_offer", {"consultation_id": self.cid, "sdp": self.pc.localDescription.sdp}
        )
        if sent["type"] != "ack":
            raise RuntimeError(f"call_offer refused: {sent}")
        answer = await self._next("call_answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        _count_only(self.pc, self.counter)
        self.answering = asyncio.create_task(self._answer_offers())

    async def _next(self, kind: str, wait_s: float | None = 60) -> dict[str, Any]:
        for frame in self.held:
            if frame["type"] == kind:
                self.held.remove(frame)
                return dict(frame["data"])
        while True:
            frame = await asyncio.wait_for(self.sock.events.get(), wait_s)
            if frame["type"] == kind:
                return dict(frame["data"])
            if frame["type"] in ("call_offer", "call_answer"):
                self.held.append(frame)

    async def _answer_offers(self) -> None:
        """The SFU offers the other party's tracks when they arrive (renegotiation)."""
        while True:
            offer = await self._next("call_offer", wait_s=None)  # until closed
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            answer = await self.pc.createAnswer()
            apply_ice_policy(self.pc, LOOPBACK)
            await self.pc.setLocalDescription(answer)
            self.counter.video_pts.update(
                c.payloadType or 0 for t in self.pc.getTransceivers() if t.kind == "video"
                for c in t._codecs
            )
            await self.sock.request(
                "call_answer", {"consultation_id": self.cid, "sdp": self.pc.localDescription.sdp}
            )

    def packets(self) -> int:
        return self.counter.video_packets + self.counter.audio_packets

    async def close(self) -> None:
        if self.answering is not None:
            self.answering.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.answering
        await self.pc.close()


async def consult(
    session: aiohttp.ClientSession, caller_url: str, astro_url: str,
    caller_token: str, astro: tuple[uuid.UUID, str], mode: str,
) -> tuple[Sock, Sock, str]:
    """A caller and an astrologer connected to their nodes, in an active consultation."""
    caller = Sock(await open_socket(session, caller_url, caller_token))
    astro_sock = Sock(await open_socket(session, astro_url, astro[1]))
    caller.start()
    astro_sock.start()
    ack = await caller.request("consult_request", {"consultant_id": str(astro[0]), "mode": mode})
    if ack["type"] != "ack":
        raise RuntimeError(f"request failed: {ack}")
    cid: str = ack["data"]["consultation"]["id"]
    await astro_sock.event("consult_request")
    for sock, kind in ((astro_sock, "accept"), (caller, "join_consult"),
                       (astro_sock, "join_consult")):
        answer = await sock.request(kind, {"consultation_id": cid})
        if answer["type"] != "ack":
            raise RuntimeError(f"{kind} failed: {answer}")
    return caller, astro_sock, cid


async def consultations(
    bench: Bench, session: aiohttp.ClientSession, servers: list[Server], count: int, mode: str
) -> list[tuple[Sock, Sock, str]]:
    """``count`` consultations, caller on node i, astrologer on node i + 1."""
    callers = await create_users(bench.database, "user", count, funds_paise=10_000_000)
    astros = await create_users(bench.database, "consultant", count)
    gate = asyncio.Semaphore(SETUP_GATE)
    n = len(servers)

    async def one(i: int) -> tuple[Sock, Sock, str]:
        async with gate:
            return await consult(session, servers[i % n].url, servers[(i + 1) % n].url,
                                 callers[i][1], astros[i], mode)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def start_video(
    calls: list[tuple[Sock, Sock, str]]
) -> tuple[list[VideoParty], int]:
    """Both parties of every call publishing; the number of peers that failed to connect."""
    clip = demux(str(CLIP))
    parties = [VideoParty(sock, cid) for caller, astro, cid in calls for sock in (caller, astro)]
    gate = asyncio.Semaphore(VIDEO_GATE)
    failed = 0

    async def one(party: VideoParty) -> None:
        nonlocal failed
        async with gate:
            party.publish(clip)
            try:
                await party.connect()
            except (RuntimeError, TimeoutError, aiohttp.ClientError) as exc:
                print(f"video party failed: {exc!r}", file=sys.stderr)
                failed += 1

    await asyncio.gather(*(one(p) for p in parties))
    return parties, failed


@contextlib.asynccontextmanager
async def cluster(bench: Bench, nodes: int, ice: str) -> AsyncIterator[list[Server]]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    servers: list[Server] = []
    try:
        for i in range(nodes):
            env = bench.env(
                REDIS_URL=bench.redis_url, REDIS_PREFIX=prefix, NODE_ID=f"n{i}",
                MEDIA_ICE_HOSTS="127.0.0.1", **ICE_MODES[ice](),
            )
            servers.append(await start_server(env, bench.workdir / f"cluster-{ice}-n{i}.log"))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def cpu_seconds(server: Server) -> float:
    with contextlib.suppress(psutil.Error):
        return float(sum(psutil.Process(server.process.pid).cpu_times()[:2]))
    return float("nan")


def udp_sockets(server: Server) -> int:
    with contextlib.suppress(psutil.Error):
        return len(psutil.Process(server.process.pid).net_connections(kind="udp"))
    return -1


async def run_mode(bench: Bench, args: argparse.Namespace, ice: str) -> dict[str, Any]:
    async with cluster(bench, args.nodes, ice) as servers, aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0)
    ) as session:
        started = time.monotonic()
        chats = await consultations(bench, session, servers, args.chat, "chat")
        calls = await consultations(bench, session, servers, args.video, "video")
        setup_s = time.monotonic() - started
        parties, failed = await start_video(calls)
        media_deadline = time.monotonic() + 30
        while (  # noqa: ASYNC110 - bounded: the parties' counters grow as packets arrive
            any(p.packets() == 0 for p in parties) and time.monotonic() < media_deadline
        ):
            await asyncio.sleep(0.2)
        if chats:
            await chat_load(chats, args.rate, min(2.0, args.seconds))  # warm-up
        me = psutil.Process()
        before = [p.packets() for p in parties]
        cpu0, wall0 = [cpu_seconds(s) for s in servers], time.monotonic()
        mine0 = sum(me.cpu_times()[:2])
        chat = await chat_load(chats, args.rate, args.seconds)
        cpu1, wall1 = [cpu_seconds(s) for s in servers], time.monotonic()
        mine1 = sum(me.cpu_times()[:2])
        received = [p.packets() - b for p, b in zip(parties, before, strict=True)]
        sockets = [udp_sockets(s) for s in servers]
        closed = sum(1 for c, a, _ in chats + calls for s in (c, a) if s.ws.closed)
        in_media = sum(1 for r in received if r > 0)
        row = {
            "ice": ice,
            "nodes": len(servers),
            "chats": args.chat,
            "videos": args.video,
            "setup_s": round(setup_s, 1),
            "msgs": chat["messages"],
            "delivered": chat["delivered"],
            "p50_ms": chat["p50_ms"],
            "p99_ms": chat["p99_ms"],
            "in_media": f"{in_media}/{len(parties)}",
            "pkts_s_per_party": round(statistics.median(received) / (wall1 - wall0), 1)
            if received else 0,
            "cpu_per_node": "/".join(
                f"{(b - a) / (wall1 - wall0):.2f}" for a, b in zip(cpu0, cpu1, strict=True)
            ),
            "client_cpu": round((mine1 - mine0) / (wall1 - wall0), 2),
            "udp_sockets": "/".join(str(n) for n in sockets),
            "closed_sockets": closed,
            "errors": chat["errors"] + (chat["messages"] - chat["errors"] - chat["delivered"])
            + failed + (len(parties) - in_media),
            "load_1m": round(os.getloadavg()[0], 1),
        }
        for party in parties:
            await party.close()
        for caller, astro, _ in chats + calls:
            await caller.close()
            await astro.close()
        return row


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--chat", type=int, default=300, help="chat consultations")
    parser.add_argument("--video", type=int, default=20, help="video consultations")
    parser.add_argument("--rate", type=float, default=60.0, help="chat messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--ice", choices=sorted(ICE_MODES), action="append",
                        help="ICE port mode of the nodes (repeat for side-by-side rows)")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    raise_nofile()
    admin_dsn = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
    workdir = REPO / "bench" / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB, "
          f"load {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    rows = []
    async with bench_database(admin_dsn) as (dsn, database):
        bench = Bench(admin_dsn, dsn, database, redis_url, workdir)
        for ice in args.ice or ["per-connection"]:
            rows.append(await run_mode(bench, args, ice))
            print(f"{ice}: {rows[-1]}", flush=True)  # kept if a later mode fails
    print(table(
        f"\n{args.nodes} nodes: {args.chat} chat consultations at {args.rate:g} msg/s for "
        f"{args.seconds:g} s, with {args.video} video consultations (cpu: share of one core)",
        rows,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(asyncio.wait_for(main(parse_args()), DEADLINE_S)))
