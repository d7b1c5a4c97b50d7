"""Settings of the recorder, built by ``kundlinow.config`` (``RECORDING*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MODES = ("off", "audio", "all")
STORAGES = ("local", "s3")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """An S3-compatible bucket for recordings (``RECORDING_S3_*`` and the standard ``AWS_*``
    variables). Without an access key the client falls back to its own credential chain
    (instance or pod identity)."""

    bucket: str
    prefix: str = ""
    """Key prefix inside the bucket (``RECORDING_S3_PREFIX``), for a bucket shared with
    other data."""
    region: str = "us-east-1"
    endpoint: str = ""
    """``AWS_ENDPOINT_URL``: empty for AWS itself; set for MinIO, Ceph, R2, moto ..."""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """What the live recorder records, where, and who may fetch it."""

    mode: str = "all"
    """``off`` | ``audio`` | ``all``: which tracks of voice and video consults are recorded."""
    directory: Path = Path("var/recordings")
    """Root of the local storage backend, and where the S3 backend stages files while they
    are written (``RECORDINGS_DIR``)."""
    storage: str = "local"
    """``local`` | ``s3`` (``RECORDING_STORAGE``): where finished files are kept."""
    s3: S3Settings | None = None
    """The bucket when ``storage`` is ``s3``."""
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
        if self.storage not in STORAGES:
            raise ValueError(f"RECORDING_STORAGE: must be one of {', '.join(STORAGES)},"
                             f" got {self.storage!r}")
        if self.storage == "s3" and (self.s3 is None or not self.s3.bucket):
            raise ValueError("RECORDING_S3_BUCKET: must be set when RECORDING_STORAGE=s3")
        if not self.segment_s > 0:
            raise ValueError("RECORDING_SEGMENT_SECONDS: must be more than zero")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def records(self, kind: str) -> bool:
        """Whether tracks of ``kind`` (``audio``/``video``) are recorded."""
        return self.mode == "all" or (self.mode == "audio" and kind == "audio")
