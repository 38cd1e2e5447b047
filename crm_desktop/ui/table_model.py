"""The shape every record table's model shares: a flat list of rows under named columns, usable without a view."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Generic, Self, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

ModelIndex = QModelIndex | QPersistentModelIndex


class TableColumn(IntEnum):
    """A table's columns, in order, each declared with its header (``STARTED = "Started"``): numbered 0, 1, 2…

    Attributes:
        title: the column's header.
    """

    title: str

    def __new__(cls, title: str) -> Self:
        number = len(cls.__members__)
        column = int.__new__(cls, number)
        column._value_ = number
        column.title = title
        return column


RowT = TypeVar("RowT")
ColumnT = TypeVar("ColumnT", bound=TableColumn)

#: How a number sits in its cell: right-aligned, vertically centred.
NUMBER_ALIGNMENT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class RowsTableModel(QAbstractTableModel, Generic[RowT, ColumnT]):
    """A flat table: one row per item of ``_rows``, one column per member of :attr:`columns`.

    Counting rows and columns, the titles across the top and refusing an index outside the rows are done here
    once; a subclass names its columns and says what a cell holds per role in :meth:`cell`.

    Attributes:
        columns: the table's :class:`TableColumn` enum.
    """

    columns: type[ColumnT]

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RowT] = []
        self._columns: tuple[ColumnT, ...] = tuple(self.columns)

    def _show_rows(self, rows: list[RowT]) -> None:
        """Show ``rows`` instead of what is shown (a model reset: views drop their selection)."""
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def _first_row(self, matches: Callable[[RowT], bool]) -> int | None:
        """The number of the first row that ``matches``, if one does."""
        return next((number for number, row in enumerate(self._rows) if matches(row)), None)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's own signature)
        """How many rows (none under a valid parent: this is a flat table)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        """How many columns."""
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles across the top; nothing down the side."""
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self._columns):
            return self._columns[section].title
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """What the cell holds under ``role`` (:meth:`cell`); nothing for an index outside the rows."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        return self.cell(self._rows[index.row()], self._columns[index.column()], role)

    def cell(self, row: RowT, column: ColumnT, role: int) -> Any:
        """What ``row``'s cell in ``column`` holds under ``role`` (``None``: nothing)."""
        raise NotImplementedError
