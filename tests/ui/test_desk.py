"""The tray icon, closing to the tray, alerts as notifications and in the Alerts view, and the keyboard shortcuts,
driven through real clicks and keys on offscreen widgets (the tray's presence is given: offscreen has none)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QScrollArea
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.alerts import Alert, AlertKind
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.ui.accessibility import needs_name
from crm_desktop.ui.alerts_view import AlertColumn, AlertsPanel
from crm_desktop.ui.desk import TRAY_EXPLAINED_KEY, TRAY_EXPLANATION
from crm_desktop.ui.integration_dialog import IntegrationDialog
from crm_desktop.ui.main_window import MainWindow
from tests.ui.conftest import HubSpotBench

WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def make_window(qtbot: QtBot, workspace: Workspace) -> WindowFactory:
    def make(*, tray: bool = True, on: Workspace | None = None) -> MainWindow:
        window = MainWindow(on or workspace, tray_available=tray)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        with qtbot.waitActive(window):  # shortcuts go to the active window
            window.activateWindow()
        return window

    return make


def close_for_good(window: MainWindow) -> None:
    window.desk.quit()


# -- the tray ------------------------------------------------------------------------------------------------------


def test_the_tray_menu_offers_open_sync_all_pause_and_quit(make_window: WindowFactory) -> None:
    window = make_window()
    tray = window.desk.tray
    assert tray.visible
    assert [a.text() for a in tray.menu.actions() if not a.isSeparator()] == [
        "Open CRM Desktop", "Sync all now", "Pause auto-sync", "Quit"]
    assert not tray.pause_action.isChecked() and window.scheduler.active
    close_for_good(window)


def test_pause_auto_sync_stops_the_scheduler_and_is_remembered(
    make_window: WindowFactory, workspace: Workspace
) -> None:
    window = make_window()
    window.desk.tray.pause_action.trigger()
    assert not window.scheduler.active
    assert workspace.preferences.get().auto_sync is False
    close_for_good(window)

    again = make_window()
    assert again.desk.tray.pause_action.isChecked() and not again.scheduler.active
    again.desk.tray.pause_action.trigger()
    assert again.scheduler.active and workspace.preferences.get().auto_sync
    close_for_good(again)


def test_closing_keeps_the_app_in_the_tray_and_says_so_once(make_window: WindowFactory, qtbot: QtBot) -> None:
    window = make_window()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    assert not window.isVisible() and closed == [], "hidden, not closed: auto-sync goes on"
    assert window.scheduler.active
    assert window.desk.tray.last_notification == ("CRM Desktop is still running", TRAY_EXPLANATION)
    assert window.window_settings.value(TRAY_EXPLAINED_KEY, type=bool) is True

    window.desk.tray.last_notification = None
    window.desk.tray.open_action.trigger()
    assert window.isVisible()
    window.close()
    assert window.desk.tray.last_notification is None, "said once, not at every close"

    window.desk.tray.quit_action.trigger()
    assert closed == [True] and not window.scheduler.active and not window.desk.tray.visible


def test_without_a_tray_closing_quits_as_before(make_window: WindowFactory) -> None:
    window = make_window(tray=False)
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    assert not window.desk.tray.visible
    window.close()
    assert closed == [True]


def test_with_auto_sync_paused_closing_quits(make_window: WindowFactory) -> None:
    window = make_window()
    window.desk.tray.pause_action.trigger()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    assert closed == [True], "nothing runs in the background, so nothing stays behind"


def test_file_quit_quits_even_with_the_tray(make_window: WindowFactory) -> None:
    window = make_window()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.quit_action.trigger()
    assert closed == [True]


# -- alerts --------------------------------------------------------------------------------------------------------


def sync(window: MainWindow, qtbot: QtBot, name: str) -> None:
    task = window.sync_monitor_panel.sync_now(name)
    assert task is not None
    qtbot.waitUntil(task.done, timeout=20_000)


def test_a_refused_sign_in_is_notified_listed_and_reconnects(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, make_window: WindowFactory
) -> None:
    hubspot.add_integration("hubspot-expired", token="pat-na1-revoked")
    window = make_window(on=hubspot.workspace)
    sync(window, qtbot, "hubspot-expired")
    tray = window.desk.tray
    assert tray.last_notification is not None
    title, text = tray.last_notification
    assert title == "Reconnect needed: hubspot-expired"
    assert "Click to reconnect" in text and "pat-na1-revoked" not in text

    panel = window.desk.alerts_panel
    assert panel.model.rowCount() == 1
    index = panel.model.index(0, AlertColumn.ALERT)
    assert panel.model.data(index) == "Reconnect needed"

    tray.click_notification()  # the marketer clicks the notification
    dialog = window.integrations_panel.dialog
    assert isinstance(dialog, IntegrationDialog) and dialog.isVisible()
    assert window.current_panel is window.integrations_panel
    assert window.integrations_panel.selected_integration().name == "hubspot-expired"  # type: ignore[union-attr]
    dialog.reject()

    tray.last_notification = None
    sync(window, qtbot, "hubspot-expired")
    assert tray.last_notification is None, "the same alert within 15 minutes is not notified again"
    assert panel.model.rowCount() == 1
    assert panel.model.data(panel.model.index(0, AlertColumn.ALERT)) == "Reconnect needed (2 times)"
    close_for_good(window)


def test_reconnecting_salesforce_signs_in_again_in_the_browser(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop, make_window: WindowFactory
) -> None:
    """A refused Salesforce sign-in is mended by signing in again in the browser (new tokens), which the panel's
    "Sign in with browser…" does. Reconnect… (and a click on its notification) opened the Edit dialog instead, which
    only takes tokens pasted by hand, and, being modal, kept that button out of reach."""
    workspace.integrations.add(Integration(provider=Provider.SALESFORCE, name="salesforce-prod"),
                               {"clientId": "3MVG9-connected-app", "clientSecret": "app-secret"})
    window = make_window()
    panel = window.integrations_panel
    opened: list[str] = []
    panel.open_browser = opened.append  # the system browser, where the marketer signs in
    panel.sign_in_port = 0

    assert window.desk.reconnect("salesforce-prod")

    assert window.current_panel is panel and panel.dialog is None
    qtbot.waitUntil(lambda: bool(opened), timeout=5000)
    assert "client_id=3MVG9-connected-app" in opened[0]
    assert panel.connection.waiting.isVisible()
    assert panel.cancel_sign_in()
    qtbot.waitUntil(lambda: not panel.connection.waiting.isVisible(), timeout=5000)
    close_for_good(window)


def test_the_alerts_view_opens_the_run_and_survives_a_restart(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, make_window: WindowFactory
) -> None:
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[1]))
    window = make_window(on=hubspot.workspace)
    sync(window, qtbot, hubspot.name)
    [alert] = hubspot.workspace.alerts.recent()
    assert alert.kind is AlertKind.REFUSED_RECORDS and alert.run_id is not None

    window.desk.alerts_action.trigger()  # View > Alerts
    panel = window.desk.alerts_panel
    assert window.desk.alerts_dock.isVisible()
    rect = panel.table.visualRect(panel.model.index(0, AlertColumn.RUN))
    QTest.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     rect.center())
    assert panel.open_run_button.isEnabled() and not panel.reconnect_button.isEnabled()
    QTest.keyClick(panel.table, Qt.Key.Key_Return)
    assert window.current_panel is window.sync_monitor_panel
    assert window.sync_monitor_panel.selected_run().id == alert.run_id  # type: ignore[union-attr]
    close_for_good(window)

    again = make_window(on=hubspot.workspace)
    assert again.desk.alerts_dock.isVisible(), "the dock's state is remembered"
    assert again.desk.alerts_panel.model.rowCount() == 1
    assert again.desk.alerts_panel.model.alert_at(0).run_id == alert.run_id
    close_for_good(again)


def test_notifications_off_still_lists_the_alert(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, make_window: WindowFactory
) -> None:
    hubspot.workspace.preferences.update(notifications=False)
    hubspot.add_integration("hubspot-expired", token="pat-na1-revoked")
    window = make_window(on=hubspot.workspace)
    sync(window, qtbot, "hubspot-expired")
    assert window.desk.tray.last_notification is None
    assert window.desk.alerts_panel.model.rowCount() == 1
    close_for_good(window)


def test_refused_import_rows_are_notified_and_listed(
    qtbot: QtBot, workspace: Workspace, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    messy = tmp_path / "fair-leads.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\ngrace@example.com,Grace\n", encoding="utf-8")
    workspace.sync.import_file(messy)  # as the People panel's Import… saves a file
    assert window.desk.tray.last_notification is not None
    title, text = window.desk.tray.last_notification
    assert title == "Records refused: Local store"
    assert text.startswith("1 row of fair-leads.csv refused (line 2, email:")
    panel = window.desk.alerts_panel
    assert panel.model.rowCount() == 1
    assert panel.model.data(panel.model.index(0, AlertColumn.INTEGRATION)) == "Local store"
    close_for_good(window)


def test_an_import_saved_on_a_store_thread_lists_its_alert_on_the_gui_thread(
    qtbot: QtBot, workspace: Workspace, make_window: WindowFactory, tmp_path: Path, qasync_loop: qasync.QEventLoop
) -> None:
    """People saves an import on a store thread, and the import's listeners are told there: the Alerts view was
    re-read and the notification shown from that thread (Qt: "Timers cannot be started from another thread")."""
    window = make_window()
    window.desk.alerts_action.trigger()
    panel = window.desk.alerts_panel
    listed_on: list[threading.Thread] = []
    refresh = panel.refresh
    panel.refresh = lambda: (listed_on.append(threading.current_thread()), refresh())  # type: ignore[method-assign]
    messy = tmp_path / "fair-leads.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\ngrace@example.com,Grace\n", encoding="utf-8")
    people = window.people_panel
    checking = people.preview_import(messy)
    qtbot.waitUntil(checking.done, timeout=5000)
    preview = checking.result()
    assert preview is not None
    with qtbot.waitSignal(window.desk.alerts_shown, timeout=5000):
        saving = people.save_import(preview.preview)
        qtbot.waitUntil(saving.done, timeout=5000)
    assert listed_on == [threading.main_thread()]
    assert panel.model.rowCount() == 1 and panel.selected_alert() is not None
    assert window.desk.tray.last_notification is not None
    preview.reject()
    close_for_good(window)


def test_delete_forgets_the_selected_alert(
    qtbot: QtBot, workspace: Workspace, make_window: WindowFactory, tmp_path: Path
) -> None:
    window = make_window()
    messy = tmp_path / "fair-leads.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\n", encoding="utf-8")
    workspace.sync.import_file(messy)
    window.desk.alerts_action.trigger()
    panel = window.desk.alerts_panel
    panel.table.setFocus()
    panel.select_row(0)
    QTest.keyClick(panel.table, Qt.Key.Key_Delete)
    box = panel.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible(), "Delete asks first"
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert panel.confirm_box is None and panel.model.rowCount() == 1
    QTest.keyClick(panel.table, Qt.Key.Key_Delete)
    box = panel.confirm_box
    assert isinstance(box, QMessageBox)
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert panel.model.rowCount() == 0 and workspace.alerts.recent() == []
    window.desk.tray.last_notification = None
    workspace.sync.import_file(messy)
    assert window.desk.tray.last_notification is not None, "a forgotten alert is notified again when it comes back"
    close_for_good(window)


def test_a_new_alert_leaves_the_one_picked_selected(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, make_window: WindowFactory,
    tmp_path: Path,
) -> None:
    """Seen in the demo: with a refused sign-in's alert picked, about to press "Reconnect…", another alert coming in
    left no alert selected and every button off; the view also opened with none selected, Enter saying so."""
    hubspot.add_integration("hubspot-expired", token="pat-na1-revoked")
    window = make_window(on=hubspot.workspace)
    sync(window, qtbot, "hubspot-expired")
    window.desk.alerts_action.trigger()
    panel = window.desk.alerts_panel
    assert panel.selected_alert() is not None, "the newest is selected: Enter acts on it at once"
    assert panel.reconnect_button.isEnabled()

    messy = tmp_path / "fair-leads.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\n", encoding="utf-8")
    hubspot.workspace.sync.import_file(messy)  # a newer alert, listed above
    assert panel.model.rowCount() == 2 and panel.model.alert_at(0).integration_name == "Local store"
    picked = panel.selected_alert()
    assert picked is not None and picked.integration_name == "hubspot-expired", "the alert picked stays picked"
    assert panel.reconnect_button.isEnabled()
    close_for_good(window)


def test_the_empty_alerts_view_says_so_on_one_line(make_window: WindowFactory, qtbot: QtBot) -> None:
    """Seen on Xvfb: in a 1,150 px window, "No alerts. …" wrapped to three lines in 270 px left of the buttons."""
    window = make_window()
    window.resize(1150, 700)
    window.desk.alerts_action.trigger()
    panel = window.desk.alerts_panel
    label = panel.empty_label
    qtbot.waitUntil(label.isVisible, timeout=2000)
    one_line = label.fontMetrics().horizontalAdvance(label.text())
    qtbot.waitUntil(lambda: label.width() >= one_line, timeout=2000)
    assert label.geometry().right() < panel.open_run_button.geometry().left()
    close_for_good(window)


def test_an_alert_repeated_often_shows_its_whole_title(qtbot: QtBot) -> None:
    """Seen in a 1,240 px window: "Reconnect needed (3 t…" in the Alert column (170 px), its count cut off, and the
    cell's tooltip gives the details, not the title."""
    now = datetime.now(UTC)
    alerts = [Alert(1, AlertKind.QUOTA_LOW, 1, "hubspot-marketing", "12% of the daily API quota left.", 4, now, now,
                    repeats=11),
              Alert(2, AlertKind.AUTH_FAILED, 2, "sf", "Salesforce refused the sign-in of “sf”.", None, now, now,
                    repeats=2)]
    panel = AlertsPanel(lambda: alerts, lambda: 0)
    qtbot.addWidget(panel)
    panel.resize(1240, 260)
    panel.show()
    qtbot.waitExposed(panel)
    column = panel.table.columnWidth(AlertColumn.ALERT)
    metrics = panel.table.fontMetrics()
    for row, title in enumerate(("API quota running out (12 times)", "Reconnect needed (3 times)")):
        assert panel.model.data(panel.model.index(row, AlertColumn.ALERT)) == title
        assert metrics.horizontalAdvance(title) < column, (title, column)


# -- keyboard ------------------------------------------------------------------------------------------------------


def test_ctrl_1_to_6_switch_panels_in_sidebar_order(make_window: WindowFactory) -> None:
    window = make_window(tray=False)
    for number in (3, 5, 6, 1, 2, 4):
        QTest.keyClick(window, getattr(Qt.Key, f"Key_{number}"), Qt.KeyboardModifier.ControlModifier)
        assert window.sidebar.currentRow() == number - 1
        assert window.current_panel is window.panels[number - 1].widget
        assert window.current_panel.isAncestorOf(QApplication.focusWidget())


def test_ctrl_1_to_6_put_the_keyboard_on_the_panels_first_named_control(make_window: WindowFactory) -> None:
    """The keyboard landed on the unnamed scroll area the page scrolls in (Enter then did nothing, and a screen
    reader said nothing): it goes to the first control of the panel, which has a name."""
    window = make_window(tray=False)
    for number in range(1, 7):
        QTest.keyClick(window, getattr(Qt.Key, f"Key_{number}"), Qt.KeyboardModifier.ControlModifier)
        focused = QApplication.focusWidget()
        assert focused is not None and window.current_panel.isAncestorOf(focused)
        assert not isinstance(focused, QScrollArea), number
        assert needs_name(focused) and focused.accessibleName(), (number, type(focused).__name__)
    QTest.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.attribution_panel.model_combo


def test_tab_goes_through_a_panel_opened_later_before_the_alerts_view(
    make_window: WindowFactory, workspace: Workspace, tmp_path: Path
) -> None:
    """A panel built after start-up (the first time it is opened) was put after the open Alerts view in the Tab
    order: from the sidebar, Tab went through the alerts before the panel's own controls. Now Tab goes sidebar,
    the panel's controls, then the Alerts view, for the panel shown at start-up and those opened later, also
    after the view was floated and docked back, and Shift+Tab walks the same way back."""
    messy = tmp_path / "fair-leads.csv"
    messy.write_text("email,firstName\nnot-an-email,Bob\n", encoding="utf-8")
    workspace.sync.import_file(messy)  # an alert: the view's buttons take Tab too
    window = make_window(tray=False)
    window.desk.alerts_action.trigger()
    dock = window.desk.alerts_dock
    assert dock.isVisible()

    def walk(key: Qt.Key) -> list[str]:
        panel = window.current_panel
        window.sidebar.setFocus(Qt.FocusReason.OtherFocusReason)
        places: list[str] = []
        for _ in range(60):
            QTest.keyClick(QApplication.focusWidget(), key)
            focused = QApplication.focusWidget()
            if focused is window.sidebar:
                return places
            assert focused is not None
            places.append("panel" if panel.isAncestorOf(focused) else "alerts" if dock.isAncestorOf(focused)
                          else type(focused).__name__)
        raise AssertionError(f"Tab never came back to the sidebar: {places}")

    def docked_back() -> None:
        dock.setFloating(True)
        dock.setFloating(False)

    for number, before in ((5, None), (1, None), (2, None), (3, docked_back), (6, None)):
        if before is not None:
            before()
        QTest.keyClick(window, getattr(Qt.Key, f"Key_{number}"), Qt.KeyboardModifier.ControlModifier)
        forward = walk(Qt.Key.Key_Tab)
        assert "panel" in forward and "alerts" in forward, (number, forward)
        assert forward == sorted(forward, key=lambda place: place != "panel"), (number, forward)
        backward = walk(Qt.Key.Key_Backtab)
        assert backward == sorted(backward, key=lambda place: place != "alerts"), (number, backward)
    close_for_good(window)


def test_ctrl_f_goes_to_the_current_panels_filter(make_window: WindowFactory) -> None:
    window = make_window(tray=False)
    QTest.keyClick(window, Qt.Key.Key_5, Qt.KeyboardModifier.ControlModifier)  # People
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.people_panel.filter_edit
    QTest.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)  # Attribution
    QTest.keyClick(window.sidebar, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.attribution_panel.model_combo
    QTest.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)  # Integrations: nothing to filter
    QTest.keyClick(window.sidebar, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.statusBar().currentMessage() == "This panel has nothing to filter."


def test_ctrl_r_syncs_every_integration(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, make_window: WindowFactory
) -> None:
    hubspot.add_integration("hubspot-emea")
    window = make_window(on=hubspot.workspace, tray=False)
    runs_before = len(hubspot.workspace.sync.runs())
    QTest.keyClick(window.sidebar, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    preview = getattr(window.sync_monitor_panel, "preview_dialog", None)
    if preview is not None:  # the Sync Monitor shows what would change first: proceed
        qtbot.waitUntil(preview.proceed_button.isEnabled, timeout=20_000)
        QTest.mouseClick(preview.proceed_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(hubspot.workspace.sync.runs()) == runs_before + 2
                    and not window.sync_monitor_panel.running_integrations, timeout=20_000)


def test_enter_edits_and_delete_removes_the_selected_integration(
    qtbot: QtBot, hubspot: HubSpotBench, make_window: WindowFactory
) -> None:
    window = make_window(on=hubspot.workspace, tray=False)
    table = window.integrations_panel.table
    table.setFocus()
    table.selectRow(0)
    QTest.keyClick(table, Qt.Key.Key_Return)
    dialog = window.integrations_panel.dialog
    assert isinstance(dialog, IntegrationDialog) and dialog.isVisible()
    dialog.reject()
    qtbot.waitUntil(lambda: window.integrations_panel.dialog is None)
    QTest.keyClick(table, Qt.Key.Key_Delete)
    box = window.integrations_panel.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: hubspot.workspace.integrations.list() == [])
