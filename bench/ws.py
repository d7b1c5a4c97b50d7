"""Signalling hub benchmark: idle sockets' memory and chat delivery latency, one and two nodes.

Runs in its own process and starts the server(s) it measures as subprocesses
(``python -m kundlinow serve``) on a fresh database it creates on the PostgreSQL at
``BENCH_PG`` (default 127.0.0.1:5432) and, for the two-node run, the Redis at ``BENCH_REDIS``
(default 127.0.0.1:6379, unique key prefix). Every loop is bounded in count and time.

    python -m bench.ws                      # all three scenarios with the issue's figures
    python -m bench.ws --sockets 1000 --rate 200 --seconds 5   # a quick run

(Run it as a module from the repository root: ``bench/http.py`` would shadow aiohttp's ``http``
module if the script's directory were first on ``sys.path``.)

Scenarios:
  idle     N authenticated sockets on one node; server RSS growth per socket (goal <= 40 KiB)
  chat1    chat messages at R msg/s across P active consultations on one node; latency
           from send to the other party's receipt, p50/p99 (goal p99 <= 50 ms)
  chat2    the same with callers on node A and astrologers on node B, fan-out through Redis
           (goal p99 <= 100 ms)

The chat rows also give CPU seconds per message (user + system, measured over the timed run):
``server_cpu_us_per_msg`` (all server processes), ``postgres_cpu_us_per_msg`` (the PostgreSQL
backends of the bench database) and ``client_cpu_us_per_msg`` (this load generator). On a shared
machine these are the figures to compare; latency needs the machine to itself. The server
handles a socket's frames one after another (a message is acked once committed), so a socket
sending faster than one message per commit time queues behind itself: keep
``rate / (2 * pairs)`` per second well below that (50 pairs at 1,000 msg/s: 10/s per socket).

    BENCH_PROFILE=/tmp/prof python -m bench.ws --only chat1   # + server CPU profile per port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil

from api.auth import issue_token
from billing import ledger
from billing.model import GATEWAY_CLEARING, AccountKind, Transfer
from core.db import Database
from kundlinow.config import Settings
from kundlinow.database import migrations

REPO = Path(__file__).resolve().parents[1]

PROTOCOL = "kundlinow.v1"
JWT_SECRET = "bench-" + secrets.token_hex(24)
DEADLINE_S = 900.0
"""Hard stop of the whole benchmark."""


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stamp(value: float) -> str:
    """A time as letters only (digits would be masked as a phone number by the chat)."""
    n = int(value * 1_000_000)
    out = []
    while n:
        n, r = divmod(n, 26)
        out.append(chr(97 + r))
    return "".join(reversed(out)) or "a"


def unstamp(text: str) -> float:
    n = 0
    for ch in text:
        n = n * 26 + ord(ch) - 97
    return n / 1_000_000


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)


def spawn_server(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # BENCH_PROFILE=path: the server runs under cProfile timed in its own CPU seconds
        profile = os.environ.get("BENCH_PROFILE")
        runner = ["-m", "bench.cpu_profile", f"{profile}.{port}"] if profile else ["-m"]
        process = subprocess.Popen(
            [sys.executable, *runner, "kundlinow", "serve"],
            cwd=REPO,
            env={**env, "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
        )
    return process


async def start_server(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    process = await asyncio.to_thread(spawn_server, env, log, port)
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = (await asyncio.to_thread(log.read_text))[-2000:]
                raise RuntimeError(f"server exited:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{server.url}/readyz") as response:
                    if response.status == 200:
                        return server
            await asyncio.sleep(0.2)
    raise TimeoutError("server did not become ready")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@dataclass
class Bench:
    admin_dsn: str
    dsn: str
    database: Database
    redis_url: str
    workdir: Path
    users: dict[str, list[tuple[uuid.UUID, str]]] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
        env.update(
            DATABASE_URL=self.dsn,
            JWT_SECRET=JWT_SECRET,
            ENV="test",
            LOG_LEVEL="WARNING",
            LOG_FORMAT="json",
            MIGRATE_ON_START="false",
            DB_POOL_MAX="20",
            WS_MAX_CONNECTIONS_PER_USER="10",
            WS_RATE="200",
            WS_RATE_BURST="400",
            BILLING_TICK_INTERVAL="5",
            MIN_START_MINUTES="1",
            HOST="127.0.0.1",
        )
        env.update(extra)
        return env


@contextlib.asynccontextmanager
async def bench_database(admin_dsn: str) -> AsyncIterator[tuple[str, Database]]:
    name = f"kn_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    database = await Database.connect(dsn, min_size=1, max_size=8, migrations=migrations())
    try:
        await database.migrate()
        yield dsn, database
    finally:
        await database.close()
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def create_users(
    database: Database, role: str, count: int, *, funds_paise: int = 0
) -> list[tuple[uuid.UUID, str]]:
    """Users inserted in bulk (a placeholder password hash: nobody logs in) and their tokens."""
    settings = Settings(jwt_secret=JWT_SECRET, jwt_ttl_s=24 * 3600)
    rows = [
        (uuid.uuid4(), f"bench-{role}-{uuid.uuid4().hex[:12]}@example.test") for _ in range(count)
    ]
    async with database.pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO users (id, email, password_hash, display_name, role)"
            " VALUES ($1, $2, 'x', 'bench', $3)",
            [(uid, email, role) for uid, email in rows],
        )
        if role == "consultant":
            await conn.executemany(
                "INSERT INTO consultant_profiles (user_id, display_name) VALUES ($1, 'bench')",
                [(uid,) for uid, _ in rows],
            )
        if funds_paise:
            for uid, _ in rows:
                wallet = await ledger.ensure_account(conn, AccountKind.WALLET, uid)
                await ledger.post(
                    conn,
                    Transfer.build(
                        f"bench:{uid}",
                        "grant",
                        [(GATEWAY_CLEARING, -funds_paise), (wallet, funds_paise)],
                    ),
                )
    return [(uid, issue_token(settings, uid, role)) for uid, _ in rows]  # type: ignore[arg-type]


class Sock:
    """A bench client socket: request/ack by id, chat events timed on arrival."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.latencies: list[float] | None = None
        self.n = 0
        self.unanswered: set[str] = set()
        """Ids of :meth:`fire` requests not yet answered."""
        self.rejected = 0
        """:meth:`fire` requests answered with an error."""
        self.reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            await self._read_frames()
        except Exception as exc:  # a bench bug must be seen, not swallowed by the task
            print(f"reader failed: {exc!r}", file=sys.stderr)
            raise

    async def _read_frames(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            frame = orjson.loads(msg.data)
            kind = frame["type"]
            if kind in ("ack", "error"):
                future = self.pending.pop(frame["id"], None)
                if future is not None and not future.done():
                    future.set_result(frame)
                elif frame["id"] in self.unanswered:
                    self.unanswered.discard(frame["id"])
                    self.rejected += kind == "error"
            elif kind == "message" and self.latencies is not None:
                sent = unstamp(frame["data"]["message"]["text"].split(" ", 1)[0])
                self.latencies.append(now - sent)
            else:
                self.events.put_nowait(frame)

    def _next_id(self) -> str:
        self.n += 1
        return f"b{self.n}"

    async def _send(self, kind: str, msg_id: str, data: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps({"type": kind, "id": msg_id, "data": data}).decode())

    async def request(self, kind: str, data: dict[str, Any], wait_s: float = 30) -> dict[str, Any]:
        msg_id = self._next_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        await self._send(kind, msg_id, data)
        return await asyncio.wait_for(future, wait_s)

    async def fire(self, kind: str, data: dict[str, Any]) -> None:
        """Send a request whose answer is only counted: no future, task or timer per message,
        so the load generator's own cost per message stays small."""
        if self.ws.closed:  # the server dropped it (an overloaded client misses its pings)
            self.rejected += 1
            return
        msg_id = self._next_id()
        self.unanswered.add(msg_id)
        await self._send(kind, msg_id, data)

    async def event(self, kind: str, wait_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            remaining = max(0.01, deadline - time.monotonic())
            frame = await asyncio.wait_for(self.events.get(), remaining)
            if frame["type"] == kind:
                return frame

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


async def open_socket(
    session: aiohttp.ClientSession, url: str, token: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(
        f"{url}/ws",
        protocols=(PROTOCOL, f"bearer.{token}"),
        heartbeat=None,
        autoping=True,
        timeout=aiohttp.ClientWSTimeout(ws_close=5),
    )
    msg = await ws.receive(timeout=30)
    if msg.type != aiohttp.WSMsgType.TEXT or orjson.loads(msg.data)["type"] != "hello":
        raise RuntimeError(f"no hello: {msg}")
    return ws


async def scenario_idle(bench: Bench, sockets: int) -> dict[str, Any]:
    users = await create_users(bench.database, "user", (sockets + 4) // 5)
    server = await start_server(bench.env(), bench.workdir / "idle.log")
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            warm = await open_socket(session, server.url, users[0][1])  # imports, pools warm
            await warm.close()
            await asyncio.sleep(1.0)
            before = server.rss
            gate = asyncio.Semaphore(100)
            opened: list[aiohttp.ClientWebSocketResponse] = []
            started = time.perf_counter()

            async def one(i: int) -> None:
                async with gate:
                    opened.append(await open_socket(session, server.url, users[i // 5][1]))

            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(sockets))), 300)
            connect_s = time.perf_counter() - started
            await asyncio.sleep(3.0)
            after = server.rss
            # every socket still answers (sample)
            alive = sum(1 for ws in opened if not ws.closed)
            for ws in opened:
                await ws.close()
        return {
            "sockets": sockets,
            "alive": alive,
            "connect_s": round(connect_s, 1),
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_socket": round((after - before) / sockets / 1024, 1),
        }
    finally:
        stop_server(server)


async def start_pairs(
    session: aiohttp.ClientSession,
    caller_url: str,
    astro_url: str,
    pairs: int,
    bench: Bench,
) -> list[tuple[Sock, Sock, str]]:
    callers = await create_users(bench.database, "user", pairs, funds_paise=10_000_000)
    astros = await create_users(bench.database, "consultant", pairs)
    result: list[tuple[Sock, Sock, str]] = []
    for (_, ctoken), (aid, atoken) in zip(callers, astros, strict=True):
        caller = Sock(await open_socket(session, caller_url, ctoken))
        astro = Sock(await open_socket(session, astro_url, atoken))
        caller.start()
        astro.start()
        ack = await caller.request("consult_request", {"consultant_id": str(aid), "mode": "chat"})
        if ack["type"] != "ack":
            raise RuntimeError(f"request failed: {ack}")
        cid = ack["data"]["consultation"]["id"]
        await astro.event("consult_request")
        accepted = await astro.request("accept", {"consultation_id": cid})
        if accepted["type"] != "ack":
            raise RuntimeError(f"accept failed: {accepted}")
        for sock in (caller, astro):
            joined = await sock.request("join_consult", {"consultation_id": cid})
            if joined["type"] != "ack":
                raise RuntimeError(f"join failed: {joined}")
        result.append((caller, astro, cid))
    return result


async def chat_load(
    pairs: list[tuple[Sock, Sock, str]], rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    for caller, astro, _ in pairs:
        caller.latencies = latencies
        astro.latencies = latencies
    total = int(rate * seconds)
    run = uuid.uuid4().hex[:6]
    interval = 1.0 / rate
    socks = [sock for caller, astro, _ in pairs for sock in (caller, astro)]
    for sock in socks:
        sock.unanswered.clear()
        sock.rejected = 0
    start = time.perf_counter()
    for i in range(total):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        caller, astro, cid = pairs[i % len(pairs)]
        sender = caller if (i // len(pairs)) % 2 == 0 else astro
        text = f"{stamp(time.perf_counter())} how is my Saturn doing"
        await sender.fire(
            "message", {"consultation_id": cid, "client_id": f"{run}-{i}", "text": text}
        )
    sent_s = time.perf_counter() - start
    answered = time.monotonic() + 30
    while any(s.unanswered for s in socks) and time.monotonic() < answered:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # bounded: the readers count the answers as they arrive
    errors = sum(len(s.unanswered) + s.rejected for s in socks)
    settle = time.monotonic() + 10
    while len(latencies) < total - errors and time.monotonic() < settle:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # bounded: the receivers' readers append as frames arrive
    ms = [x * 1000 for x in latencies]
    return {
        "messages": total,
        "delivered": len(ms),
        "errors": errors,
        "offered_rate": rate,
        "achieved_rate": round(total / sent_s, 1),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else float("nan"),
    }


async def scenario_chat(
    bench: Bench, *, nodes: int, pairs: int, rate: float, seconds: float
) -> dict[str, Any]:
    extra: dict[str, str] = {}
    if nodes == 2:
        extra = {"REDIS_URL": bench.redis_url, "REDIS_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:"}
    servers = [
        await start_server(bench.env(**extra), bench.workdir / f"chat{nodes}-{i}.log")
        for i in range(nodes)
    ]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            socks = await start_pairs(session, servers[0].url, servers[-1].url, pairs, bench)
            await chat_load(socks, rate, min(2.0, seconds))  # warm-up

            def cpu(index: int) -> float:
                return sum(psutil.Process(s.process.pid).cpu_times()[index] for s in servers)

            me = psutil.Process()
            backends = await postgres_backends(bench.database)
            user0, sys0, mine0 = cpu(0), cpu(1), sum(me.cpu_times()[:2])
            pg0 = processes_cpu(backends)
            result = await chat_load(socks, rate, seconds)
            user1, sys1, mine1 = cpu(0), cpu(1), sum(me.cpu_times()[:2])
            pg1 = processes_cpu(backends)
            cpu0, cpu1 = user0 + sys0, user1 + sys1
            result["server_sys_share"] = round((sys1 - sys0) / max(1e-9, cpu1 - cpu0), 2)
            result["nodes"] = nodes
            result["pairs"] = pairs
            result["server_cpu_us_per_msg"] = round((cpu1 - cpu0) / result["messages"] * 1e6)
            result["postgres_cpu_us_per_msg"] = round((pg1 - pg0) / result["messages"] * 1e6)
            result["client_cpu_us_per_msg"] = round((mine1 - mine0) / result["messages"] * 1e6)
            result["load_avg_1m"] = round(os.getloadavg()[0], 1)
            for caller, astro, _ in socks:
                await caller.close()
                await astro.close()
        return result
    finally:
        for server in servers:
            stop_server(server)


async def postgres_backends(database: Database) -> list[psutil.Process]:
    """The PostgreSQL backend processes serving the bench database (the servers' pools and chat
    writers; PostgreSQL runs on this machine)."""
    pids = await database.pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    found = []
    for row in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(row["pid"]))
    return found


def processes_cpu(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds of the processes still alive."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += sum(process.cpu_times()[:2])
    return total


def table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    lines = [title, "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=("idle", "chat1", "chat2"), action="append")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    raise_nofile()
    admin_dsn = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
    only = set(args.only or ("idle", "chat1", "chat2"))
    workdir = REPO / "bench" / "out"
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB; "
        f"python {sys.version.split()[0]}; aiohttp {aiohttp.__version__}"
    )
    async with bench_database(admin_dsn) as (dsn, database):
        bench = Bench(admin_dsn, dsn, database, redis_url, workdir)
        if "idle" in only:
            idle = await scenario_idle(bench, args.sockets)
            print(table("\nidle sockets, one node (goal <= 40 KiB per socket)", [idle]))
        chats = []
        if "chat1" in only:
            chats.append(
                await scenario_chat(
                    bench, nodes=1, pairs=args.pairs, rate=args.rate, seconds=args.seconds
                )
            )
        if "chat2" in only:
            chats.append(
                await scenario_chat(
                    bench, nodes=2, pairs=args.pairs, rate=args.rate, seconds=args.seconds
                )
            )
        if chats:
            print(
                table(
                    "\nchat delivery latency, send -> other party's receipt "
                    "(goals p99 <= 50 ms one node, <= 100 ms two nodes)",
                    chats,
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(asyncio.wait_for(main(parse_args()), DEADLINE_S)))
