"""Keeping the run history for as long as the marketer chose: pruning older runs at start-up and after syncs."""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_desktop.app.preferences import HistoryRetention, PreferencesService
from crm_desktop.app.text import plural
from crm_desktop.store.database import Database
from crm_desktop.store.history_store import PruneCounts, RunHistoryStore, SpaceReport
from crm_desktop.store.models import utcnow

logger = logging.getLogger(__name__)

#: What a retention limit means, as Settings and the README say it.
RETENTION_MEANING = (
    "Runs older than this are deleted with their record log and their field changes (the History of each person "
    "they changed): they can no longer be undone or retried. The Sync Monitor's charts keep their hourly figures. "
    "Kept whatever their age: runs still running, with open conflicts or CRM writes that still need them, and "
    "each integration's last sync."
)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when it is shorter)."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def days_before(moment: datetime, days: int) -> datetime:
    """``days`` days before ``moment``."""
    return moment - timedelta(days=days)


@dataclass(frozen=True)
class PruneOutcome:
    """What one prune deleted, from which moment, and what giving the space back did.

    Attributes:
        older_than: runs that started before this were pruned.
        counts: what was deleted (and how many old runs were kept).
        space: what giving the freed space back to the disk did (``None``: nothing to give back, or PostgreSQL).
    """

    older_than: datetime
    counts: PruneCounts
    space: SpaceReport | None = None


def counts_text(counts: PruneCounts) -> str:
    """``812 runs (120,400 record log lines, 33,000 field changes)``."""
    return (f"{plural(counts.runs, 'run')} ({plural(counts.record_log, 'record log line')}, "
            f"{plural(counts.field_changes, 'field change')})")


def kept_text(counts: PruneCounts) -> str:
    """Why some old runs stay, or ``""`` when none does."""
    if not counts.kept:
        return ""
    return (f"{plural(counts.kept, 'older run')} kept: still running, with open conflicts or CRM writes that still "
            "need them, an integration's last sync, or the undo of a run kept")


class HistoryRetentionService:
    """Prunes the run history as the workspace's setting says (nothing while it says forever), or by a limit given.

    Attributes:
        store: the run history in the store.
    """

    def __init__(self, database: Database, preferences: PreferencesService,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = RunHistoryStore(database)
        self._preferences = preferences
        self._clock = clock

    def retention(self) -> HistoryRetention:
        return self._preferences.get().history_retention

    def limit(self) -> datetime | None:
        """Runs that started before this are pruned; ``None`` while the history is kept forever."""
        months = self.retention().months
        return None if months is None else months_before(self._clock(), months)

    def prune_by_setting(self) -> PruneOutcome | None:
        """Prune what the setting no longer keeps and give the space back; ``None`` when it keeps everything.

        Raises:
            StoreUnavailableError: when the store does not answer (what was deleted before stays deleted).
        """
        older_than = self.limit()
        if older_than is None:
            return None
        return self.prune(older_than)

    def count(self, older_than: datetime) -> PruneCounts:
        """What :meth:`prune` would delete now."""
        return self.store.count(older_than)

    def prune(self, older_than: datetime) -> PruneOutcome:
        """Delete the runs that started before ``older_than`` (but those kept), then give the space back."""
        counts = self.store.prune(older_than)
        if counts.runs:
            logger.info("run history: pruned %s older than %s", counts_text(counts), older_than.isoformat())
        return PruneOutcome(older_than, counts, self.store.give_space_back())


__all__ = ["RETENTION_MEANING", "HistoryRetentionService", "PruneCounts", "PruneOutcome", "SpaceReport", "counts_text",
           "days_before", "kept_text", "months_before"]
