"""Network namespaces for two browser parties and a server in the root namespace.

::

    ns nqc<tag> (caller)                 root namespace                 ns nqa<tag> (astrologer)
    <tag>cp 10.x.y.6 ─ tunlink ─ <tag>cr 10.x.y.5    lo 10.x.y.1/32 (server)
                                         <tag>ar 10.x.y.9 ─ tunlink ─ <tag>ap 10.x.y.10

Each party's link is a ``tests.media.tunlink`` process (loss and delay in user space, this kernel
has no ``netem``); its bandwidth is a token bucket (``tc qdisc … tbf``) on the root side for the
party's downlink and on the party side for its uplink. The server listens on the dummy address
and uses it as its only ICE host address, so both parties' media and signalling cross their
links. Names and addresses are made from the process id and a counter so concurrent runs do not
collide; ``Topology`` removes everything on exit, also when the block raises.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_COUNTER = itertools.count()
QUEUE_MS = 250
"""The token bucket's queue in milliseconds of its rate (a mobile link's buffer)."""


def ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class LinkShape:
    """One party's link: kbit/s caps (None: unlimited), loss fraction and one-way delay per
    direction (down: towards the party)."""

    down_kbps: int | None = None
    up_kbps: int | None = None
    loss: float = 0.0
    one_way_delay_s: float = 0.0


@dataclass
class Party:
    """One party's namespace and link; ``cap_down``/``cap_up`` change its bandwidth live."""

    ns: str
    party_dev: str
    root_dev: str
    party_ip: str
    root_ip: str
    relay: subprocess.Popen[bytes] | None = None

    def _tbf(self, dev: str, ns: str | None, kbps: int | None) -> None:
        if kbps is None:
            subprocess.run(
                [
                    *(["ip", "netns", "exec", ns] if ns else []),
                    "tc",
                    "qdisc",
                    "del",
                    "dev",
                    dev,
                    "root",
                ],
                capture_output=True,
                timeout=30,
            )  # absent already is fine
            return
        burst = max(3_000, kbps * 1000 // 8 // 50)  # 20 ms of the rate, at least two packets
        prefix = ["ip", "netns", "exec", ns] if ns else []
        subprocess.run(
            [
                *prefix,
                "tc",
                "qdisc",
                "replace",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                f"{kbps}kbit",
                "burst",
                str(burst),
                "latency",
                f"{QUEUE_MS}ms",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def _command(self, line: str) -> str:
        """One command to the link's relay (``tests.media.tunlink``), its one-line answer."""
        assert self.relay is not None and self.relay.stdin and self.relay.stdout
        self.relay.stdin.write(line.encode() + b"\n")
        self.relay.stdin.flush()
        return self.relay.stdout.readline().decode().strip()

    def impair(self, loss: float, one_way_delay_s: float) -> None:
        """Loss and one-way delay on both directions of the link, from now on."""
        delay = str(one_way_delay_s)
        answer = self._command(f"shape {loss} {delay} {loss} {delay}")
        if answer != "OK":
            raise RuntimeError(f"tunlink refused the shape: {answer}")

    def relay_counters(self) -> dict[str, dict[str, int]]:
        """Packets the relay passed and dropped for loss so far, per direction (down, up)."""
        counters: dict[str, dict[str, int]] = json.loads(self._command("counters"))
        return counters

    def cap_down(self, kbps: int | None) -> None:
        self._tbf(self.root_dev, None, kbps)

    def cap_up(self, kbps: int | None) -> None:
        self._tbf(self.party_dev, self.ns, kbps)


def qdisc_counters(dev: str, ns: str | None = None) -> dict[str, int]:
    """The root qdisc's ``sent_packets``, ``dropped`` and ``overlimits`` on ``dev``."""
    prefix = ["ip", "netns", "exec", ns] if ns else []
    out = subprocess.run(
        [*prefix, "tc", "-s", "qdisc", "show", "dev", dev, "root"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    match = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
    if match is None:
        raise RuntimeError(f"no qdisc counters in: {out!r}")
    sent, dropped, overlimits = (int(v) for v in match.groups())
    return {"sent_packets": sent, "dropped": dropped, "overlimits": overlimits}


@dataclass
class Topology:
    """The server address and the two parties; build with :func:`topology`."""

    server_ip: str
    tag: str = ""
    """What this topology's names are made from (unique among concurrent runs)."""
    server_added: bool = False
    parties: dict[str, Party] = field(default_factory=dict)


def leftovers(topo: Topology) -> list[str]:
    """What of ``topo`` still exists: namespaces, devices, the server address, relays."""
    namespaces = subprocess.run(
        ["ip", "netns", "list"], check=True, capture_output=True, text=True, timeout=30
    ).stdout.split()
    links = subprocess.run(
        ["ip", "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    on_lo = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", "lo"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    found = [f"address {topo.server_ip}"] if f" {topo.server_ip}/" in on_lo else []
    for party in topo.parties.values():
        if party.ns in namespaces:
            found.append(f"namespace {party.ns}")
        found += [
            f"device {dev}" for dev in (party.root_dev, party.party_dev) if f" {dev}:" in links
        ]
        if party.relay is not None and party.relay.poll() is None:
            found.append(f"relay process {party.relay.pid}")
    return found


def _addresses() -> tuple[str, int]:
    key = (os.getpid() * 16 + next(_COUNTER)) % (64 * 256)
    return f"10.{160 + key // 256}.{key % 256}", key


def _start_relay(party: Party, shape: LinkShape) -> None:
    delay, loss = str(shape.one_way_delay_s), str(shape.loss)
    party.relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.media.tunlink",
            "--party-dev",
            party.party_dev,
            "--root-dev",
            party.root_dev,
            "--down-loss",
            loss,
            "--down-delay",
            delay,
            "--up-loss",
            loss,
            "--up-delay",
            delay,
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert party.relay.stdout is not None
    line = party.relay.stdout.readline()
    if line.strip() != b"READY":
        raise RuntimeError(f"tunlink did not start: {line!r}")


def _party(topo: Topology, role: str, tag: str, net: str, host: int, shape: LinkShape) -> None:
    party = topo.parties[role] = Party(
        ns=f"nq{role}{tag}",
        party_dev=f"nq{tag}{role}p",
        root_dev=f"nq{tag}{role}r",
        party_ip=f"{net}.{host + 1}",
        root_ip=f"{net}.{host}",
    )
    _start_relay(party, shape)
    ip("netns", "add", party.ns)
    ip("link", "set", party.party_dev, "netns", party.ns)
    ip("link", "set", "lo", "up", ns=party.ns)
    ip("addr", "add", party.party_ip, "peer", party.root_ip, "dev", party.party_dev, ns=party.ns)
    ip("link", "set", party.party_dev, "up", ns=party.ns)
    ip("route", "add", "default", "dev", party.party_dev, ns=party.ns)
    ip("addr", "add", party.root_ip, "peer", party.party_ip, "dev", party.root_dev)
    ip("link", "set", party.root_dev, "up")
    party.cap_down(shape.down_kbps)
    party.cap_up(shape.up_kbps)


def _remove(topo: Topology) -> None:
    for party in topo.parties.values():
        if party.relay is not None:
            with contextlib.suppress(OSError):
                party.relay.terminate()
            try:
                party.relay.wait(10)
            except subprocess.TimeoutExpired:
                party.relay.kill()
                party.relay.wait()
        subprocess.run(["ip", "netns", "del", party.ns], capture_output=True, timeout=30)
    if topo.server_added:
        ip("addr", "del", f"{topo.server_ip}/32", "dev", "lo")


@contextlib.contextmanager
def topology(shapes: dict[str, LinkShape]) -> Iterator[Topology]:
    """``shapes``: role letter (``c`` caller, ``a`` astrologer) → its link."""
    net, key = _addresses()
    tag = f"{key:x}"
    topo = Topology(server_ip=f"{net}.1", tag=tag)
    try:
        ip("addr", "add", f"{topo.server_ip}/32", "dev", "lo")
        topo.server_added = True
        for index, (role, shape) in enumerate(shapes.items()):
            _party(topo, role, tag, net, 5 + 4 * index, shape)
        yield topo
    finally:
        _remove(topo)
