"""The integrations table model: one row per CRM connection, with named columns, usable without a view."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QWidget

from crm_desktop.app.errors import VaultError
from crm_desktop.app.integrations import IntegrationService, KeyAge
from crm_desktop.app.text import plural
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.ui.table_model import RowsTableModel, TableColumn
from crm_desktop.ui.theme import text_colour

logger = logging.getLogger(__name__)

#: How each CRM is named to the marketer, in the order the Add dialog offers them (by name).
CRM_NAMES: dict[Provider, str] = {provider: provider.label for provider in sorted(Provider, key=lambda p: p.label)}

#: How each sync direction is named to the marketer.
DIRECTION_NAMES: dict[SyncDirection, str] = {
    SyncDirection.BOTH: "Two-way",
    SyncDirection.PUSH: "Push to CRM",
    SyncDirection.PULL: "Pull from CRM",
}


def interval_text(minutes: int) -> str:
    """A sync interval as people say it: ``every 45 min``, ``every hour``, ``every 6 h``, ``every day``,
    ``every 2 days``."""
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "every day" if days == 1 else f"every {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "every hour" if hours == 1 else f"every {hours} h"
    return f"every {minutes} min"


def sync_text(config: SyncConfig) -> str:
    """One line for an integration's sync settings, the same in the table and the details: ``Two-way, every 6 h``
    with auto-sync on, ``Two-way, when you start it`` with it off (the interval is not used then)."""
    when = interval_text(config.sync_interval) if config.auto_sync else "when you start it"
    return f"{DIRECTION_NAMES[config.direction]}, {when}"


def default_api_address(integration: Integration) -> str:
    """Where the integration's API calls go when it has no base URL of its own."""
    if integration.provider is Provider.PIPEDRIVE and integration.domain:
        host = integration.domain
        return f"https://{host if host.endswith('.pipedrive.com') else host + '.pipedrive.com'}"
    return {
        Provider.HUBSPOT: "https://api.hubapi.com",
        Provider.PIPEDRIVE: "https://<company domain>.pipedrive.com",
        Provider.SALESFORCE: "https://login.salesforce.com, then the instance URL of the sign-in",
    }[integration.provider]


class CredentialsState(StrEnum):
    """Whether the OS keyring holds an integration's credentials."""

    STORED = "stored in keyring"
    MISSING = "missing"
    UNAVAILABLE = "keyring unavailable"


class IntegrationColumn(TableColumn):
    """The columns of the integrations table, in order."""

    NAME = "Name"
    CRM = "CRM"
    DESCRIPTION = "Description"
    BASE_URL = "Base URL"
    CREDENTIALS = "Credentials"
    SYNC = "Sync"


_MUTED = "#64748b"
_WARNING = "#b91c1c"


@dataclass(frozen=True)
class IntegrationRow:
    """One row of the table: an integration and what the keyring holds for it.

    Attributes:
        integration: the stored integration.
        credentials: whether its credentials are in the keyring.
        key_age: how old the stored keys are (``None``: none stored, or nobody recorded when they were set).
    """

    integration: Integration
    credentials: CredentialsState
    key_age: KeyAge | None = None

    @property
    def rotation_due(self) -> bool:
        """Whether the stored keys are older than the rotation reminder's period."""
        return self.key_age is not None and self.key_age.rotation_due


def credentials_state(service: IntegrationService, integration: Integration) -> CredentialsState:
    """Ask the keyring whether it holds the integration's credentials (a locked keyring counts as unavailable)."""
    try:
        return CredentialsState.STORED if service.has_credentials(integration) else CredentialsState.MISSING
    except VaultError:
        return CredentialsState.UNAVAILABLE


class IntegrationsTableModel(RowsTableModel[IntegrationRow, IntegrationColumn]):
    """The integrations of the workspace as a table with named columns (:class:`IntegrationColumn`).

    ``IntegrationRole`` on any cell gives the row's :class:`Integration`.
    """

    IntegrationRole = Qt.ItemDataRole.UserRole + 1
    columns = IntegrationColumn

    def __init__(self, service: IntegrationService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = service

    def refresh(self) -> None:
        """Reload every integration from the store and its credentials state from the keyring."""
        rows = []
        for integration in self._service.list():
            state = credentials_state(self._service, integration)
            age = self._service.key_age(integration) if state is CredentialsState.STORED else None
            rows.append(IntegrationRow(integration, state, age))
        self._show_rows(rows)

    def reread(self, name: str) -> bool:
        """Re-read one integration from the store, keeping what the keyring said of it; whether it is shown.

        For what changes the stored integration but not its keys (a connection test keeps the scopes the CRM
        reported), so that the keyring is not asked again for every integration.
        """
        number = self.row_of(name)
        if number is None:
            return False
        self._rows[number] = replace(self._rows[number], integration=self._service.get(name))
        self.dataChanged.emit(self.index(number, 0), self.index(number, self.columnCount() - 1))
        return True

    def row(self, row: int) -> IntegrationRow:
        """The row at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def integration_at(self, row: int) -> Integration:
        """The integration shown at ``row`` (raises ``IndexError``)."""
        return self._rows[row].integration

    def row_of(self, name: str) -> int | None:
        """The row showing the integration called ``name``, if any."""
        return self._first_row(lambda row: row.integration.name == name)

    def cell(self, row: IntegrationRow, column: IntegrationColumn, role: int) -> Any:
        """What each cell shows, its tooltip and colour, and the integration under ``IntegrationRole``."""
        if role == self.IntegrationRole:
            return row.integration
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(row, column)
        return None

    @staticmethod
    def _display(row: IntegrationRow, column: IntegrationColumn) -> str:
        integration = row.integration
        match column:
            case IntegrationColumn.NAME:
                return integration.name
            case IntegrationColumn.CRM:
                return CRM_NAMES[integration.provider]
            case IntegrationColumn.DESCRIPTION:
                return integration.description
            case IntegrationColumn.BASE_URL:
                return integration.base_url or "vendor default"
            case IntegrationColumn.CREDENTIALS:
                if row.rotation_due and row.key_age is not None:
                    return f"{row.credentials.value} · rotate ({row.key_age.days} d old)"
                return row.credentials.value
            case IntegrationColumn.SYNC:
                return sync_text(integration.sync_config)

    @staticmethod
    def _tooltip(row: IntegrationRow, column: IntegrationColumn) -> str | None:
        integration = row.integration
        if column is IntegrationColumn.DESCRIPTION and integration.description:
            return integration.description
        if column is IntegrationColumn.BASE_URL:
            if integration.base_url:
                return integration.base_url
            return default_api_address(integration)
        if column is IntegrationColumn.CREDENTIALS:
            text = {
                CredentialsState.STORED: "The credentials are kept in the operating system's keyring.",
                CredentialsState.MISSING: "No credentials yet: use Edit… to add them.",
                CredentialsState.UNAVAILABLE: "The OS keyring is locked or missing, so the credentials cannot be read.",
            }[row.credentials]
            if row.key_age is not None:
                text += f" Keys {row.key_age.text()}."
            if row.rotation_due and row.key_age is not None:
                text += (f" Time to rotate them (reminder after {plural(row.key_age.rotate_after_days, 'day')}): "
                         "create new keys in the CRM, then Edit… and paste them; the sync history is kept.")
            return text
        return None

    @staticmethod
    def _foreground(row: IntegrationRow, column: IntegrationColumn) -> QBrush | None:
        if column is IntegrationColumn.CREDENTIALS and (row.credentials is not CredentialsState.STORED
                                                       or row.rotation_due):
            return QBrush(text_colour(_WARNING))
        if column is IntegrationColumn.BASE_URL and not row.integration.base_url:
            return QBrush(text_colour(_MUTED))
        return None
