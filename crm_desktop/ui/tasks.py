"""The asyncio tasks a window starts, tracked so closing the window cancels what is still running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    """A window's running asyncio tasks (a sync, a connection test), cancelled together on close.

    Tasks run on the app's one qasync loop; nothing here creates or sets a loop.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coroutine`` on the running loop and track it until it ends.

        Raises:
            RuntimeError: when no asyncio loop is running (the app's qasync loop was not set up).
        """
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            logger.debug("task %s cancelled", task.get_name())
            return
        error = task.exception()
        if error is not None:
            logger.error("task %s failed: %s", task.get_name(), type(error).__name__, exc_info=error)

    @property
    def pending(self) -> list[asyncio.Task[Any]]:
        """The tasks still running."""
        return [task for task in self._tasks if not task.done()]

    def cancel_all(self) -> int:
        """Ask every running task to stop; return how many were asked."""
        pending = self.pending
        for task in pending:
            task.cancel()
        if pending:
            logger.info("cancelled %d running task(s)", len(pending))
        return len(pending)
