"""CPU cost of tracing per unit of work, in one process: an aiohttp request with and without the
OpenTelemetry server middleware, and one lifecycle-style span with the no-op and the exporting
tracer. Spans are exported (batched, on the SDK's thread, counted in the CPU time) to a stand-in
OTLP collector in its own process (tests/otlp_collector.py).

    .venv/bin/python -m bench.tracing --requests 3000 --spans 20000 --rounds 2

CPU time is the benchmark process's (``time.process_time``: every thread), so other load on the
machine moves it far less than throughput. The request figure includes the aiohttp client's own
cost, the same in both columns; the difference is the middleware's.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry.trace import NoOpTracer, Tracer

from core.tracing import Tracing, TracingSettings

REPO = Path(__file__).resolve().parents[1]


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _request_cpu_us(middlewares: list[Middleware], requests: int) -> float:
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/consultants", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/consultants?limit=20"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(50):  # warm-up: the connection, the instrumentation's first calls
                async with session.get(url) as response:
                    await response.read()
            started = time.process_time()
            for _ in range(requests):
                async with session.get(url) as response:
                    await response.read()
            return (time.process_time() - started) / requests * 1e6
    finally:
        await runner.cleanup()


def _span_cpu_us(tracer: Tracer, spans: int) -> float:
    attributes = {"consultation.id": "6f1c2d1e-0000-4000-8000-000000000000"}
    started = time.process_time()
    for minute in range(spans):
        with tracer.start_as_current_span("consultation.charge", attributes=attributes) as span:
            span.set_attribute("billing.minute", minute)
    return (time.process_time() - started) / spans * 1e6


async def _run(args: argparse.Namespace, endpoint: str) -> list[tuple[str, float, float]]:
    tracing = Tracing(TracingSettings(exporter="otlp", endpoint=endpoint))
    rows = []
    try:
        for _ in range(args.rounds):
            rows.append((
                "HTTP request (µs CPU)",
                await _request_cpu_us([], args.requests),
                await _request_cpu_us(tracing.server_middlewares(), args.requests),
            ))
            rows.append((
                "lifecycle span (µs CPU)",
                _span_cpu_us(NoOpTracer(), args.spans),
                _span_cpu_us(tracing.tracer, args.spans),
            ))
    finally:
        await asyncio.to_thread(tracing.close)
    return rows


def main(args: argparse.Namespace) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collector = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_collector", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        assert collector.stdout is not None
        collector.stdout.readline()  # "listening …": the collector is up
        rows = asyncio.run(_run(args, f"http://127.0.0.1:{port}"))
    finally:
        collector.send_signal(signal.SIGTERM)
        out, _ = collector.communicate(timeout=30)
    print(f"kundlinow tracing cost, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"collector: {out.decode().strip().splitlines()[-1]}")
    print("| unit | tracing off | tracing on (OTLP export) | on − off | on ÷ off |")
    print("|---|---:|---:|---:|---:|")
    for unit, off, on in rows:
        print(f"| {unit} | {off:.1f} | {on:.1f} | {on - off:.1f} | {on / off:.2f} |")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
