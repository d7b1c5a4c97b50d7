"""infra/coturn-entrypoint.sh, the coturn container's entrypoint: it injects TURN_SECRET into a
private copy of coturn.conf, never onto the command line, and refuses weak or odd secrets."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.turn.coturn import ENTRYPOINT, PROD_CONF, Coturn, CoturnProcess
from tests.turn.turnclient import TurnTestClient
from turn.credentials import compute_password, make_credential


@pytest.fixture
async def coturn_via_entrypoint(tmp_path: Path) -> AsyncIterator[Coturn]:
    process = CoturnProcess(
        PROD_CONF,
        tmp_path,
        realm="turn.kundlinow.example",
        extra=("--no-tls",),
        via_entrypoint=True,
    )
    server = await process.start()
    try:
        yield server
    finally:
        process.stop()


async def test_secret_from_the_environment_reaches_coturn(
    coturn_via_entrypoint: Coturn, tmp_path: Path
) -> None:
    server = coturn_via_entrypoint
    good = make_credential(server.secret, "caller-1", ttl_s=60)
    async with TurnTestClient(server.address, good.username, good.password) as client:
        assert (await client.allocate()).error_code is None
    async with TurnTestClient(
        server.address, good.username, compute_password("x" * 32, good.username)
    ) as client:
        assert (await client.allocate()).error_code == 401

    _check_secret_placement(server, tmp_path / "run" / "turnserver.conf")


def _check_secret_placement(server: Coturn, generated: Path) -> None:
    # The shell exec'd turnserver: same pid, and the secret is not in its arguments.
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].endswith(b"turnserver")
    assert server.secret.encode() not in b" ".join(cmdline)
    # It is in the generated config, which only its owner may read.
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert f"static-auth-secret={server.secret}" in generated.read_text()


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("short", "at least 32"),
        ("a" * 40 + "\nallow-loopback-peers", "may hold only"),
        ("a" * 40 + " #", "may hold only"),
    ],
)
def test_bad_secrets_are_refused(tmp_path: Path, secret: str, message: str) -> None:
    result = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT)],
        env={
            "PATH": os.environ.get("PATH", ""),
            "TURN_SECRET": secret,
            "COTURN_CONF": str(PROD_CONF),
            "COTURN_RUN_DIR": str(tmp_path / "run"),
            "TURNSERVER": "/bin/false",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 64
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_allowed_peer_range_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT)],
        env={
            "PATH": os.environ.get("PATH", ""),
            "TURN_SECRET": "a" * 64,
            "TURN_ALLOWED_PEER_IP": "10.0.0.0-10.255.255.255",
            "COTURN_CONF": str(PROD_CONF),
            "COTURN_RUN_DIR": str(tmp_path / "run"),
            "TURNSERVER": "/bin/false",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 64
    assert "one address" in result.stderr
    assert not (tmp_path / "run").exists()
