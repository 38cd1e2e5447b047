"""The columns a list shows: its header's right click hides and shows them, and the next window remembers."""

from __future__ import annotations

import qasync
from PySide6.QtCore import QPoint
from PySide6.QtGui import QContextMenuEvent, QStandardItemModel
from PySide6.QtWidgets import QApplication, QMenu, QTableView
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.columns import ColumnChoice
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import RunColumn
from crm_desktop.ui.tasks import BackgroundTasks
from tests.support.marketing_data import seed_marketing
from tests.ui.conftest import HubSpotBench, shown
from tests.ui.test_people_panel import open_panel as open_people


def sync_monitor(qtbot: QtBot, hubspot: HubSpotBench) -> SyncMonitorPanel:
    return shown(qtbot, SyncMonitorPanel(hubspot.workspace.monitor, BackgroundTasks()), 1100, 700)


def right_click_header(qtbot: QtBot, table: QTableView, choice: ColumnChoice) -> QMenu:
    """Right-click the table's header (as the mouse does, a context menu event on it) and return the menu."""
    header = table.horizontalHeader()
    at = QPoint(20, 10)
    QApplication.sendEvent(header.viewport(),
                           QContextMenuEvent(QContextMenuEvent.Reason.Mouse, at, header.mapToGlobal(at)))
    qtbot.waitUntil(lambda: choice.menu is not None and choice.menu.isVisible(), timeout=2000)
    assert choice.menu is not None
    return choice.menu


def entries(menu: QMenu) -> dict[str, bool]:
    return {action.text(): action.isChecked() for action in menu.actions() if action.isCheckable()}


def pick(menu: QMenu, text: str) -> None:
    [action] = [action for action in menu.actions() if action.text() == text]
    action.trigger()
    menu.close()


def test_a_run_history_column_hidden_by_the_header_menu_stays_hidden_in_the_next_window(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    panel = sync_monitor(qtbot, hubspot)
    menu = right_click_header(qtbot, panel.runs_table, panel.runs_columns)
    offered = entries(menu)
    assert list(offered) == [column.title for column in RunColumn][2:], "Started and Integration always show"
    assert all(offered.values())
    assert not menu.actions()[-1].isEnabled(), "“Show all columns” has nothing to show yet"
    pick(menu, "Trigger")
    assert panel.runs_table.isColumnHidden(RunColumn.TRIGGER)
    pick(right_click_header(qtbot, panel.runs_table, panel.runs_columns), "Direction")

    again = sync_monitor(qtbot, hubspot)
    hidden = [column for column in RunColumn if again.runs_table.isColumnHidden(column)]
    assert hidden == [RunColumn.TRIGGER, RunColumn.DIRECTION]
    menu = right_click_header(qtbot, again.runs_table, again.runs_columns)
    assert not entries(menu)["Trigger"] and entries(menu)["Status"]
    pick(menu, "Show all columns")
    assert not any(again.runs_table.isColumnHidden(column) for column in RunColumn)
    assert not any(sync_monitor(qtbot, hubspot).runs_table.isColumnHidden(column) for column in RunColumn)


def test_hiding_people_columns_gives_their_room_to_the_email(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    seed_marketing(workspace)
    panel = open_people(qtbot, workspace)
    panel.resize(900, 700)  # Email gives way to keep Name, Company and Score in sight
    qtbot.wait(50)
    squeezed = panel.table.columnWidth(PersonColumn.EMAIL)
    menu = right_click_header(qtbot, panel.table, panel.column_choice)
    assert "Name" not in entries(menu), "the name says who the row is"
    pick(menu, "Company")
    assert panel.table.isColumnHidden(PersonColumn.COMPANY)
    qtbot.waitUntil(lambda: panel.table.columnWidth(PersonColumn.EMAIL) > squeezed, timeout=2000)
    assert panel.table.isColumnHidden(PersonColumn.COMPANY) == open_people(qtbot, workspace).table.isColumnHidden(
        PersonColumn.COMPANY) is True


def test_the_last_column_shown_cannot_be_hidden(qtbot: QtBot) -> None:
    model = QStandardItemModel(1, 2)
    model.setHorizontalHeaderLabels(["Name", "Email"])
    table = QTableView()
    table.setModel(model)
    qtbot.addWidget(table)
    table.show()
    choice = ColumnChoice(table, "test-last-column", always_shown=())
    choice.show_column(0, False)
    menu = choice.build_menu()
    enabled = {action.text(): action.isEnabled() for action in menu.actions() if action.isCheckable()}
    assert enabled == {"Name": True, "Email": False}
    assert choice.hidden_headings() == ["Name"]
