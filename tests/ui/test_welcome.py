"""The first-run welcome: "Try with demo CRMs" opens the demo app, "Connect a CRM" the add-integration dialog."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel
from pytestqt.qtbot import QtBot

from crm_desktop import __version__
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration
from crm_desktop.ui.app import run_gui
from crm_desktop.ui.columns import app_settings
from crm_desktop.ui.integration_dialog import IntegrationDialog
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.welcome import DISMISSED_KEY, WelcomeDialog, demo_command, offer_welcome
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


class RecordingLauncher:
    """Stands in for starting a process: records the command, and says whether it started."""

    def __init__(self, starts: bool = True) -> None:
        self.starts = starts
        self.commands: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> bool:
        self.commands.append(list(command))
        return self.starts


def open_window(qtbot: QtBot, workspace: Workspace) -> MainWindow:
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def click(button: object) -> None:
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)  # type: ignore[call-overload]


def test_a_first_run_offers_the_two_ways_to_start(qtbot: QtBot, workspace: Workspace) -> None:
    window = open_window(qtbot, workspace)
    dialog = offer_welcome(window, launch=RecordingLauncher())
    assert isinstance(dialog, WelcomeDialog)
    qtbot.waitExposed(dialog)
    assert dialog.isVisible() and dialog.parent() is window
    assert dialog.demo_button.text() == "Try with demo CRMs"
    assert dialog.connect_button.text() == "Connect a CRM"


def test_connect_a_crm_opens_the_add_dialog_and_the_welcome_does_not_come_back(
    qtbot: QtBot, workspace: Workspace
) -> None:
    window = open_window(qtbot, workspace)
    window.show_panel(3)
    launcher = RecordingLauncher()
    dialog = offer_welcome(window, launch=launcher)
    assert dialog is not None
    qtbot.waitExposed(dialog)

    click(dialog.connect_button)

    assert not dialog.isVisible()
    assert window.current_panel is window.integrations_panel
    added = window.integrations_panel.dialog
    assert isinstance(added, IntegrationDialog) and added.isVisible()
    assert launcher.commands == []
    assert window.isVisible()
    assert app_settings().value(DISMISSED_KEY, False, type=bool) is True
    added.reject()
    assert offer_welcome(window, launch=launcher) is None


def test_try_the_demo_opens_the_demo_app_and_closes_this_window(qtbot: QtBot, workspace: Workspace) -> None:
    window = open_window(qtbot, workspace)
    launcher = RecordingLauncher()
    dialog = offer_welcome(window, launch=launcher)
    assert dialog is not None
    qtbot.waitExposed(dialog)

    with qtbot.waitSignal(window.closed, timeout=2000):
        click(dialog.demo_button)

    assert launcher.commands == [demo_command(workspace.paths.data_dir)]
    assert launcher.commands[0][-3:] == ["--data-dir", str(workspace.paths.data_dir), "--demo"]
    assert not window.isVisible()
    assert window.integrations_panel.dialog is None
    # This workspace is still empty: the next start welcomes again.
    assert app_settings().value(DISMISSED_KEY, False, type=bool) is False


def test_try_the_demo_quits_this_app_also_where_it_would_keep_syncing_in_the_tray(
    qtbot: QtBot, workspace: Workspace
) -> None:
    """On a desktop with a tray, auto-sync and "keep in the tray" on (the defaults), closing the window only hides
    it: the empty first-run app stayed behind in the tray, beside the demo, saying it was "still running"."""
    window = MainWindow(workspace, tray_available=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.desk.keeps_running_on_close(), "the case this test is about: closing would go to the tray"
    dialog = offer_welcome(window, launch=RecordingLauncher())
    assert dialog is not None
    qtbot.waitExposed(dialog)

    with qtbot.waitSignal(window.closed, timeout=2000):
        click(dialog.demo_button)

    assert not window.isVisible() and not window.desk.tray.visible
    assert window.desk.tray.last_notification is None, "no 'still running in the tray' notice"


def test_a_demo_that_cannot_start_leaves_the_window_open_and_says_so(qtbot: QtBot, workspace: Workspace) -> None:
    window = open_window(qtbot, workspace)
    dialog = offer_welcome(window, launch=RecordingLauncher(starts=False))
    assert dialog is not None
    qtbot.waitExposed(dialog)
    click(dialog.demo_button)
    assert window.isVisible()
    assert "demo could not be started" in window.statusBar().currentMessage()


def test_skip_dismisses_the_welcome(qtbot: QtBot, workspace: Workspace) -> None:
    window = open_window(qtbot, workspace)
    dialog = offer_welcome(window, launch=RecordingLauncher())
    assert dialog is not None
    qtbot.waitExposed(dialog)
    click(dialog.skip_button)
    assert not dialog.isVisible() and window.isVisible()
    assert offer_welcome(window) is None


def test_a_workspace_with_an_integration_is_not_welcomed(qtbot: QtBot, workspace: Workspace) -> None:
    workspace.integrations.add(Integration(provider="hubspot", name="hs"), {"token": "pat-na1-secret-0000-9999"})
    window = open_window(qtbot, workspace)
    assert offer_welcome(window, launch=RecordingLauncher()) is None


def test_the_demo_command_runs_this_app(tmp_path: Path) -> None:
    """The program part of the demo command is a working ``crm-desktop`` (asked for its version, not a window)."""
    command = demo_command(tmp_path)
    assert command[-1] == "--demo"
    assert command[0] == sys.executable
    done = subprocess.run([*command[:-1], "version"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"crm-desktop {__version__}"


def test_the_app_opens_with_the_welcome_on_a_first_run(
    qapp: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    """run_gui on an empty workspace shows the welcome over the window; closing the window closes both."""
    seen: dict[str, object] = {}
    names = (QCoreApplication.organizationName(), QCoreApplication.applicationName())

    def look(attempts: int = 300) -> None:
        window = next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None)
        welcome = window.findChild(WelcomeDialog) if window is not None else None
        if (welcome is None or not welcome.isVisible()) and attempts > 0:
            QTimer.singleShot(10, lambda: look(attempts - 1))
            return
        seen["welcome"] = welcome is not None and welcome.isVisible()
        if window is None:
            QCoreApplication.quit()
            return
        window.close()

    QTimer.singleShot(0, look)
    try:
        code = run_gui(lambda: Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend)), ["crm-desktop"])
    finally:  # run_gui names and styles the shared test QApplication
        QCoreApplication.setOrganizationName(names[0])
        QCoreApplication.setApplicationName(names[1])
        qapp.setStyleSheet("")
    assert code == 0
    assert seen["welcome"] is True


def test_the_welcome_has_a_heading_in_the_panels_title_style(
    qtbot: QtBot, workspace: Workspace, styled_app: QApplication
) -> None:
    """Seen on Xvfb: "Welcome to CRM Desktop" stood in the dialog in body text, its style named but never given."""
    window = open_window(qtbot, workspace)
    dialog = offer_welcome(window, launch=RecordingLauncher())
    assert isinstance(dialog, WelcomeDialog)
    qtbot.waitExposed(dialog)
    heading = dialog.findChild(QLabel, "dialogTitle")
    assert heading is not None and heading.text() == "Welcome to CRM Desktop"
    assert heading.font().pointSizeF() > dialog.font().pointSizeF() and heading.font().weight() > QFont.Weight.Normal
    dialog.close()
