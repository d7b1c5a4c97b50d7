"""The object-storage backend of ``recording.store``: any S3-compatible service, through
obstore (the Rust ``object_store`` crate), so every node can read every recording.

Writers still stage locally under ``RECORDINGS_DIR`` (PyAV appends to a file; a crash must
leave the bytes on disk). ``commit`` uploads a finished file (multipart when large), reads the
object back to check its size and SHA-256, and only then deletes the local copy; a failed or
mismatched upload is retried and, if it keeps failing, the staged file stays for start-up
recovery (``uncommitted``). Reads of a range are ranged GETs (RFC 9110 §14.1.2), never
whole-object downloads.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

if TYPE_CHECKING:
    from obstore.store import S3Config

from recording.config import S3Settings
from recording.store import check_key, staged_keys

logger = logging.getLogger(__name__)

UPLOAD_ATTEMPTS = 3
"""Upload-and-verify rounds per commit (each request also has the client's own retries)."""
SCRATCH_SUFFIXES = (".remux", ".part", ".tmp")
"""Names of the writers' temporary files next to a staged file: never uploaded."""


class UploadMismatch(OSError):
    """The stored object's size or SHA-256 is not the staged file's."""


def client(settings: S3Settings) -> S3Store:
    """An obstore client for ``settings`` (explicit values only: configuration is read once,
    in ``kundlinow.config``)."""
    config: S3Config = {"region": settings.region}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    if settings.access_key_id:
        config["access_key_id"] = settings.access_key_id
        config["secret_access_key"] = settings.secret_access_key
    if settings.session_token:
        config["session_token"] = settings.session_token
    return S3Store(
        settings.bucket,
        prefix=settings.prefix or None,
        config=config,
        client_options={"allow_http": settings.endpoint.startswith("http://"),
                        "timeout": timedelta(seconds=60)},
        retry_config={"max_retries": 4, "backoff": {"init_backoff": timedelta(milliseconds=200),
                                                    "max_backoff": timedelta(seconds=5),
                                                    "base": 2},
                      "retry_timeout": timedelta(seconds=120)},
    )


class ObjectStore:
    """Recordings in a bucket, staged under ``spool`` while they are written."""

    def __init__(self, settings: S3Settings, spool: Path) -> None:
        self._client = client(settings)
        self.spool = spool

    def _staged_path(self, key: str) -> Path:
        return self.spool / check_key(key)

    def staging_path(self, key: str) -> Path:
        path = self._staged_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def staged(self, key: str) -> bool:
        return self._staged_path(key).is_file()

    def commit(self, key: str, size: int, sha256: str) -> None:
        path = self._staged_path(key)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                with path.open("rb") as f:
                    obstore.put(self._client, key, f)
                self._verify(key, size, sha256)
            except (OSError, BaseError) as exc:  # BaseError: obstore's request failures
                logger.warning("recording_upload_failed", exc_info=True,
                               extra={"key": key, "attempt": attempt})
                if attempt == UPLOAD_ATTEMPTS:
                    if isinstance(exc, OSError):
                        raise
                    raise OSError(f"{key}: upload failed: {exc}") from exc
                time.sleep(0.5 * 2**attempt)  # on a writer thread, not the event loop
                continue
            self._unstage(path)
            logger.info("recording_uploaded", extra={"key": key, "bytes": size})
            return

    def _verify(self, key: str, size: int, sha256: str) -> None:
        digest = hashlib.sha256()
        stored = 0
        for chunk in obstore.get(self._client, key):
            digest.update(chunk)
            stored += len(chunk)
        if stored != size or digest.hexdigest() != sha256:
            raise UploadMismatch(f"{key}: stored {stored} bytes {digest.hexdigest()},"
                                 f" staged {size} bytes {sha256}")

    def _unstage(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def uncommitted(self) -> Iterator[str]:
        for key in staged_keys(self.spool):
            if not key.endswith(SCRATCH_SUFFIXES):
                yield key

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return int(obstore.head(self._client, check_key(key))["size"])

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(obstore.get(self._client, check_key(key)).bytes().to_bytes())

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        self.spool.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.spool, prefix=".fetch-",
                                    suffix="-" + key.rsplit("/", 1)[-1])
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in obstore.get(self._client, check_key(key)):
                    f.write(chunk)
            yield Path(name)
        finally:
            os.unlink(name)

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        result = await obstore.get_async(
            self._client, check_key(key), options={"range": (start, end)}
        )
        async for chunk in result.stream():
            yield bytes(chunk)

    def write_atomic(self, key: str, data: bytes) -> None:
        obstore.put(self._client, check_key(key), data)  # a PUT replaces the whole object

    def delete(self, key: str) -> None:
        obstore.delete(self._client, check_key(key))  # S3 DELETE of a missing key succeeds
        staged = self._staged_path(key)
        if staged.is_file():
            self._unstage(staged)

    def keys(self, prefix: str = "") -> Iterator[str]:
        for batch in obstore.list(self._client, prefix or None):
            for meta in batch:
                yield meta["path"]
