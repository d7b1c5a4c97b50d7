"""What the kernel says about this process's sockets (psutil), for tests that count them."""

from __future__ import annotations

import os

import psutil


def udp_sockets_on(host: str) -> list[tuple[str, int]]:
    """This process's UDP sockets bound to ``host``, as (address, port)."""
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(os.getpid()).net_connections(kind="udp")
        if c.laddr and c.laddr.ip == host
    ]
