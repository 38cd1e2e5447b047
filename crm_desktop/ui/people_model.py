"""The People list's table model: contacts or leads read a page at a time (keyset paging) as the view scrolls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from crm_desktop.app.people import Keyset, PeopleColumn, PeopleQuery, PersonLine
from crm_desktop.ui.wording import short_time

logger = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex

#: Loads the page of ``query`` after a keyset, at most ``limit`` rows.
PageLoader = Callable[[PeopleQuery, Keyset | None, int], Sequence[PersonLine]]
#: Counts the rows ``query`` matches.
CountLoader = Callable[[PeopleQuery], int]

#: Rows read per page: a screenful many times over, small enough to read in a few milliseconds.
PAGE_SIZE = 200


class PersonColumn(IntEnum):
    """The columns of the People list, in order."""

    NAME = 0
    EMAIL = 1
    COMPANY = 2
    SCORE = 3
    PLATFORMS = 4
    UPDATED = 5


HEADERS = {
    PersonColumn.NAME: "Name",
    PersonColumn.EMAIL: "Email",
    PersonColumn.COMPANY: "Company",
    PersonColumn.SCORE: "Score",
    PersonColumn.PLATFORMS: "Platforms",
    PersonColumn.UPDATED: "Updated",
}

#: The SQL sort behind each sortable column (Platforms is not sortable).
SORT_COLUMNS = {
    PersonColumn.NAME: PeopleColumn.NAME,
    PersonColumn.EMAIL: PeopleColumn.EMAIL,
    PersonColumn.COMPANY: PeopleColumn.COMPANY,
    PersonColumn.SCORE: PeopleColumn.SCORE,
    PersonColumn.UPDATED: PeopleColumn.UPDATED,
}


_DISPLAY = Qt.ItemDataRole.DisplayRole.value
_ALIGNMENT = Qt.ItemDataRole.TextAlignmentRole.value
_USER = Qt.ItemDataRole.UserRole.value
_RIGHT = (Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value
_NAME, _EMAIL, _COMPANY, _SCORE, _PLATFORMS = (int(c) for c in (
    PersonColumn.NAME, PersonColumn.EMAIL, PersonColumn.COMPANY, PersonColumn.SCORE, PersonColumn.PLATFORMS))


class PeopleTableModel(QAbstractTableModel):
    """Contacts or leads of a query, read ``PAGE_SIZE`` rows at a time as the view asks for more.

    Rows are held as the compact lines the store returns; sorting and filtering start a new query in SQL, never
    a sort in memory.

    Attributes:
        query: the current filter and sort.
        total: how many rows the query matches (for the panel's count).
        pages_loaded: pages read since the last reset.

    Signals:
        reset_done(int): the query changed and its first page is in; the argument is the total.
    """

    reset_done = Signal(int)

    def __init__(
        self,
        load_page: PageLoader,
        count: CountLoader,
        query: PeopleQuery | None = None,
        parent: QObject | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(parent)
        self._load_page = load_page
        self._count = count
        self._page_size = page_size
        self.query = query or PeopleQuery()
        self._rows: list[PersonLine] = []
        self._exhausted = True
        self.total = 0
        self.pages_loaded = 0

    # -- reading ---------------------------------------------------------------------------------------------

    def set_query(self, query: PeopleQuery) -> None:
        """Show ``query``'s rows from the first page on."""
        self.query = query
        self.reload()

    def reload(self) -> None:
        """Read the first page again (after an import, a sync or a new filter)."""
        self.beginResetModel()
        self._rows = []
        self.pages_loaded = 0
        self._exhausted = False
        try:
            self.total = self._count(self.query)
            self._rows.extend(self._next_page())
        except Exception:
            self._exhausted = True
            self.endResetModel()
            raise
        self.endResetModel()
        self.reset_done.emit(self.total)

    def _next_page(self) -> list[PersonLine]:
        """The page after the last loaded row (the keyset is that row's sort value and id)."""
        after = (self._rows[-1].sort_key, self._rows[-1].id) if self._rows else None
        page = list(self._load_page(self.query, after, self._page_size))
        self.pages_loaded += 1
        if len(page) < self._page_size:
            self._exhausted = True
        return page

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008 - Qt's signature
        if parent.isValid() or self._exhausted:
            return
        page = self._next_page()
        if not page:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        self._rows.extend(page)
        self.endInsertRows()

    def line(self, row: int) -> PersonLine | None:
        """The person on ``row``, if loaded."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, local_id: int) -> int | None:
        """The loaded row of a local id."""
        for number, line in enumerate(self._rows):
            if line.id == local_id:
                return number
        return None

    # -- Qt's model interface --------------------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(PersonColumn)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[PersonColumn(section)]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            if section == PersonColumn.SCORE:
                return "Engagement score, 0-100 (a contact shows its lead's score)"
            if section == PersonColumn.PLATFORMS:
                return "Social networks of the person's profiles (not sortable)"
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell and role on each repaint: plain int comparisons, no enum lookups.
        if role == _DISPLAY:
            row = index.row()
            if not 0 <= row < len(self._rows):
                return None
            line = self._rows[row]
            column = index.column()
            if column == _NAME:
                return line.name or "—"
            if column == _EMAIL:
                return line.email
            if column == _COMPANY:
                return line.company or ""
            if column == _SCORE:
                return f"{line.score:.1f}" if line.score is not None else "—"
            if column == _PLATFORMS:
                return ", ".join(line.platforms)
            return short_time(line.updated_at)
        if role == _ALIGNMENT and index.column() == _SCORE:
            return _RIGHT
        if role == _USER:
            line_or_none = self.line(index.row())
            return line_or_none.id if line_or_none is not None else None
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort in SQL by ``column`` and read the first page again (Platforms keeps the current order)."""
        sort = SORT_COLUMNS.get(PersonColumn(column))
        if sort is None:
            return
        descending = order == Qt.SortOrder.DescendingOrder
        if sort is self.query.sort and descending == self.query.descending:
            return
        self.set_query(replace(self.query, sort=sort, descending=descending))
