"""Writing recording files off the event loop: two threads per process serve every recording.

Each frame becomes a Matroska SimpleBlock on the event loop (``recording.matroska``: a few
bytes of framing, no thread hand-over, no PyAV call); every ``FLUSH_S`` the loop hands all
open files' new Clusters to the *append* thread in one batch, which appends them (one
``write`` per file per batch) and, when a file closes, appends its Cues and fills in its
header (duration, seek index). The *finalise* thread then syncs and hashes it (SHA-256) and
writes the manifests, in order; the append thread never waits for an ``fsync``. So a killed
process loses at most ``FLUSH_S`` of what reached the recorder (plus what a stalled disk holds
up). Start-up recovery copy-remuxes the files a crash left behind with PyAV (``finalise``):
that adds the duration and Cues a cut file lacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recording.matroska import ClusterBuffer, Finish, file_header
from recording.store import RecordingStore

logger = logging.getLogger(__name__)

MS = Fraction(1, 1000)
FLUSH_S = 0.25
"""New Clusters reach the file at least this often: what a ``kill -9`` can lose (the bound
FFmpeg's ``cluster_time_limit=250`` with ``flush_packets=1`` gave the PyAV writer before)."""
CONTAINERS = {"opus": ("matroska", "mka"), "vp8": ("webm", "webm"), "h264": ("matroska", "mkv")}
"""Codec → (muxer, file extension): one file per track, so a silent track never holds
another's data back in the muxer's interleaving queue."""


def extension(codec: str) -> str:
    return CONTAINERS[codec][1]


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What a new file holds."""

    key: str
    """Storage key (``<consultation>/<party>-<kind>-<segment>.<ext>``)."""
    codec: str
    """``opus``, ``vp8`` or ``h264``."""
    width: int = 0
    height: int = 0
    extradata: bytes | None = None
    """H.264: SPS and PPS (Annex B) for the Matroska CodecPrivate."""


@dataclass(frozen=True, slots=True)
class FileResult:
    """A finalised (or dropped) file."""

    key: str
    status: str
    """``complete`` / ``partial`` (finalised), ``empty`` (no frames: deleted), ``failed``."""
    duration_ms: int = 0
    first_ms: int = 0
    bytes: int = 0
    sha256: str | None = None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finalise(store: RecordingStore, key: str, status: str) -> FileResult:
    """Copy-remux the staged file of ``key`` into a seekable file with duration and Cues,
    hash it and ``commit`` it to the store.

    Reads until the first damaged cluster (a crash cuts the file anywhere); a file without a
    single frame is deleted. ``status`` is what a readable result is marked.
    """
    path = store.staging_path(key)
    if not path.is_file():
        return FileResult(key, "empty")
    tmp = path.with_name(path.name + ".remux")
    first: int | None = None
    last = 0
    try:
        with av.open(str(path)) as src, av.open(
            str(tmp), "w", format=CONTAINERS[_codec_of(key)][0]
        ) as dst:
            stream = src.streams[0]
            base = stream.time_base or MS
            # integer ms: Fraction arithmetic per packet cost more than the remux itself
            num, den = base.numerator * 1000, base.denominator
            out = dst.add_stream_from_template(stream)
            try:
                for packet in src.demux(stream):
                    if packet.dts is None or packet.pts is None:
                        continue
                    ms = packet.pts * num // den
                    first = ms if first is None else first
                    last = max(last, ms + (packet.duration or 0) * num // den)
                    packet.stream = out
                    dst.mux(packet)
            except av.FFmpegError:
                logger.warning("recording_file_truncated", extra={"key": key})
    except (av.FFmpegError, IndexError, OSError):
        logger.exception("recording_finalise_failed", extra={"key": key})
        tmp.unlink(missing_ok=True)
        return FileResult(key, "failed")
    if first is None:
        tmp.unlink(missing_ok=True)
        store.delete(key)
        return FileResult(key, "empty")
    os.replace(tmp, path)
    return commit(store, FileResult(key, status, last - first, first, path.stat().st_size,
                                    sha256_of(path)))


def commit(store: RecordingStore, result: FileResult) -> FileResult:
    """Make a finished, hashed file durable (an upload to object storage). A failed commit
    keeps the staged file, so start-up recovery (``recorder.recover``) tries again; the
    catalogue already has its size and hash."""
    assert result.sha256 is not None
    try:
        store.commit(result.key, result.bytes, result.sha256)
    except OSError:
        logger.exception("recording_commit_failed", extra={"key": result.key})
    return result


def _codec_of(key: str) -> str:
    ext = key.rsplit(".", 1)[-1]
    return next(codec for codec, (_, e) in CONTAINERS.items() if e == ext)


Result = Callable[[FileResult], None]
"""Told of a finalised file, on the finalise thread."""
Op = tuple[Any, ...]


class LiveFile:
    """The event-loop side of one file being recorded."""

    __slots__ = ("clusters", "on_result", "spec", "write")

    def __init__(self, spec: FileSpec, on_result: Result) -> None:
        self.spec = spec
        self.on_result = on_result
        self.clusters = ClusterBuffer(
            spec.codec, file_header(spec.codec, spec.width, spec.height, spec.extradata))
        self.write = self.clusters.write
        """``(data, ms, keyframe)`` per frame: the buffer's own method, one call less."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Writer:
    """All recording files of this process. Created on the event loop; its methods are
    called there, except that each file's ``on_result`` runs on the finalise thread."""

    def __init__(self, store: RecordingStore) -> None:
        self._store = store
        self._loop = asyncio.get_running_loop()
        self._live: dict[str, LiveFile] = {}
        self._ops: list[Op] = []
        """Opens, closes, manifests and barriers since the last hand-over, in call order."""
        self._sources: list[Callable[[], None]] = []
        """Called first at each hand-over: the recorders work through the packets they
        queued (``recording.track``), which writes their frames."""
        self._handover: asyncio.TimerHandle | None = None
        self._appends: queue.SimpleQueue[list[Op] | None] = queue.SimpleQueue()
        self._finals: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._append_loop, name="recording-append", daemon=True),
            threading.Thread(target=self._finalise_loop, name="recording-finalise", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def open(self, spec: FileSpec, on_result: Result) -> LiveFile:
        live = self._live[spec.key] = LiveFile(spec, on_result)
        self._add(("open", spec))
        return live

    def close_file(self, live: LiveFile) -> None:
        """The file gets what is buffered and its Cues, is closed, then hashed and synced
        (``on_result``)."""
        key = live.spec.key
        if self._live.pop(key, None) is None:
            return
        self._add(("close", key, live.on_result, live.clusters.finish()))

    def add_source(self, drain: Callable[[], None]) -> None:
        self._sources.append(drain)

    def remove_source(self, drain: Callable[[], None]) -> None:
        self._sources.remove(drain)

    def wake(self) -> None:
        """A source has queued work: make sure a hand-over is due."""
        if self._handover is None:
            self._handover = self._loop.call_later(FLUSH_S, self._hand_over)

    def write_atomic(self, key: str, data: bytes) -> None:
        """Replace a small object (a manifest) after what was handed over before it."""
        self._add(("store", key, data))

    async def drain(self) -> None:
        """Return once everything handed over so far is written, closed and finalised."""
        done: asyncio.Future[None] = self._loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def release() -> None:  # on the finalise thread
            self._loop.call_soon_threadsafe(resolve)

        self._hand_over(("barrier", release))
        await done

    async def close(self) -> None:
        await self.drain()
        if self._handover is not None:
            self._handover.cancel()
            self._handover = None
        self._appends.put(None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)

    # -- event loop: hand-over -------------------------------------------------------

    def _add(self, op: Op) -> None:
        self._ops.append(op)
        self.wake()

    def _hand_over(self, last: Op | None = None) -> None:
        """One batch for the append thread: the queued operations (with what the sources
        add), then each open file's new Clusters, then ``last``. Repeats every ``FLUSH_S``
        while files are open."""
        for drain in list(self._sources):  # before the timer is reset: no second one armed
            try:
                drain()
            except Exception:  # one room's failure must not stop every file's hand-over
                logger.exception("recording_drain_failed")
        if self._handover is not None:
            self._handover.cancel()
        self._handover = None
        ops, self._ops = self._ops, []
        for key, live in self._live.items():
            data = live.clusters.take()
            if data:
                ops.append(("data", key, data))
        if last is not None:
            ops.append(last)
        if ops:
            self._appends.put(ops)
        if self._live:
            self._handover = self._loop.call_later(FLUSH_S, self._hand_over)

    # -- threads ---------------------------------------------------------------------

    def _append_loop(self) -> None:
        files: dict[str, int] = {}
        try:
            while (ops := self._appends.get()) is not None:
                for op in ops:
                    self._append(files, op)
        finally:  # whatever ends this thread, the finalise thread (and every barrier) ends too
            for fd in files.values():
                os.close(fd)
            self._finals.put(None)

    def _append(self, files: dict[str, int], op: Op) -> None:
        kind = op[0]
        try:
            if kind == "data":  # most operations
                fd = files.get(op[1])
                if fd is not None:
                    _write_all(fd, op[2])
            elif kind == "open":
                path = self._store.staging_path(op[1].key)
                files[op[1].key] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            elif kind == "close":
                self._close(files, op[1], op[2], op[3])
            else:  # manifests and barriers, in order with the closes before them
                self._finals.put(op)
        except Exception:  # one bad file must not stop the others, nor this thread: a dead
            # append thread would leave every later barrier (and the node's shutdown) waiting
            key = op[1].key if kind == "open" else op[1]
            logger.exception("recording_write_failed", extra={"key": key})
            fd = files.pop(key, None)
            if fd is not None:
                os.close(fd)

    def _close(self, files: dict[str, int], key: str, on_result: Result,
               finish: Finish | None) -> None:
        """End a file (append thread): last Clusters, Cues, the header filled in."""
        fd = files.pop(key, None)
        if fd is None:  # never opened, or failed: nothing to finish
            self._finals.put(("failed", key, on_result))
            return
        try:
            if finish is not None:
                _write_all(fd, finish.tail)
                for offset, data in finish.patches:
                    os.pwrite(fd, data, offset)
        except Exception:
            logger.exception("recording_write_failed", extra={"key": key})
            self._finals.put(("failed", key, on_result))
            return
        finally:
            os.close(fd)
        self._finals.put(("complete", key, on_result, finish))

    def _finalise_loop(self) -> None:
        while (op := self._finals.get()) is not None:
            kind = op[0]
            try:
                if kind == "complete":
                    op[2](self._complete(op[1], op[3]))
                elif kind == "failed":
                    op[2](FileResult(op[1], "failed"))
                elif kind == "store":
                    self._store.write_atomic(op[1], op[2])
                else:  # barrier
                    op[1]()
            except Exception:
                logger.exception("recording_finalise_failed", extra={"op": kind})

    def _complete(self, key: str, finish: Finish | None) -> FileResult:
        """A finished file made durable and hashed (finalise thread); one without a frame
        is deleted."""
        if finish is None:
            self._store.delete(key)
            return FileResult(key, "empty")
        path = self._store.staging_path(key)
        return commit(self._store, FileResult(key, "complete", finish.duration_ms,
                                              finish.first_ms, path.stat().st_size,
                                              sha256_of(path)))
