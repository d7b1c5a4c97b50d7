"""Settings of the recorder, built by ``kundlinow.config`` (``RECORDING*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODES = ("off", "audio", "all")


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """What the live recorder records, where, and who may fetch it."""

    mode: str = "all"
    """``off`` | ``audio`` | ``all``: which tracks of voice and video consults are recorded."""
    directory: Path = Path("var/recordings")
    """Root of the local storage backend (``RECORDINGS_DIR``)."""
    segment_s: float = 600.0
    """A new file per track after this many seconds (``RECORDING_SEGMENT_SECONDS``), starting
    on a key frame."""
    participant_access: bool = False
    """Whether the consultation's own parties may fetch its recordings
    (``RECORDING_PARTICIPANT_ACCESS``); admins always may."""
    url_ttl_s: int = 300
    """Lifetime of a signed content URL (``RECORDING_URL_TTL_SECONDS``)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"RECORDING: must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.segment_s > 0:
            raise ValueError("RECORDING_SEGMENT_SECONDS: must be more than zero")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def records(self, kind: str) -> bool:
        """Whether tracks of ``kind`` (``audio``/``video``) are recorded."""
        return self.mode == "all" or (self.mode == "audio" and kind == "audio")
