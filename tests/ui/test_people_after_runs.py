"""The People list after what other panels write: a sync run from the Sync Monitor, a conflict resolved."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import ConflictRule
from crm_desktop.ui.main_window import CONFLICTS_ROW, PEOPLE_ROW, MainWindow
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.people_panel import PeoplePanel
from tests.ui.conftest import HubSpotBench, click


@pytest.fixture
def window(hubspot_window: MainWindow) -> MainWindow:
    return hubspot_window


def sync_from_the_monitor(window: MainWindow, qtbot: QtBot) -> None:
    monitor = window.sync_monitor_panel
    window.show_panel(window.stack.indexOf(monitor))
    qtbot.waitUntil(monitor.sync_button.isEnabled, timeout=5000)
    with qtbot.waitSignal(monitor.runs_finished, timeout=20_000):
        click(monitor.sync_button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)


def open_people(window: MainWindow, qtbot: QtBot) -> PeoplePanel:
    window.show_panel(PEOPLE_ROW)
    panel = window.people_panel
    qtbot.waitUntil(lambda: panel.model.total > 0 and not panel.model.busy, timeout=5000)
    return panel


def pick(qtbot: QtBot, panel: PeoplePanel, email: str) -> None:
    model = panel.model
    row = next(r for r in range(model.rowCount()) if model.line(r) and model.line(r).email == email)  # type: ignore[union-attr]
    rect = panel.table.visualRect(model.index(row, PersonColumn.EMAIL))
    QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())
    qtbot.waitUntil(lambda: panel.detail_pane.detail is not None and panel.detail_pane.detail.email == email,
                    timeout=5000)


def listed(panel: PeoplePanel, email: str, column: PersonColumn) -> str | None:
    model = panel.model
    for row in range(model.rowCount()):
        if model.data(model.index(row, PersonColumn.EMAIL)) == email:
            return model.data(model.index(row, column))  # type: ignore[no-any-return]
    return None


def selected_email(panel: PeoplePanel) -> str | None:
    rows = panel.table.selectionModel().selectedRows()
    return panel.model.data(panel.model.index(rows[0].row(), PersonColumn.EMAIL)) if rows else None


def test_a_sync_that_pulls_changes_rereads_the_people_list_and_keeps_the_selection(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    sync_from_the_monitor(window, qtbot)  # links the three local contacts
    panel = open_people(window, qtbot)
    assert panel.count_label.text() == "3 contacts"
    pick(qtbot, panel, "person2@example.com")
    hubspot.edit_in_crm("person2@example.com", company="Babbage & Co")
    hubspot.sandbox.seed_contacts([{"email": f"new{n}@crm.example.com", "firstname": "New", "lastname": f"P{n}"}
                                   for n in range(2)])
    sync_from_the_monitor(window, qtbot)
    window.show_panel(PEOPLE_ROW)
    qtbot.waitUntil(lambda: listed(panel, "person2@example.com", PersonColumn.COMPANY) == "Babbage & Co",
                    timeout=5000)
    qtbot.waitUntil(lambda: panel.count_label.text() == "5 contacts", timeout=5000)
    assert listed(panel, "new0@crm.example.com", PersonColumn.NAME) == "New P0"
    assert selected_email(panel) == "person2@example.com", "the person picked stays picked"
    qtbot.waitUntil(lambda: panel.detail_pane.detail is not None
                    and panel.detail_pane.detail.fields.get("company") == "Babbage & Co", timeout=5000)


def test_a_run_that_wrote_nothing_here_does_not_reread_the_list(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    sync_from_the_monitor(window, qtbot)
    panel = open_people(window, qtbot)
    read = panel.model.pages_loaded
    hubspot.edit_locally("person1@example.com", company="Pushed Only")
    sync_from_the_monitor(window, qtbot)  # pushes the edit; nothing comes back
    qtbot.wait(200)
    assert panel.model.pages_loaded == read


def test_resolving_a_conflict_refreshes_the_list_and_the_person_on_show(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    integration = hubspot.workspace.integrations.get(hubspot.name)
    hubspot.workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
    sync_from_the_monitor(window, qtbot)
    hubspot.edit_locally("person1@example.com", company="Local Co")
    hubspot.edit_in_crm("person1@example.com", company="CRM Co")
    sync_from_the_monitor(window, qtbot)
    panel = open_people(window, qtbot)
    pick(qtbot, panel, "person1@example.com")
    assert listed(panel, "person1@example.com", PersonColumn.COMPANY) == "Local Co"

    window.show_panel(CONFLICTS_ROW)
    conflicts = window.conflicts_panel
    qtbot.waitUntil(lambda: conflicts.model.rowCount() == 1, timeout=5000)
    conflicts.table.selectRow(0)
    with qtbot.waitSignal(conflicts.conflicts_changed, timeout=10_000):
        click(conflicts.keep_crm_button)
    window.show_panel(PEOPLE_ROW)
    qtbot.waitUntil(lambda: listed(panel, "person1@example.com", PersonColumn.COMPANY) == "CRM Co", timeout=5000)
    qtbot.waitUntil(lambda: panel.detail_pane.detail is not None
                    and panel.detail_pane.detail.fields.get("company") == "CRM Co", timeout=5000)
