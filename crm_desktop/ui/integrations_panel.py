"""The Integrations panel: the table of CRM connections with Add, Edit and Remove, and the selected one's details."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QItemSelection, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.errors import NotFoundError, VaultError
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.ui.integration_dialog import IntegrationDialog
from crm_desktop.ui.integrations_model import (
    CRM_NAMES,
    DIRECTION_NAMES,
    CredentialsState,
    IntegrationColumn,
    IntegrationRow,
    IntegrationsTableModel,
    default_api_address,
    interval_text,
)
from crm_desktop.ui.widgets import PanelHeading

__all__ = ["IntegrationDetails", "IntegrationDialog", "IntegrationsPanel", "IntegrationsTableModel"]

logger = logging.getLogger(__name__)

KeyringAvailability = Callable[[], tuple[bool, str]]


class IntegrationDetails(QWidget):
    """The selected integration in full, or a hint when nothing is selected.

    Attributes:
        values: the value label of each shown attribute, by its caption.
    """

    CAPTIONS = ("CRM", "Description", "Base URL", "Company domain", "Scopes", "Sync", "Credentials")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pages = QStackedWidget()
        self._empty = QLabel()
        self._empty.setObjectName("panelSubtitle")
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        form_page = QWidget()
        form = self._form = QFormLayout(form_page)
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(24)
        self.values: dict[str, QLabel] = {}
        for caption in self.CAPTIONS:
            value = QLabel()
            value.setObjectName("detailValue")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.values[caption] = value
            form.addRow(caption, value)
        self._pages.addWidget(self._empty)
        self._pages.addWidget(form_page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._pages)

    def show_empty(self, text: str) -> None:
        """Show ``text`` instead of an integration."""
        self._empty.setText(text)
        self._pages.setCurrentIndex(0)

    def show_row(self, row: IntegrationRow) -> None:
        """Show one integration."""
        integration = row.integration
        config = integration.sync_config
        texts = {
            "CRM": CRM_NAMES[integration.provider],
            "Description": integration.description or "—",
            "Base URL": integration.base_url or default_api_address(integration),
            "Company domain": integration.domain or "—",
            "Scopes": ", ".join(integration.scopes) or "—",
            "Sync": f"{DIRECTION_NAMES[config.direction]}, {interval_text(config.sync_interval)}, "
            + ("automatically" if config.auto_sync else "only when you start it"),
            "Credentials": {
                CredentialsState.STORED: "stored in the OS keyring",
                CredentialsState.MISSING: "missing: use Edit… to add them",
                CredentialsState.UNAVAILABLE: "cannot be read: the OS keyring is locked or missing",
            }[row.credentials],
        }
        for caption, text in texts.items():
            self.values[caption].setText(text)
        # Only Pipedrive addresses a company by its domain.
        self._form.setRowVisible(
            self.values["Company domain"], integration.provider is Provider.PIPEDRIVE or bool(integration.domain)
        )
        self._pages.setCurrentIndex(1)

    @property
    def showing_integration(self) -> bool:
        """Whether an integration (rather than the hint) is shown."""
        return self._pages.currentIndex() == 1


class IntegrationsPanel(QWidget):
    """Lists the workspace's CRM connections and adds, edits and removes them.

    Attributes:
        model: the table model.
        table: the table view.
        add_button, edit_button, remove_button: the actions.
        details: the selected integration in full.
        keyring_warning: shown when the OS keyring cannot store secrets.
        dialog: the add/edit dialog while it is open.
        confirm_box: the removal confirmation while it is open.
        error_box: the last error message box shown.

    Signals:
        status_message(str): a short note for the status bar ("Added HubSpot integration ...").
        integrations_changed(): after an integration was added, edited or removed.
    """

    status_message = Signal(str)
    integrations_changed = Signal()

    EMPTY_HINT = "No integrations yet. Click Add… to connect HubSpot, Pipedrive or Salesforce."
    NO_SELECTION_HINT = "Select an integration to see its details."

    def __init__(
        self,
        service: IntegrationService,
        keyring_availability: KeyringAvailability | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._keyring_availability = keyring_availability
        self.dialog: IntegrationDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.error_box: QMessageBox | None = None

        heading = PanelHeading(
            "Integrations",
            "Connections to your CRMs. Credentials are kept in the operating system's keyring, never in the database.",
        )
        self.keyring_warning = QLabel()
        self.keyring_warning.setObjectName("keyringWarning")
        self.keyring_warning.setWordWrap(True)
        self.keyring_warning.hide()

        self.add_button = QPushButton("Add…")
        self.add_button.setProperty("primary", True)
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)

        self.model = IntegrationsTableModel(service, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # The description takes whatever room the fitted columns leave; its full text is in the tooltip.
        header.setSectionResizeMode(IntegrationColumn.DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(60)

        details_box = QGroupBox("Details")
        self.details = IntegrationDetails()
        details_layout = QVBoxLayout(details_box)
        details_layout.addWidget(self.details)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(self.keyring_warning)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(details_box)

        self.add_button.clicked.connect(self.open_add_dialog)
        self.edit_button.clicked.connect(self.open_edit_dialog)
        self.remove_button.clicked.connect(self.confirm_remove)
        self.table.doubleClicked.connect(self.open_edit_dialog)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.reload()

    # -- state

    def reload(self, select: str | None = None) -> None:
        """Re-read integrations and the keyring's state; keep (or move) the selection."""
        keep = select or (current.name if (current := self.selected_integration()) else None)
        self._update_keyring_warning()
        self.model.refresh()
        row = self.model.row_of(keep) if keep else None
        if row is None and self.model.rowCount() > 0:
            row = 0
        if row is not None:
            self.table.selectRow(row)
        self._fit_columns()
        self._selection_changed(QItemSelection(), QItemSelection())

    #: The widest a column grows to fit its text (the full text stays in the tooltip and the details).
    MAX_COLUMN_WIDTH = 220

    def _fit_columns(self) -> None:
        for column in IntegrationColumn:
            if column is not IntegrationColumn.DESCRIPTION:
                self.table.resizeColumnToContents(column)
                self.table.setColumnWidth(column, min(self.table.columnWidth(column), self.MAX_COLUMN_WIDTH))

    def _update_keyring_warning(self) -> None:
        if self._keyring_availability is None:
            return
        ok, message = self._keyring_availability()
        self.keyring_warning.setText("Credentials cannot be saved: " + message)
        self.keyring_warning.setVisible(not ok)

    def selected_row(self) -> int | None:
        """The selected table row, if any."""
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def selected_integration(self) -> Integration | None:
        """The selected integration, if any."""
        row = self.selected_row()
        return self.model.integration_at(row) if row is not None else None

    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        row = self.selected_row()
        self.edit_button.setEnabled(row is not None)
        self.remove_button.setEnabled(row is not None)
        if row is not None:
            self.details.show_row(self.model.row(row))
        else:
            self.details.show_empty(self.EMPTY_HINT if self.model.rowCount() == 0 else self.NO_SELECTION_HINT)

    # -- add / edit

    def open_add_dialog(self) -> IntegrationDialog:
        """Open the dialog that adds an integration (window-modal, returns at once)."""
        return self._open_dialog(None)

    def open_edit_dialog(self) -> IntegrationDialog | None:
        """Open the dialog that edits the selected integration."""
        integration = self.selected_integration()
        if integration is None:
            return None
        return self._open_dialog(integration)

    def _open_dialog(self, integration: Integration | None) -> IntegrationDialog:
        dialog = IntegrationDialog(self._service, integration, self)
        dialog.saved.connect(lambda saved: self._saved(saved, added=integration is None))
        dialog.finished.connect(lambda _result: self._dialog_closed(dialog))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _dialog_closed(self, dialog: IntegrationDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def _saved(self, integration: Integration, added: bool) -> None:
        self.reload(select=integration.name)
        verb = "Added" if added else "Saved"
        self.status_message.emit(f"{verb} {CRM_NAMES[integration.provider]} integration “{integration.name}”")
        self.integrations_changed.emit()

    # -- remove

    def confirm_remove(self) -> QMessageBox | None:
        """Ask before removing the selected integration (window-modal, returns at once)."""
        integration = self.selected_integration()
        if integration is None:
            return None
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove integration",
            f"Remove the {CRM_NAMES[integration.provider]} integration “{integration.name}”?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            "Its credentials are deleted from the OS keyring and its sync data from this computer. "
            "Records in the CRM itself are not touched."
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Remove")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _result: self._removal_answered(box, integration))
        self.confirm_box = box
        box.open()
        return box

    def _removal_answered(self, box: QMessageBox, integration: Integration) -> None:
        confirmed = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)
        if self.confirm_box is box:
            self.confirm_box = None
        box.deleteLater()
        if confirmed:
            self.remove(integration.name)

    def remove(self, name: str) -> bool:
        """Remove an integration with its keyring entry; show why when that fails."""
        try:
            removed = self._service.remove(name)
        except (VaultError, NotFoundError) as exc:
            self._show_error("Could not remove the integration", str(exc))
            self.reload()
            return False
        self.reload()
        self.status_message.emit(f"Removed {CRM_NAMES[removed.provider]} integration “{removed.name}”")
        self.integrations_changed.emit()
        return True

    def _show_error(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.finished.connect(box.deleteLater)
        self.error_box = box
        box.open()
