"""The Sync Monitor panel: health per integration, syncs with a preview and progress, runs, errors, retry, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QAbstractItemModel, QItemSelection, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.app.errors import SyncAlreadyRunning
from crm_desktop.app.sync_monitor import (
    ErrorGroup,
    IntegrationHealth,
    MetricsRange,
    MetricsSeries,
    NothingToRetry,
    RetryReport,
    SyncMonitorService,
    wrote_locally,
)
from crm_desktop.app.sync_service import RunNews, SyncResult, SyncRunRow, SyncTrigger, UndoRefused
from crm_desktop.app.text import plural
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.columns import ColumnChoice
from crm_desktop.ui.scheduler import Outcome
from crm_desktop.ui.sync_health import HealthBoard
from crm_desktop.ui.sync_metrics_charts import MetricsCharts
from crm_desktop.ui.sync_preview_dialog import SyncPreviewDialog
from crm_desktop.ui.sync_runs_model import (
    ErrorColumn,
    ErrorGroupsTableModel,
    LogColumn,
    RecordLogTableModel,
    RunColumn,
    SyncRunsTableModel,
    run_seconds,
    run_status,
)
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import (
    AsksFirst,
    EmptyTableNote,
    Notice,
    PanelHeading,
    ask_where_to_save,
    column_width_for,
    hold_while_open,
    keep_rows_visible,
    record_table,
    refill_names,
    row_keys,
    scrolling_page,
    selected_row,
)
from crm_desktop.ui.wording import (
    ERROR_CATEGORY_NAMES,
    RUN_DIRECTION_NAMES,
    RUN_STATUS_NAMES,
    TRIGGER_NAMES,
    counts_text,
    duration_text,
    error_sentence,
    local_time,
    named,
    result_sentence,
)

logger = logging.getLogger(__name__)

#: How often the run table is re-read while syncs run (rows of running runs change in the store).
LIVE_REFRESH_MS = 1000
#: How often the health lines are re-read when nothing happens here (a cron sync, another desktop).
HEALTH_REFRESH_MS = 30_000
#: How often the run table looks for runs this window did not start (the local API, automatic pushes, a cron sync,
#: another desktop on a team database): one small indexed read, in a thread.
RUNS_WATCH_MS = 5000
#: Rows of the runs list and of the selected run's records shown however small the window: the page scrolls instead.
RUNS_ROWS_ALWAYS_SHOWN = 4
RECORD_ROWS_ALWAYS_SHOWN = 3

T = TypeVar("T")


class ProgressReport(Protocol):
    """What the sync engine reports while it runs."""

    integration: str
    phase: str
    done: int
    total: int


#: A run's progress text before its first report.
STARTING_TEXT = "starting…"
#: A scheduled run's progress text.
SCHEDULED_TEXT = "scheduled sync running…"
#: The progress text of an integration of a scheduled batch whose turn has not come (the batch runs one by one).
WAITING_TEXT = "waiting for “{running}”…"


def progress_text(name: str, report: ProgressReport | None) -> str:
    """``“hs”: pushing contacts, 200 of 450`` (or ``starting…`` before the first report)."""
    if report is None:
        return f"“{name}”: {STARTING_TEXT}"
    if report.total > 0:
        return f"“{name}”: {report.phase}, {report.done:,} of {report.total:,}"
    return f"“{name}”: {report.phase}"


def needs_attention(result: SyncResult) -> bool:
    """Whether a run failed or left records behind (shown in red)."""
    return str(getattr(result.status, "value", result.status)) in ("failed", "partial")


#: After an undo, how many records the notice names per reason they were kept for (the rest are counted), and how
#: many reasons it lists: an undo of a first sync keeps every record it created, hundreds of them.
KEPT_NAMED = 3
KEPT_REASONS = 4


def kept_lines(kept: list[str]) -> list[str]:
    """What an undo left as it was (``"email: reason"`` each), a line per reason naming a few records and counting
    the others: "Kept 30 records — a@x.com, b@y.com, c@z.com and 27 more: created locally by the run; kept (delete
    it by hand)"."""
    by_reason: dict[str, list[str]] = {}
    for line in kept:
        who, _, why = line.partition(": ")
        by_reason.setdefault(why or who, []).append(who if why else "")
    lines = []
    for why, records in list(by_reason.items())[:KEPT_REASONS]:
        named = [record for record in records if record][:KEPT_NAMED]
        names = ", ".join(named) + (f" and {len(records) - len(named):,} more" if len(records) > len(named) else "")
        lines.append(f"Kept {plural(len(records), 'record')}{f' — {names}' if names else ''}: {why}.")
    others = sum(len(records) for records in list(by_reason.values())[KEPT_REASONS:])
    if others:
        lines.append(f"Kept {plural(others, 'more record')} for other reasons.")
    return lines


def retry_sentence(report: RetryReport) -> str:
    """What "Retry failed" did, in one or two sentences."""
    result = report.result
    if result is None:
        return f"Nothing of run {report.run_id} was sent again."
    done = counts_text({key: result.counts.get(key, 0) for key in ("created", "updated", "unchanged")})
    failed = result.counts.get("failed", 0)
    text = (f"Retried {plural(report.retried, 'failed record')} of run {report.run_id} as run {result.run_id}: "
            + (f"{done}, {failed:,} failed again." if failed else f"{done}."))
    if report.not_local:
        text += (f" {plural(len(report.not_local), 'record')} pulled from the CRM "
                 "will be pulled again by the next sync.")
    return text


class SyncMonitorPanel(QWidget, AsksFirst):
    """Each integration's health, syncs (one or all, after a dry-run preview) with their live progress, the
    history of every run with its errors by category, retry of a run's failures, undo, and metrics over time.

    A second "Sync now" on an integration that is already syncing follows the running sync instead of starting
    another. Selecting a run shows its error groups and per-record log; a finished run can be undone after a
    confirmation. Store reads for health, errors and metrics run in a thread, never on the GUI thread.

    Attributes:
        integration_combo: the integration "Sync now" syncs.
        sync_button: syncs the chosen integration.
        sync_all_button: syncs every integration, after the preview unless "Preview first" is off.
        preview_first_check: whether "Sync all now" shows the dry-run preview first (the workspace setting).
        preview_dialog: the preview while it is open.
        health_board: one health line per integration, with its sync's progress, rate and time left.
        progress_bar, progress_label: the running syncs' progress, all together.
        notice: what the last syncs, the retry or the undo did, or why they failed.
        tabs: "Runs" and "Metrics".
        runs_model, runs_table: the run history.
        run_summary: the selected run in words.
        undo_button: undoes the selected run (after a confirmation).
        errors_model, errors_table: the selected run's failed records by error category.
        retry_button: sends the selected run's failed records again.
        export_button: writes the selected run's failed records to a CSV file.
        export_dialog: the file dialog while it is open.
        log_model, log_table: the selected run's per-record log.
        charts: the metrics charts with their range selector.
        confirm_box: the undo confirmation while it is open.
        runs_keys, errors_keys, log_keys: Enter on a run or an error group moves to its records; Enter on a record
            shows the person in People; Delete says what stays.
        live_refresh: re-reads the run table while syncs run (this panel's, and every other run of the app: the
            local API's, an automatic push, a retry, People's "Sync this one now", whose progress it shows too).
        runs_watch: looks for runs started elsewhere when no sync of this window runs.
        health_refresh: re-reads the health lines now and then.

    Signals:
        runs_finished(): after syncs or an undo finished (counts and conflicts may have changed).
        records_written(bool): right after ``runs_finished``: whether the runs created or updated local records
            (``True`` when that is not known: a run that failed or was cancelled, an undo).
        person_requested(str, str): show this record (``contact`` or ``lead``, and its email) in People.
        progress_shown(str, int, int): the progress text, records done and records in total (0 when unknown).
        status_message(str): a short note for the status bar.
        health_shown(), metrics_shown(), errors_shown(): the health lines, the charts, or the selected run's error
            groups were read and drawn.
    """

    runs_finished = Signal()
    records_written = Signal(bool)
    person_requested = Signal(str, str)
    progress_shown = Signal(str, int, int)
    status_message = Signal(str)
    health_shown = Signal()
    metrics_shown = Signal()
    errors_shown = Signal()
    #: A run's news from the sync service, shown on the GUI thread (queued when told on another).
    _news_heard = Signal(object)

    IDLE_TEXT = "No sync running."

    def __init__(
        self,
        monitor: SyncMonitorService,
        tasks: BackgroundTasks | None = None,
        parent: QWidget | None = None,
        *,
        page_size: int = 50,
    ) -> None:
        super().__init__(parent)
        self._monitor = monitor
        self._sync = monitor.sync
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._loading: set[str] = set()
        self._wanted: dict[str, tuple[Callable[[], Any], Callable[[Any], None], str]] = {}
        self._retrying: int | None = None
        self._errors_run: int | None = None
        self._preview_tasks: list[asyncio.Task[None]] = []
        self.preview_dialog: SyncPreviewDialog | None = None
        self.export_dialog: QFileDialog | None = None
        self._running: dict[str, asyncio.Task[SyncResult | None]] = {}
        self._progress: dict[str, ProgressReport | None] = {}
        #: The scheduled batch's integrations not done yet, in the order they run; the first is running.
        self._scheduled: list[str] = []
        self._notices: dict[str, tuple[str, bool]] = {}
        self._undoing: int | None = None
        self._shown_run: tuple[int, str, object] | None = None
        #: The app's runs going on, this panel's or not, by their news key: their latest news.
        self._app_runs: dict[int, RunNews] = {}

        heading = PanelHeading(
            "Sync Monitor",
            "How each integration is doing, every sync run with its errors and each record's outcome, and the "
            "figures over time.",
        )

        self.integration_combo = QComboBox()
        self.integration_combo.setMinimumWidth(120)
        self.integration_combo.setAccessibleName("Integration to sync")
        self.integration_combo.setToolTip("The integration “Sync now” syncs.")
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setProperty("primary", True)
        self.sync_all_button = QPushButton("Sync all now")
        self.sync_all_button.setToolTip("Sync every integration (Ctrl+R), after a preview of what would change.")
        self.preview_first_check = QCheckBox("Preview first")
        self.preview_first_check.setToolTip("Show what “Sync all now” would change, and ask, before it syncs.")
        self.preview_first_check.setChecked(self._monitor.preview.asks_first())
        controls = QHBoxLayout()
        controls.addWidget(self.integration_combo)
        controls.addWidget(self.sync_button)
        controls.addWidget(self.sync_all_button)
        controls.addWidget(self.preview_first_check)
        controls.addStretch(1)

        health_box = QGroupBox("Health")
        self.health_board = HealthBoard()
        # A narrow window scrolls the health lines sideways rather than squeezing or clipping them.
        self.health_scroll = QScrollArea()
        self.health_scroll.setWidget(self.health_board)
        self.health_scroll.setWidgetResizable(True)
        self.health_scroll.setFrameShape(QFrame.Shape.NoFrame)
        # No Tab stop of its own: frameless and without a name, it drew no focus and a screen reader read nothing.
        self.health_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        health_layout = QVBoxLayout(health_box)
        health_layout.setContentsMargins(8, 4, 8, 4)
        health_layout.addWidget(self.health_scroll)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setFixedWidth(180)
        self.progress_label = QLabel(self.IDLE_TEXT)
        self.progress_label.setObjectName("progressLabel")
        self.progress_label.setWordWrap(True)  # several syncs at once make a long line
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar)
        progress_row.addWidget(self.progress_label, 1)

        self.notice = Notice()

        self.runs_model = SyncRunsTableModel(self._load_runs, self._integration_names, page_size, self,
                                             load_changed=self._sync.runs_changed)
        self.runs_table = self._table(self.runs_model, "Sync runs", "runsTable")
        self.runs_empty_note = EmptyTableNote(self.runs_table, (
            "No sync has run yet. Press Sync now for the integration picked above, or Sync all now (Ctrl+R) for "
            "every one."))
        runs_header = self.runs_table.horizontalHeader()
        runs_header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        runs_header.setSectionResizeMode(RunColumn.INTEGRATION, QHeaderView.ResizeMode.Stretch)
        runs_header.setMinimumSectionSize(50)
        self.runs_columns = ColumnChoice(self.runs_table, "sync-runs",
                                         always_shown=(RunColumn.STARTED, RunColumn.INTEGRATION))

        details_box = QGroupBox("Selected run")
        self.run_summary = QLabel("Select a run to see each record's outcome.")
        self.run_summary.setObjectName("runSummary")
        self.run_summary.setWordWrap(True)
        self.run_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.undo_button = QPushButton("Undo run…")
        self.undo_button.setToolTip("Put back the values this run changed, here and in the CRM.")
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.run_summary, 1)
        self.log_model = RecordLogTableModel(self)
        self.log_table = self._table(self.log_model, "Selected run's records", "recordLogTable")
        self.log_table.horizontalHeader().setStretchLastSection(True)
        self.errors_model = ErrorGroupsTableModel(self)
        self.errors_table = self._table(self.errors_model, "Errors of the selected run by category",
                                        "errorGroupsTable")
        self.errors_table.horizontalHeader().setStretchLastSection(True)
        self.errors_table.setColumnWidth(ErrorColumn.CATEGORY, 120)
        self.errors_table.setColumnWidth(ErrorColumn.RECORDS, 80)
        # At least one category in full however tight the page; three before it scrolls (there are eight).
        one_row = keep_rows_visible(self.errors_table, 1)
        self.errors_table.setMaximumHeight(one_row + 2 * self.errors_table.verticalHeader().defaultSectionSize())
        self.errors_table.hide()
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.setToolTip("Send just this run's failed records to the CRM again.")
        self.export_button = QPushButton("Export errors…")
        self.export_button.setToolTip("Save this run's failed records as a CSV file.")
        for button in (self.retry_button, self.export_button, self.undo_button):
            summary_row.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        # A splitter hands its room out by size hints: without a floor the runs list shrank to one row.
        keep_rows_visible(self.runs_table, RUNS_ROWS_ALWAYS_SHOWN)
        keep_rows_visible(self.log_table, RECORD_ROWS_ALWAYS_SHOWN)
        details_layout = QVBoxLayout(details_box)
        details_layout.setSpacing(6)
        details_layout.addLayout(summary_row)
        details_layout.addWidget(self.errors_table)
        details_layout.addWidget(self.log_table, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.runs_table)
        splitter.addWidget(details_box)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)

        self.charts = MetricsCharts()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(splitter, "Runs")
        self.tabs.addTab(self.charts, "Metrics")

        # The window's smallest size is smaller than health, runs and details together: scroll then, never clip.
        layout = scrolling_page(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        layout.addWidget(heading)
        layout.addLayout(controls)
        layout.addWidget(health_box)
        layout.addLayout(progress_row)
        layout.addWidget(self.notice)
        layout.addWidget(self.tabs, 1)

        self.live_refresh = QTimer(self)
        self.live_refresh.setInterval(LIVE_REFRESH_MS)
        self.live_refresh.timeout.connect(self._refresh_live_runs)

        self.health_refresh = QTimer(self)
        self.health_refresh.setInterval(HEALTH_REFRESH_MS)
        self.health_refresh.timeout.connect(self.refresh_health)
        self.health_refresh.start()

        self.runs_watch = QTimer(self)
        self.runs_watch.setInterval(RUNS_WATCH_MS)
        self.runs_watch.timeout.connect(self.look_for_other_runs)
        self.runs_watch.start()

        self.sync_button.clicked.connect(self._sync_chosen)
        self.sync_all_button.clicked.connect(self.sync_all)
        self.preview_first_check.toggled.connect(self._monitor.preview.set_asks_first)
        self.undo_button.clicked.connect(self.confirm_undo)
        self.retry_button.clicked.connect(self.retry_selected)
        self.export_button.clicked.connect(self.choose_export_file)
        self.runs_table.selectionModel().selectionChanged.connect(self._run_selection_changed)
        say = self.status_message.emit
        self.runs_keys = row_keys(self.runs_table, on_open=lambda _row: self.open_run_records(), say=say,
                                  cannot_delete="Runs stay in the history; “Undo run…” puts back what a run changed.")
        self.errors_keys = row_keys(self.errors_table, on_open=lambda _row: self.open_run_records(), say=say,
                                    cannot_delete="Errors stay with their run; “Retry failed” sends them again.")
        self.log_keys = row_keys(self.log_table, on_open=self.open_record_person, say=say,
                                 cannot_delete="A run's record log is its history; nothing is deleted from it.")
        self.charts.range_changed.connect(lambda _value: self.refresh_metrics())
        self.tabs.currentChanged.connect(lambda _index: self._tab_changed())
        # Every run the app starts, wherever from, is shown as it goes: the local API's, automatic pushes, retries.
        self._news_heard.connect(self._show_news)
        sync = self._sync
        watcher = self._news_heard.emit
        sync.add_run_watcher(watcher)
        self.destroyed.connect(lambda _object=None: sync.remove_run_watcher(watcher))

        self.reload_integrations()
        self.refresh_runs()
        self._fit_run_columns()
        self._show_selected_run()
        self._fit_health_height()
        self.refresh_health()

    @staticmethod
    def _table(model: QAbstractItemModel, accessible_name: str, object_name: str) -> QTableView:
        table = record_table(model, accessible_name, object_name)
        table.horizontalHeader().setMinimumSectionSize(50)
        return table

    #: The widest text each column can show, so columns fit before any run exists and never clip later.
    WIDEST_TEXTS: dict[RunColumn, tuple[str, ...]] = {
        RunColumn.STARTED: ("Today 00:00", "30 Sep 00:00", "2026-12-31"),
        RunColumn.TRIGGER: tuple(TRIGGER_NAMES.values()),
        RunColumn.DIRECTION: tuple(RUN_DIRECTION_NAMES.values()),
        RunColumn.STATUS: tuple(RUN_STATUS_NAMES.values()),
        RunColumn.DURATION: ("running…", "59 min 59 s", "23 h 59 min"),
    }
    #: Counts up to this many digits fit their column.
    COUNT_DIGITS = 6

    def _fit_run_columns(self) -> None:
        # Every column fits the widest text it can show; the integration column takes what is left
        # (its tooltip has the full name).
        table = self.runs_table
        table.ensurePolished()  # measure with the stylesheet's font
        for column in RunColumn:
            if column is RunColumn.INTEGRATION:
                continue
            texts = self.WIDEST_TEXTS.get(column, ("9" * self.COUNT_DIGITS,))
            table.setColumnWidth(column, column_width_for(table, texts, column))
        for log_column, width in {LogColumn.OBJECT: 70, LogColumn.RECORD: 240, LogColumn.OUTCOME: 90,
                                  LogColumn.ERROR: 120}.items():
            self.log_table.setColumnWidth(log_column, width)

    # -- reading the store

    def _load_runs(self, limit: int) -> list[SyncRunRow]:
        return self._sync.runs(limit=limit)

    def _integration_names(self) -> dict[int, str]:
        return {i.id: i.name for i in self._sync.integrations.list() if i.id is not None}

    def reload_integrations(self) -> None:
        """Re-read the integrations for the combo, keeping the chosen one, and the health lines (one added, renamed
        or removed shows there at once, not at the next periodic re-read)."""
        refill_names(self.integration_combo, [integration.name for integration in self._sync.integrations.list()])
        # Until there is an integration, the buttons the note would point to cannot sync anything.
        self.runs_empty_note.label.setText(
            "No sync has run yet. Press Sync now for the integration picked above, or Sync all now (Ctrl+R) for "
            "every one." if self.integration_combo.count()
            else "No sync has run yet. Add an integration in Integrations first, then sync it from here.")
        self._update_buttons()
        self.refresh_health()

    def _refresh_live_runs(self) -> None:
        """The live timer's tick: only new runs and the running ones are re-read (the selection stays)."""
        selected = self.selected_run()
        started_or_ended = self.runs_model.refresh_live()
        self._select_again(selected)
        if started_or_ended:  # e.g. an automatic push beside this window's sync: its line says "syncing" no more
            self.refresh_health()

    def look_for_other_runs(self) -> None:
        """Show runs started elsewhere and how the running ones stand (the live refresh does it while this window
        runs a sync); the health lines are re-read when one appears or ends."""
        if self.live_refresh.isActive():
            return
        read = self.runs_model.live_reader()
        if read is not None:
            self._load("other runs", read, self._show_other_runs, "Reading the sync runs")

    def _show_other_runs(self, changed: list[SyncRunRow]) -> None:
        selected = self.selected_run()
        if not self.runs_model.apply_live(changed):
            return
        self._select_again(selected)
        self._show_selected_run()
        self.refresh_health()

    def refresh_runs(self) -> None:
        """Re-read the run history (new runs appear on top; the selection stays)."""
        selected = self.selected_run()
        self.runs_model.refresh()
        self._select_again(selected)
        self._show_selected_run()

    def _select_again(self, run: SyncRunRow | None) -> None:
        """Keep ``run`` selected after the table changed under it (rows inserted above move it down)."""
        row = self.runs_model.row_of(run.id) if run is not None else None
        if row is not None and self.selected_row() != row:
            self.runs_table.selectRow(row)

    # -- reading the store off the GUI thread

    def _load(self, key: str, read: Callable[[], T], show: Callable[[T], None], what: str) -> None:
        """Run ``read`` (store work) in a thread and give its result to ``show`` on the GUI thread.

        Asked again while a read of the same ``key`` runs, the newest ask is read once that one ends (the older
        result is dropped), so a burst of refreshes costs two reads, not one per ask.
        """
        self._wanted[key] = (read, show, what)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a panel drawn without the app's qasync loop (a screenshot): read here
            del self._wanted[key]
            show(read())
            return
        if key not in self._loading:
            self._loading.add(key)
            self._tasks.start(self._read_in_thread(key), name=f"read {key}")

    async def _read_in_thread(self, key: str) -> None:
        try:
            while key in self._wanted:
                wanted = self._wanted[key]
                read, show, what = wanted
                try:
                    result: Any = await asyncio.to_thread(read)
                except Exception as exc:  # a read that fails says so in the panel, never crashes it
                    if not isValid(self):
                        return
                    self.notice.say(error_sentence(what, exc), "error")
                    if self._wanted.get(key) is wanted:
                        del self._wanted[key]
                    continue
                if not isValid(self):
                    return
                if self._wanted.get(key) is wanted:  # nothing newer was asked meanwhile
                    del self._wanted[key]
                    show(result)
        finally:
            self._loading.discard(key)

    def refresh_health(self) -> None:
        """Re-read every integration's health line (in a thread)."""
        self._load("health", self._monitor.health, self._show_health, "Reading the integrations' health")

    def _show_health(self, lines: list[IntegrationHealth]) -> None:
        self.health_board.show_health(lines)
        for name in self.running_integrations:
            report = self._progress.get(name)
            self.health_board.show_progress(name, None if report is None else
                                            (report.phase, report.done, report.total), busy=STARTING_TEXT)
        for name, other in self._other_runs().items():
            self.health_board.show_progress(name, None if other is None else (other.phase, other.done, other.total),
                                            busy=SCHEDULED_TEXT if name in self._scheduled else STARTING_TEXT)
        for name in self._scheduled:
            if name not in self.running_integrations and name not in self._other_runs():
                self.health_board.show_progress(name, None, busy=self._scheduled_text(name))
        self._fit_health_height()
        self.health_shown.emit()

    def _show_line_progress(self, name: str, report: tuple[str, int, int] | None, *, busy: str = "") -> None:
        """Show an integration's progress line; the health box grows or shrinks with it."""
        if self.health_board.show_progress(name, report, busy=busy):
            self._fit_health_height()

    #: The health box shows this many lines before it scrolls.
    HEALTH_LINES_SHOWN = 4

    def _fit_health_height(self) -> None:
        board = self.health_board
        board.adjustSize()
        rows = len(board.rows)
        if rows <= self.HEALTH_LINES_SHOWN:
            wanted = board.sizeHint().height()
        else:  # the headings and the first lines; the rest scroll
            per_line = board.sizeHint().height() / (rows + 1)
            wanted = round(per_line * (self.HEALTH_LINES_SHOWN + 1))
        scrollbar = self.health_scroll.horizontalScrollBar().sizeHint().height()
        self.health_scroll.setFixedHeight(wanted + scrollbar + 2)

    def refresh_metrics(self) -> None:
        """Re-read the charts' figures for the chosen range (in a thread)."""
        span = self.charts.chosen_range
        self._load("metrics", lambda: self._monitor.metrics(span), self._show_metrics, "Reading the metrics")

    def _show_metrics(self, series: MetricsSeries) -> None:
        self.charts.show_series(series)
        self.metrics_shown.emit()

    def _tab_changed(self) -> None:
        if self.tabs.currentWidget() is self.charts:
            self.refresh_metrics()

    def show_metrics_tab(self, span: MetricsRange | None = None) -> None:
        """Show the Metrics tab (for ``span`` when given)."""
        if span is not None:
            self.charts.range_combo.setCurrentIndex(self.charts.range_combo.findData(span.value))
        self.tabs.setCurrentWidget(self.charts)

    # -- syncing

    @property
    def running_integrations(self) -> list[str]:
        """The integrations this panel is syncing now."""
        return [name for name, task in self._running.items() if not task.done()]

    def _other_runs(self) -> dict[str, ProgressReport | None]:
        """The integrations the app syncs now in runs this panel did not start (the local API's, automatic pushes,
        retries, People's, the schedule's), each with its latest figures (``None`` before the first)."""
        own = self.running_integrations
        others: dict[str, ProgressReport | None] = {}
        for news in self._app_runs.values():
            name = news.integration.name
            if name not in own:
                others[name] = news.progress or others.get(name)
        return others

    @property
    def syncing_integrations(self) -> list[str]:
        """Every integration the app syncs now, this panel's runs and the others."""
        return list(dict.fromkeys([*self.running_integrations, *self._other_runs()]))

    def _show_news(self, news: RunNews) -> None:
        """A run of the app started, reported progress or ended: show it as a run of this panel's is shown."""
        if not isValid(self):
            return
        name = news.integration.name
        if news.ended:
            if self._app_runs.pop(news.key, None) is None and name in self.running_integrations:
                return
            if name not in self.running_integrations and name not in self._other_runs():
                self._show_line_progress(name, None)
            if name not in self.running_integrations:
                self._other_run_ended()
            return
        before = self._app_runs.get(news.key)
        self._app_runs[news.key] = news
        if name in self.running_integrations:
            return  # this panel's own run: its task shows it
        if before is None:
            self._show_line_progress(name, None, busy=SCHEDULED_TEXT if name in self._scheduled else STARTING_TEXT)
            self._update_buttons()
            self.refresh_health()
            if not self.live_refresh.isActive():
                self.live_refresh.start()
        if news.run_id is not None and (before is None or before.run_id is None):
            self._refresh_live_runs()  # its row was just recorded: shown running at once
        report = news.progress
        if report is not None and (before is None or report is not before.progress):
            self._show_line_progress(name, (report.phase, report.done, report.total))
        self._show_progress()

    def _other_run_ended(self) -> None:
        """A run this panel did not start ended: its row's figures, the health line and the charts follow."""
        if not self.syncing_integrations and not self._scheduled and self._undoing is None:
            self.live_refresh.stop()
        self._show_progress()
        self._update_buttons()
        self._refresh_live_runs()
        self._show_selected_run()
        self.refresh_health()
        if self.tabs.currentWidget() is self.charts:
            self.refresh_metrics()

    def _sync_chosen(self) -> None:
        self.sync_now()

    def sync_now(self, name: str | None = None) -> asyncio.Task[SyncResult | None] | None:
        """Sync one integration (the combo's by default); a second call while it runs follows the running sync."""
        name = name or self.integration_combo.currentText()
        if not name:
            return None
        running = self._running.get(name)
        if running is not None and not running.done():
            self._say(name, f"“{name}” is already syncing; following that run.", error=False)
            return running
        if not self.running_integrations and not self._scheduled:
            self._notices.clear()
        self._progress[name] = None
        task = self._tasks.start(self._run_sync(name), name=f"sync {name}")
        self._running[name] = task
        # Cleaning up in a done callback also covers a task cancelled before it ever ran (the window closing).
        task.add_done_callback(lambda finished: self._sync_done(name, finished))
        self._syncs_changed()
        return task

    def sync_all(self) -> SyncPreviewDialog | None:
        """"Sync all now" (the button, Ctrl+R): first the dry-run preview with Proceed / Cancel, unless "Preview
        first" is off; returns the preview while it is open."""
        names = [integration.name for integration in self._sync.integrations.list()]
        if not names:
            self.notice.say("There is no integration to sync yet. Add one in Integrations.", "info")
            return None
        if not self.preview_first_check.isChecked():
            self.sync_all_now()
            return None
        if self.preview_dialog is not None:
            self.preview_dialog.raise_()
            return self.preview_dialog
        dialog = SyncPreviewDialog(names, self)
        dialog.proceed_chosen.connect(self._preview_proceeded)
        dialog.finished.connect(lambda _result: self._preview_closed())
        hold_while_open(self, "preview_dialog", dialog)
        self._preview_tasks = [
            self._tasks.start(self._preview_one(dialog, name), name=f"preview {name}") for name in names
        ]
        dialog.open()
        return dialog

    async def _preview_one(self, dialog: SyncPreviewDialog, name: str) -> None:
        try:
            result = await self._sync.sync(name, dry_run=True)
        except Exception as exc:  # the preview says why, the marketer decides
            if isValid(dialog):
                dialog.add_failure(name, error_sentence(f"Preview of “{name}”", exc))
            return
        if isValid(dialog):
            dialog.add_plan(name, result)

    def _preview_proceeded(self, dont_ask_again: bool) -> None:
        if dont_ask_again:
            self.preview_first_check.setChecked(False)  # saved by its toggled signal
        self.sync_all_now()

    def _preview_closed(self) -> None:
        for task in self._preview_tasks:
            task.cancel()  # Cancel while plans are still being worked out stops asking the CRMs
        self._preview_tasks = []

    def sync_all_now(self) -> list[asyncio.Task[SyncResult | None]]:
        """Sync every integration now, without a preview (those already syncing are followed, not started twice)."""
        tasks = []
        for integration in self._sync.integrations.list():
            task = self.sync_now(integration.name)
            if task is not None:
                tasks.append(task)
        if not tasks:
            self.notice.say("There is no integration to sync yet. Add one in Integrations.", "info")
        return tasks

    async def _run_sync(self, name: str) -> SyncResult | None:
        try:
            result = await self._sync.sync(
                name, trigger=SyncTrigger.MANUAL, progress=lambda report: self._progress_reported(name, report)
            )
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self._say(name, error_sentence(f"Sync of “{name}”", exc), error=True)
            return None
        self._say(name, result_sentence(name, result), error=needs_attention(result))
        self.status_message.emit(f"Sync of “{name}” finished")
        return result

    def _sync_done(self, name: str, task: asyncio.Task[SyncResult | None]) -> None:
        if not isValid(self):
            return  # the window is gone; nothing left to show
        if self._running.get(name) is task:
            del self._running[name]
            self._progress.pop(name, None)
            self._show_line_progress(name, None)
        result = None if task.cancelled() or task.exception() is not None else task.result()
        self._runs_ended(select=result.run_id if result is not None else None,
                         wrote=result is None or wrote_locally(result))

    def _progress_reported(self, name: str, report: ProgressReport) -> None:
        if not isValid(self):
            return  # a run the closed window started, finishing on its own
        first = self._progress.get(name) is None
        self._progress[name] = report
        if first:
            self.refresh_runs()  # the run's row exists now: show it while it runs
        self._show_line_progress(name, (report.phase, report.done, report.total))
        self._show_progress()

    def _say(self, key: str, text: str, *, error: bool) -> None:
        self._notices[key] = (text, error)
        lines = [line for line, _ in self._notices.values()]
        self.notice.say("\n".join(lines), "error" if any(e for _, e in self._notices.values()) else "ok")

    def _say_alone(self, key: str, text: str, *, error: bool) -> None:
        """Say how a retry or an undo ended in place of every earlier sentence."""
        self._notices.clear()
        self._say(key, text, error=error)

    def _syncs_changed(self) -> None:
        self._show_progress()
        self._update_buttons()
        self.refresh_health()
        if (self.syncing_integrations or self._scheduled) and not self.live_refresh.isActive():
            self.live_refresh.start()
        self.refresh_runs()

    def _runs_ended(self, select: int | None = None, *, wrote: bool = True) -> None:
        if not self.syncing_integrations and not self._scheduled and self._undoing is None:
            self.live_refresh.stop()
        self._show_progress()
        self._update_buttons()
        self.refresh_runs()
        if select is not None and (row := self.runs_model.row_of(select)) is not None:
            self.runs_table.selectRow(row)
        self.refresh_health()
        if self.tabs.currentWidget() is self.charts:
            self.refresh_metrics()
        self.runs_finished.emit()
        self.records_written.emit(wrote)

    def _show_progress(self) -> None:
        own = self.running_integrations
        others = self._other_runs()
        # A scheduled run with figures shows them; before its first, it says it is the schedule's.
        scheduled = [name for name in self._scheduled if name not in own and others.get(name) is None]
        names = own + [name for name in others if name not in scheduled]
        if not names and not scheduled:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            self.progress_label.setText(self.IDLE_TEXT)
            self.progress_shown.emit(self.IDLE_TEXT, 0, 0)
            return
        reports = [self._progress.get(name) for name in own] + [others[name] for name in names[len(own):]]
        parts = [progress_text(name, report) for name, report in zip(names, reports, strict=True)]
        parts += [f"“{name}”: {self._scheduled_text(name)}" for name in scheduled]
        text = "   ·   ".join(parts)
        self.progress_label.setText(text)
        totals = [r.total for r in reports if r is not None]
        if scheduled or len(totals) < len(reports) or not all(totals):
            self.progress_bar.setRange(0, 0)  # busy: no total known yet
            self.progress_shown.emit(text, 0, 0)
            return
        done = sum(min(r.done, r.total) for r in reports if r is not None)
        self.progress_bar.setRange(0, sum(totals))
        self.progress_bar.setValue(done)
        self.progress_shown.emit(text, done, sum(totals))

    def _update_buttons(self) -> None:
        has_integrations = self.integration_combo.count() > 0
        self.sync_button.setEnabled(has_integrations)
        self.sync_all_button.setEnabled(has_integrations)
        self._update_undo_button()

    # -- scheduled syncs (from the window's scheduler)

    def scheduled_started(self, names: list[str]) -> None:
        """Show that the scheduler started these integrations' syncs."""
        if not self.running_integrations and not self._scheduled:
            self._notices.clear()
        self._scheduled = list(dict.fromkeys(names))
        self._show_scheduled_lines()
        self._syncs_changed()

    def scheduled_sync_started(self, name: str) -> None:
        """Show that the scheduled batch's sync of ``name`` starts: those before it are done, the rest wait."""
        if name not in self._scheduled:
            return
        done = self._scheduled[: self._scheduled.index(name)]
        self._scheduled = self._scheduled[len(done):]
        for finished in done:
            if finished not in self.running_integrations:
                self._show_line_progress(finished, None)
        self._show_scheduled_lines()
        self._syncs_changed()

    def _show_scheduled_lines(self) -> None:
        others = self._other_runs()
        for name in self._scheduled:
            if name not in self.running_integrations and others.get(name) is None:
                self._show_line_progress(name, None, busy=self._scheduled_text(name))

    def _scheduled_text(self, name: str) -> str:
        """``scheduled sync running…`` for the batch's running integration, ``waiting for “hs”…`` for the others."""
        running = self._scheduled[0]
        return SCHEDULED_TEXT if name == running else WAITING_TEXT.format(running=running)

    def scheduled_finished(self, outcomes: list[Outcome]) -> None:
        """Show what the scheduled syncs did."""
        for name in self._scheduled:
            if name not in self.syncing_integrations:
                self._show_line_progress(name, None)
        self._scheduled = []
        for name, outcome in outcomes:
            if isinstance(outcome, SyncAlreadyRunning):
                # Under way elsewhere (cron's `sync --due`, another desktop): nothing failed, the next check looks.
                reason = str(outcome).rstrip(".")
                self._say(name, f"Scheduled: {reason}; the scheduled sync of “{name}” waits for the next check.",
                          error=False)
            elif isinstance(outcome, Exception):
                self._say(name, "Scheduled: " + error_sentence(f"Sync of “{name}”", outcome), error=True)
            else:
                self._say(name, "Scheduled: " + result_sentence(name, outcome), error=needs_attention(outcome))
        self._runs_ended(wrote=any(isinstance(outcome, Exception) or wrote_locally(outcome)
                                   for _, outcome in outcomes))

    # -- the selected run

    def selected_row(self) -> int | None:
        """The selected row of the run table, if any."""
        return selected_row(self.runs_table)

    def selected_run(self) -> SyncRunRow | None:
        """The selected run, if any."""
        row = self.selected_row()
        return self.runs_model.run_at(row) if row is not None else None

    def select_run(self, run_id: int) -> bool:
        """Select a run by its id (if it is loaded)."""
        row = self.runs_model.row_of(run_id)
        if row is None:
            return False
        self.runs_table.selectRow(row)
        return True

    def _run_selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_selected_run()

    def _show_selected_run(self) -> None:
        run = self.selected_run()
        if run is None:
            self._shown_run = None
            self.run_summary.setText("Select a run to see each record's outcome.")
            self.log_model.clear()
            self._show_errors(None, [])
            self._update_undo_button()
            return
        # The live refresh re-reads the table every second; re-read a run's log only when the run changed.
        shown = (run.id, run_status(run), run.finished_at)
        if shown == self._shown_run:
            self._update_undo_button()
            return
        run_id = run.id
        try:
            run = self._sync.store.get_run(run_id)
            errors = self._sync.run_errors(run_id)
            logged = self._sync.run_log_size(run_id)
        except Exception as exc:  # e.g. the run went with its integration
            self._shown_run = None
            self.run_summary.setText(error_sentence("Reading the run", exc))
            self.log_model.clear()
            self._show_errors(None, [])
            self._update_undo_button()
            return
        self._shown_run = shown
        self.run_summary.setText(self.describe_run(run, Counter({str(c): n for c, n in errors.items()})))
        self.log_model.show_pages(
            lambda offset, limit: self._sync.run_log(run_id, offset=offset, limit=limit, failures_first=True), logged
        )
        if self._errors_run != run_id:
            self._show_errors(None, [])
        self._load("errors", lambda: self._monitor.error_groups(run_id),
                   lambda groups: self._show_errors(run_id, groups), "Reading the run's errors")
        self._update_undo_button()

    def open_run_records(self) -> bool:
        """Enter on a run or an error group: put the keyboard on the selected run's records (failures first)."""
        if self.log_model.rowCount() == 0:
            self.status_message.emit("This run has no record outcomes to show.")
            return False
        self.log_table.setFocus(Qt.FocusReason.ShortcutFocusReason)
        if not self.log_table.selectionModel().hasSelection():
            self.log_table.selectRow(0)
        return True

    def open_record_person(self, row: int) -> bool:
        """Enter on a record's outcome: show that contact or lead in People."""
        logged = self.log_model.log_row(row)
        self.person_requested.emit(str(RecordObject(logged.object).value), logged.record_key)
        return True

    # -- the selected run's errors: retry and export

    def _show_errors(self, run_id: int | None, groups: list[ErrorGroup]) -> None:
        selected = self.selected_run()
        if run_id is not None and (selected is None or selected.id != run_id):
            return  # the selection moved on while the errors were read
        self._errors_run = run_id
        self.errors_model.show_groups(groups)
        self.errors_table.setVisible(bool(groups))  # room for the record log when nothing failed
        self._update_error_buttons()
        if run_id is not None:
            self.errors_shown.emit()

    def _update_error_buttons(self) -> None:
        run = self.selected_run()
        failed = self.errors_model.failed if run is not None and self._errors_run == run.id else 0
        name = self.runs_model.integration_name(run) if run is not None else ""
        self.export_button.setEnabled(failed > 0)
        self.retry_button.setEnabled(
            failed > 0
            and run is not None
            and run.integration_id is not None
            and run_status(run) != "running"
            and self._retrying is None
            and name not in self.syncing_integrations
            and name not in self._scheduled
        )

    def retry_selected(self) -> asyncio.Task[None] | None:
        """"Retry failed": send the selected run's failed records again."""
        run = self.selected_run()
        if run is None or not self.retry_button.isEnabled():
            return None
        return self.retry(run.id)

    def retry(self, run_id: int) -> asyncio.Task[None] | None:
        """Send just the failed records of run ``run_id`` again, as a new push run (no confirmation)."""
        if self._retrying is not None:
            return None
        self._retrying = run_id
        self._update_error_buttons()
        self.notice.say(f"Sending the failed records of run {run_id} again…", "info")
        return self._tasks.start(self._run_retry(run_id), name=f"retry run {run_id}")

    async def _run_retry(self, run_id: int) -> None:
        select: int | None = None
        wrote = True
        try:
            report = await self._monitor.retry_failed(run_id)
        except NothingToRetry as exc:
            self._say_alone("retry", f"{exc}.", error=True)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self._say_alone("retry", error_sentence(f"Retry of run {run_id}", exc), error=True)
        else:
            result = report.result
            select = result.run_id if result is not None else None
            wrote = result is not None and wrote_locally(result)
            self._say_alone("retry", retry_sentence(report), error=result is None or needs_attention(result))
            self.status_message.emit(f"Retried the failed records of run {run_id}")
        finally:
            self._retrying = None
            if isValid(self):
                self._runs_ended(select=select, wrote=wrote)

    def choose_export_file(self) -> QFileDialog | None:
        """"Export errors…": ask where to save the selected run's failed records (window-modal; returns at once)."""
        run = self.selected_run()
        if run is None or not self.export_button.isEnabled():
            return None
        run_id = run.id
        return ask_where_to_save(self, "export_dialog", "Export errors", f"sync-run-{run_id}-errors.csv",
                                 "CSV files (*.csv)", lambda path: self.export_errors(run_id, path))

    def export_errors(self, run_id: int, path: Path) -> None:
        """Write run ``run_id``'s failed records to ``path`` (in a thread) and say how many."""
        self._load(f"export {path}", lambda: self._monitor.export_errors(run_id, path),
                   lambda count: self._exported(run_id, path, count), f"Exporting the errors of run {run_id}")

    def _exported(self, run_id: int, path: Path, count: int) -> None:
        self.notice.say(f"Exported {plural(count, 'failed record')} of run {run_id} to {path}.", "ok")
        self.status_message.emit(f"Exported the errors of run {run_id}")

    def describe_run(self, run: SyncRunRow, error_categories: Counter[str]) -> str:
        """The selected run in words: what, when, how it went, and failures grouped by cause."""
        name = self.runs_model.integration_name(run)
        direction = named(RUN_DIRECTION_NAMES, run.direction).lower()
        trigger = named(TRIGGER_NAMES, run.trigger)
        seconds = run_seconds(run)
        took = "still running" if seconds is None else f"took {duration_text(seconds)}"
        if run.direction is SyncDirection.UNDO:
            what = "Undo"
        elif run.integration_id is None:  # a file import or an edit by hand: the local store alone, no sync
            what = trigger
        else:
            what = f"{trigger} {direction} sync"
        counts = {"created": run.created, "updated": run.updated, "unchanged": run.unchanged, "failed": run.failed,
                  "conflicts": run.conflicts, "decided": run.conflicts_decided}
        if any(counts.values()) or str(getattr(run.status, "value", run.status)) in ("succeeded", "partial"):
            done = counts_text(counts).capitalize()
        else:
            # Cancelled, failed or still running: records it sent before it stopped are not counted yet, so
            # "nothing to change" would be untrue (the next run recognises them).
            done = "No record counted yet" if seconds is None else "No record counted before it stopped"
        lines = [
            f"Run {run.id} of “{name}” — {named(RUN_STATUS_NAMES, run.status).lower()}",
            f"{what}, started {local_time(run.started_at, seconds=True)}, {took}.",
            done + f"; {plural(run.api_calls, 'API call')}.",
        ]
        if error_categories:
            groups = error_categories
            lines.append(
                "Errors by cause: "
                + ", ".join(f"{named(ERROR_CATEGORY_NAMES, c)} {n}" for c, n in groups.most_common())
                + "."
            )
        if run.message:
            lines.append(f"Note: {run.message}.")
        return "\n".join(lines)

    # -- undo

    def _update_undo_button(self) -> None:
        run = self.selected_run()
        name = self.runs_model.integration_name(run) if run is not None else ""
        self.undo_button.setEnabled(
            run is not None
            and run_status(run) != "running"
            and run.direction is not SyncDirection.UNDO
            and self._undoing is None
            and name not in self.syncing_integrations
            and name not in self._scheduled
        )
        self._update_error_buttons()

    def confirm_undo(self) -> QMessageBox | None:
        """Ask before undoing the selected run (window-modal, returns at once)."""
        run = self.selected_run()
        if run is None or not self.undo_button.isEnabled():
            return None
        name = self.runs_model.integration_name(run)
        run_id = run.id
        return self.ask_first(
            "Undo run", f"Undo run {run_id} of “{name}” ({local_time(run.started_at)})?", "Undo run",
            lambda: self.undo(run_id),
            detail="The values this run changed are put back, here and in the CRM. Records it created are kept; "
            "the undo is recorded as a run of its own.",
        )

    def undo(self, run_id: int, *, force: bool = False) -> asyncio.Task[None] | None:
        """Undo run ``run_id`` (no confirmation; :meth:`confirm_undo` asks first).

        ``force`` overwrites values changed after the run (asked for in :meth:`_ask_to_overwrite`).
        """
        if self._undoing is not None:
            return None
        self._undoing = run_id
        self._update_undo_button()
        self.runs_table.setCursor(Qt.CursorShape.BusyCursor)
        self.notice.say(f"Undoing run {run_id}…", "info")
        return self._tasks.start(self._run_undo(run_id, force), name=f"undo run {run_id}")

    def _ask_to_overwrite(self, run_id: int, refused: UndoRefused) -> QMessageBox:
        """Values the run wrote changed after it: ask before putting the older ones back over them."""
        return self.ask_first(
            "Undo run",
            f"{plural(len(refused.changed), 'value')} changed after run {run_id}. Put the values from before "
            "the run back over them?",
            "Overwrite them", lambda: self.undo(run_id, force=True),
            detail="\n".join(str(change) for change in refused.changed), warning=True,
        )

    async def _run_undo(self, run_id: int, force: bool = False) -> None:
        select: int | None = None
        try:
            report = await self._sync.undo(run_id, force=force)
        except UndoRefused as exc:
            if exc.changed:
                self._say_alone("undo", f"Run {run_id} was not undone: {plural(len(exc.changed), 'value')} changed "
                                "after it.", error=True)
                self._ask_to_overwrite(run_id, exc)
            else:
                self._say_alone("undo", f"{exc}.", error=True)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self._say_alone("undo", error_sentence(f"Undo of run {run_id}", exc), error=True)
        else:
            select = report.run_id
            text = (
                f"Undid run {run_id}: {plural(report.restored_local, 'value')} put back here, "
                f"{report.restored_crm} in the CRM"
            )
            if report.aligned_crm:
                text += f" ({report.aligned_crm} more set there to match)"
            text += "."
            if report.failed:
                text += (f" {plural(report.failed, 'record')} the CRM did not take back: undo run {run_id} again "
                         "to put back the rest.")
            if report.kept:
                text = "\n".join([text, *kept_lines(report.kept)])
            self._say_alone("undo", text, error=bool(report.failed))
            self.status_message.emit(f"Undid run {run_id}")
        finally:
            self._undoing = None
            if isValid(self):
                self.runs_table.setCursor(Qt.CursorShape.ArrowCursor)
                self._runs_ended(select=select)
