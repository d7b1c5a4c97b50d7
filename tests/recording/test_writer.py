"""The writer stays up when one file or one recorder fails: a recorder that raises while it
works through its queued packets, or a file the append thread cannot open, costs that file,
not every other file of the node, and ``close`` (the node's shutdown) still returns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from recording.store import LocalStore
from recording.writer import FileResult, FileSpec, LiveFile, Writer
from tests.polling import eventually

CLOSE_DEADLINE_S = 60
"""Generous: a regression (a dead append thread) would wait forever, not a little longer."""


def _frame_source(writer: Writer, live: LiveFile, written: list[int]) -> Callable[[], None]:
    def source() -> None:  # a recorder writing one Opus frame per hand-over
        ms = 20 * len(written)
        live.write(b"\xfc" + bytes(40), ms, True)
        written.append(ms)
        writer.wake()

    return source


async def test_a_failing_recorder_or_file_costs_only_itself(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    writer = Writer(store)
    results: list[FileResult] = []

    def on_result(result: FileResult) -> None:  # on the finalise thread
        loop.call_soon_threadsafe(results.append, result)

    room = str(uuid.uuid4())
    good = writer.open(FileSpec(f"{room}/caller-audio-000.mka", "opus"), on_result)
    # a key the store refuses (not <uuid>/<name>): the append thread fails to open it
    refused = writer.open(FileSpec("not-a-room/astrologer-audio-000.mka", "opus"), on_result)
    good_frames: list[int] = []
    refused_frames: list[int] = []

    def broken() -> None:
        raise IndexError("a malformed packet")

    sources = [broken, _frame_source(writer, good, good_frames),
               _frame_source(writer, refused, refused_frames)]
    for source in sources:
        writer.add_source(source)
    writer.wake()
    assert await eventually(lambda: len(good_frames) >= 5)  # hand-overs go on, every FLUSH_S
    assert "recording_drain_failed" in caplog.text
    for source in sources:
        writer.remove_source(source)
    writer.close_file(good)
    writer.close_file(refused)
    async with asyncio.timeout(CLOSE_DEADLINE_S):
        await writer.close()
    assert "recording_write_failed" in caplog.text
    by_key = {r.key.split("/")[1]: r for r in results}
    assert by_key["caller-audio-000.mka"].status == "complete", results
    assert by_key["caller-audio-000.mka"].duration_ms >= 80
    assert by_key["astrologer-audio-000.mka"].status == "failed", results
    assert (store.root / room / "caller-audio-000.mka").stat().st_size > 0
