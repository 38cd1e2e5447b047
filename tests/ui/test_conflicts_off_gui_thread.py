"""The Conflicts panel reads its list off the GUI thread, the first time it is opened too (3,000 conflicts took
0.6 s there), saying "Loading…" meanwhile; and the newest read is the one shown, whatever order reads end in."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from pytestqt.qtbot import QtBot

from crm_desktop.app.sync_service import ConflictRow, SyncService
from crm_desktop.ui.conflicts_panel import LOADING, UNREAD, ConflictColumn
from crm_desktop.ui.main_window import CONFLICTS_ROW, MainWindow
from tests.ui.conftest import HubSpotBench, drive
from tests.ui.test_conflicts_panel import EMAILS, make_conflicts


@pytest.fixture
def window(hubspot_window: MainWindow) -> MainWindow:
    return hubspot_window


def test_the_first_opening_reads_the_conflicts_off_the_gui_thread_and_says_it_is_loading(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_conflicts(window, qtbot, hubspot)
    threads: list[int] = []
    may_answer = threading.Event()
    conflicts, local_values_now = SyncService.conflicts, SyncService.local_values_now

    def read_conflicts(self: SyncService, *args: object, **kwargs: object) -> list[ConflictRow]:
        threads.append(threading.get_ident())
        may_answer.wait(timeout=30)  # a store slow to answer: the window must not wait for it (set below)
        return conflicts(self, *args, **kwargs)  # type: ignore[arg-type]

    def read_values(self: SyncService, rows: list[ConflictRow]) -> dict[int, str | None]:
        threads.append(threading.get_ident())
        return local_values_now(self, rows)

    monkeypatch.setattr(SyncService, "conflicts", read_conflicts)
    monkeypatch.setattr(SyncService, "local_values_now", read_values)

    window.show_panel(CONFLICTS_ROW)
    panel = window.conflicts_panel
    qtbot.waitUntil(lambda: bool(threads), timeout=5000)
    gui = threading.get_ident()
    assert threads[0] != gui, "the list is read on a store thread"
    assert panel.loading and not may_answer.is_set()
    assert panel.empty_note.label.isVisible() and panel.empty_note.label.text() == LOADING, \
        "not “Nothing waits for you” before the list is read"
    assert panel.shown_label.text() == "Loading…"
    may_answer.set()
    qtbot.waitUntil(lambda: not panel.loading, timeout=5000)
    assert panel.model.rowCount() == 3 and not panel.empty_note.label.isVisible()
    assert panel.shown_label.text() == ""
    assert [c.record_key for c in panel.selected_conflicts()] == [EMAILS[0]], "the first is selected"
    assert len(threads) == 2 and gui not in threads, "its values now too"


def test_a_read_that_ends_after_a_newer_one_never_shows_its_older_list(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_conflicts(window, qtbot, hubspot)
    window.show_panel(CONFLICTS_ROW)
    panel = window.conflicts_panel
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)
    first = panel.model.conflict_at(0)
    load: Callable[[], list[ConflictRow]] = panel.model._load_conflicts
    reads: list[int] = []
    older_may_answer = threading.Event()

    def slow_first(*args: object) -> list[ConflictRow]:
        rows = load()
        reads.append(len(rows))
        if len(reads) == 1:
            older_may_answer.wait(timeout=3)  # it read the three conflicts, and answers late
        return rows

    monkeypatch.setattr(panel.model, "_load_conflicts", slow_first)
    panel.reload()
    qtbot.waitUntil(lambda: bool(reads), timeout=5000)
    # Meanwhile another window resolves the first conflict, and the list is read again.
    drive(qtbot, hubspot.workspace.sync.resolve(first.id, take="crm"))
    panel.reload()
    older_may_answer.set()
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)
    qtbot.wait(50)  # any read still to be shown would be by now
    assert reads[0] == 3 and reads[-1] == 2
    shown = [panel.model.index(row, ConflictColumn.RECORD).data() for row in range(panel.model.rowCount())]
    assert shown == EMAILS[1:], "the newest read is shown, not the one that answered last"


def test_a_list_that_cannot_be_read_is_not_called_empty(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that did not answer left the empty table saying "Nothing waits for you" under the error: a marketer
    with 3,000 open conflicts read that none waited. It now says the list could not be read, until a read works."""
    make_conflicts(window, qtbot, hubspot)
    conflicts = SyncService.conflicts
    failing = [True]

    def read_conflicts(self: SyncService, *args: object, **kwargs: object) -> list[ConflictRow]:
        if failing[0]:
            raise OSError("disk I/O error")
        return conflicts(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SyncService, "conflicts", read_conflicts)
    window.show_panel(CONFLICTS_ROW)
    panel = window.conflicts_panel
    qtbot.waitUntil(lambda: not panel.loading, timeout=10_000)
    assert "disk I/O error" in panel.notice.text()
    assert panel.empty_note.label.isVisible() and panel.empty_note.label.text() == UNREAD

    failing[0] = False
    panel.reload()
    qtbot.waitUntil(lambda: not panel.loading and panel.model.rowCount() == 3, timeout=10_000)
    assert not panel.empty_note.label.isVisible() and panel.empty_note.label.text() != UNREAD
