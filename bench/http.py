"""HTTP throughput of one server process: ``GET /consultants`` and ``POST /auth/login``.

Starts ``python -m kundlinow serve`` as a subprocess on a fresh database of a real PostgreSQL
(``--database-url``, default the local server), fills it with astrologers, then drives each
scenario with an aiohttp client at a fixed concurrency, bounded by a request count and a time
limit, and prints one table row per scenario. Login is deliberately argon2id-bound (each attempt
hashes in a worker thread), so expect it far below the listing.

    .venv/bin/python -m bench.http --concurrency 16 --duration 10 --requests 5000
    .venv/bin/python -m bench.http --tracing both --rounds 2 --login-requests 0  # export off/on

(``python bench/http.py`` works too: this file's directory is taken off ``sys.path`` first, so it
does not shadow the standard library's ``http`` package that aiohttp imports.)
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psutil
from argon2 import PasswordHasher

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-1"
LOGIN_EMAIL = "bench-caller@bench.test"


@dataclass(frozen=True, slots=True)
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    server_cpu_s: float
    """CPU time (user + system, every thread) the server process spent in the timed part."""

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / len(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _populate(dsn: str, consultants: int) -> None:
    """Astrologers with varied languages, specialities, rates and ratings, plus one caller."""
    password_hash = PasswordHasher().hash(PASSWORD)
    conn = await asyncpg.connect(dsn)
    try:
        languages = [["hi", "en"], ["ta", "en"], ["hi", "mr"], ["en"], ["bn", "hi"]]
        specialities = [["vedic"], ["tarot", "numerology"], ["vastu"], ["palmistry", "tarot"]]
        async with conn.transaction():
            for n in range(consultants):
                user_id = await conn.fetchval(
                    "INSERT INTO users (email, password_hash, display_name, role)"
                    " VALUES ($1, $2, $3, 'consultant') RETURNING id",
                    f"astro{n}@bench.test",
                    password_hash,
                    f"Astrologer {n}",
                )
                await conn.execute(
                    "INSERT INTO consultant_profiles (user_id, display_name, bio, languages,"
                    " specialities, rate_chat_paise, rate_voice_paise, rate_video_paise,"
                    " rating_sum, rating_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    user_id,
                    f"Astrologer {n}",
                    "Benchmark profile " * 5,
                    languages[n % len(languages)],
                    specialities[n % len(specialities)],
                    500 + 37 * n % 3000,
                    800 + 53 * n % 4000,
                    1200 + 71 * n % 5000,
                    (n * 7) % 50 * 5,
                    (n * 7) % 50 + 1,
                )
            await conn.execute(
                "INSERT INTO users (email, password_hash, display_name, role)"
                " VALUES ($1, $2, 'Bench Caller', 'user')",
                LOGIN_EMAIL,
                password_hash,
            )
    finally:
        await conn.close()


async def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"server exited with {server.returncode}")
            try:
                async with session.get(base + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready")
            await asyncio.sleep(0.2)


Request = Callable[[aiohttp.ClientSession], Awaitable[int]]


def _cpu_seconds(server: subprocess.Popen[bytes]) -> Callable[[], float]:
    process = psutil.Process(server.pid)

    def used() -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    return used


async def _drive(
    name: str, base: str, request: Request, concurrency: int, count: int, duration_s: float,
    server_cpu: Callable[[], float],
) -> Result:
    latencies: list[float] = []
    errors = 0
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        # One warm-up round so connection set-up is not measured.
        await asyncio.gather(*(request(session) for _ in range(concurrency)))
        cpu_before = server_cpu()
        started = time.perf_counter()
        deadline = started + duration_s

        async def worker() -> None:
            nonlocal issued, errors
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    status = await request(session)
                except aiohttp.ClientError:
                    status = 0
                latencies.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = server_cpu() - cpu_before
    return Result(name, len(latencies), errors, elapsed, latencies, cpu)


async def _get_consultants(session: aiohttp.ClientSession) -> int:
    async with session.get("/consultants?limit=20&sort=rating") as response:
        await response.read()
        return response.status


async def _login(session: aiohttp.ClientSession) -> int:
    body = {"email": LOGIN_EMAIL, "password": PASSWORD}
    async with session.post("/auth/login", json=body) as response:
        await response.read()
        return response.status


def _table(results: list[Result], concurrency: int) -> str:
    header = (
        "| scenario | concurrency | requests | errors | req/s | p50 ms | p90 ms | p99 ms"
        " | max ms | server CPU ms/req |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [
        f"| {r.scenario} | {concurrency} | {r.requests} | {r.errors} | {r.rate:.1f} |"
        f" {r.quantile(0.5):.1f} | {r.quantile(0.9):.1f} | {r.quantile(0.99):.1f} |"
        f" {max(r.latencies_ms, default=0):.1f} | {r.cpu_ms_per_request:.2f} |"
        for r in results
    ]
    return "\n".join([header, *rows])


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _run(
    args: argparse.Namespace, base: str, dsn: str, server: subprocess.Popen[bytes], label: str,
    populate: bool,
) -> list[Result]:
    await _wait_ready(base, server, 60)  # the server applies the migrations
    if populate:
        await _populate(dsn, args.consultants)
    server_cpu = _cpu_seconds(server)
    results = [
        await _drive(
            f"GET /consultants{label}",
            base,
            _get_consultants,
            args.concurrency,
            args.requests,
            args.duration,
            server_cpu,
        )
    ]
    if args.login_requests:
        results.append(await _drive(
            f"POST /auth/login{label}", base, _login, args.concurrency, args.login_requests,
            args.duration, server_cpu,
        ))
    return results


def _stop(process: subprocess.Popen[bytes], signum: int = signal.SIGINT) -> None:
    process.send_signal(signum)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _measure(
    args: argparse.Namespace, dsn: str, collector: str | None, populate: bool
) -> list[Result]:
    """One server process (exporting spans to ``collector`` when given) through the scenarios."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ENV": "development",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "LOGIN_IP_LIMIT": "1000000000",
        "LOGIN_ACCOUNT_LIMIT": "1000000000",
        "BILLING_INTERNAL_TICKER": "false",
        "OTEL_TRACES_EXPORTER": "otlp" if collector else "none",
    }
    if collector:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "kundlinow", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    label = " (tracing on)" if collector else " (tracing off)" if args.tracing == "both" else ""
    try:
        return asyncio.run(_run(args, f"http://127.0.0.1:{port}", dsn, server, label, populate))
    finally:
        _stop(server)


def _collector() -> tuple[subprocess.Popen[bytes], str]:
    """A stand-in OTLP/HTTP collector in its own process (tests/otlp_collector.py)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.otlp_collector", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def main(args: argparse.Namespace) -> int:
    name = f"kn_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    dsn = _with_database(args.database_url, name)
    # Alternated, so drift in the machine's load (it is shared) falls on both modes alike.
    exporting = {"off": [False], "on": [True], "both": [False, True]}[args.tracing] * args.rounds
    collector, endpoint = _collector() if any(exporting) else (None, None)
    results: list[Result] = []
    try:
        for n, on in enumerate(exporting):
            results += _measure(args, dsn, endpoint if on else None, populate=n == 0)
    finally:
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        received = ""
        if collector is not None:
            _stop(collector, signal.SIGTERM)
            assert collector.stdout is not None
            received = collector.stdout.read().decode().strip().splitlines()[-1]
    print(
        f"kundlinow HTTP benchmark: one server process, {args.consultants} astrologers,"
        f" {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if received:
        print(f"collector: {received}")
    print(_table(results, args.concurrency))
    return 0 if all(r.errors == 0 and r.requests for r in results) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin DSN of a real PostgreSQL; a scratch database is created and dropped",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario (max)")
    parser.add_argument("--requests", type=int, default=5000, help="GET /consultants (max)")
    parser.add_argument("--login-requests", type=int, default=300, help="POST /auth/login (max)")
    parser.add_argument("--consultants", type=int, default=200)
    parser.add_argument(
        "--tracing", choices=("off", "on", "both"), default="off",
        help="OpenTelemetry export: off, on (to a stand-in OTLP collector process), or both in"
        " turn, each with its own server process",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat the --tracing sequence")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
