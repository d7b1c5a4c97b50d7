"""The live recorder: the SFU's observer that records each consultation it hosts.

``Recorder`` is handed to ``media.MediaEngine`` (``media.observer.MediaObserver``). On a
participant's join it looks the consultation up (mode, which user is caller or astrologer,
when it started: zero of the consultation clock); each published track it should record gets a
``TrackRecorder`` as its packet tap; when the room closes its files are finalised. Every
consultation's files go through the process's one ``recording.writer.Writer``; each
consultation (``RoomRecording``) has its ``manifest.json`` and an ordered queue of catalogue
(database) writes. Each track's first file, every later segment and its end
go to the session log too (``recording_started``, ``recording_segment``,
``recording_stopped``), through the emitter the SFU's events use (``bind_events``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from core.session_log import Emitter
from recording.catalog import Catalog, ConsultInfo, NewFile
from recording.clock import SenderClock
from recording.config import RecordingSettings
from recording.metrics import CATALOG, LOOKUP, RecordingMetrics
from recording.store import RecordingStore
from recording.track import FrameWrite, TrackRecorder
from recording.writer import FileResult, FileSpec, LiveFile, Writer, commit, extension, finalise

logger = logging.getLogger(__name__)

CODECS = {"audio/opus": "opus", "video/vp8": "vp8", "video/h264": "h264"}
"""MIME type of a published track → the codec names the writer knows."""
MANIFEST = "manifest.json"

Resolve = Callable[[str], Awaitable[ConsultInfo | None]]


def _unlogged(
    consultation_id: str, actor_id: str | None, kind: str, data: dict[str, Any],
    *, at: dt.datetime | None = None,
) -> None:
    """The session-log emitter until ``Recorder.bind_events`` (and in tests without one)."""


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat()


class RoomRecording:
    """One consultation being recorded on this node (a ``recording.track.TrackOwner``)."""

    def __init__(
        self, info: ConsultInfo, settings: RecordingSettings, store: RecordingStore,
        catalog: Catalog, writer: Writer, log_event: Emitter = _unlogged,
        metrics: RecordingMetrics | None = None, stored_manifest: dict[str, Any] | None = None,
    ) -> None:
        self.info = info
        self._metrics = metrics or RecordingMetrics()
        self._log_event = log_event
        self._actors = {party: pid for pid, party in info.parties.items()}
        """party → participant (user) id, the session log's actor."""
        self._open_tracks: dict[str, TrackRecorder] = {}
        """Storage key → the track writing it."""
        self.origin = info.started_at if info.started_at is not None else time.time()
        self.segment_ms = int(settings.segment_s * 1000)
        self._store = store
        self._catalog = catalog
        self._cid = str(info.consultation_id)
        self._loop = asyncio.get_running_loop()
        self._db: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._db_task = asyncio.ensure_future(self._run_db())
        self._writer = writer
        self._files: dict[str, LiveFile] = {}
        """Storage key → the file being written."""
        self.tracks: list[TrackRecorder] = []
        self.senders: dict[str, SenderClock] = {}
        self._segments: dict[tuple[str, str], int] = {}
        self._manifest = self._load_manifest(stored_manifest)
        self._manifest_changed = False
        self._handing_over = True
        """Whether the writer's hand-overs still call ``_hand_over`` (until ``close``)."""
        writer.add_source(self._hand_over)

    # -- manifest ---------------------------------------------------------------------

    def _load_manifest(self, manifest: dict[str, Any] | None) -> dict[str, Any]:
        """A room recorded again (both parties dropped and rejoined) extends its manifest
        (``stored_manifest``, read by ``Recorder`` off the event loop)."""
        if manifest is not None:
            for name in manifest.get("files", {}):
                party, kind, seg = name.split(".")[0].split("-")
                self._segments[(party, kind)] = max(
                    self._segments.get((party, kind), 0), int(seg) + 1
                )
            return manifest
        return {
            "consultation_id": self._cid,
            "mode": self.info.mode,
            "clock_origin": _iso(self.origin),
            "clock_origin_unix": self.origin,
            "tracks": [],
            "files": {},
            "events": [],
        }

    def _save_manifest(self) -> None:
        """The manifest changed: it is written at the writer's next hand-over, with the
        frames and closes before it. One write for a burst of changes (a gap on every track
        when a party's network returns): written per change, the encoding grew with the
        manifest on the event loop and each write was an ``fsync``."""
        if self._handing_over:
            self._manifest_changed = True
            self._writer.wake()
        else:
            self._write_manifest()

    def _write_manifest(self) -> None:
        self._manifest_changed = False
        self._writer.write_atomic(f"{self._cid}/{MANIFEST}", encode_manifest(self._manifest))

    def note(self, event: dict[str, object]) -> None:
        event.setdefault("at_ms", self.to_ms(time.time()))
        self._manifest["events"].append(event)
        self._save_manifest()

    # -- TrackOwner -------------------------------------------------------------------

    def to_ms(self, wall: float) -> int:
        # per frame: int(x + 0.5) is cheaper than round() (ties and negatives may differ by
        # 1 ms; frames are clamped at 0)
        return int((wall - self.origin) * 1000 + 0.5)

    def open_file(
        self, track: TrackRecorder, first_ms: int, width: int, height: int, extradata: bytes | None
    ) -> tuple[str, FrameWrite]:
        slot = (track.party, track.kind)
        segment = self._segments.get(slot, 0)
        self._segments[slot] = segment + 1
        name = f"{track.party}-{track.kind}-{segment:03d}.{extension(track.codec)}"
        key = f"{self._cid}/{name}"
        spec = FileSpec(key, track.codec, width, height, extradata)
        live = self._files[key] = self._writer.open(spec, self._on_result)
        started = dt.datetime.fromtimestamp(self.origin + first_ms / 1000, dt.UTC)
        new = NewFile(
            uuid.uuid4(), self.info.consultation_id, track.party, track.kind, track.codec,
            segment, key, started, first_ms,
        )
        self._db.put_nowait(lambda: self._catalog.file_opened(new))
        first = track.frames_written == 0
        self._open_tracks[key] = track
        self._log(track, "recording_started" if first else "recording_segment",
                  {"key": key, "segment": segment, "offset_ms": first_ms})
        self._manifest["files"][name] = {
            "party": track.party, "kind": track.kind, "codec": track.codec,
            "segment": segment, "offset_ms": first_ms, "status": "recording",
            "width": width or None, "height": height or None,
        }
        self._save_manifest()
        logger.info("recording_file_started", extra={"key": key})
        return key, live.write

    def wake(self) -> None:
        self._writer.wake()

    def _hand_over(self) -> None:
        """The writer's hand-over: the tracks' queued packets become frames, then the
        manifest is written if it changed."""
        for track in self.tracks:
            track.drain()
        if self._manifest_changed:
            self._write_manifest()

    def close_file(self, key: str) -> None:
        live = self._files.pop(key, None)
        if live is not None:
            self._writer.close_file(live)
        track = self._open_tracks.pop(key, None)
        if track is not None and track.closed:  # not a segment rotation: the track ended
            self._log(track, "recording_stopped",
                      {"key": key, "frames": track.frames_written})

    def _log(self, track: TrackRecorder, kind: str, data: dict[str, Any]) -> None:
        self._log_event(self._cid, self._actors.get(track.party), kind,
                        {"party": track.party, "kind": track.kind, "codec": track.codec, **data})

    # -- results from the finalise thread ---------------------------------------------

    def _on_result(self, result: FileResult) -> None:
        """Called on the writer's finalise thread."""
        self._loop.call_soon_threadsafe(self._finished, result)

    def _finished(self, result: FileResult) -> None:
        self._metrics.file_finished(result)
        self._db.put_nowait(lambda: self._catalog.file_finished(result))
        name = result.key.split("/", 1)[1]
        entry = self._manifest["files"].get(name)
        if entry is not None:
            if result.status == "empty":
                del self._manifest["files"][name]
            else:
                entry.update(status=result.status, duration_ms=result.duration_ms,
                             bytes=result.bytes, sha256=result.sha256)
            self._save_manifest()

    async def _run_db(self) -> None:
        """Catalogue writes in order (a file's insert before its update), one at a time."""
        while (op := await self._db.get()) is not None:
            try:
                await op()
            except Exception:
                logger.exception("recording_catalog_failed", extra={"consultation": self._cid})
                self._metrics.failed(CATALOG)

    # -- lifecycle --------------------------------------------------------------------

    def add_track(self, track: TrackRecorder) -> None:
        self.tracks.append(track)
        self._manifest["tracks"].append(
            {"party": track.party, "kind": track.kind, "codec": track.codec,
             "at_ms": self.to_ms(time.time())}
        )
        self._save_manifest()

    async def close(self) -> None:
        """Finish every file (Cues, header, hash), record them, write the last manifest."""
        for track in self.tracks:
            track.close()
        self._writer.remove_source(self._hand_over)
        self._handing_over = False
        if self._manifest_changed:
            self._write_manifest()
        await self._writer.drain()  # this room's files finalised and their results in
        self._manifest["stopped_at"] = _iso(time.time())
        offsets = self._manifest.setdefault("clock_offsets_ms", {})
        for participant_id, sender in self.senders.items():
            party = self.info.parties.get(participant_id)
            if party is not None and sender.offset_s is not None:
                # our wall clock minus the party's NTP clock (sender reports, min-filtered)
                offsets[party] = round(sender.offset_s * 1000, 1)
        self._save_manifest()  # after the files' own manifest updates, in the writer's order
        await self._writer.drain()
        self._db.put_nowait(None)
        await self._db_task
        logger.info("recording_stopped", extra={"consultation": self._cid})


class Recorder:
    """Records the consultations hosted by this node's SFU (``media.observer.MediaObserver``)."""

    def __init__(
        self, settings: RecordingSettings, store: RecordingStore, catalog: Catalog,
        resolve: Resolve | None = None, metrics: RecordingMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or RecordingMetrics()
        self.store = store
        self.catalog = catalog
        self._resolve = resolve or catalog.consultation
        self._log_event: Emitter = _unlogged
        self.rooms: dict[str, RoomRecording] = {}
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future[None]] = set()
        self._writer: Writer | None = None
        """Started with the first recorded room (it needs the running loop)."""

    def bind_events(self, log_event: Emitter) -> None:
        """Where ``recording_*`` events go: the session log's emitter the SFU's events use
        (bound with the node id, known once the signalling hub exists)."""
        self._log_event = log_event

    def _log(
        self, consultation_id: str, actor_id: str | None, kind: str, data: dict[str, Any],
        *, at: dt.datetime | None = None,
    ) -> None:
        # what rooms hold: it reads the binding per call, so rooms opened before it log too
        self._log_event(consultation_id, actor_id, kind, data, at=at)

    async def participant_joined(self, room_id: str, participant_id: str) -> None:
        async with self._lock:
            room = self.rooms.get(room_id)
            if room is None:
                try:
                    info = await self._resolve(room_id)
                except Exception:  # a failed look-up must not fail the call: it goes unrecorded
                    logger.exception("recording_lookup_failed", extra={"room_id": room_id})
                    self.metrics.failed(LOOKUP)
                    return
                if info is None or info.mode not in ("voice", "video"):
                    return
                if self._writer is None:
                    self._writer = Writer(self.store)
                stored = await asyncio.to_thread(stored_manifest, self.store, room_id)
                room = self.rooms[room_id] = RoomRecording(
                    info, self.settings, self.store, self.catalog, self._writer, self._log,
                    self.metrics, stored,
                )
                logger.info("recording_started", extra={"consultation": room_id})

    def track_published(
        self, room_id: str, participant_id: str, kind: str, mime_type: str, clock_rate: int,
        request_keyframe: Callable[[], None], is_keyframe: Callable[[bytes], bool],
    ) -> TrackRecorder | None:
        room = self.rooms.get(room_id)
        codec = CODECS.get(mime_type.lower())
        if room is None or codec is None or not self.settings.records(kind):
            return None
        party = room.info.parties.get(participant_id)
        if party is None or (kind == "video" and room.info.mode != "video"):
            return None
        track = TrackRecorder(
            room, party=party, kind=kind, codec=codec, clock_rate=clock_rate,
            sender=room.senders.setdefault(participant_id, SenderClock()),
            request_keyframe=request_keyframe, is_keyframe=is_keyframe,
        )
        room.add_track(track)
        return track

    def media_event(
        self, room_id: str, participant_id: str, kind: str, data: dict[str, Any]
    ) -> None:
        """The SFU's joins and leaves go into the manifest (its other events only to the
        session log)."""
        if kind not in ("joined", "left"):
            return
        room = self.rooms.get(room_id)
        party = room.info.parties.get(participant_id) if room is not None else None
        if room is not None and party is not None:
            room.note({"event": kind, "party": party})

    def room_closed(self, room_id: str) -> None:
        room = self.rooms.pop(room_id, None)
        if room is not None:
            task = asyncio.ensure_future(room.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for room_id in list(self.rooms):
            self.room_closed(room_id)
        await asyncio.gather(*list(self._closing), return_exceptions=True)
        if self._writer is not None:
            await self._writer.close()
            self._writer = None


async def recover(store: RecordingStore, catalog: Catalog) -> list[FileResult]:
    """Finalise the files a crash left ``recording`` (remux; mark ``partial``; drop empty),
    then commit the finished files whose commit (an upload) failed before.

    Run at start-up, before the SFU takes rooms. Staged files are per node: a row whose file
    is not staged here belongs to another node and is left alone."""
    results: list[FileResult] = []
    for key in await catalog.unfinished():
        if not await asyncio.to_thread(store.staged, key):
            continue
        result = await asyncio.to_thread(finalise, store, key, "partial")
        await catalog.file_finished(result)
        await asyncio.to_thread(_manifest_update, store, result)
        results.append(result)
        logger.warning("recording_recovered", extra={"key": key, "status": result.status})
    for key in await asyncio.to_thread(lambda: list(store.uncommitted())):
        finished = await catalog.finished(key)
        if finished is not None:
            await asyncio.to_thread(commit, store, finished)
            logger.warning("recording_commit_retried", extra={"key": key})
    return results


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """Compact: with ``indent``, ``json`` encodes in Python, not C, and a long consult's
    manifest is re-encoded on the event loop at each change."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def stored_manifest(store: RecordingStore, consultation_id: str) -> dict[str, Any] | None:
    """The consultation's ``manifest.json`` if one was written before (blocking: a GET on
    object storage)."""
    key = f"{consultation_id}/{MANIFEST}"
    try:
        with store.open_read(key) as f:
            manifest: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return manifest


def _manifest_update(store: RecordingStore, result: FileResult) -> None:
    cid, name = result.key.split("/", 1)
    manifest = stored_manifest(store, cid)
    if manifest is None:
        return
    files = manifest.get("files", {})
    if result.status == "empty":
        files.pop(name, None)
    elif name in files:
        files[name].update(status=result.status, duration_ms=result.duration_ms,
                           bytes=result.bytes, sha256=result.sha256)
    store.write_atomic(f"{cid}/{MANIFEST}", encode_manifest(manifest))
