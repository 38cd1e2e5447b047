"""The scheduler while the app is open: every minute, run the scheduled syncs that are due, one batch at a time, and
the social workflows' hourly push and daily rescore when due."""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QObject, QTimer, Signal

from crm_desktop.app.sync_service import SyncResult, SyncService, SyncTrigger
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.ui.tasks import BackgroundTasks

logger = logging.getLogger(__name__)

#: The longest interval a QTimer takes: its milliseconds are a signed 32-bit int (about 24.8 days).
MAX_TIMER_MS = 2**31 - 1

#: How often the scheduler looks for due syncs.
CHECK_EVERY_SECONDS = 60.0

#: The first look after the window opens catches up what was missed while the app was closed.
FIRST_CHECK_SECONDS = 10.0

#: One due integration's outcome: its name and the run's result, or why it could not run.
Outcome = tuple[str, SyncResult | Exception]


def timer_interval_ms(seconds: float) -> int:
    """``seconds`` as a QTimer interval: at least 1 ms, at most Qt's int32 limit (never overflowing)."""
    if seconds != seconds:  # NaN
        raise ValueError("a timer interval must be a number of seconds")
    return int(min(max(seconds * 1000.0, 1.0), float(MAX_TIMER_MS)))


class SyncScheduler(QObject):
    """Runs ``workspace.sync.run_due(trigger=SCHEDULED)`` every minute while the window is open.

    What is due comes from the last successful runs in the store, so a sync missed while the app was closed is
    caught up once by the first check. A check while the previous batch still runs starts nothing new.

    Attributes:
        timer: the repeating minute timer.
        first_check: the single-shot timer of the first check after :meth:`start`.

    Signals:
        batch_started(list): the names of the integrations about to sync, one after another (the first at once).
        sync_started(str): the integration whose sync of the batch starts now (those before it are done).
        batch_finished(list): one ``(name, SyncResult | Exception)`` per integration that was due.
        check_failed(str): a sentence saying why the due syncs could not be worked out.
    """

    batch_started = Signal(list)
    sync_started = Signal(str)
    batch_finished = Signal(list)
    check_failed = Signal(str)

    def __init__(
        self,
        sync: SyncService,
        tasks: BackgroundTasks,
        *,
        every_seconds: float = CHECK_EVERY_SECONDS,
        first_check_seconds: float = FIRST_CHECK_SECONDS,
        workflows: SocialWorkflows | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._sync = sync
        self._tasks = tasks
        # The hourly push runs here too, so that it runs with the local API turned off; its mark in the store
        # lets only one runner (this, the API's workflows, ``serve``, ``sync --due``) take each hour.
        self._workflows = workflows
        self._hourly: asyncio.Task[object] | None = None
        self._batch: asyncio.Task[list[Outcome]] | None = None
        #: Set by :meth:`stop` (auto-sync paused, the window closed): a batch running starts no further sync.
        self._stopped = False
        self.timer = QTimer(self)
        self.timer.setObjectName("syncSchedulerTimer")
        self.timer.setInterval(timer_interval_ms(every_seconds))
        self.timer.timeout.connect(self.check_due)
        self.first_check = QTimer(self)
        self.first_check.setSingleShot(True)
        self.first_check.setInterval(timer_interval_ms(first_check_seconds))
        self.first_check.timeout.connect(self.check_due)

    def start(self) -> None:
        """Start checking: once shortly, then every minute."""
        self._stopped = False
        self.first_check.start()
        self.timer.start()
        logger.info("sync scheduler started (every %d s)", self.timer.interval() // 1000)

    def stop(self) -> None:
        """Stop the timers; a batch already running finishes the sync it is in and starts no other (it is cancelled
        with the window's other tasks when the window closes)."""
        self._stopped = True
        self.first_check.stop()
        self.timer.stop()
        logger.info("sync scheduler stopped")

    @property
    def active(self) -> bool:
        """Whether the timers run."""
        return self.timer.isActive()

    @property
    def running(self) -> bool:
        """Whether a batch of scheduled syncs is running."""
        return self._batch is not None and not self._batch.done()

    def check_due(self) -> asyncio.Task[list[Outcome]] | None:
        """Start the scheduled syncs that are due and return their task.

        Returns:
            the batch's task (the running one, when a batch still runs), or ``None`` when nothing is due.
        """
        self.check_hourly()
        if self._batch is not None and not self._batch.done():
            logger.debug("scheduled syncs still running; this check waits for the next one")
            return self._batch
        try:
            due = self._sync.due()
        except Exception as exc:  # the store cannot be read: say so, try again next minute
            logger.warning("cannot work out the due syncs: %s", exc)
            self.check_failed.emit(f"Scheduled syncs could not be checked: {exc}")
            return None
        if not due:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("scheduled syncs are due but the app's event loop is not running")
            return None
        names = list(dict.fromkeys(item.integration.name for item in due))
        logger.info("scheduled syncs due: %s", ", ".join(names))
        self.batch_started.emit(names)
        self._batch = self._tasks.start(self._run_due(), name="scheduled syncs")
        return self._batch

    def check_hourly(self) -> asyncio.Task[object] | None:
        """Start the hourly push of conversation contacts and the daily rescore when one is due; its task, or
        ``None`` when not started."""
        if self._workflows is None:
            return None
        if self._hourly is not None and not self._hourly.done():
            return self._hourly
        try:
            if not self._workflows.periodic_due():
                return None
            asyncio.get_running_loop()
        except RuntimeError:
            return None  # no loop: the next check, once the app's loop runs
        except Exception as exc:  # the store cannot be read: the next check tries again
            logger.warning("cannot tell whether the hourly contact push is due: %s", exc)
            return None
        self._hourly = self._tasks.start(self._run_hourly(self._workflows), name="hourly contact push")
        return self._hourly

    @staticmethod
    async def _run_hourly(workflows: SocialWorkflows) -> object:
        try:
            return await workflows.run_periodic_if_due()
        except Exception as exc:  # per-integration failures are in the outcomes; this is anything else
            logger.warning("the hourly push of conversation contacts stopped: %s", exc)
            return exc

    async def _run_due(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            outcomes = await self._sync.run_due(trigger=SyncTrigger.SCHEDULED, on_start=self.sync_started.emit,
                                                keep_going=lambda: not self._stopped)
        except Exception as exc:  # run_due contains per-integration failures; this is anything else
            logger.warning("scheduled syncs stopped: %s", exc)
            outcomes = [("scheduled syncs", exc)]
        finally:
            self.batch_finished.emit(outcomes)
        return outcomes
