"""The PRODUCTION coturn.conf refuses to relay into private, loopback, link-local, metadata and
other special-purpose networks — RFC 8656 §10.2 and §19: 403 "Forbidden IP" — shown against a
real coturn running that very file on 127.0.0.1 (and on ::1 for the IPv6 ranges).

Only the TURN server on loopback receives packets: a CreatePermission request names a peer but
sends nothing to it (RFC 8656 §9), so no traffic goes to any of the addresses below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.turn.coturn import PROD_CONF, Coturn, CoturnProcess
from tests.turn.turnclient import TurnTestClient
from turn.credentials import make_credential

FORBIDDEN_V4 = [
    "127.0.0.1",  # loopback: the TURN host itself
    "127.10.0.1",
    "10.1.2.3",  # RFC 1918
    "10.255.255.254",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata (AWS, GCP, Azure)
    "169.254.170.2",  # ECS task metadata
    "100.64.0.1",  # RFC 6598 CGNAT
    "100.100.100.200",  # Alibaba Cloud metadata
    "192.0.0.192",  # Oracle Cloud metadata
    "0.0.0.0",
    "0.1.2.3",
    "198.18.0.1",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "255.255.255.255",
]
FORBIDDEN_V6 = [
    "::1",  # loopback
    "::",  # unspecified
    "fd00:ec2::254",  # ULA: AWS IPv6 metadata
    "fc00::1",
    "fe80::1",  # link-local
    "fec0::1",
    "::ffff:10.1.2.3",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "64:ff9b::a01:203",  # NAT64 of 10.1.2.3
    "2002:a01:203::1",  # 6to4 of 10.1.2.3
    "2001:0:a01:203::1",  # Teredo
    "2001:db8::1",
    "ff02::1",  # multicast
]
PUBLIC_V4 = ["8.8.8.8", "1.1.1.1", "11.0.0.1", "172.32.0.1", "100.128.0.1"]
PUBLIC_V6 = ["2001:4860:4860::8888", "2606:4700::1111"]


@pytest.fixture
async def coturn_production_v6(tmp_path: Path) -> AsyncIterator[Coturn]:
    """The production coturn.conf on ::1 with IPv6 relayed addresses (RFC 6156)."""
    process = CoturnProcess(
        PROD_CONF,
        tmp_path,
        realm="turn.kundlinow.example",
        host="::1",
        extra=("--no-tls", "--no-dtls", "--allocation-default-address-family=keep"),
    )
    server = await process.start()
    try:
        yield server
    finally:
        process.stop()


async def _permission_errors(server: Coturn, peers: list[str]) -> dict[str, int | None]:
    """Allocate once, then CreatePermission for each peer; the ERROR-CODE of each (None: 200)."""
    credential = make_credential(server.secret, "caller-1", ttl_s=600)
    async with TurnTestClient(server.address, credential.username, credential.password) as client:
        allocation = await client.allocate()
        assert allocation.error_code is None, allocation.attributes.get("ERROR-CODE")
        results: dict[str, int | None] = {}
        for peer in peers:
            response = await client.create_permission(peer)
            results[peer] = response.error_code
            if response.error_code is not None:
                assert response.attributes["ERROR-CODE"][1] == "Forbidden IP"
        return results


async def test_production_conf_forbids_private_ipv4_peers(coturn_production: Coturn) -> None:
    results = await _permission_errors(coturn_production, FORBIDDEN_V4)
    assert results == {peer: 403 for peer in FORBIDDEN_V4}


async def test_production_conf_permits_public_ipv4_peers(coturn_production: Coturn) -> None:
    """Control: the same allocation may open permissions to public addresses, so the 403s
    come from the peer address, not from a broken allocation or an over-broad rule."""
    results = await _permission_errors(coturn_production, PUBLIC_V4)
    assert results == {peer: None for peer in PUBLIC_V4}


async def test_production_conf_forbids_private_ipv6_peers(coturn_production_v6: Coturn) -> None:
    results = await _permission_errors(coturn_production_v6, FORBIDDEN_V6)
    assert results == {peer: 403 for peer in FORBIDDEN_V6}


async def test_production_conf_permits_public_ipv6_peers(coturn_production_v6: Coturn) -> None:
    results = await _permission_errors(coturn_production_v6, PUBLIC_V6)
    assert results == {peer: None for peer in PUBLIC_V6}


def _options(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


def test_production_conf_has_no_escape_hatches() -> None:
    options = _options(PROD_CONF)
    assert "allow-loopback-peers" not in options
    assert "allowed-peer-ip" not in options
    assert "static-auth-secret" not in options  # the secret comes from the environment
    assert "no-stdout-log" not in options
    for required in (
        "use-auth-secret",
        "realm",
        "no-cli",
        "fingerprint",
        "no-multicast-peers",
        "no-tcp-relay",
        "secure-stun",
        "user-quota",
        "total-quota",
        "max-bps",
        "bps-capacity",
        "cert",
        "pkey",
        "listening-port",
        "tls-listening-port",
        "min-port",
        "max-port",
        "log-file",
    ):
        assert required in options, required
