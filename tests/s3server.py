"""A real S3-compatible server for tests: moto's server mode as a child process on a free
loopback port (no Docker), and a fresh bucket per test."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from recording.config import S3Settings

START_DEADLINE_S = 60.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def new_bucket(self, prefix: str = "") -> S3Settings:
        """Create an empty bucket and the settings that name it."""
        bucket = f"rec-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        return S3Settings(bucket=bucket, prefix=prefix, endpoint=self.endpoint,
                          access_key_id="test-key", secret_access_key="test-secret")

    def env(self, settings: S3Settings) -> dict[str, str]:
        """The environment a ``kundlinow`` process needs to use ``settings``."""
        return {"RECORDING_STORAGE": "s3", "RECORDING_S3_BUCKET": settings.bucket,
                "RECORDING_S3_PREFIX": settings.prefix, "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": settings.region, "AWS_ACCESS_KEY_ID": settings.access_key_id,
                "AWS_SECRET_ACCESS_KEY": settings.secret_access_key}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """``python -m moto.server`` until the context ends (a synchronous wait for start-up:
    module fixtures run outside the test's event loop)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not _listening(port):
            assert process.poll() is None, f"moto server exited with {process.returncode}"
            assert time.monotonic() < deadline, "moto server did not listen in time"
            time.sleep(0.05)  # polling a child's start-up, bounded by the deadline
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
