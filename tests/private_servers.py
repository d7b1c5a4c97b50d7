"""A Redis and a PostgreSQL of the test's own, on free ports, that a failure drill may restart.

The machine's Redis (6379) and PostgreSQL (5432) are shared by every test run on it: a drill
that restarted them would break the others. These servers live in a temporary directory, listen
on 127.0.0.1 only, and are stopped (and their files removed) when the context exits. PostgreSQL
comes from the pgserver wheel (a dependency, so present everywhere the suite runs); as root it
runs as the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pgserver
import redis.asyncio as aioredis

from tests.signalling.cluster import free_port

PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
START_DEADLINE_S = 30.0
"""How long a server may take to accept connections on a loaded machine."""


def _scratch(prefix: str, owner: str | None) -> Path:
    """A temporary directory the server's user can write to (parents are world-traversable)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class PrivateRedis:
    """``redis-server`` without persistence: a restart comes back empty, as a replaced pod."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self._directory / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self._directory)],
                stdout=log, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: every connection drops at once, every key is gone."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    async def ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        client = aioredis.from_url(self.url)
        try:
            while True:
                try:
                    await client.ping()
                    return
                except (OSError, aioredis.ConnectionError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()


class PrivatePostgres:
    """A PostgreSQL cluster initialised in a temporary directory (trust authentication)."""

    def __init__(self, directory: Path, user: str | None) -> None:
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._data = directory / "data"
        self._user = user
        self._log = directory / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self._data), "-U", "postgres", "--auth=trust",
             "--encoding=utf8", "--no-sync"],
            check=True, user=self._user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self._data), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._data}",
                 "-c", "fsync=off", "-c", "max_connections=100"],
                user=self._user, stdout=log, stderr=subprocess.STDOUT,
            )

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): backends die mid-transaction, the next start recovers
        from the write-ahead log, as after a crash or a killed pod."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            self._process.wait(timeout=START_DEADLINE_S)
        self._process = None

    async def ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=3)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return

    def log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-3000:]


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis (await :meth:`PrivateRedis.ready` before use)."""
    directory = _scratch("kundlinow-redis-", None)
    server = PrivateRedis(directory)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """An initialised, started private PostgreSQL (await :meth:`PrivatePostgres.ready`)."""
    user = "postgres" if os.geteuid() == 0 else None
    directory = _scratch("kundlinow-pg-", user)
    server = PrivatePostgres(directory, user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.crash()
        shutil.rmtree(directory, ignore_errors=True)
