"""The People table model pages through the store with keysets, sorts and filters in SQL, and never reads all rows."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import Keyset, PeopleColumn, PeopleQuery, PeopleService, PersonLine, SyncState
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui import people_model
from crm_desktop.ui.people_model import PeopleTableModel, PersonColumn
from tests.support.marketing_data import seed_marketing


def contact(number: int) -> Contact:
    return Contact(
        email=f"p{number:04d}@example.com",
        first_name=f"Name{number % 7}",
        last_name="Tester",
        company="Acme" if number % 2 else "Globex",
        social_profiles=(
            [SocialProfile(platform=SocialPlatform.INSTAGRAM, username=f"ig{number}", followers=number)]
            if number % 5 == 0 else []
        ),
    )


@pytest.fixture
def service(workspace: Workspace) -> PeopleService:
    workspace.contacts.save_many(contact(number) for number in range(1, 1001))
    return PeopleService(workspace.database, workspace.social, workspace.sync)


class CountingReader:
    """The service's reads, recording each page read (keyset, size, inclusive) and each keyset seek (offset)."""

    def __init__(self, service: PeopleService) -> None:
        self.service = service
        self.pages: list[tuple[Keyset | None, int, bool]] = []
        self.seeks: list[tuple[int, bool]] = []

    def count(self, query: PeopleQuery) -> int:
        return self.service.count(query)

    def page(self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *,
             inclusive: bool = False) -> Sequence[PersonLine]:
        self.pages.append((after, limit, inclusive))
        return self.service.page(query, after, limit, inclusive=inclusive)

    def keyset_at(self, query: PeopleQuery, offset: int, anchor: Keyset | None = None, *,
                  backwards: bool = False) -> Keyset | None:
        self.seeks.append((offset, backwards))
        return self.service.keyset_at(query, offset, anchor, backwards=backwards)


def email_at(model: PeopleTableModel, row: int) -> str:
    return str(model.data(model.index(row, PersonColumn.EMAIL)))


def test_the_row_count_is_the_count_and_pages_are_read_when_shown(service: PeopleService) -> None:
    reader = CountingReader(service)
    model = PeopleTableModel(reader, page_size=50)
    model.reload()
    assert model.total == model.rowCount() == 1000
    assert reader.pages == [(None, 50, False)]
    assert email_at(model, 49) == "p0050@example.com"
    assert email_at(model, 50) == "p0051@example.com"
    assert reader.pages[-1] == (("p0050@example.com", 50), 50, False), "the next page starts after the last keyset"
    assert model.pages_loaded == 2


def test_held_rows_leave_the_garbage_collector_alone(service: PeopleService) -> None:
    """Held pages are plain tuples the collector stops tracking, so a long scroll does not fill the old generation
    (whose growth sets off the full collections that stall the window); rows still read back as PersonLines."""
    model = PeopleTableModel(CountingReader(service), page_size=200, pages_kept=5)
    for _ in range(2):  # the first pass warms the store's statement caches
        model.reload()
        gc.collect()
        tracked_before = len(gc.get_objects())
        for row in range(0, 1000, 200):
            email_at(model, row)
    assert model.pages_held == 5
    gc.collect()
    # 1,000 rows held; as objects of their own they would be 1,000 more (2,000 with their profile tuples).
    assert len(gc.get_objects()) - tracked_before < 100
    line = model.line(999)
    assert isinstance(line, PersonLine) and line.email == "p1000@example.com"
    assert model.data(model.index(999, PersonColumn.NAME)) == "Name6 Tester"
    assert model.data(model.index(999, PersonColumn.EMAIL), Qt.ItemDataRole.UserRole) == line.id


def test_a_far_page_is_found_from_the_nearest_end_without_reading_the_rows_before(service: PeopleService) -> None:
    reader = CountingReader(service)
    model = PeopleTableModel(reader, page_size=50)
    model.reload()
    assert email_at(model, 999) == "p1000@example.com"
    assert reader.seeks == [(49, True)], "the last page is seeked backwards from the end: 49 rows, not 950"
    assert email_at(model, 950) == "p0951@example.com"
    assert email_at(model, 700) == "p0701@example.com"
    assert reader.seeks[-1] == (249, True), "from the nearest known page start (row 950), backwards"
    assert model.pages_loaded == 3


def test_only_a_bounded_number_of_pages_is_held(service: PeopleService) -> None:
    model = PeopleTableModel(CountingReader(service), page_size=10, pages_kept=5)
    model.reload()
    emails = [email_at(model, row) for row in range(1000)]
    assert emails == [f"p{number:04d}@example.com" for number in range(1, 1001)]
    assert model.pages_held == 5
    assert email_at(model, 3) == "p0004@example.com", "a dropped page is read again"


def test_a_view_reads_only_the_pages_it_shows(qtbot: QtBot, qapp: QApplication, service: PeopleService) -> None:
    reader = CountingReader(service)
    model = PeopleTableModel(reader, page_size=100)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    model.reload()
    QApplication.processEvents()
    assert model.rowCount() == 1000
    assert model.pages_loaded == 1
    view.scrollToBottom()
    QApplication.processEvents()
    assert model.pages_loaded == 2, "jumping to the bottom reads the last page only"
    assert reader.seeks == [(99, True)]
    assert view.model().data(view.indexAt(view.viewport().rect().bottomLeft() + QPoint(5, -5))) is not None


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("sort_column", [PersonColumn.COMPANY, PersonColumn.EMAIL, PersonColumn.NAME])
def test_sorting_is_done_in_sql_across_pages(
    service: PeopleService, descending: bool, sort_column: PersonColumn
) -> None:
    model = PeopleTableModel(service, page_size=64)
    model.reload()
    order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
    model.sort(sort_column, order)
    assert model.query.descending is descending
    # Read the pages out of order (end, middle, start) as a dragged scroll bar does.
    rows = [model.line(row) for row in [*range(999, 499, -1), *range(0, 500)]]
    by_row = dict(zip([*range(999, 499, -1), *range(0, 500)], rows, strict=True))
    ordered = [by_row[row] for row in range(1000)]
    assert all(line is not None for line in ordered)
    ids = [line.id for line in ordered if line is not None]
    assert len(set(ids)) == 1000, "no row lost or repeated at page edges"
    keys = [(line.sort_key, line.id) for line in ordered if line is not None]
    assert keys == sorted(keys, reverse=descending)


def test_filters_run_in_sql(service: PeopleService) -> None:
    model = PeopleTableModel(service, page_size=50)
    model.set_query(PeopleQuery(text="NAME3 test"))
    assert model.total == len([n for n in range(1, 1001) if n % 7 == 3])
    model.set_query(PeopleQuery(platform=SocialPlatform.INSTAGRAM))
    assert model.total == 200
    assert model.data(model.index(0, PersonColumn.PLATFORMS)) == "Instagram"
    model.set_query(PeopleQuery(text="globex", platform=SocialPlatform.INSTAGRAM))
    assert model.total == 100  # Globex (even numbers) with an Instagram profile (multiples of 5)
    model.set_query(PeopleQuery(text="100%"))
    assert model.total == 0, "% is matched literally"


def test_score_campaign_and_sync_state_filters(workspace: Workspace) -> None:
    seed_marketing(workspace)
    service = PeopleService(workspace.database, workspace.social, workspace.sync)
    leads = service.page(PeopleQuery(obj=RecordObject.LEAD), None, 100)
    scored = [line.score for line in leads if line.score is not None]
    assert scored and len(scored) == len(leads)
    middle = sorted(scored)[len(scored) // 2]
    high = PeopleQuery(obj=RecordObject.LEAD, score_min=middle)
    assert service.count(high) == len([s for s in scored if s >= middle])
    assert all(line.score is not None and line.score >= middle for line in service.page(high, None, 100))
    by_score = service.page(PeopleQuery(obj=RecordObject.LEAD, sort=PeopleColumn.SCORE, descending=True), None, 3)
    assert [line.score for line in by_score] == sorted(scored, reverse=True)[:3]
    assert 0 < service.count(PeopleQuery(campaign="Black Friday")) < service.count(PeopleQuery())
    assert service.count(PeopleQuery(campaign="No Such Campaign")) == 0
    assert service.count(PeopleQuery(integration_id=1, sync_state=SyncState.LINKED)) == 0


class ThreadRecordingReader(CountingReader):
    """Also records which thread each count and page read ran on; ``gate``, when set, holds counts until opened."""

    def __init__(self, service: PeopleService) -> None:
        super().__init__(service)
        self.threads: list[str] = []
        self.count_threads: list[str] = []
        self.gate: threading.Event | None = None

    def count(self, query: PeopleQuery) -> int:
        self.count_threads.append(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        return super().count(query)

    def page(self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *,
             inclusive: bool = False) -> Sequence[PersonLine]:
        self.threads.append(threading.current_thread().name)
        return super().page(query, after, limit, inclusive=inclusive)


def shown_view(qtbot: QtBot, model: PeopleTableModel) -> QTableView:
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_in_the_background_a_view_never_waits_for_the_store(
    qtbot: QtBot, qapp: QApplication, service: PeopleService
) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    view = shown_view(qtbot, model)
    with qtbot.waitSignal(model.reset_done, timeout=5000) as counted:
        model.reload()
        assert model.busy and model.total == 0, "nothing is read on the GUI thread"
    assert counted.args == [1000] and not model.busy
    assert model.data(model.index(999, PersonColumn.EMAIL)) is None, "not read on the GUI thread"
    assert model.data(model.index(999, PersonColumn.NAME)) == "…", (
        "a row not read yet is drawn as waiting, without reading")
    view.scrollToBottom()
    qtbot.waitUntil(lambda: model.data(model.index(999, PersonColumn.EMAIL)) is not None, timeout=5000)
    assert email_at(model, 999) == "p1000@example.com"
    # A new query drops what was asked for under the old one.
    with qtbot.waitSignal(model.reset_done, timeout=5000):
        model.sort(PersonColumn.EMAIL, Qt.SortOrder.DescendingOrder)
    assert email_at(model, 0) == "p1000@example.com"
    view.scrollToBottom()
    qtbot.waitUntil(lambda: model.data(model.index(999, PersonColumn.EMAIL)) is not None, timeout=5000)
    assert email_at(model, 999) == "p0001@example.com"
    gui = threading.current_thread().name
    assert reader.threads and gui not in reader.threads and gui not in reader.count_threads
    model.close()


class GatedPages(ThreadRecordingReader):
    """Holds each page read at ``page_gate`` until the test opens it."""

    def __init__(self, service: PeopleService) -> None:
        super().__init__(service)
        self.page_gate = threading.Event()
        self.entered = 0

    def page(self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *,
             inclusive: bool = False) -> Sequence[PersonLine]:
        self.entered += 1
        assert self.page_gate.wait(10), "the test never opened the gate"
        return super().page(query, after, limit, inclusive=inclusive)


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each task the models submit to their reading thread, in order."""
    names: list[str] = []

    class CountingExecutor(people_model.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            names.append(getattr(fn, "__name__", repr(fn)))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(people_model, "ThreadPoolExecutor", CountingExecutor)
    return names


def test_a_fast_drag_queues_one_reading_task_and_reads_the_newest_pages(
    qtbot: QtBot, qapp: QApplication, service: PeopleService, submitted: list[str]
) -> None:
    """Each page the view goes by while the store is busy is noted, not queued as a task of its own: one task reads
    what waits, newest first, so a drag over a million rows does not pile up hundreds of queued tasks."""
    reader = GatedPages(service)
    reader.page_gate.set()
    model = PeopleTableModel(reader, page_size=10, background=True)
    with qtbot.waitSignal(model.reset_done, timeout=5000):
        model.reload()
    reader.page_gate.clear()
    submitted.clear()
    for row in range(10, 1000, 10):  # 99 pages gone by while the first of them is being read
        model.data(model.index(row, PersonColumn.EMAIL))
    qtbot.waitUntil(lambda: reader.entered >= 2, timeout=5000)
    assert submitted == ["_read_waiting"]
    reader.page_gate.set()
    qtbot.waitUntil(lambda: model.pages_waiting == 0, timeout=5000)
    assert len(submitted) == 1
    # The newest pages asked for are read (the view is at the end now); those it went by long ago are dropped.
    qtbot.waitUntil(lambda: model.data(model.index(990, PersonColumn.EMAIL)) == "p0991@example.com", timeout=5000)
    assert len(reader.pages) <= 2 + people_model.PAGES_WAITING
    # After the drag, a new page asked for starts a new task, once the drag's has ended (the last page is stored
    # before its task looks for more; a page asked for meanwhile is read by that task, which is right too).
    qtbot.waitUntil(lambda: not model._pages_task, timeout=5000)
    model.data(model.index(500, PersonColumn.EMAIL))
    qtbot.waitUntil(lambda: model.data(model.index(500, PersonColumn.EMAIL)) == "p0501@example.com", timeout=5000)
    assert submitted == ["_read_waiting", "_read_waiting"]
    model.close()


def test_a_page_read_but_not_yet_taken_by_the_gui_thread_is_not_read_again(
    qtbot: QtBot, qapp: QApplication, service: PeopleService, submitted: list[str]
) -> None:
    """Seen on a loaded CI host: the view asked again for a page whose read had ended but whose rows the GUI thread
    had not taken yet, and the page was read twice, by a task of its own."""
    reader = CountingReader(service)
    model = PeopleTableModel(reader, page_size=10, background=True)
    with qtbot.waitSignal(model.reset_done, timeout=5000):
        model.reload()
    reads = len(reader.pages)
    submitted.clear()
    assert model.data(model.index(500, PersonColumn.EMAIL)) is None  # asked for
    # The GUI thread takes no event meanwhile: the page is read, handed over, and waits to be taken.
    deadline = time.monotonic() + 10
    while (len(reader.pages) == reads or model._pages_task) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(reader.pages) == reads + 1
    assert model.data(model.index(500, PersonColumn.EMAIL)) is None, "not taken yet"
    assert model.pages_waiting == 1
    qtbot.waitUntil(lambda: model.data(model.index(500, PersonColumn.EMAIL)) == "p0501@example.com", timeout=5000)
    assert submitted == ["_read_waiting"]
    assert len(reader.pages) == reads + 1, "the page was read once"
    assert model.pages_waiting == 0
    model.close()


@pytest.mark.parametrize("change", ["filter", "sort"])
def test_a_filter_or_sort_change_is_read_off_the_gui_thread(
    qtbot: QtBot, qapp: QApplication, service: PeopleService, change: str
) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    shown_view(qtbot, model)
    with qtbot.waitSignal(model.reset_done, timeout=5000):
        model.reload()
    reader.threads.clear()
    reader.count_threads.clear()
    reader.gate = threading.Event()
    busy: list[bool] = []
    model.busy_changed.connect(busy.append)
    if change == "filter":
        model.set_query(PeopleQuery(text="globex"))
    else:
        model.sort(PersonColumn.NAME, Qt.SortOrder.DescendingOrder)
    # The store is held on the reading thread: the GUI thread is back at once, the list empty and busy.
    assert busy == [True] and model.busy and model.rowCount() == 0
    assert model.data(model.index(0, PersonColumn.EMAIL)) is None
    with qtbot.waitSignal(model.reset_done, timeout=5000) as counted:
        reader.gate.set()
    assert busy == [True, False]
    assert counted.args == [500 if change == "filter" else 1000]
    assert reader.count_threads and reader.threads
    assert all(name.startswith("people-pages") for name in reader.count_threads + reader.threads), (
        reader.count_threads, reader.threads)
    first = email_at(model, 0)
    assert first.startswith("p") and (change == "sort" or int(first[1:5]) % 2 == 0), "a Globex contact first"
    model.close()


def test_the_answer_to_a_replaced_query_is_dropped(
    qtbot: QtBot, qapp: QApplication, service: PeopleService
) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    shown_view(qtbot, model)
    reader.gate = threading.Event()
    totals: list[int] = []
    model.reset_done.connect(totals.append)
    model.set_query(PeopleQuery(text="acme"))  # its count waits at the gate...
    qtbot.waitUntil(lambda: len(reader.count_threads) == 1, timeout=5000)
    model.set_query(PeopleQuery(text="name3 tester"))  # ...while the user types on
    model.set_query(PeopleQuery(text="name3"))
    reader.gate.set()
    qtbot.waitUntil(lambda: not model.busy, timeout=5000)
    qtbot.wait(100)
    # Only the newest query's answer is shown; the one typed over before it started was never read.
    assert totals == [len([n for n in range(1, 1001) if n % 7 == 3])]
    assert len(reader.count_threads) == 2
    assert model.query.text == "name3" and model.total == totals[0]
    assert all(line.first_name == "Name3" for line in (model.line(row) for row in range(model.total)) if line)
    model.close()


def test_close_stops_the_reading_thread(qtbot: QtBot, qapp: QApplication, service: PeopleService) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    shown_view(qtbot, model)
    with qtbot.waitSignal(model.reset_done, timeout=5000):
        model.reload()
    assert model.reading
    assert any(thread.name.startswith("people-pages") for thread in threading.enumerate())
    model.close()
    assert not model.reading
    assert not any(thread.name.startswith("people-pages") for thread in threading.enumerate())


def test_a_narrow_filter_is_not_counted_apart_from_its_first_page(
    qtbot: QtBot, qapp: QApplication, service: PeopleService
) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    shown_view(qtbot, model)
    with qtbot.waitSignal(model.reset_done, timeout=5000) as counted:
        model.set_query(PeopleQuery(text="p000"))  # p0001..p0009: one page, not full
    assert counted.args == [9] and reader.count_threads == []
    assert [email_at(model, row) for row in (0, 8)] == ["p0001@example.com", "p0009@example.com"]
    with qtbot.waitSignal(model.reset_done, timeout=5000) as counted:
        model.set_query(PeopleQuery(text="p00"))  # 99 rows: a full first page, so counted
    assert counted.args == [99] and len(reader.count_threads) == 1
    model.close()


def test_a_refresh_while_a_new_query_is_read_still_ends_with_its_rows(
    qtbot: QtBot, qapp: QApplication, service: PeopleService
) -> None:
    reader = ThreadRecordingReader(service)
    model = PeopleTableModel(reader, page_size=50, background=True)
    shown_view(qtbot, model)
    reader.gate = threading.Event()
    model.set_query(PeopleQuery(text="globex"))
    qtbot.waitUntil(lambda: len(reader.count_threads) == 1, timeout=5000)
    model.refresh()  # a record changed while the count waits
    reader.gate.set()
    qtbot.waitUntil(lambda: not model.busy, timeout=5000)
    assert model.total == 500 and email_at(model, 0) == "p0002@example.com"
    model.close()
