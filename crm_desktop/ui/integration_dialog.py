"""The dialog that adds or edits an integration, validating inline and sending secrets only to the vault."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.app.crm_actions import ConnectionInfo, CrmActions, IntegrationUpdate, crm_unreachable
from crm_desktop.app.errors import (
    AuthError,
    CredentialsError,
    DuplicateNameError,
    InvalidRecordError,
    NotFoundError,
    VaultError,
)
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.record_files import plain_reason
from crm_desktop.domain.credentials import validate_credentials
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.ui.integrations_model import CRM_NAMES, DIRECTION_NAMES, CredentialsState, credentials_state
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.wording import error_sentence

logger = logging.getLogger(__name__)

#: The base URL field's hint and tooltip per CRM: where its API lives when the field is left blank.
BASE_URL_HINTS: dict[Provider, tuple[str, str]] = {
    Provider.HUBSPOT: (
        "optional; default https://api.hubapi.com",
        "Leave blank for HubSpot's own API. Set it only to point at a test sandbox.",
    ),
    Provider.PIPEDRIVE: (
        "optional; default https://<domain>.pipedrive.com",
        "Leave blank to use your company domain. Set it only to point at a test sandbox.",
    ),
    Provider.SALESFORCE: (
        "optional; e.g. https://acme.my.salesforce.com",
        "Your My Domain login URL, or a sandbox org's. Leave blank for https://login.salesforce.com.",
    ),
}


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
    Provider.HUBSPOT: (
        CredentialField("token", "Private-app token", "pat-… from Settings > Integrations > Private apps"),
    ),
    Provider.PIPEDRIVE: (CredentialField("apiToken", "API token", "from Personal preferences > API"),),
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

    With ``crm`` given, an edit is saved as ``crm-desktop integration update`` saves it (:meth:`CrmActions.save_edit`):
    new keys, or the stored ones at a new address, are tested against the CRM first, as a task on the app's loop;
    keys the CRM refuses are not saved (the stored ones stay) and the dialog says which and why, staying open; when
    the CRM cannot be reached, it asks whether to save them untested.

    Attributes:
        provider_combo, name_edit, description_edit, base_url_edit, domain_edit: the integration's fields.
        credential_edits: per CRM, the line edit of each credential by its key.
        direction_combo, interval_spin, auto_sync_check: the sync settings.
        error_label: the inline error, naming the field.
        progress_label: says that the new keys are being tested with the CRM.
        button_box: OK (Add integration / Save changes) and Cancel.
        saved_integration: what was saved, once the dialog is accepted.
        connection: what the CRM said when an edit's keys were tested (``None``: not tested).
        save_untested_box: the question whether to save keys the CRM could not be asked about, while it is open.

    Signals:
        saved(Integration): emitted after a successful add or update.
    """

    saved = Signal(object)

    def __init__(
        self,
        service: IntegrationService,
        integration: Integration | None = None,
        parent: QWidget | None = None,
        *,
        crm: CrmActions | None = None,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._original = integration
        self._crm = crm
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._saving: asyncio.Task[None] | None = None
        self.saved_integration: Integration | None = None
        self.connection: ConnectionInfo | None = None
        self.save_untested_box: QMessageBox | None = None
        self._has_stored_credentials = (
            integration is not None and credentials_state(service, integration) is CredentialsState.STORED
        )
        self.setWindowTitle("Edit integration" if integration else "Add integration")

        self.provider_combo = QComboBox()
        for provider, crm_name in CRM_NAMES.items():
            self.provider_combo.addItem(crm_name, provider)
        self.name_edit = QLineEdit()
        # The layout then keeps the dialog wide enough for the hints, and tall enough for every row it shows.
        self.name_edit.setMinimumWidth(440)  # the credentials' hints, e.g. where HubSpot shows the token, fit
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
        self.progress_label = QLabel()
        self.progress_label.setObjectName("dialogHint")
        self.progress_label.setWordWrap(True)
        self.progress_label.hide()

        self.button_box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        ok = self.button_box.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Save changes" if integration else "Add integration")
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)

        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 14)
        layout.setSpacing(10)
        layout.addLayout(self._general_form)
        layout.addWidget(credentials_box)
        layout.addWidget(sync_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.button_box)
        # Enter saves. Set once the button is in the dialog: set before, the dialog never learns it is its default,
        # so Cancel, once tabbed over, stays the default and Enter in a field would throw the form away.
        ok.setDefault(True)

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
            self.provider_combo.setToolTip("An integration stays with its CRM; add a new integration for another one.")
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
        self.name_edit.setPlaceholderText(f"e.g. {provider.value}-marketing")
        hint, explanation = BASE_URL_HINTS[provider]
        self.base_url_edit.setPlaceholderText(hint)
        self.base_url_edit.setToolTip(explanation)
        keep = self._original is not None and self._has_stored_credentials
        for field in CREDENTIAL_FIELDS[provider]:
            edit = self.credential_edits[provider][field.key]
            edit.setPlaceholderText("blank keeps the stored value" if keep else field.hint)
            edit.setToolTip(field.hint)  # where to find it, after typing has hidden the placeholder (or cut it)
        if self._original is None:
            hint = (
                "Kept in the operating system's keyring, never in the database. "
                "You can leave them blank and add them later."
            )
        elif keep:
            hint = "Stored in the OS keyring. Leave a field blank to keep its stored value; type to replace it."
        else:
            hint = "None stored yet: they go to the operating system's keyring, never to the database."
        self._credentials_hint.setText(hint)
        self._clear_marks()
        self._fit_to_content()

    def _fit_to_content(self) -> None:
        # Rows shown or hidden on a dialog not yet on screen only post a layout request; settle the inner
        # layouts now so the size the dialog opens (or grows) with already fits every row.
        self._credentials_form.activate()
        self._general_form.activate()
        self._layout.activate()
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
                FormProblem(f"syncConfig.{p.field}", FIELD_LABELS.get(f"syncConfig.{p.field}", p.field),
                            plain_reason(p.reason))
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
                [FormProblem(p.field, FIELD_LABELS.get(p.field, p.field), plain_reason(p.reason)) for p in exc.problems]
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
        if self.saving:
            return
        self._clear_marks()
        try:
            integration = self._integration()
            credentials = self._credentials(integration)
            if self._original is not None and self._crm is not None:
                self._start_saving(self._original, integration, credentials, untested=False)
                return
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
        self._close_saved(saved)

    def _close_saved(self, saved: Integration) -> None:
        self._clear_secrets()
        self.saved_integration = saved
        logger.info("integration %s saved from the dialog", saved.name)
        self.saved.emit(saved)
        super().accept()

    @property
    def saving(self) -> bool:
        """Whether an edit is being tested against the CRM and saved."""
        return self._saving is not None and not self._saving.done()

    def _start_saving(
        self, current: Integration, edited: Integration, credentials: dict[str, Any] | None, *, untested: bool
    ) -> None:
        what = self._keys_words(current, edited)
        if untested:
            self.progress_label.setText("Saving…")
        else:
            self.progress_label.setText(f"Testing {what} with {CRM_NAMES[edited.provider]}…")
        self.progress_label.show()
        self.button_box.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        self._saving = self._tasks.start(
            self._save_edit(current, edited, credentials, untested=untested), name=f"save integration {current.name}"
        )

    def _keys_words(self, current: Integration, edited: Integration) -> str:
        """``the new API token``, ``the new Access token and Refresh token``, ``the stored keys at the new Base URL``
        (what an edit's test is about)."""
        labels = {field.key: field.label for field in CREDENTIAL_FIELDS[edited.provider]}
        typed = [labels[key] for key in self._typed_credentials()]
        if typed:
            return "the new " + (", ".join(typed[:-1]) + " and " + typed[-1] if len(typed) > 1 else typed[0])
        moved = [FIELD_LABELS[name] for name in self._keys_fields(current, edited)]
        return f"the stored keys at the new {' and '.join(moved)}"

    def _keys_fields(self, current: Integration, edited: Integration) -> list[str]:
        """The wire names of the fields whose change is being tested."""
        typed = list(self._typed_credentials())
        if typed:
            return typed
        return [name for name, changed in (("baseUrl", edited.base_url != current.base_url),
                                           ("domain", edited.domain != current.domain)) if changed]

    async def _save_edit(
        self, current: Integration, edited: Integration, credentials: dict[str, Any] | None, *, untested: bool
    ) -> None:
        assert self._crm is not None
        crm = CRM_NAMES[edited.provider]
        what = self._keys_words(current, edited)
        several = " and " in what or what.startswith("the stored keys")
        try:
            update: IntegrationUpdate = await self._crm.save_edit(current, edited, credentials, untested=untested)
        except AuthError as exc:
            if credentials is None:
                kept = "nothing was saved"
            else:
                kept = f"{'they were' if several else 'it was'} not saved, and the stored "
                kept += "ones stay" if several else "one stays"
            self._show_refusal(
                f"{crm} refused {what}: {kept}.\n{str(exc).rstrip('.')}.\n"
                f"Correct {'them' if several else 'it'} and save again, or Cancel.",
                self._keys_fields(current, edited),
            )
            logger.info("edit of integration %s refused by the CRM", current.name)
            return
        except Exception as exc:  # every failure is a sentence in the dialog, which stays open, never a crash
            if crm_unreachable(exc):
                self._ask_save_untested(current, edited, credentials, crm, what, exc)
                return
            problems = self._save_problems(exc)
            if problems is None:
                problems = [FormProblem("", "", error_sentence(f"Testing {what} with {crm}", exc)
                                        + " Nothing was saved.")]
            self._show_problems(problems)
            return
        finally:
            self._saving = None
            if isValid(self):  # a Cancel while testing closes (and deletes) the dialog
                self.progress_label.hide()
                self.button_box.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self.connection = update.connection
        self._close_saved(update.integration)

    def _save_problems(self, exc: BaseException) -> list[FormProblem] | None:
        """The form problems an edit's save was refused for, or ``None`` for a CRM's answer."""
        if isinstance(exc, DuplicateNameError):
            return [FormProblem("name", "Name", "another integration already uses this name")]
        if isinstance(exc, CredentialsError):
            return self._credential_problems(self.provider, exc)
        if isinstance(exc, VaultError | NotFoundError):
            return [FormProblem("", "", str(exc))]
        return None

    def _show_refusal(self, text: str, fields: list[str]) -> None:
        self._show_problems([FormProblem("", "", text)])
        first: QWidget | None = None
        for field in fields:
            widget = self.field_widget(field)
            if widget is not None:
                self._mark(widget, True)
                first = first or widget
        if first is not None:
            first.setFocus()

    def _ask_save_untested(
        self, current: Integration, edited: Integration, credentials: dict[str, Any] | None, crm: str, what: str,
        error: BaseException,
    ) -> None:
        replaces = " It replaces the stored keys;" if credentials is not None else ""
        box = QMessageBox(
            QMessageBox.Icon.Question, "Save untested?",
            f"{crm} could not be reached to test {what}.\n{str(error).rstrip('.')}.\n\n"
            f"Save anyway, untested?{replaces} Test connection shows whether it works once {crm} can be reached.",
            QMessageBox.StandardButton.NoButton, self,
        )
        save = box.addButton("Save untested", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep editing", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(save)

        def answered(_result: int) -> None:
            self.save_untested_box = None
            box.deleteLater()
            if box.clickedButton() is save:
                self._start_saving(current, edited, credentials, untested=True)
            else:
                self._show_problems([FormProblem(
                    "", "", f"Not saved: {crm} could not be reached to test {what}; the stored keys stay."
                )])

        box.finished.connect(answered)
        self.save_untested_box = box
        box.open()

    def reject(self) -> None:
        """Close without saving, forgetting any typed secret (a test of new keys still running is stopped)."""
        if self._saving is not None:
            self._saving.cancel()
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
        self._fit_to_content()
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
