"""The Field Mapping panel: each local field's CRM field, direction, conflict rule and transforms, per integration."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QPainter, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.field_mapping import (
    CrmField,
    EnsureReport,
    FieldMappingService,
    PreviewLine,
    find_crm_field,
    local_field_label,
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
from crm_desktop.app.text import plural
from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.table_model import ModelIndex, RowsTableModel, TableColumn
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.theme import text_colour
from crm_desktop.ui.widgets import (
    AsksFirst,
    Notice,
    PanelHeading,
    choice_combo,
    keep_rows_visible,
    leave_on_tab,
    refill_names,
    row_keys,
    scrolling_page,
)
from crm_desktop.ui.wording import error_sentence

logger = logging.getLogger(__name__)

#: The rows the mapping and the preview keep in sight however the splitter or a short window squeezes them.
MAPPING_ROWS_ALWAYS_SHOWN = 3
PREVIEW_ROWS_ALWAYS_SHOWN = 3

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

#: What each transform does, in the marketer's words (the wire names, such as ``e164``, are for files and the CLI).
TRANSFORM_NAMES: dict[Transform, str] = {
    Transform.TRIM: "Trim spaces",
    Transform.LOWER: "Lower case",
    Transform.E164: "International phone format",
    Transform.TRUNCATE: "Cut to the CRM's length",
    Transform.DEFAULT: "Fill in when blank",
}

#: A transform's longer explanation, shown as the tooltip of its cell and of its line in the editor.
TRANSFORM_HINTS: dict[Transform, str] = {
    Transform.TRIM: "Spaces at either end are removed before the value is sent.",
    Transform.LOWER: "The value is sent in lower case.",
    Transform.E164: "Phone numbers are sent as +, country code and number (+442079460958); "
                    "a number that cannot be read is sent as it is.",
    Transform.TRUNCATE: "A value longer than the CRM field allows is cut to fit instead of being refused.",
    Transform.DEFAULT: "When the local value is blank, the mapping's default value is sent instead.",
}

_PROBLEM = "#b91c1c"
_MUTED = QColor("#94a3b8")


def transform_name(mapping: FieldMapping, transform: Transform) -> str:
    """A transform as the table shows it, with the mapping's length or default value where it has one."""
    if transform is Transform.TRUNCATE and mapping.length:
        return f"Cut to {mapping.length:,} characters"
    if transform is Transform.DEFAULT and mapping.default_value is not None:
        return f"“{mapping.default_value}” when blank"
    return TRANSFORM_NAMES[transform]


def transforms_offered(mapping: FieldMapping) -> list[Transform]:
    """The transforms the editor lists for a mapping: "Fill in when blank" only where it has a default value."""
    return [t for t in Transform
            if t is not Transform.DEFAULT or mapping.default_value is not None or t in mapping.transforms]


def parse_transforms(text: str) -> tuple[Transform, ...]:
    """``"trim, lower"`` (wire names, or the names the table shows) as transforms, in order.

    Raises:
        ValueError: naming the unknown transform and the known ones.
    """
    by_name = {name.lower(): t for t, name in TRANSFORM_NAMES.items()} | {t.value: t for t in Transform}
    transforms = []
    for part in text.replace(";", ",").split(","):
        name = part.strip().lower()
        if not name:
            continue
        try:
            transforms.append(by_name[name])
        except KeyError:
            known = ", ".join(TRANSFORM_NAMES.values())
            raise ValueError(f"“{part.strip()}” is not a transform; use {known}") from None
    return tuple(transforms)


def ordered_transforms(chosen: set[Transform] | list[Transform] | tuple[Transform, ...],
                       before: tuple[Transform, ...]) -> tuple[Transform, ...]:
    """The chosen transforms in the order they apply: those kept in their old order, new ones after in the
    order of ``Transform`` (trim before lower case before the phone format)."""
    wanted = set(chosen)
    kept = [t for t in before if t in wanted]
    return (*kept, *(t for t in Transform if t in wanted and t not in kept))


def problem_lines(obj: RecordObject, problems: list[MappingProblem]) -> list[str]:
    """A check's problems as the notice lists them: "• First name → FirstName: the CRM has no such field"."""
    return [f"• {local_field_label(obj, p.local_field)} → {p.crm_field}: {p.reason}" for p in problems]


#: The local field records are matched by (never unmapped).
MATCHED_BY = "email"


class MappingColumn(TableColumn):
    """The columns of the mapping table, in order."""

    LOCAL_FIELD = "Local field"
    CRM_FIELD = "CRM field"
    DIRECTION = "Direction"
    CONFLICT_RULE = "Conflict rule"
    TRANSFORMS = "Transforms"


class MappingsTableModel(RowsTableModel[FieldMapping, MappingColumn]):
    """One integration's mappings of one object, editable in place; usable without a view.

    The edit role gives and takes the values themselves: the CRM field's wire name, a ``FieldDirection``, a
    ``ConflictRule`` and a tuple of ``Transform`` (an edit may also give them as text, ``"trim, lower"``).

    Signals:
        edit_refused(str): an edit was refused, with the reason.
        dirty_changed(bool): whether there are unsaved edits.
    """

    edit_refused = Signal(str)
    dirty_changed = Signal(bool)
    columns = MappingColumn

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._problems: dict[str, list[str]] = {}
        self._dirty = False
        self._crm_fields: list[CrmField] = []
        self._record_object = RecordObject.CONTACT

    def set_crm_fields(self, fields: list[CrmField]) -> None:
        """The CRM's live fields: CRM fields show by label and are picked from this list."""
        self._crm_fields = list(fields)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(MappingColumn) - 1))

    @property
    def crm_fields(self) -> list[CrmField]:
        """The CRM's live fields, once read (empty before)."""
        return list(self._crm_fields)

    def crm_field_of(self, mapping: FieldMapping) -> CrmField | None:
        """The live CRM field a mapping names, if the CRM has it."""
        return find_crm_field(self._crm_fields, mapping.crm_field) if self._crm_fields else None

    def show_mappings(self, mappings: list[FieldMapping], obj: RecordObject | None = None) -> None:
        """Show saved mappings of ``obj``'s fields (no unsaved edits, no problems)."""
        self._show(mappings, obj, dirty=False)

    def show_edited(self, mappings: list[FieldMapping], obj: RecordObject | None = None) -> None:
        """Show mappings that are not saved yet (the defaults, say): Save keeps them, Revert drops them."""
        self._show(mappings, obj, dirty=True)

    def local_label(self, mapping: FieldMapping) -> str:
        """The mapping's local field as the marketer knows it ("First name", not ``firstName``)."""
        return local_field_label(self._record_object, mapping.local_field)

    def _show(self, mappings: list[FieldMapping], obj: RecordObject | None, *, dirty: bool) -> None:
        self.beginResetModel()
        if obj is not None:
            self._record_object = obj
        self._rows = list(mappings)
        self._problems = {}
        self.endResetModel()
        self._set_dirty(dirty)

    def mappings(self) -> list[FieldMapping]:
        """The mappings as edited."""
        return list(self._rows)

    def remove_row(self, row: int) -> FieldMapping:
        """Stop mapping the local field on ``row`` (an unsaved edit: Save keeps it, Revert brings it back).

        Raises:
            ValueError: for the email, which is how records are matched with the CRM's.
            IndexError: for a row that is not there.
        """
        mapping = self._rows[row]
        if mapping.local_field == MATCHED_BY:
            raise ValueError("the email is how records are matched with the CRM's; it stays mapped")
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._problems.pop(mapping.local_field, None)
        self.endRemoveRows()
        self._set_dirty(True)
        return mapping

    @property
    def dirty(self) -> bool:
        """Whether there are unsaved edits."""
        return self._dirty

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirty_changed.emit(dirty)

    def set_problems(self, problems: list[MappingProblem]) -> None:
        """Mark the rows a check found wrong (red, a warning sign, and the reasons as tooltip)."""
        found: dict[str, list[str]] = {}
        for problem in problems:
            found.setdefault(problem.local_field, []).append(problem.reason)
        self._problems = found
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(MappingColumn) - 1))

    def rows_with_problems(self) -> list[int]:
        """The rows marked by the last check."""
        return [row for row, m in enumerate(self._rows) if m.local_field in self._problems]

    def mapping_at(self, row: int) -> FieldMapping:
        """The mapping at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def row_of(self, local_field: str) -> int | None:
        """The row of a local field, if mapped."""
        return self._first_row(lambda mapping: mapping.local_field == local_field)

    def flags(self, index: ModelIndex) -> Qt.ItemFlag:
        """Every column but the local field is editable; the CRM field once the CRM's field list is read."""
        flags = super().flags(index)
        if not index.isValid() or index.column() == MappingColumn.LOCAL_FIELD:
            return flags
        if index.column() == MappingColumn.CRM_FIELD and not self._crm_fields:
            return flags
        return flags | Qt.ItemFlag.ItemIsEditable

    def cell(self, mapping: FieldMapping, column: MappingColumn, role: int) -> Any:
        """Each cell's text, its edit value, and the check's problems in red."""
        crm_field = self.crm_field_of(mapping) if column is MappingColumn.CRM_FIELD else None
        if role == Qt.ItemDataRole.DisplayRole:
            if crm_field is not None:
                return f"{crm_field.label}  ·  {crm_field.type}"
            if column is MappingColumn.LOCAL_FIELD:
                return self.local_label(mapping)
            return self._display(mapping, column)
        if role == Qt.ItemDataRole.EditRole:
            return self._edit_value(mapping, column)
        problems = self._problems.get(mapping.local_field)
        if role == Qt.ItemDataRole.ForegroundRole:
            if problems:
                return QBrush(text_colour(_PROBLEM))
            if mapping.direction is FieldDirection.OFF:
                return QBrush(_MUTED)
        if role == Qt.ItemDataRole.DecorationRole and problems and column is MappingColumn.CRM_FIELD:
            return _warning_icon()
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = list(problems or [])
            if crm_field is not None:
                lines.append(f"{crm_field.label} ({crm_field.type}); API name: {shown_name(crm_field)}")
            if column is MappingColumn.LOCAL_FIELD:
                lines.append(f"{self.local_label(mapping)}; in files and on the command line: {mapping.local_field}")
            if column is MappingColumn.TRANSFORMS:
                lines.extend(f"{transform_name(mapping, t)}: {TRANSFORM_HINTS[t]}" for t in mapping.transforms)
            return ("\n" if column is MappingColumn.TRANSFORMS else "; ").join(lines) or None
        return None

    @classmethod
    def _display(cls, mapping: FieldMapping, column: MappingColumn) -> str:
        """A cell as shown: the edited value, with choices by their names and no transform as a dash."""
        match column:
            case MappingColumn.DIRECTION:
                return FIELD_DIRECTION_NAMES[mapping.direction]
            case MappingColumn.CONFLICT_RULE:
                return CONFLICT_RULE_NAMES[mapping.conflict_rule]
            case MappingColumn.TRANSFORMS:
                return ", ".join(transform_name(mapping, t) for t in mapping.transforms) or "—"
        return str(cls._edit_value(mapping, column))

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
                return mapping.transforms

    def setData(self, index: ModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Change one cell; a refused value leaves the mapping as it was and says why."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._rows):
            return False
        mapping = self._rows[index.row()]
        column = self._columns[index.column()]
        try:
            changed = self._changed(mapping, column, value)
        except ValueError as exc:
            self.edit_refused.emit(f"{self.local_label(mapping)}: {exc}")
            return False
        if changed == mapping:
            return True
        self._rows[index.row()] = changed
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
                if isinstance(value, str):  # typed: in the order typed
                    return replace(mapping, transforms=parse_transforms(value))
                chosen = [Transform(t) for t in value]
                return replace(mapping, transforms=ordered_transforms(chosen, mapping.transforms))
            case _:
                raise ValueError("the local field is fixed")


def _warning_icon() -> Any:
    from PySide6.QtWidgets import QApplication

    return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)


def shown_name(crm_field: CrmField) -> str:
    """A CRM field's wire name as the marketer may see it: never a Pipedrive 40-hex key."""
    name = crm_field.name
    if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
        return "custom field"
    return name


#: The role under which the CRM field picker's items carry their secondary text (type and API name).
SECONDARY_ROLE = Qt.ItemDataRole.UserRole + 1


class CrmFieldItemDelegate(QStyledItemDelegate):
    """Draws a CRM field in the picker: its label, and greyed on the right its type and API name."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        """The label as usual, then the secondary text right-aligned."""
        super().paint(painter, option, index)
        secondary = index.data(SECONDARY_ROLE)
        if not secondary:
            return
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText
        painter.setPen(option.palette.color(role))
        rect: QRect = option.rect.adjusted(0, 0, -8, 0)
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), secondary)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        """Room for the label and the secondary text side by side."""
        hint = super().sizeHint(option, index)
        secondary = index.data(SECONDARY_ROLE) or ""
        width = option.fontMetrics.horizontalAdvance(f"{secondary}      ")
        return QSize(hint.width() + width, max(hint.height(), 24))


class CrmFieldPicker(QComboBox):
    """The CRM's live fields by label, searchable as you type (any part of the label or API name); only a field
    from the list can be chosen, never a typed name."""

    def __init__(self, fields: list[CrmField], mapped_name: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("CRM field")
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setItemDelegate(CrmFieldItemDelegate(self))
        for crm_field in fields:
            self.addItem(crm_field.label, mapped_name(crm_field))
            row = self.count() - 1
            self.setItemData(row, f"{crm_field.type}  ·  {shown_name(crm_field)}", SECONDARY_ROLE)
            self.setItemData(row, f"{crm_field.label} ({crm_field.type}); API name: {shown_name(crm_field)}",
                             Qt.ItemDataRole.ToolTipRole)
        searching = QCompleter(self.model(), self)
        searching.setFilterMode(Qt.MatchFlag.MatchContains)
        searching.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        searching.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        popup = searching.popup()
        if popup is not None:
            popup.setItemDelegate(CrmFieldItemDelegate(popup))
        self.setCompleter(searching)
        self.view().setMinimumWidth(420)

    def chosen(self) -> Any:
        """The chosen field's mapped name, or ``None`` when the text is not a field of the list.

        Two fields may share a label (HubSpot's own "Twitter Username" and the seed's): the item picked is the
        one taken, never the first with its label; typed text is matched exactly, then in any case, and only
        when it names one field."""
        typed = self.currentText().strip()
        position = self.currentIndex()
        if position >= 0 and self.itemText(position) == typed:
            return self.itemData(position)
        for flags in (Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchCaseSensitive, Qt.MatchFlag.MatchFixedString):
            rows = [row for row in range(self.count()) if self._label_matches(row, typed, flags)]
            if len(rows) == 1:
                return self.itemData(rows[0])
        return None

    def _label_matches(self, row: int, typed: str, flags: Qt.MatchFlag) -> bool:
        label = self.itemText(row)
        return label == typed if flags & Qt.MatchFlag.MatchCaseSensitive else label.casefold() == typed.casefold()


class CrmFieldDelegate(QStyledItemDelegate):
    """Edits the CRM field column with a :class:`CrmFieldPicker` of the CRM's live fields.

    Signals:
        refused(str): the text typed was not a field of the CRM.
    """

    refused = Signal(str)

    def __init__(self, model: MappingsTableModel, mapped_name: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._mapped_name = mapped_name

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: ModelIndex) -> QWidget:
        """A picker of the CRM's fields."""
        return CrmFieldPicker(self._model.crm_fields, self._mapped_name, parent)

    def setEditorData(self, editor: QWidget, index: ModelIndex) -> None:
        """Select the mapped field."""
        assert isinstance(editor, CrmFieldPicker)
        current = self._model.crm_field_of(self._model.mapping_at(index.row()))
        position = editor.findData(self._mapped_name(current)) if current is not None else -1
        editor.setCurrentIndex(position)
        if position < 0:
            editor.setEditText("")

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: ModelIndex) -> None:
        """Write the chosen field; text that names no field of the CRM is refused."""
        assert isinstance(editor, CrmFieldPicker)
        chosen = editor.chosen()
        if chosen is None:
            typed = editor.currentText().strip()
            if typed:
                self.refused.emit(f"the CRM has no field “{typed}”: pick one from its list")
            return
        model.setData(index, chosen, Qt.ItemDataRole.EditRole)


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


class TransformsDelegate(QStyledItemDelegate):
    """Edits a mapping's transforms with a list of them by name, each with a check box, over the cell.

    Space or a click on a box ticks it; Enter or leaving the list keeps the ticks, Escape drops them.
    """

    def __init__(self, model: MappingsTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: ModelIndex) -> QWidget:
        """The list of the transforms this mapping can use, unticked until ``setEditorData``."""
        mapping = self._model.mapping_at(index.row())
        editor = QListWidget(parent)
        editor.setAccessibleName("Transforms")
        for transform in transforms_offered(mapping):
            item = QListWidgetItem(transform_name(mapping, transform), editor)
            item.setData(Qt.ItemDataRole.UserRole, transform)
            item.setToolTip(TRANSFORM_HINTS[transform])
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
        editor.setCurrentRow(0)
        return editor

    def setEditorData(self, editor: QWidget, index: ModelIndex) -> None:
        """Tick the mapping's transforms."""
        assert isinstance(editor, QListWidget)
        chosen = set(index.data(Qt.ItemDataRole.EditRole) or ())
        for row_number in range(editor.count()):
            item = editor.item(row_number)
            ticked = item.data(Qt.ItemDataRole.UserRole) in chosen
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: ModelIndex) -> None:
        """Write the ticked transforms."""
        assert isinstance(editor, QListWidget)
        ticked = [editor.item(r).data(Qt.ItemDataRole.UserRole) for r in range(editor.count())
                  if editor.item(r).checkState() == Qt.CheckState.Checked]
        model.setData(index, ticked, Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        """As wide as the cell (or its names), as tall as the list, moved up where the view would cut it."""
        assert isinstance(editor, QListWidget)
        frame = 2 * editor.frameWidth()
        height = sum(editor.sizeHintForRow(r) for r in range(editor.count())) + frame
        width = max(option.rect.width(), editor.sizeHintForColumn(0) + frame + 8)
        rect = QRect(option.rect.left(), option.rect.top(), width, height)
        view = editor.parentWidget()
        view_height = view.height() if view is not None else height
        if rect.bottom() >= view_height:
            rect.moveBottom(max(view_height, height) - 1)
        editor.setGeometry(rect)


class PreviewColumn(IntEnum):
    """The columns of the preview of one record."""

    LOCAL_FIELD = 0
    LOCAL_VALUE = 1
    CRM_FIELD = 2
    CRM_VALUE = 3


_UNSAVED = "Unsaved changes: Save to use them in the next sync, or Revert."
_LIVE_PROBLEMS_START = "Against the CRM's live field list:"

_PREVIEW_TITLES = ("Local field", "Local value", "CRM field", "Sent to the CRM")


class FieldMappingPanel(QWidget, AsksFirst):
    """Shows and edits how each local field maps to the chosen integration's CRM field, and checks it.

    CRM fields are picked by label from the CRM's live field list (read when an integration is chosen); each edit
    is checked against that list at once (missing field, read-only, a type that cannot hold the value) and the
    preview shows one real record as the next push would write it. While there are unsaved edits the integration
    and object cannot be switched: Save or Revert first.

    Attributes:
        integration_combo, object_combo: what is shown.
        model, table: the mappings.
        keys: Enter picks the selected row's CRM field; Delete unmaps its local field (after asking).
        confirm_box: the "stop syncing this field?" question while it is open.
        save_button, revert_button: keep or drop the edits.
        check_button: checks the saved mapping against the CRM's live fields.
        refresh_fields_button: reads the CRM's field list again.
        create_fields_button: creates the seed's social fields the CRM lacks.
        defaults_button: puts the CRM's default mapping in the table (saved with Save).
        preview_combo, preview_table: the record previewed and its fields, local value -> CRM value.
        notice: what was saved, the check's problems, or why something failed.

    Signals:
        status_message(str): a short note for the status bar.
        crm_fields_loaded(): the CRM's field list was read (or failed to be).
    """

    status_message = Signal(str)
    crm_fields_loaded = Signal()

    def __init__(self, sync: SyncService, tasks: BackgroundTasks | None = None, parent: QWidget | None = None,
                 *, service: FieldMappingService | None = None) -> None:
        super().__init__(parent)
        self._sync = sync
        self._service = service if service is not None else FieldMappingService(sync)
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._checking = False
        self._creating = False
        self._loading_fields: tuple[str, RecordObject] | None = None
        self._fields: dict[tuple[str, RecordObject], list[CrmField]] = {}
        # Which integration (id, CRM, address) each name's field lists were read from.
        self._field_owners: dict[str, tuple[Any, ...]] = {}
        # The last "Create missing fields" report, kept above the live check that follows it.
        self._create_report: str | None = None
        # The widths the Local field columns were last given, by table: one that differs was dragged by hand.
        self._local_field_widths: dict[str, int] = {}

        heading = PanelHeading(
            "Field Mapping",
            "Which CRM field each local field (email, names, social profiles, followers, sentiment, engagement) "
            "syncs with, which way it flows, and who wins when both sides changed it.",
        )
        self.integration_combo = QComboBox()
        self.integration_combo.setAccessibleName("Integration")
        self.integration_combo.setMinimumWidth(160)
        self.object_combo = choice_combo("Records", OBJECT_NAMES)
        self.fields_label = QLabel("")
        self.fields_label.setObjectName("fieldsLabel")
        self.refresh_fields_button = QPushButton("Refresh fields")
        self.refresh_fields_button.setToolTip("Read the CRM's field list again (after adding a field in the CRM).")
        self.create_fields_button = QPushButton("Create missing fields")
        self.create_fields_button.setToolTip(
            "Create the social fields (usernames, profile URLs, followers, engagement) the CRM lacks, through its "
            "API; the same as `crm-desktop fields ensure`."
        )
        self.check_button = QPushButton("Check against CRM")
        self.check_button.setToolTip("Compare the saved mapping with the CRM's live field list.")
        self.defaults_button = QPushButton("Reset to defaults")
        self.defaults_button.setToolTip("Put the CRM's default mapping in the table; Save keeps it.")
        self.revert_button = QPushButton("Revert")
        self.save_button = QPushButton("Save")
        self.save_button.setProperty("primary", True)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Integration"))
        controls.addWidget(self.integration_combo)
        controls.addWidget(QLabel("Records"))
        controls.addWidget(self.object_combo)
        controls.addStretch(1)
        crm_side = QHBoxLayout()
        crm_side.addWidget(self.fields_label, 1)
        crm_side.addWidget(self.refresh_fields_button)
        crm_side.addWidget(self.create_fields_button)
        edits = QHBoxLayout()
        edits.addWidget(self.check_button)
        edits.addWidget(self.defaults_button)
        edits.addStretch(1)
        edits.addWidget(self.revert_button)
        edits.addWidget(self.save_button)

        self.notice = Notice()
        self.model = MappingsTableModel(self)
        self.table = QTableView()
        self.table.setObjectName("mappingTable")
        self.table.setAccessibleName("Field mappings")
        self.table.setModel(self.model)
        leave_on_tab(self.table)
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
        self._crm_field_delegate = CrmFieldDelegate(self.model, self._mapped_name, self)
        self._direction_delegate = ChoiceDelegate(dict(FIELD_DIRECTION_NAMES), self)
        self._rule_delegate = ChoiceDelegate(dict(CONFLICT_RULE_NAMES), self)
        self.table.setItemDelegateForColumn(MappingColumn.CRM_FIELD, self._crm_field_delegate)
        self.table.setItemDelegateForColumn(MappingColumn.DIRECTION, self._direction_delegate)
        self.table.setItemDelegateForColumn(MappingColumn.CONFLICT_RULE, self._rule_delegate)
        self._transforms_delegate = TransformsDelegate(self.model, self)
        self.table.setItemDelegateForColumn(MappingColumn.TRANSFORMS, self._transforms_delegate)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in {MappingColumn.LOCAL_FIELD: 170, MappingColumn.CRM_FIELD: 290,
                              MappingColumn.DIRECTION: 100, MappingColumn.CONFLICT_RULE: 170}.items():
            self.table.setColumnWidth(column, width)

        self.preview_combo = QComboBox()
        self.preview_combo.setAccessibleName("Record previewed")
        self.preview_combo.setMinimumWidth(320)
        self.preview_table = QTableWidget(0, len(PreviewColumn))
        self.preview_table.setObjectName("mappingPreview")
        self.preview_table.setAccessibleName("Preview of one record mapped")
        leave_on_tab(self.preview_table)
        self.preview_table.setHorizontalHeaderLabels(list(_PREVIEW_TITLES))
        self.preview_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.preview_table.setShowGrid(False)
        self.preview_table.verticalHeader().hide()
        self.preview_table.setAlternatingRowColors(True)
        preview_header = self.preview_table.horizontalHeader()
        preview_header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        preview_header.setStretchLastSection(True)
        for place, wide in {PreviewColumn.LOCAL_FIELD: 170, PreviewColumn.LOCAL_VALUE: 210,
                            PreviewColumn.CRM_FIELD: 200}.items():
            self.preview_table.setColumnWidth(place, wide)
        preview_box = QGroupBox("Preview: one record as the next push writes it")
        preview_layout = QVBoxLayout(preview_box)
        preview_row = QHBoxLayout()
        preview_row.addWidget(QLabel("Record"))
        preview_row.addWidget(self.preview_combo)
        preview_row.addStretch(1)
        preview_layout.addLayout(preview_row)
        preview_layout.addWidget(self.preview_table)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(preview_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        # Neither side is dragged (or squeezed by the Alerts dock) down to a row or two: a preview of two fields
        # does not show one record mapped.
        keep_rows_visible(self.table, MAPPING_ROWS_ALWAYS_SHOWN)
        keep_rows_visible(self.preview_table, PREVIEW_ROWS_ALWAYS_SHOWN)

        layout = scrolling_page(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addLayout(controls)
        layout.addLayout(crm_side)
        layout.addWidget(self.notice)
        layout.addWidget(split, 1)
        layout.addLayout(edits)

        self.integration_combo.currentIndexChanged.connect(self.load_mappings)
        self.object_combo.currentIndexChanged.connect(self.load_mappings)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.load_mappings)
        self.check_button.clicked.connect(self.check_against_crm)
        self.refresh_fields_button.clicked.connect(lambda: self.load_crm_fields(refresh=True))
        self.create_fields_button.clicked.connect(self.create_missing_fields)
        self.defaults_button.clicked.connect(self.reset_to_defaults)
        self.preview_combo.currentIndexChanged.connect(self.show_preview)
        self.model.edit_refused.connect(lambda reason: self.notice.say(reason, "error"))
        self._crm_field_delegate.refused.connect(lambda reason: self.notice.say(reason, "error"))
        self.model.dirty_changed.connect(self._dirty_changed)
        self.model.dataChanged.connect(self._mappings_edited)
        self.model.rowsRemoved.connect(self._mappings_edited)
        self.keys = row_keys(self.table, on_open=self.edit_crm_field, on_delete=self.confirm_unmap,
                             say=self.status_message.emit)
        self.preview_keys = row_keys(
            self.preview_table, say=self.status_message.emit,
            cannot_open="The preview shows each field in full; pick another record above to preview it.",
            cannot_delete="The preview follows the mapping above; change or remove a mapping there.")
        self.reload_integrations()

    # -- choosing

    def reload_integrations(self) -> None:
        """Re-read the integrations, keeping the chosen one, and show its mapping. A field list read from an
        integration since removed, or changed to another CRM or account under the same name, is read again."""
        integrations = self._sync.integrations.list()
        owners = {integration.name: _fields_owner(integration) for integration in integrations}
        for key in [key for key in self._fields if self._field_owners.get(key[0]) != owners.get(key[0])]:
            del self._fields[key]
        kept = refill_names(self.integration_combo, [integration.name for integration in integrations])
        if not (self.model.dirty and kept):
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
        self._create_report = None
        integration = self.integration()
        if integration is None:
            self.model.show_mappings([])
            self.model.set_crm_fields([])
            self.notice.say("Add an integration in Integrations to map its fields.", "info")
            self._fill_preview_choices(None)
            self._update_buttons()
            return
        try:
            mappings = self._sync.mappings(integration, self.record_object)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.model.show_mappings([])
            self.notice.say(error_sentence("Reading the mapping", exc), "error")
        else:
            self.model.show_mappings(mappings, self.record_object)
        fields = self._fields.get((integration.name, self.record_object))
        self.model.set_crm_fields(fields or [])
        self._fill_preview_choices(integration)
        if fields is None:
            self.load_crm_fields()
        else:
            self._check_live()
        self._update_buttons()

    def _widen_local_field_columns(self) -> None:
        """Give the local field columns of the mapping and the preview the room of their longest name ("Engagement
        history (summary)"), so none is cut to "Social engagement …"; a column the marketer dragged keeps its width."""
        for table, column in ((self.table, MappingColumn.LOCAL_FIELD), (self.preview_table, PreviewColumn.LOCAL_FIELD)):
            width = table.columnWidth(column)
            if width != self._local_field_widths.get(table.objectName(), width):
                continue  # dragged to this width: left as it is
            needed = table.sizeHintForColumn(column)
            if needed > width:
                table.setColumnWidth(column, needed)
            self._local_field_widths[table.objectName()] = table.columnWidth(column)

    def _mapped_name(self, crm_field: CrmField) -> str:
        integration = self.integration()
        return self._service.mapped_name(integration, crm_field) if integration else crm_field.name

    # -- keys: Enter edits, Delete unmaps

    def edit_crm_field(self, row: int) -> bool:
        """Enter: pick the CRM field of the mapping on ``row`` (once the CRM's field list is read)."""
        index = self.model.index(row, MappingColumn.CRM_FIELD)
        if not self.model.flags(index) & Qt.ItemFlag.ItemIsEditable:
            self.status_message.emit("The CRM's field list is not read yet; CRM fields are picked from it.")
            return False
        self.table.setCurrentIndex(index)
        self.table.edit(index)
        return True

    def confirm_unmap(self, row: int) -> QMessageBox | None:
        """Delete: ask before unmapping the local field on ``row`` (an unsaved edit until Save)."""
        mapping = self.model.mapping_at(row)
        if mapping.local_field == MATCHED_BY:
            self.status_message.emit("The email is how records are matched with the CRM's; it stays mapped.")
            return None
        crm_field = self.model.crm_field_of(mapping)
        crm_name = crm_field.label if crm_field is not None else mapping.crm_field
        return self.ask_first(
            "Remove mapping", f"Stop syncing {self.model.local_label(mapping)} with the CRM's {crm_name}?", "Remove",
            lambda: self.unmap(mapping.local_field), detail="Save keeps the change; Revert brings the row back.")

    def unmap(self, local_field: str) -> bool:
        """Take ``local_field``'s row out of the mapping (no question; Save keeps it)."""
        row = self.model.row_of(local_field)
        if row is None:
            return False
        try:
            self.model.remove_row(row)
        except ValueError as exc:
            self.notice.say(f"{local_field}: {exc}", "error")
            return False
        self.table.selectRow(min(row, self.model.rowCount() - 1))
        return True

    # -- the CRM's live field list

    def load_crm_fields(self, *, refresh: bool = False) -> asyncio.Task[None] | None:
        """Read the chosen integration's live field list (kept until Refresh fields); ``None`` when no loop runs."""
        integration = self.integration()
        if integration is None:
            return None
        key = (integration.name, self.record_object)
        if self._loading_fields == key:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no asyncio loop runs (a model test without the app's loop): fields stay unread
            return None
        if refresh:
            self._fields.pop(key, None)
        self._loading_fields = key
        self.fields_label.setText(f"Reading the {key[1].value} fields of “{key[0]}”…")
        self._update_buttons()
        return self._tasks.start(self._read_fields(*key), name=f"read fields of {key[0]}")

    async def _read_fields(self, name: str, obj: RecordObject) -> None:
        try:
            fields = await self._service.crm_fields(name, obj)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.fields_label.setText("")
            self.notice.say(error_sentence(f"Reading the field list of “{name}”", exc), "error")
        else:
            self._fields[(name, obj)] = fields
            try:
                self._field_owners[name] = _fields_owner(self._sync.integrations.get(name))
            except Exception:  # removed meanwhile: the list goes at the next reload
                self._field_owners.pop(name, None)
            if self._shows(name, obj):
                self.model.set_crm_fields(fields)
                self.fields_label.setText(f"{plural(len(fields), f'{obj.value} field')} in the CRM")
                self._check_live()
                self.show_preview()
        finally:
            if self._loading_fields == (name, obj):
                self._loading_fields = None
            self._update_buttons()
            self.crm_fields_loaded.emit()

    def showEvent(self, event: QShowEvent) -> None:
        """Read the CRM's field list if it is still unread: the panel the window opens on is built before the
        app's loop runs, and a list that failed to load is tried again when the panel is shown again."""
        super().showEvent(event)
        integration = self.integration()
        if integration is not None and (integration.name, self.record_object) not in self._fields:
            self.load_crm_fields()
        if integration is not None:
            # People imported, added or synced while another panel was shown are offered to preview too.
            self._fill_preview_choices(integration)

    def _shows(self, name: str, obj: RecordObject) -> bool:
        return self.integration_combo.currentText() == name and self.record_object is obj

    def _mappings_edited(self, *_: Any) -> None:
        self._check_live()
        self.show_preview()

    def _check_live(self) -> None:
        """Mark the rows the CRM's live fields cannot take, as they stand (saved or not)."""
        integration = self.integration()
        fields = self.model.crm_fields
        if integration is None or not fields:
            return
        problems = self._service.problems(integration, self.record_object, self.model.mappings(), fields)
        self.model.dataChanged.disconnect(self._mappings_edited)
        try:
            self.model.set_problems(problems)
        finally:
            self.model.dataChanged.connect(self._mappings_edited)
        lines = [_UNSAVED] if self.model.dirty else []
        if self._create_report:
            lines.append(self._create_report)
        if not problems:
            # The list of problems goes with the last one: the notice keeps what it said above it, or nothing.
            if self.notice.tone == "error" and _LIVE_PROBLEMS_START in self.notice.text():
                if lines:
                    self.notice.say("\n".join(lines), "info")
                else:
                    self.notice.clear_notice()
            return
        if self._create_report:
            lines.append("")
        lines.append(
            f"{_LIVE_PROBLEMS_START} {plural(len(problems), 'field')} the CRM cannot take as mapped (marked ⚠):")
        lines += problem_lines(self.record_object, problems)
        self.notice.say("\n".join(lines), "error")

    # -- the preview

    def _fill_preview_choices(self, integration: Integration | None) -> None:
        emails: list[str] = []
        if integration is not None:
            try:
                emails = self._service.preview_choices(integration, self.record_object)
            except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
                self.notice.say(error_sentence("Reading the records to preview", exc), "error")
        shown = self.preview_combo.currentText()
        self.preview_combo.blockSignals(True)
        self.preview_combo.clear()
        self.preview_combo.addItems(emails)
        if shown in emails:
            self.preview_combo.setCurrentIndex(emails.index(shown))  # the record being looked at stays chosen
        elif emails:
            # Picked by hand: a combo box with a placeholder text leaves the items added unpicked (Qt picks the
            # first only without one), which would show an empty preview under "No leads waiting to be pushed".
            self.preview_combo.setCurrentIndex(0)
        # Shown while there is nothing to choose, so an empty preview says why.
        self.preview_combo.setPlaceholderText(
            "No integration yet" if integration is None
            else "No contacts yet: import or add them in People" if self.record_object is RecordObject.CONTACT
            else "No leads waiting to be pushed")
        self.preview_combo.blockSignals(False)
        self.show_preview()

    def show_preview(self) -> None:
        """Show the chosen record mapped by the table's mapping (saved or not), local value -> CRM value."""
        email = self.preview_combo.currentText()
        integration = self.integration()
        lines: list[PreviewLine] = []
        if email and integration is not None:
            try:
                lines = self._service.preview(integration, self.record_object, email, self.model.mappings(),
                                              self.model.crm_fields)
            except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
                self.notice.say(error_sentence("The preview", exc), "error")
        self.preview_table.setRowCount(len(lines))
        for number, line in enumerate(lines):
            cells = (line.local_label, "—" if line.local_value is None else line.local_value, line.crm_label,
                     line.sent)
            for place, text in zip(PreviewColumn, cells, strict=True):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if place is PreviewColumn.CRM_VALUE and line.refused is not None:
                    # Drawn as the mapping's flagged rows are: the push fails this record, unsent.
                    item.setForeground(QBrush(text_colour(_PROBLEM)))
                    item.setIcon(_warning_icon())
                    item.setToolTip(f"Not sent: {line.crm_label} cannot take this value: {line.refused}. "
                                    "The next push fails this record, unsent.")
                elif place is PreviewColumn.CRM_VALUE and (not line.pushed or line.crm_value is None):
                    item.setForeground(QBrush(_MUTED))
                self.preview_table.setItem(number, place, item)
        self._widen_local_field_columns()

    # -- buttons

    def _dirty_changed(self, dirty: bool) -> None:
        if dirty:
            self.notice.say(_UNSAVED, "info")
            self._check_live()
        self._update_buttons()

    def _update_buttons(self) -> None:
        dirty = self.model.dirty
        has_integration = self.integration_combo.count() > 0
        self.integration_combo.setEnabled(not dirty)
        self.object_combo.setEnabled(not dirty and has_integration)
        self.save_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self.check_button.setEnabled(has_integration and not dirty and not self._checking)
        self.defaults_button.setEnabled(has_integration)
        self.refresh_fields_button.setEnabled(has_integration and self._loading_fields is None)
        self.create_fields_button.setEnabled(has_integration and not self._creating)

    def reset_to_defaults(self) -> None:
        """Put the CRM's default mapping of the shown records in the table (Save keeps it, Revert drops it)."""
        integration = self.integration()
        if integration is None:
            return
        defaults = self._service.defaults(integration, self.record_object)
        if defaults == self.model.mappings():
            self.notice.say("The mapping is the default one already.", "info")
            return
        self.model.show_edited(defaults, self.record_object)
        self._check_live()
        self.show_preview()

    # -- saving and checking

    def save(self, *, despite_problems: bool = False) -> bool:
        """Save the edited mapping; say why when that fails. While rows are marked ⚠ (the CRM cannot take them as
        mapped), ask first: the CLI refuses such a mapping, the panel lets the marketer save it on purpose (to create
        the field in the CRM afterwards, say)."""
        integration = self.integration()
        if integration is None or not self.model.dirty:
            return False
        flagged = self.model.rows_with_problems()
        if flagged and not despite_problems:
            names = ", ".join(self.model.local_label(self.model.mapping_at(row)) for row in flagged)
            self.ask_first(
                "Save mapping", f"{plural(len(flagged), 'field')} marked ⚠ cannot be synced as mapped ({names}). "
                "Save anyway?", "Save anyway", lambda: self.save(despite_problems=True),
                detail="Until the CRM has the field (Create missing fields, or its admin) or the row is changed, "
                       "the CRM refuses the records a sync sends with it (the seed's social fields are left out "
                       "instead).", warning=True)
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
            if self._shows(name, obj):
                self.model.set_problems(problems)
            if problems:
                mapping = f"the {OBJECT_NAMES[obj].lower()} mapping of “{name}”"
                lines = [f"{plural(len(problems), 'problem')} with {mapping}:"]
                lines += problem_lines(obj, problems)
                self.notice.say("\n".join(lines), "error")
            else:
                self.notice.say(f"Every mapped field exists in “{name}” and can take its values.", "ok")
        finally:
            self._checking = False
            self._update_buttons()

    def create_missing_fields(self) -> asyncio.Task[None] | None:
        """Create the seed's social fields the chosen CRM lacks, then read its field list again."""
        integration = self.integration()
        if integration is None or self._creating:
            return None
        self._creating = True
        self._update_buttons()
        self.notice.say(f"Creating the social fields “{integration.name}” lacks…", "info")
        return self._tasks.start(self._create(integration.name), name=f"create fields in {integration.name}")

    async def _create(self, name: str) -> None:
        try:
            report = await self._service.create_missing_fields(name)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self.notice.say(error_sentence(f"Creating fields in “{name}”", exc), "error")
        else:
            self._create_report = ensure_sentence(report)
            self.notice.say(self._create_report, "ok" if report.ok else "error")
            self.status_message.emit(f"Fields of “{name}” checked")
            for key in [key for key in self._fields if key[0] == name]:
                del self._fields[key]
            if self.integration_combo.currentText() == name:
                self.load_crm_fields(refresh=True)
        finally:
            self._creating = False
            self._update_buttons()


def _fields_owner(integration: Integration) -> tuple[Any, ...]:
    """What a field list read under an integration's name belongs to: that integration, its CRM and address."""
    return integration.id, integration.provider, integration.base_url, integration.domain


def ensure_sentence(report: EnsureReport) -> str:
    """What "Create missing fields" did, in a few lines."""
    created = [f.label for f in report.fields if f.status.value == "created"]
    present = [f for f in report.fields if f.status.value == "present"]
    lines = [f"Created {plural(len(created), 'field')} in “{report.integration}”: {', '.join(created)}." if created
             else f"“{report.integration}” has every social field already ({len(present)})."]
    lines += [f"• {f.label}: {f.reason}" for f in report.fields if f.reason]
    lines += list(report.notes)
    return "\n".join(lines)
