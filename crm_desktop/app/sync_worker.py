"""A thread with its own asyncio loop where sync runs do their store work, merging and CRM calls.

The desktop app's loop is also its GUI's: a run's SQLite writes (which may wait on another process's lock), its
merge and its JSON would freeze the window if they ran there. The app hands each run to this worker instead and
only awaits the outcome; callbacks a run makes (progress, "run started") are posted back to the caller's loop.
Every store call opens its own short session, so the worker's sessions and connections are its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")

#: How long closing the worker waits for runs it cancelled to wind down (lock released, run marked stopped).
CLOSE_SECONDS = 2.0


class SyncWorker:
    """Runs coroutines on a private event loop in a daemon thread.

    Attributes:
        name: the thread's name (shown in logs and thread dumps).
    """

    def __init__(self, name: str = "sync-worker") -> None:
        self.name = name
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    @property
    def thread_id(self) -> int | None:
        """The worker thread's identifier (``threading.get_ident()`` inside it)."""
        return self._thread.ident

    @property
    def running(self) -> bool:
        """Whether the worker still takes work."""
        return not self._closed and self._thread.is_alive()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the worker and return its result on the caller's loop.

        Cancelling the caller cancels the run on the worker and waits for its clean-up (a finally that releases a
        lock or records the run as stopped); cancelling the caller again stops that wait.

        Raises:
            RuntimeError: when the worker was closed.
        """
        if not self.running:
            coroutine.close()
            raise RuntimeError("the sync worker is closed")
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        started: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()

        def begin() -> None:
            task = self._loop.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(lambda done: self._finished(done, outcome))
            started.set_result(task)

        self._loop.call_soon_threadsafe(begin)
        waiter = asyncio.wrap_future(outcome)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            if waiter.done():
                raise  # the run itself was cancelled (the worker is closing)
            task = await asyncio.wrap_future(started)
            with contextlib.suppress(RuntimeError):  # the worker's loop closed meanwhile: nothing left to cancel
                self._loop.call_soon_threadsafe(task.cancel)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await waiter
            raise

    def _finished(self, task: asyncio.Task[T], outcome: concurrent.futures.Future[T]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if outcome.done():
            return  # the caller stopped waiting
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            if task.cancelled():
                outcome.cancel()
            elif error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(task.result())

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Cancel what still runs, give it ``timeout`` seconds to wind down, and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            return

        async def wind_down() -> None:
            pending = [task for task in self._tasks if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=timeout)
                logger.info("stopped %d sync run(s) at exit%s", len(pending),
                            f"; {len(stuck)} did not stop" if stuck else "")

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(wind_down(), self._loop).result(timeout + 1.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout + 1.0)


def on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[A], None]) -> Callable[[A], None]:
    """``callback`` made callable from any thread: each call is posted to ``loop`` (the GUI's, which draws it)."""

    def post(argument: A) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback, argument)

    return post
