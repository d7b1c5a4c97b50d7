"""The PRODUCTION coturn.conf refuses to relay into private, loopback, link-local, metadata and
other special-purpose networks — RFC 8656 §10.2 and §19: 403 "Forbidden IP" — shown against a
real coturn running that very file on 127.0.0.1 (and on ::1 for the IPv6 ranges).

Only the TURN server on loopback receives packets: a CreatePermission request names a peer but
sends nothing to it (RFC 8656 §9), so no traffic goes to any of the addresses below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
import ssl
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioice import stun
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.turn.coturn import PROD_CONF, Coturn, CoturnProcess, free_port
from tests.turn.turnclient import TCP_TRANSPORT, UDP_TRANSPORT, TurnTestClient
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


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away P-256 certificate for turn.kundlinow.test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.kundlinow.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def coturn_production_tls(tmp_path: Path) -> AsyncIterator[tuple[Coturn, int]]:
    """The production coturn.conf with its TLS listener on, using a test certificate."""
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    process = CoturnProcess(
        PROD_CONF,
        tmp_path,
        realm="turn.kundlinow.example",
        extra=(f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}"),
    )
    server = await process.start()
    try:
        yield server, tls_port
    finally:
        process.stop()


def _client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a throw-away self-signed test certificate
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1: deprecated, on purpose
        context.minimum_version = context.maximum_version = version
    return context


async def _stun_over_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: stun.Message
) -> stun.Message:
    """One STUN transaction over TCP/TLS framing (RFC 8489 §6.2.2: messages back to back)."""
    writer.write(bytes(request))
    await writer.drain()
    async with asyncio.timeout(10):
        header = await reader.readexactly(20)
        body = await reader.readexactly(int.from_bytes(header[2:4], "big"))
    return stun.parse_message(header + body)


async def test_turns_over_tls_12_with_the_configured_ciphers(
    coturn_production_tls: tuple[Coturn, int],
) -> None:
    """`turns:` (RFC 7065) works: TLS 1.2 with a cipher from coturn.conf's cipher-list, then an
    Allocate over TLS completes the long-term credential exchange (RFC 8489 §9.2)."""
    server, tls_port = coturn_production_tls
    reader, writer = await asyncio.open_connection(
        server.host, tls_port, ssl=_client_context(ssl.TLSVersion.TLSv1_2)
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.2"
        configured = re.search(r'^cipher-list="([^"]+)"', PROD_CONF.read_text(), re.M)
        assert configured is not None
        assert ssl_object.cipher()[0] in configured.group(1).split(":")

        credential = make_credential(server.secret, "caller-1", ttl_s=60)
        allocate = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
        allocate.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        challenge = await _stun_over_stream(reader, writer, allocate)
        assert challenge.error_code == 401
        realm, nonce = challenge.attributes["REALM"], challenge.attributes["NONCE"]
        allocate = stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST)
        allocate.attributes["REQUESTED-TRANSPORT"] = UDP_TRANSPORT
        allocate.attributes["USERNAME"] = credential.username
        allocate.attributes["REALM"] = realm
        allocate.attributes["NONCE"] = nonce
        allocate.add_message_integrity(
            hashlib.md5(f"{credential.username}:{realm}:{credential.password}".encode()).digest()
        )
        allocated = await _stun_over_stream(reader, writer, allocate)
        assert allocated.error_code is None, allocated.attributes.get("ERROR-CODE")
        assert "XOR-RELAYED-ADDRESS" in allocated.attributes
    finally:
        writer.close()


def _handshake(
    address: tuple[str, int], context: ssl.SSLContext, wait_s: float = 2.0
) -> str | None:
    """A blocking TLS handshake (fails fast on the server's alert); the negotiated version."""
    with (
        socket.create_connection(address, timeout=wait_s) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return tls.version()


async def test_old_tls_versions_are_refused(coturn_production_tls: tuple[Coturn, int]) -> None:
    """No TLS 1.0/1.1 session (``no-tlsv1``, ``no-tlsv1_1``): coturn 4.6.1 answers such a
    ClientHello with an alert or not at all. The same listener completes TLS 1.2 above, so a
    failure here is the version, not a dead listener; the test checks that too."""
    server, tls_port = coturn_production_tls
    attempts = await asyncio.gather(
        *(
            asyncio.to_thread(_handshake, (server.host, tls_port), _client_context(version))
            for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
        ),
        return_exceptions=True,
    )
    for attempt in attempts:
        assert isinstance(attempt, ssl.SSLError | TimeoutError | ConnectionError), attempt
    modern = _client_context(ssl.TLSVersion.TLSv1_2)
    assert await asyncio.to_thread(_handshake, (server.host, tls_port), modern, 10.0) == "TLSv1.2"


async def test_anonymous_stun_is_refused(coturn_production: Coturn) -> None:
    """``secure-stun``: a Binding request without credentials gets 401 (RFC 8489 §9.2.4), so
    the server is no anonymous reflector."""
    async with TurnTestClient(coturn_production.address, "nobody", "nothing") as client:
        response = await client.transact(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    assert response.error_code == 401
    assert "XOR-MAPPED-ADDRESS" not in response.attributes


async def test_tcp_relay_is_refused(coturn_production: Coturn) -> None:
    """``no-tcp-relay``: an Allocate for a TCP relay (RFC 6062) gets 442 Unsupported Transport
    Protocol (RFC 8656 §19), even with valid credentials."""
    credential = make_credential(coturn_production.secret, "caller-1", ttl_s=60)
    async with TurnTestClient(
        coturn_production.address,
        credential.username,
        credential.password,
        transport=TCP_TRANSPORT,
    ) as client:
        response = await client.allocate()
    assert response.error_code == 442


async def test_user_quota_caps_allocations_per_credential(coturn_production: Coturn) -> None:
    """``user-quota``: one credential holds at most that many allocations at once; the next
    Allocate gets 486 Allocation Quota Reached (RFC 8656 §19)."""
    configured = re.search(r"^user-quota=(\d+)$", PROD_CONF.read_text(), re.M)
    assert configured is not None
    quota = int(configured.group(1))
    credential = make_credential(coturn_production.secret, "caller-1", ttl_s=60)
    async with contextlib.AsyncExitStack() as stack:
        results: list[int | None] = []
        for _ in range(quota + 1):
            client = await stack.enter_async_context(
                TurnTestClient(coturn_production.address, credential.username, credential.password)
            )
            results.append((await client.allocate()).error_code)
    assert results == [None] * quota + [486]
