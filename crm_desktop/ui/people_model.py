"""The People list's table model: a window over contacts or leads, its row count from one count query and its
pages read by keyset around what the view shows (never every row in memory)."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
    SignalInstance,
)

from crm_desktop.app.people import Keyset, PeopleColumn, PeopleQuery, PersonLine
from crm_desktop.ui.wording import PLATFORM_NAMES, short_time

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
#: Pages asked for in the background and not read yet; older requests are dropped (the view has moved on).
PAGES_WAITING = 8


@dataclass(frozen=True)
class _PagePlan:
    """How to read one page: from a keyset (``after``, ``inclusive`` of it), or after stepping ``seek``'s rows
    (steps, anchor, backwards) to find that keyset."""

    after: Keyset | None
    inclusive: bool
    seek: tuple[int, Keyset | None, bool] | None = None


def _read(reader: PeopleReader, query: PeopleQuery, size: int, plan: _PagePlan) -> list[_Row]:
    """Read one page as planned, as held rows (safe on any thread: the store opens a session per call).

    The rows are made where they are read, so the PersonLines die young there and what waits for the GUI thread
    is already untracked by the collector."""
    after = plan.after
    if plan.seek is not None:
        steps, anchor, backwards = plan.seek
        after = reader.keyset_at(query, steps, anchor, backwards=backwards)
        if after is None:
            return []
    return [_row(line) for line in reader.page(query, after, size, inclusive=plan.inclusive)]


def _hand_over(answer: SignalInstance, read: Callable[[], object], *tags: object) -> None:
    """On the reading thread: run ``read`` and hand what it read, or the error it raised, to the GUI thread through
    ``answer`` (after ``tags``: the generation, the page number)."""
    result: object
    try:
        result = read()
    except Exception as exc:  # the store went away or failed: said on the GUI thread
        result = exc
    with contextlib.suppress(RuntimeError):  # the model was deleted meanwhile
        answer.emit(*tags, result)


def _fresh_plan(number: int, size: int, total: int, read: list[tuple[int, list[_Row]]]) -> _PagePlan:
    """How to read page ``number`` knowing only the pages ``read`` just now: after the page before it, else by
    stepping from the nearer end of the list."""
    if number == 0:
        return _PagePlan(None, False)
    if read and read[-1][0] == number - 1 and len(read[-1][1]) == size:
        return _PagePlan(_keyset(read[-1][1][-1]), False)
    first_row = number * size
    if first_row <= total - 1 - first_row:
        return _PagePlan(None, True, (first_row, None, False))
    return _PagePlan(None, True, (max(total - 1 - first_row, 0), None, True))


#: A held row: ``PersonLine``'s fields in order, as a plain tuple of plain values. CPython stops tracking such a
#: tuple at its first young collection, so the pages a long scroll holds never reach the old generation, whose
#: growth is what sets off a full collection (a 100 ms stall with the app's 150,000 long-lived objects).
_Row = tuple[int, str, str | None, str | None, str | None, float | None, tuple[str, ...], datetime, Any]


def _row(line: PersonLine) -> _Row:
    return (line.id, line.email, line.first_name, line.last_name, line.company, line.score, line.platforms,
            line.updated_at, line.sort_key)


def _count_and_read(
    reader: PeopleReader, query: PeopleQuery, size: int, numbers: list[int]
) -> tuple[int, list[tuple[int, list[_Row]]]]:
    """Count ``query`` and read pages ``numbers`` again from scratch (a changed row may have moved, so no keyset
    read before is trusted); pages past the new end are left out."""
    total = reader.count(query)
    pages: list[tuple[int, list[_Row]]] = []
    for number in numbers:
        if number and number * size >= total:
            continue
        pages.append((number, _read(reader, query, size, _fresh_plan(number, size, total, pages))))
    return total, pages


def _keyset(row: _Row) -> Keyset:
    """Where a page read after ``row`` starts: its sort value and id."""
    return row[8], row[0]


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

    With ``background``, a page the view paints before it is read is read on a reading thread (the newest asked
    for first) and its rows are drawn when it arrives, so dragging the scroll bar never waits for the store;
    :meth:`line` still reads at once (a row the user picked). A new query (a filter typed, a sort clicked) is
    counted and its first page read on that thread too: the list is empty and :attr:`busy` until both are in,
    and the answer to a query the user has already replaced is dropped.

    Attributes:
        query: the current filter and sort.
        total: how many rows the query matches.
        pages_loaded: pages read since the last reset.
        busy: a new query's count and first page are being read.

    Signals:
        reset_done(int): the query changed and its count is in; the argument is the total.
        refreshed(int): the rows on show and the count were read again (:meth:`refresh`); the argument is the total.
        busy_changed(bool): reading a new query's count and first page started (True) or ended (False).
        read_failed(str): a new query could not be read; the argument says why.
    """

    reset_done = Signal(int)
    refreshed = Signal(int)
    busy_changed = Signal(bool)
    read_failed = Signal(str)
    _page_read = Signal(int, int, object)
    _first_read = Signal(int, object)
    _pages_read_again = Signal(int, object)
    _read_aside_done = Signal(object, object)

    def __init__(
        self,
        reader: PeopleReader,
        query: PeopleQuery | None = None,
        parent: QObject | None = None,
        page_size: int = PAGE_SIZE,
        pages_kept: int = PAGES_KEPT,
        *,
        background: bool = False,
    ) -> None:
        super().__init__(parent)
        self._reader = reader
        self._background = background
        self._lock = threading.Lock()
        self._waiting: OrderedDict[int, _PagePlan] = OrderedDict()
        #: Pages (with their generation) being read, or read and not yet stored by the GUI thread: not asked for
        #: again meanwhile (a view repainting before a read page has arrived would read it twice).
        self._in_flight: set[tuple[int, int]] = set()
        #: A task that reads waiting pages is queued or running on the reading thread; it reads until none wait,
        #: so a fast drag queues one task, not one per page the view went by.
        self._pages_task = False
        self._generation = 0
        self._executor: ThreadPoolExecutor | None = None
        self._page_read.connect(self._page_arrived)
        self._first_read.connect(self._first_arrived)
        self._pages_read_again.connect(self._pages_arrived_again)
        self._read_aside_done.connect(self._aside_arrived)
        self.busy = False
        self._page_size = page_size
        self._pages_kept = max(pages_kept, 2)
        self.query = query or PeopleQuery()
        self._pages: OrderedDict[int, list[_Row]] = OrderedDict()
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
        """Count the query's rows again and forget the pages read (after an import, a sync or a new filter); in
        the background, the count and the first page are read on the reading thread."""
        if self._background:
            self._reload_in_background()
            return
        self.beginResetModel()
        self._forget()
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

    def _reload_in_background(self) -> None:
        self.beginResetModel()
        self._forget()
        self.pages_loaded = 0
        self.total = 0
        self.endResetModel()
        generation, query = self._generation, self.query
        if not self.busy:
            self.busy = True
            self.busy_changed.emit(True)
        self._reading_thread().submit(self._read_first, generation, query)

    def _outdated(self, generation: int) -> bool:
        """Whether a newer query came since ``generation`` (what was asked for it is not worth reading)."""
        with self._lock:
            return generation != self._generation

    def _read_first(self, generation: int, query: PeopleQuery) -> None:
        """On the reading thread: count ``query`` and read its first page, unless a newer query came first."""
        if self._outdated(generation):
            return

        def read() -> tuple[int, list[_Row]]:
            page = _read(self._reader, query, self._page_size, _PagePlan(None, False))
            # A first page that is not full is every row: a narrow filter skips the count's own scan.
            return (len(page) if len(page) < self._page_size else self._reader.count(query)), page

        _hand_over(self._first_read, read, generation)

    def _first_arrived(self, generation: int, result: object) -> None:
        if generation != self._generation:
            return  # the user changed the query again; its own read is on the way
        self.busy = False
        self.busy_changed.emit(False)
        if isinstance(result, Exception):
            logger.warning("the people list could not be read: %s", result)
            self.read_failed.emit(str(result))
            return
        assert isinstance(result, tuple)
        total, page = result
        self.beginResetModel()
        self.total = total
        if page:
            self.pages_loaded += 1
            self._store(0, page)
        self.endResetModel()
        self.reset_done.emit(total)

    def _reading_thread(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="people-pages")
        return self._executor

    def refresh(self) -> None:
        """Count the query's rows and read the rows on show again (a record changed, a sync pulled new ones) without
        resetting the view or its selection: rows a new count adds are appended, rows it drops are removed from the
        end. In the background, they are read on the reading thread and the rows read before stay on show until
        then. :attr:`refreshed` says when they are in."""
        if self.busy:  # the list is empty until its first page is in: read that again, with the change
            self._reload_in_background()
            return
        recent = sorted(list(self._pages)[-4:]) or [0]
        if self._background:
            with self._lock:
                generation, query = self._generation, self.query
            self._reading_thread().submit(self._read_again, generation, query, recent)
            return
        self._pages_arrived_again(self._generation, _count_and_read(self._reader, self.query, self._page_size, recent))

    def _all_rows_changed(self) -> None:
        if self.total:
            self.dataChanged.emit(self.index(0, 0), self.index(self.total - 1, len(PersonColumn) - 1))

    def _read_again(self, generation: int, query: PeopleQuery, numbers: list[int]) -> None:
        """On the reading thread: count ``query`` and read pages ``numbers`` again, unless a newer query came
        first."""
        if self._outdated(generation):
            return
        _hand_over(self._pages_read_again, functools.partial(_count_and_read, self._reader, query, self._page_size,
                                                             numbers), generation)

    def _pages_arrived_again(self, generation: int, result: object) -> None:
        if generation != self._generation:
            return
        if isinstance(result, Exception):
            logger.warning("the people list could not be read again: %s", result)
            return
        assert isinstance(result, tuple)
        total, pages = result
        self._pages.clear()
        self._starts.clear()
        for number, page in pages:
            self.pages_loaded += 1
            self._store(number, page)
        self._set_total(total)
        self._all_rows_changed()
        self.refreshed.emit(total)

    def _set_total(self, total: int) -> None:
        """A new count for the same query: rows appended or removed at the end, so the view keeps its place."""
        if total > self.total:
            self.beginInsertRows(QModelIndex(), self.total, total - 1)
            self.total = total
            self.endInsertRows()
        elif total < self.total:
            self.beginRemoveRows(QModelIndex(), total, self.total - 1)
            self.total = total
            self.endRemoveRows()

    def _forget(self) -> None:
        """Drop every page, and every background read asked for before now."""
        with self._lock:
            self._generation += 1
            self._waiting.clear()
        self._pages.clear()
        self._starts.clear()

    @property
    def pages_held(self) -> int:
        """Pages in memory now."""
        return len(self._pages)

    def _page(self, number: int) -> list[_Row]:
        """Page ``number``, read now if it is not held."""
        held = self._pages.get(number)
        if held is not None:
            self._pages.move_to_end(number)
            return held
        self.pages_loaded += 1
        return self._store(number, self._read_page(number))

    def _store(self, number: int, page: list[_Row]) -> list[_Row]:
        self._pages[number] = page
        self._pages.move_to_end(number)
        if page:
            self._starts[number] = _keyset(page[0])
        while len(self._pages) > self._pages_kept:
            self._pages.popitem(last=False)
        return page

    def _read_page(self, number: int) -> list[_Row]:
        return _read(self._reader, self.query, self._page_size, self._plan(number))

    def _plan(self, number: int) -> _PagePlan:
        """How page ``number`` is read: after the previous page's last keyset, from its known start, or from a
        keyset found by stepping from the nearest known page start or an end."""
        if number == 0:
            return _PagePlan(None, False)
        before = self._pages.get(number - 1)
        if before is not None and len(before) == self._page_size:
            return _PagePlan(_keyset(before[-1]), False)
        start = self._starts.get(number)
        if start is not None:
            return _PagePlan(start, True)
        return _PagePlan(None, True, self._seek(number))

    def _seek(self, number: int) -> tuple[int, Keyset | None, bool]:
        """Rows to step, from which anchor, which way, to reach the page's first row (the fewest steps)."""
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
        return max(steps, 0), anchor, backwards

    # -- reading in the background -----------------------------------------------------------------------------

    def held_line(self, row: int) -> PersonLine | None:
        """The person on ``row`` if their page is held; otherwise ask for the page on the reading thread (its rows
        are announced by ``dataChanged`` when they arrive)."""
        held = self._held_row(row)
        return PersonLine(*held) if held is not None else None

    def _held_row(self, row: int) -> _Row | None:
        if not 0 <= row < self.total:
            return None
        number = row // self._page_size
        page = self._pages.get(number)
        if page is None:
            self._request(number)
            return None
        offset = row % self._page_size
        return page[offset] if offset < len(page) else None

    def _request(self, number: int) -> None:
        with self._lock:
            if number in self._waiting or (self._generation, number) in self._in_flight:
                return
            self._waiting[number] = self._plan(number)
            # The view asked for these as it went by; only the newest are still worth reading.
            while len(self._waiting) > PAGES_WAITING:
                self._waiting.popitem(last=False)
            if self._pages_task:
                return
            self._pages_task = True
        self._reading_thread().submit(self._read_waiting)

    def _read_waiting(self) -> None:
        """On the reading thread: read the newest page asked for and hand it to the GUI thread, until none wait."""
        while True:
            with self._lock:
                if not self._waiting:
                    self._pages_task = False
                    return
                number, plan = self._waiting.popitem(last=True)
                generation, query = self._generation, self.query
                self._in_flight.add((generation, number))

            _hand_over(self._page_read, functools.partial(self._read_planned, query, plan), generation, number)

    def _read_planned(self, query: PeopleQuery, plan: _PagePlan) -> list[_Row]:
        return _read(self._reader, query, self._page_size, plan)

    def _page_arrived(self, generation: int, number: int, result: object) -> None:
        with self._lock:
            self._in_flight.discard((generation, number))
        if generation != self._generation:
            return
        if isinstance(result, Exception):
            logger.warning("page %d of the people list could not be read: %s", number, result)
            return
        assert isinstance(result, list)
        self.pages_loaded += 1
        self._store(number, result)
        first = number * self._page_size
        last = min(self.total, first + self._page_size) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(PersonColumn) - 1))

    def read_aside(self, read: Callable[[], object], answer: Callable[[object], None]) -> None:
        """Run ``read`` on the reading thread, after the reads asked for before it, and hand what it read (or the
        error it raised) to ``answer`` on the GUI thread; nothing is handed over once the model is closed."""
        self._reading_thread().submit(_hand_over, self._read_aside_done, read, answer)

    def _aside_arrived(self, answer: Callable[[object], None], result: object) -> None:
        if self._executor is not None:  # not closed meanwhile
            answer(result)

    @property
    def pages_waiting(self) -> int:
        """Pages asked for and not read yet."""
        with self._lock:
            return len(self._waiting) + sum(1 for generation, _ in self._in_flight if generation == self._generation)

    def close(self) -> None:
        """Stop the reading thread: reads asked for are dropped, the one under way is waited for (its answer is
        dropped too), and the thread has ended when this returns."""
        with self._lock:
            self._waiting.clear()
            self._generation += 1
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        with self._lock:
            self._pages_task = False  # a queued task was cancelled with the thread
            self._in_flight.clear()  # read pages not handed over are dropped
        if self.busy:
            self.busy = False
            self.busy_changed.emit(False)

    @property
    def reading(self) -> bool:
        """Whether the reading thread is running (started by the first background read, ended by :meth:`close`)."""
        return self._executor is not None

    def line(self, row: int) -> PersonLine | None:
        """The person on ``row`` (read with its page if needed)."""
        found = self._row(row)
        return PersonLine(*found) if found is not None else None

    def _row(self, row: int) -> _Row | None:
        if not 0 <= row < self.total:
            return None
        page = self._page(row // self._page_size)
        offset = row % self._page_size
        return page[offset] if offset < len(page) else None

    def row_of(self, local_id: int) -> int | None:
        """The row of a local id among the pages held."""
        for number, page in self._pages.items():
            for offset, held in enumerate(page):
                if held[0] == local_id:
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
                return "Engagement score, 0-100, as of the person's latest social activity"
            if section == PersonColumn.PLATFORMS:
                return "Social networks of the person's profiles (not sortable)"
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell and role on each repaint: plain int comparisons, no enum lookups.
        if role == _DISPLAY:
            held = self._held_row(index.row()) if self._background else self._row(index.row())
            column = index.column()
            if held is None:
                return "…" if column == _NAME and 0 <= index.row() < self.total else None
            _, email, first_name, last_name, company, score, platforms, updated_at, _ = held
            if column == _NAME:
                return " ".join(part for part in (first_name, last_name) if part) or "—"
            if column == _EMAIL:
                return email
            if column == _COMPANY:
                return company or ""
            if column == _SCORE:
                return f"{score:.1f}" if score is not None else "—"
            if column == _PLATFORMS:
                return ", ".join([PLATFORM_NAMES.get(platform, platform) for platform in platforms])
            return short_time(updated_at)
        if role == _ALIGNMENT and index.column() == _SCORE:
            return _RIGHT
        if role == _USER:
            found = self._row(index.row())
            return found[0] if found is not None else None
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
