"""Media log lines keep their fields: the stdlib ``extra=`` of media modules reaches the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio
from core.logconfig import configure_logging
from media.config import MediaSettings
from media.engine import MediaEngine

async def main() -> None:
    async def send(room_id, participant_id, message):
        return None
    engine = MediaEngine(MediaSettings(ice_host_addresses=("127.0.0.1",)), send)
    await engine.join("room-7", "alice")
    await engine.leave("room-7", "alice")
    await engine.close()

configure_logging("json", "INFO")
asyncio.run(main())
"""


def test_media_json_log_lines_carry_room_and_participant() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    by_event = {line["event"]: line for line in lines}
    for event in ("participant_joined", "participant_left"):
        assert by_event[event]["room_id"] == "room-7", lines
        assert by_event[event]["participant_id"] == "alice"
        assert by_event[event]["logger"] == "media.engine"
