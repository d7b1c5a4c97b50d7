"""Where recording files live: a small storage interface and its local-directory backend.

Everything outside this module names a file by its *key* (``<consultation>/<name>``), never
by a path. The live writer needs a local file to append to (and to fill in its header at
the end), so the interface hands out a local *staging* path per key and is told when
the file is final (``commit``, with its size and SHA-256): the local backend stages in place;
the object-storage backend (``recording.s3store``, for many nodes) uploads there, verifies the
upload and keeps only the key.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY = re.compile(r"^[0-9a-f-]{36}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHUNK = 256 * 1024
"""Bytes per read when streaming a range."""


class BadKey(ValueError):
    """A key that is not ``<uuid>/<plain file name>``: refused before touching the disk."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise BadKey(key)
    return key


class RecordingStore(Protocol):
    """Files by key. ``staging_path``, ``staged`` and ``commit`` serve the writers; the rest
    serve readers, the composer and retention. The methods block (call them off the event
    loop) except ``read_range``, which is asynchronous."""

    def staging_path(self, key: str) -> Path:
        """A local path the writer may create and append to for ``key``."""

    def staged(self, key: str) -> bool:
        """Whether this node holds a staged (local, not yet committed) file of ``key``."""

    def commit(self, key: str, size: int, sha256: str) -> None:
        """The staged file of ``key`` is final (finished or remuxed, hashed): make it
        durable. Raises ``OSError`` if it could not be (the staged file then stays for a later
        try)."""

    def uncommitted(self) -> Iterator[str]:
        """Keys of staged files whose commit has not succeeded (start-up recovery)."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Bytes of the stored object; ``FileNotFoundError`` if there is none."""

    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary stream of the (small) stored object; ``FileNotFoundError`` if
        there is none."""

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A local file with the object's bytes while the context lasts (a remote backend
        downloads it first and removes it after)."""

    def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` up to (not including) ``end`` of the stored object, in chunks."""

    def write_atomic(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` so that readers see the old or the new bytes."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (and any staged copy); a missing key is not an error."""

    def keys(self, prefix: str = "") -> Iterator[str]: ...


class LocalStore:
    """Keys are paths below ``root`` (``RECORDINGS_DIR``); staging happens in place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def staging_path(self, key: str) -> Path:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def staged(self, key: str) -> bool:
        return self.exists(key)

    def commit(self, key: str, size: int, sha256: str) -> None:
        with self._path(key).open("rb") as f:
            os.fsync(f.fileno())

    def uncommitted(self) -> Iterator[str]:
        return iter(())  # staged in place: every file is where it stays

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        return nullcontext(self._path(key))

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            f.close()

    def write_atomic(self, key: str, data: bytes) -> None:
        path = self.staging_path(key)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # POSIX rename: atomic within the directory

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # the consultation's directory, once empty
        except OSError:
            pass

    def keys(self, prefix: str = "") -> Iterator[str]:
        return staged_keys(self.root, prefix)


def staged_keys(root: Path, prefix: str = "") -> Iterator[str]:
    """Keys of the files below ``root`` (``<uuid>/<name>``), in order."""
    if not root.is_dir():
        return
    for directory in sorted(root.iterdir()):
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            key = f"{directory.name}/{path.name}"
            if path.is_file() and key.startswith(prefix) and _KEY.match(key):
                yield key
