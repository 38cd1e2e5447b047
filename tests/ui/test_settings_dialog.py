"""Settings: opened with Ctrl+, from the window, every value saved to the workspace's database on Save (nothing on
Cancel), the API token copied and rotated, the theme applied, and Settings > Network reached from it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
)
from pytestqt.qtbot import QtBot

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.history_retention import RETENTION_MEANING
from crm_desktop.app.preferences import HistoryRetention, ThemeChoice
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.social import AttributionModel, Conversion, EngagementEvent, PersonRef
from crm_desktop.store.models import SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.store.people_store import PeopleQuery, PeopleStore
from crm_desktop.ui.main_window import PEOPLE_ROW, SYNC_MONITOR_ROW, MainWindow
from crm_desktop.ui.network_dialog import NetworkSettingsDialog
from crm_desktop.ui.settings_dialog import SettingsDialog
from crm_desktop.ui.theme import Theme, apply_theme, current_theme
from tests.support.marketing_data import seed_marketing
from tests.ui.conftest import HubSpotBench


@pytest.fixture
def window(qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch) -> MainWindow:
    # CRM_DESKTOP_API_PORT (set for every test) would lock the stored port; these windows serve no API anyway.
    monkeypatch.delenv("CRM_DESKTOP_API_PORT")
    opened = MainWindow(hubspot.workspace, tray_available=False)
    qtbot.addWidget(opened)
    opened.show()
    with qtbot.waitActive(opened):
        opened.activateWindow()
    return opened


@pytest.fixture
def light_again(qapp: QApplication) -> Iterator[None]:
    """Put the test app back in its plain light look after a test that switches themes."""
    yield
    apply_theme(qapp, Theme.LIGHT)
    qapp.setStyleSheet("")


def open_settings(window: MainWindow, qtbot: QtBot) -> SettingsDialog:
    QTest.keyClick(window.sidebar, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window.desk.settings_dialog
    assert isinstance(dialog, SettingsDialog)
    qtbot.waitExposed(dialog)
    return dialog


def click_save(dialog: SettingsDialog) -> None:
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)


def tick(box: QCheckBox) -> None:
    """Click the check box's square (a stretched check box does not react to clicks right of its text)."""
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(8, box.height() // 2))


def test_every_setting_is_saved_to_the_workspace(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, light_again: None, qasync_loop: qasync.QEventLoop
) -> None:
    workspace = hubspot.workspace
    dialog = open_settings(window, qtbot)
    local_api: list[bool] = []
    window.desk.local_api_changed.connect(lambda: local_api.append(True))

    dialog.tabs.setCurrentIndex(0)
    tick(dialog.notifications_box)
    dialog.theme_combo.setCurrentIndex(dialog.theme_combo.findData(ThemeChoice.DARK))
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData(AttributionModel.TIME_DECAY))
    dialog.tabs.setCurrentIndex(1)
    [row] = dialog.schedules
    assert not row.auto_sync.isChecked(), "the bench's integration starts without auto-sync"
    row.sync_interval.selectAll()
    QTest.keyClicks(row.sync_interval, "90")
    tick(row.auto_sync)
    dialog.tabs.setCurrentIndex(2)
    dialog.api_port_box.selectAll()
    QTest.keyClicks(dialog.api_port_box, "9123")
    dialog.tabs.setCurrentIndex(3)
    dialog.weight_boxes["comment"].selectAll()
    QTest.keyClicks(dialog.weight_boxes["comment"], "12")
    dialog.half_life_box.selectAll()
    QTest.keyClicks(dialog.half_life_box, "14")
    click_save(dialog)

    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    saved = workspace.preferences.get()
    assert (saved.notifications, saved.theme, saved.attribution_model, saved.local_api_port) == (
        False, ThemeChoice.DARK, AttributionModel.TIME_DECAY, 9123)
    scoring = workspace.social.scoring_settings()
    assert scoring.weights["comment"] == 12.0 and scoring.half_life_days == 14.0
    config = workspace.integrations.get(hubspot.name).sync_config
    assert (config.sync_interval, config.auto_sync) == (90, True)
    assert local_api == [True], "the app restarts its local API on the new port"
    assert current_theme() is Theme.DARK
    assert window.attribution_panel.model_combo.currentData() == AttributionModel.TIME_DECAY


def test_new_weights_rescore_everyone_and_people_shows_the_new_scores(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    workspace = hubspot.workspace
    [ada] = PeopleStore(workspace.database).page(PeopleQuery(), None, 1)
    workspace.social.record_engagements([EngagementEvent.model_validate({
        "platform": "linkedin", "type": "comment", "timestamp": utcnow().isoformat(), "postId": "p-1",
        "user": {"email": ada.email}})])
    dialog = open_settings(window, qtbot)  # Ctrl+, from the sidebar, before People takes the focus
    window.show_panel(PEOPLE_ROW)
    panel = window.people_panel
    qtbot.waitUntil(lambda: panel.model.rowCount() > 0 and score_shown(window, ada.email) is not None, timeout=5000)
    before = score_shown(window, ada.email)

    dialog.tabs.setCurrentIndex(3)
    dialog.weight_boxes["comment"].selectAll()
    QTest.keyClicks(dialog.weight_boxes["comment"], "40")
    click_save(dialog)
    qtbot.waitUntil(lambda: window.statusBar().currentMessage()
                    == "Engagement scores recomputed for 1 person", timeout=5000)
    expected = workspace.social.engagement_score(PersonRef(email=ada.email)).score
    assert before is not None and expected > before
    qtbot.waitUntil(lambda: score_shown(window, ada.email) == expected, timeout=5000)

    # Only the attribution half-life changed: the scores do not depend on it, nothing is recomputed.
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    window.statusBar().clearMessage()
    dialog = window.desk.open_settings()
    qtbot.waitExposed(dialog)
    dialog.tabs.setCurrentIndex(3)
    dialog.attribution_half_life_box.selectAll()
    QTest.keyClicks(dialog.attribution_half_life_box, "3")
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    qtbot.wait(200)
    assert "Engagement scores" not in window.statusBar().currentMessage()


def score_shown(window: MainWindow, email: str) -> float | None:
    """The Score cell of ``email``'s row in the People list, once read."""
    model = window.people_panel.model
    for row in range(model.rowCount()):
        line = model.line(row)
        if line is not None and line.email == email:
            return line.score
    return None


def test_cancel_saves_nothing(qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench) -> None:
    before = hubspot.workspace.preferences.get()
    dialog = open_settings(window, qtbot)
    tick(dialog.auto_sync_box)
    dialog.api_port_box.setValue(9999)
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    QTest.mouseClick(buttons.button(QDialogButtonBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert hubspot.workspace.preferences.get() == before
    assert window.scheduler.active


def test_turning_auto_sync_off_stops_the_scheduler(qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench) -> None:
    dialog = open_settings(window, qtbot)
    tick(dialog.auto_sync_box)
    click_save(dialog)
    assert not window.scheduler.active
    assert window.desk.tray.pause_action.isChecked()


def test_pausing_from_the_tray_while_settings_are_open_is_kept_by_save(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    dialog = open_settings(window, qtbot)
    assert dialog.auto_sync_box.isChecked()
    # The dialog does not block the tray: the marketer pauses there, then saves something else here.
    window.desk.tray.pause_action.trigger()
    assert not window.scheduler.active
    dialog.notifications_box.click()
    click_save(dialog)
    assert not window.scheduler.active and window.desk.tray.pause_action.isChecked()
    assert not hubspot.workspace.preferences.get().auto_sync
    # Changed in the dialog itself, its choice wins.
    dialog = open_settings(window, qtbot)
    tick(dialog.auto_sync_box)
    click_save(dialog)
    assert window.scheduler.active and hubspot.workspace.preferences.get().auto_sync


def test_a_schedule_saved_keeps_what_changed_in_the_integration_while_settings_were_open(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    """Seen: with Settings open, the integration was renamed and switched to pull only from the command line (or
    by a teammate on a team database); a new interval saved in Settings put back the old name and direction, as
    Save wrote the whole integration as it was when the dialog opened. Removed meanwhile, Save raised."""
    workspace = hubspot.workspace
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(1)
    [row] = dialog.schedules
    row.sync_interval.selectAll()
    QTest.keyClicks(row.sync_interval, "90")
    now = workspace.integrations.get(hubspot.name)
    workspace.integrations.update(now.model_copy(update={
        "name": "hs-renamed", "sync_config": now.sync_config.model_copy(update={"direction": SyncDirection.PULL})}))
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    [saved] = workspace.integrations.list()
    assert saved.name == "hs-renamed", "the rename stands"
    assert (saved.sync_config.direction, saved.sync_config.sync_interval) == (SyncDirection.PULL, 90)

    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(1)
    [row] = dialog.schedules
    tick(row.auto_sync)
    workspace.integrations.remove("hs-renamed")
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    assert workspace.integrations.list() == []


def test_the_schedules_and_scoring_hints_speak_to_the_marketer(qtbot: QtBot, window: MainWindow) -> None:
    dialog = open_settings(window, qtbot)
    texts = " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert "docs/" not in texts
    assert "Auto-sync is on in General" in texts and "A conversion weighs 0 to start with" in texts


def test_the_token_is_copied_and_rotated(qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench) -> None:
    tokens = ApiTokens(hubspot.workspace.vault)
    old = tokens.current()
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(2)
    assert dialog.token_edit.text() == old
    QTest.mouseClick(dialog.copy_token_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == old

    QTest.mouseClick(dialog.rotate_token_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert isinstance(box, QMessageBox)
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    new = dialog.token_edit.text()
    assert new != old and tokens.accepts(new) and not tokens.accepts(old)


def test_a_refused_rotation_keeps_the_old_token(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    tokens = ApiTokens(hubspot.workspace.vault)
    old = tokens.current()
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(2)
    QTest.mouseClick(dialog.rotate_token_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert isinstance(box, QMessageBox)
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert tokens.accepts(old) and dialog.token_edit.text() == old


def test_network_settings_open_from_settings(qtbot: QtBot, window: MainWindow) -> None:
    dialog = open_settings(window, qtbot)
    QTest.mouseClick(dialog.network_button, Qt.MouseButton.LeftButton)
    network = window.findChild(NetworkSettingsDialog)
    assert network is not None
    qtbot.waitUntil(network.isVisible)
    network.reject()


def test_the_sync_all_preview_turned_off_is_turned_back_on_in_settings(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    preview = hubspot.workspace.monitor.preview
    monitor = window.sync_monitor_panel
    window.show_panel(window.stack.indexOf(monitor))
    tick(monitor.preview_first_check)  # as "Don't ask again" in the preview does
    assert not preview.asks_first()

    dialog = open_settings(window, qtbot)
    assert not dialog.preview_box.isChecked() and dialog.preview_box.accessibleName()
    tick(dialog.preview_box)
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    QTest.mouseClick(buttons.button(QDialogButtonBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert not preview.asks_first(), "Cancel saves nothing"

    dialog = open_settings(window, qtbot)
    tick(dialog.preview_box)
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    assert preview.asks_first()
    assert monitor.preview_first_check.isChecked(), "the Sync Monitor's box follows"

    dialog = open_settings(window, qtbot)
    assert dialog.preview_box.isChecked()
    tick(dialog.preview_box)
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    assert not preview.asks_first() and not monitor.preview_first_check.isChecked()


def test_the_attribution_report_follows_a_new_half_life_and_new_conversions(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    """The Attribution panel worked its report out once: a new time-decay half-life saved in Settings, or a
    conversion recorded while another panel was up, left it showing the old figures."""
    workspace = hubspot.workspace
    seed_marketing(workspace)
    QTest.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    panel = window.attribution_panel
    panel.model_combo.setCurrentIndex(panel.model_combo.findData(AttributionModel.TIME_DECAY))

    def credited() -> list[str]:
        return [panel.campaigns_table.item(row, 3).text() for row in range(panel.campaigns_table.rowCount())]

    before = credited()
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(3)
    dialog.attribution_half_life_box.selectAll()
    QTest.keyClicks(dialog.attribution_half_life_box, "0.5")
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    fresh = workspace.social.attribution_report(AttributionModel.TIME_DECAY, panel.since())
    assert credited() == [f"{row.conversions_credited:.2f}" for row in fresh.by_campaign] != before

    QTest.keyClick(window, Qt.Key.Key_5, Qt.KeyboardModifier.ControlModifier)
    shown = panel.summary_label.text()
    [someone, *_] = sorted(workspace.social.store.lead_emails())
    workspace.social.record_conversions([Conversion(email=someone, timestamp=utcnow(), value=Decimal(5000),
                                                    currency="EUR")])
    QTest.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert panel.summary_label.text() != shown
    assert panel.report is not None and panel.report.conversions == workspace.social.attribution_report(
        AttributionModel.TIME_DECAY).conversions


@pytest.mark.parametrize(("tab", "box_of", "typed", "refusal"), [
    (2, lambda d: d.api_port_box, "80", "Local API port: 80 is out of range: type a number from 1024 to 65535."),
    (1, lambda d: d.schedules[0].sync_interval, "2",
     "Full sync interval of hubspot: 2 is out of range: type a number from 5 to 10080 (min)."),
    (3, lambda d: d.attribution_half_life_box, "0.1",
     "Time-decay attribution half-life: 0.1 is out of range: type a number from 0.5 to 3650.0 (days)."),
])
def test_a_number_out_of_range_is_refused_by_name_and_range(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, tab: int,
    box_of: Callable[[SettingsDialog], QAbstractSpinBox], typed: str, refusal: str,
) -> None:
    """A spin box puts its old value back when the keyboard leaves it with a number out of range: Save said
    "Settings saved" and kept the old value. It refuses, names the field and the range, and stays open."""
    before = (hubspot.workspace.preferences.get(), hubspot.workspace.integrations.get(hubspot.name),
              hubspot.workspace.social.scoring_settings())
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(tab)
    box = box_of(dialog)
    box.setFocus()
    box.selectAll()
    QTest.keyClicks(box, typed)
    dialog.tabs.setCurrentIndex(0)  # the keyboard leaves the box: it shows its old value again
    click_save(dialog)
    assert window.desk.settings_dialog is dialog and dialog.isVisible()
    assert dialog.error_label.isVisible() and dialog.error_label.text() == refusal.replace("hubspot", hubspot.name)
    assert dialog.tabs.currentIndex() == tab and dialog.focusWidget() is box
    assert window.statusBar().currentMessage() != "Settings saved"
    assert (hubspot.workspace.preferences.get(), hubspot.workspace.integrations.get(hubspot.name),
            hubspot.workspace.social.scoring_settings()) == before
    box.selectAll()
    QTest.keyClicks(box, box.textFromValue(box.maximum()))  # type: ignore[attr-defined]
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)


def test_a_local_api_port_in_use_is_refused_and_the_api_stays_where_it_is(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    """Moving the API to a port another program listens on said "Settings saved" and left no API running: Save
    refuses it, naming the port, and saves nothing."""
    before = hubspot.workspace.preferences.get()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        dialog = open_settings(window, qtbot)
        dialog.tabs.setCurrentIndex(2)
        if not dialog.api_enabled_box.isChecked():
            tick(dialog.api_enabled_box)
        dialog.api_port_box.selectAll()
        QTest.keyClicks(dialog.api_port_box, str(port))
        click_save(dialog)
        assert window.desk.settings_dialog is dialog and dialog.isVisible()
        assert dialog.error_label.isVisible()
        assert dialog.error_label.text().startswith(f"Local API port: {port} is in use by another program")
        assert dialog.tabs.currentIndex() == 2 and dialog.focusWidget() is dialog.api_port_box
        assert hubspot.workspace.preferences.get() == before
        assert window.statusBar().currentMessage() != "Settings saved"


@pytest.mark.parametrize(("value", "says"), [
    ("9001", "CRM_DESKTOP_API_PORT is set and sets the port: the local API listens on port 9001"),
    ("off", "CRM_DESKTOP_API_PORT is set and turns the local API off"),
])
def test_settings_say_that_crm_desktop_api_port_wins_over_the_stored_port(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    """With CRM_DESKTOP_API_PORT set the API listens where it says, while Settings showed the stored port as if it
    applied: the port is locked, a note says what the variable does, and Save keeps the stored values."""
    stored = hubspot.workspace.preferences.update(local_api_port=9123)
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", value)
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.api_page))
    assert dialog.api_env_note.isVisible()
    assert dialog.api_env_note.text() == (
        f"{says}, whatever these settings say. The settings here (port 9123) apply when the variable is unset.")
    assert not dialog.api_port_box.isEnabled() and not dialog.api_enabled_box.isEnabled()
    assert dialog.api_port_box.value() == 9123
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    assert hubspot.workspace.preferences.get() == stored


def test_settings_unlock_the_port_once_crm_desktop_api_port_is_unset(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench
) -> None:
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(dialog.api_page))
    assert not dialog.api_env_note.isVisible()
    assert dialog.api_port_box.isEnabled() == hubspot.workspace.preferences.get().local_api_enabled
    assert dialog.api_enabled_box.isEnabled()


def test_settings_read_crm_desktop_api_port_without_loading_the_api() -> None:
    """Settings says what CRM_DESKTOP_API_PORT does without importing the API server (FastAPI, uvicorn)."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, crm_desktop.ui.settings_dialog; "
                               "print(sorted({'fastapi', 'uvicorn', 'crm_desktop.api.server'} & set(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"


def test_weights_all_zero_are_refused(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    """Every weight at 0 made every engagement score 0, whatever anyone did; Save said "Settings saved". It refuses,
    says why on the Scoring tab, and saves nothing; one weight above 0 is enough."""
    before = hubspot.workspace.social.scoring_settings()
    dialog = open_settings(window, qtbot)
    dialog.tabs.setCurrentIndex(3)
    for box in dialog.weight_boxes.values():
        box.setFocus()
        box.selectAll()
        QTest.keyClicks(box, "0")
    dialog.tabs.setCurrentIndex(0)
    click_save(dialog)
    assert window.desk.settings_dialog is dialog and dialog.isVisible()
    assert dialog.error_label.isVisible() and dialog.error_label.text() == (
        "Scoring: every interaction weighs 0 points, so every engagement score would be 0. Give at least one "
        "interaction some points.")
    assert dialog.tabs.currentIndex() == 3 and dialog.focusWidget() is dialog.weight_boxes["post_view"]
    assert window.statusBar().currentMessage() != "Settings saved"
    assert hubspot.workspace.social.scoring_settings() == before

    dialog.weight_boxes["comment"].selectAll()
    QTest.keyClicks(dialog.weight_boxes["comment"], "2")
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    saved = hubspot.workspace.social.scoring_settings()
    assert saved.weights["comment"] == 2.0 and saved.weights["like"] == 0.0
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=10_000)  # the rescore the new weights start


def choose(combo: QComboBox, value: object) -> None:
    combo.setCurrentIndex(combo.findData(value))


def test_keep_run_history_for_is_saved_says_what_it_means_and_is_shown_again(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    dialog = open_settings(window, qtbot)
    assert dialog.retention_combo.currentData() == HistoryRetention.FOREVER
    assert dialog.retention_note.text() == "Every run is kept, and can be undone, for as long as the workspace exists."

    choose(dialog.retention_combo, HistoryRetention.MONTHS_6)
    assert dialog.retention_note.text() == RETENTION_MEANING and "can no longer be undone" in RETENTION_MEANING
    click_save(dialog)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)

    assert hubspot.workspace.preferences.get().history_retention is HistoryRetention.MONTHS_6
    again = open_settings(window, qtbot)
    assert again.retention_combo.currentText() == "6 months" and again.retention_note.text() == RETENTION_MEANING
    choose(again.retention_combo, HistoryRetention.FOREVER)
    click_save(again)
    qtbot.waitUntil(lambda: window.desk.settings_dialog is None)
    assert hubspot.workspace.preferences.get().history_retention is HistoryRetention.FOREVER


def test_a_shorter_limit_deletes_the_older_runs_at_once_and_the_monitor_drops_them(
    qtbot: QtBot, window: MainWindow, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    workspace = hubspot.workspace
    integration = workspace.integrations.get(hubspot.name)
    assert integration.id is not None
    store = workspace.sync.store
    old, last = (store.start_run(integration.id, SyncTrigger.SCHEDULED, SyncDirection.BOTH) for _ in range(2))
    for run_id in (old, last):
        store.finish_run(run_id, SyncRunStatus.SUCCEEDED)
    year_ago = utcnow() - timedelta(days=400)
    store.update_run(old, started_at=year_ago, finished_at=year_ago)
    window.show_panel(SYNC_MONITOR_ROW)
    monitor = window.sync_monitor_panel
    qtbot.waitUntil(lambda: monitor.runs_model.row_of(old) is not None, timeout=5000)

    dialog = open_settings(window, qtbot)
    choose(dialog.retention_combo, HistoryRetention.MONTHS_12)
    click_save(dialog)

    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith(
        "Run history: deleted 1 run (0 record log lines, 0 field changes) older than "), timeout=10_000)
    assert [run.id for run in workspace.sync.runs()] == [last]
    qtbot.waitUntil(lambda: monitor.runs_model.row_of(old) is None, timeout=5000)
    assert monitor.runs_model.row_of(last) is not None


def test_the_run_history_is_pruned_when_the_window_opens_and_after_scheduled_syncs(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_DESKTOP_API_PORT")
    workspace = hubspot.workspace
    integration = workspace.integrations.get(hubspot.name)
    assert integration.id is not None
    store = workspace.sync.store
    year_ago = utcnow() - timedelta(days=400)

    def year_old_run() -> int:
        run_id = store.start_run(integration.id, SyncTrigger.SCHEDULED, SyncDirection.BOTH)
        store.finish_run(run_id, SyncRunStatus.SUCCEEDED)
        store.update_run(run_id, started_at=year_ago, finished_at=year_ago)
        return run_id

    first = year_old_run()
    last = store.start_run(integration.id, SyncTrigger.SCHEDULED, SyncDirection.BOTH)
    store.finish_run(last, SyncRunStatus.SUCCEEDED)
    workspace.preferences.update(history_retention=HistoryRetention.MONTHS_12)

    opened = MainWindow(workspace, tray_available=False)
    qtbot.addWidget(opened)
    deleted = "Run history: deleted 1 run (0 record log lines, 0 field changes) older than "
    qtbot.waitUntil(lambda: opened.statusBar().currentMessage().startswith(deleted), timeout=10_000)
    assert [run.id for run in workspace.sync.runs()] == [last]

    second = year_old_run()
    opened.statusBar().clearMessage()
    opened.scheduler.batch_finished.emit([])
    qtbot.waitUntil(lambda: opened.statusBar().currentMessage().startswith(deleted), timeout=10_000)
    assert [run.id for run in workspace.sync.runs()] == [last]
    assert first < second
