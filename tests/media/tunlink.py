"""One party's access link as a process: two TUN devices joined in user space.

This kernel has no ``netem``, so a party's link is not a veth pair but two point-to-point TUN
devices, ``--party-dev`` (moved into the party's namespace by the harness) and ``--root-dev``
(left in the root namespace, where the server runs), with this process copying IP packets
between them. On the way it applies loss and a fixed one-way delay per direction with
``tests.media.shaping.Shaper`` (the same loss/delay code the aiortc congestion tests use);
bandwidth is the kernel's: ``tc … tbf`` on either device (see ``tests.media.netns``).

The devices are not persistent: they disappear when this process exits, however it exits.
Prints ``READY`` once both exist. Controlled by lines on stdin, each answered with one line:
``shape <down-loss> <down-delay> <up-loss> <up-delay>`` changes the link live (``OK``),
``counters`` prints the shapers' counters as JSON; end of stdin stops the process.

    python -m tests.media.tunlink --party-dev nqc1p --root-dev nqc1r \
        --down-loss 0.03 --down-delay 0.075 --up-loss 0.03 --up-delay 0.075
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import struct
import sys

from tests.media.shaping import Shape, Shaper

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MTU_READ = 65_535


def open_tun(name: str) -> int:
    """A new non-persistent TUN device ``name`` (raw IP packets, no packet-info header)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Direction:
    """Reads packets from one device and writes them, shaped, into the other."""

    def __init__(self, source: int, sink: int, shape: Shape, seed: int) -> None:
        self.source = source
        self.sink = sink
        self.shaper = Shaper(shape, self._write, seed=seed)
        self.write_errors = 0

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.source, self._readable)

    def _readable(self) -> None:
        while True:
            try:
                packet = os.read(self.source, MTU_READ)
            except BlockingIOError:
                return
            self.shaper.submit(packet)

    def counters(self) -> dict[str, int]:
        return {"passed": self.shaper.passed, "dropped_loss": self.shaper.dropped_loss}

    def _write(self, packet: bytes) -> None:
        try:
            os.write(self.sink, packet)
        except OSError:
            self.write_errors += 1  # the device's queue is full or it is going away


def _answer(command: list[str], down: Direction, up: Direction) -> str:
    if command[:1] == ["shape"] and len(command) == 5:
        down_loss, down_delay, up_loss, up_delay = (float(v) for v in command[1:])
        down.shaper.reshape(Shape(loss=down_loss, delay_s=down_delay))
        up.shaper.reshape(Shape(loss=up_loss, delay_s=up_delay))
        return "OK"
    if command == ["counters"]:
        return json.dumps({"down": down.counters(), "up": up.counters()})
    return f"ERROR unknown command {' '.join(command)!r}"


async def run(args: argparse.Namespace) -> None:
    party = open_tun(args.party_dev)
    root = open_tun(args.root_dev)
    # a lost packet is the shaper's decision, not the scheduler's
    down = Direction(root, party, Shape(loss=args.down_loss, delay_s=args.down_delay), seed=1)
    up = Direction(party, root, Shape(loss=args.up_loss, delay_s=args.up_delay), seed=2)
    down.start()
    up.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    print("READY", flush=True)
    stopped = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        line = asyncio.ensure_future(commands.readline())
        await asyncio.wait({line, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not line.done():
            line.cancel()
            break
        if not line.result():  # the harness closed our stdin
            break
        print(_answer(line.result().decode().split(), down, up), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--party-dev", required=True)
    parser.add_argument("--root-dev", required=True)
    for direction in ("down", "up"):
        parser.add_argument(f"--{direction}-loss", type=float, default=0.0)
        parser.add_argument(f"--{direction}-delay", type=float, default=0.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
