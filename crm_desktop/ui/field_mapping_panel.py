"""The Field Mapping panel: each local field's CRM field, direction, conflict rule and transforms, per integration."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

# The sync service imports ConflictRule, FieldMapping, MappingProblem and Transform but leaves them out of __all__.
from crm_desktop.app.sync_service import (
    ConflictRule,
    FieldDirection,
    FieldMapping,
    MappingProblem,
    SyncService,
    Transform,
)
from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import Notice, PanelHeading
from crm_desktop.ui.wording import error_sentence

logger = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex

OBJECT_NAMES: dict[RecordObject, str] = {RecordObject.CONTACT: "Contacts", RecordObject.LEAD: "Leads"}

FIELD_DIRECTION_NAMES: dict[FieldDirection, str] = {
    FieldDirection.TWO_WAY: "Two-way",
    FieldDirection.PUSH_ONLY: "Push only",
    FieldDirection.PULL_ONLY: "Pull only",
    FieldDirection.OFF: "Off",
}

CONFLICT_RULE_NAMES: dict[ConflictRule, str] = {
    ConflictRule.LAST_WRITE_WINS: "Newest change wins",
    ConflictRule.PREFER_CRM: "CRM wins",
    ConflictRule.PREFER_LOCAL: "Local wins",
    ConflictRule.PREFER_CRM_UNLESS_BLANK: "CRM wins unless blank",
    ConflictRule.PREFER_LOCAL_UNLESS_BLANK: "Local wins unless blank",
    ConflictRule.MANUAL: "Ask me (Conflicts)",
}

_PROBLEM = QColor("#b91c1c")
_MUTED = QColor("#94a3b8")


def parse_transforms(text: str) -> tuple[Transform, ...]:
    """``"trim, lower"`` as transforms, in order.

    Raises:
        ValueError: naming the unknown transform and the known ones.
    """
    transforms = []
    for part in text.replace(";", ",").split(","):
        name = part.strip().lower()
        if not name:
            continue
        try:
            transforms.append(Transform(name))
        except ValueError:
            known = ", ".join(t.value for t in Transform)
            raise ValueError(f"“{name}” is not a transform; use {known}") from None
    return tuple(transforms)


class MappingColumn(IntEnum):
    """The columns of the mapping table, in order."""

    LOCAL_FIELD = 0
    CRM_FIELD = 1
    DIRECTION = 2
    CONFLICT_RULE = 3
    TRANSFORMS = 4

    @property
    def title(self) -> str:
        """The column's header."""
        return _MAPPING_TITLES[self]


_MAPPING_TITLES: dict[MappingColumn, str] = {
    MappingColumn.LOCAL_FIELD: "Local field",
    MappingColumn.CRM_FIELD: "CRM field",
    MappingColumn.DIRECTION: "Direction",
    MappingColumn.CONFLICT_RULE: "Conflict rule",
    MappingColumn.TRANSFORMS: "Transforms",
}


class MappingsTableModel(QAbstractTableModel):
    """One integration's mappings of one object, editable in place; usable without a view.

    The edit role gives and takes the values themselves: the CRM field's wire name, a ``FieldDirection``, a
    ``ConflictRule`` and the transforms as ``"trim, lower"``.

    Signals:
        edit_refused(str): an edit was refused, with the reason.
        dirty_changed(bool): whether there are unsaved edits.
    """

    edit_refused = Signal(str)
    dirty_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._mappings: list[FieldMapping] = []
        self._problems: dict[str, list[str]] = {}
        self._dirty = False

    def show_mappings(self, mappings: list[FieldMapping]) -> None:
        """Show saved mappings (no unsaved edits, no problems)."""
        self.beginResetModel()
        self._mappings = list(mappings)
        self._problems = {}
        self.endResetModel()
        self._set_dirty(False)

    def mappings(self) -> list[FieldMapping]:
        """The mappings as edited."""
        return list(self._mappings)

    @property
    def dirty(self) -> bool:
        """Whether there are unsaved edits."""
        return self._dirty

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirty_changed.emit(dirty)

    def set_problems(self, problems: list[MappingProblem]) -> None:
        """Mark the rows a check found wrong (red, with the reasons as tooltip)."""
        found: dict[str, list[str]] = {}
        for problem in problems:
            found.setdefault(problem.local_field, []).append(problem.reason)
        self._problems = found
        if self._mappings:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._mappings) - 1, len(MappingColumn) - 1))

    def rows_with_problems(self) -> list[int]:
        """The rows marked by the last check."""
        return [row for row, m in enumerate(self._mappings) if m.local_field in self._problems]

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's own signature)
        """How many local fields are mapped."""
        return 0 if parent.isValid() else len(self._mappings)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        """How many columns."""
        return 0 if parent.isValid() else len(MappingColumn)

    def mapping_at(self, row: int) -> FieldMapping:
        """The mapping at ``row`` (raises ``IndexError``)."""
        return self._mappings[row]

    def row_of(self, local_field: str) -> int | None:
        """The row of a local field, if mapped."""
        for number, mapping in enumerate(self._mappings):
            if mapping.local_field == local_field:
                return number
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles across the top."""
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(MappingColumn):
            return MappingColumn(section).title
        return None

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        """Every column but the local field is editable."""
        flags = super().flags(index)
        if index.isValid() and index.column() != MappingColumn.LOCAL_FIELD:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Each cell's text, its edit value, and the check's problems in red."""
        if not index.isValid() or not 0 <= index.row() < len(self._mappings):
            return None
        mapping = self._mappings[index.row()]
        column = MappingColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(mapping, column)
        if role == Qt.ItemDataRole.EditRole:
            return self._edit_value(mapping, column)
        problems = self._problems.get(mapping.local_field)
        if role == Qt.ItemDataRole.ForegroundRole:
            if problems:
                return QBrush(_PROBLEM)
            if mapping.direction is FieldDirection.OFF:
                return QBrush(_MUTED)
        if role == Qt.ItemDataRole.ToolTipRole and problems:
            return "; ".join(problems)
        return None

    @staticmethod
    def _display(mapping: FieldMapping, column: MappingColumn) -> str:
        match column:
            case MappingColumn.LOCAL_FIELD:
                return mapping.local_field
            case MappingColumn.CRM_FIELD:
                return mapping.crm_field
            case MappingColumn.DIRECTION:
                return FIELD_DIRECTION_NAMES[mapping.direction]
            case MappingColumn.CONFLICT_RULE:
                return CONFLICT_RULE_NAMES[mapping.conflict_rule]
            case MappingColumn.TRANSFORMS:
                return ", ".join(t.value for t in mapping.transforms) or "—"

    @staticmethod
    def _edit_value(mapping: FieldMapping, column: MappingColumn) -> Any:
        match column:
            case MappingColumn.LOCAL_FIELD:
                return mapping.local_field
            case MappingColumn.CRM_FIELD:
                return mapping.crm_field
            case MappingColumn.DIRECTION:
                return mapping.direction
            case MappingColumn.CONFLICT_RULE:
                return mapping.conflict_rule
            case MappingColumn.TRANSFORMS:
                return ", ".join(t.value for t in mapping.transforms)

    def setData(self, index: ModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Change one cell; a refused value leaves the mapping as it was and says why."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._mappings):
            return False
        mapping = self._mappings[index.row()]
        column = MappingColumn(index.column())
        try:
            changed = self._changed(mapping, column, value)
        except ValueError as exc:
            self.edit_refused.emit(f"{mapping.local_field}: {exc}")
            return False
        if changed == mapping:
            return True
        self._mappings[index.row()] = changed
        self._problems.pop(mapping.local_field, None)
        self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), len(MappingColumn) - 1))
        self._set_dirty(True)
        return True

    @staticmethod
    def _changed(mapping: FieldMapping, column: MappingColumn, value: Any) -> FieldMapping:
        match column:
            case MappingColumn.CRM_FIELD:
                name = str(value).strip()
                if not name:
                    raise ValueError("the CRM field cannot be blank; set the direction to Off instead")
                return replace(mapping, crm_field=name)
            case MappingColumn.DIRECTION:
                return replace(mapping, direction=FieldDirection(value))
            case MappingColumn.CONFLICT_RULE:
                return replace(mapping, conflict_rule=ConflictRule(value))
            case MappingColumn.TRANSFORMS:
                return replace(mapping, transforms=parse_transforms(str(value)))
            case _:
                raise ValueError("the local field is fixed")


class ChoiceDelegate(QStyledItemDelegate):
    """Edits a cell with a drop-down of named values (a direction, a conflict rule)."""

    def __init__(self, choices: dict[Any, str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._choices = choices

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: ModelIndex) -> QWidget:
        """A combo box of the choices."""
        combo = QComboBox(parent)
        for value, name in self._choices.items():
            combo.addItem(name, value)
        return combo

    def setEditorData(self, editor: QWidget, index: ModelIndex) -> None:
        """Select the cell's value."""
        assert isinstance(editor, QComboBox)
        position = editor.findData(index.data(Qt.ItemDataRole.EditRole))
        editor.setCurrentIndex(max(position, 0))

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: ModelIndex) -> None:
        """Write the chosen value."""
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)


class FieldMappingPanel(QWidget):
    """Shows and edits how each local field maps to the chosen integration's CRM field, and checks it.

    While there are unsaved edits the integration and object cannot be switched: Save or Revert first.

    Attributes:
        integration_combo, object_combo: what is shown.
        model, table: the mappings.
        save_button, revert_button: keep or drop the edits.
        check_button: checks the saved mapping against the CRM's live fields.
        notice: what was saved, the check's problems, or why something failed.

    Signals:
        status_message(str): a short note for the status bar.
    """

    status_message = Signal(str)

    def __init__(self, sync: SyncService, tasks: BackgroundTasks | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._sync = sync
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._checking = False

        heading = PanelHeading(
            "Field Mapping",
            "Which CRM field each local field (email, names, social profiles, followers, sentiment, engagement) "
            "syncs with, which way it flows, and who wins when both sides changed it.",
        )
        self.integration_combo = QComboBox()
        self.integration_combo.setMinimumWidth(160)
        self.object_combo = QComboBox()
        for obj, name in OBJECT_NAMES.items():
            self.object_combo.addItem(name, obj)
        self.check_button = QPushButton("Check against CRM")
        self.check_button.setToolTip("Compare the saved mapping with the CRM's live field list.")
        self.revert_button = QPushButton("Revert")
        self.save_button = QPushButton("Save")
        self.save_button.setProperty("primary", True)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Integration"))
        controls.addWidget(self.integration_combo)
        controls.addWidget(QLabel("Records"))
        controls.addWidget(self.object_combo)
        controls.addStretch(1)
        edits = QHBoxLayout()
        edits.addWidget(self.check_button)
        edits.addStretch(1)
        edits.addWidget(self.revert_button)
        edits.addWidget(self.save_button)

        self.notice = Notice()
        self.model = MappingsTableModel(self)
        self.table = QTableView()
        self.table.setObjectName("mappingTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self._direction_delegate = ChoiceDelegate(dict(FIELD_DIRECTION_NAMES), self)
        self._rule_delegate = ChoiceDelegate(dict(CONFLICT_RULE_NAMES), self)
        self.table.setItemDelegateForColumn(MappingColumn.DIRECTION, self._direction_delegate)
        self.table.setItemDelegateForColumn(MappingColumn.CONFLICT_RULE, self._rule_delegate)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in {MappingColumn.LOCAL_FIELD: 190, MappingColumn.CRM_FIELD: 230,
                              MappingColumn.DIRECTION: 110, MappingColumn.CONFLICT_RULE: 180}.items():
            self.table.setColumnWidth(column, width)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addLayout(controls)
        layout.addWidget(self.notice)
        layout.addWidget(self.table, 1)
        layout.addLayout(edits)

        self.integration_combo.currentIndexChanged.connect(self.load_mappings)
        self.object_combo.currentIndexChanged.connect(self.load_mappings)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.load_mappings)
        self.check_button.clicked.connect(self.check_against_crm)
        self.model.edit_refused.connect(lambda reason: self.notice.say(reason, "error"))
        self.model.dirty_changed.connect(self._dirty_changed)
        self.reload_integrations()

    # -- choosing

    def reload_integrations(self) -> None:
        """Re-read the integrations, keeping the chosen one, and show its mapping."""
        chosen = self.integration_combo.currentText()
        names = [integration.name for integration in self._sync.integrations.list()]
        self.integration_combo.blockSignals(True)
        self.integration_combo.clear()
        self.integration_combo.addItems(names)
        if chosen in names:
            self.integration_combo.setCurrentText(chosen)
        self.integration_combo.blockSignals(False)
        if not (self.model.dirty and chosen in names):
            self.load_mappings()

    @property
    def record_object(self) -> RecordObject:
        """The records whose mapping is shown."""
        return RecordObject(self.object_combo.currentData())

    def integration(self) -> Integration | None:
        """The chosen integration, if any (and if it still exists)."""
        name = self.integration_combo.currentText()
        if not name:
            return None
        try:
            return self._sync.integrations.get(name)
        except Exception as exc:  # removed meanwhile, or the store cannot be read
            self.notice.say(error_sentence("Reading the integration", exc), "error")
            return None

    def load_mappings(self) -> None:
        """Show the chosen integration's saved mapping of the chosen records (dropping unsaved edits)."""
        self.notice.clear_notice()
        integration = self.integration()
        if integration is None:
            self.model.show_mappings([])
            self.notice.say("Add an integration in Integrations to map its fields.", "info")
            self._update_buttons()
            return
        try:
            mappings = self._sync.mappings(integration, self.record_object)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.model.show_mappings([])
            self.notice.say(error_sentence("Reading the mapping", exc), "error")
        else:
            self.model.show_mappings(mappings)
        self._update_buttons()

    def _dirty_changed(self, dirty: bool) -> None:
        if dirty:
            self.notice.say("Unsaved changes: Save to use them in the next sync, or Revert.", "info")
        self._update_buttons()

    def _update_buttons(self) -> None:
        dirty = self.model.dirty
        has_integration = self.integration_combo.count() > 0
        self.integration_combo.setEnabled(not dirty)
        self.object_combo.setEnabled(not dirty and has_integration)
        self.save_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self.check_button.setEnabled(has_integration and not dirty and not self._checking)

    # -- saving and checking

    def save(self) -> bool:
        """Save the edited mapping; say why when that fails."""
        integration = self.integration()
        if integration is None or not self.model.dirty:
            return False
        try:
            self._sync.save_mappings(integration, self.record_object, self.model.mappings())
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.notice.say(error_sentence("Saving the mapping", exc), "error")
            return False
        self.load_mappings()
        object_name = OBJECT_NAMES[self.record_object].lower()
        self.notice.say(f"Saved the {object_name} mapping of “{integration.name}”.", "ok")
        self.status_message.emit(f"Saved the {object_name} mapping of “{integration.name}”")
        return True

    def check_against_crm(self) -> asyncio.Task[None] | None:
        """Check the saved mapping against the CRM's live fields; problems are listed and their rows marked."""
        integration = self.integration()
        if integration is None or self._checking or self.model.dirty:
            return None
        self._checking = True
        self._update_buttons()
        self.notice.say(f"Reading the field list of “{integration.name}”…", "info")
        obj = self.record_object
        return self._tasks.start(self._check(integration.name, obj), name=f"check mapping of {integration.name}")

    async def _check(self, name: str, obj: RecordObject) -> None:
        try:
            problems = await self._sync.check_mappings(name, obj)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.notice.say(error_sentence("The check against the CRM", exc), "error")
        else:
            still_shown = self.integration_combo.currentText() == name and self.record_object is obj
            if still_shown:
                self.model.set_problems(problems)
            if problems:
                lines = [f"{len(problems)} problem(s) with the {OBJECT_NAMES[obj].lower()} mapping of “{name}”:"]
                lines += [f"• {p.local_field} → {p.crm_field}: {p.reason}" for p in problems]
                self.notice.say("\n".join(lines), "error")
            else:
                self.notice.say(f"Every mapped field exists in “{name}” and can take its values.", "ok")
        finally:
            self._checking = False
            self._update_buttons()
