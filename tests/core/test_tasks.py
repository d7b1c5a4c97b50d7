"""One supervisor for background tasks, one loop for periodic work."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from core.tasks import TaskSet, every


async def test_a_failed_task_is_logged_and_close_cancels_and_awaits_the_rest() -> None:
    tasks = TaskSet("probe_task_failed")
    stopped = asyncio.Event()

    async def fail() -> None:
        raise RuntimeError("boom")

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    with capture_logs() as logs:
        tasks.spawn(fail(), name="failing")
        tasks.spawn(forever(), name="forever")
        for _ in range(500):  # the failed task leaves the set once its callback ran
            if len(tasks) == 1:
                break
            await asyncio.sleep(0.01)
        await tasks.close()
    assert stopped.is_set() and len(tasks) == 0
    assert [(e["event"], e["task"]) for e in logs] == [("probe_task_failed", "failing")]


async def test_every_keeps_its_rhythm_after_a_failed_run() -> None:
    runs: list[int] = []
    third = asyncio.Event()

    async def action() -> None:
        runs.append(len(runs))
        if len(runs) == 3:
            third.set()
        if len(runs) == 1:
            raise RuntimeError("first run fails")

    with capture_logs() as logs:
        loop = asyncio.create_task(every(0.01, action, failed_event="probe_failed"))
        await asyncio.wait_for(third.wait(), 10)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert [e["event"] for e in logs] == ["probe_failed"]


async def test_every_stops_when_its_action_turns_the_cancellation_into_an_error() -> None:
    """The hang of a node's shutdown (a stack dump showed ``node-load`` cancelling, and still
    sleeping in ``every``): a cancellation that reaches the action as a library's error, or is
    swallowed there, must still end the loop."""
    for swallow in ("as an error", "silently"):
        entered = asyncio.Event()

        async def action(swallow: str = swallow, entered: asyncio.Event = entered) -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if swallow == "as an error":
                    raise ConnectionError("Connection closed by server.") from None
                return

        loop = asyncio.create_task(every(0.01, action, failed_event="probe_failed"))
        await asyncio.wait_for(entered.wait(), 10)
        loop.cancel()
        done, _ = await asyncio.wait([loop], timeout=10)
        assert loop in done, f"every() went on after a cancellation swallowed {swallow}"
        assert loop.cancelled()
