"""The client's address behind reverse proxies we trust.

Behind a load balancer every request's peer is the proxy, so per-IP limits (login, register)
would put all users in one bucket. Proxies append the address they received from to
``X-Forwarded-For``; only the hops our own trusted proxies appended can be believed, because a
client can write anything in the header it sends. So the list is read from the right, skipping
trusted proxies, and the first address that is not one of them is the client (the "recursive"
rule of nginx's ``real_ip`` and of RFC 7239 §7.4's guidance that only a known chain is reliable).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = "X-Forwarded-For"


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, 192.0.2.7"`` → networks; raises ``ValueError`` on a malformed entry."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    )


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[IPNetwork]) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy, then the right-most
    ``X-Forwarded-For`` hop that is not one. A malformed hop ends the walk at the last good
    address, so a garbled header can only make the answer *more* conservative (the proxy)."""
    if not _is_trusted(peer, trusted):
        return peer
    client = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _is_trusted(hop, trusted):
            break
    return client


def trusted_proxy_middleware(trusted: Sequence[IPNetwork]) -> Middleware:
    """Rewrite ``request.remote`` to the client's address for requests from ``trusted`` proxies;
    everything downstream (rate limits, access log) then sees the real client."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded_for = request.headers.get(FORWARDED_FOR)
        if forwarded_for is None or request.remote is None:  # no header, or a Unix socket peer
            return await handler(request)
        remote = client_address(request.remote, forwarded_for, trusted)
        if remote == request.remote:
            return await handler(request)
        return await handler(request.clone(remote=remote))

    return middleware
