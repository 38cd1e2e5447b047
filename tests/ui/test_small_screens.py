"""A short window (a 1280x720 screen, e.g. 1920x1080 at 150%): panels fit or scroll, never push the window past it."""

from __future__ import annotations

from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QScreen
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QScrollArea, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.integrations_panel import IntegrationsPanel
from crm_desktop.ui.main_window import SYNC_MONITOR_ROW, MainWindow, default_size
from crm_desktop.ui.sync_preview_dialog import SyncPreviewDialog
from tests.ui.conftest import HubSpotBench, unfinished_tasks
from tests.ui.test_people_panel import open_panel as open_people
from tests.ui.test_people_panel import preview as preview_import

#: A 1280x720 screen less a 40 px taskbar: the default window is 1152x612.
SHORT_SCREEN = QSize(1280, 680)


def page_of(panel: QWidget) -> QScrollArea:
    page = panel.findChild(QScrollArea)
    assert page is not None, f"{type(panel).__name__} lays its content in a scrolling page"
    return page


def in_sight(widget: QWidget, page: QScrollArea) -> bool:
    top = widget.mapTo(page.viewport(), QPoint(0, 0)).y()
    return top >= 0 and top + widget.height() <= page.viewport().height()


def laid_out(label: QLabel) -> bool:
    """Whether the page has grown for all of ``label``'s text (until then, a shorter text may still be in sight)."""
    return label.height() >= label.heightForWidth(label.width())


def short_window(qtbot: QtBot, hubspot: HubSpotBench) -> MainWindow:
    window = MainWindow(hubspot.workspace)
    qtbot.addWidget(window)
    window.resize(default_size(SHORT_SCREEN))
    window.show()
    qtbot.waitExposed(window)
    return window


def test_every_panel_keeps_the_window_its_size_and_all_but_the_sync_monitor_fit_it(
    qtbot: QtBot, hubspot: HubSpotBench, styled_app: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    window = short_window(qtbot, hubspot)
    size = window.size()
    assert size == QSize(1152, 612)
    for row, entry in enumerate(window.panels):
        window.show_panel(row)
        qtbot.wait(100)
        assert window.size() == size, f"opening {entry.title} made the window {window.size()}"
    for row, entry in enumerate(window.panels):
        window.show_panel(row)
        qtbot.wait(50)
        page = page_of(entry.widget)
        if row != SYNC_MONITOR_ROW:  # health, runs and a run's details together: it scrolls, as it always did
            assert not page.verticalScrollBar().isVisible(), f"{entry.title} scrolls in a {size} window"
        assert not page.horizontalScrollBar().isVisible(), f"{entry.title} scrolls sideways"
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_a_connection_result_below_the_fold_is_scrolled_into_sight(
    qtbot: QtBot, hubspot: HubSpotBench, styled_app: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    window = short_window(qtbot, hubspot)
    window.show_panel(0)
    panel = window.current_panel
    assert isinstance(panel, IntegrationsPanel)
    window.resize(window.width(), 480)  # shorter than the panel with a result: the page has to scroll
    row = panel.model.row_of(hubspot.name)
    assert row is not None
    panel.table.selectRow(row)
    QTest.mouseClick(panel.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    page = page_of(panel)
    result = panel.connection.result
    assert result.text().startswith("Connected to HubSpot account ")
    qtbot.waitUntil(lambda: laid_out(result), timeout=2000)
    qtbot.waitUntil(lambda: page.verticalScrollBar().isVisible() and in_sight(result, page), timeout=2000)
    assert window.height() == 480
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_a_result_that_no_longer_fits_is_scrolled_into_sight(
    qtbot: QtBot, hubspot: HubSpotBench, styled_app: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen on Xvfb: the page fit with "Testing the connection…", and the result's longer text grew it past the
    window's bottom; the page was scrolled before it had grown, so not at all, and the result was cut off."""
    window = short_window(qtbot, hubspot)
    window.show_panel(0)
    panel = window.current_panel
    assert isinstance(panel, IntegrationsPanel)
    page = page_of(panel)
    row = panel.model.row_of(hubspot.name)
    assert row is not None
    panel.table.selectRow(row)
    qtbot.wait(50)
    # Just room enough for the page with one line below the test button.
    window.resize(window.width(), window.height() + page.widget().minimumSizeHint().height() + 30
                  - page.viewport().height())
    qtbot.waitUntil(lambda: not page.verticalScrollBar().isVisible(), timeout=2000)
    QTest.mouseClick(panel.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    result = panel.connection.result
    assert result.text().startswith("Connected to HubSpot account ")
    qtbot.waitUntil(lambda: laid_out(result), timeout=2000)
    qtbot.waitUntil(lambda: page.verticalScrollBar().isVisible() and in_sight(result, page), timeout=2000)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_the_big_dialogs_open_within_a_small_screen(
    qtbot: QtBot, workspace: Workspace, tmp_path: Path, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Duplicates dialog opened 680 px tall: on a 1280x720 screen its Close button sat under the taskbar. On
    that screen (the offscreen one is told it is), each dialog opens within 90% of it."""
    people = open_people(qtbot, workspace)
    path = tmp_path / "contacts.csv"
    path.write_text("email,firstName\nada@example.com,Ada\nnot-an-email,Bob\n", encoding="utf-8")
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _screen: QRect(QPoint(0, 0), SHORT_SCREEN))
    imported = preview_import(qtbot, people, path)
    assert imported is not None
    dialogs: list[QWidget] = [people.open_duplicates(), imported, SyncPreviewDialog(["HubSpot (demo)"], people)]
    for dialog in dialogs:
        dialog.show()
        qtbot.waitExposed(dialog)
        assert dialog.height() <= 612 and dialog.width() <= 1152, (type(dialog).__name__, dialog.size())
        dialog.close()
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_tab_never_stops_on_a_panels_page_and_still_scrolls_to_the_field_it_reaches(
    qtbot: QtBot, hubspot: HubSpotBench, styled_app: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    """Tab through each panel: the focus goes from field to field, never onto the page that holds them (a frameless
    scroll area that draws no focus, so the focus seemed lost); in the short window, the Sync Monitor's page still
    scrolls to show the field Tab reaches."""
    window = short_window(qtbot, hubspot)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    for row, entry in enumerate(window.panels):
        window.show_panel(row)
        qtbot.wait(50)
        page = page_of(entry.widget)
        window.sidebar.setFocus()
        for _ in range(40):
            QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
            focused = QApplication.focusWidget()
            assert focused is not page, f"Tab stopped on {entry.title}'s page"
            if row == SYNC_MONITOR_ROW and page.isAncestorOf(focused) and focused.isVisible():
                assert in_sight(focused, page), f"{focused.accessibleName()} is out of sight"
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_a_long_notice_is_shown_whole_and_the_page_scrolls_to_it(
    qtbot: QtBot, tmp_path: Path, styled_app: QApplication, qasync_loop: qasync.QEventLoop
) -> None:
    """Seen on a HubSpot account without the social properties: Field Mapping's notice listed nine missing fields, but
    in the short window its last lines were cut off (the page scrolled, yet the notice kept its smallest height)."""
    from crm_desktop.domain.models import Integration, Provider, SyncConfig
    from crm_desktop.sandbox.core import SandboxConfig
    from crm_desktop.sandbox.hubspot import HubSpotSandbox
    from crm_desktop.vault import Vault
    from tests.support.memory_keyring import MemoryKeyring

    sandbox = HubSpotSandbox(SandboxConfig(), social_properties=False)
    workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=MemoryKeyring()), transport=sandbox.transport())
    try:
        workspace.integrations.add(Integration(provider=Provider.HUBSPOT, name="HubSpot", base_url=sandbox.base_url,
                                               sync_config=SyncConfig(auto_sync=False)), sandbox.credentials())
        window = MainWindow(workspace)
        qtbot.addWidget(window)
        window.resize(default_size(SHORT_SCREEN))
        window.show()
        qtbot.waitExposed(window)
        window.show_panel(window.stack.indexOf(window.field_mapping_panel))
        panel = window.field_mapping_panel
        qtbot.waitUntil(lambda: "Engagement history (summary) →" in panel.notice.text(), timeout=10_000)
        notice = panel.notice
        qtbot.waitUntil(lambda: notice.height() >= notice.heightForWidth(notice.width()), timeout=2000)
        # The page scrolls rather than cutting the notice.
        qtbot.waitUntil(page_of(panel).verticalScrollBar().isVisible, timeout=2000)
        window.close()
    finally:
        workspace.close()
