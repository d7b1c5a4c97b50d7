"""SFU benchmark: kundlinow's SFU vs aiortc's stock MediaRelay vs Janus videoroom.

Each point starts a fresh server process and a load generator process (bench/sfu_load.py):
1 publisher (640x480 30 fps VP8 + Opus, pre-encoded, ``decode=False``) with N subscribers
that count packets and frames without decoding ("fan-out"), or M rooms of one publisher and
one subscriber each ("calls"). The server's CPU time (and its system share) and RSS are
sampled with psutil between the load generator's MEASURE_START and MEASURE_END marks.

On a shared machine, CPU % follows whatever frame rate the machine let through; compare
**µs of server CPU per packet** instead: per packet the subscribers counted ("delivered",
every server) and per packet the server itself forwarded (sfu only, from the bench server's
``GET /counters``; a loaded load generator may lose packets the server already paid for).
In "calls" each forwarded packet was also received, so its cost includes the receive path.

Janus runs in its own network namespace (bench/sfu_janus.py; needs root and iproute2).

``sfu1port`` is kundlinow's SFU with every peer connection on one UDP port
(``MEDIA_UDP_PORT``, media.udp_mux) instead of a socket each; the "UDP sockets" column is the
server's count at the end of the measurement. ``sfucc`` is kundlinow's SFU with congestion
control on (``MEDIA_CONGESTION_CONTROL``: the downlink estimates, REMB retargeting, video
pause and the retransmission budget; the load generator's aiortc subscribers send receiver
reports, not transport-wide feedback).

    python -m bench.sfu                                  # the default matrix
    python -m bench.sfu --servers sfu --fanout 1,10 --calls '' --duration 10
    python -m bench.sfu --servers sfu,sfu1port --fanout 25 --calls 25   # one port vs a socket each
    python -m bench.sfu --servers sfu,sfucc --fanout 10,50 --calls 10   # congestion control's cost
    python -m bench.sfu --servers sfu --fanout 50 --calls '' --duration 10 \
        --profile /tmp/prof/run            # + py-spy (on PATH) -> /tmp/prof/run-sfu-fanout50.txt

``--profile`` writes py-spy's collapsed stacks ("raw" format: one ``frame;frame;... count``
line per stack) sampled between the marks; feed them to flamegraph.pl or speedscope.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import sfu_janus

PY = sys.executable
CLIP = Path(os.environ.get("SFU_BENCH_CLIP", "/tmp/sfu_640x480.webm"))


@dataclass
class Point:
    server: str
    scenario: str
    n: int
    subscribers: int = 0
    connected: str = ""
    cpu_pct: float = 0.0
    sys_pct: float = 0.0
    rss_mb: float = 0.0
    rss_idle_mb: float = 0.0
    fps_median: float = 0.0
    fps_min: float = 0.0
    delivered_pps: float = 0.0
    forwarded_pps: float = 0.0
    """Packets the server itself counted as forwarded (sfu only): the load generator may
    lose some when the machine is loaded, the server's CPU was spent on them anyway."""
    udp_sockets: int = 0
    """The server's UDP sockets at the end of the measurement."""
    note: str = ""

    @property
    def streams(self) -> int:
        """Forwarded video streams (each subscriber also receives one audio stream)."""
        return self.subscribers

    @property
    def cpu_per_stream(self) -> float:
        return self.cpu_pct / self.streams if self.streams else 0.0

    @property
    def us_per_packet(self) -> float:
        """Server CPU per packet delivered to a subscriber (audio or video): unlike CPU %,
        it does not depend on how much of the frame rate a loaded machine let through."""
        return self.cpu_pct / 100 / self.delivered_pps * 1e6 if self.delivered_pps else 0.0

    @property
    def us_per_forwarded(self) -> float:
        return self.cpu_pct / 100 / self.forwarded_pps * 1e6 if self.forwarded_pps else 0.0

    @property
    def rss_per_stream_kb(self) -> float:
        return (self.rss_mb - self.rss_idle_mb) * 1024 / self.streams if self.streams else 0.0


@contextlib.contextmanager
def _server(kind: str) -> Iterator[psutil.Process]:
    mode = {
        "sfu1port": ["--mode", "sfu", "--one-udp-port"],
        "sfucc": ["--mode", "sfu", "--congestion-control"],
    }.get(kind, ["--mode", kind])
    proc = subprocess.Popen(
        [PY, "-m", "bench.sfu_server", *mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        p = psutil.Process(proc.pid)
        p.port = int(line.split()[1])
        yield p
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _profiler(
    point: Point, server: psutil.Process, args: argparse.Namespace
) -> subprocess.Popen[str]:
    """py-spy sampling the server between the marks (collapsed stacks, one file per point)."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
    output = Path(f"{args.profile}-{point.server}-{point.scenario}{point.n}.txt")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [pyspy, "record", "--pid", str(server.pid), "--duration", str(int(args.duration))]
    cmd += ["--rate", "250", "--nonblocking", "--format", "raw", "--output", str(output)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def _forwarded(url: str | None) -> int:
    if url is None:
        return 0
    with urllib.request.urlopen(url + "/counters", timeout=10) as resp:
        return int(json.load(resp)["forwarded"])


def _measure(
    point: Point,
    server: psutil.Process,
    load_cmd: list[str],
    args: argparse.Namespace,
    counters_url: str | None = None,
) -> Point:
    timeout = args.duration + args.warmup + 150
    profiler: subprocess.Popen[str] | None = None
    time.sleep(0.5)
    point.rss_idle_mb = server.memory_info().rss / 2**20
    load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start_cpu = start_sys = start_wall = 0.0
    start_forwarded = 0
    result: dict[str, object] = {}
    try:
        assert load.stdout is not None
        deadline = time.monotonic() + timeout
        for line in load.stdout:
            if line.startswith("MEASURE_START"):
                t = server.cpu_times()
                start_cpu, start_sys, start_wall = t.user + t.system, t.system, time.monotonic()
                start_forwarded = _forwarded(counters_url)
                if args.profile:
                    profiler = _profiler(point, server, args)
            elif line.startswith("MEASURE_END"):
                t = server.cpu_times()
                wall = time.monotonic() - start_wall
                point.cpu_pct = (t.user + t.system - start_cpu) / wall * 100
                point.sys_pct = (t.system - start_sys) / wall * 100
                point.forwarded_pps = (_forwarded(counters_url) - start_forwarded) / wall
                point.rss_mb = server.memory_info().rss / 2**20
                point.udp_sockets = len(server.net_connections(kind="udp"))
            elif line.startswith("RESULT"):
                result = json.loads(line[len("RESULT ") :])
            if time.monotonic() > deadline:
                raise TimeoutError
        load.wait(30)
    except (TimeoutError, subprocess.TimeoutExpired):
        load.kill()
        point.note = "load generator timed out"
    if profiler is not None:
        profiler.wait(30)
    if not result:
        err = load.stderr.read()[-400:] if load.stderr else ""
        point.note = point.note or f"no result: {err.strip().splitlines()[-1:] if err else ''}"
        return point
    point.subscribers = int(result["subscribers"])  # type: ignore[call-overload]
    point.connected = f"{result['connected']}/{result['peer_connections']}"
    point.fps_median = float(result["fps_median"])  # type: ignore[arg-type]
    point.fps_min = float(result["fps_min"])  # type: ignore[arg-type]
    point.delivered_pps = float(result["video_pps"]) + float(result["audio_pps"])  # type: ignore[arg-type]
    return point


def _load_args(scenario: str, n: int, args: argparse.Namespace) -> list[str]:
    rooms, subs = (1, n) if scenario == "fanout" else (n, 1)
    return [
        "-m",
        "bench.sfu_load",
        "--file",
        str(CLIP),
        "--rooms",
        str(rooms),
        "--subscribers",
        str(subs),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
    ]


def run_point(kind: str, scenario: str, n: int, args: argparse.Namespace) -> Point:
    point = Point(kind, scenario, n)
    if kind in ("sfu", "sfu1port", "sfucc", "relay", "frames"):
        with _server(kind) as server:
            url = f"http://127.0.0.1:{server.port}"
            cmd = [PY, *_load_args(scenario, n, args), "--url", url]
            counted = kind in ("sfu", "sfu1port", "sfucc")
            return _measure(point, server, cmd, args, url if counted else None)
    rooms = range(1000, 1000 + max(n, 1))
    with sfu_janus.janus(rooms) as proc:
        server = psutil.Process(proc.pid)
        cmd = [
            "ip",
            "netns",
            "exec",
            sfu_janus.LOAD_NS,
            PY,
            *_load_args(scenario, n, args),
            "--janus",
            "--url",
            f"http://{sfu_janus.JANUS_IP}:8088",
            "--ice-host",
            sfu_janus.LOAD_IP,
        ]
        return _measure(point, server, cmd, args)


def _table(points: list[Point]) -> str:
    head = (
        "| server | scenario | N | connected PCs | server CPU % | CPU % per video stream "
        "| µs CPU per delivered packet | µs CPU per forwarded packet | RSS MB "
        "| RSS per stream KB | UDP sockets | fps median | fps min | note |"
    )
    rows = [head, "|" + "---|" * 14]
    for p in points:
        rows.append(
            f"| {p.server} | {p.scenario} | {p.n} | {p.connected} | {p.cpu_pct:.1f} "
            f"| {p.cpu_per_stream:.2f} | {p.us_per_packet:.1f} | {p.us_per_forwarded:.1f} "
            f"| {p.rss_mb:.0f} "
            f"| {p.rss_per_stream_kb:.0f} | {p.udp_sockets} "
            f"| {p.fps_median:.1f} | {p.fps_min:.1f} | {p.note} |"
        )
    return "\n".join(rows)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", default="sfu,relay,janus", help="also: frames, sfu1port, sfucc"
    )
    parser.add_argument("--fanout", default="1,10,50,100", help="N subscribers of one publisher")
    parser.add_argument("--calls", default="1,10,25", help="M rooms of 1 publisher + 1 subscriber")
    parser.add_argument("--relay-max", type=int, default=10, help="skip larger N/M for MediaRelay")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument(
        "--profile", metavar="PREFIX", help="py-spy the server: PREFIX-<server>-<scenario><N>.txt"
    )
    args = parser.parse_args()
    if not CLIP.exists():
        from bench.sfu_media import main as make

        make(["vp8-640", str(CLIP), "90"])
    servers = [s for s in args.servers.split(",") if s]
    plan = [(s, "fanout", n) for n in _ints(args.fanout) for s in servers] + [
        (s, "calls", m) for m in _ints(args.calls) for s in servers
    ]
    points: list[Point] = []
    ns = sfu_janus.namespaces() if "janus" in servers else contextlib.nullcontext()
    with ns:
        for kind, scenario, n in plan:
            if kind == "relay" and n > args.relay_max:
                points.append(
                    Point(kind, scenario, n, note=f"skipped (> --relay-max {args.relay_max})")
                )
                continue
            try:
                point = run_point(kind, scenario, n, args)
            except Exception as exc:  # record what failed and go on
                point = Point(kind, scenario, n, note=f"failed: {exc}"[:120])
            points.append(point)
            print(
                f"{kind:6} {scenario:6} N={n:<4} cpu={point.cpu_pct:6.1f}% "
                f"(sys {point.sys_pct:4.1f}%) "
                f"{point.us_per_packet:5.1f}us/pkt ({point.us_per_forwarded:5.1f} fwd) "
                f"rss={point.rss_mb:6.0f}MB "
                f"fps={point.fps_median:5.1f}/{point.fps_min:5.1f} "
                f"{point.connected} {point.note}",
                flush=True,
            )
    print()
    print(
        f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"cores: {psutil.cpu_count()}, duration {args.duration}s per point"
    )
    print(_table(points))


if __name__ == "__main__":
    main()
