"""The Conflicts panel: fields changed both here and in the CRM, resolved by keeping one value or typing another."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelection, QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QWidget,
)

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.record_files import plain_reason
from crm_desktop.app.sync_service import ConflictRow, SyncService
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.ui.columns import ColumnChoice
from crm_desktop.ui.table_model import RowsTableModel, TableColumn
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import (
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

    def show_conflict(self, conflict: ConflictRow | None, integration_name: str,
                      local_now: str | None, *, local_gone: bool = False) -> None:
        """Show one conflict, or say that none is selected; ``local_now`` is the field as the record holds it now
        (see :meth:`ConflictsTableModel.local_value`), which “Keep local value” keeps, shown with the value recorded
        when the conflict was raised when that one differs; ``local_gone`` says the record was deleted since."""
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

    def refresh(self) -> None:
        """Re-read the open conflicts, and the local value each record holds now (one read for them all)."""
        rows = self._load_conflicts()
        names = self._load_names()
        local_now = self._load_local_now(rows) if self._load_local_now is not None else {}
        self.beginResetModel()
        self._rows = rows
        self._names = names
        self._local_now = local_now
        # Read, and left out of the values now: their local record was deleted since the conflict was raised.
        self._gone = {c.id for c in rows if c.id not in local_now} if self._load_local_now is not None else set()
        self.endResetModel()

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


class ConflictsPanel(QWidget):
    """Lists the fields changed on both sides since the last sync and applies the marketer's decision to both.

    Attributes:
        model, table: the open conflicts.
        keys: Enter moves to the selected conflict's decision buttons; Delete says conflicts are resolved instead.
        details: the selected conflict in full.
        keep_crm_button, keep_local_button, use_value_button: the decisions for the selected conflict.
        notice: what the last decision did, or why it failed.
        value_dialog: the "Use this value…" prompt while it is open.

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
        self.value_dialog: QInputDialog | None = None

        heading = PanelHeading(
            "Conflicts",
            "Fields changed both here and in the CRM since the last sync, whose rule says to ask you. "
            "Keep the CRM's value, keep yours, or type the right one: it is written to both sides.",
        )
        self.notice = Notice()
        self.model = ConflictsTableModel(self._sync.conflicts, self._integration_names, self,
                                         load_local_now=self._sync.local_values_now)
        self.table = record_table(self.model, "Open conflicts", "conflictsTable")
        self.empty_note = EmptyTableNote(self.table, (
            "Nothing waits for you. When a field changes both here and in a CRM, and its conflict rule in Field "
            "Mapping is “Ask me”, the sync leaves it here for you to decide."))
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

        layout = scrolling_page(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(self.notice)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)

        self.keep_crm_button.clicked.connect(self.keep_crm_value)
        self.keep_local_button.clicked.connect(self.keep_local_value)
        self.use_value_button.clicked.connect(self.ask_for_value)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.keys = row_keys(
            self.table, on_open=lambda _row: self.open_resolution(), say=self.status_message.emit,
            cannot_delete="A conflict is resolved, not deleted: keep the CRM's value, yours, or type the right one.",
        )
        self.reload()

    def _integration_names(self) -> dict[int, str]:
        return {i.id: i.name for i in self._sync.integrations.list() if i.id is not None}

    def reload(self) -> None:
        """Re-read the open conflicts, keeping the selection (or selecting the first)."""
        current = self.selected_conflict()
        try:
            self.model.refresh()
        except Exception as exc:  # the store cannot be read: say so rather than crash
            self.notice.say(error_sentence("Reading the conflicts", exc), "error")
            return
        row = self.model.row_of(current.id) if current is not None else None
        if row is None and self.model.rowCount() > 0:
            row = 0
        if row is not None:
            self.table.selectRow(row)
        self._fit_columns()
        self._update_buttons()

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
        """The selected row, or -1."""
        row = selected_row(self.table)
        return -1 if row is None else row

    def selected_conflict(self) -> ConflictRow | None:
        """The selected conflict, if any."""
        row = self.selected_row()
        return self.model.conflict_at(row) if row >= 0 else None

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        conflict = self.selected_conflict()
        name = self.model.index(self.selected_row(), ConflictColumn.INTEGRATION).data() if conflict else ""
        gone = conflict is not None and self.model.local_gone(conflict)
        self.details.show_conflict(conflict, str(name),
                                   self.model.local_value(conflict) if conflict is not None else None,
                                   local_gone=gone)
        enabled = conflict is not None and self._resolving is None
        for button in (self.keep_crm_button, self.keep_local_button, self.use_value_button):
            button.setEnabled(enabled)
        # Nothing local to keep, nor a record for a typed value: off, their tooltips say why; "Keep CRM value"
        # closes the conflict.
        self.keep_local_button.setEnabled(enabled and not gone)
        self.use_value_button.setEnabled(enabled and not gone)
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
        """Keep the CRM's value of the selected conflict on both sides."""
        return self._resolve(take="crm")

    def keep_local_value(self) -> asyncio.Task[None] | None:
        """Keep the local value of the selected conflict on both sides: the value the record holds when the decision
        is written (the one shown as “Here”), not the one recorded when the conflict was raised."""
        conflict = self.selected_conflict()
        if conflict is not None and self.model.local_gone(conflict):
            self.notice.say(GONE_REASON, "error")
            return None
        return self._resolve(take="local")

    def ask_for_value(self) -> QInputDialog | None:
        """Ask for the value to keep (window-modal, returns at once); OK writes it to both sides."""
        conflict = self.selected_conflict()
        if conflict is None or self._resolving is not None:
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
        if self._resolving is not None:
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
        self.table.setCursor(Qt.CursorShape.BusyCursor)
        self.notice.say(f"Writing the kept value of {field_label(conflict)} for {conflict.record_key}…", "info")
        return self._tasks.start(self._apply(conflict, take, value), name=f"resolve conflict {conflict_id}")

    async def _apply(self, conflict: ConflictRow, take: str | None, value: str | None) -> None:
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
            shown = f"“{kept}”" if kept else "a blank"
            self.notice.say(
                f"Kept {shown} for {field_label(conflict)} of {conflict.record_key}, here and in the CRM"
                + ("." if kept else " (its field there cleared)."), "ok")
            self.status_message.emit(f"Resolved the conflict on {field_label(conflict)} of {conflict.record_key}")
        finally:
            self._resolving = None
            self.table.setCursor(Qt.CursorShape.ArrowCursor)
            self.reload()
            self.conflicts_changed.emit()
