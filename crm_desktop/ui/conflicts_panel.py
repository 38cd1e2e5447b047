"""The Conflicts panel: fields changed both here and in the CRM, resolved by keeping one value or typing another."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.record_files import plain_reason
from crm_desktop.app.sync_service import ConflictOutcome, ConflictRow, ResolutionStatus, SyncService
from crm_desktop.app.text import plural
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.ui.columns import ColumnChoice
from crm_desktop.ui.table_model import RowsTableModel, TableColumn
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import (
    AsksFirst,
    EmptyTableNote,
    Notice,
    PanelHeading,
    record_table,
    refit_on_new_look,
    row_keys,
    scrolling_page,
    selected_row,
    value_rows,
)
from crm_desktop.ui.wording import error_sentence, local_time, short_time

logger = logging.getLogger(__name__)


#: How a blank value is shown (a blank is a value too: the other side may have cleared the field).
BLANK = "(blank)"

#: The local value of a conflict whose local record was deleted since the conflict was raised.
GONE = "(deleted here since)"

#: Why "Keep local value" is off for such a conflict.
GONE_REASON = ("This record was deleted here after the conflict was raised, so there is no local value to keep, nor "
               "a record for a typed value. “Keep CRM value” closes the conflict: the CRM keeps its value and nothing "
               "is written.")

_MUTED = QColor("#94a3b8")

#: What the empty table says once the list is read, and while it is being read.
EMPTY = ("Nothing waits for you. When a field changes both here and in a CRM, and its conflict rule in Field "
         "Mapping is “Ask me”, the sync leaves it here for you to decide.")
LOADING = "Loading the open conflicts…"
#: What the empty table says when the last read of the list failed (the notice above it says why).
UNREAD = "The open conflicts could not be read (see the message above); they are read again after the next sync."


class ConflictColumn(TableColumn):
    """The columns of the conflicts table, in order."""

    INTEGRATION = "Integration"
    RECORD = "Record"
    FIELD = "Field"
    LOCAL_VALUE = "Local value"
    CRM_VALUE = "CRM value"
    BASE_VALUE = "Value at last sync"
    LOCAL_CHANGED = "Changed here"
    CRM_CHANGED = "Changed in CRM"


_VALUE_COLUMNS = {ConflictColumn.LOCAL_VALUE, ConflictColumn.CRM_VALUE, ConflictColumn.BASE_VALUE}


def record_text(conflict: ConflictRow) -> str:
    """The conflicting record: its email, marked when it is a lead."""
    lead = str(conflict.object) == "lead"
    return f"{conflict.record_key} (lead)" if lead else conflict.record_key


def field_label(conflict: ConflictRow) -> str:
    """The conflicting field as the marketer knows it ("Company", not ``company``)."""
    return local_field_label(conflict.object, conflict.field)


def quoted(value: str | None) -> str:
    """A value as the details show it: in quotes, or ``(blank)``."""
    return f"“{value}”" if value else BLANK


class ConflictDetails(QGroupBox):
    """The selected conflict in full: both values with when each side changed, and the last synced value.

    Attributes:
        values: the value label of each row, by its caption.
    """

    CAPTIONS = ("Record", "Field", "Here", "In the CRM", "At last sync")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Selected conflict", parent)
        self._form = QFormLayout(self)
        self._form.setHorizontalSpacing(24)
        self.values = value_rows(self._form, self.CAPTIONS)

    def add_actions(self, buttons: QHBoxLayout) -> None:
        """Put the decision buttons under the values."""
        self._form.addRow(buttons)

    def show_many(self, conflicts: list[ConflictRow]) -> None:
        """Say how many conflicts are selected, on which records and fields, and what the decisions do to them."""
        self.setTitle(f"{len(conflicts):,} selected conflicts")
        records = list(dict.fromkeys(record_text(c) for c in conflicts))
        fields = list(dict.fromkeys(field_label(c) for c in conflicts))
        texts = {
            "Record": f"{len(conflicts):,} conflicts selected, on {plural(len(records), 'record')}: "
            + ", ".join(records[:3]) + (", …" if len(records) > 3 else ""),
            "Field": ", ".join(fields[:5]) + (", …" if len(fields) > 5 else ""),
            "Here": "“Keep local value” keeps each record's value now, in the CRM too",
            "In the CRM": "“Keep CRM value” keeps each CRM's value, here too",
            "At last sync": "“Use this value…” is for one conflict at a time",
        }
        for caption, text in texts.items():
            self.values[caption].setText(text)

    def show_conflict(self, conflict: ConflictRow | None, integration_name: str,
                      local_now: str | None, *, local_gone: bool = False) -> None:
        """Show one conflict, or say that none is selected; ``local_now`` is the field as the record holds it now
        (see :meth:`ConflictsTableModel.local_value`), which “Keep local value” keeps, shown with the value recorded
        when the conflict was raised when that one differs; ``local_gone`` says the record was deleted since."""
        self.setTitle("Selected conflict")
        if conflict is None:
            for value in self.values.values():
                value.clear()
            self.values["Record"].setText("Select a conflict above.")
            return
        local_at, crm_at = conflict.local_changed_at, conflict.crm_changed_at
        newer = ""
        if local_at is not None and crm_at is not None and local_at != crm_at:
            newer = "here" if local_at > crm_at else "crm"
        texts = {
            "Record": f"{record_text(conflict)} in “{integration_name}”",
            "Field": field_label(conflict),
            "Here": f"Deleted here since the conflict was raised (it held {quoted(conflict.local_value)} then, changed "
            f"{local_time(local_at, seconds=True)}): there is no local value to keep; “Keep CRM value” closes the "
            "conflict"
            if local_gone else
            f"{quoted(conflict.local_value)}, changed {local_time(local_at, seconds=True)}"
            + (" (the newer change)" if newer == "here" else "")
            if local_now == conflict.local_value else
            f"{quoted(local_now)} now (what “Keep local value” keeps"
            + (", clearing the field in the CRM" if not local_now else "")
            + f"); {quoted(conflict.local_value)} when the conflict was raised, changed "
            f"{local_time(local_at, seconds=True)}",
            "In the CRM": f"{quoted(conflict.crm_value)}, changed {local_time(crm_at, seconds=True)}"
            + (" (the newer change)" if newer == "crm" else ""),
            "At last sync": quoted(conflict.base_value),
        }
        for caption, text in texts.items():
            self.values[caption].setText(text)


class ConflictsTableModel(RowsTableModel[ConflictRow, ConflictColumn]):
    """Open conflicts, oldest first, with named columns (:class:`ConflictColumn`); usable without a view.

    ``ConflictRole`` on any cell gives the row's conflict.
    """

    ConflictRole = Qt.ItemDataRole.UserRole + 1
    columns = ConflictColumn

    def __init__(
        self,
        load_conflicts: Callable[[], list[ConflictRow]],
        load_names: Callable[[], dict[int, str]],
        parent: QObject | None = None,
        *,
        load_local_now: Callable[[list[ConflictRow]], dict[int, str | None]] | None = None,
    ) -> None:
        super().__init__(parent)
        self._load_conflicts = load_conflicts
        self._load_names = load_names
        self._load_local_now = load_local_now
        self._names: dict[int, str] = {}
        self._local_now: dict[int, str | None] = {}
        self._gone: set[int] = set()
        #: Every open conflict read; ``_rows`` are those the filter lets through.
        self._all: list[ConflictRow] = []
        self._filter_text = ""
        self._filter_integration: int | None = None
        self._filter_field: str | None = None

    def refresh(self) -> None:
        """Re-read the open conflicts, and the local value each record holds now (one read for them all)."""
        self.show_read(*self.read())

    def read(self) -> tuple[list[ConflictRow], dict[int, str], dict[int, str | None]]:
        """The open conflicts, the integrations' names and the local values now, as :meth:`show_read` takes them;
        touches no Qt object, so it may run on another thread."""
        rows = self._load_conflicts()
        names = self._load_names()
        local_now = self._load_local_now(rows) if self._load_local_now is not None else {}
        return rows, names, local_now

    def show_read(self, rows: list[ConflictRow], names: dict[int, str], local_now: dict[int, str | None]) -> None:
        """Show what :meth:`read` read."""
        self.beginResetModel()
        self._all = rows
        self._names = names
        self._local_now = local_now
        # Read, and left out of the values now: their local record was deleted since the conflict was raised.
        self._gone = {c.id for c in rows if c.id not in local_now} if self._load_local_now is not None else set()
        self._rows = [c for c in rows if self._passes(c)]
        self.endResetModel()

    def all_conflicts(self) -> list[ConflictRow]:
        """Every open conflict read, those the filter hides too."""
        return list(self._all)

    @property
    def total(self) -> int:
        """How many open conflicts were read, the filter aside."""
        return len(self._all)

    def integration_names(self) -> dict[int, str]:
        """The integrations with an open conflict, by id, by name."""
        ids = {c.integration_id for c in self._all}
        return dict(sorted(((i, self._names.get(i, f"integration {i}")) for i in ids), key=lambda item: item[1]))

    def field_labels(self) -> dict[str, str]:
        """The fields with an open conflict (``company``), with their labels ("Company"), by label."""
        labels = {c.field: field_label(c) for c in self._all}
        return dict(sorted(labels.items(), key=lambda item: item[1].casefold()))

    def set_filter(self, text: str = "", integration_id: int | None = None, field: str | None = None) -> None:
        """Show only the conflicts whose record, field or values hold ``text`` (any case), of one integration and
        on one field when given."""
        self._filter_text = text.strip().casefold()
        self._filter_integration = integration_id
        self._filter_field = field
        self.beginResetModel()
        self._rows = [c for c in self._all if self._passes(c)]
        self.endResetModel()

    def _passes(self, conflict: ConflictRow) -> bool:
        if self._filter_integration is not None and conflict.integration_id != self._filter_integration:
            return False
        if self._filter_field is not None and conflict.field != self._filter_field:
            return False
        if not self._filter_text:
            return True
        words = (record_text(conflict), field_label(conflict), conflict.field, self.local_value(conflict),
                 conflict.local_value, conflict.crm_value, conflict.base_value,
                 self._names.get(conflict.integration_id, ""))
        return any(self._filter_text in word.casefold() for word in words if word)

    def remove_conflicts(self, conflict_ids: set[int]) -> None:
        """Take conflicts resolved here or elsewhere out of the table, without reading the others again; the
        rows left keep their selection."""
        if not conflict_ids:
            return
        self._all = [c for c in self._all if c.id not in conflict_ids]
        doomed = [row for row, conflict in enumerate(self._rows) if conflict.id in conflict_ids]
        # Contiguous runs, last first, so the rows above each run keep their numbers.
        runs: list[list[int]] = []
        for row in doomed:
            if runs and runs[-1][1] == row - 1:
                runs[-1][1] = row
            else:
                runs.append([row, row])
        for first, last in reversed(runs):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first:last + 1]
            self.endRemoveRows()

    def update_local_now(self, values: dict[int, str | None], asked: set[int]) -> None:
        """The local values now of the ``asked`` conflicts (read again after a resolution changed their records);
        an asked one missing from ``values`` has lost its record."""
        self._local_now.update(values)
        self._gone |= asked - set(values)
        self._gone -= set(values)
        rows = [row for row, conflict in enumerate(self._rows) if conflict.id in asked]
        if rows:
            self.dataChanged.emit(self.index(min(rows), 0), self.index(max(rows), self.columnCount() - 1))

    def local_gone(self, conflict: ConflictRow) -> bool:
        """Whether the conflict's local record was deleted since it was raised (no local value to keep)."""
        return conflict.id in self._gone

    def local_value(self, conflict: ConflictRow) -> str | None:
        """The conflict's field as its local record holds it now (what "Keep local value" keeps): the value
        recorded when the conflict was raised may have changed since (a sibling conflict resolved, an edit); ``None``
        when the record is gone (:meth:`local_gone`)."""
        if self.local_gone(conflict):
            return None
        return self._local_now.get(conflict.id, conflict.local_value)

    def conflict_at(self, row: int) -> ConflictRow:
        """The conflict at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def rows_of(self, conflict_ids: set[int]) -> list[int]:
        """The rows showing these conflicts (those open and shown), top to bottom; one pass, however many."""
        return [row for row, conflict in enumerate(self._rows) if conflict.id in conflict_ids]

    def row_of(self, conflict_id: int) -> int | None:
        """The row showing conflict ``conflict_id``, if it is open."""
        return self._first_row(lambda conflict: conflict.id == conflict_id)

    def cell(self, conflict: ConflictRow, column: ConflictColumn, role: int) -> Any:
        """Each cell's text; blanks greyed; full values in the tooltip."""
        if role == self.ConflictRole:
            return conflict
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(conflict, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (ConflictColumn.INTEGRATION, ConflictColumn.RECORD):
                return self._display(conflict, column)
            if column is ConflictColumn.LOCAL_VALUE and self.local_gone(conflict):
                return (f"Deleted here since the conflict was raised; {conflict.local_value or BLANK} when it was "
                        "raised")
            if column is ConflictColumn.LOCAL_VALUE and self.local_value(conflict) != conflict.local_value:
                return (f"{self.local_value(conflict) or BLANK} now; {conflict.local_value or BLANK} when the "
                        "conflict was raised")
            if column in _VALUE_COLUMNS:
                return self._value(conflict, column) or BLANK
            if column is ConflictColumn.LOCAL_CHANGED:
                return local_time(conflict.local_changed_at, seconds=True)
            if column is ConflictColumn.CRM_CHANGED:
                return local_time(conflict.crm_changed_at, seconds=True)
        if role == Qt.ItemDataRole.ForegroundRole and column in _VALUE_COLUMNS:
            gone = column is ConflictColumn.LOCAL_VALUE and self.local_gone(conflict)
            if gone or not self._value(conflict, column):
                return QBrush(_MUTED)
        return None

    def _value(self, conflict: ConflictRow, column: ConflictColumn) -> str | None:
        return {
            ConflictColumn.LOCAL_VALUE: self.local_value(conflict),
            ConflictColumn.CRM_VALUE: conflict.crm_value,
            ConflictColumn.BASE_VALUE: conflict.base_value,
        }[column]

    def _display(self, conflict: ConflictRow, column: ConflictColumn) -> str:
        match column:
            case ConflictColumn.INTEGRATION:
                return self._names.get(conflict.integration_id, f"integration {conflict.integration_id}")
            case ConflictColumn.RECORD:
                return record_text(conflict)
            case ConflictColumn.FIELD:
                return field_label(conflict)
            case ConflictColumn.LOCAL_CHANGED:
                return short_time(conflict.local_changed_at)
            case ConflictColumn.CRM_CHANGED:
                return short_time(conflict.crm_changed_at)
            case ConflictColumn.LOCAL_VALUE if self.local_gone(conflict):
                return GONE
            case _:
                value = self._value(conflict, column)
                return value if value else BLANK


class ConflictsPanel(QWidget, AsksFirst):
    """Lists the fields changed on both sides since the last sync and applies the marketer's decision to both.

    Attributes:
        model, table: the open conflicts; several rows can be selected (Ctrl+click, Shift+click, Ctrl+A).
        filter_edit, integration_combo, field_combo: narrow the table by text, integration and field.
        shown_label: how many conflicts the filter shows of how many are open.
        keys: Enter moves to the selected conflict's decision buttons; Delete says conflicts are resolved instead.
        details: the selected conflict in full (or how many are selected).
        keep_crm_button, keep_local_button, use_value_button: the decisions; the first two for every selected
            conflict, the last for one.
        progress, progress_label, stop_button: a decision on many conflicts while it is written.
        notice: what the last decision did, or why it failed.
        failures: the conflicts the last decision on many left open, each with its reason.
        value_dialog: the "Use this value…" prompt while it is open.
        confirm_box: the question before a decision on many, while it is open.
        bulk_task: the decision on many under way, if any.

    Signals:
        conflicts_changed(): after a conflict was resolved (the open count changed).
        status_message(str): a short note for the status bar.
    """

    conflicts_changed = Signal()
    status_message = Signal(str)

    def __init__(self, sync: SyncService, tasks: BackgroundTasks | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._sync = sync
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._resolving: int | None = None
        self._stop: threading.Event | None = None
        self.bulk_task: asyncio.Task[None] | None = None
        self._done = self._total = 0
        self._reading: asyncio.Task[None] | None = None
        self._read_again = False
        self._read_failed = False  # the last read of the list failed: the empty table must not say "Nothing"
        self._removed_meanwhile: set[int] = set()
        self.value_dialog: QInputDialog | None = None

        heading = PanelHeading(
            "Conflicts",
            "Fields changed both here and in the CRM since the last sync, whose rule says to ask you. "
            "Keep the CRM's value, keep yours, or type the right one: it is written to both sides. Select several "
            "(Ctrl+click, Shift+click, Ctrl+A) to decide them at once.",
        )
        self.notice = Notice()
        self.failures = QListWidget()
        self.failures.setObjectName("conflictFailures")
        self.failures.setAccessibleName("Conflicts left open")
        self.failures.setWordWrap(True)
        self.failures.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.failures.hide()
        self.model = ConflictsTableModel(self._sync.conflicts, self._integration_names, self,
                                         load_local_now=self._sync.local_values_now)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by record, field or value")
        self.filter_edit.setAccessibleName("Filter conflicts")
        self.filter_edit.setClearButtonEnabled(True)
        self.integration_combo = QComboBox()
        self.integration_combo.setAccessibleName("Integration")
        self.field_combo = QComboBox()
        self.field_combo.setAccessibleName("Field")
        self.shown_label = QLabel()
        self.shown_label.setObjectName("conflictsShown")
        filters = QHBoxLayout()
        filters.setSpacing(8)
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.integration_combo)
        filters.addWidget(self.field_combo)
        filters.addWidget(self.shown_label)

        self.table = record_table(self.model, "Open conflicts", "conflictsTable", single_selection=False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.empty_note = EmptyTableNote(self.table, EMPTY)
        refit_on_new_look(self.table, self._fit_columns)
        self.column_choice = ColumnChoice(self.table, "conflicts", always_shown=(
            ConflictColumn.INTEGRATION, ConflictColumn.RECORD, ConflictColumn.FIELD))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(ConflictColumn.INTEGRATION, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(60)

        self.keep_crm_button = QPushButton("Keep CRM value")
        self.keep_local_button = QPushButton("Keep local value")
        self.use_value_button = QPushButton("Use this value…")
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.setContentsMargins(0, 6, 0, 0)
        buttons.addWidget(self.keep_crm_button)
        buttons.addWidget(self.keep_local_button)
        buttons.addWidget(self.use_value_button)
        buttons.addStretch(1)
        self.details = ConflictDetails()
        self.details.add_actions(buttons)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Conflicts resolved")
        self.progress.setTextVisible(False)
        self.progress_label = QLabel()
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the batch being written: the conflicts not begun stay open.")
        progress_row = QHBoxLayout()
        progress_row.setSpacing(8)
        progress_row.addWidget(self.progress_label)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.stop_button)
        self._progress_box = QWidget()
        self._progress_box.setLayout(progress_row)
        progress_row.setContentsMargins(0, 0, 0, 0)
        self._progress_box.hide()

        layout = scrolling_page(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(self.notice)
        layout.addWidget(self.failures)
        layout.addWidget(self._progress_box)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)

        self.keep_crm_button.clicked.connect(self.keep_crm_value)
        self.keep_local_button.clicked.connect(self.keep_local_value)
        self.use_value_button.clicked.connect(self.ask_for_value)
        self.stop_button.clicked.connect(self.stop_resolving)
        self.filter_edit.textChanged.connect(self._filter_changed)
        self.integration_combo.currentIndexChanged.connect(self._filter_changed)
        self.field_combo.currentIndexChanged.connect(self._filter_changed)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.keys = row_keys(
            self.table, on_open=lambda _row: self.open_resolution(), say=self.status_message.emit,
            cannot_delete="A conflict is resolved, not deleted: keep the CRM's value, yours, or type the right one.",
        )
        self.reload()

    def _integration_names(self) -> dict[int, str]:
        return {i.id: i.name for i in self._sync.integrations.list() if i.id is not None}

    def reload(self) -> asyncio.Task[None] | None:
        """Re-read the open conflicts, keeping the filter and the selection (or selecting the first), on a store
        thread (:meth:`reload_later`). Without a running asyncio loop (a screenshot, a script) they are read here
        and ``None`` is returned."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            chosen = {c.id for c in self.selected_conflicts()}
            try:
                self.model.refresh()
            except Exception as exc:  # the store cannot be read: say so rather than crash
                self._read_failed = True
                self._show_loading(False)
                self.notice.say(error_sentence("Reading the conflicts", exc), "error")
                return None
            self._read_failed = False
            self._show_loading(False)
            self._show_reloaded(chosen)
            return None
        return self.reload_later()

    def reload_later(self) -> asyncio.Task[None]:
        """Re-read the open conflicts on a store thread, then show them as :meth:`reload` does: 3,000 conflicts took
        most of a second to read, which froze the window when the panel was first opened, and after a sync or an
        import. Meanwhile the panel says it is loading. Asked again while a read runs, the list is read once more
        when that read ends, and only that newest read is shown."""
        if self._reading is not None and not self._reading.done():
            self._read_again = True
            return self._reading
        self._removed_meanwhile = set()
        self._show_loading(True)
        self._reading = self._tasks.start(self._read_and_show(), name="read the open conflicts")
        return self._reading

    @property
    def loading(self) -> bool:
        """Whether the open conflicts are being read (the table then says so while it is empty)."""
        return self._reading is not None and not self._reading.done()

    def _show_loading(self, loading: bool) -> None:
        """Say that the list is being read: in the table while it has no row yet, and next to the filters."""
        self.empty_note.label.setText(LOADING if loading else UNREAD if self._read_failed else EMPTY)
        self.empty_note.refresh()
        if loading:
            self.shown_label.setText("Loading…")
        else:
            self._count_shown()
        busy = loading or self.bulk_task is not None or self._resolving is not None
        self.table.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    async def _read_and_show(self) -> None:
        try:
            while True:
                self._read_again = False
                try:
                    rows, names, local_now = await asyncio.to_thread(self.model.read)
                except Exception as exc:  # the store cannot be read: say so rather than crash
                    if isValid(self):
                        self._read_failed = True
                        self.notice.say(error_sentence("Reading the conflicts", exc), "error")
                    return
                if not isValid(self):
                    return  # the panel went away while the list was read
                if not self._read_again:
                    break
            self._read_failed = False
        finally:
            if isValid(self):
                self._reading = None
                self._show_loading(False)
        # A conflict resolved here while the list was read may be in it still: it stays out.
        gone = self._removed_meanwhile
        self._removed_meanwhile = set()
        chosen = {c.id for c in self.selected_conflicts()}
        self.model.show_read([c for c in rows if c.id not in gone], names, local_now)
        self._show_reloaded(chosen)

    def _show_reloaded(self, chosen: set[int]) -> None:
        self._fill_filters()
        rows = self.model.rows_of(chosen)
        if not rows and self.model.rowCount() > 0:
            rows = [0]
        self._select_rows(rows)
        self._fit_columns()
        self._update_buttons()

    def _fill_filters(self) -> None:
        """The integration and field choices of the conflicts read, keeping the ones chosen while they are there."""
        for combo, everything, choices in (
            (self.integration_combo, "All integrations", self.model.integration_names()),
            (self.field_combo, "All fields", self.model.field_labels()),
        ):
            chosen = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, None)
            for value, name in choices.items():
                combo.addItem(name, value)
            at = combo.findData(chosen) if chosen is not None else 0
            combo.setCurrentIndex(max(at, 0))
            combo.blockSignals(False)
        self._apply_filter()

    def _filter_changed(self, *_args: object) -> None:
        chosen = {c.id for c in self.selected_conflicts()}
        self._apply_filter()
        rows = self.model.rows_of(chosen)
        self._select_rows(rows or ([0] if self.model.rowCount() else []))
        self._update_buttons()

    def _apply_filter(self) -> None:
        self.model.set_filter(self.filter_edit.text(), self.integration_combo.currentData(),
                              self.field_combo.currentData())
        self._count_shown()

    def _count_shown(self) -> None:
        shown, total = self.model.rowCount(), self.model.total
        self.shown_label.setText(f"{shown:,} of {total:,} shown" if shown != total else "")

    def _select_rows(self, rows: list[int]) -> None:
        """Select ``rows`` (and nothing else), the first of them current."""
        selection = QItemSelection()
        last = self.model.columnCount() - 1
        for row in rows:
            selection.select(self.model.index(row, 0), self.model.index(row, last))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().select(selection, flags)
        if rows:
            self.table.selectionModel().setCurrentIndex(self.model.index(min(rows), 0),
                                                        QItemSelectionModel.SelectionFlag.NoUpdate)
            self.table.scrollTo(self.model.index(min(rows), 0))

    #: The widest a column grows (full values are in the tooltips and in the details below).
    MAX_COLUMN_WIDTHS = {ConflictColumn.RECORD: 260}
    MAX_VALUE_WIDTH = 170

    #: Where the table is too narrow for every column, these give way, in this order, down to this width (their
    #: values are in full in the tooltips and in the details below), before the integration's name is cut.
    GIVE_WAY = (ConflictColumn.BASE_VALUE, ConflictColumn.RECORD, ConflictColumn.CRM_VALUE,
                ConflictColumn.LOCAL_VALUE)
    NARROWEST_GIVING_WAY = 110

    def _fit_columns(self) -> None:
        # The integration column (the same name on most rows) takes the room the fitted columns leave.
        for column in ConflictColumn:
            if column is not ConflictColumn.INTEGRATION:
                self.table.resizeColumnToContents(column)
                widest = self.MAX_COLUMN_WIDTHS.get(column, self.MAX_VALUE_WIDTH)
                self.table.setColumnWidth(column, min(self.table.columnWidth(column), widest))
        # At a laptop's width the fitted columns left it 60 px ("HubSp…"): the values give way first.
        header = self.table.horizontalHeader()
        shown = [c for c in ConflictColumn if not self.table.isColumnHidden(c)]
        name_width = max(self.table.sizeHintForColumn(ConflictColumn.INTEGRATION),
                         header.sectionSizeHint(ConflictColumn.INTEGRATION))
        excess = (sum(self.table.columnWidth(c) for c in shown if c is not ConflictColumn.INTEGRATION)
                  + name_width - self.table.viewport().width())
        for column in self.GIVE_WAY:
            if excess <= 0:
                break
            if column in shown:
                width = self.table.columnWidth(column)
                given = max(0, min(excess, width - self.NARROWEST_GIVING_WAY))
                self.table.setColumnWidth(column, width - given)
                excess -= given

    def selected_row(self) -> int:
        """The selected row (the first when several are), or -1."""
        row = selected_row(self.table)
        return -1 if row is None else row

    def selected_conflict(self) -> ConflictRow | None:
        """The selected conflict (the first when several are), if any."""
        row = self.selected_row()
        return self.model.conflict_at(row) if row >= 0 else None

    def selected_conflicts(self) -> list[ConflictRow]:
        """Every selected conflict, top to bottom."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.model.conflict_at(row) for row in rows if row < self.model.rowCount()]

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        chosen = self.selected_conflicts()
        conflict = chosen[0] if len(chosen) == 1 else None
        free = self._resolving is None and self.bulk_task is None
        if len(chosen) > 1:
            self.details.show_many(chosen)
            gone = all(self.model.local_gone(c) for c in chosen)
            self.keep_crm_button.setEnabled(free)
            self.keep_local_button.setEnabled(free and not gone)
            self.use_value_button.setEnabled(False)
            self.keep_crm_button.setToolTip(f"Keep the CRM's value in all {len(chosen):,} selected conflicts.")
            self.keep_local_button.setToolTip(
                GONE_REASON if gone else f"Keep the value each of the {len(chosen):,} records holds here now, in the "
                "CRM too (a record deleted here since is left open).")
            self.use_value_button.setToolTip("A typed value is for one conflict at a time: select just one.")
            return
        name = self.model.index(self.selected_row(), ConflictColumn.INTEGRATION).data() if conflict else ""
        gone = conflict is not None and self.model.local_gone(conflict)
        self.details.show_conflict(conflict, str(name),
                                   self.model.local_value(conflict) if conflict is not None else None,
                                   local_gone=gone)
        enabled = conflict is not None and free
        for button in (self.keep_crm_button, self.keep_local_button, self.use_value_button):
            button.setEnabled(enabled)
        # Nothing local to keep, nor a record for a typed value: off, their tooltips say why; "Keep CRM value"
        # closes the conflict.
        self.keep_local_button.setEnabled(enabled and not gone)
        self.use_value_button.setEnabled(enabled and not gone)
        self.keep_crm_button.setToolTip("")
        self.keep_local_button.setToolTip(GONE_REASON if gone else
                                          "Keep the value this record holds here now, in the CRM too.")
        self.use_value_button.setToolTip(GONE_REASON if gone else "")

    def open_resolution(self) -> bool:
        """Enter: put the keyboard on the selected conflict's first decision ("Keep CRM value")."""
        if not self.keep_crm_button.isEnabled():
            self.status_message.emit("This conflict is being resolved; wait for the answer.")
            return False
        self.keep_crm_button.setFocus(Qt.FocusReason.ShortcutFocusReason)
        return True

    # -- decisions

    def keep_crm_value(self) -> asyncio.Task[None] | None:
        """Keep the CRM's value of the selected conflicts on both sides (asked first when there are several)."""
        if len(self.selected_conflicts()) > 1:
            self._confirm_many("crm")
            return None
        return self._resolve(take="crm")

    def keep_local_value(self) -> asyncio.Task[None] | None:
        """Keep the local value of the selected conflicts on both sides: the value each record holds when the
        decision is written (the one shown as “Here”), not the one recorded when the conflict was raised."""
        if len(self.selected_conflicts()) > 1:
            self._confirm_many("local")
            return None
        conflict = self.selected_conflict()
        if conflict is not None and self.model.local_gone(conflict):
            self.notice.say(GONE_REASON, "error")
            return None
        return self._resolve(take="local")

    def _confirm_many(self, take: str) -> None:
        """Ask once, naming how many, before one decision is written for every selected conflict."""
        chosen = self.selected_conflicts()
        if self._resolving is not None or self.bulk_task is not None or not chosen:
            return
        count = f"{len(chosen):,} conflicts"
        if take == "crm":
            question = f"Keep the CRM's value in {count}?"
            detail = ("Each record here takes its CRM's value; the CRMs are written only where they hold another "
                      "form of it.")
            action = "Keep CRM values"
        else:
            question = f"Keep the local value in {count}?"
            detail = ("Each CRM takes the value its record holds here now (a blank clears the CRM's field), written "
                      "in the CRM's batches.")
            action = "Keep local values"
        ids = [c.id for c in chosen]
        self.ask_first(f"Resolve {count}", question, action, lambda: self._start_many(ids, take),
                       detail=detail + " A conflict another window resolves meanwhile is left as it was decided there.")

    def _start_many(self, conflict_ids: list[int], take: str) -> asyncio.Task[None] | None:
        if self._resolving is not None or self.bulk_task is not None:
            return None
        self._stop = threading.Event()
        self.failures.clear()
        self.failures.hide()
        self.notice.clear_notice()
        self.progress.setRange(0, len(conflict_ids))
        self.progress.setValue(0)
        self._done = 0
        self._total = len(conflict_ids)
        self.progress_label.setText(f"Resolving 0 of {len(conflict_ids):,}…")
        self.stop_button.setEnabled(True)
        self._progress_box.show()
        self.table.setCursor(Qt.CursorShape.BusyCursor)
        task = self._tasks.start(self._apply_many(conflict_ids, take), name=f"resolve {len(conflict_ids)} conflicts")
        self.bulk_task = task
        self._update_buttons()
        return task

    def stop_resolving(self) -> None:
        """Stop a decision on many after the batch being written; the conflicts not begun stay open."""
        if self._stop is not None and not self._stop.is_set():
            self._stop.set()
            self.stop_button.setEnabled(False)
            self.progress_label.setText(f"Stopping after the batch being written ({self._done:,} of "
                                        f"{self._total:,} done)…")

    def _told(self, outcome: ConflictOutcome) -> None:
        self._done += 1
        if self._stop is None or not self._stop.is_set():
            self.progress_label.setText(f"Resolving {self._done:,} of {self._total:,}…")
        self.progress.setValue(self._done)

    async def _apply_many(self, conflict_ids: list[int], take: str) -> None:
        outcomes: list[ConflictOutcome] | None = None
        try:
            outcomes = await self._sync.resolve_many(conflict_ids, take=take, progress=self._told, stop=self._stop)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.notice.say(error_sentence(f"Resolving {len(conflict_ids):,} conflicts", exc)
                            + " The list is read again to show what is still open.", "error")
        finally:
            self.bulk_task = None
            self._stop = None
            self._progress_box.hide()
            self.table.setCursor(Qt.CursorShape.ArrowCursor)
        if outcomes is None:
            self.reload_later()
        else:
            await self._show_outcomes(outcomes, take)
        self.conflicts_changed.emit()

    async def _show_outcomes(self, outcomes: list[ConflictOutcome], take: str) -> None:
        """Take the resolved conflicts out of the table, list those left open with their reasons, and select them."""
        closed = {o.conflict.id for o in outcomes
                  if o.status in (ResolutionStatus.RESOLVED, ResolutionStatus.ALREADY_RESOLVED)}
        resolved = [o for o in outcomes if o.status is ResolutionStatus.RESOLVED]
        elsewhere = [o for o in outcomes if o.status is ResolutionStatus.ALREADY_RESOLVED]
        left = [o for o in outcomes if o.conflict.id not in closed]
        self._remove(closed, [o.conflict for o in resolved])
        kept = "the CRM's values" if take == "crm" else "the local values"
        text = f"Resolved {len(resolved):,} of {len(outcomes):,} conflicts, keeping {kept} here and in the CRM."
        if elsewhere:
            text += f" {plural(len(elsewhere), 'conflict was', 'conflicts were')} resolved elsewhere first."
        if left:
            text += f" {plural(len(left), 'conflict is', 'conflicts are')} still open, listed below with the reason."
        self.notice.say(text, "error" if left else "ok")
        self.status_message.emit(f"Resolved {len(resolved):,} of {len(outcomes):,} conflicts")
        names = self.model.integration_names()
        for outcome in left:
            conflict = outcome.conflict
            item = QListWidgetItem(f"{record_text(conflict)} · {field_label(conflict)} "
                                   f"({names.get(conflict.integration_id, '')}): {outcome.reason}")
            item.setToolTip(outcome.reason)
            self.failures.addItem(item)
        self.failures.setVisible(bool(left))
        self._fit_failures()
        # Again once the list has its width: its wrapped lines' heights depend on it.
        QTimer.singleShot(0, self._fit_failures)
        rows = self.model.rows_of({o.conflict.id for o in left})
        if rows:
            self._select_rows(rows)
        self._update_buttons()

    #: The most lines the list of conflicts left open shows before it scrolls.
    FAILURES_SHOWN = 5

    def _fit_failures(self) -> None:
        """As tall as its first few lines (a single failure takes one line, not a box of five)."""
        if not self.failures.count():
            return
        # Measured here: a list view's own size hints do not wrap long lines (the CRM's reason was cut in half).
        width = max(self.failures.viewport().width() - 8, 200)
        metrics = self.failures.fontMetrics()
        heights = []
        for row in range(self.failures.count()):
            item = self.failures.item(row)
            needed = metrics.boundingRect(QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap, item.text()).height()
            item.setSizeHint(QSize(width, needed + 4))
            heights.append(needed + 4)
        height = sum(heights[: self.FAILURES_SHOWN]) + 2 * self.failures.frameWidth() + 2
        self.failures.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the list of conflicts left open as tall as its lines, wrapped at the new width."""
        super().resizeEvent(event)
        if self.failures.isVisible():
            QTimer.singleShot(0, self._fit_failures)

    def _remove(self, conflict_ids: set[int], changed: list[ConflictRow]) -> None:
        """Take ``conflict_ids`` out of the table, select the row that follows, and read again (off this thread)
        the local value now of the open conflicts on the records ``changed`` (a sibling conflict of another
        integration on the same field shows the value just kept)."""
        rows = self.model.rows_of(conflict_ids)
        chosen = {c.id for c in self.selected_conflicts()} - conflict_ids
        self.model.remove_conflicts(conflict_ids)
        self._removed_meanwhile |= conflict_ids
        self._count_shown()
        next_rows = self.model.rows_of(chosen)
        if not next_rows and rows and self.model.rowCount():
            next_rows = [min(min(rows), self.model.rowCount() - 1)]
        self._select_rows(next_rows)
        records = {(c.object, c.local_id) for c in changed}
        siblings = [c for c in self.model.all_conflicts() if (c.object, c.local_id) in records]
        if siblings:
            self._tasks.start(self._read_local_now(siblings), name="read the local values of sibling conflicts")
        self._update_buttons()

    async def _read_local_now(self, conflicts: list[ConflictRow]) -> None:
        try:
            values = await asyncio.to_thread(self._sync.local_values_now, conflicts)
        except Exception as exc:  # the store cannot be read now: the next reload shows them
            logger.warning("cannot read the local values of %d conflicts: %s", len(conflicts), exc)
            return
        self.model.update_local_now(values, {c.id for c in conflicts})
        self._update_buttons()

    def ask_for_value(self) -> QInputDialog | None:
        """Ask for the value to keep (window-modal, returns at once); OK writes it to both sides."""
        conflict = self.selected_conflict()
        if conflict is None or self._resolving is not None or len(self.selected_conflicts()) > 1:
            return None
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Use this value")
        dialog.setLabelText(
            f"The value of {field_label(conflict)} for {conflict.record_key}, here and in the CRM "
            "(leave it empty to clear the field):"
        )
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dialog.setTextValue(self.model.local_value(conflict) or conflict.crm_value or "")
        dialog.setOkButtonText("Use this value")
        conflict_id = conflict.id
        dialog.finished.connect(lambda result: self._value_answered(dialog, conflict_id, result))
        self.value_dialog = dialog
        dialog.open()
        return dialog

    def _value_answered(self, dialog: QInputDialog, conflict_id: int, result: int) -> None:
        value = dialog.textValue()
        if self.value_dialog is dialog:
            self.value_dialog = None
        dialog.deleteLater()
        if result == QInputDialog.DialogCode.Accepted and self.model.row_of(conflict_id) is not None:
            self._resolve(value=value, conflict_id=conflict_id)

    def _resolve(
        self, *, take: str | None = None, value: str | None = None, conflict_id: int | None = None
    ) -> asyncio.Task[None] | None:
        if self._resolving is not None or self.bulk_task is not None:
            return None
        if conflict_id is None:
            selected = self.selected_conflict()
            if selected is None:
                return None
            conflict_id = selected.id
        row = self.model.row_of(conflict_id)
        if row is None:
            return None
        conflict = self.model.conflict_at(row)
        self._resolving = conflict_id
        self._update_buttons()
        self.failures.hide()
        self.table.setCursor(Qt.CursorShape.BusyCursor)
        self.notice.say(f"Writing the kept value of {field_label(conflict)} for {conflict.record_key}…", "info")
        return self._tasks.start(self._apply(conflict, take, value), name=f"resolve conflict {conflict_id}")

    async def _apply(self, conflict: ConflictRow, take: str | None, value: str | None) -> None:
        closed = False
        try:
            kept = await self._sync.resolve(conflict.id, take=take, value=value)
        except InvalidRecordError as exc:
            # By the field's name and in plain words, as an import or the edit form says it, not pydantic's.
            reasons = "; ".join(f"{local_field_label(conflict.object, p.field)} {plain_reason(p.reason)}"
                                for p in exc.problems)
            self.notice.say(f"Not kept for {conflict.record_key}: {reasons}. Nothing was written; pick or type "
                            "another value.", "error")
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.notice.say(error_sentence(f"Resolving {field_label(conflict)} of {conflict.record_key}", exc), "error")
        else:
            closed = True
            shown = f"“{kept}”" if kept else "a blank"
            self.notice.say(
                f"Kept {shown} for {field_label(conflict)} of {conflict.record_key}, here and in the CRM"
                + ("." if kept else " (its field there cleared)."), "ok")
            self.status_message.emit(f"Resolved the conflict on {field_label(conflict)} of {conflict.record_key}")
        finally:
            self._resolving = None
            self.table.setCursor(Qt.CursorShape.ArrowCursor)
        if not closed:
            # Still open, or resolved elsewhere first: read this one again (off this thread), not the whole list.
            closed = await self._closed_meanwhile(conflict)
        if closed:
            # Only this row leaves the table: the others are not read again (3,000 of them took a second).
            self._remove({conflict.id}, [conflict])
        else:
            self._update_buttons()
        self.conflicts_changed.emit()

    async def _closed_meanwhile(self, conflict: ConflictRow) -> bool:
        """Whether a conflict a decision failed on was resolved elsewhere (its row then leaves the table); its
        local value now is read again either way."""
        try:
            now = await asyncio.to_thread(self._sync.conflict, conflict.id)
        except Exception as exc:  # the store cannot be read now: the next reload shows it
            logger.warning("cannot read conflict %d again: %s", conflict.id, exc)
            return False
        if now.status.value != "open":
            return True
        await self._read_local_now([conflict])
        return False
