"""The system tray icon: Open, Sync all now, Pause auto-sync and Quit, and the desktop notifications for alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from crm_desktop.ui.theme import app_icon

logger = logging.getLogger(__name__)

#: How long a notification stays up (the desktop may choose otherwise).
NOTIFICATION_MS = 10_000


class DeskTray(QObject):
    """The app's tray icon and its menu; nothing is shown where the desktop has no system tray.

    Attributes:
        available: whether the desktop has a system tray (without one, closing the window quits the app).
        icon: the tray icon.
        menu: its context menu.
        open_action, sync_all_action, pause_action, quit_action: the menu's entries.
        last_notification: the title and text of the last notification shown (``None`` before the first).

    Signals:
        open_requested(): show the window.
        sync_all_requested(): sync every integration now.
        pause_toggled(bool): ``True`` to pause auto-sync, ``False`` to resume it.
        quit_requested(): quit the app.
    """

    open_requested = Signal()
    sync_all_requested = Signal()
    pause_toggled = Signal(bool)
    quit_requested = Signal()

    def __init__(self, parent: QWidget, *, available: bool | None = None) -> None:
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable() if available is None else available
        self.last_notification: tuple[str, str] | None = None
        self._on_click: Callable[[], None] | None = None
        self.menu = QMenu(parent)
        self.menu.setAccessibleName("CRM Desktop tray menu")
        self.open_action = self.menu.addAction("Open CRM Desktop")
        self.sync_all_action = self.menu.addAction("Sync all now")
        self.pause_action = self.menu.addAction("Pause auto-sync")
        self.pause_action.setCheckable(True)
        self.menu.addSeparator()
        self.quit_action = self.menu.addAction("Quit")
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.icon.setToolTip("CRM Desktop")
        self.icon.setContextMenu(self.menu)

        self.open_action.triggered.connect(self.open_requested)
        self.sync_all_action.triggered.connect(self.sync_all_requested)
        self.pause_action.toggled.connect(self.pause_toggled)
        self.quit_action.triggered.connect(self.quit_requested)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self._message_clicked)

    def show(self) -> bool:
        """Show the icon where there is a tray; return whether it is shown."""
        if self.available:
            self.icon.show()
        return self.icon.isVisible()

    def hide(self) -> None:
        self.icon.hide()

    @property
    def visible(self) -> bool:
        return self.icon.isVisible()

    def set_paused(self, paused: bool) -> None:
        """Tick "Pause auto-sync" without asking to pause again."""
        self.pause_action.blockSignals(True)
        self.pause_action.setChecked(paused)
        self.pause_action.blockSignals(False)
        self.icon.setToolTip("CRM Desktop: auto-sync paused" if paused else "CRM Desktop")

    def notify(
        self,
        title: str,
        text: str,
        *,
        warning: bool = True,
        on_click: Callable[[], None] | None = None,
    ) -> bool:
        """Show a desktop notification from the tray icon; ``on_click`` runs when the marketer clicks it.

        Returns:
            whether it was shown (not without a visible tray icon).
        """
        if not self.visible:
            return False
        self._on_click = on_click
        self.last_notification = (title, text)
        kind = QSystemTrayIcon.MessageIcon.Warning if warning else QSystemTrayIcon.MessageIcon.Information
        self.icon.showMessage(title, text, kind, NOTIFICATION_MS)
        logger.info("notification shown: %s", title)
        return True

    def click_notification(self) -> None:
        """What clicking the last notification does (the desktop calls it through ``messageClicked``)."""
        self._message_clicked()

    def _message_clicked(self) -> None:
        action, self._on_click = self._on_click, None
        if action is not None:
            action()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_requested.emit()
