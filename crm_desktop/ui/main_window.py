"""The main window: a sidebar of panels, each built the first time it is opened, and a status bar."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
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
from crm_desktop.app.paths import AppPaths
from crm_desktop.app.sync_monitor import wrote_locally
from crm_desktop.app.text import plural
from crm_desktop.app.workflows import SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.ui.accessibility import AccessibleNames, name_controls
from crm_desktop.ui.columns import app_settings
from crm_desktop.ui.desk import Desk
from crm_desktop.ui.scheduler import Outcome, SyncScheduler
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.theme import app_icon, icon
from crm_desktop.ui.widgets import ask_where_to_save, within_screen

if TYPE_CHECKING:
    # The panels are imported when first opened (QtCharts with Attribution): a start loads only the one it shows.
    from crm_desktop.app.people import PeopleService
    from crm_desktop.ui.attribution_panel import AttributionPanel
    from crm_desktop.ui.conflicts_panel import ConflictsPanel
    from crm_desktop.ui.field_mapping_panel import FieldMappingPanel
    from crm_desktop.ui.integrations_panel import IntegrationsPanel
    from crm_desktop.ui.network_dialog import NetworkSettingsDialog
    from crm_desktop.ui.people_panel import PeoplePanel
    from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel

logger = logging.getLogger(__name__)

#: QSettings organisation and application names (the same names the data dir uses).
DISPLAY_NAME = "CRM Desktop"

GEOMETRY_KEY = "main_window/geometry"
PANEL_KEY = "main_window/panel"
DOCKS_KEY = "main_window/docks"
DEFAULT_SIZE = QSize(1240, 760)
#: The sidebar's rows (Ctrl+1..6 in this order).
INTEGRATIONS_ROW, FIELD_MAPPING_ROW, CONFLICTS_ROW, SYNC_MONITOR_ROW, PEOPLE_ROW, ATTRIBUTION_ROW = range(6)


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
    return within_screen(DEFAULT_SIZE, available)


class PanelEntry:
    """One sidebar entry and its panel, built the first time it is shown or asked for.

    Attributes:
        title: the sidebar label.
        icon_file: the SVG in ``resources/icons``.
    """

    def __init__(self, title: str, icon_file: str, make: Callable[[], QWidget],
                 placed: Callable[[PanelEntry], None]) -> None:
        self.title = title
        self.icon_file = icon_file
        self._make = make
        self._placed = placed
        self._widget: QWidget | None = None

    @property
    def built(self) -> QWidget | None:
        """The panel, or ``None`` while it has not been opened yet."""
        return self._widget

    @property
    def widget(self) -> QWidget:
        """The panel, built (and put in the window) now if it was not yet."""
        if self._widget is None:
            self._widget = self._make()
            self._placed(self)
        return self._widget


class MainWindow(QMainWindow):
    """The app's window: a sidebar switching six panels, with the data dir and database in the status bar.

    Only the panel on show is built with the window; each other panel (and the modules it needs: QtCharts for
    Attribution) is built the first time it is opened, from the sidebar, a shortcut, or its attribute here.
    Geometry and the selected panel are remembered in QSettings. While the window is open the scheduler runs
    the syncs that fall due; the sidebar's Conflicts entry counts the open conflicts. Closing saves the state,
    stops the scheduler and cancels the window's running tasks.

    Attributes:
        workspace: the open workspace.
        tasks: asyncio tasks started by the panels and the scheduler (cancelled on close).
        scheduler: runs due syncs every minute.
        sidebar: the panel list.
        stack: the panels (a blank page stands in for each panel not opened yet).
        panels: the sidebar's entries, in its order.
        integrations_panel, field_mapping_panel, conflicts_panel, sync_monitor_panel, people_panel,
            attribution_panel: the panels (asking for one builds it).
        location_label: the status bar's data dir and database.
        quit_action: File > Quit (closes the window, like its close button).
        diagnostics_action: Help > Export diagnostics (a redacted support bundle).
        diagnostics_dialog: the file dialog while it is open.

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
        # Sync runs write the store and merge records: in a worker thread, so this window never waits on them,
        # and full runs in a child process, so their garbage collections never pause it either.
        workspace.sync.run_off_thread()
        workspace.run_syncs_in_process()
        self.tasks = BackgroundTasks()
        self._settings = settings if settings is not None else app_settings()
        self.setWindowTitle(DISPLAY_NAME)
        self.setWindowIcon(app_icon())
        self._people: PeopleService | None = None
        # A scheduled batch running, or the last one's outcomes, while the Sync Monitor was not opened yet: it
        # shows them when it is.
        self._scheduled_batch: list[str] = []
        self._scheduled_now: str | None = None
        self._unseen_outcomes: list[Outcome] = []

        self.scheduler = SyncScheduler(workspace.sync, self.tasks, workflows=SocialWorkflows.for_workspace(workspace),
                                       parent=self)
        self.panels = [
            PanelEntry("Integrations", "integrations.svg", self._make_integrations_panel, self._place_panel),
            PanelEntry("Field Mapping", "field-mapping.svg", self._make_field_mapping_panel, self._place_panel),
            PanelEntry("Conflicts", "conflicts.svg", self._make_conflicts_panel, self._place_panel),
            PanelEntry("Sync Monitor", "sync-monitor.svg", self._make_sync_monitor_panel, self._place_panel),
            PanelEntry("People", "people.svg", self._make_people_panel, self._place_panel),
            PanelEntry("Attribution", "attribution.svg", self._make_attribution_panel, self._place_panel),
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
            self.stack.addWidget(QWidget())  # stands in for the panel until it is first opened
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
        self.scheduler.batch_started.connect(self._scheduled_started)
        self.scheduler.sync_started.connect(self._scheduled_sync_started)
        self.scheduler.batch_finished.connect(self._scheduled_finished)
        self.scheduler.check_failed.connect(self._show_status)

        self.diagnostics_dialog: QFileDialog | None = None
        self._build_menus()
        shown = self._remembered_panel()
        self.panels[shown].widget  # noqa: B018 (the one panel a start builds)
        self.show_panel(shown)
        self.desk = Desk(self, tray_available=tray_available)
        self._restore_state()
        self.refresh_conflicts(reload_panel=False)  # a Conflicts panel just built has read them
        self.desk.start()

    # -- the panels, each built when first opened

    def _make_integrations_panel(self) -> QWidget:
        from crm_desktop.ui.integrations_panel import IntegrationsPanel

        workspace = self.workspace
        panel = IntegrationsPanel(workspace.integrations, workspace.vault.availability, crm=workspace.crm,
                                  tasks=self.tasks)
        panel.status_message.connect(self._show_status)
        panel.integrations_changed.connect(self._integrations_changed)
        return panel

    def _make_field_mapping_panel(self) -> QWidget:
        from crm_desktop.ui.field_mapping_panel import FieldMappingPanel

        panel = FieldMappingPanel(self.workspace.sync, self.tasks)
        panel.status_message.connect(self._show_status)
        return panel

    def _make_conflicts_panel(self) -> QWidget:
        from crm_desktop.ui.conflicts_panel import ConflictsPanel

        panel = ConflictsPanel(self.workspace.sync, self.tasks)
        panel.status_message.connect(self._show_status)
        panel.conflicts_changed.connect(self._conflicts_resolved)
        return panel

    def _make_sync_monitor_panel(self) -> QWidget:
        from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel

        panel = SyncMonitorPanel(self.workspace.monitor, self.tasks)
        panel.status_message.connect(self._show_status)
        panel.runs_finished.connect(self.refresh_conflicts)
        panel.records_written.connect(self._refresh_people)
        panel.person_requested.connect(lambda obj, email: self.show_people(RecordObject(obj), text=email))
        if self._scheduled_batch:
            panel.scheduled_started(self._scheduled_batch)
            if self._scheduled_now is not None:
                panel.scheduled_sync_started(self._scheduled_now)
        elif self._unseen_outcomes:
            panel.scheduled_finished(self._unseen_outcomes)
        self._unseen_outcomes = []
        return panel

    def _make_people_panel(self) -> QWidget:
        from crm_desktop.ui.people_panel import PeoplePanel

        panel = PeoplePanel(self.people, self._integration_choices())
        panel.status_message.connect(self._show_status)
        panel.change_undone.connect(self.refresh_monitor_runs)
        return panel

    def _make_attribution_panel(self) -> QWidget:
        from crm_desktop.ui.attribution_panel import AttributionPanel

        panel = AttributionPanel(self.people)
        panel.status_message.connect(self._show_status)
        panel.campaign_requested.connect(lambda name: self.show_people(RecordObject.LEAD, campaign=name))
        panel.platform_requested.connect(self._show_platform_people)
        # The model Settings chose (the panel's own default until then).
        panel.model_combo.setCurrentIndex(
            panel.model_combo.findData(self.workspace.preferences.get().attribution_model))
        return panel

    def _place_panel(self, entry: PanelEntry) -> None:
        """Put a panel just built in its stand-in's place in the stack."""
        row = self.panels.index(entry)
        panel = cast(QWidget, entry.built)
        stand_in = cast(QWidget, self.stack.widget(row))
        showing = self.stack.currentIndex() == row
        blocked = self.stack.blockSignals(True)  # the stand-in giving way is no change of panel
        try:
            self.stack.insertWidget(row, panel)
            self.stack.removeWidget(stand_in)
            if showing:
                self.stack.setCurrentIndex(row)
        finally:
            self.stack.blockSignals(blocked)
        stand_in.deleteLater()
        app = QApplication.instance()
        if self.isVisible() and app is not None and app.findChild(AccessibleNames) is not None:
            name_controls(panel)  # the window's show named the controls it had then; this panel came after

    def _built(self, row: int) -> QWidget | None:
        return self.panels[row].built

    def panel_built(self, title: str) -> bool:
        """Whether the panel with this sidebar title has been opened (built) yet."""
        return any(entry.title == title and entry.built is not None for entry in self.panels)

    @property
    def people(self) -> PeopleService:
        """The People and Attribution panels' service (made when the first of them is opened)."""
        if self._people is None:
            from crm_desktop.app.people import PeopleService

            workspace = self.workspace
            self._people = PeopleService(workspace.database, workspace.social, workspace.sync)
        return self._people

    @property
    def integrations_panel(self) -> IntegrationsPanel:
        """The Integrations panel (built now if it was not opened yet)."""
        return cast("IntegrationsPanel", self.panels[INTEGRATIONS_ROW].widget)

    @property
    def field_mapping_panel(self) -> FieldMappingPanel:
        """The Field Mapping panel (built now if it was not opened yet)."""
        return cast("FieldMappingPanel", self.panels[FIELD_MAPPING_ROW].widget)

    @property
    def conflicts_panel(self) -> ConflictsPanel:
        """The Conflicts panel (built now if it was not opened yet)."""
        return cast("ConflictsPanel", self.panels[CONFLICTS_ROW].widget)

    @property
    def sync_monitor_panel(self) -> SyncMonitorPanel:
        """The Sync Monitor panel (built now if it was not opened yet)."""
        return cast("SyncMonitorPanel", self.panels[SYNC_MONITOR_ROW].widget)

    @property
    def people_panel(self) -> PeoplePanel:
        """The People panel (built now if it was not opened yet)."""
        return cast("PeoplePanel", self.panels[PEOPLE_ROW].widget)

    @property
    def attribution_panel(self) -> AttributionPanel:
        """The Attribution panel (built now if it was not opened yet)."""
        return cast("AttributionPanel", self.panels[ATTRIBUTION_ROW].widget)

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
        return ask_where_to_save(self, "diagnostics_dialog", "Export diagnostics", "crm-desktop-diagnostics.zip",
                                 "Zip files (*.zip)", self.export_diagnostics)

    def export_diagnostics(self, destination: Path) -> bool:
        """Write the support bundle to ``destination`` and say where it went (or why it could not be written)."""
        from crm_desktop.app.diagnostics import export_diagnostics

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
        from crm_desktop.ui.network_dialog import NetworkSettingsDialog

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
                    platform: SocialPlatform | None = None, reached_on: SocialPlatform | None = None) -> None:
        """Open People on the contacts or leads matching an email, a campaign, a platform, or reached on one."""
        self.show_panel(PEOPLE_ROW)
        self.people_panel.show_filtered(obj, text=text, campaign=campaign, platform=platform, reached_on=reached_on)
        self.people_panel.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def _show_platform_people(self, name: str) -> None:
        try:
            platform = SocialPlatform(name)
        except ValueError:
            self._show_status(f"“{name}” is not a platform People can filter by.")
            return
        # The row's leads are those with a touchpoint on the platform: People lists the same ones.
        self.show_people(RecordObject.LEAD, reached_on=platform)

    def _integration_choices(self) -> list[tuple[int, str]]:
        return [(i.id, i.name) for i in self.workspace.integrations.list() if i.id is not None]

    def _integrations_changed(self) -> None:
        # A panel not opened yet reads the integrations when it is.
        if self._built(PEOPLE_ROW) is not None:
            self.people_panel.set_integrations(self._integration_choices())
        if self._built(SYNC_MONITOR_ROW) is not None:
            self.sync_monitor_panel.reload_integrations()
            self.sync_monitor_panel.refresh_runs()
        if self._built(FIELD_MAPPING_ROW) is not None:
            self.field_mapping_panel.reload_integrations()
        self.refresh_conflicts()

    def _refresh_people(self, records_written: bool = True) -> None:
        if self._built(PEOPLE_ROW) is not None:
            self.people_panel.show_written(records_written)

    def refresh_monitor_runs(self) -> None:
        if self._built(SYNC_MONITOR_ROW) is not None:
            self.sync_monitor_panel.refresh_runs()

    def _scheduled_started(self, names: list[str]) -> None:
        self._scheduled_batch = list(names)
        self._scheduled_now = None
        self._unseen_outcomes = []
        if self._built(SYNC_MONITOR_ROW) is not None:
            self.sync_monitor_panel.scheduled_started(names)

    def _scheduled_sync_started(self, name: str) -> None:
        self._scheduled_now = name
        if self._built(SYNC_MONITOR_ROW) is not None:
            self.sync_monitor_panel.scheduled_sync_started(name)

    def _scheduled_finished(self, outcomes: list[Outcome]) -> None:
        self._scheduled_batch = []
        self._scheduled_now = None
        if self._built(SYNC_MONITOR_ROW) is not None:
            self.sync_monitor_panel.scheduled_finished(outcomes)  # says what the runs wrote (records_written)
        else:
            self._unseen_outcomes = list(outcomes)
            self._refresh_people(any(isinstance(outcome, Exception) or wrote_locally(outcome)
                                     for _, outcome in outcomes))
        self.desk.prune_history()

    def _conflicts_resolved(self) -> None:
        self.refresh_conflicts(reload_panel=False)
        self._refresh_people()  # the value kept is written to the local record too

    def refresh_conflicts(self, reload_panel: bool = True) -> int:
        """Count the open conflicts into the sidebar ("Conflicts (3)") and re-read the Conflicts panel, if opened."""
        try:
            count = self.workspace.sync.conflict_count()
        except Exception as exc:  # a store that cannot be read must not break the window
            logger.warning("cannot count the open conflicts: %s", exc)
            return 0
        item = self.sidebar.item(CONFLICTS_ROW)
        item.setText(f"Conflicts ({count})" if count else "Conflicts")
        item.setToolTip(
            f"{plural(count, 'field')} changed on both sides {'waits' if count == 1 else 'wait'} for your decision"
            if count else "No open conflicts"
        )
        if reload_panel and self._built(CONFLICTS_ROW) is not None:
            self.conflicts_panel.reload_later()
        return count

    def _panel_chosen(self, row: int) -> None:
        if 0 <= row < self.stack.count():
            self.panels[row].widget  # noqa: B018 (built on its first opening, before it is shown)
            self.stack.setCurrentIndex(row)

    def show_panel(self, index: int) -> None:
        """Select a panel by its position in the sidebar."""
        self.sidebar.setCurrentRow(index)

    @property
    def current_panel(self) -> QWidget:
        """The panel on show."""
        return self.panels[self.stack.currentIndex()].widget

    # -- remembered state

    def _remembered_panel(self) -> int:
        try:
            panel = int(self._settings.value(PANEL_KEY, 0))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            panel = 0
        return panel if 0 <= panel < len(self.panels) else 0

    def _restore_state(self) -> None:
        geometry = self._settings.value(GEOMETRY_KEY)
        if not (isinstance(geometry, QByteArray) and self.restoreGeometry(geometry)):
            self.resize(default_size(self.screen().availableGeometry().size()))
        docks = self._settings.value(DOCKS_KEY)
        if isinstance(docks, QByteArray):
            self.restoreState(docks)

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
        if self._built(PEOPLE_ROW) is not None:
            self.people_panel.stop_reading()
        event.accept()
        logger.info("main window closed")
        self.closed.emit()
