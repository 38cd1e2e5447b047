"""The main window: sidebar switching, remembered geometry and panel, status bar, and a clean close."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from crm_desktop.app.errors import AuthError
from crm_desktop.app.paths import AppPaths
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration
from crm_desktop.ui.conflicts_panel import ConflictsPanel
from crm_desktop.ui.field_mapping_panel import FieldMappingPanel
from crm_desktop.ui.integrations_panel import IntegrationsPanel
from crm_desktop.ui.main_window import (
    PANEL_KEY,
    PEOPLE_ROW,
    SYNC_MONITOR_ROW,
    MainWindow,
    app_settings,
    default_size,
    describe_database,
)
from crm_desktop.ui.people_panel import PeoplePanel
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.widgets import PanelHeading

WindowFactory = Callable[[], MainWindow]


@pytest.fixture
def make_window(qtbot: QtBot, workspace: Workspace) -> WindowFactory:
    def make() -> MainWindow:
        window = MainWindow(workspace)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


def click_sidebar(window: MainWindow, row: int) -> None:
    item = window.sidebar.item(row)
    position = window.sidebar.visualItemRect(item).center()
    QTest.mouseClick(window.sidebar.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position)


def test_the_sidebar_lists_the_panels_with_icons(make_window: WindowFactory) -> None:
    window = make_window()
    titles = [window.sidebar.item(row).text() for row in range(window.sidebar.count())]
    assert titles == ["Integrations", "Field Mapping", "Conflicts", "Sync Monitor", "People", "Attribution"]
    assert all(not window.sidebar.item(row).icon().isNull() for row in range(window.sidebar.count()))
    assert not window.windowIcon().isNull()
    assert window.windowTitle() == "CRM Desktop"
    assert isinstance(window.current_panel, IntegrationsPanel)


def test_clicking_the_sidebar_switches_panels(make_window: WindowFactory) -> None:
    window = make_window()
    expected = [IntegrationsPanel, FieldMappingPanel, ConflictsPanel, SyncMonitorPanel]
    for row in (2, 1, 3, 0):
        click_sidebar(window, row)
        assert window.sidebar.currentRow() == row
        assert isinstance(window.current_panel, expected[row])
        assert window.current_panel.isVisible()


def test_every_panel_says_what_it_is_for(make_window: WindowFactory) -> None:
    window = make_window()
    for entry in window.panels:
        heading = entry.widget.findChild(PanelHeading)
        assert heading is not None, f"{entry.title} has no heading"
        assert heading.title.text() == entry.title
        assert len(heading.subtitle.text().split()) > 12, "a full sentence of what the panel holds"


def built_titles(window: MainWindow) -> list[str]:
    return [entry.title for entry in window.panels if entry.built is not None]


def test_only_the_panel_on_show_is_built_the_others_on_their_first_opening(make_window: WindowFactory) -> None:
    window = make_window()
    assert built_titles(window) == ["Integrations"]
    stand_ins = [window.stack.widget(row) for row in range(1, window.stack.count())]
    assert window.stack.count() == 6 and not any(isinstance(page, SyncMonitorPanel) for page in stand_ins)

    click_sidebar(window, SYNC_MONITOR_ROW)
    monitor = window.current_panel
    assert isinstance(monitor, SyncMonitorPanel) and monitor.isVisible()
    assert window.stack.indexOf(monitor) == SYNC_MONITOR_ROW and window.stack.count() == 6
    assert built_titles(window) == ["Integrations", "Sync Monitor"]
    click_sidebar(window, 0)
    click_sidebar(window, SYNC_MONITOR_ROW)
    assert window.current_panel is monitor, "built once"

    people = window.people_panel  # asking for a panel builds it in its place, without showing it
    assert isinstance(people, PeoplePanel) and window.stack.indexOf(people) == PEOPLE_ROW
    assert window.current_panel is monitor and not people.isVisible()
    assert built_titles(window) == ["Integrations", "Sync Monitor", "People"]


def test_a_start_builds_the_remembered_panel_and_not_the_first(make_window: WindowFactory) -> None:
    settings = app_settings()
    settings.setValue(PANEL_KEY, 2)
    settings.sync()
    window = make_window()
    assert built_titles(window) == ["Conflicts"]
    assert isinstance(window.current_panel, ConflictsPanel) and window.current_panel.isVisible()


def test_a_scheduled_run_before_the_sync_monitor_was_opened_is_shown_when_it_is(make_window: WindowFactory) -> None:
    window = make_window()
    window.scheduler.batch_started.emit(["hs"])
    window.scheduler.batch_finished.emit([("hs", AuthError("HubSpot refused the access token"))])
    assert built_titles(window) == ["Integrations"]
    click_sidebar(window, SYNC_MONITOR_ROW)
    assert "Scheduled: Sync of “hs” failed: HubSpot refused the access token" in (
        window.sync_monitor_panel.notice.text())


def test_a_scheduled_run_going_on_when_the_sync_monitor_is_opened_shows_there(make_window: WindowFactory) -> None:
    window = make_window()
    window.scheduler.batch_started.emit(["hs"])
    click_sidebar(window, SYNC_MONITOR_ROW)
    assert "“hs”: scheduled sync running" in window.sync_monitor_panel.progress_label.text()
    window.scheduler.batch_finished.emit([("hs", AuthError("HubSpot refused the access token"))])
    assert window.sync_monitor_panel.progress_label.text() == "No sync running."


def test_a_scheduled_batch_half_done_when_the_sync_monitor_is_opened_shows_who_runs_and_who_waits(
    make_window: WindowFactory,
) -> None:
    window = make_window()
    window.scheduler.batch_started.emit(["hs", "pd", "sf"])
    window.scheduler.sync_started.emit("hs")
    window.scheduler.sync_started.emit("pd")  # hs is done
    click_sidebar(window, SYNC_MONITOR_ROW)
    assert window.sync_monitor_panel.progress_label.text() == (
        "“pd”: scheduled sync running…   ·   “sf”: waiting for “pd”…")
    window.scheduler.batch_finished.emit([("hs", AuthError("refused")), ("pd", AuthError("refused")),
                                          ("sf", AuthError("refused"))])
    assert window.sync_monitor_panel.progress_label.text() == "No sync running."


def test_geometry_and_panel_are_restored_in_a_second_window(make_window: WindowFactory, qt_settings_dir: Path) -> None:
    first = make_window()
    first.resize(700, 520)  # inside the offscreen screen (800x600): restoring clamps to it
    click_sidebar(first, 2)
    first.close()
    assert not first.isVisible()
    assert any(qt_settings_dir.rglob("*.ini")), "settings went to the test's own folder"

    second = make_window()
    assert (second.width(), second.height()) == (700, 520)
    assert second.sidebar.currentRow() == 2
    assert isinstance(second.current_panel, ConflictsPanel)


def test_a_first_start_uses_the_default_size_and_first_panel(make_window: WindowFactory) -> None:
    window = make_window()
    assert window.size() == default_size(window.screen().availableGeometry().size())
    assert window.sidebar.currentRow() == 0


def test_the_default_size_fits_small_screens() -> None:
    assert default_size(QSize(2560, 1440)) == QSize(1240, 760)
    assert default_size(QSize(1024, 700)) == QSize(922, 630)  # Qt rounds 921.6 to the nearest pixel


@pytest.mark.parametrize("stored", ["not-a-number", "17", "-3"])
def test_a_damaged_panel_setting_falls_back_to_the_first_panel(make_window: WindowFactory, stored: str) -> None:
    settings = app_settings()
    settings.setValue(PANEL_KEY, stored)
    settings.sync()
    assert make_window().sidebar.currentRow() == 0


def test_the_status_bar_shows_the_data_folder_and_database(make_window: WindowFactory, workspace: Workspace) -> None:
    window = make_window()
    text = window.location_label.text()
    assert str(workspace.paths.data_dir) in text
    assert "crm-desktop.db (SQLite)" in text
    window.integrations_panel.status_message.emit("Added HubSpot integration “x”")
    assert window.statusBar().currentMessage() == "Added HubSpot integration “x”"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://crm:s3cret@db.local:5432/crm", "postgresql+psycopg://crm:***@db.local:5432/crm"),
        ("postgresql+psycopg://crm@db.local/crm", "postgresql+psycopg://crm@db.local/crm"),
    ],
)
def test_a_database_url_is_shown_without_its_password(url: str, shown: str, tmp_path: Path) -> None:
    paths = AppPaths(data_dir=tmp_path, database_url=url, log_file=tmp_path / "log")
    assert describe_database(paths) == shown


def test_closing_cancels_running_tasks_and_says_it_closed(
    make_window: WindowFactory, qtbot: QtBot, qasync_loop: qasync.QEventLoop
) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)  # the Sync Monitor's first health read
    task = window.tasks.start(asyncio.sleep(3600), name="long sync")
    assert window.tasks.pending == [task]
    with qtbot.waitSignal(window.closed, timeout=1000):
        window.close()
    qtbot.waitUntil(task.done, timeout=1000)
    assert task.cancelled()
    assert window.tasks.pending == []


def test_a_finished_task_leaves_the_tracker(
    make_window: WindowFactory, qtbot: QtBot, qasync_loop: qasync.QEventLoop
) -> None:
    async def quick() -> int:
        await asyncio.sleep(0)
        return 7

    window = make_window()
    task = window.tasks.start(quick(), name="quick")
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=1000)
    assert task.result() == 7
    assert window.tasks.cancel_all() == 0


def test_file_quit_closes_the_window(make_window: WindowFactory, qtbot: QtBot) -> None:
    window = make_window()
    file_menu = next(menu for menu in window.menuBar().findChildren(QMenu) if menu.title() == "&File")
    assert window.quit_action in file_menu.actions()
    with qtbot.waitSignal(window.closed, timeout=1000):
        window.quit_action.trigger()
    assert not window.isVisible()
    assert QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "CRM Desktop", "crm-desktop").contains(
        PANEL_KEY
    )


def test_help_export_diagnostics_saves_a_redacted_bundle(
    make_window: WindowFactory, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.integrations.add(Integration(provider="hubspot", name="hs"), {"token": "pat-na1-secret-0000-9999"})
    window = make_window()
    help_menu = next(menu for menu in window.menuBar().findChildren(QMenu) if menu.title() == "&Help")
    assert window.diagnostics_action in help_menu.actions()
    window.diagnostics_action.trigger()
    dialog = window.diagnostics_dialog
    assert dialog is not None and dialog.isVisible()
    destination = tmp_path / "support.zip"
    dialog.selectFile(str(destination))
    dialog.accept()
    assert destination.exists()
    with zipfile.ZipFile(destination) as bundle:
        about = json.loads(bundle.read("about.json"))
        assert about["qt"]["platform"] == "offscreen"
        assert b"pat-na1-secret-0000-9999" not in b"".join(bundle.read(name) for name in bundle.namelist())
    assert "Diagnostics saved to" in window.statusBar().currentMessage()
