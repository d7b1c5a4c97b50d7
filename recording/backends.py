"""The storage backend the configuration names (``RECORDING_STORAGE``)."""

from __future__ import annotations

from recording.config import RecordingSettings
from recording.s3store import ObjectStore
from recording.store import LocalStore, RecordingStore


def open_store(settings: RecordingSettings) -> RecordingStore:
    """``local``: files under ``RECORDINGS_DIR``; ``s3``: objects in the bucket, staged under
    ``RECORDINGS_DIR`` while they are written."""
    if settings.storage == "s3":
        assert settings.s3 is not None  # RecordingSettings checks it
        return ObjectStore(settings.s3, settings.directory)
    return LocalStore(settings.directory)
