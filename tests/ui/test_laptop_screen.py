"""A common laptop's window (1280x800) with demo-like data: the People list fits without scrolling sideways, and the
sync preview's Enter cancels while it is still being worked out."""

from __future__ import annotations

import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.people_panel import PeoplePanel
from crm_desktop.ui.sync_preview_dialog import SyncPreviewDialog
from tests.support.marketing_data import seed_marketing


def columns_width(table: QTableView) -> int:
    header = table.horizontalHeader()
    return sum(header.sectionSize(column) for column in range(header.count()) if not header.isSectionHidden(column))


def people_window(qtbot: QtBot, workspace: Workspace, width: int, height: int) -> tuple[MainWindow, PeoplePanel]:
    seed_marketing(workspace, people=60)
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.resize(width, height)
    window.show()
    qtbot.waitExposed(window)
    window.show_panel(window.stack.indexOf(window.people_panel))
    people = window.people_panel
    qtbot.waitUntil(lambda: not people.model.busy and people.model.rowCount() > 0, timeout=5000)
    qtbot.waitUntil(people.table.verticalScrollBar().isVisible, timeout=5000)  # a long list: the narrower view
    qtbot.wait(50)  # the columns are fitted once the new size is taken in
    return window, people


def test_the_people_list_fits_a_laptop_window_without_scrolling_sideways(
    qtbot: QtBot, styled_app: QApplication, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """At 1280x800 the list (beside the detail pane) had Name, Email, Company and Score whole, and Platforms and
    Updated behind a horizontal scroll bar. Now those two fold away there, the four that matter keep their text,
    and the detail pane's tabs are all in sight; widened, the list shows all six again."""
    window, people = people_window(qtbot, workspace, 1280, 800)
    table = people.table
    metrics = table.fontMetrics()
    assert columns_width(table) <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()
    for column in people.KEPT_IN_SIGHT:
        assert not table.isColumnHidden(column), column.name
    assert table.columnWidth(PersonColumn.NAME) > metrics.horizontalAdvance("Katherine Lovelace")
    assert table.columnWidth(PersonColumn.COMPANY) > metrics.horizontalAdvance("Analytical Engines")
    assert table.columnWidth(PersonColumn.EMAIL) > metrics.horizontalAdvance("margaret.dijkstra39@example.com")
    tabs = people.detail_pane.tabs.tabBar()
    assert tabs.tabRect(tabs.count() - 1).right() < tabs.width(), "History is in sight"
    # Folded by the list, not hidden by the marketer: not saved, and still ticked in the header's menu.
    assert people.column_choice.hidden_headings() == []
    ticked = {action.text(): action.isChecked() for action in people.column_choice.build_menu().actions()
              if action.isCheckable()}
    assert ticked["Platforms"] and ticked["Updated"]

    window.resize(1900, 1000)
    qtbot.waitUntil(lambda: not table.isColumnHidden(PersonColumn.UPDATED), timeout=2000)
    qtbot.wait(50)
    assert not table.isColumnHidden(PersonColumn.PLATFORMS)
    assert columns_width(table) <= table.viewport().width()
    assert table.columnWidth(PersonColumn.PLATFORMS) > metrics.horizontalAdvance("Instagram, LinkedIn")


def test_unticking_a_folded_column_hides_it_for_good(
    qtbot: QtBot, styled_app: QApplication, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    window, people = people_window(qtbot, workspace, 1280, 800)
    assert people.table.isColumnHidden(PersonColumn.UPDATED)
    people.column_choice.show_column(PersonColumn.UPDATED, False)
    assert people.column_choice.hidden_headings() == ["Updated"]
    window.resize(1900, 1000)
    qtbot.waitUntil(lambda: not people.table.isColumnHidden(PersonColumn.PLATFORMS), timeout=2000)
    assert people.table.isColumnHidden(PersonColumn.UPDATED)


def test_enter_in_the_sync_preview_cancels_while_the_plans_are_worked_out(
    qtbot: QtBot, styled_app: QApplication
) -> None:
    """Cancel was made the default before it was in the dialog, so the dialog never knew: shown, the button box
    made the disabled Proceed the default, and Enter did nothing. While the plans are worked out, Enter is Cancel
    (once they are in it is Proceed: tests/ui/test_table_keys.py)."""
    dialog = SyncPreviewDialog(["HubSpot (demo)"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert not dialog.proceed_button.isEnabled()
    assert dialog.cancel_button.isDefault() and not dialog.proceed_button.isDefault()
    answers: list[str] = []
    dialog.accepted.connect(lambda: answers.append("proceed"))
    dialog.rejected.connect(lambda: answers.append("cancel"))
    QTest.keyClick(dialog.dont_ask_check, Qt.Key.Key_Return)  # a box that leaves Enter to the dialog
    assert answers == ["cancel"]
