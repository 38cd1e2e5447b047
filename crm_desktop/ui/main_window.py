"""The main window: a sidebar of panels (Integrations, Field Mapping, Conflicts, Sync Monitor) and a status bar."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from crm_desktop import __version__
from crm_desktop.app.diagnostics import export_diagnostics
from crm_desktop.app.paths import APP_AUTHOR, APP_NAME, AppPaths
from crm_desktop.app.people import PeopleService
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.attribution_panel import AttributionPanel
from crm_desktop.ui.conflicts_panel import ConflictsPanel
from crm_desktop.ui.desk import Desk
from crm_desktop.ui.field_mapping_panel import FieldMappingPanel
from crm_desktop.ui.integrations_panel import IntegrationsPanel
from crm_desktop.ui.network_dialog import NetworkSettingsDialog
from crm_desktop.ui.people_panel import PeoplePanel
from crm_desktop.ui.scheduler import SyncScheduler
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.theme import app_icon, icon

logger = logging.getLogger(__name__)

#: QSettings organisation and application names (the same names the data dir uses).
ORGANISATION = APP_AUTHOR
APPLICATION = APP_NAME
DISPLAY_NAME = "CRM Desktop"

GEOMETRY_KEY = "main_window/geometry"
PANEL_KEY = "main_window/panel"
DOCKS_KEY = "main_window/docks"
DEFAULT_SIZE = QSize(1240, 760)
#: The sidebar row of the Conflicts panel (its text carries the open count).
CONFLICTS_ROW = 2


def app_settings() -> QSettings:
    """The user's settings file (an INI file in the platform's config folder, the same on every OS)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def describe_database(paths: AppPaths) -> str:
    """The database in use, for the status bar, with any password in its URL hidden."""
    if paths.database_file is not None:
        return f"{paths.database_file.name} (SQLite)"
    parts = urlsplit(paths.database_url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def default_size(available: QSize) -> QSize:
    """The first-start window size: roomy, but never more than 90% of the screen."""
    return DEFAULT_SIZE.boundedTo(available * 0.9)


@dataclass(frozen=True)
class PanelEntry:
    """One sidebar entry and the panel it shows.

    Attributes:
        title: the sidebar label.
        icon_file: the SVG in ``resources/icons``.
        widget: the panel.
    """

    title: str
    icon_file: str
    widget: QWidget


class MainWindow(QMainWindow):
    """The app's window: a sidebar switching four panels, with the data dir and database in the status bar.

    Geometry and the selected panel are remembered in QSettings. While the window is open the scheduler runs
    the syncs that fall due; the sidebar's Conflicts entry counts the open conflicts. Closing saves the state,
    stops the scheduler and cancels the window's running tasks.

    Attributes:
        workspace: the open workspace.
        tasks: asyncio tasks started by the panels and the scheduler (cancelled on close).
        scheduler: runs due syncs every minute.
        sidebar: the panel list.
        stack: the panels.
        integrations_panel, field_mapping_panel, conflicts_panel, sync_monitor_panel: the panels.
        location_label: the status bar's data dir and database.
        quit_action: File > Quit (closes the window, like its close button).
        diagnostics_action: Help > Export diagnostics (a redacted support bundle).
        diagnostics_dialog: the file dialog of the last export asked for.

    Signals:
        closed(): emitted once the window has accepted a close.
    """

    closed = Signal()

    def __init__(
        self,
        workspace: Workspace,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
        *,
        tray_available: bool | None = None,
    ) -> None:
        super().__init__(parent)
        self.workspace = workspace
        # Sync runs write the store and merge records: in a worker thread, so this window never waits on them.
        workspace.sync.run_off_thread()
        self.tasks = BackgroundTasks()
        self._settings = settings if settings is not None else app_settings()
        self.setWindowTitle(DISPLAY_NAME)
        self.setWindowIcon(app_icon())

        self.integrations_panel = IntegrationsPanel(
            workspace.integrations, workspace.vault.availability, crm=workspace.crm, tasks=self.tasks
        )
        self.field_mapping_panel = FieldMappingPanel(workspace.sync, self.tasks)
        self.conflicts_panel = ConflictsPanel(workspace.sync, self.tasks)
        self.sync_monitor_panel = SyncMonitorPanel(workspace.monitor, self.tasks)
        self.scheduler = SyncScheduler(workspace.sync, self.tasks, workflows=SocialWorkflows.for_workspace(workspace),
                                       parent=self)
        self.people = PeopleService(workspace.database, workspace.social, workspace.sync)
        self.people_panel = PeoplePanel(self.people, self._integration_choices())
        self.attribution_panel = AttributionPanel(self.people)
        self.people_panel.status_message.connect(self._show_status)
        self.attribution_panel.status_message.connect(self._show_status)
        self.panels = [
            PanelEntry("Integrations", "integrations.svg", self.integrations_panel),
            PanelEntry("Field Mapping", "field-mapping.svg", self.field_mapping_panel),
            PanelEntry("Conflicts", "conflicts.svg", self.conflicts_panel),
            PanelEntry("Sync Monitor", "sync-monitor.svg", self.sync_monitor_panel),
            PanelEntry("People", "people.svg", self.people_panel),
            PanelEntry("Attribution", "attribution.svg", self.attribution_panel),
        ]

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setAccessibleName("Panels")
        self.sidebar.setIconSize(QSize(20, 20))
        self.sidebar.setFixedWidth(184)
        self.sidebar.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.stack = QStackedWidget()
        for entry in self.panels:
            QListWidgetItem(icon(entry.icon_file), entry.title, self.sidebar)
            self.stack.addWidget(entry.widget)
        self.sidebar.currentRowChanged.connect(self._panel_chosen)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.location_label = QLabel(
            f"Data folder: {workspace.paths.data_dir}   ·   Database: {describe_database(workspace.paths)}"
        )
        self.location_label.setToolTip(str(workspace.paths.database_file or describe_database(workspace.paths)))
        self.statusBar().addPermanentWidget(self.location_label, 1)
        self.statusBar().setSizeGripEnabled(False)
        for panel in (self.integrations_panel, self.field_mapping_panel, self.conflicts_panel,
                      self.sync_monitor_panel):
            panel.status_message.connect(self._show_status)
        self.integrations_panel.integrations_changed.connect(self._integrations_changed)
        self.sync_monitor_panel.runs_finished.connect(self.refresh_conflicts)
        self.sync_monitor_panel.runs_finished.connect(self.people_panel.refresh_detail)
        self.sync_monitor_panel.person_requested.connect(
            lambda obj, email: self.show_people(RecordObject(obj), text=email))
        self.attribution_panel.campaign_requested.connect(
            lambda name: self.show_people(RecordObject.LEAD, campaign=name))
        self.attribution_panel.platform_requested.connect(self._show_platform_people)
        self.people_panel.change_undone.connect(lambda _run_id: self.sync_monitor_panel.refresh_runs())
        self.conflicts_panel.conflicts_changed.connect(self._conflicts_resolved)
        self.scheduler.batch_started.connect(self.sync_monitor_panel.scheduled_started)
        self.scheduler.batch_finished.connect(self.sync_monitor_panel.scheduled_finished)
        self.scheduler.check_failed.connect(self._show_status)

        self.diagnostics_dialog: QFileDialog | None = None
        self._build_menus()
        self.desk = Desk(self, tray_available=tray_available)
        self._restore_state()
        self.refresh_conflicts()
        self.desk.start()

    def _build_menus(self) -> None:
        self.file_menu = file_menu = self.menuBar().addMenu("&File")
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.quit)
        file_menu.addAction(self.quit_action)
        self.settings_menu = settings_menu = self.menuBar().addMenu("&Settings")
        self.network_action = QAction("&Network…", self)
        self.network_action.triggered.connect(self.open_network_settings)
        settings_menu.addAction(self.network_action)
        help_menu = self.menuBar().addMenu("&Help")
        self.diagnostics_action = QAction("Export &diagnostics…", self)
        self.diagnostics_action.setToolTip(
            "Save a zip for support: versions, settings, integrations, recent runs and logs, with every secret "
            "and personal value removed"
        )
        self.diagnostics_action.triggered.connect(self.choose_diagnostics_file)
        help_menu.addAction(self.diagnostics_action)
        about_action = QAction(f"&About {DISPLAY_NAME}", self)
        about_action.triggered.connect(self._show_about)
        help_menu.addAction(about_action)

    def choose_diagnostics_file(self) -> QFileDialog:
        """Help > Export diagnostics: ask where to save the bundle (window-modal, returns at once)."""
        dialog = QFileDialog(self, "Export diagnostics", str(Path.home() / "crm-desktop-diagnostics.zip"),
                             "Zip files (*.zip)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("zip")
        dialog.fileSelected.connect(lambda path: self.export_diagnostics(Path(path)))
        dialog.finished.connect(dialog.deleteLater)
        self.diagnostics_dialog = dialog
        dialog.open()
        return dialog

    def export_diagnostics(self, destination: Path) -> bool:
        """Write the support bundle to ``destination`` and say where it went (or why it could not be written)."""
        try:
            report = export_diagnostics(self.workspace, destination, qt_platform=QGuiApplication.platformName())
        except OSError as exc:
            box = QMessageBox(QMessageBox.Icon.Warning, "Export diagnostics",
                              f"The diagnostics could not be saved to {destination}: {exc.strerror or exc}",
                              QMessageBox.StandardButton.Ok, self)
            box.finished.connect(box.deleteLater)
            box.open()
            return False
        self._show_status(f"Diagnostics saved to {report.path} (secrets and personal data removed)")
        return True

    def open_network_settings(self) -> NetworkSettingsDialog:
        """Open Settings > Network (proxy, extra CA certificates, trust) over the window."""
        dialog = NetworkSettingsDialog(self.workspace.network, self)
        dialog.accepted.connect(lambda: self._show_status("Network settings saved; they apply to the next request"))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def _show_about(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.NoIcon,
            f"About {DISPLAY_NAME}",
            f"{DISPLAY_NAME} {__version__}\n\nSyncs your social-media contacts, leads and touchpoints "
            "with Salesforce, HubSpot and Pipedrive.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.finished.connect(box.deleteLater)
        box.open()

    # -- panels

    def _show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_people(self, obj: RecordObject, *, text: str = "", campaign: str | None = None,
                    platform: SocialPlatform | None = None) -> None:
        """Open People on the contacts or leads matching an email, a campaign or a platform."""
        self.show_panel(self.stack.indexOf(self.people_panel))
        self.people_panel.show_filtered(obj, text=text, campaign=campaign, platform=platform)
        self.people_panel.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def _show_platform_people(self, name: str) -> None:
        try:
            platform = SocialPlatform(name)
        except ValueError:
            self._show_status(f"“{name}” is not a platform People can filter by.")
            return
        self.show_people(RecordObject.LEAD, platform=platform)

    def _integration_choices(self) -> list[tuple[int, str]]:
        return [(i.id, i.name) for i in self.workspace.integrations.list() if i.id is not None]

    def _integrations_changed(self) -> None:
        self.people_panel.set_integrations(self._integration_choices())
        self.sync_monitor_panel.reload_integrations()
        self.sync_monitor_panel.refresh_runs()
        self.field_mapping_panel.reload_integrations()
        self.refresh_conflicts()

    def _conflicts_resolved(self) -> None:
        self.refresh_conflicts(reload_panel=False)

    def refresh_conflicts(self, reload_panel: bool = True) -> int:
        """Count the open conflicts into the sidebar ("Conflicts (3)") and re-read the Conflicts panel."""
        try:
            count = self.workspace.sync.conflict_count()
        except Exception as exc:  # a store that cannot be read must not break the window
            logger.warning("cannot count the open conflicts: %s", exc)
            return 0
        item = self.sidebar.item(CONFLICTS_ROW)
        item.setText(f"Conflicts ({count})" if count else "Conflicts")
        item.setToolTip(
            f"{count} field(s) changed on both sides wait for your decision" if count else "No open conflicts"
        )
        if reload_panel:
            self.conflicts_panel.reload()
        return count

    def _panel_chosen(self, row: int) -> None:
        if 0 <= row < self.stack.count():
            self.stack.setCurrentIndex(row)

    def show_panel(self, index: int) -> None:
        """Select a panel by its position in the sidebar."""
        self.sidebar.setCurrentRow(index)

    @property
    def current_panel(self) -> QWidget:
        """The panel on show."""
        return self.panels[self.stack.currentIndex()].widget

    # -- remembered state

    def _restore_state(self) -> None:
        geometry = self._settings.value(GEOMETRY_KEY)
        if not (isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)):
            self.resize(default_size(self.screen().availableGeometry().size()))
        docks = self._settings.value(DOCKS_KEY)
        if isinstance(docks, QByteArray):
            self.restoreState(docks)
        try:
            panel = int(self._settings.value(PANEL_KEY, 0))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            panel = 0
        self.show_panel(panel if 0 <= panel < self.stack.count() else 0)

    @property
    def window_settings(self) -> QSettings:
        """Where the window keeps its own state (size, panel, docks)."""
        return self._settings

    def save_state(self) -> None:
        """Write geometry, docks and the selected panel to QSettings."""
        self._settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        self._settings.setValue(DOCKS_KEY, self.saveState())
        self._settings.setValue(PANEL_KEY, self.sidebar.currentRow())
        self._settings.sync()

    def quit(self) -> None:
        """File > Quit, or the tray's Quit: close the window for good, even while auto-sync would keep it."""
        self.desk.quit()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Hide to the tray while auto-sync runs there; otherwise save the state, cancel the tasks, say it closed."""
        if self.desk.keeps_running_on_close():
            self.save_state()
            event.ignore()
            self.hide()
            self.desk.went_to_tray()
            logger.info("main window hidden; syncing goes on in the tray")
            return
        self.save_state()
        self.desk.stop()
        self.scheduler.stop()
        self.tasks.cancel_all()
        self.people_panel.stop_reading()
        event.accept()
        logger.info("main window closed")
        self.closed.emit()
