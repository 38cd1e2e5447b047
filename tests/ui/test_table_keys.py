"""Enter and Delete on every table of the window, pressed as keys on offscreen widgets: Enter opens the row's
details or takes its next step, Delete starts its destructive action after asking, and a table that offers neither
says so in the status bar instead of ignoring the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QMessageBox,
    QTableView,
    QTableWidget,
)
from pytestqt.qtbot import QtBot

from crm_desktop.app.imports import ImportReport
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.ui.conflicts_panel import ConflictColumn
from crm_desktop.ui.field_mapping_panel import MATCHED_BY
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.people_panel import import_summary
from crm_desktop.ui.widgets import NO_ROW_SELECTED, RowKeys, row_keys
from tests.support.marketing_data import CAMPAIGNS, seed_marketing
from tests.ui.conftest import HubSpotBench, person
from tests.ui.test_conflicts_panel import loaded, make_conflicts

INTEGRATIONS, FIELD_MAPPING, CONFLICTS, SYNC_MONITOR, PEOPLE, ATTRIBUTION = range(6)


def open_window(qtbot: QtBot, workspace: Workspace) -> MainWindow:
    window = MainWindow(workspace, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitActive(window):
        window.activateWindow()
    return window


@pytest.fixture
def synced_window(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[MainWindow]:
    window = open_window(qtbot, hubspot.workspace)
    yield window
    window.desk.quit()


def status(window: MainWindow) -> str:
    return window.statusBar().currentMessage()


def press(table: QAbstractItemView, key: Qt.Key, row: int | None = None) -> None:
    """Select ``row`` (when given) and press ``key`` with the keyboard in the table."""
    table.setFocus(Qt.FocusReason.OtherFocusReason)
    if row is not None:
        table.selectRow(row)
    QTest.keyClick(table, key)


class Letters(QAbstractTableModel):
    """Three rows of one letter each."""

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 3

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 1

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return "abc"[index.row()] if role == Qt.ItemDataRole.DisplayRole else None


def test_row_keys_act_on_the_selected_row_or_say_why_not(qtbot: QtBot) -> None:
    table = QTableView()
    table.setModel(Letters(table))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    qtbot.addWidget(table)
    table.show()
    opened: list[int] = []
    said: list[str] = []
    row_keys(table, on_open=opened.append, cannot_delete="Letters stay.", say=said.append)

    press(table, Qt.Key.Key_Return)
    assert (opened, said) == ([], [NO_ROW_SELECTED]), "no row selected: said, not ignored"
    press(table, Qt.Key.Key_Enter, row=2)  # the keypad's Enter too
    press(table, Qt.Key.Key_Delete)
    assert opened == [2] and said[-1] == "Letters stay."
    QTest.keyClick(table, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert opened == [2], "Ctrl+Enter is not Enter"
    with pytest.raises(ValueError, match="says why"):
        RowKeys(table, on_open=opened.append)


def test_every_table_of_the_window_answers_enter_and_delete(qtbot: QtBot, workspace: Workspace) -> None:
    window = open_window(qtbot, workspace)
    window.desk.alerts_dock.show()
    for entry in window.panels:
        entry.widget  # noqa: B018 (a panel is built when first opened: build them all)
    tables = window.findChildren(QTableView)
    names = sorted(table.accessibleName() for table in tables)
    assert len(tables) >= 16, names
    for table in tables:
        name = table.accessibleName()
        assert name, "every table has an accessible name"
        assert table.findChildren(RowKeys), f"{name}: Enter and Delete are not handled"
        page = next((index for index, entry in enumerate(window.panels) if entry.widget.isAncestorOf(table)), None)
        if page is not None:
            window.show_panel(page)
        table.clearSelection()
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Delete):
            window.statusBar().clearMessage()
            press(table, key)
            assert status(window), f"{key.name} on {name} said nothing"
    window.desk.quit()


def test_enter_on_a_conflict_goes_to_its_decision_and_delete_says_it_is_resolved_instead(
    qtbot: QtBot, hubspot: HubSpotBench, synced_window: MainWindow
) -> None:
    window = synced_window
    make_conflicts(window, qtbot, hubspot)
    panel = window.conflicts_panel
    window.show_panel(CONFLICTS)
    loaded(panel, qtbot)
    assert panel.model.rowCount() == 3
    press(panel.table, Qt.Key.Key_Delete, row=1)
    assert status(window).startswith("A conflict is resolved, not deleted")
    assert panel.model.rowCount() == 3

    email = panel.model.index(1, ConflictColumn.RECORD).data()
    press(panel.table, Qt.Key.Key_Return, row=1)
    assert QApplication.focusWidget() is panel.keep_crm_button
    with qtbot.waitSignal(panel.conflicts_changed, timeout=10_000):
        QTest.keyClick(panel.keep_crm_button, Qt.Key.Key_Space)
    assert panel.model.rowCount() == 2
    assert hubspot.workspace.contacts.find(email).company.startswith("CRM Co")  # type: ignore[union-attr]


def test_enter_on_a_run_its_errors_and_a_record_leads_to_the_person(
    qtbot: QtBot, hubspot: HubSpotBench, synced_window: MainWindow
) -> None:
    window = synced_window
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[1]))
    monitor = window.sync_monitor_panel
    window.show_panel(SYNC_MONITOR)
    with qtbot.waitSignal(monitor.errors_shown, timeout=15_000):
        QTest.mouseClick(monitor.sync_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not monitor.running_integrations, timeout=15_000)
    assert monitor.selected_run() is not None and monitor.errors_model.rowCount() == 1

    press(monitor.runs_table, Qt.Key.Key_Delete, row=0)
    assert "“Undo run…”" in status(window)
    press(monitor.runs_table, Qt.Key.Key_Return, row=0)
    assert QApplication.focusWidget() is monitor.log_table
    press(monitor.errors_table, Qt.Key.Key_Delete, row=0)
    assert "“Retry failed”" in status(window)
    press(monitor.errors_table, Qt.Key.Key_Return, row=0)
    assert QApplication.focusWidget() is monitor.log_table

    failed = monitor.log_model.log_row(0)  # failures first
    assert failed.error_category is not None
    press(monitor.log_table, Qt.Key.Key_Delete, row=0)
    assert "nothing is deleted" in status(window)
    press(monitor.log_table, Qt.Key.Key_Return, row=0)
    people = window.people_panel
    assert window.current_panel is people
    assert people.filter_edit.text() == failed.record_key
    qtbot.waitUntil(lambda: people.detail_pane.detail is not None, timeout=5000)
    assert people.detail_pane.detail.email == failed.record_key  # type: ignore[union-attr]


def test_enter_picks_a_mappings_crm_field_and_delete_unmaps_it_after_asking(
    qtbot: QtBot, hubspot: HubSpotBench, synced_window: MainWindow
) -> None:
    window = synced_window
    panel = window.field_mapping_panel
    window.show_panel(FIELD_MAPPING)
    qtbot.waitUntil(lambda: bool(panel.model.crm_fields), timeout=10_000)
    company = panel.model.row_of("company")
    assert company is not None

    press(panel.table, Qt.Key.Key_Return, row=company)
    assert panel.table.state() == QAbstractItemView.State.EditingState
    picker = QApplication.focusWidget()
    assert isinstance(picker, QComboBox) and picker.accessibleName() == "CRM field"
    picker.setCurrentIndex(picker.findText("Job Title"))
    QTest.keyClick(picker, Qt.Key.Key_Return)  # commits the pick; the table does not take it as its own Enter
    qtbot.waitUntil(lambda: panel.model.mapping_at(company).crm_field == "jobtitle", timeout=2000)
    assert panel.table.state() != QAbstractItemView.State.EditingState and panel.model.dirty

    press(panel.table, Qt.Key.Key_Delete, row=panel.model.row_of(MATCHED_BY))
    assert panel.confirm_box is None and "stays mapped" in status(window)

    press(panel.table, Qt.Key.Key_Delete, row=company)
    box = panel.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    # Both fields as the table shows them, not by their wire names ("Stop syncing company with jobtitle?").
    assert box.text() == "Stop syncing Company with the CRM's Job Title?"
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert panel.model.row_of("company") == company, "cancelled: still mapped"

    press(panel.table, Qt.Key.Key_Delete, row=company)
    box = panel.confirm_box
    assert isinstance(box, QMessageBox)
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert panel.model.row_of("company") is None and panel.model.dirty
    QTest.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    integration = hubspot.workspace.integrations.get(hubspot.name)
    saved = hubspot.workspace.sync.mappings(integration, RecordObject.CONTACT)
    assert "company" not in {m.local_field for m in saved} and MATCHED_BY in {m.local_field for m in saved}


def test_enter_on_a_person_opens_the_detail_pane_and_delete_forgets_them_after_asking(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    workspace.contacts.save_many(person(number) for number in (1, 2, 3))
    window = open_window(qtbot, workspace)
    people = window.people_panel
    window.show_panel(PEOPLE)
    qtbot.waitUntil(lambda: people.model.rowCount() == 3 and not people.model.busy, timeout=5000)
    picked = people.model.line(1)
    assert picked is not None
    press(people.table, Qt.Key.Key_Delete, row=1)
    # Opened once their CRM records are read on a store thread.
    qtbot.waitUntil(lambda: people.confirm_box is not None, timeout=5000)
    box = people.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.checkBox() is None, "no linked CRM records: nothing to delete in a CRM offered"
    # The person by name and email, and what goes.
    assert box.text() == f"Forget {picked.name} ({picked.email})?"
    assert "conversations and messages" in box.informativeText() and "not deleted" in box.informativeText()
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert people.model.rowCount() == 3 and workspace.contacts.find(picked.email) is not None, "cancelled"
    with qtbot.waitActive(window):  # the offscreen platform hands no activation back from a closed question
        window.activateWindow()

    press(people.table, Qt.Key.Key_Return, row=1)
    assert people.detail_pane.isAncestorOf(QApplication.focusWidget())
    qtbot.waitUntil(lambda: people.detail_pane.detail is not None, timeout=5000)  # read on a store thread
    assert people.detail_pane.detail.email == people.model.line(1).email  # type: ignore[union-attr]
    history = people.detail_pane.history_table
    assert isinstance(history, QTableWidget)
    press(history, Qt.Key.Key_Delete)
    assert "nothing is deleted" in status(window)

    # The details' Forget… asks too; Forget erases the person on a store thread and their row goes.
    shown = people.detail_pane.detail
    assert shown is not None and people.detail_pane.forget_button.isEnabled()
    QTest.mouseClick(people.detail_pane.forget_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: people.confirm_box is not None, timeout=5000)
    box = people.confirm_box
    assert isinstance(box, QMessageBox) and shown.email in box.text()
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: people.model.rowCount() == 2 and not people.model.busy, timeout=5000)
    assert workspace.contacts.find(shown.email) is None
    assert shown.email not in [line.email for line in (people.model.line(row) for row in range(2)) if line]
    assert people.detail_pane.detail is None and not people.detail_pane.forget_button.isEnabled()
    assert status(window).startswith(f"forgot {shown.email}: contact")
    window.desk.quit()


def attribution_window(qtbot: QtBot, workspace: Workspace) -> MainWindow:
    """The window on the Attribution panel, over the marketing test data, its report drawn (worked out on a
    store thread)."""
    seed_marketing(workspace)
    window = open_window(qtbot, workspace)
    window.show_panel(ATTRIBUTION)
    drawn(qtbot, window)
    return window


def drawn(qtbot: QtBot, window: MainWindow) -> None:
    """Wait for the Attribution panel's report to be drawn."""
    panel = window.attribution_panel
    qtbot.waitUntil(lambda: panel.report is not None and not panel.busy, timeout=5000)


def test_enter_on_a_campaign_lists_its_leads_in_people(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    window = attribution_window(qtbot, workspace)
    table = window.attribution_panel.campaigns_table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == CAMPAIGNS[1])
    press(table, Qt.Key.Key_Delete, row=row)
    assert "nothing is deleted" in status(window)

    press(table, Qt.Key.Key_Return, row=row)
    people = window.people_panel
    assert window.current_panel is people
    assert people.kind_tabs.currentIndex() == 1, "a campaign's leads"
    assert people.campaign_combo.currentData() == CAMPAIGNS[1]
    qtbot.waitUntil(lambda: people.detail_pane.detail is not None, timeout=5000)
    assert people.model.query.campaign == CAMPAIGNS[1] and people.model.rowCount() > 0
    window.desk.quit()


def test_enter_on_a_platform_lists_the_leads_its_row_counts(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    window = attribution_window(qtbot, workspace)
    attribution = window.attribution_panel
    attribution.period_combo.setCurrentIndex(attribution.period_combo.findData(None))  # all time, as People lists
    drawn(qtbot, window)
    table = attribution.platforms_table
    counted = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    row = counted["Instagram"]
    leads_column = next(c for c in range(table.columnCount())
                        if table.horizontalHeaderItem(c).text().startswith("Leads"))
    leads = int(table.item(row, leads_column).text())

    press(table, Qt.Key.Key_Return, row=row)
    people = window.people_panel
    assert window.current_panel is people and people.kind_tabs.currentIndex() == 1
    assert people.platform_combo.currentText() == "Reached on Instagram"
    qtbot.waitUntil(lambda: people.model.query.reached_on is not None and not people.model.busy, timeout=5000)
    assert people.model.total == leads, "People lists other leads than the row counted"
    window.desk.quit()


def test_enter_on_a_row_of_a_period_says_people_lists_the_leads_of_all_time(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen by hand: on "Last 7 days" Instagram's row counted 1 lead; Enter listed 6 in People, with no word of
    why (People has no period). The status bar says the list is of all time and what the row counted."""
    window = attribution_window(qtbot, workspace)
    attribution = window.attribution_panel
    attribution.period_combo.setCurrentIndex(attribution.period_combo.findData(7))
    drawn(qtbot, window)
    table = attribution.platforms_table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "Instagram")
    leads = int(table.item(row, 2).text())
    press(table, Qt.Key.Key_Return, row=row)
    people = window.people_panel
    qtbot.waitUntil(lambda: people.model.query.reached_on is not None and not people.model.busy, timeout=5000)
    assert people.model.total > leads, "the test data has Instagram leads reached before the last 7 days"
    said = status(window)
    assert "of all time" in said and f"{leads:,} of them had a touchpoint in the period" in said, said
    assert "Instagram" in said, said

    window.show_panel(ATTRIBUTION)
    attribution.period_combo.setCurrentIndex(attribution.period_combo.findData(None))
    drawn(qtbot, window)
    table = attribution.campaigns_table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == CAMPAIGNS[1])
    window.statusBar().clearMessage()
    press(table, Qt.Key.Key_Return, row=row)
    assert "of all time" not in status(window), "all time is what People lists: nothing to explain"
    window.desk.quit()


def test_enter_on_a_duplicate_group_goes_to_the_merge_and_delete_says_what_ends_it(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    twin = person(2).model_copy(update={"phone": person(1).phone})
    workspace.contacts.save_many([person(1), twin])
    window = open_window(qtbot, workspace)
    window.show_panel(PEOPLE)
    dialog = window.people_panel.open_duplicates()
    qtbot.waitUntil(lambda: not dialog.searching and dialog.groups_table.rowCount() == 1, timeout=5000)
    press(dialog.groups_table, Qt.Key.Key_Delete, row=0)
    assert dialog.result_label.text().startswith("A group is found from the contacts themselves")
    assert dialog.groups_table.rowCount() == 1
    press(dialog.groups_table, Qt.Key.Key_Return, row=0)
    assert QApplication.focusWidget() is dialog.keep_combo and dialog.isVisible(), "Enter did not close the dialog"
    dialog.reject()
    window.desk.quit()


def test_enter_in_the_sync_preview_shows_the_change_and_never_proceeds(
    qtbot: QtBot, hubspot: HubSpotBench, synced_window: MainWindow
) -> None:
    window = synced_window
    monitor = window.sync_monitor_panel
    window.show_panel(SYNC_MONITOR)
    QTest.mouseClick(monitor.sync_all_button, Qt.MouseButton.LeftButton)
    dialog = monitor.preview_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.proceed_button.isEnabled(), timeout=15_000)
    assert dialog.proceed_button.isDefault()
    proceeded: list[bool] = []
    dialog.proceed_chosen.connect(proceeded.append)

    press(dialog.table, Qt.Key.Key_Return)
    assert dialog.isVisible() and not proceeded, "Enter in the table pressed Proceed"
    assert dialog.row_notice.text() == NO_ROW_SELECTED
    press(dialog.table, Qt.Key.Key_Enter, row=1)
    assert dialog.isVisible() and not proceeded, "Enter on a change pressed Proceed"
    shown = dialog.row_notice.text().splitlines()
    assert shown[:5] == ["Integration: hubspot-marketing", "Object: Contact", "Record: person2@example.com",
                         "Where: In the CRM", "Change: Create"], shown
    assert "Email: person2@example.com" in shown[-1]
    press(dialog.table, Qt.Key.Key_Delete, row=2)
    assert dialog.isVisible() and dialog.row_notice.text().startswith("A change is not left out here")
    assert dialog.model.rowCount() == 3
    assert hubspot.sandbox.summary()["contacts"] == 0 and hubspot.workspace.sync.runs() == []

    # Out of the table, Enter is the dialog's default button again.
    dialog.dont_ask_check.setFocus(Qt.FocusReason.OtherFocusReason)
    with qtbot.waitSignal(monitor.runs_finished, timeout=15_000):
        QTest.keyClick(dialog.dont_ask_check, Qt.Key.Key_Return)
    assert proceeded == [False]
    qtbot.waitUntil(lambda: not monitor.running_integrations, timeout=15_000)
    assert hubspot.sandbox.summary()["contacts"] == 3


def test_enter_in_the_import_preview_shows_the_refused_row_and_never_saves(
    qtbot: QtBot, workspace: Workspace, tmp_path: Path, qasync_loop: qasync.QEventLoop
) -> None:
    workspace.contacts.save_many([person(1)])
    window = open_window(qtbot, workspace)
    people = window.people_panel
    window.show_panel(PEOPLE)
    path = tmp_path / "people.csv"
    path.write_text("Email,First Name\nnew.person@example.com,Nova\nnot-an-email,Bad\n", encoding="utf-8")
    checking = people.preview_import(path)
    qtbot.waitUntil(checking.done, timeout=5000)  # the file is checked on a store thread
    dialog = checking.result()
    assert dialog is not None
    qtbot.waitExposed(dialog)
    assert dialog.save_button.isDefault()

    press(dialog.problems_table, Qt.Key.Key_Return, row=0)
    assert dialog.isVisible(), "Enter on a refused row pressed Save"
    assert workspace.contacts.find("new.person@example.com") is None
    shown = dialog.row_notice.text().splitlines()
    assert shown[:3] == ["Line: 3", "Record: not-an-email", "Field: Email"], shown
    assert shown[3].startswith("Reason: ")
    press(dialog.problems_table, Qt.Key.Key_Delete, row=0)
    assert dialog.isVisible() and dialog.row_notice.text().startswith("A refused row is fixed in the file itself")

    # Out of the table, Enter is the dialog's default button: Save.
    with qtbot.waitSignal(people.people_changed, timeout=5000):
        QTest.keyClick(dialog, Qt.Key.Key_Return)
    assert workspace.contacts.find("new.person@example.com") is not None
    window.desk.quit()


def test_the_import_summary_says_why_rows_were_skipped() -> None:
    one = ImportReport(unchanged=1, skipped=[(2, "ann@example.com",
                                              "forgotten on 2026-12-07 at your request; not imported")])
    assert import_summary(one) == ("Imported: 0 created, 0 updated, 1 unchanged, 0 refused, 1 skipped "
                                   "(ann@example.com: forgotten on 2026-12-07 at your request; not imported)")
    two = ImportReport(skipped=[(2, "a@example.com", "…"), (3, "b@example.com", "…")])
    assert import_summary(two).endswith("2 skipped (people forgotten at their request: not imported)")
