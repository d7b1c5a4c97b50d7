"""ICE candidate gathering policy for aiortc peer connections (RFC 8445 §5.1.1).

aioice gathers host candidates on every interface except 127.0.0.1 and binds ephemeral
ports. This module is the one place that changes that, per peer connection (no global
patching): it replaces ``get_component_candidates`` on each aioice ``Connection`` owned by a
peer connection, before ``setLocalDescription`` gathers.

What it gives:

* a configured list of host addresses (tests: ``127.0.0.1``; production: the interface
  facing the load balancer / NAT),
* a UDP port range for host candidates (each candidate binds the first free port of the
  range, starting at a random offset),
* a 1:1 NAT public IP, advertised as a server-reflexive candidate with the host port and the
  host address as related address (RFC 8445 §5.1.1.2), as Janus' ``nat_1_1_mapping`` does;
* instead of the range, one UDP port for the whole node (``media.udp_mux.SharedUdpPort``):
  each agent gets a node-unique ufrag and a host candidate per configured address on the
  shared port, whose datagrams reach it by ICE username and remote address.

What aioice cannot do: with a port range, STUN server-reflexive candidates are not gathered
(aioice only queries STUN from sockets it bound itself); relay (TURN) candidates are still
gathered, but the TURN client socket itself always uses an ephemeral port. On a shared port
the SFU gathers no relay candidate of its own: a TURN allocation belongs to one client
5-tuple (RFC 8656 §2.2), so each agent would need a socket again. Clients still relay through
TURN to the shared port: the relay's address is just another remote address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aioice.turn import UDP_SOCKET_BUFFER_SIZE
from aiortc import RTCPeerConnection

from media import aiortc_glue as glue
from media.udp_mux import SharedUdpPort

_MARK = "_kundlinow_ice_policy"

GatherFn = Callable[..., Awaitable[list[Candidate]]]


@dataclass(frozen=True, slots=True)
class IcePolicy:
    """Where host candidates live and what address is advertised."""

    host_addresses: tuple[str, ...] = ()
    """Host candidate addresses; empty keeps aioice's interface scan."""
    public_ip: str | None = None
    """Advertised 1:1 NAT address (server-reflexive candidate), or None."""
    port_min: int = 0
    """First port of the UDP range (0: ephemeral ports)."""
    port_max: int = 0
    """Last port of the UDP range (inclusive)."""
    recv_buffer_bytes: int = 0
    """SO_RCVBUF for host sockets (0: aioice's 256 KiB). A single-threaded server that is
    descheduled for a moment must not lose the datagrams that arrive meanwhile."""
    shared_port: SharedUdpPort | None = None
    """The node's one UDP port; when set, wins over the port range."""


def apply_ice_policy(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Install ``policy`` on every ICE agent of ``pc``; idempotent.

    Call after the transceivers exist and before ``setLocalDescription``.
    """
    for connection in glue.ice_connections(pc):
        if getattr(connection, _MARK, None) is not None:
            continue
        original: GatherFn = connection.get_component_candidates
        setattr(connection, _MARK, policy)
        if policy.shared_port is not None:
            glue.set_local_ufrag(connection, policy.shared_port.new_ufrag())
        connection.get_component_candidates = _make_gatherer(  # type: ignore[method-assign, assignment]
            connection, policy, original
        )


def _make_gatherer(connection: Connection, policy: IcePolicy, original: GatherFn) -> GatherFn:
    async def gather(
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
    ) -> list[Candidate]:
        hosts = list(policy.host_addresses) or addresses
        if policy.shared_port is not None:
            candidates = _attach_shared(connection, component, hosts, policy.shared_port)
        elif policy.port_min:
            candidates = await _bind_range(connection, component, hosts, policy)
            # TURN relay candidates only: STUN srflx needs sockets aioice bound itself.
            candidates += await original(component=component, addresses=[], timeout=timeout)
        else:
            candidates = await original(component=component, addresses=hosts, timeout=timeout)
        if policy.public_ip:
            candidates += _nat_candidates(candidates, policy.public_ip)
        if policy.recv_buffer_bytes:
            for protocol in glue.ice_protocols(connection):
                sock = protocol.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, policy.recv_buffer_bytes)
        return candidates

    return gather


async def _bind_range(
    connection: Connection, component: int, hosts: list[str], policy: IcePolicy
) -> list[Candidate]:
    loop = asyncio.get_running_loop()
    span = policy.port_max - policy.port_min + 1
    candidates: list[Candidate] = []
    for address in hosts:
        start = random.randrange(span)
        for i in range(span):
            port = policy.port_min + (start + i) % span
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: StunProtocol(connection), local_addr=(address, port)
                )
            except OSError:
                continue
            sock: Any = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
            host, bound_port = transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = _host_candidate(component, host, bound_port)
            glue.ice_protocols(connection).append(protocol)
            candidates.append(protocol.local_candidate)
            break
    return candidates


def _attach_shared(
    connection: Connection, component: int, hosts: list[str], port: SharedUdpPort
) -> list[Candidate]:
    """Host candidates on the node's shared port, one per configured address."""
    candidates: list[Candidate] = []
    for address in hosts:
        mux = port.mux(address)
        if mux is None:
            continue
        protocol = StunProtocol(connection)
        mux.attach(connection.local_username, protocol)
        protocol.local_candidate = _host_candidate(component, *mux.sockname)
        glue.ice_protocols(connection).append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


def _host_candidate(component: int, host: str, port: int) -> Candidate:
    """RFC 8445 §5.1.1.1 host candidate, as aioice builds them."""
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


def _nat_candidates(candidates: list[Candidate], public_ip: str) -> list[Candidate]:
    """Server-reflexive twins of the IPv4 host candidates (RFC 8445 §5.1.1.2)."""
    out = []
    for c in candidates:
        if c.type != "host" or ipaddress.ip_address(c.host).version != 4 or c.host == public_ip:
            continue
        out.append(
            Candidate(
                foundation=candidate_foundation("srflx", "udp", c.host),
                component=c.component,
                transport="udp",
                priority=candidate_priority(c.component, "srflx"),
                host=public_ip,
                port=c.port,
                type="srflx",
                related_address=c.host,
                related_port=c.port,
            )
        )
    return out
