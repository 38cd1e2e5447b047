"""The sync worker: runs on its own thread and loop, hands results and errors back, and cleans up on cancel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from crm_desktop.app.sync_worker import SyncWorker, on_loop


@pytest.fixture
def worker() -> Iterator[SyncWorker]:
    started = SyncWorker("test-worker")
    try:
        yield started
    finally:
        started.close()


def test_a_run_happens_on_the_worker_thread_and_its_result_comes_back(worker: SyncWorker) -> None:
    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    async def caller() -> tuple[int, asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        thread, loop = await worker.run(where())
        return thread, loop, asyncio.get_running_loop()

    thread, worker_loop, caller_loop = asyncio.run(caller())
    assert thread == worker.thread_id != threading.get_ident()
    assert worker_loop is not caller_loop


def test_an_error_of_the_run_is_raised_to_the_caller(worker: SyncWorker) -> None:
    async def fails() -> None:
        raise ValueError("the CRM has no such field")

    with pytest.raises(ValueError, match="no such field"):
        asyncio.run(worker.run(fails()))


def test_cancelling_the_caller_cancels_the_run_and_waits_for_its_clean_up(worker: SyncWorker) -> None:
    cleaned: list[int] = []
    running = threading.Event()

    async def long_run() -> None:
        running.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # a clean-up that needs the loop (a lock released, a run marked stopped)
            cleaned.append(threading.get_ident())

    async def caller() -> None:
        task = asyncio.ensure_future(worker.run(long_run()))
        await asyncio.to_thread(running.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [worker.thread_id], "the caller returned before the run had cleaned up"

    asyncio.run(caller())


def test_callbacks_are_posted_to_the_callers_loop(worker: SyncWorker) -> None:
    heard: list[tuple[int, int]] = []

    async def caller() -> None:
        report = on_loop(asyncio.get_running_loop(), lambda n: heard.append((n, threading.get_ident())))

        async def reports() -> None:
            for n in range(3):
                report(n)

        await worker.run(reports())
        await asyncio.sleep(0)

    asyncio.run(caller())
    assert heard == [(n, threading.get_ident()) for n in range(3)]


def test_a_closed_worker_refuses_runs_and_close_stops_what_runs() -> None:
    worker = SyncWorker()
    stopped = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()

    caller_loop = asyncio.new_event_loop()
    try:
        waiting = caller_loop.create_task(worker.run(forever()))
        caller_loop.run_until_complete(asyncio.sleep(0.1))
        worker.close(timeout=1.0)  # the caller is still waiting: closing alone stops the run
        assert stopped.is_set() and not worker.running
        caller_loop.run_until_complete(asyncio.wait([waiting], timeout=1.0))
        assert waiting.cancelled()
    finally:
        caller_loop.close()

    async def late() -> None:
        await worker.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(late())
