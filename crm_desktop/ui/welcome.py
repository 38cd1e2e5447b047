"""The first-run welcome: try the app on the built-in demo CRMs, or connect a real CRM."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QProcess, QSettings, Qt, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from crm_desktop.ui.columns import app_settings
from crm_desktop.ui.theme import app_icon

if TYPE_CHECKING:
    from crm_desktop.ui.main_window import MainWindow

logger = logging.getLogger(__name__)

#: QSettings key set once the user skipped the welcome or chose to connect a CRM.
DISMISSED_KEY = "welcome/dismissed"
#: Starts a program detached from this one; True when it started.
Launcher = Callable[[Sequence[str]], bool]


def welcome_due(has_integrations: bool, settings: QSettings) -> bool:
    """A workspace without integrations whose user has not dismissed the welcome yet."""
    dismissed = settings.value(DISMISSED_KEY, False, type=bool)
    return not has_integrations and not dismissed


def demo_command(data_dir: Path) -> list[str]:
    """The command that opens the app in demo mode, its demo workspace under ``data_dir`` (``<data_dir>/demo``).

    The packaged app is its own executable; from a Python install it is this interpreter running the package.
    """
    program = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "crm_desktop"]
    return [*program, "--data-dir", str(data_dir), "--demo"]


def launch_detached(command: Sequence[str]) -> bool:
    """Start ``command`` as a process of its own that outlives this one."""
    started, _pid = QProcess.startDetached(command[0], list(command[1:]))
    return bool(started)


class WelcomeDialog(QDialog):
    """Two ways to start: the demo CRMs (no account needed) or a real CRM; or skip.

    Attributes:
        demo_button: "Try with demo CRMs".
        connect_button: "Connect a CRM".
        skip_button: closes the welcome for good.

    Signals:
        demo_chosen(), connect_chosen(), skipped(): the user's choice (the dialog closes itself).
    """

    demo_chosen = Signal()
    connect_chosen = Signal()
    skipped = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to CRM Desktop")
        self.setWindowIcon(app_icon())
        self.setObjectName("welcome")

        heading = QLabel("Welcome to CRM Desktop")
        heading.setObjectName("dialogTitle")  # styled as a panel's title
        intro = QLabel("Sync your social contacts and leads with Salesforce, HubSpot and Pipedrive. "
                       "How would you like to start?")
        intro.setWordWrap(True)

        self.demo_button = QPushButton("Try with demo CRMs")
        self.demo_button.setProperty("primary", True)
        demo_text = QLabel("Three built-in sandbox CRMs on this computer and a few hundred sample contacts: no CRM "
                           "account needed. Opens in a demo workspace of its own; your data is not touched.")
        demo_text.setWordWrap(True)
        self.connect_button = QPushButton("Connect a CRM")
        connect_text = QLabel("Add your Salesforce, HubSpot or Pipedrive account. Keys and tokens are kept in "
                              "your operating system's keyring.")
        connect_text.setWordWrap(True)
        self.skip_button = QPushButton("Skip")
        self.skip_button.setToolTip("Close this welcome; add a CRM later from the Integrations panel")

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(intro)
        for button, text in ((self.demo_button, demo_text), (self.connect_button, connect_text)):
            layout.addSpacing(8)
            layout.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
            layout.addWidget(text)
        footer = QHBoxLayout()
        footer.addStretch(1)
        footer.addWidget(self.skip_button)
        layout.addSpacing(8)
        layout.addLayout(footer)
        self.setMinimumWidth(460)

        self.demo_button.clicked.connect(self._demo_clicked)
        self.connect_button.clicked.connect(self._connect_clicked)
        self.skip_button.clicked.connect(self.reject)
        self.rejected.connect(self.skipped.emit)  # Skip, Esc and the close button alike

    def _demo_clicked(self) -> None:
        self.accept()
        self.demo_chosen.emit()

    def _connect_clicked(self) -> None:
        self.accept()
        self.connect_chosen.emit()


def offer_welcome(
    window: MainWindow, settings: QSettings | None = None, launch: Launcher = launch_detached
) -> WelcomeDialog | None:
    """On a first run (no integrations, welcome not dismissed) open the welcome over ``window``; else None.

    "Try with demo CRMs" opens the app in demo mode as a new process and quits this one (the demo has its own
    workspace, so the welcome comes back next time while this one is still empty). "Connect a CRM" opens the
    Integrations panel's add dialog; it and "Skip" dismiss the welcome for good.
    """
    settings = settings if settings is not None else app_settings()
    if not welcome_due(bool(window.workspace.integrations.list()), settings):
        return None
    logger.info("first run: showing the welcome")
    dialog = WelcomeDialog(window)

    def dismiss() -> None:
        settings.setValue(DISMISSED_KEY, True)
        settings.sync()

    def try_demo() -> None:
        command = demo_command(window.workspace.paths.data_dir)
        if launch(command):
            logger.info("opening the demo in a new process")
            # Quit, not close: with a tray, auto-sync and "keep in the tray" on (the defaults), a close only hides
            # the window, and this empty app would stay behind in the tray beside the demo.
            window.quit()
            return
        logger.error("cannot start the demo: %s", " ".join(command))
        window.statusBar().showMessage("The demo could not be started; see the log for the command tried", 15000)

    def connect() -> None:
        dismiss()
        window.show_panel(window.stack.indexOf(window.integrations_panel))
        window.integrations_panel.open_add_dialog()

    dialog.demo_chosen.connect(try_demo)
    dialog.connect_chosen.connect(connect)
    dialog.skipped.connect(dismiss)
    dialog.finished.connect(lambda _result: dialog.deleteLater())
    dialog.open()
    return dialog
