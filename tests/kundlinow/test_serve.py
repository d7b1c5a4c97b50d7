"""A fresh clone's ``make serve``: no DATABASE_URL, no Redis → embedded PostgreSQL, /readyz 200.

The server runs as a real subprocess (``python -m kundlinow serve``) on a free port with its
embedded data directory under a temporary directory; ``seed-demo`` then runs against the same
embedded server, as ``make serve`` does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.seed import DEMO_ACCOUNTS
from core import stackdump

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(pg_parent: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL")
    }
    env.update(
        EMBEDDED_PG_DIR=str(pg_parent / "pg"),
        PORT=str(port),
        HOST="127.0.0.1",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        ENV="development",
    )
    return env


def _request(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def embedded_server(
    tmp_path: Path, pg_dir: Path
) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[str]]]:
    port = free_port()
    env = _env(pg_dir, port)
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "kundlinow", "serve"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    status, _ = _request(base + "/readyz")
                    if status == 200:
                        break
                except (OSError, ValueError):
                    pass
                assert time.monotonic() < deadline, "not ready in time:\n" + log_path.read_text()
                time.sleep(0.25)
            yield base, env, server
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def test_fresh_clone_serves_ready_with_embedded_postgres_and_seeds(
    embedded_server: tuple[str, dict[str, str], subprocess.Popen[str]], pg_dir: Path,
    tmp_path: Path,
) -> None:
    base, env, server = embedded_server
    status, body = _request(base + "/readyz")
    assert (status, body) == (200, {"status": "ready"})
    assert (pg_dir / "pg" / "PG_VERSION").is_file()

    seeded = subprocess.run(
        [sys.executable, "-m", "kundlinow", "seed-demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    # seed-demo attached to the running embedded server and left it running.
    assert _request(base + "/readyz")[0] == 200
    status, listing = _request(base + "/consultants")
    assert status == 200 and len(listing["items"]) == 4
    caller = next(a for a in DEMO_ACCOUNTS if a.role == "user")
    status, login = _request(
        base + "/auth/login", {"email": caller.email, "password": caller.password}
    )
    assert status == 200 and login["user"]["role"] == "user"
    # serving began with the start-up heap frozen (core.gcpolicy): tens of thousands of objects
    with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
        metrics = response.read().decode()
    frozen = next(line for line in metrics.splitlines()
                  if line.startswith("kundlinow_gc_frozen_objects{"))
    assert float(frozen.rsplit(" ", 1)[1]) > 10_000, frozen
    # kill -USR1 (core.stackdump): where the node waits, in its log; it keeps serving
    log_path = tmp_path / "server.log"
    server.send_signal(stackdump.DUMP_SIGNAL)
    deadline = time.monotonic() + 60
    while stackdump.END_MARKER not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    dump = log_path.read_text()
    assert stackdump.END_MARKER in dump
    assert "stack dump: threads" in dump and "Thread 0x" in dump
    assert "asyncio tasks" in dump and "Stack for <Task" in dump  # e.g. the billing ticker
    assert _request(base + "/readyz")[0] == 200

    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=30) == 0
    # The embedded PostgreSQL stopped with the server (its data stays for the next start).
    deadline = time.monotonic() + 60
    while (pg_dir / "pg" / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (pg_dir / "pg" / "postmaster.pid").exists()
