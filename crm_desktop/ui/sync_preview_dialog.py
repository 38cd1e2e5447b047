"""The dry-run preview "Sync all now" offers first: every create, update (field by field), conflict and skip.

The plans come from the engine's dry run (the same :class:`SyncPlan` ``crm-desktop sync --dry-run`` prints); the
table reads them a page at a time, so a plan of 100,000 changes never builds 100,000 rows at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

from PySide6.QtCore import QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.sync_monitor import ChangeAction, PlannedChange, Side, SyncPlan
from crm_desktop.app.sync_service import SyncResult
from crm_desktop.app.text import plural
from crm_desktop.ui.table_model import ModelIndex, RowsTableModel, TableColumn
from crm_desktop.ui.theme import text_colour
from crm_desktop.ui.widgets import Notice, column_width_for, open_at_size, record_table, show_rows_in_full

logger = logging.getLogger(__name__)


_ACTION_WORDS = {
    ChangeAction.CREATE: "Create",
    ChangeAction.UPDATE: "Update",
    ChangeAction.CONFLICT: "Conflict",
    ChangeAction.SKIP: "Skip",
}
_ACTION_COLOURS = {
    ChangeAction.CREATE: "#15803d",
    ChangeAction.CONFLICT: "#b45309",
    ChangeAction.SKIP: "#64748b",
}


def shown(value: str | None) -> str:
    return "(blank)" if value is None or value == "" else value


class PreviewRow(NamedTuple):
    """One line of the preview: a field of an update or conflict, a whole create, or a skip."""

    integration: str
    object: str
    record: str
    where: str
    action: ChangeAction
    field: str
    change: str


#: Where a change is written, as the preview says it.
WHERE_NAMES = {Side.CRM: "In the CRM", Side.LOCAL: "In CRM Desktop"}


def preview_rows(integration: str, changes: list[PlannedChange]) -> Iterator[PreviewRow]:
    """The plan's changes as preview lines, in the plan's order (records left unchanged are not listed); fields
    by the names the marketer knows ("First name", not ``firstName``)."""
    for change in changes:
        where = WHERE_NAMES[change.side]
        obj = change.object.value.capitalize()

        def label(name: str, change: PlannedChange = change) -> str:
            return local_field_label(change.object, name)

        if change.action is ChangeAction.UNCHANGED:
            continue
        if change.action is ChangeAction.SKIP or (change.reason and not change.fields):
            # A skip, or a write with no field to list (Pipedrive's social note written over): the reason says why.
            yield PreviewRow(integration, obj, change.email, where, change.action, "", change.reason)
        elif change.action is ChangeAction.CREATE:
            values = ", ".join(f"{label(name)}: {shown(f.new)}" for name, f in change.fields.items())
            yield PreviewRow(integration, obj, change.email, where, change.action,
                             plural(len(change.fields), "field"), values)
        elif change.action is ChangeAction.CONFLICT:
            decision = change.decision.sentence if change.decision is not None else change.reason
            for name, f in change.fields.items():
                yield PreviewRow(integration, obj, change.email, where, change.action, label(name),
                                 f"here {shown(f.old)} · CRM {shown(f.new)} — {decision}")
        else:
            for name, f in change.fields.items():
                yield PreviewRow(integration, obj, change.email, where, change.action, label(name),
                                 f"{shown(f.old)} → {shown(f.new)}")


def plan_sentence(name: str, plan: SyncPlan) -> str:
    """One integration's plan in a line, naming only what it would do and where: "“HubSpot”: 3 to create in the
    CRM, 2 to create in CRM Desktop, 1 conflict for you"; "“HubSpot”: nothing to change (40 unchanged)"."""
    counts = plan.counts()
    written = [
        f"{n:,} to {verb} {where[0].lower()}{where[1:]}"
        for action, verb in ((ChangeAction.CREATE, "create"), (ChangeAction.UPDATE, "update"))
        for side, where in WHERE_NAMES.items()
        if (n := plan.count(side=side, action=action))
    ]
    parts = written + [text for count, text in (
        (counts.waiting, f"{plural(counts.waiting, 'conflict')} for you"),
        (counts.decided, f"{counts.decided:,} decided by rule"),
        (counts.skipped, f"{counts.skipped:,} skipped"),
    ) if count]
    if not parts:
        return f"“{name}”: nothing to change ({counts.unchanged:,} unchanged)"
    if counts.unchanged:
        parts.append(f"{counts.unchanged:,} unchanged")
    return f"“{name}”: " + ", ".join(parts)


class PreviewColumn(TableColumn):
    """The preview table's columns, in order."""

    INTEGRATION = "Integration"
    OBJECT = "Object"
    RECORD = "Record"
    WHERE = "Where"
    ACTION = "Change"
    FIELD = "Field"
    CHANGE = "Old → new, or why"


class PreviewTableModel(RowsTableModel[PreviewRow, PreviewColumn]):
    """The preview's lines, read from the plans a page at a time as the view scrolls (``fetchMore``)."""

    PAGE_SIZE = 200
    columns = PreviewColumn

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: list[Iterator[PreviewRow]] = []
        self._exhausted = True

    def add_plan(self, integration: str, changes: list[PlannedChange]) -> None:
        """Queue one integration's plan; its first page shows at once if the table has room."""
        self._pending.append(preview_rows(integration, changes))
        self._exhausted = False
        if len(self._rows) < self.PAGE_SIZE:
            self.fetchMore()

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008 (Qt's own signature)
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        """Read the next page of lines."""
        if parent.isValid():
            return
        page: list[PreviewRow] = []
        while self._pending and len(page) < self.PAGE_SIZE:
            line = next(self._pending[0], None)
            if line is None:
                self._pending.pop(0)
                continue
            page.append(line)
        self._exhausted = not self._pending
        if not page:
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(page) - 1)
        self._rows.extend(page)
        self.endInsertRows()

    def row(self, number: int) -> PreviewRow:
        return self._rows[number]

    def cell(self, line: PreviewRow, column: PreviewColumn, role: int) -> Any:
        """Each cell's text, also its tooltip; the change coloured by what it does."""
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if column is PreviewColumn.ACTION:
                return _ACTION_WORDS[line.action]
            return line[column]
        if role == Qt.ItemDataRole.ForegroundRole and column is PreviewColumn.ACTION:
            colour = _ACTION_COLOURS.get(line.action)
            return QBrush(text_colour(colour)) if colour is not None else None
        return None


class SyncPreviewDialog(QDialog):
    """What "Sync all now" would change, asked before it does: Proceed or Cancel, and "Don't ask again".

    Window-modal, opened with ``open()``; the panel adds each integration's plan as its dry run ends.

    Attributes:
        summary_label: the counts per integration, or what is still being worked out.
        busy_bar: moves while dry runs are still running.
        table, model: every change, paged; Enter (or a double click) on one shows it in full in ``row_notice``,
            never presses Proceed.
        row_notice: the change Enter opened, or what Enter or Delete does not do.
        dont_ask_check: "Don't ask again" (the workspace setting).
        proceed_button, cancel_button: the two answers; Enter out of the table is Cancel while the plans are worked
            out, Proceed once they are in.

    Signals:
        proceed_chosen(bool): Proceed was pressed; whether "Don't ask again" was ticked.
    """

    proceed_chosen = Signal(bool)

    def __init__(self, names: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sync all now — preview")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        open_at_size(self, 940, 560)
        self._waiting = list(names)
        self._lines: dict[str, str] = {}
        self.summary_label = QLabel()
        self.summary_label.setObjectName("previewSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(6)
        self.model = PreviewTableModel(self)
        self.table = record_table(self.model, "Changes the sync would make", "previewTable", single_selection=False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in ((PreviewColumn.INTEGRATION, 140), (PreviewColumn.RECORD, 200),
                              (PreviewColumn.FIELD, 110)):
            self.table.setColumnWidth(column, width)
        # The columns of a few fixed words fit the widest of them, in the table's own font.
        self.table.ensurePolished()
        for column, words in ((PreviewColumn.OBJECT, ("Contact", "Lead")),
                              (PreviewColumn.WHERE, tuple(WHERE_NAMES.values())),
                              (PreviewColumn.ACTION, tuple(_ACTION_WORDS.values()))):
            self.table.setColumnWidth(column, column_width_for(self.table, words, column, slack=8))
        self.row_notice = Notice()
        self.row_notice.setAccessibleName("The selected change in full")
        self.keys = show_rows_in_full(
            self.table, self.row_notice,
            cannot_delete="A change is not left out here: Cancel syncs nothing, and Field Mapping turns a field off.")
        self.dont_ask_check = QCheckBox(
            "Don't ask again (tick “Preview first” in the Sync Monitor or in Settings to see this again)")
        buttons = QDialogButtonBox()
        self.proceed_button = QPushButton("Proceed")
        self.proceed_button.setProperty("primary", True)
        self.proceed_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        buttons.addButton(self.proceed_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Nothing has been written yet. This is what syncing every integration now would do:"))
        self.apart_label: QLabel | None = None
        if len(names) > 1:
            # Each is planned against the store as it is now: the people one CRM's pull brings in are pushed to the
            # others by the runs, and no plan can show them yet.
            self.apart_label = QLabel("Each integration is planned on its own: people pulled from one CRM are also "
                                      "pushed to the others, so the runs may create more than these plans show.")
            self.apart_label.setWordWrap(True)
            self.apart_label.setAccessibleName("Plans made one integration at a time")
            layout.addWidget(self.apart_label)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.busy_bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.row_notice)
        layout.addWidget(self.dont_ask_check)
        layout.addWidget(buttons)
        # While the plans are worked out (Proceed disabled), Enter is Cancel. Made the default only now that the
        # button is in the dialog: set before, the dialog did not know it, the button box made the disabled Proceed
        # its default when the dialog was shown, and Enter did nothing. Once the plans are in, Proceed is.
        self.cancel_button.setDefault(True)
        self.proceed_button.clicked.connect(self._proceed)
        self.cancel_button.clicked.connect(self.reject)
        self._show_summary()

    def add_plan(self, name: str, result: SyncResult) -> None:
        """Show one integration's dry run."""
        self._lines[name] = plan_sentence(name, result.plan)
        self.model.add_plan(name, result.plan.changes)
        self._done(name)

    def add_failure(self, name: str, sentence: str) -> None:
        """Say that one integration's dry run failed (its real sync would most likely fail the same way)."""
        self._lines[name] = sentence
        self._done(name)

    def _done(self, name: str) -> None:
        if name in self._waiting:
            self._waiting.remove(name)
        self._show_summary()

    @property
    def waiting(self) -> list[str]:
        """The integrations whose dry run is still running."""
        return list(self._waiting)

    def _show_summary(self) -> None:
        lines = list(self._lines.values())
        if self._waiting:
            lines.append("Working out what " + ", ".join(f"“{n}”" for n in self._waiting) + " would change…")
        self.summary_label.setText("\n".join(lines))
        self.busy_bar.setVisible(bool(self._waiting))
        self.proceed_button.setEnabled(not self._waiting)
        if not self._waiting:
            self.proceed_button.setDefault(True)

    def _proceed(self) -> None:
        self.proceed_chosen.emit(self.dont_ask_check.isChecked())
        self.accept()
