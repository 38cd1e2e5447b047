"""The Conflicts panel at a marketing team's scale: several rows decided at once, asked once, with progress, a
refusal or a race leaving the others resolved, filters, and no re-read of the whole list after a decision."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from crm_desktop.app.sync_service import ConflictRow
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.ui.conflicts_panel import ConflictColumn, ConflictsPanel
from crm_desktop.ui.main_window import CONFLICTS_ROW, MainWindow
from tests.ui.conftest import HubSpotBench, click, drive, unfinished_tasks
from tests.ui.test_conflicts_panel import (
    EMAILS,
    crm_company,
    loaded,
    local_company,
    make_conflicts,
    select,
    sidebar_text,
)


@pytest.fixture
def window(hubspot_window: MainWindow) -> MainWindow:
    return hubspot_window


def opened(window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench) -> ConflictsPanel:
    make_conflicts(window, qtbot, hubspot)
    window.show_panel(CONFLICTS_ROW)
    panel = loaded(window.conflicts_panel, qtbot)
    assert panel.model.rowCount() == 3
    return panel


def never_read_again(panel: ConflictsPanel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the reads of the whole list from now on."""
    reads: list[int] = []
    load: Callable[[], list[ConflictRow]] = panel.model._load_conflicts

    def counted() -> list[ConflictRow]:
        reads.append(1)
        return load()

    monkeypatch.setattr(panel.model, "_load_conflicts", counted)
    return reads


def confirm(window: MainWindow, qtbot: QtBot, panel: ConflictsPanel, question: str) -> None:
    box = panel.confirm_box
    assert box is not None and box.isVisible()
    assert box.text() == question
    with qtbot.waitSignal(panel.conflicts_changed, timeout=15_000):
        click(box.button(QMessageBox.StandardButton.Yes))
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)


def select_all(panel: ConflictsPanel) -> None:
    panel.table.setFocus()
    QTest.keyClick(panel.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)


def shown_records(panel: ConflictsPanel) -> list[str]:
    return [panel.model.index(row, ConflictColumn.RECORD).data() for row in range(panel.model.rowCount())]


def test_ctrl_a_and_keep_local_value_resolves_every_selected_conflict_once_asked(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = opened(window, qtbot, hubspot)
    reads = never_read_again(panel, monkeypatch)
    select_all(panel)
    assert len(panel.selected_conflicts()) == 3
    assert panel.details.values["Record"].text().startswith("3 conflicts selected, on 3 records: person1@")
    assert panel.keep_crm_button.isEnabled() and panel.keep_local_button.isEnabled()
    assert not panel.use_value_button.isEnabled(), "a typed value is for one conflict"
    progress: list[str] = []
    panel.progress.valueChanged.connect(lambda _value: progress.append(panel.progress_label.text()))

    click(panel.keep_local_button)
    confirm(window, qtbot, panel, "Keep the local value in 3 conflicts?")
    for number, email in enumerate(EMAILS, start=1):
        assert drive(qtbot, crm_company(hubspot, email)) == f"Local Co {number}"
        assert local_company(hubspot, email) == f"Local Co {number}"
    assert progress[-1] == "Resolving 3 of 3…" and "Resolving 1 of 3…" in progress
    assert not panel.progress.isVisible()
    assert panel.model.rowCount() == 0 and hubspot.workspace.sync.conflict_count() == 0
    assert sidebar_text(window) == "Conflicts"
    assert panel.notice.tone == "ok"
    assert panel.notice.text() == ("Resolved 3 of 3 conflicts, keeping the local values here and in the CRM.")
    assert reads == [], "the resolved rows left the table; the list was not read again"
    assert not panel.failures.isVisible()
    assert not unfinished_tasks()


def test_one_refusal_is_listed_by_record_and_field_and_the_rest_resolved(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = opened(window, qtbot, hubspot)
    reads = never_read_again(panel, monkeypatch)
    select_all(panel)
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    click(panel.keep_local_button)
    confirm(window, qtbot, panel, "Keep the local value in 3 conflicts?")
    assert panel.notice.tone == "error"
    assert panel.notice.text().startswith("Resolved 2 of 3 conflicts, keeping the local values here and in the CRM. "
                                          "1 conflict is still open, listed below with the reason.")
    assert panel.failures.isVisible() and panel.failures.count() == 1
    line = panel.failures.item(0).text()
    [left] = [email for email in EMAILS if line.startswith(f"{email} · Company (hubspot-marketing): ")]
    assert "the CRM refused the value: " in line and "is invalid" in line, "the CRM's own reason"
    assert shown_records(panel) == [left], "only the refused one is left, and selected"
    assert [c.record_key for c in panel.selected_conflicts()] == [left]
    assert drive(qtbot, crm_company(hubspot, left)).startswith("CRM Co ")
    assert sidebar_text(window) == "Conflicts (1)"
    assert reads == []

    # The one left is decided on its own as before.
    with qtbot.waitSignal(panel.conflicts_changed, timeout=10_000):
        click(panel.keep_crm_button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)
    assert panel.model.rowCount() == 0 and not panel.failures.isVisible()
    assert reads == [], "one conflict resolved: its row left the table; the list was not read again"


def test_conflicts_resolved_or_claimed_elsewhere_are_said_and_the_rest_resolved(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel = opened(window, qtbot, hubspot)
    select_all(panel)
    first, second, _third = panel.selected_conflicts()
    # Another window decides the first, and is writing the second, after this one selected them.
    drive(qtbot, hubspot.workspace.sync.resolve(first.id, take="crm"))
    assert hubspot.workspace.sync.store.claim_conflict(second.id)
    click(panel.keep_local_button)
    confirm(window, qtbot, panel, "Keep the local value in 3 conflicts?")
    text = panel.notice.text()
    assert text.startswith("Resolved 1 of 3 conflicts") and "1 conflict was resolved elsewhere first." in text
    assert [panel.failures.item(i).text() for i in range(panel.failures.count())] == [
        f"{second.record_key} · Company (hubspot-marketing): conflict {second.id} is "
        "being resolved right now in another window or on another desktop; look again in a moment (nothing was "
        "written here)"]
    assert shown_records(panel) == [second.record_key]
    assert local_company(hubspot, EMAILS[0]) == "CRM Co 1", "the first decision stands"
    assert drive(qtbot, crm_company(hubspot, EMAILS[2])) == "Local Co 3"


def test_the_filters_narrow_the_table_and_a_decision_takes_only_what_they_show(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel = opened(window, qtbot, hubspot)
    assert [panel.field_combo.itemText(i) for i in range(panel.field_combo.count())] == ["All fields", "Company"]
    assert [panel.integration_combo.itemText(i) for i in range(panel.integration_combo.count())] == [
        "All integrations", "hubspot-marketing"]
    QTest.keyClicks(panel.filter_edit, "crm co 2")
    assert shown_records(panel) == [EMAILS[1]]
    assert panel.shown_label.text() == "1 of 3 shown"
    panel.filter_edit.clear()
    QTest.keyClicks(panel.filter_edit, "person3")
    assert shown_records(panel) == [EMAILS[2]]
    panel.filter_edit.clear()
    assert len(shown_records(panel)) == 3 and panel.shown_label.text() == ""
    panel.field_combo.setCurrentIndex(1)
    panel.integration_combo.setCurrentIndex(1)
    assert len(shown_records(panel)) == 3
    QTest.keyClicks(panel.filter_edit, "Local Co")
    assert len(shown_records(panel)) == 3
    QTest.keyClicks(panel.filter_edit, " 1")
    assert shown_records(panel) == [EMAILS[0]]

    # Ctrl+A selects what the filter shows; the hidden conflicts are left alone.
    select_all(panel)
    assert [c.record_key for c in panel.selected_conflicts()] == [EMAILS[0]]
    with qtbot.waitSignal(panel.conflicts_changed, timeout=10_000):
        click(panel.keep_crm_button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)
    assert local_company(hubspot, EMAILS[0]) == "CRM Co 1"
    assert local_company(hubspot, EMAILS[1]) == "Local Co 2"
    assert shown_records(panel) == [] and panel.shown_label.text() == "0 of 2 shown"
    panel.filter_edit.clear()
    assert shown_records(panel) == EMAILS[1:]


def test_stop_leaves_the_conflicts_not_begun_open(window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench) -> None:
    panel = opened(window, qtbot, hubspot)
    select(panel, EMAILS[0])
    QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     panel.table.visualRect(panel.model.index(2, 1)).center())
    assert len(panel.selected_conflicts()) == 3, "Shift+click selects the rows between"
    click(panel.keep_crm_button)
    box = panel.confirm_box
    assert box is not None
    with qtbot.waitSignal(panel.conflicts_changed, timeout=10_000):
        click(box.button(QMessageBox.StandardButton.Yes))
        assert panel.stop_button.isVisible() and panel.progress_label.text() == "Resolving 0 of 3…"
        click(panel.stop_button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)
    assert panel.notice.text().startswith("Resolved 0 of 3 conflicts")
    assert panel.failures.count() == 3
    assert panel.failures.item(0).text().endswith(": not tried: the resolution was stopped")
    assert panel.model.rowCount() == 3 and hubspot.workspace.sync.conflict_count() == 3
    assert [local_company(hubspot, email) for email in EMAILS] == [f"Local Co {n}" for n in (1, 2, 3)]
    assert panel.keep_crm_button.isEnabled()


def test_after_a_sync_the_list_is_read_off_the_windows_thread(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 conflicts took most of a second to read: after a sync they are read on a store thread."""
    window.show_panel(CONFLICTS_ROW)
    panel = window.conflicts_panel
    threads: list[threading.Thread] = []
    load: Callable[[], list[ConflictRow]] = panel.model._load_conflicts

    def on_which_thread() -> list[ConflictRow]:
        threads.append(threading.current_thread())
        return load()

    monkeypatch.setattr(panel.model, "_load_conflicts", on_which_thread)
    make_conflicts(window, qtbot, hubspot)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=5000)
    assert threads and threading.main_thread() not in threads
    assert panel.selected_conflicts()[0].record_key == EMAILS[0], "the first is selected"
