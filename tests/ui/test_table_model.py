"""The rows table model every record table shares: columns numbered with their headers, and Qt's model rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from crm_desktop.ui.table_model import RowsTableModel, TableColumn

DISPLAY = Qt.ItemDataRole.DisplayRole
HORIZONTAL = Qt.Orientation.Horizontal


class FruitColumn(TableColumn):
    """A two-column table: name and count."""

    NAME = "Fruit"
    COUNT = "How many"


@dataclass(frozen=True)
class Fruit:
    name: str
    count: int


class FruitModel(RowsTableModel[Fruit, FruitColumn]):
    columns = FruitColumn

    def show(self, fruits: list[Fruit]) -> None:
        self._show_rows(fruits)

    def row_of(self, name: str) -> int | None:
        return self._first_row(lambda fruit: fruit.name == name)

    def cell(self, row: Fruit, column: FruitColumn, role: int) -> Any:
        if role == DISPLAY:
            return row.name if column is FruitColumn.NAME else row.count
        return None


def test_columns_are_numbered_in_order_and_carry_their_header() -> None:
    assert [int(column) for column in FruitColumn] == [0, 1]
    assert FruitColumn(1) is FruitColumn.COUNT
    assert [column.title for column in FruitColumn] == ["Fruit", "How many"]
    assert FruitColumn.COUNT.value == 1


def test_cells_headers_and_the_edges_of_the_table(qtbot: QtBot) -> None:
    model = FruitModel()
    QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)
    with qtbot.waitSignal(model.modelReset):
        model.show([Fruit("apple", 3), Fruit("pear", 1)])

    assert (model.rowCount(), model.columnCount()) == (2, 2)
    assert model.data(model.index(1, FruitColumn.NAME)) == "pear"
    assert model.data(model.index(0, FruitColumn.COUNT)) == 3
    assert [model.headerData(c, HORIZONTAL) for c in range(model.columnCount())] == ["Fruit", "How many"]
    # Nothing down the side, beyond the last column or outside the rows; a flat table has no children.
    assert model.headerData(0, Qt.Orientation.Vertical) is None
    assert model.headerData(2, HORIZONTAL) is None
    assert model.data(QModelIndex()) is None
    assert model.rowCount(model.index(0, 0)) == 0 and model.columnCount(model.index(0, 0)) == 0
    assert (model.row_of("pear"), model.row_of("plum")) == (1, None)
