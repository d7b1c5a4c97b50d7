"""Where recording files live: a small storage interface and its local-directory backend.

Everything outside this module names a file by its *key* (``<consultation>/<name>``), never
by a path. The live writer needs a local file to append to (and to fill in its header at
the end), so the interface hands out a local *staging* path per key and is told when
the file is final (``commit``): the local backend stages in place; an object-storage
backend (S3, for many nodes) would upload there and keep only the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

_KEY = re.compile(r"^[0-9a-f-]{36}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BadKey(ValueError):
    """A key that is not ``<uuid>/<plain file name>``: refused before touching the disk."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise BadKey(key)
    return key


class RecordingStore(Protocol):
    """Files by key. ``staging_path`` and ``commit`` serve the writers; the rest serve readers,
    the composer and retention."""

    def staging_path(self, key: str) -> Path:
        """A local path the writer may create and append to for ``key``."""

    def commit(self, key: str) -> None:
        """The staged file of ``key`` is final (finished or remuxed): make it durable."""

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary stream of the stored object."""

    def local_path(self, key: str) -> Path:
        """A local file with the object's bytes (downloaded first by a remote backend)."""

    def write_atomic(self, key: str, data: bytes) -> None:
        """Replace ``key`` with ``data`` so that readers see the old or the new bytes."""

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

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

    def commit(self, key: str) -> None:
        with self._path(key).open("rb") as f:
            os.fsync(f.fileno())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path:
        return self._path(key)

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
        if not self.root.is_dir():
            return
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                key = f"{directory.name}/{path.name}"
                if path.is_file() and key.startswith(prefix) and _KEY.match(key):
                    yield key
