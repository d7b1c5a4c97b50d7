"""Recording benchmark: server CPU for concurrent two-way video consults with and without the
live recorder, and the review composer's CPU-seconds per call-minute.

Three processes per point, as in bench/sfu.py: this orchestrator; a server (``serve``: the
SFU's ``MediaEngine`` with or without the ``Recorder``, on a scratch database of the local
PostgreSQL, HTTP signalling as bench/sfu_server.py); a load generator (``load``: per consult
two aiortc peers that each publish VP8 + Opus from a pre-encoded clip, ``decode=False``, and
count the other's packets without decoding). The server's CPU time is sampled with psutil
between the load generator's MEASURE_START and MEASURE_END. The composer then makes the
review file of one recorded consult in this process (``time.process_time``, all threads).

    python -m bench.recording                        # 10 consults, 20 s, with and without
    python -m bench.recording --consults 4 --duration 10
    python -m bench.recording --rounds 3             # off/all alternated three times
    python -m bench.recording --rounds 5 --together  # off and all at the same time
    python -m bench.recording --paired --rounds 3 --duration 40   # on/off in turns, one server
    python -m bench.recording alone --repeat 20      # the recorder alone (for py-spy)

On a shared machine, compare CPU-seconds per delivered packet of rounds run side by side
(``--rounds``: each round runs both points, in alternating order) rather than wall-clock rates;
``--together`` runs both points of a round at once, measured over the same seconds, so a load
that comes and goes on the machine weighs on both alike. ``--paired`` goes further: one
recording server whose recorder is switched on and off in turns (``SwitchedRecorder``: packets
reach the taps only while on), each window ``--switch-every`` seconds measured after
``--settle`` seconds left out; each window's process CPU per tapped packet is compared with the
adjacent windows'. The SFU, the load and the machine are the same for both sides of each pair,
so the difference is what recording costs even on a busy machine (the queued packets are worked
through at each window's end, so they count in their window). The settling leaves out what the
switch itself costs, which a recorded consult pays once: video waiting for a key frame, a gap
noted on every track, the append thread's last hand-over of an "on" window.

Every point also reports the garbage collector's time per generation (``core.gcpolicy``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import av
import psutil
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from prometheus_client import CollectorRegistry

from core.gcpolicy import GcPauses, freeze_startup_heap
from kundlinow.config import Settings
from kundlinow.database import open_database
from media.config import MediaSettings
from media.engine import MediaEngine
from media.ice import IcePolicy, apply_ice_policy
from media.observer import ForwardedPacket, MediaObserver, PacketTap
from recording.catalog import Catalog, ConsultInfo
from recording.compose import FPS, Inputs, compose
from recording.config import RecordingSettings
from recording.recorder import Recorder
from recording.store import LocalStore

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "media" / "data" / "vp8_opus_320x240_20s.webm"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PY = sys.executable


# -- the server -----------------------------------------------------------------------


class SwitchedTap:
    """A recorder's tap behind a switch (``--paired``): packets reach it only while on; every
    packet is counted either way."""

    __slots__ = ("counter", "switch", "tap")

    def __init__(self, tap: PacketTap, switch: list[bool], counter: list[int]) -> None:
        self.tap = tap
        self.switch = switch
        self.counter = counter

    def on_rtp(self, packet: ForwardedPacket) -> None:
        self.counter[0] += 1
        if self.switch[0]:
            self.tap.on_rtp(packet)

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        self.tap.on_sender_report(ntp, rtp_ts)

    def close(self) -> None:
        self.tap.close()


class SwitchedRecorder:
    """The ``Recorder`` as the SFU's observer, its taps behind one switch: recording on and
    off in turns in one server, so a load that comes and goes weighs on both alike."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.switch = [True]
        self.packets = [0]

    async def participant_joined(self, room_id: str, participant_id: str) -> None:
        await self.recorder.participant_joined(room_id, participant_id)

    def track_published(self, room_id: str, participant_id: str, kind: str, mime_type: str,
                        clock_rate: int, request_keyframe: Callable[[], None],
                        is_keyframe: Callable[[bytes], bool]) -> PacketTap | None:
        tap = self.recorder.track_published(room_id, participant_id, kind, mime_type,
                                            clock_rate, request_keyframe, is_keyframe)
        return SwitchedTap(tap, self.switch, self.packets) if tap is not None else None

    def media_event(self, room_id: str, participant_id: str, kind: str,
                    data: dict[str, Any]) -> None:
        self.recorder.media_event(room_id, participant_id, kind, data)

    def room_closed(self, room_id: str) -> None:
        self.recorder.room_closed(room_id)

    def drain(self) -> None:
        """Work through what the taps queued, so it counts in the window it arrived in."""
        for room in self.recorder.rooms.values():
            for track in room.tracks:
                track.drain()

    async def alternate(self, every_s: float, settle_s: float,
                        windows: list[tuple[bool, float, int]]) -> None:
        """Switch, let ``settle_s`` pass unmeasured, then measure ``every_s``; per window:
        on?, process CPU-s, packets tapped. The settling leaves out what only a switch costs
        (video resynchronising on a key frame, a gap noted on every track, the last
        hand-over of an "on" window): a recorded consult pays that once, not every window."""
        while True:
            await asyncio.sleep(settle_s)
            self.drain()
            cpu, packets = time.process_time(), self.packets[0]
            await asyncio.sleep(every_s)
            self.drain()
            windows.append((self.switch[0], time.process_time() - cpu,
                            self.packets[0] - packets))
            self.switch[0] = not self.switch[0]


async def serve(args: argparse.Namespace) -> None:
    async with open_database(Settings(database_url=args.dsn), migrate=False) as database:

        async def resolve(room_id: str) -> ConsultInfo:
            return ConsultInfo(uuid.UUID(room_id), "video", {"a": "caller", "b": "astrologer"},
                               None)

        settings = RecordingSettings(mode=args.record, directory=Path(args.dir))
        recorder = Recorder(settings, LocalStore(settings.directory), Catalog(database.pool),
                            resolve)

        async def drop(room: str, pid: str, message: dict[str, Any]) -> None:
            pass

        switched = SwitchedRecorder(recorder) if args.switch_every else None
        observer: MediaObserver | None = switched or (recorder if settings.enabled else None)
        engine = MediaEngine(MediaSettings(ice_host_addresses=("127.0.0.1",)), drop, observer)
        windows: list[tuple[bool, float, int]] = []

        async def join(request: web.Request) -> web.Response:
            body = await request.json()
            await engine.join(body["room"], body["pid"], can_publish=True)
            return web.json_response({})

        async def offer(request: web.Request) -> web.Response:
            body = await request.json()
            sdp = await engine.handle_offer(body["room"], body["pid"], body["sdp"])
            return web.json_response({"sdp": sdp})

        app = web.Application()
        app.router.add_post("/join", join)
        app.router.add_post("/offer", offer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        freeze_startup_heap()  # as ``kundlinow serve`` does
        registry = CollectorRegistry()
        pauses = GcPauses(registry, "bench")
        pauses.install()
        print(f"READY {port}", flush=True)
        loop = asyncio.get_running_loop()
        marked = _gc_totals(registry)
        alternating: asyncio.Task[None] | None = None
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "mark":  # the measured seconds start
                marked = _gc_totals(registry)
                if switched is not None:
                    alternating = asyncio.ensure_future(
                        switched.alternate(args.switch_every, args.settle, windows))
            else:  # "gc": they ended
                if alternating is not None:
                    alternating.cancel()
                now = _gc_totals(registry)
                print("GC " + json.dumps({k: [a - b for a, b in zip(now[k], marked[k], strict=True)]
                                          for k in now} | {"windows": windows}), flush=True)
        pauses.remove()
        await engine.close()
        await recorder.close()
        await runner.cleanup()


def _gc_totals(registry: CollectorRegistry) -> dict[str, list[float]]:
    """Seconds and collections of the garbage collector so far, per generation."""
    def value(name: str, generation: int) -> float:
        sample = registry.get_sample_value(name, {"node": "bench", "generation": str(generation)})
        return sample or 0.0
    return {"gc_s": [value("kundlinow_gc_pause_seconds_sum", g) for g in range(3)],
            "gc_n": [value("kundlinow_gc_pause_seconds_count", g) for g in range(3)]}


# -- the load generator ---------------------------------------------------------------


async def load(args: argparse.Namespace) -> dict[str, Any]:
    from bench.sfu_load import ClipTrack, Counter, HttpSignal, _count_only, demux

    policy = IcePolicy(host_addresses=("127.0.0.1",))
    clip = demux(args.file)
    pcs: list[RTCPeerConnection] = []
    tracks: list[ClipTrack] = []
    counters: list[Counter] = []
    async with aiohttp.ClientSession() as http:
        signal = HttpSignal(http, args.url)
        for room in [str(uuid.uuid4()) for _ in range(args.consults)]:
            for pid in ("a", "b"):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pcs.append(pc)
                for kind in ("video", "audio"):
                    track = ClipTrack(kind, clip[kind])
                    tracks.append(track)
                    t = pc.addTransceiver(track, direction="sendrecv")
                    if kind == "video":
                        caps = RTCRtpSender.getCapabilities("video").codecs
                        t.setCodecPreferences([c for c in caps if c.name == "VP8"])
                apply_ice_policy(pc, policy)
                await signal.publish(room, pid, pc)
                counter = Counter()
                counters.append(counter)
                _count_only(pc, counter)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # poll aiortc's state, bounded
            if all(pc.connectionState == "connected" for pc in pcs):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)
        print("MEASURE_READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"

        def totals() -> tuple[int, int]:
            return (sum(c.frames for c in counters),
                    sum(c.video_packets + c.audio_packets for c in counters))

        before = totals()
        print("MEASURE_START", flush=True)
        t0 = time.monotonic()
        await asyncio.sleep(args.duration)
        elapsed = time.monotonic() - t0
        print("MEASURE_END", flush=True)
        after = totals()
        frames, packets = after[0] - before[0], after[1] - before[1]
        for track in tracks:
            track.stop()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
    connected = sum(pc.connectionState in ("connected", "closed") for pc in pcs)
    return {"fps_per_stream": round(frames / elapsed / max(1, len(counters)), 1),
            "packets": packets, "packets_per_s": round(packets / elapsed), "peers": len(pcs),
            "connected": connected}


# -- the tap's cost on the forwarding path ---------------------------------------------


def hook_cost(packets: int = 200_000) -> dict[str, float]:
    """ns per ``UpTrack.on_rtp`` (no subscribers) without a tap, with a no-op tap, and of the
    tap test alone — what recording costs the fast path when it is off."""
    import timeit

    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from media.forwarder import UpTrack

    class NoTap:
        def on_rtp(self, packet: ForwardedPacket) -> None:
            pass

    async def send(data: bytes) -> None:
        pass

    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
    up = UpTrack("t", "audio", codec, [codec], publisher_id="p", rtcp_ssrc=1, send_rtcp=send,
                 pli_interval_s=1, history=1024, remb_bitrate_bps=0)
    packet = bytes([0x80, 111, 0, 0]) + bytes(4) + (1234).to_bytes(4, "big") + bytes(100)
    out: dict[str, float] = {}
    for name, tap in (("off", None), ("no-op tap", NoTap())):
        up.tap = tap  # type: ignore[assignment]
        seconds = min(timeit.repeat(lambda: up.on_rtp(packet, 12, 112, 0), number=packets,
                                    repeat=5))
        out[name] = seconds / packets * 1e9
    up.tap = None
    check = "tap = up.tap\nif tap is not None: pass"
    out["tap test alone"] = min(timeit.repeat(check, globals={"up": up}, number=packets,
                                              repeat=5)) / packets * 1e9
    return out


# -- the recorder alone -----------------------------------------------------------------


async def recorder_cost(dsn: str, clip: Path, directory: Path) -> dict[str, float]:
    """µs of CPU per packet of the recorder itself, without network or SFU: the event-loop
    side (reorder, frames, clock, Matroska framing), the hand-over and appends (process CPU
    while the main thread awaits them, so an upper bound), and the finishing (Cues, header,
    SHA-256, fsync) when the files close."""
    from aiortc.codecs.opus import OpusEncoder
    from aiortc.codecs.vpx import Vp8Encoder

    from media.packets import always_start, vp8_is_keyframe
    from recording.clock import NTP_UNIX_OFFSET, SenderClock
    from recording.recorder import RoomRecording
    from recording.track import TrackRecorder
    from recording.writer import Writer

    packets: dict[str, list[tuple[bytes, int, int]]] = {"video": [], "audio": []}
    encoders = {"video": Vp8Encoder(), "audio": OpusEncoder()}
    with av.open(str(clip)) as container:
        for p in container.demux():
            if p.size and p.pts is not None:
                stream_kind = str(p.stream.type)
                payloads, ts = encoders[stream_kind].pack(p)
                for i, payload in enumerate(payloads):
                    marker = 0x80 if i == len(payloads) - 1 else 0
                    packets[stream_kind].append((payload, ts, marker))
    async with open_database(Settings(database_url=dsn), migrate=False) as database:
        info = ConsultInfo(uuid.uuid4(), "video", {}, time.time())
        store = LocalStore(directory)
        writer = Writer(store)
        room = RoomRecording(info, RecordingSettings(directory=directory), store,
                             Catalog(database.pool), writer)
        sender = SenderClock()
        ntp = int((time.time() + NTP_UNIX_OFFSET) * 2**32)
        tracks = {}
        for kind, codec, rate, key in (("video", "vp8", 90000, vp8_is_keyframe),
                                       ("audio", "opus", 48000, always_start)):
            tracks[kind] = TrackRecorder(room, party="caller", kind=kind, codec=codec,
                                         clock_rate=rate, sender=sender,
                                         request_keyframe=lambda: None, is_keyframe=key)
            room.add_track(tracks[kind])
            tracks[kind].on_sender_report(ntp, 0)
        await writer.drain()  # the files opened, the manifest written
        now = time.monotonic()
        count = sum(len(v) for v in packets.values())
        cpu = time.thread_time()
        for kind, items in packets.items():
            for seq, (payload, ts, marker) in enumerate(items):
                tracks[kind].on_rtp((seq & 0xFFFF, ts, 96 | marker, payload, now))
            tracks[kind].drain()
        loop_s = time.thread_time() - cpu
        process = time.process_time()
        await writer.drain()  # the hand-over and the appends
        append_s = time.process_time() - process
        process = time.process_time()
        await room.close()  # closes the files: Cues, header, SHA-256, fsync
        close_s = time.process_time() - process
        await writer.close()
    return {"event loop (queue; reorder, frames, clock, Matroska framing)": loop_s / count * 1e6,
            "append thread (hand-over, write)": append_s / count * 1e6,
            "at file close (Cues, header, SHA-256, fsync)": close_s / count * 1e6}


# -- the orchestrator -----------------------------------------------------------------


async def _alone(args: argparse.Namespace) -> None:
    """The recorder alone, ``--repeat`` times on one scratch database: the median µs."""
    dsn = await _scratch_database()
    runs: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
            for i in range(args.repeat):
                runs.append(await recorder_cost(dsn, args.file, Path(tmp) / str(i)))
    finally:
        await _drop_database(dsn)
    print(f"| recorder alone (no network), median of {args.repeat} | µs CPU per packet |")
    print("|---|---:|")
    for name in runs[0]:
        print(f"| {name} | {statistics.median(r[name] for r in runs):.1f} |")


class _Point:
    """One measured point: a server (with or without recording) and its load generator. The
    generator connects and warms up, then waits for ``go``: two points can be measured over
    the same seconds (``--together``)."""

    def __init__(self, args: argparse.Namespace, dsn: str, record: str, directory: Path) -> None:
        self.server = subprocess.Popen(
            [PY, "-m", "bench.recording", "serve", "--dsn", dsn, "--record", record,
             "--dir", str(directory), "--switch-every", str(args.switch_every if args.paired
                                                            else 0),
             "--settle", str(args.settle)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line.startswith("READY"):
            self.server.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.proc = psutil.Process(self.server.pid)
        self.gen = subprocess.Popen(
            [PY, "-m", "bench.recording", "load", "--url", f"http://127.0.0.1:{line.split()[1]}",
             "--consults", str(args.consults), "--duration", str(args.duration),
             "--file", str(args.file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.result: dict[str, Any] = {}
        self._start = (0.0, 0.0, 0.0, 0)

    def ready(self) -> None:
        assert self.gen.stdout is not None
        for out in self.gen.stdout:
            if out.startswith("MEASURE_READY"):
                return
        raise RuntimeError("the load generator ended before measuring")

    def go(self) -> None:
        t = self.proc.cpu_times()
        self._start = (t.user + t.system, _main_thread_cpu(self.proc), time.monotonic(),
                       sum(self.proc.num_ctx_switches()))
        assert self.server.stdin is not None
        self.server.stdin.write("mark\n")
        self.server.stdin.flush()
        assert self.gen.stdin is not None
        self.gen.stdin.write("go\n")
        self.gen.stdin.flush()

    def finish(self) -> None:
        assert self.gen.stdout is not None and self.server.stdin is not None
        cpu0, main0, wall0, switches0 = self._start
        for out in self.gen.stdout:
            if out.startswith("MEASURE_END"):
                t = self.proc.cpu_times()
                self.result["cpu_s"] = t.user + t.system - cpu0
                self.result["main_cpu_s"] = _main_thread_cpu(self.proc) - main0
                # the main thread's (/proc/PID/status): GIL and writer hand-offs show here
                self.result["switches"] = sum(self.proc.num_ctx_switches()) - switches0
                self.result["cpu_pct"] = round(
                    self.result["cpu_s"] / (time.monotonic() - wall0) * 100, 1)
                self.result.update(self._server_says("gc"))
            elif out.startswith("RESULT "):
                self.result.update(json.loads(out[7:]))
        self.gen.wait()
        self.server.stdin.write("\n")
        self.server.stdin.flush()
        self.server.wait(60)

    def _server_says(self, command: str) -> dict[str, Any]:
        """Ask the server for its garbage collector's time since ``go``."""
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(command + "\n")
        self.server.stdin.flush()
        for out in self.server.stdout:
            if out.startswith("GC "):
                result: dict[str, Any] = json.loads(out[3:])
                return result
        raise RuntimeError("the server ended without its GC figures")

    def kill(self) -> None:
        for process in (self.gen, self.server):
            if process.poll() is None:
                process.kill()


def _measure(points: list[_Point]) -> None:
    """Start the points' measurements together and collect them (each on its own thread, so
    one's end is read the moment it comes)."""
    for point in points:
        point.ready()
    for point in points:
        point.go()
    readers = [threading.Thread(target=point.finish) for point in points]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()


def _main_thread_cpu(proc: psutil.Process) -> float:
    """CPU-seconds of the event loop's thread (its id is the process id)."""
    return next(t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid)


def _compose_cost(directory: Path) -> tuple[float, float]:
    """CPU-seconds per call-minute of composing one recorded consult, and its length (s)."""
    consult = next(d for d in sorted(directory.iterdir()) if d.is_dir())
    files: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(consult.glob("*-*-*.*")):
        party, kind, _ = path.stem.split("-")
        files.setdefault((party, kind), []).append(path)
    manifest = json.loads((consult / "manifest.json").read_text())
    end_ms = max(f["offset_ms"] + (f.get("duration_ms") or 0) for f in manifest["files"].values())
    store = LocalStore(directory)
    cpu = time.process_time()
    compose(store, Inputs(consult.name, end_ms / 1000, files))
    spent = time.process_time() - cpu
    return spent / (end_ms / 60_000), end_ms / 1000


async def _scratch_database() -> str:
    name = f"bench_recording_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    async with open_database(Settings(database_url=dsn), migrate=True):
        pass
    return dsn


async def _drop_database(dsn: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


def orchestrate(args: argparse.Namespace) -> None:
    print("| UpTrack.on_rtp | ns per packet |\n|---|---:|")
    for name, ns in hook_cost().items():
        print(f"| {name} | {ns:.0f} |")
    print()
    dsn = asyncio.run(_scratch_database())
    rows: list[tuple[int, str, dict[str, Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
            for n in range(args.rounds):
                # alternate the order, so a load that drifts within a round favours neither
                order = ("off", "all") if n % 2 == 0 else ("all", "off")
                batches = [order] if args.together else [(record,) for record in order]
                if args.paired:  # one server, recording switched on and off in turns
                    batches = [("all",)]
                for batch in batches:
                    points: list[_Point] = []
                    try:
                        for record in batch:
                            points.append(_Point(args, dsn, record, Path(tmp) / f"{record}{n}"))
                        _measure(points)
                    finally:
                        for point in points:
                            point.kill()
                    rows += [(n + 1, record, point.result)
                             for record, point in zip(batch, points, strict=True)]
            per_minute, length = _compose_cost(Path(tmp) / "all0")
            alone = asyncio.run(recorder_cost(dsn, args.file, Path(tmp) / "alone"))
    finally:
        asyncio.run(_drop_database(dsn))
    _print_rounds(args, rows)
    if args.paired:
        _print_paired(args, rows)
    print("\n| recorder alone (no network) | µs CPU per packet |\n|---|---:|")
    for name, us in alone.items():
        print(f"| {name} | {us:.1f} |")
    print(f"\ncomposer: {per_minute:.1f} CPU-s per call-minute at {FPS} fps "
          f"({length:.1f} s consult, libx264 veryfast)")


def _print_rounds(args: argparse.Namespace, rows: list[tuple[int, str, dict[str, Any]]]) -> None:
    print(f"{args.consults} two-way video consults (VP8+Opus {args.file.name}), "
          f"{args.duration:.0f} s measured per point, {args.rounds} round(s)")
    print("| round | recording | server CPU-s | of which other threads | server CPU % |"
          " packets/s delivered | µs server CPU per packet | main-thread context switches/s |"
          " video fps per stream | peers connected | GC ms (gen 0/1/2) | GC runs (gen 0/1/2) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cost: dict[int, dict[str, float]] = {}
    for n, record, r in rows:
        # per packet, not per second: a loaded machine lets a different rate through each run
        delivered = r.get("packets", 0)
        us = r["cpu_s"] / delivered * 1e6 if delivered else 0.0
        cost.setdefault(n, {})[record] = us
        print(f"| {n} | {record} | {r['cpu_s']:.2f} | {r['cpu_s'] - r['main_cpu_s']:.2f} |"
              f" {r.get('cpu_pct')} |"
              f" {r.get('packets_per_s')} | {us:.1f} | {r['switches'] / args.duration:.0f} |"
              f" {r.get('fps_per_stream')} | {r.get('connected')}/{r.get('peers')} |"
              f" {'/'.join(f'{x * 1000:.0f}' for x in r['gc_s'])} |"
              f" {'/'.join(f'{x:.0f}' for x in r['gc_n'])} |")
    ratios = [c["all"] / c["off"] for c in cost.values() if c.get("off") and c.get("all")]
    if ratios:
        print("\nCPU per packet, all / off, per round: "
              + ", ".join(f"{r:.3f}" for r in ratios)
              + f"; median {statistics.median(ratios):.3f}")


def _print_paired(args: argparse.Namespace, rows: list[tuple[int, str, dict[str, Any]]]) -> None:
    """Per round: process CPU per tapped packet in the windows with recording on and off
    (medians), and the median over adjacent on/off pairs of their difference and ratio (the
    pairs follow a load that drifts between windows; the medians of all windows do not)."""
    print(f"\nrecording switched on and off in one server: {args.switch_every:g}-s windows,"
          f" each after {args.settle:g} s left to settle")
    print("| round | windows (on/off) | µs per packet, on | µs per packet, off | on − off (pairs) "
          "| on ÷ off (medians) | on ÷ off (pairs) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, _, r in rows:
        windows = [(on, cpu / packets * 1e6) for on, cpu, packets in r["windows"] if packets]
        on = [us for state, us in windows if state]
        off = [us for state, us in windows if not state]
        pairs = [(a[1], b[1]) if a[0] else (b[1], a[1])
                 for a, b in itertools.pairwise(windows) if a[0] != b[0]]
        if not (on and off and pairs):
            continue
        print(f"| {n} | {len(on)}/{len(off)} | {statistics.median(on):.1f} |"
              f" {statistics.median(off):.1f} |"
              f" {statistics.median(a - b for a, b in pairs):+.1f} |"
              f" {statistics.median(on) / statistics.median(off):.3f} |"
              f" {statistics.median(a / b for a, b in pairs):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    s = sub.add_parser("serve")
    s.add_argument("--dsn", required=True)
    s.add_argument("--record", choices=("off", "audio", "all"), required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--switch-every", type=float, default=0.0)
    s.add_argument("--settle", type=float, default=0.0)
    ld = sub.add_parser("load")
    ld.add_argument("--url", required=True)
    alone = sub.add_parser("alone", help="the recorder alone, without network or SFU")
    alone.add_argument("--repeat", type=int, default=5)
    for p in (parser, ld):
        p.add_argument("--consults", type=int, default=10)
        p.add_argument("--duration", type=float, default=20.0)
    for p in (parser, ld, alone):
        p.add_argument("--file", type=Path, default=CLIP)
    parser.add_argument("--rounds", type=int, default=1,
                        help="off/all pairs, run side by side in alternating order")
    parser.add_argument("--together", action="store_true",
                        help="run each round's off and all points at the same time")
    parser.add_argument("--paired", action="store_true",
                        help="one recording server per round, its recorder switched on and "
                             "off in turns (robust to a load that comes and goes)")
    parser.add_argument("--switch-every", type=float, default=2.0,
                        help="seconds per on or off window with --paired")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds after each switch left out of the windows (--paired)")
    ld.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    if args.role == "serve":
        asyncio.run(serve(args))
    elif args.role == "load":
        print("RESULT " + json.dumps(asyncio.run(load(args))), flush=True)
    elif args.role == "alone":
        asyncio.run(_alone(args))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
