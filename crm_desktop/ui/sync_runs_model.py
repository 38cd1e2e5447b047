"""Table models of the Sync Monitor: the run history (paged with fetchMore), one run's per-record log and errors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, Qt
from PySide6.QtGui import QBrush

from crm_desktop.app.sync_monitor import ErrorGroup
from crm_desktop.app.sync_service import SyncRecordLogRow, SyncRunRow, SyncTrigger
from crm_desktop.app.text import led_by_record
from crm_desktop.ui.table_model import NUMBER_ALIGNMENT, ModelIndex, RowsTableModel, TableColumn
from crm_desktop.ui.theme import text_colour
from crm_desktop.ui.wording import (
    ERROR_CATEGORY_NAMES,
    OUTCOME_NAMES,
    RUN_DIRECTION_NAMES,
    RUN_STATUS_NAMES,
    TRIGGER_NAMES,
    duration_text,
    local_time,
    named,
    short_time,
)

logger = logging.getLogger(__name__)

#: Loads the newest runs, at most ``limit`` of them, newest first.
RunsLoader = Callable[[int], Sequence[SyncRunRow]]
#: The integrations' names by id (a removed integration's runs go with it).
NamesLoader = Callable[[], dict[int, str]]
#: Loads the newest runs older than a run id, at most ``limit`` of them, newest first: ``(before, limit)``.
OlderRunsLoader = Callable[[int, int], Sequence[SyncRunRow]]
#: Reads the runs started after a run id, and the given unfinished runs as they stand now.
ChangedRunsLoader = Callable[[int, list[int]], Sequence[SyncRunRow]]

#: Each run status's colour as the light theme shows it (:func:`text_colour` gives it in the theme on show).
_STATUS_COLOURS = {
    "succeeded": "#15803d",
    "partial": "#b45309",
    "failed": "#b91c1c",
    "cancelled": "#64748b",
    "offline": "#b45309",
    "running": "#1d4ed8",
}
_MUTED = "#64748b"
_FAILED = "#b91c1c"


class RunColumn(TableColumn):
    """The columns of the run history, in order."""

    STARTED = "Started"
    INTEGRATION = "Integration"
    TRIGGER = "Trigger"
    DIRECTION = "Direction"
    STATUS = "Status"
    CREATED = "Created"
    UPDATED = "Updated"
    UNCHANGED = "Unchanged"
    FAILED = "Failed"
    CONFLICTS = "Conflicts"
    API_CALLS = "API calls"
    DURATION = "Duration"


_COUNT_ATTRIBUTES: dict[RunColumn, str] = {
    RunColumn.CREATED: "created",
    RunColumn.UPDATED: "updated",
    RunColumn.UNCHANGED: "unchanged",
    RunColumn.FAILED: "failed",
    RunColumn.CONFLICTS: "conflicts",
    RunColumn.API_CALLS: "api_calls",
}


def run_status(run: SyncRunRow) -> str:
    """The run's status value (``running``, ``succeeded``...)."""
    return str(getattr(run.status, "value", run.status))


def run_seconds(run: SyncRunRow) -> float | None:
    """How long a finished run took; ``None`` while it runs."""
    if run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def _run_shown_as(run: SyncRunRow) -> tuple[object, ...]:
    """What the table shows of a run: a re-read run with the same values needs no repaint."""
    return (run_status(run), run.finished_at, *(getattr(run, name) for name in _COUNT_ATTRIBUTES.values()))


class SyncRunsTableModel(RowsTableModel[SyncRunRow, RunColumn]):
    """Sync runs, newest first, with named columns (:class:`RunColumn`); older runs arrive page by page.

    ``RunRole`` on any cell gives the row's run. The model reads through two callables, so it is tested
    without a view and without Qt's item views deciding when to fetch.

    Attributes:
        page_size: how many runs each fetch adds.
    """

    RunRole = Qt.ItemDataRole.UserRole + 1
    columns = RunColumn

    def __init__(
        self, load_runs: RunsLoader, load_names: NamesLoader, page_size: int = 50, parent: QObject | None = None,
        *, load_changed: ChangedRunsLoader | None = None, load_older: OlderRunsLoader | None = None,
    ) -> None:
        super().__init__(parent)
        self._load_changed = load_changed
        self._load_older = load_older
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._load_runs = load_runs
        self._load_names = load_names
        self.page_size = page_size
        self._names: dict[int, str] = {}
        self._more = False

    # -- loading

    def refresh(self) -> None:
        """Re-read the runs shown so far (at least one page): new runs are inserted on top, changed ones updated.

        Rows already shown keep their place (and the view its selection) unless runs disappeared, e.g. with
        a removed integration; then the model is reset.
        """
        shown = max(self.page_size, len(self._rows))
        # Read a page beyond what is shown: room for runs started since, and to know whether older ones exist.
        runs = list(self._load_runs(shown + self.page_size + 1))
        self._names = self._load_names()
        old_ids = [run.id for run in self._rows]
        new_ids = [run.id for run in runs]
        if old_ids and old_ids[0] in new_ids:
            added = new_ids.index(old_ids[0])
            if new_ids[added : added + len(old_ids)] == old_ids:
                if added:
                    self.beginInsertRows(QModelIndex(), 0, added - 1)
                    self._rows[:0] = runs[:added]
                    self.endInsertRows()
                self._rows[added:] = runs[added : added + len(old_ids)]
                self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(RunColumn) - 1))
                self._more = len(runs) > len(self._rows)
                return
        self._more = len(runs) > shown
        self._show_rows(runs[:shown])

    def refresh_live(self) -> bool | None:
        """While syncs run: re-read only the runs started since the newest shown and the shown runs not finished
        yet (a small indexed read), not every run shown; falls back to :meth:`refresh` without such a reader.
        Returns whether a run appeared or ended (``None`` after a full refresh)."""
        read = self.live_reader()
        if read is None:
            self.refresh()
            return None
        return self.apply_live(read())

    def live_reader(self) -> Callable[[], list[SyncRunRow]] | None:
        """What :meth:`refresh_live` reads, as a call that touches only the store (safe on a worker thread); its
        result goes to :meth:`apply_live`. ``None`` without a reader of changed runs."""
        if self._load_changed is None:
            return None
        if not self._rows:
            load_runs, first_page = self._load_runs, self.page_size + 1
            return lambda: list(load_runs(first_page))
        load_changed = self._load_changed
        newest = self._rows[0].id
        unfinished = [run.id for run in self._rows if run.finished_at is None]
        return lambda: list(load_changed(newest, unfinished))

    def apply_live(self, changed: list[SyncRunRow]) -> bool:
        """Show runs read by a :meth:`live_reader` (newest first): new ones on top, shown ones updated. Rows shown
        since the read was asked for are not added twice. Returns whether a run appeared or ended (what the
        health lines follow)."""
        if not self._rows:
            if not changed:
                return False
            self._names = self._load_names()
            self._more = len(changed) > self.page_size
            self._show_rows(changed[: self.page_size])
            return True
        newest = self._rows[0].id
        added = [run for run in changed if run.id > newest]
        if any(run.integration_id not in self._names for run in added):
            self._names = self._load_names()
        if added:
            self.beginInsertRows(QModelIndex(), 0, len(added) - 1)
            self._rows[:0] = added
            self.endInsertRows()
        updated = {run.id: run for run in changed if run.id <= newest}
        ended = False
        for row, run in enumerate(self._rows):
            if run.id in updated and _run_shown_as(updated[run.id]) != _run_shown_as(run):
                ended |= run.finished_at is None and updated[run.id].finished_at is not None
                self._rows[row] = updated[run.id]
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(RunColumn) - 1))
        return bool(added) or ended

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008 (Qt's own signature)
        """Whether older runs exist beyond those loaded."""
        return not parent.isValid() and self._more

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        """Append the next page of older runs (read after the oldest shown, with a ``load_older``: a page costs
        the same however deep the scroll, not a read of every run above it)."""
        if parent.isValid() or not self._more:
            return
        oldest = min((run.id for run in self._rows), default=None)
        if self._load_older is not None and oldest is not None:
            runs = list(self._load_older(oldest, self.page_size + 1))
            older = runs[: self.page_size]
            self._more = len(runs) > self.page_size
        else:
            wanted = len(self._rows) + self.page_size
            runs = list(self._load_runs(wanted + 1))
            older = [run for run in runs if oldest is None or run.id < oldest][: self.page_size]
            self._more = len(runs) > wanted
        if not older:
            self._more = False
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(older) - 1)
        self._rows.extend(older)
        self.endInsertRows()
        logger.debug("loaded %d older runs (%d shown)", len(older), len(self._rows))

    # -- reading

    def run_at(self, row: int) -> SyncRunRow:
        """The run at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def row_of(self, run_id: int) -> int | None:
        """The row showing run ``run_id``, if it is loaded."""
        return self._first_row(lambda run: run.id == run_id)

    def integration_name(self, run: SyncRunRow) -> str:
        """The name of the run's integration (an import into the local store, or an edit by hand, has none)."""
        if run.integration_id is None:
            return "edit by hand" if run.trigger == SyncTrigger.EDIT else "local import"
        return self._names.get(run.integration_id, f"integration {run.integration_id}")

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles across the top, the counts' right-aligned like their cells."""
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.TextAlignmentRole and 0 <= section < len(RunColumn):
            return NUMBER_ALIGNMENT if self._columns[section] in _COUNT_ATTRIBUTES else None
        return super().headerData(section, orientation, role)

    def cell(self, run: SyncRunRow, column: RunColumn, role: int) -> Any:
        """Each cell's text, alignment, colour and tooltip; the run itself under ``RunRole``."""
        if role == self.RunRole:
            return run
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(run, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _COUNT_ATTRIBUTES:
            return NUMBER_ALIGNMENT
        if role == Qt.ItemDataRole.ForegroundRole:
            if column is RunColumn.STATUS:
                return QBrush(text_colour(_STATUS_COLOURS.get(run_status(run), _MUTED)))
            if column is RunColumn.FAILED and run.failed:
                return QBrush(text_colour(_FAILED))
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is RunColumn.STARTED:
                started, finished = local_time(run.started_at, seconds=True), local_time(run.finished_at, seconds=True)
                return f"Started {started}, finished {finished}"
            if column is RunColumn.STATUS and run.message:
                return run.message
            if column is RunColumn.INTEGRATION:
                return self.integration_name(run)
        return None

    def _display(self, run: SyncRunRow, column: RunColumn) -> str:
        match column:
            case RunColumn.STARTED:
                return short_time(run.started_at)
            case RunColumn.INTEGRATION:
                return self.integration_name(run)
            case RunColumn.TRIGGER:
                return named(TRIGGER_NAMES, run.trigger)
            case RunColumn.DIRECTION:
                return named(RUN_DIRECTION_NAMES, run.direction)
            case RunColumn.STATUS:
                return named(RUN_STATUS_NAMES, run.status)
            case RunColumn.DURATION:
                seconds = run_seconds(run)
                return "running…" if seconds is None else duration_text(seconds)
            case _:  # a count, with thousands separators as the run's summary has them
                return f"{int(getattr(run, _COUNT_ATTRIBUTES[column]) or 0):,}"


class LogColumn(TableColumn):
    """The columns of one run's record log, in order."""

    OBJECT = "Object"
    RECORD = "Record"
    OUTCOME = "Outcome"
    ERROR = "Error category"
    MESSAGE = "Message"


#: Failed records first, then conflicts and skips, then the rest: what needs a look comes first.
_OUTCOME_ORDER = {"failed": 0, "conflict": 1, "skipped": 2}

#: Reads a page of a run's log: ``(offset, limit) -> rows``.
LogPages = Callable[[int, int], Sequence[SyncRecordLogRow]]


class RecordLogTableModel(RowsTableModel[SyncRecordLogRow, LogColumn]):
    """One run's per-record outcomes, failures first, with named columns (:class:`LogColumn`)."""

    #: Log rows read at a time: a run of 100,000 records is read as the view scrolls, never whole.
    PAGE_SIZE = 500
    columns = LogColumn

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fetch: LogPages | None = None
        self._total = 0

    def show_log(self, rows: Sequence[SyncRecordLogRow]) -> None:
        """Show these log rows (failures first, then in the order they happened)."""
        ordered = sorted(rows, key=lambda r: (_OUTCOME_ORDER.get(str(r.outcome), 3), r.id or 0))
        self.beginResetModel()
        self._rows, self._fetch, self._total = ordered, None, len(ordered)
        self.endResetModel()

    def show_pages(self, fetch: LogPages, total: int) -> None:
        """Show a run's log read a page at a time: ``fetch(offset, limit)`` returns rows in display order
        (failures first), ``total`` is how many there are."""
        self.beginResetModel()
        self._fetch, self._total = fetch, total
        self._rows = list(fetch(0, self.PAGE_SIZE)) if total else []
        self.endResetModel()

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        """Whether log rows remain to be read."""
        return not parent.isValid() and self._fetch is not None and len(self._rows) < self._total

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        """Read the next page of the log."""
        if not self.canFetchMore(parent) or self._fetch is None:
            return
        page = list(self._fetch(len(self._rows), self.PAGE_SIZE))
        if not page:
            self._total = len(self._rows)
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
        self._rows.extend(page)
        self.endInsertRows()

    def clear(self) -> None:
        """Show nothing."""
        self.show_log([])

    def log_row(self, row: int) -> SyncRecordLogRow:
        """The log row at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def cell(self, row: SyncRecordLogRow, column: LogColumn, role: int) -> Any:
        """Each cell's text; failed outcomes in red; the full message as tooltip."""
        if role == Qt.ItemDataRole.DisplayRole:
            match column:
                case LogColumn.OBJECT:
                    return str(row.object).capitalize()
                case LogColumn.RECORD:
                    return row.record_key
                case LogColumn.OUTCOME:
                    return named(OUTCOME_NAMES, row.outcome)
                case LogColumn.ERROR:
                    return named(ERROR_CATEGORY_NAMES, row.error_category) if row.error_category else ""
                case LogColumn.MESSAGE:
                    return row.message or ""
        if role == Qt.ItemDataRole.ToolTipRole and column is LogColumn.MESSAGE and row.message:
            return row.message
        if role == Qt.ItemDataRole.ForegroundRole and str(row.outcome) == "failed":
            return QBrush(text_colour(_FAILED))
        return None


class ErrorColumn(TableColumn):
    """The columns of a run's error groups, in order."""

    CATEGORY = "Error"
    RECORDS = "Records"
    SAMPLE = "Sample"


def sample_text(group: ErrorGroup) -> str:
    """The sample's message, led by its record unless the message names it already."""
    return led_by_record(group.sample_record, group.sample_message)


class ErrorGroupsTableModel(RowsTableModel[ErrorGroup, ErrorColumn]):
    """A run's failed records grouped by error category: how many, and one record's message as a sample."""

    columns = ErrorColumn

    def show_groups(self, groups: Sequence[ErrorGroup]) -> None:
        self._show_rows(list(groups))

    def group(self, row: int) -> ErrorGroup:
        return self._rows[row]

    @property
    def failed(self) -> int:
        """How many records failed, all categories together."""
        return sum(group.count for group in self._rows)

    def cell(self, group: ErrorGroup, column: ErrorColumn, role: int) -> Any:
        """The category in red, the count right-aligned, the sample's message also as tooltip."""
        if role == Qt.ItemDataRole.DisplayRole:
            if column is ErrorColumn.CATEGORY:
                return named(ERROR_CATEGORY_NAMES, group.category) if group.category else "Other"
            if column is ErrorColumn.RECORDS:
                return group.count
            return sample_text(group)
        if role == Qt.ItemDataRole.ToolTipRole and column is ErrorColumn.SAMPLE:
            return sample_text(group)
        if role == Qt.ItemDataRole.TextAlignmentRole and column is ErrorColumn.RECORDS:
            return NUMBER_ALIGNMENT
        if role == Qt.ItemDataRole.ForegroundRole and column is ErrorColumn.CATEGORY:
            return QBrush(text_colour(_FAILED))
        return None
