"""The Integrations panel: the table of CRM connections, and the dialog that adds or edits one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.errors import (
    CredentialsError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    VaultError,
)
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.domain.credentials import validate_credentials
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.ui.widgets import PanelHeading

logger = logging.getLogger(__name__)

ModelIndex = QModelIndex | QPersistentModelIndex
KeyringAvailability = Callable[[], tuple[bool, str]]

#: How each CRM is named to the marketer.
CRM_NAMES: dict[Provider, str] = {
    Provider.HUBSPOT: "HubSpot",
    Provider.PIPEDRIVE: "Pipedrive",
    Provider.SALESFORCE: "Salesforce",
}

#: How each sync direction is named to the marketer.
DIRECTION_NAMES: dict[SyncDirection, str] = {
    SyncDirection.BIDIRECTIONAL: "Two-way",
    SyncDirection.PUSH: "Push to CRM",
    SyncDirection.PULL: "Pull from CRM",
}

#: Where each CRM's API lives when no base URL is set (shown as the base URL field's hint).
DEFAULT_BASE_URLS: dict[Provider, str] = {
    Provider.HUBSPOT: "default https://api.hubapi.com; set only for a test sandbox",
    Provider.PIPEDRIVE: "default https://<company domain>.pipedrive.com; set only for a test sandbox",
    Provider.SALESFORCE: "your My Domain, e.g. https://acme.my.salesforce.com, or a sandbox org",
}


def interval_text(minutes: int) -> str:
    """A sync interval as people say it: ``every 6 h``, ``every 1 d``, ``every 45 min``."""
    if minutes % 1440 == 0:
        return f"every {minutes // 1440} d"
    if minutes % 60 == 0:
        return f"every {minutes // 60} h"
    return f"every {minutes} min"


def sync_text(config: SyncConfig) -> str:
    """One line for an integration's sync settings, e.g. ``Two-way, every 6 h, auto-sync``."""
    mode = "auto-sync" if config.auto_sync else "manual only"
    return f"{DIRECTION_NAMES[config.direction]}, {interval_text(config.sync_interval)}, {mode}"


class CredentialsState(StrEnum):
    """Whether the OS keyring holds an integration's credentials."""

    STORED = "stored in keyring"
    MISSING = "missing"
    UNAVAILABLE = "keyring unavailable"


class IntegrationColumn(IntEnum):
    """The columns of the integrations table, in order."""

    NAME = 0
    CRM = 1
    DESCRIPTION = 2
    BASE_URL = 3
    CREDENTIALS = 4
    SYNC = 5

    @property
    def title(self) -> str:
        """The column's header."""
        return _COLUMN_TITLES[self]


_COLUMN_TITLES: dict[IntegrationColumn, str] = {
    IntegrationColumn.NAME: "Name",
    IntegrationColumn.CRM: "CRM",
    IntegrationColumn.DESCRIPTION: "Description",
    IntegrationColumn.BASE_URL: "Base URL",
    IntegrationColumn.CREDENTIALS: "Credentials",
    IntegrationColumn.SYNC: "Sync",
}

_MUTED = QColor("#64748b")
_WARNING = QColor("#b91c1c")


@dataclass(frozen=True)
class IntegrationRow:
    """One row of the table: an integration and what the keyring holds for it.

    Attributes:
        integration: the stored integration.
        credentials: whether its credentials are in the keyring.
    """

    integration: Integration
    credentials: CredentialsState


def credentials_state(service: IntegrationService, integration: Integration) -> CredentialsState:
    """Ask the keyring whether it holds the integration's credentials (a locked keyring counts as unavailable)."""
    try:
        return CredentialsState.STORED if service.has_credentials(integration) else CredentialsState.MISSING
    except VaultError:
        return CredentialsState.UNAVAILABLE


class IntegrationsTableModel(QAbstractTableModel):
    """The integrations of the workspace as a table with named columns (:class:`IntegrationColumn`).

    ``IntegrationRole`` on any cell gives the row's :class:`Integration`.
    """

    IntegrationRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, service: IntegrationService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = service
        self._rows: list[IntegrationRow] = []

    def refresh(self) -> None:
        """Reload every integration from the store and its credentials state from the keyring."""
        rows = [IntegrationRow(i, credentials_state(self._service, i)) for i in self._service.list()]
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt's own signature)
        """How many integrations (none under a valid parent: this is a flat table)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        """How many columns."""
        return 0 if parent.isValid() else len(IntegrationColumn)

    def row(self, row: int) -> IntegrationRow:
        """The row at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def integration_at(self, row: int) -> Integration:
        """The integration shown at ``row`` (raises ``IndexError``)."""
        return self._rows[row].integration

    def row_of(self, name: str) -> int | None:
        """The row showing the integration called ``name``, if any."""
        for number, row in enumerate(self._rows):
            if row.integration.name == name:
                return number
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        """Column titles across the top; nothing down the side."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if 0 <= section < len(IntegrationColumn):
                return IntegrationColumn(section).title
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """What each cell shows, its tooltip and colour, and the integration under ``IntegrationRole``."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = IntegrationColumn(index.column())
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
            if integration.provider is Provider.PIPEDRIVE and integration.domain:
                return f"https://{integration.domain}.pipedrive.com"
            return "the CRM's own API address"
        if column is IntegrationColumn.CREDENTIALS:
            return {
                CredentialsState.STORED: "The credentials are kept in the operating system's keyring.",
                CredentialsState.MISSING: "No credentials yet: use Edit… to add them.",
                CredentialsState.UNAVAILABLE: "The OS keyring is locked or missing, so the credentials cannot be read.",
            }[row.credentials]
        return None

    @staticmethod
    def _foreground(row: IntegrationRow, column: IntegrationColumn) -> QBrush | None:
        if column is IntegrationColumn.CREDENTIALS and row.credentials is not CredentialsState.STORED:
            return QBrush(_WARNING)
        if column is IntegrationColumn.BASE_URL and not row.integration.base_url:
            return QBrush(_MUTED)
        return None


# -- the add / edit dialog ----------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialField:
    """One credential a CRM needs, as its keyring key and its label.

    Attributes:
        key: the key in the credentials dict kept in the keyring (e.g. ``apiToken``).
        label: how the dialog names it.
        hint: the placeholder text.
        secret: whether typing is hidden (tokens and client secrets are; ids and URLs are not).
    """

    key: str
    label: str
    hint: str
    secret: bool = True


CREDENTIAL_FIELDS: dict[Provider, tuple[CredentialField, ...]] = {
    Provider.HUBSPOT: (CredentialField("token", "Private-app token", "pat-na1-… from Settings › Private apps"),),
    Provider.PIPEDRIVE: (CredentialField("apiToken", "API token", "from Personal preferences › API"),),
    Provider.SALESFORCE: (
        CredentialField("clientId", "Client ID", "the connected app's consumer key", secret=False),
        CredentialField("clientSecret", "Client secret", "the connected app's consumer secret"),
        CredentialField("accessToken", "Access token", "from a completed sign-in"),
        CredentialField("refreshToken", "Refresh token", "from a completed sign-in"),
        CredentialField("instanceUrl", "Instance URL", "https://acme.my.salesforce.com", secret=False),
    ),
}

#: How the dialog names the integration's own fields (keys are the wire names errors report).
FIELD_LABELS: dict[str, str] = {
    "provider": "CRM",
    "name": "Name",
    "description": "Description",
    "baseUrl": "Base URL",
    "domain": "Company domain",
    "syncConfig.direction": "Direction",
    "syncConfig.syncInterval": "Sync interval",
    "syncConfig.autoSync": "Auto-sync",
}


@dataclass(frozen=True)
class FormProblem:
    """One thing wrong in the dialog, for the inline error.

    Attributes:
        field: the wire name of the field (``baseUrl``, ``token``) or ``""`` for the whole form.
        label: how the dialog names that field.
        reason: what is wrong, in words the marketer can act on.
    """

    field: str
    label: str
    reason: str

    def __str__(self) -> str:
        return f"{self.label}: {self.reason}" if self.label else self.reason


class _FormRejected(Exception):
    """The form cannot be saved; carries the problems to show."""

    def __init__(self, problems: list[FormProblem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class IntegrationDialog(QDialog):
    """Adds an integration, or edits one; validates on OK and keeps the dialog open on an error.

    Secrets typed here go straight to :class:`IntegrationService` (and so to the OS keyring) and are cleared
    from the fields once saved. In edit mode a blank secret field keeps what the keyring already holds.

    Attributes:
        provider_combo, name_edit, description_edit, base_url_edit, domain_edit: the integration's fields.
        credential_edits: per CRM, the line edit of each credential by its key.
        direction_combo, interval_spin, auto_sync_check: the sync settings.
        error_label: the inline error, naming the field.
        button_box: OK (Add integration / Save changes) and Cancel.
        saved_integration: what was saved, once the dialog is accepted.

    Signals:
        saved(Integration): emitted after a successful add or update.
    """

    saved = Signal(object)

    def __init__(
        self,
        service: IntegrationService,
        integration: Integration | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._original = integration
        self.saved_integration: Integration | None = None
        self._has_stored_credentials = (
            integration is not None and credentials_state(service, integration) is CredentialsState.STORED
        )
        self.setWindowTitle("Edit integration" if integration else "Add integration")
        self.setMinimumWidth(560)

        self.provider_combo = QComboBox()
        for provider, crm_name in CRM_NAMES.items():
            self.provider_combo.addItem(crm_name, provider)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. hubspot-marketing")
        self.description_edit = QLineEdit()
        self.description_edit.setPlaceholderText("what this connection is for (optional)")
        self.base_url_edit = QLineEdit()
        self.domain_edit = QLineEdit()
        self.domain_edit.setPlaceholderText("the 'acme' of acme.pipedrive.com")

        self._general_form = QFormLayout()
        self._general_form.addRow("CRM", self.provider_combo)
        self._general_form.addRow("Name", self.name_edit)
        self._general_form.addRow("Description", self.description_edit)
        self._general_form.addRow("Base URL", self.base_url_edit)
        self._general_form.addRow("Company domain", self.domain_edit)

        credentials_box = QGroupBox("Credentials")
        self._credentials_hint = QLabel()
        self._credentials_hint.setObjectName("dialogHint")
        self._credentials_hint.setWordWrap(True)
        self._credentials_form = QFormLayout()
        self._credentials_form.addRow(self._credentials_hint)
        self.credential_edits: dict[Provider, dict[str, QLineEdit]] = {}
        for provider, fields in CREDENTIAL_FIELDS.items():
            edits: dict[str, QLineEdit] = {}
            for field in fields:
                edit = QLineEdit()
                edit.setObjectName(f"{provider.value}-{field.key}")
                if field.secret:
                    edit.setEchoMode(QLineEdit.EchoMode.Password)
                edit.textEdited.connect(self._clear_marks)
                edits[field.key] = edit
                self._credentials_form.addRow(field.label, edit)
            self.credential_edits[provider] = edits
        credentials_box.setLayout(self._credentials_form)

        sync_box = QGroupBox("Sync")
        self.direction_combo = QComboBox()
        for direction, direction_name in DIRECTION_NAMES.items():
            self.direction_combo.addItem(direction_name, direction)
        self.interval_spin = QSpinBox()
        self.interval_spin.setRange(5, 10080)
        self.interval_spin.setSingleStep(15)
        self.interval_spin.setSuffix(" min")
        self.auto_sync_check = QCheckBox("Sync automatically at this interval")
        sync_form = QFormLayout(sync_box)
        sync_form.addRow("Direction", self.direction_combo)
        sync_form.addRow("Interval", self.interval_spin)
        sync_form.addRow("", self.auto_sync_check)

        self.error_label = QLabel()
        self.error_label.setObjectName("dialogError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        self.button_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = self.button_box.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Save changes" if integration else "Add integration")
        ok.setDefault(True)
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        layout.setSpacing(10)
        layout.addLayout(self._general_form)
        layout.addWidget(credentials_box)
        layout.addWidget(sync_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.button_box)

        for edit in (self.name_edit, self.description_edit, self.base_url_edit, self.domain_edit):
            edit.textEdited.connect(self._clear_marks)
        self.provider_combo.currentIndexChanged.connect(self._show_provider_fields)
        self._fill(integration)
        self._show_provider_fields()

    # -- filling and switching

    def _fill(self, integration: Integration | None) -> None:
        config = integration.sync_config if integration else SyncConfig()
        if integration is not None:
            self.provider_combo.setCurrentIndex(self.provider_combo.findData(integration.provider))
            # Credentials belong to one CRM account: changing the CRM means a new integration.
            self.provider_combo.setEnabled(False)
            self.name_edit.setText(integration.name)
            self.description_edit.setText(integration.description)
            self.base_url_edit.setText(integration.base_url or "")
            self.domain_edit.setText(integration.domain or "")
        self.direction_combo.setCurrentIndex(self.direction_combo.findData(config.direction))
        self.interval_spin.setValue(config.sync_interval)
        self.auto_sync_check.setChecked(config.auto_sync)

    @property
    def provider(self) -> Provider:
        """The CRM chosen in the dialog."""
        return Provider(self.provider_combo.currentData())

    def _show_provider_fields(self) -> None:
        provider = self.provider
        for other, edits in self.credential_edits.items():
            for edit in edits.values():
                self._credentials_form.setRowVisible(edit, other is provider)
        self._general_form.setRowVisible(self.domain_edit, provider is Provider.PIPEDRIVE)
        self.base_url_edit.setPlaceholderText(DEFAULT_BASE_URLS[provider])
        keep = self._original is not None and self._has_stored_credentials
        for field in CREDENTIAL_FIELDS[provider]:
            edit = self.credential_edits[provider][field.key]
            edit.setPlaceholderText("blank keeps the stored value" if keep else field.hint)
        if self._original is None:
            hint = "Kept in the operating system's keyring, never in the database. You can leave them blank and add them later."
        elif keep:
            hint = "Stored in the OS keyring. Leave a field blank to keep its stored value; type to replace it."
        else:
            hint = "None stored yet: they go to the operating system's keyring, never to the database."
        self._credentials_hint.setText(hint)
        self._clear_marks()
        self.adjustSize()

    # -- reading the form

    def _sync_config(self) -> SyncConfig:
        base = self._original.sync_config if self._original else SyncConfig()
        settings = base.model_dump(by_alias=False) | {
            "direction": SyncDirection(self.direction_combo.currentData()),
            "sync_interval": self.interval_spin.value(),
            "auto_sync": self.auto_sync_check.isChecked(),
        }
        try:
            return SyncConfig(**settings)
        except InvalidRecordError as exc:
            problems = [
                FormProblem(f"syncConfig.{p.field}", FIELD_LABELS.get(f"syncConfig.{p.field}", p.field), p.reason)
                for p in exc.problems
            ]
            raise _FormRejected(problems) from None

    def _integration(self) -> Integration:
        provider = self.provider
        domain = self.domain_edit.text().strip() if provider is Provider.PIPEDRIVE else ""
        base_url = self.base_url_edit.text().strip()
        if provider is Provider.PIPEDRIVE and not domain and not base_url:
            raise _FormRejected(
                [FormProblem("domain", FIELD_LABELS["domain"], "Pipedrive needs your company domain (or a base URL)")]
            )
        fields: dict[str, Any] = {
            "provider": provider,
            "name": self.name_edit.text(),
            "description": self.description_edit.text(),
            "base_url": base_url or None,
            "domain": domain or None,
            "sync_config": self._sync_config(),
        }
        if self._original is not None:
            fields |= {"id": self._original.id, "scopes": list(self._original.scopes)}
        try:
            return Integration(**fields)
        except InvalidRecordError as exc:
            raise _FormRejected(
                [FormProblem(p.field, FIELD_LABELS.get(p.field, p.field), p.reason) for p in exc.problems]
            ) from None

    def _typed_credentials(self) -> dict[str, str]:
        edits = self.credential_edits[self.provider]
        return {key: edit.text().strip() for key, edit in edits.items() if edit.text().strip()}

    def _credentials(self, integration: Integration) -> dict[str, Any] | None:
        typed = self._typed_credentials()
        if not typed:
            return None  # adding without credentials, or keeping the stored ones
        credentials: dict[str, Any] = typed
        if self._original is not None and self._has_stored_credentials:
            try:
                stored = self._service.credentials(self._original) or {}
            except VaultError as exc:
                raise _FormRejected([FormProblem("", "", str(exc))]) from None
            credentials = stored | typed
        try:
            return validate_credentials(integration.provider, credentials)
        except CredentialsError as exc:
            raise _FormRejected(self._credential_problems(integration.provider, exc)) from None

    @staticmethod
    def _credential_problems(provider: Provider, error: CredentialsError) -> list[FormProblem]:
        labels = {field.key: field.label for field in CREDENTIAL_FIELDS[provider]}
        _, _, details = str(error).partition(" are invalid: ")
        problems = []
        for part in details.split("; ") if details else []:
            key, _, reason = part.partition(": ")
            if key in labels:
                problems.append(FormProblem(key, labels[key], reason))
        return problems or [FormProblem("", "", str(error))]

    # -- saving

    def accept(self) -> None:
        """Validate and save; on a problem show it inline, name the field, and stay open."""
        self._clear_marks()
        try:
            integration = self._integration()
            credentials = self._credentials(integration)
            if self._original is None:
                saved = self._service.add(integration, credentials)
            else:
                saved = self._service.update(integration, credentials)
        except _FormRejected as rejected:
            self._show_problems(rejected.problems)
            return
        except DuplicateNameError:
            self._show_problems([FormProblem("name", "Name", "another integration already uses this name")])
            return
        except CredentialsError as exc:
            self._show_problems(self._credential_problems(self.provider, exc))
            return
        except (VaultError, NotFoundError) as exc:
            self._show_problems([FormProblem("", "", str(exc))])
            return
        self._clear_secrets()
        self.saved_integration = saved
        logger.info("integration %s saved from the dialog", saved.name)
        self.saved.emit(saved)
        super().accept()

    def reject(self) -> None:
        """Close without saving, forgetting any typed secret."""
        self._clear_secrets()
        super().reject()

    def _clear_secrets(self) -> None:
        for edits in self.credential_edits.values():
            for edit in edits.values():
                edit.clear()

    # -- showing problems

    def field_widget(self, field: str) -> QWidget | None:
        """The widget that edits a wire field (``baseUrl``, ``token``, ``syncConfig.syncInterval``)."""
        widgets: dict[str, QWidget] = {
            "provider": self.provider_combo,
            "name": self.name_edit,
            "description": self.description_edit,
            "baseUrl": self.base_url_edit,
            "domain": self.domain_edit,
            "syncConfig.direction": self.direction_combo,
            "syncConfig.syncInterval": self.interval_spin,
            "syncConfig.autoSync": self.auto_sync_check,
        }
        return widgets.get(field) or self.credential_edits[self.provider].get(field)

    def _show_problems(self, problems: list[FormProblem]) -> None:
        self.error_label.setText("\n".join(map(str, problems)))
        self.error_label.show()
        first: QWidget | None = None
        for problem in problems:
            widget = self.field_widget(problem.field)
            if widget is None:
                continue
            self._mark(widget, True)
            first = first or widget
        if first is not None:
            first.setFocus()
        logger.info("integration dialog refused: %s", "; ".join(p.field or "(form)" for p in problems))

    def _clear_marks(self) -> None:
        self.error_label.hide()
        self.error_label.clear()
        for widget in self.findChildren(QWidget):
            if widget.property("invalid"):
                self._mark(widget, False)

    @staticmethod
    def _mark(widget: QWidget, invalid: bool) -> None:
        widget.setProperty("invalid", invalid)
        # Re-polish so the stylesheet's [invalid="true"] rule applies at once.
        widget.style().unpolish(widget)
        widget.style().polish(widget)

    def invalid_fields(self) -> list[str]:
        """The wire names of the fields marked invalid right now."""
        names = [*FIELD_LABELS, *(f.key for f in CREDENTIAL_FIELDS[self.provider])]
        return [name for name in names if (w := self.field_widget(name)) is not None and w.property("invalid")]


# -- the panel ----------------------------------------------------------------------------------


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
        form = QFormLayout(form_page)
        form.setContentsMargins(0, 0, 0, 0)
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
            "Base URL": integration.base_url or "the CRM's own API address",
            "Company domain": integration.domain or "—",
            "Scopes": ", ".join(integration.scopes) or "—",
            "Sync": f"{DIRECTION_NAMES[config.direction]} {interval_text(config.sync_interval)}"
            + (", automatically" if config.auto_sync else ", only when you start it"),
            "Credentials": {
                CredentialsState.STORED: "stored in the OS keyring",
                CredentialsState.MISSING: "missing: use Edit… to add them",
                CredentialsState.UNAVAILABLE: "cannot be read: the OS keyring is locked or missing",
            }[row.credentials],
        }
        for caption, text in texts.items():
            self.values[caption].setText(text)
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
        for column in IntegrationColumn:
            mode = QHeaderView.ResizeMode.Stretch if column is IntegrationColumn.DESCRIPTION else (
                QHeaderView.ResizeMode.ResizeToContents
            )
            header.setSectionResizeMode(column, mode)

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
        layout.addWidget(self.table, 3)
        layout.addWidget(details_box, 2)

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
        self._selection_changed(QItemSelection(), QItemSelection())

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
