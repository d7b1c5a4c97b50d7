"""Janus videoroom for ``bench/sfu.py``, in its own network namespace.

Janus ignores loopback when gathering, so it runs in namespace ``sfu-janus`` (10.99.0.1/24)
joined by a veth pair to the load generator's namespace ``sfu-load`` (10.99.0.2/24). The
addresses exist only inside those namespaces; everything is deleted on exit, and no
traffic touches the machine's real interfaces.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

JANUS_NS = "sfu-janus"
LOAD_NS = "sfu-load"
JANUS_IP = "10.99.0.1"
LOAD_IP = "10.99.0.2"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def namespaces() -> Iterator[None]:
    """Create both namespaces and the veth pair; remove them on exit."""
    _teardown()
    try:
        _ip("netns", "add", JANUS_NS)
        _ip("netns", "add", LOAD_NS)
        _ip("link", "add", "veth-sfuj", "type", "veth", "peer", "name", "veth-sful")
        _ip("link", "set", "veth-sfuj", "netns", JANUS_NS)
        _ip("link", "set", "veth-sful", "netns", LOAD_NS)
        for ns, dev, addr in ((JANUS_NS, "veth-sfuj", JANUS_IP), (LOAD_NS, "veth-sful", LOAD_IP)):
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            _ip("netns", "exec", ns, "ip", "link", "set", dev, "up")
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield
    finally:
        _teardown()


def _teardown() -> None:
    for ns in (JANUS_NS, LOAD_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _config(folder: Path, rooms: Iterable[int], ip: str, interface: str, publishers: int) -> Path:
    """Janus on ``ip`` (HTTP API on port 8088) gathering on ``interface`` only (a comma-separated
    list is several), with the
    videoroom plugin and one room per number in ``rooms``."""
    plugins = [p.name for p in (LIB / "plugins").glob("*.so") if p.name != "libjanus_videoroom.so"]
    transports = [p.name for p in (LIB / "transports").glob("*.so") if p.name != "libjanus_http.so"]
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{LIB}/plugins"
    transports_folder = "{LIB}/transports"
    events_folder = "{LIB}/events"
    loggers_folder = "{LIB}/loggers"
    debug_level = 2
    session_timeout = 0
    admin_secret = "bench-only"
}}
media: {{
    rtp_port_range = "30000-40000"
}}
nat: {{
    ice_enforce_list = "{interface}"
}}
plugins: {{
    disable = "{",".join(plugins)}"
}}
transports: {{
    disable = "{",".join(transports)}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    base_path = "/janus"
    http = true
    port = 8088
    ip = "{ip}"
    https = false
}}
admin: {{
    admin_http = false
}}
"""
    )
    room_cfg = "".join(
        f"""room-{r}: {{
    description = "bench {r}"
    publishers = {publishers}
    bitrate = 2000000
    fir_freq = 10
    audiocodec = "opus"
    videocodec = "vp8"
}}
"""
        for r in rooms
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n" + room_cfg)
    return folder / "janus.jcfg"


@contextlib.contextmanager
def janus(
    rooms: Iterable[int],
    *,
    ns: str | None = JANUS_NS,
    ip: str = JANUS_IP,
    interface: str = "veth-sfuj",
    probe_ns: str | None = LOAD_NS,
    publishers: int = 1,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run Janus until the block exits: in namespace ``ns`` (None: this one), on ``ip``, its
    media on ``interface`` (one or more, comma-separated); ready once its HTTP API answers
    from ``probe_ns``."""
    in_ns = ["ip", "netns", "exec", ns] if ns else []
    in_probe_ns = ["ip", "netns", "exec", probe_ns] if probe_ns else []
    with tempfile.TemporaryDirectory(prefix="sfu-janus-") as tmp:
        cfg = _config(Path(tmp), rooms, ip, interface, publishers)
        log = open(Path(tmp) / "janus.log", "wb")
        proc = subprocess.Popen(
            [*in_ns, "janus", "-o", "-F", tmp, "-C", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                probe = subprocess.run(
                    [*in_probe_ns, "curl", "-s", "-m", "1", f"http://{ip}:8088/janus/info"],
                    capture_output=True,
                )
                if probe.returncode == 0 and b"janus" in probe.stdout:
                    break
                if proc.poll() is not None:
                    raise RuntimeError((Path(tmp) / "janus.log").read_text()[-2000:])
                time.sleep(0.3)
            else:
                raise RuntimeError("Janus did not answer on its HTTP API")
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            if os.environ.get("SFU_BENCH_JANUS_LOG"):
                print((Path(tmp) / "janus.log").read_text()[-3000:])
