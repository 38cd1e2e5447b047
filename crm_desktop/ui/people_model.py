"""The People list's table model: a window over contacts or leads, its row count from one count query and its
pages read by keyset around what the view shows (never every row in memory)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from enum import IntEnum
from typing import Any, Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from crm_desktop.app.people import Keyset, PeopleColumn, PeopleQuery, PersonLine
from crm_desktop.ui.wording import short_time

logger = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex


class PeopleReader(Protocol):
    """The reads the model needs (the People service has them)."""

    def count(self, query: PeopleQuery) -> int:
        """How many rows ``query`` matches."""

    def page(
        self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *, inclusive: bool = False
    ) -> Sequence[PersonLine]:
        """At most ``limit`` rows after (or from) a keyset."""

    def keyset_at(
        self, query: PeopleQuery, offset: int, anchor: Keyset | None = None, *, backwards: bool = False
    ) -> Keyset | None:
        """The keyset ``offset`` rows from an anchor."""


#: Rows read per page: a few screenfuls, small enough to read in a few milliseconds.
PAGE_SIZE = 200
#: Pages kept in memory; older ones are dropped (and read again if the view comes back to them).
PAGES_KEPT = 64

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
    """Contacts or leads of a query as a window: ``rowCount`` is the query's count, and a page of ``page_size``
    rows is read when the view first asks for one of its rows.

    A page next to one already read starts from that page's last keyset; any other page starts at a keyset found
    by stepping ``offset`` rows from the nearest known page start (or from either end) over the sort column alone.
    At most ``pages_kept`` pages are held, so scrolling a million rows keeps memory and garbage collection small.
    Sorting and filtering start a new query in SQL, never a sort in memory.

    Attributes:
        query: the current filter and sort.
        total: how many rows the query matches.
        pages_loaded: pages read since the last reset.

    Signals:
        reset_done(int): the query changed and its count is in; the argument is the total.
    """

    reset_done = Signal(int)

    def __init__(
        self,
        reader: PeopleReader,
        query: PeopleQuery | None = None,
        parent: QObject | None = None,
        page_size: int = PAGE_SIZE,
        pages_kept: int = PAGES_KEPT,
    ) -> None:
        super().__init__(parent)
        self._reader = reader
        self._page_size = page_size
        self._pages_kept = max(pages_kept, 2)
        self.query = query or PeopleQuery()
        self._pages: OrderedDict[int, list[PersonLine]] = OrderedDict()
        #: The first keyset of every page read since the reset: tiny, and the start points of jumps.
        self._starts: dict[int, Keyset] = {}
        self.total = 0
        self.pages_loaded = 0

    # -- reading ---------------------------------------------------------------------------------------------

    def set_query(self, query: PeopleQuery) -> None:
        """Show ``query``'s rows from the first page on."""
        self.query = query
        self.reload()

    def reload(self) -> None:
        """Count the query's rows again and forget the pages read (after an import, a sync or a new filter)."""
        self.beginResetModel()
        self._pages.clear()
        self._starts.clear()
        self.pages_loaded = 0
        try:
            self.total = self._reader.count(self.query)
            if self.total:
                self._page(0)
        except Exception:
            self.total = 0
            self.endResetModel()
            raise
        self.endResetModel()
        self.reset_done.emit(self.total)

    def refresh(self) -> None:
        """Read the rows on show again (a record changed) without resetting the view or its selection."""
        self._pages.clear()
        self._starts.clear()
        if self.total:
            self.dataChanged.emit(self.index(0, 0), self.index(self.total - 1, len(PersonColumn) - 1))

    @property
    def pages_held(self) -> int:
        """Pages in memory now."""
        return len(self._pages)

    def _page(self, number: int) -> list[PersonLine]:
        """Page ``number``, read now if it is not held."""
        held = self._pages.get(number)
        if held is not None:
            self._pages.move_to_end(number)
            return held
        page = self._read_page(number)
        self.pages_loaded += 1
        self._pages[number] = page
        if page:
            self._starts[number] = (page[0].sort_key, page[0].id)
        while len(self._pages) > self._pages_kept:
            self._pages.popitem(last=False)
        return page

    def _read_page(self, number: int) -> list[PersonLine]:
        size = self._page_size
        if number == 0:
            return list(self._reader.page(self.query, None, size))
        before = self._pages.get(number - 1)
        if before is not None and len(before) == size:
            return list(self._reader.page(self.query, (before[-1].sort_key, before[-1].id), size))
        start = self._starts.get(number)
        if start is None:
            start = self._find_start(number)
            if start is None:
                return []
        return list(self._reader.page(self.query, start, size, inclusive=True))

    def _find_start(self, number: int) -> Keyset | None:
        """The keyset of the page's first row, stepping as few rows as possible from a known page start or an end."""
        first_row = number * self._page_size
        # (rows to step, anchor, backwards): from the first row, from the last, or from a known page start.
        choices: list[tuple[int, Keyset | None, bool]] = [
            (first_row, None, False), (self.total - 1 - first_row, None, True),
        ]
        for known, key in self._starts.items():
            if known <= number:
                choices.append(((number - known) * self._page_size, key, False))
            else:
                choices.append(((known - number) * self._page_size - 1, key, True))
        steps, anchor, backwards = min(choices, key=lambda choice: choice[0])
        return self._reader.keyset_at(self.query, max(steps, 0), anchor, backwards=backwards)

    def line(self, row: int) -> PersonLine | None:
        """The person on ``row`` (read with its page if needed)."""
        if not 0 <= row < self.total:
            return None
        page = self._page(row // self._page_size)
        offset = row % self._page_size
        return page[offset] if offset < len(page) else None

    def row_of(self, local_id: int) -> int | None:
        """The row of a local id among the pages held."""
        for number, page in self._pages.items():
            for offset, line in enumerate(page):
                if line.id == local_id:
                    return number * self._page_size + offset
        return None

    # -- Qt's model interface --------------------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else self.total

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
            line = self.line(index.row())
            if line is None:
                return None
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
