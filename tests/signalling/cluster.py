"""Several real server processes (``python -m kundlinow serve``) sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from core import stackdump
from tests.conftest import TEST_JWT_SECRET
from tests.polling import eventually

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Node:
    name: str
    """Its label (``serve_nodes`` also makes it the ``NODE_ID``)."""
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def node_logs(*nodes: Node, chars: int = 6000) -> str:
    """The end of each node's log: what a failing test shows of the processes it ran."""
    return "\n".join(f"--- node {n.name}\n{n.log.read_text(errors='replace')[-chars:]}"
                     for n in nodes)


STACK_DUMP_WAIT_S = 15.0


async def wait_exit(node: Node, timeout_s: float) -> int:
    """The node's exit code once it exits, waited for off the event loop (the test's sockets
    keep answering meanwhile). If it is still up after ``timeout_s``: an AssertionError with
    its log, ending with where it waits (``core.stackdump``)."""
    started = time.monotonic()
    try:
        code = await asyncio.to_thread(node.process.wait, timeout_s)
    except subprocess.TimeoutExpired:
        node.process.send_signal(stackdump.DUMP_SIGNAL)
        await eventually(lambda: stackdump.END_MARKER in node.log.read_text(errors="replace"),
                         STACK_DUMP_WAIT_S)
        raise AssertionError(
            f"node {node.name} still running {timeout_s:.0f} s on\n{node_logs(node, chars=40000)}"
        ) from None
    print(f"node {node.name} exited {time.monotonic() - started:.1f} s after the wait began")
    return code


READY_DEADLINE_S = 180
"""A node process imports aiortc, PyAV and the rest before it answers: seconds on a quiet
machine, and more than a minute was seen with both cores busy."""


async def wait_ready(session: aiohttp.ClientSession, node: Node) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"node exited: {node.log.read_text()[-3000:]}")
        try:
            async with session.get(f"{node.url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"node not ready: {node.log.read_text()[-3000:]}")


@asynccontextmanager
async def serve_nodes(
    db_dsn: str, redis_url: str, redis_prefix: str, log_dir: Path,
    *, names: Sequence[str] = ("a", "b"), **env_overrides: str,
) -> AsyncIterator[list[Node]]:
    """Nodes (default ``a`` and ``b``; each name, or letter of a string, is also the node's
    ``NODE_ID``) on free ports, ready; SIGTERM (then SIGKILL) on exit."""
    started: list[Node] = []
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL",)}
    env.update(
        DATABASE_URL=db_dsn, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
        JWT_SECRET=TEST_JWT_SECRET, ENV="test", LOG_FORMAT="json",
        LOG_LEVEL=os.environ.get("TEST_NODE_LOG_LEVEL", "WARNING"),  # INFO to debug a node
        DRAIN_DEADLINE="3",  # SIGTERM drains, then exits: seconds here, not minutes
        MIGRATE_ON_START="false", MIN_START_MINUTES="1", PRESENCE_NODE_TTL="10",
        PRESENCE_HEARTBEAT="3", HOST="127.0.0.1",
        RECORDINGS_DIR=str(log_dir / "recordings"),  # the test's directory, not ./var
    )
    env.update(env_overrides)
    try:
        for name in names:
            port = free_port()
            log = log_dir / f"node-{name}.log"
            with log.open("wb") as out:
                # Popen returns at once (fork/exec); readiness is awaited below.
                process = subprocess.Popen(  # noqa: ASYNC220
                    [sys.executable, "-m", "kundlinow", "serve"],
                    cwd=REPO, env={**env, "NODE_ID": name, "PORT": str(port)}, stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append(Node(name, f"http://127.0.0.1:{port}", process, log))
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(wait_ready(session, n) for n in started))
        try:
            yield started
        except BaseException:
            print(node_logs(*started))  # shown with the failure (pytest captures stdout)
            raise
    finally:
        for node in started:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in started:
            try:
                node.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
