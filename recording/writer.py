"""Writing recording files with PyAV, off the event loop: one writer thread per consultation.

The event loop only enqueues (``open``/``write``/``close``); the thread muxes encoded frames
into Matroska (never decoding) and finalises closed files. Files are written live —
``live=1`` (no seeking back to patch the header), clusters of at most 250 ms and
``flush_packets=1`` — so a killed process loses well under a second. On a clean close a
copy-remux writes the duration and the seek index (Cues); start-up recovery does the same to
files a crash left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recording.store import RecordingStore

logger = logging.getLogger(__name__)

MS = Fraction(1, 1000)
LIVE_OPTIONS = {"live": "1", "cluster_time_limit": "250", "flush_packets": "1"}
"""Matroska muxer options of a file being recorded (libavformat matroskaenc, avformat)."""
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
    """``remux`` the staged file of ``key``, then ``commit`` it to the store."""
    result = remux(store, key, status)
    return commit(store, result) if result.sha256 is not None else result


def remux(store: RecordingStore, key: str, status: str) -> FileResult:
    """Copy-remux the staged file of ``key`` into a seekable file with duration and Cues,
    and hash it.

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
    return FileResult(key, status, last - first, first, path.stat().st_size, sha256_of(path))


def commit(store: RecordingStore, result: FileResult) -> FileResult:
    """Make a finalised file durable. A failed commit keeps the staged file, so start-up
    recovery (``recorder.recover``) tries again; the catalogue already has its size and hash."""
    assert result.sha256 is not None
    try:
        store.commit(result.key, result.bytes, result.sha256)
    except OSError:
        logger.exception("recording_commit_failed", extra={"key": result.key})
    return result


def _codec_of(key: str) -> str:
    ext = key.rsplit(".", 1)[-1]
    return next(codec for codec, (_, e) in CONTAINERS.items() if e == ext)


class _LiveFile:
    """A Matroska file being appended to."""

    def __init__(self, store: RecordingStore, spec: FileSpec) -> None:
        self.spec = spec
        fmt = CONTAINERS[spec.codec][0]
        path = store.staging_path(spec.key)
        self.container: Any = av.open(str(path), "w", format=fmt, options=dict(LIVE_OPTIONS))
        stream: Any
        if spec.codec == "opus":
            stream = self.container.add_stream("opus", rate=48000, layout="stereo")
        else:
            stream = self.container.add_stream(spec.codec)
            stream.width, stream.height = spec.width, spec.height
            if spec.extradata:
                stream.codec_context.extradata = spec.extradata
        stream.time_base = MS
        self.stream = stream

    def write(self, data: bytes, pts_ms: int, key: bool) -> None:
        packet = av.Packet(data)
        packet.pts = packet.dts = pts_ms
        packet.time_base = MS
        packet.is_keyframe = key
        packet.stream = self.stream
        self.container.mux(packet)

    def close(self) -> None:
        self.container.close()


Result = Callable[[FileResult], None]


BATCH_S = 0.05
"""The event loop hands work to the writer thread at most this often: one thread wake-up per
batch instead of per packet (measured: per-packet hand-over cost more than the muxing)."""


class WriterThread:
    """One consultation's files, muxed on a thread of its own. Finished files are committed on
    a second thread (an upload to object storage must not hold the next segment's frames
    back); ``on_result`` is called on that one once a file is committed. ``write_atomic`` keeps
    manifest writes in order with the files they describe. Created on the event loop; its
    methods are called there."""

    def __init__(self, store: RecordingStore, on_result: Result, name: str) -> None:
        self._store = store
        self._on_result = on_result
        self._loop = asyncio.get_running_loop()
        self._batch: list[tuple[Any, ...]] = []
        self._handover: asyncio.TimerHandle | None = None
        self._queue: queue.SimpleQueue[list[tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._files: dict[str, _LiveFile] = {}
        self._commits = ThreadPoolExecutor(1, thread_name_prefix=f"recording-commit-{name}")
        self._thread = threading.Thread(target=self._run, name=f"recorder-{name}", daemon=True)
        self._thread.start()

    def _add(self, item: tuple[Any, ...]) -> None:
        self._batch.append(item)
        if self._handover is None:
            self._handover = self._loop.call_later(BATCH_S, self._hand_over)

    def _hand_over(self) -> None:
        self._handover = None
        if self._batch:
            batch, self._batch = self._batch, []
            self._queue.put(batch)

    def open(self, spec: FileSpec) -> None:
        self._add(("open", spec))

    def write(self, key: str, data: bytes, pts_ms: int, keyframe: bool) -> None:
        # _add inlined: this runs per frame on the event loop
        self._batch.append(("write", key, data, pts_ms, keyframe))
        if self._handover is None:
            self._handover = self._loop.call_later(BATCH_S, self._hand_over)

    def close_file(self, key: str) -> None:
        self._add(("close", key))

    def write_atomic(self, key: str, data: bytes) -> None:
        self._add(("store", key, data))

    def stop(self) -> None:
        """Hand over what is pending, close every open file, then end the thread (``join``
        waits for it)."""
        if self._handover is not None:
            self._handover.cancel()
        self._hand_over()
        self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        files = self._files
        while (batch := self._queue.get()) is not None:
            for item in batch:
                try:
                    if item[0] == "write":  # most items: no dispatch call
                        live = files.get(item[1])
                        if live is not None:
                            live.write(item[2], item[3], item[4])
                    else:
                        self._handle(item)
                except Exception:  # one bad file must not stop the others
                    logger.exception("recording_write_failed", extra={"op": item[0]})
                    if item[0] in ("open", "write"):
                        self._fail(item[1].key if item[0] == "open" else item[1])
        for key in list(self._files):
            self._close(key)
        self._commits.shutdown(wait=True)

    def _handle(self, item: tuple[Any, ...]) -> None:
        op = item[0]
        if op == "open":
            spec: FileSpec = item[1]
            self._files[spec.key] = _LiveFile(self._store, spec)
        elif op == "close":
            self._close(item[1])
        elif op == "store":
            self._store.write_atomic(item[1], item[2])

    def _close(self, key: str) -> None:
        live = self._files.pop(key, None)
        if live is None:
            return
        try:
            live.close()
        except av.FFmpegError:
            logger.exception("recording_close_failed", extra={"key": key})
        result = remux(self._store, key, "complete")
        if result.sha256 is None:  # empty or failed: nothing to commit
            self._on_result(result)
        else:
            self._commits.submit(self._commit, result)

    def _commit(self, result: FileResult) -> None:
        try:
            self._on_result(commit(self._store, result))
        except Exception:  # a lost result would leave the row 'recording' until a restart
            logger.exception("recording_commit_failed", extra={"key": result.key})
            self._on_result(result)

    def _fail(self, key: str) -> None:
        live = self._files.pop(key, None)
        if live is not None:
            try:
                live.close()
            except av.FFmpegError:
                pass
        self._on_result(FileResult(key, "failed"))
