"""What the window offers around its panels: the tray icon, alerts and notifications, settings and shortcuts.

Kept apart from ``main_window`` so the window stays a sidebar of panels; the window builds one :class:`Desk`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QComboBox, QDockWidget, QLineEdit, QMenu, QScrollArea, QWidget

from crm_desktop.app.alerts import RaisedAlert
from crm_desktop.app.history_retention import PruneOutcome, counts_text
from crm_desktop.app.imports import ImportReport
from crm_desktop.app.preferences import DeskPreferences
from crm_desktop.app.sync_service import SyncResult
from crm_desktop.app.text import plural
from crm_desktop.domain.alerts import AlertKind
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.ui.accessibility import needs_name
from crm_desktop.ui.alerts_view import AlertsPanel
from crm_desktop.ui.settings_dialog import SettingsDialog
from crm_desktop.ui.theme import SystemThemeFollower
from crm_desktop.ui.tray import DeskTray
from crm_desktop.ui.widgets import hold_while_open

if TYPE_CHECKING:
    from crm_desktop.ui.main_window import MainWindow

logger = logging.getLogger(__name__)

#: QSettings key: the "closing keeps syncing in the tray" notification was shown (it is said once).
TRAY_EXPLAINED_KEY = "tray/explained"
#: The Alerts view's first height, in pixels.
ALERTS_DOCK_HEIGHT = 170
#: Shown once, the first time closing the window leaves the app running in the tray.
TRAY_EXPLANATION = (
    "CRM Desktop keeps syncing in the background. Open it or quit from the tray icon's menu; "
    "turn this off in Settings."
)


def has_own_find_shortcut(panel: QWidget) -> bool:
    """Whether a panel handles Ctrl+F itself (the window's Ctrl+F then stays out of its way)."""
    find = QKeySequence(QKeySequence.StandardKey.Find)
    return any(shortcut.key().matches(find) == QKeySequence.SequenceMatch.ExactMatch
               for shortcut in panel.findChildren(QShortcut))


def filter_control(panel: QWidget) -> QWidget | None:
    """The control Ctrl+F goes to: the panel's ``filter_edit``, else its first visible text field or list choice."""
    named = getattr(panel, "filter_edit", None)
    if isinstance(named, QWidget):
        return named
    for widget in panel.findChildren(QWidget):
        if isinstance(widget, QLineEdit | QComboBox) and widget.isVisibleTo(panel) and widget.isEnabled():
            return widget
    return None


def first_control(panel: QWidget) -> QWidget | None:
    """The control Ctrl+1..6 puts the keyboard on: the panel's focus proxy, else its first visible, enabled
    control that takes Tab and has a name for screen readers (not the scroll area its page scrolls in)."""
    proxy = panel.focusProxy()
    if proxy is not None:
        return proxy
    for widget in panel.findChildren(QWidget):
        if (needs_name(widget) and widget.accessibleName() and not isinstance(widget, QScrollArea)
                and widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.isVisibleTo(panel)
                and widget.isEnabled()):
            return widget
    return None


class Desk(QObject):
    """The window's tray icon, Alerts view, notifications, Settings dialog and keyboard shortcuts.

    Attributes:
        window: the main window.
        preferences: the workspace's desktop preferences as last saved.
        tray: the tray icon and its menu.
        alerts_panel, alerts_dock: the Alerts view, docked at the bottom of the window.
        panel_actions: View > one action per panel (Ctrl+1..6).
        sync_all_action: File > Sync all now (Ctrl+R).
        find_action: View > Filter (Ctrl+F).
        settings_action: Settings > Preferences (Ctrl+,).
        settings_dialog: the Settings dialog while it is open.
        theme_follower: the theme Settings chose, following the desktop's light or dark mode unless overridden
            (``None`` without a QApplication).

    Signals:
        local_api_changed(): the local API was turned on or off, or moved to another port (a port it cannot
            start on comes back to ``local_api_refused``).
        alerts_shown(list): the alerts just raised (a repeat included), after they were listed.
    """

    local_api_changed = Signal()
    alerts_shown = Signal(list)
    #: An import's alerts, recorded on whichever thread imported (People saves a file on a store thread), shown on
    #: this object's, the GUI thread: a queued call when they come from another thread.
    _import_alerts = Signal(list)

    def __init__(self, window: MainWindow, *, tray_available: bool | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.preferences = self.workspace.preferences.get()
        self.settings_dialog: SettingsDialog | None = None
        self._quitting = False
        self._pruning: asyncio.Task[PruneOutcome | None] | None = None
        self._prune_again = False
        app = QApplication.instance()
        self.theme_follower = (SystemThemeFollower(app, self.preferences.theme.value, self)
                               if isinstance(app, QApplication) else None)

        self.alerts_panel = AlertsPanel(self.workspace.alerts.recent, self.workspace.alerts.clear,
                                        self.workspace.alerts.dismiss)
        self.alerts_dock = QDockWidget("Alerts", window)
        self.alerts_dock.setObjectName("alertsDock")
        self.alerts_dock.setAccessibleName("Alerts")
        self.alerts_dock.setWidget(self.alerts_panel)
        self.alerts_dock.setAllowedAreas(Qt.DockWidgetArea.BottomDockWidgetArea
                                         | Qt.DockWidgetArea.RightDockWidgetArea)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.alerts_dock)
        # A strip under the panel, not half the window (a remembered size replaces it).
        window.resizeDocks([self.alerts_dock], [ALERTS_DOCK_HEIGHT], Qt.Orientation.Vertical)
        self.alerts_dock.hide()
        self._alerts_just_before_sidebar()
        self.alerts_dock.topLevelChanged.connect(self._alerts_floated_or_docked)
        self.alerts_panel.run_requested.connect(self.open_run)
        self.alerts_panel.reconnect_requested.connect(self.reconnect)
        self.alerts_panel.status_message.connect(lambda text: window.statusBar().showMessage(text, 8000))

        self.tray = DeskTray(window, available=tray_available)
        self.tray.set_paused(not self.preferences.auto_sync)
        self.tray.open_requested.connect(self.open_window)
        self.tray.sync_all_requested.connect(self.sync_all)
        self.tray.pause_toggled.connect(lambda paused: self.set_auto_sync(not paused))
        self.tray.quit_requested.connect(self.quit)

        self._build_actions()
        self.workspace.sync.add_run_listener(self._run_ended)
        self._import_alerts.connect(self._show_raised)
        self.workspace.sync.add_import_listener(self._imported)
        window.stack.currentChanged.connect(lambda _index: self._update_find_action())
        self._update_find_action()

    def _alerts_just_before_sidebar(self) -> None:
        """Put the docked Alerts view's controls just before the sidebar in the window's Tab order.

        Qt adds a panel built after start-up (the first time it is opened) at the end of the window's Tab order,
        which was after the Alerts view: Tab from the sidebar went through the alerts before the panel. With the
        view just before the sidebar (the order is a circle), a panel added at the end comes after the sidebar and
        before the view: Tab goes sidebar, panel, Alerts. Docking the view back puts it last again, so it is moved
        again then. (The order is set from controls known by name: walking ``nextInFocusChain()`` from Python
        makes each widget it returns a Python child of the one asked, which a panel's stand-in, deleted once the
        panel is built, then took down with it.)
        """
        sidebar = self.window.sidebar
        previous: QWidget = sidebar
        for control in self.alerts_panel.tab_stops:  # first the view after the sidebar...
            QWidget.setTabOrder(previous, control)
            previous = control
        QWidget.setTabOrder(previous, sidebar)  # ...then the sidebar after the view

    def _alerts_floated_or_docked(self, floating: bool) -> None:
        if not floating:
            self._alerts_just_before_sidebar()

    # -- actions and shortcuts

    def _build_actions(self) -> None:
        window = self.window
        self.sync_all_action = QAction("Sync all &now", window)
        self.sync_all_action.setShortcut(QKeySequence("Ctrl+R"))
        self.sync_all_action.triggered.connect(self.sync_all)
        window.file_menu.insertAction(window.quit_action, self.sync_all_action)
        window.file_menu.insertSeparator(window.quit_action)

        self.view_menu = QMenu("&View", window)
        window.menuBar().insertMenu(window.settings_menu.menuAction(), self.view_menu)
        self.panel_actions: list[QAction] = []
        for number, entry in enumerate(window.panels, start=1):
            action = QAction(entry.title, window)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _checked=False, index=number - 1: self.go_to_panel(index))
            self.view_menu.addAction(action)
            self.panel_actions.append(action)
        self.view_menu.addSeparator()
        self.find_action = QAction("&Filter", window)
        self.find_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        self.find_action.triggered.connect(self.focus_filter)
        self.view_menu.addAction(self.find_action)
        self.alerts_action = self.alerts_dock.toggleViewAction()
        self.alerts_action.setText("&Alerts")
        self.alerts_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.view_menu.addAction(self.alerts_action)

        self.settings_action = QAction("&Preferences…", window)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.open_settings)
        window.settings_menu.insertAction(window.network_action, self.settings_action)

    def go_to_panel(self, index: int) -> None:
        """Ctrl+1..6: show a panel and move the keyboard into it."""
        self.window.show_panel(index)
        panel = self.window.current_panel
        (first_control(panel) or panel).setFocus(Qt.FocusReason.ShortcutFocusReason)

    def _update_find_action(self) -> None:
        # A panel with its own Ctrl+F (People) handles it while the keyboard is in it; two shortcuts on one key
        # would both be refused as ambiguous.
        self.find_action.setEnabled(not has_own_find_shortcut(self.window.current_panel))

    def focus_filter(self) -> bool:
        """Ctrl+F: put the keyboard in the current panel's filter; ``False`` when the panel has none."""
        panel = self.window.current_panel
        focus_own = getattr(panel, "focus_filter", None)
        if callable(focus_own):
            focus_own()
            return True
        control = filter_control(panel)
        if control is None:
            self.window.statusBar().showMessage("This panel has nothing to filter.", 4000)
            return False
        control.setFocus(Qt.FocusReason.ShortcutFocusReason)
        if isinstance(control, QLineEdit):
            control.selectAll()
        return True

    def sync_all(self) -> None:
        """Ctrl+R, or the tray: sync every integration, shown in the Sync Monitor (the window comes back from the
        tray for it: "Sync all now" may first ask, over the window)."""
        if not self.window.isVisible():
            self.open_window()
        # Its preview, progress and outcome (or why there is nothing to sync) are drawn there: show it.
        monitor = self.window.sync_monitor_panel
        self.window.show_panel(self.window.stack.indexOf(monitor))
        monitor.sync_all()

    # -- the window and the tray

    def open_window(self) -> None:
        """Show the window again (from the tray), in front."""
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def quit(self) -> None:
        """Quit for real (the tray's Quit): the window closes even while auto-sync runs."""
        self._quitting = True
        self.window.close()

    def keeps_running_on_close(self) -> bool:
        """Whether closing the window only hides it: a tray to live in, auto-sync on, and the setting on."""
        return (not self._quitting and self.tray.visible and self.preferences.keep_in_tray
                and self.preferences.auto_sync)

    def went_to_tray(self) -> None:
        """Say once (ever) that the app keeps syncing in the tray."""
        settings = self.window.window_settings
        if settings.value(TRAY_EXPLAINED_KEY, False, type=bool):
            return
        if self.tray.notify("CRM Desktop is still running", TRAY_EXPLANATION, warning=False,
                            on_click=self.open_window):
            settings.setValue(TRAY_EXPLAINED_KEY, True)
            settings.sync()

    def set_auto_sync(self, enabled: bool) -> None:
        """Run or pause scheduled syncs (the tray's "Pause auto-sync", the Settings), and remember it."""
        self.preferences = self.workspace.preferences.update(auto_sync=enabled)
        self._apply_auto_sync()

    def _apply_auto_sync(self) -> None:
        scheduler = self.window.scheduler
        if self.preferences.auto_sync and not scheduler.active:
            scheduler.start()
        elif not self.preferences.auto_sync and scheduler.active:
            scheduler.stop()
        self.tray.set_paused(not self.preferences.auto_sync)
        self.window.statusBar().showMessage(
            "Auto-sync is on" if self.preferences.auto_sync else "Auto-sync paused: syncs run only when you ask",
            5000)

    def start(self) -> None:
        """Show the tray icon, start auto-sync as the preferences say and prune the run history as they say (when
        the window opens)."""
        self.tray.show()
        if self.preferences.auto_sync:
            self.window.scheduler.start()
        self.prune_history()

    # -- the run history kept

    def prune_history(self) -> asyncio.Task[PruneOutcome | None] | None:
        """Delete the runs older than Settings' "Keep run history for" on a worker thread (at start-up, after a batch
        of scheduled syncs, when a shorter limit is saved); its task, or ``None`` while the history is kept forever
        (or no asyncio loop runs)."""
        if self.preferences.history_retention.months is None:
            return None
        if self._pruning is not None and not self._pruning.done():
            self._prune_again = True  # runs may have aged or ended since this one looked: it looks once more
            return self._pruning
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._pruning = self.window.tasks.start(self._prune_history(), name="prune the run history")
        return self._pruning

    async def _prune_history(self) -> PruneOutcome | None:
        try:
            outcome = await asyncio.to_thread(self.workspace.history.prune_by_setting)
            while self._prune_again:
                self._prune_again = False
                again = await asyncio.to_thread(self.workspace.history.prune_by_setting)
                if again is not None and again.counts.runs:
                    outcome = again
        except Exception as exc:  # the store did not answer: the next start or batch tries again
            logger.warning("the run history could not be pruned: %s", exc)
            self.window.statusBar().showMessage(f"Old runs could not be deleted: {exc}", 8000)
            return None
        if outcome is not None and outcome.counts.runs:
            self.window.statusBar().showMessage(
                f"Run history: deleted {counts_text(outcome.counts)} older than "
                f"{outcome.older_than.astimezone().strftime('%Y-%m-%d')} (Settings: Keep run history for)", 8000)
            self.window.refresh_monitor_runs()
        return outcome

    def stop(self) -> None:
        """The window closes for good: hear no more runs, take the tray icon away."""
        self.workspace.sync.remove_run_listener(self._run_ended)
        self.workspace.sync.remove_import_listener(self._imported)
        self.tray.hide()

    # -- alerts

    def _run_ended(self, integration: Integration, outcome: SyncResult | Exception) -> None:
        self.run_ended(integration, outcome)

    def _imported(self, path: Path, report: ImportReport) -> None:
        """On the importing thread: record the import's alerts there, and have the GUI thread list and notify them."""
        try:
            raised = self.workspace.alerts.alerts_for_import(path, report)
        except Exception as exc:  # the store cannot take the alert: the import's own summary still shows
            logger.warning("cannot record the alerts of the import of %s: %s", path.name, exc)
            return
        if raised:
            self._import_alerts.emit(raised)

    def run_ended(self, integration: Integration, outcome: SyncResult | Exception) -> list[RaisedAlert]:
        """A run ended: raise its alerts, list them, and notify those not repeating a recent one."""
        try:
            raised = self.workspace.alerts.alerts_for_run(integration, outcome)
        except Exception as exc:  # the store cannot take the alert: the run's own outcome still shows
            logger.warning("cannot record the alerts of the run of %s: %s", integration.name, exc)
            return []
        self._show_raised(raised)
        return raised

    def _show_raised(self, raised: list[RaisedAlert]) -> None:
        if not raised:
            return
        self.alerts_panel.refresh()
        for item in raised:
            if item.notify and self.preferences.notifications:
                self.notify(item)
        self.alerts_shown.emit(raised)

    def notify(self, raised: RaisedAlert) -> bool:
        """Show one alert as a desktop notification; clicking it reconnects or shows the alert's run."""
        alert = raised.alert
        if alert.kind is AlertKind.AUTH_FAILED:
            def on_click() -> None:
                self.reconnect(alert.integration_name)
        else:
            def on_click() -> None:
                self.show_alerts()
                if alert.run_id is not None:
                    self.open_run(alert.run_id)
        title = f"{alert.title}: {alert.integration_name}"
        text = alert.message + (" Click to reconnect." if alert.kind is AlertKind.AUTH_FAILED else "")
        return self.tray.notify(title, text, on_click=on_click)

    def show_alerts(self) -> None:
        """Show the Alerts view."""
        self.open_window()
        self.alerts_dock.show()
        self.alerts_dock.raise_()

    def open_run(self, run_id: int) -> bool:
        """Show a run in the Sync Monitor (from an alert)."""
        self.open_window()
        monitor = self.window.sync_monitor_panel
        self.window.show_panel(self.window.stack.indexOf(monitor))
        monitor.refresh_runs()
        found = monitor.select_run(run_id)
        if not found:
            self.window.statusBar().showMessage(f"Run #{run_id} is no longer in the run history.", 6000)
        return found

    def reconnect(self, name: str) -> bool:
        """Open an integration's connection settings to sign in again (from an alert or its notification): a
        Salesforce one signs in again in the browser, the others' Edit dialog takes a new key."""
        self.open_window()
        panel = self.window.integrations_panel
        self.window.show_panel(self.window.stack.indexOf(panel))
        panel.reload(select=name)
        selected = panel.selected_integration()
        if selected is None or selected.name != name:
            self.window.statusBar().showMessage(f"The integration “{name}” no longer exists.", 6000)
            return False
        if selected.provider is Provider.SALESFORCE:
            # New tokens come from signing in again; the Edit dialog (modal, over the sign-in button) only takes
            # tokens pasted by hand. Without a client id known, the sign-in says to type one in Edit….
            panel.sign_in()
        else:
            panel.open_edit_dialog()
        return True

    # -- settings

    def local_api_refused(self, port: int, error: Exception, still_on: int | None) -> None:
        """The local API could not start on ``port``: say so in the window. ``still_on``: the port it still serves
        on, which Settings shows again (``None``: no API runs)."""
        if still_on is not None:
            self.preferences = self.workspace.preferences.update(local_api_port=still_on)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        where = (f"it still serves on port {still_on}" if still_on is not None
                 else "it is off; pick another port in Settings > Local API")
        self.window.statusBar().showMessage(f"The local API could not start on port {port} ({reason}): {where}.",
                                            15000)

    def open_settings(self) -> SettingsDialog:
        """Settings > Preferences (window-modal, returns at once)."""
        dialog = SettingsDialog(self.workspace, tray_available=self.tray.available, parent=self.window)
        dialog.saved.connect(self.apply_preferences)
        dialog.scoring_changed.connect(self.rescore)
        dialog.network_requested.connect(self.window.open_network_settings)
        hold_while_open(self, "settings_dialog", dialog)
        dialog.open()
        return dialog

    def rescore(self) -> asyncio.Task[int | None]:
        """Recompute every stored engagement score (after the scoring settings changed) on a worker thread; say
        when it is done, and show the new scores in People."""
        self.window.statusBar().showMessage("Recomputing engagement scores with the new settings…")
        return self.window.tasks.start(self._rescore(), name="rescore engagement scores")

    async def _rescore(self) -> int | None:
        try:
            scored = await asyncio.to_thread(self.workspace.social.rescore_everyone)
        except Exception as exc:  # the store cannot be written: the daily rescore tries again
            logger.warning("engagement scores could not be recomputed: %s", exc)
            self.window.statusBar().showMessage(f"Engagement scores could not be recomputed: {exc}", 8000)
            return None
        self.window.statusBar().showMessage(
            f"Engagement scores recomputed for {plural(scored, 'person', 'people')}", 8000)
        if self.window.panel_built("People"):
            self.window.people_panel.reload()
        return scored

    def apply_preferences(self, preferences: DeskPreferences) -> None:
        """Put saved settings to work: theme, auto-sync, the attribution model, the local API, the preview."""
        before, self.preferences = self.preferences, preferences
        if self.theme_follower is not None and preferences.theme != before.theme:
            self.theme_follower.set_choice(preferences.theme.value)
        if preferences.auto_sync != before.auto_sync:
            self._apply_auto_sync()
        kept, was = preferences.history_retention.months, before.history_retention.months
        if kept is not None and (was is None or kept < was):
            self.prune_history()
        # A panel not opened yet reads these settings when it is (Attribution's model, the preview).
        if self.window.panel_built("Attribution"):
            attribution = self.window.attribution_panel
            if preferences.attribution_model != before.attribution_model:
                attribution.model_combo.setCurrentIndex(
                    attribution.model_combo.findData(preferences.attribution_model))
            if attribution.isVisible():  # a new time-decay half-life credits anew; a hidden panel checks when shown
                attribution.refresh_if_changed()
        if (preferences.local_api_enabled, preferences.local_api_port) != (before.local_api_enabled,
                                                                            before.local_api_port):
            self.local_api_changed.emit()
        if self.window.panel_built("Sync Monitor"):
            self.window.sync_monitor_panel.preview_first_check.setChecked(self.workspace.monitor.preview.asks_first())
        if self.window.panel_built("Integrations"):
            self.window.integrations_panel.reload()
        self.window.statusBar().showMessage("Settings saved", 5000)
