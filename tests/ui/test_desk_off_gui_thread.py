"""Resolving a conflict, undoing a run and undoing one change leave the window responsive: their store work runs on
another thread while a timer on the GUI loop keeps firing, the control is disabled and busy meanwhile, and the
outcome is drawn back on the GUI thread."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QTableWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.people_store import PeopleStore
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.people_model import PersonColumn
from tests.ui.conftest import HubSpotBench, person
from tests.ui.test_conflicts_panel import loaded, make_conflicts

#: How long the slowed store call takes: long enough for a GUI timer to fire many times if the loop is free.
SLOW_SECONDS = 0.4
#: The GUI timer's interval while the slowed call runs.
TICK_MS = 20


@dataclass
class SlowCall:
    """A store method slowed down, recording the thread of each call and the GUI ticks counted while it ran."""

    threads: list[int] = field(default_factory=list)
    ticks_during: list[int] = field(default_factory=list)
    ticks: int = 0

    def tick(self) -> None:
        self.ticks += 1

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def slowed(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            before = self.ticks
            time.sleep(SLOW_SECONDS)
            self.ticks_during.append(self.ticks - before)
            return method(*args, **kwargs)

        return slowed


@pytest.fixture
def slow(qtbot: QtBot) -> Iterator[SlowCall]:
    call = SlowCall()
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(call.tick)
    timer.start()
    yield call
    timer.stop()


def assert_off_the_gui_thread(slow: SlowCall) -> None:
    assert slow.threads, "the slowed store call was made"
    assert threading.get_ident() not in slow.threads, "the store work ran on the GUI thread"
    # Had the call blocked the GUI loop, the timer could not have fired while it slept.
    assert min(slow.ticks_during) >= (SLOW_SECONDS * 1000 / TICK_MS) // 3, slow.ticks_during


@pytest.fixture
def window(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[MainWindow]:
    shown = MainWindow(hubspot.workspace, tray_available=False)
    qtbot.addWidget(shown)
    shown.show()
    qtbot.waitExposed(shown)
    yield shown
    shown.desk.quit()


def test_resolving_a_conflict_runs_on_the_sync_worker(
    qtbot: QtBot, hubspot: HubSpotBench, window: MainWindow, slow: SlowCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_conflicts(window, qtbot, hubspot)
    panel = loaded(window.conflicts_panel, qtbot)
    store = hubspot.workspace.sync.store
    monkeypatch.setattr(store, "get_conflict", slow.wrap(store.get_conflict))
    panel.table.selectRow(0)
    with qtbot.waitSignal(panel.conflicts_changed, timeout=10_000):
        QTest.mouseClick(panel.keep_local_button, Qt.MouseButton.LeftButton)
        assert not panel.keep_local_button.isEnabled() and not panel.keep_crm_button.isEnabled()
        assert panel.table.cursor().shape() == Qt.CursorShape.BusyCursor
        assert panel.notice.text().startswith("Writing the kept value of Company")
    assert_off_the_gui_thread(slow)
    assert set(slow.threads) == {hubspot.workspace.sync.run_off_thread().thread_id}
    assert panel.notice.tone == "ok" and hubspot.workspace.sync.conflict_count() == 2
    assert panel.table.cursor().shape() == Qt.CursorShape.ArrowCursor
    assert panel.keep_local_button.isEnabled()


def test_undoing_a_run_runs_on_the_sync_worker(
    qtbot: QtBot, hubspot: HubSpotBench, window: MainWindow, slow: SlowCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = window.sync_monitor_panel

    def sync_now() -> None:
        QTest.mouseClick(monitor.sync_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not monitor.running_integrations, timeout=15_000)

    sync_now()
    hubspot.edit_in_crm("person1@example.com", company="Difference Engines Ltd")
    sync_now()
    pull_run = hubspot.workspace.sync.runs(hubspot.name)[0]
    assert pull_run.updated == 1
    monitor.refresh_runs()
    assert monitor.select_run(pull_run.id)
    store = hubspot.workspace.sync.store
    monkeypatch.setattr(store, "undo_of", slow.wrap(store.undo_of))

    QTest.mouseClick(monitor.undo_button, Qt.MouseButton.LeftButton)
    box = monitor.confirm_box
    assert isinstance(box, QMessageBox)
    with qtbot.waitSignal(monitor.runs_finished, timeout=10_000):
        QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
        assert not monitor.undo_button.isEnabled()
        assert monitor.runs_table.cursor().shape() == Qt.CursorShape.BusyCursor
        assert monitor.notice.text() == f"Undoing run {pull_run.id}…"
    assert_off_the_gui_thread(slow)
    assert set(slow.threads) == {hubspot.workspace.sync.run_off_thread().thread_id}
    assert monitor.notice.text().startswith(f"Undid run {pull_run.id}: 1 value put back here")
    assert hubspot.workspace.contacts.find("person1@example.com").company == "Analytical Engines"  # type: ignore[union-attr]
    assert monitor.runs_table.cursor().shape() == Qt.CursorShape.ArrowCursor


def import_company(workspace: Workspace, company: str) -> None:
    csv = workspace.paths.data_dir / "company.csv"
    csv.write_text(f"email,company\nperson1@example.com,{company}\n", encoding="utf-8")
    assert workspace.sync.import_file(csv, RecordObject.CONTACT).updated == 1


def window_with_a_change_to_undo(qtbot: QtBot, workspace: Workspace) -> MainWindow:
    """The People panel on show with person1's history open and its change to "Second Co" selected (an import
    changed the company to "First Co", a second one to "Second Co")."""
    workspace.contacts.save_many([person(1)])
    import_company(workspace, "First Co")
    import_company(workspace, "Second Co")
    window = MainWindow(workspace, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    people = window.people_panel
    window.show_panel(window.stack.indexOf(people))
    qtbot.waitUntil(lambda: people.model.rowCount() == 1 and not people.model.busy, timeout=5000)
    people.table.selectRow(0)
    qtbot.waitUntil(lambda: people.detail_pane.detail is not None, timeout=5000)  # read on a store thread
    history = people.detail_pane.history_table
    assert isinstance(history, QTableWidget)
    row = next(r for r in range(history.rowCount()) if history.item(r, 2).text().endswith("→ Second Co"))
    history.selectRow(row)
    return window


def test_undoing_one_change_runs_on_a_store_thread(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop, slow: SlowCall,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    window = window_with_a_change_to_undo(qtbot, workspace)
    people = window.people_panel
    pane = people.detail_pane
    history = pane.history_table
    monkeypatch.setattr(PeopleStore, "audit_entry", slow.wrap(PeopleStore.audit_entry))

    with qtbot.waitSignal(people.change_undone, timeout=10_000) as undone:
        QTest.mouseClick(pane.undo_button, Qt.MouseButton.LeftButton)
        assert not pane.undo_button.isEnabled()
        assert history.cursor().shape() == Qt.CursorShape.BusyCursor
        assert pane.history_result.text() == "Undoing the change…"
    assert_off_the_gui_thread(slow)
    assert "company is First Co again" in pane.history_result.text()
    assert workspace.contacts.find("person1@example.com").company == "First Co"  # type: ignore[union-attr]
    assert undone.args is not None and workspace.sync.store.get_run(undone.args[0]) is not None
    assert history.cursor().shape() == Qt.CursorShape.ArrowCursor
    window.desk.quit()


#: The People reads behind the list and the detail pane.
PEOPLE_READS = ("page", "keyset_at", "count", "email_of", "profiles", "timeline", "crm_links", "audit")


def test_after_undoing_one_change_the_list_and_the_person_are_read_again_off_the_gui_thread(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = window_with_a_change_to_undo(qtbot, workspace)
    people = window.people_panel
    history = people.detail_pane.history_table
    reads: list[tuple[str, int]] = []

    def recorded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def reading(*args: Any, **kwargs: Any) -> Any:
            reads.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return reading

    for name in PEOPLE_READS:
        monkeypatch.setattr(PeopleStore, name, recorded(name, getattr(PeopleStore, name)))
    rows_before = history.rowCount()

    with qtbot.waitSignal(people.change_undone, timeout=10_000):
        QTest.mouseClick(people.detail_pane.undo_button, Qt.MouseButton.LeftButton)
    assert history.rowCount() == rows_before + 1, "the person's history was read again with the undo in it"
    assert [history.item(0, c).text() for c in (1, 2)] == ["Company", "Second Co → First Co"]
    qtbot.waitUntil(lambda: people.model.index(0, PersonColumn.COMPANY).data() == "First Co", timeout=5000)
    assert {"page", "email_of", "audit"} <= {name for name, _ in reads}, reads
    assert [name for name, thread in reads if thread == threading.get_ident()] == [], "read on the GUI thread"
    window.desk.quit()
