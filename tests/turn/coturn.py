"""Run a real coturn (`turnserver`, Debian package ``coturn``) on 127.0.0.1 for tests."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aioice import stun

from tests.conftest import require_program

REPO = Path(__file__).resolve().parents[2]
TEST_CONF = REPO / "infra" / "coturn-test.conf"
PROD_CONF = REPO / "coturn.conf"
ENTRYPOINT = REPO / "infra" / "coturn-entrypoint.sh"
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (coturn listens on both)."""
    family = _family(host)
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@dataclass(frozen=True, slots=True)
class Coturn:
    """A running coturn."""

    host: str
    """127.0.0.1 or ::1."""
    port: int
    """UDP/TCP listening port."""
    secret: str
    """``static-auth-secret``."""
    realm: str
    log: Path
    """coturn's stdout and stderr."""
    pid: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def turn_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"turn:{host}:{self.port}?transport=udp"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


async def _probe(address: tuple[str, int]) -> bool:
    """One STUN Binding request (RFC 8489 §6) from a fresh socket; True if coturn answered
    with anything at all: a success, or 401 when ``secure-stun`` demands authentication."""
    loop = asyncio.get_running_loop()
    with socket.socket(_family(address[0]), socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
        sock.send(bytes(request))
        try:
            async with asyncio.timeout(0.2):
                while True:
                    data = await loop.sock_recv(sock, 2048)
                    if stun.parse_message(data).transaction_id == request.transaction_id:
                        return True
        except (TimeoutError, ConnectionRefusedError, ValueError):
            return False


#: Consecutive answered probes, 50 ms apart, that count as "started".
READY_PROBES = 5


async def _wait_ready(address: tuple[str, int], proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until coturn has finished starting.

    coturn 4.6 answers on its UDP port before its worker threads have settled: during that
    window (longer on a loaded machine) a client's first packets may get no answer at all, or
    an ICMP port-unreachable, and the 5-tuple can stay broken. So: several consecutive probes,
    each from a new source port, must all be answered.
    """
    deadline = time.monotonic() + 15
    answered = 0
    while answered < READY_PROBES:
        if proc.poll() is not None:
            raise RuntimeError(f"turnserver exited with {proc.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"turnserver did not answer on {address}:\n{_tail(log)}")
        answered = answered + 1 if await _probe(address) else 0
        await asyncio.sleep(0.05)


class CoturnProcess:
    """Starts ``turnserver -c <conf>`` with per-run overrides on the command line; ``stop()``
    terminates it (SIGTERM, then SIGKILL).

    With ``via_entrypoint`` it starts coturn the way docker-compose does, through
    infra/coturn-entrypoint.sh with the secret in ``TURN_SECRET`` instead of on the command line.
    """

    def __init__(
        self,
        conf: Path,
        workdir: Path,
        *,
        realm: str,
        host: str = "127.0.0.1",
        extra: tuple[str, ...] = (),
        via_entrypoint: bool = False,
    ) -> None:
        self._via_entrypoint = via_entrypoint
        self._host = host
        self._conf = conf
        self._workdir = workdir
        self._realm = realm
        self._extra = extra
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> Coturn:
        require_program(TURNSERVER, "coturn", "apt-get install coturn (it provides turnserver)")
        host = self._host
        port = free_port(host)
        # Relay ports below Linux's ephemeral range (32768+), so port-0 binds elsewhere never
        # take them; a random window, as several test runs may share the machine.
        min_port = random.randrange(20000, 32000, 200)
        secret = secrets.token_urlsafe(24)
        log = self._workdir / "turnserver.out"
        # Both configurations log to stdout (log-file=stdout), which goes to `log`.
        overrides = [
            f"--listening-ip={host}",
            f"--relay-ip={host}",
            f"--listening-port={port}",
            f"--min-port={min_port}",
            f"--max-port={min_port + 199}",
            *self._extra,
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if self._via_entrypoint:
            args = ["/bin/sh", str(ENTRYPOINT), *overrides]
            env |= {
                "TURN_SECRET": secret,
                "TURN_REALM": self._realm,
                "COTURN_CONF": str(self._conf),
                "COTURN_RUN_DIR": str(self._workdir / "run"),
                "TURNSERVER": TURNSERVER,
            }
        else:
            args = [
                TURNSERVER,
                "-c",
                str(self._conf),
                *overrides,
                f"--static-auth-secret={secret}",
                f"--realm={self._realm}",
                f"--pidfile={self._workdir / 'turnserver.pid'}",
                f"--userdb={self._workdir / 'turndb'}",
            ]
        self._proc = self._spawn(args, env, log)
        try:
            await _wait_ready((host, port), self._proc, log)
        except BaseException:
            self.stop()
            raise
        return Coturn(
            host=host, port=port, secret=secret, realm=self._realm, log=log, pid=self._proc.pid
        )

    def _spawn(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._workdir,
                env=env,
                start_new_session=True,
            )

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
