"""The import preview's tables: refused rows and values not kept, read a screenful at a time by their views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt

from crm_desktop.app.people import ImportPreview
from crm_desktop.ui.table_model import NUMBER_ALIGNMENT, RowsTableModel, TableColumn

#: A cell's text longer than this also shows whole in its tooltip (as the dialogs' small tables do).
TOOLTIP_FROM = 40


class RefusedColumn(TableColumn):
    """The columns of the refused rows, in order."""

    LINE = "Line"
    RECORD = "Record"
    FIELD = "Field"
    REASON = "Reason"


class NotKeptColumn(TableColumn):
    """The columns of the valid rows' values an import would not keep, in order."""

    LINE = "Line"
    RECORD = "Record"
    COLUMNS = "Columns"
    WHY = "Why not kept"


ColumnT = TypeVar("ColumnT", bound=TableColumn)


class _TextRowsModel(RowsTableModel[tuple[str, ...], ColumnT]):
    """Rows of text, the line number right-aligned as every count is; a view asks only for the rows on screen, so
    a file with 30,000 refused rows opens its preview at once (a widget per cell would take seconds to build)."""

    #: The columns whose text is always in the tooltip (a reason cut short by its column).
    whole_in_tooltip: tuple[TableColumn, ...] = ()

    def __init__(self, rows: Sequence[tuple[str, ...]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._show_rows(list(rows))

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """The column titles, the line number's right-aligned over its figures."""
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.TextAlignmentRole
                and section == 0):
            return NUMBER_ALIGNMENT
        return super().headerData(section, orientation, role)

    def cell(self, row: tuple[str, ...], column: ColumnT, role: int) -> Any:
        text = row[column]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 0:
            return NUMBER_ALIGNMENT
        if role == Qt.ItemDataRole.ToolTipRole:
            return text if len(text) > TOOLTIP_FROM or (column in self.whole_in_tooltip and text) else None
        return None


class RefusedRowsModel(_TextRowsModel[RefusedColumn]):
    """An import preview's refused rows: line, record, field (as the marketer knows it) and reason."""

    columns = RefusedColumn

    @classmethod
    def of(cls, preview: ImportPreview, parent: QObject | None = None) -> RefusedRowsModel:
        """The refused rows of ``preview``, in the file's order."""
        return cls([(str(p.line), p.record, *preview.in_words(p)) for p in preview.problems], parent)


class NotKeptRowsModel(_TextRowsModel[NotKeptColumn]):
    """An import preview's valid rows with values it would not keep: line, record, the columns and why."""

    columns = NotKeptColumn
    whole_in_tooltip = (NotKeptColumn.WHY,)

    @classmethod
    def of(cls, preview: ImportPreview, parent: QObject | None = None) -> NotKeptRowsModel:
        """The warnings of ``preview``, in the file's order."""
        return cls([(str(w.line), w.record, ", ".join(w.columns), w.reason) for w in preview.warnings], parent)
