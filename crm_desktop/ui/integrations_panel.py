"""The Integrations panel: the table of CRM connections with Add, Edit and Remove, and the selected one's details."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QItemSelection, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.crm_actions import ConnectionInfo, CrmActions
from crm_desktop.app.errors import NotFoundError, SyncAlreadyRunning, VaultError
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.text import plural
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.ui.integration_dialog import IntegrationDialog
from crm_desktop.ui.integrations_model import (
    CRM_NAMES,
    CredentialsState,
    IntegrationColumn,
    IntegrationRow,
    IntegrationsTableModel,
    default_api_address,
    interval_text,
    sync_text,
)
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import (
    AsksFirst,
    PanelHeading,
    bring_into_view,
    hold_while_open,
    record_table,
    refit_on_new_look,
    row_keys,
    scrolling_page,
    selected_row,
    set_tone,
    value_rows,
)
from crm_desktop.ui.wording import connection_sentence, error_sentence

__all__ = ["IntegrationDetails", "IntegrationDialog", "IntegrationsPanel", "IntegrationsTableModel"]

logger = logging.getLogger(__name__)

KeyringAvailability = Callable[[], tuple[bool, str]]
#: Opens the sign-in page in the user's browser (the system browser by default; tests pass a stand-in).
BrowserOpener = Callable[[str], Awaitable[Any] | Any]

#: The loopback port of the Salesforce sign-in redirect: the connected app's callback is http://localhost:1717/OauthRedirect.
SIGN_IN_PORT = 1717


def open_in_system_browser(url: str) -> None:
    """Open ``url`` in the user's default browser, the way the desktop does.

    Raises:
        OSError: when no browser could be started.
    """
    if not QDesktopServices.openUrl(QUrl(url)):
        raise OSError("no web browser could be opened; open the sign-in page by hand or set a default browser")


class ConnectionStatus(QWidget):
    """The outcome of the last connection test or sign-in of the selected integration, and sign-in progress.

    Attributes:
        result: the sentence saying who the credentials are, or what went wrong.
        busy_bar: the busy indicator while waiting for the browser.
        waiting_label: what the app waits for.
        cancel_button: stops waiting for the browser.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = QLabel()
        self.result.setObjectName("connectionResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.hide()
        self.waiting = QWidget()
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setFixedWidth(120)
        self.waiting_label = QLabel()
        self.waiting_label.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        waiting_layout = QHBoxLayout(self.waiting)
        waiting_layout.setContentsMargins(0, 0, 0, 0)
        waiting_layout.addWidget(self.busy_bar)
        waiting_layout.addWidget(self.waiting_label, 1)
        waiting_layout.addWidget(self.cancel_button)
        self.waiting.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.waiting)
        layout.addWidget(self.result)

    def show_result(self, text: str, *, error: bool) -> None:
        """Show a test's or sign-in's outcome (an error in red)."""
        self.result.setText(text)
        set_tone(self.result, "error" if error else "ok")
        self.result.show()
        bring_into_view(self.result)

    def show_progress(self, text: str) -> None:
        """Show a neutral note, e.g. while a test runs."""
        self.result.setText(text)
        set_tone(self.result, "info")
        self.result.show()

    def clear(self) -> None:
        """Show nothing."""
        self.result.clear()
        self.result.hide()

    def show_waiting(self, text: str) -> None:
        """Show the busy bar, ``text`` and Cancel."""
        self.waiting_label.setText(text)
        self.waiting.show()

    def hide_waiting(self) -> None:
        """Hide the busy bar and Cancel."""
        self.waiting.hide()


class IntegrationDetails(QWidget):
    """The selected integration in full, or a hint when nothing is selected.

    Attributes:
        values: the value label of each shown attribute, by its caption.
    """

    CAPTIONS = ("CRM", "Description", "Base URL", "Company domain", "Scopes", "Sync", "Credentials", "Keys")

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
        self.values = value_rows(form, self.CAPTIONS)
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
            "Sync": sync_text(config) + ("" if config.auto_sync else
                                         f" (auto-sync off; {interval_text(config.sync_interval)} when on)"),
            "Credentials": {
                CredentialsState.STORED: "stored in the OS keyring",
                CredentialsState.MISSING: "missing: use Edit… to add them",
                CredentialsState.UNAVAILABLE: "cannot be read: the OS keyring is locked or missing",
            }[row.credentials],
        }
        age = row.key_age
        texts["Keys"] = "—" if age is None else age.text()[0].upper() + age.text()[1:]
        if row.rotation_due and age is not None:
            texts["Keys"] += (f" — time to rotate them (reminder after {plural(age.rotate_after_days, 'day')}): "
                              "create new keys in the CRM, then Edit… and paste them")
        for caption, text in texts.items():
            self.values[caption].setText(text)
        keys = self.values["Keys"]
        if keys.property("rotate") != row.rotation_due:
            keys.setProperty("rotate", row.rotation_due)
            keys.style().unpolish(keys)
            keys.style().polish(keys)
        # Only Pipedrive addresses a company by its domain.
        self._form.setRowVisible(
            self.values["Company domain"], integration.provider is Provider.PIPEDRIVE or bool(integration.domain)
        )
        self._pages.setCurrentIndex(1)

    @property
    def showing_integration(self) -> bool:
        """Whether an integration (rather than the hint) is shown."""
        return self._pages.currentIndex() == 1


class IntegrationsPanel(QWidget, AsksFirst):
    """Lists the workspace's CRM connections and adds, edits and removes them.

    With ``crm`` given, the selected integration's connection can be tested, and a Salesforce integration can
    be signed in through the system browser; both run as tasks on the app's loop.

    Attributes:
        model: the table model.
        table: the table view.
        keys: Enter edits the selected integration, Delete removes it (after asking).
        add_button, edit_button, remove_button: the actions.
        test_button: tests the selected integration's connection.
        sign_in_button: signs the selected Salesforce integration in with the browser.
        connection: the test's or sign-in's outcome, and the wait for the browser.
        details: the selected integration in full.
        keyring_warning: shown when the OS keyring cannot store secrets.
        dialog: the add/edit dialog while it is open.
        confirm_box: the removal confirmation while it is open.
        error_box: the last error message box shown.
        open_browser: opens the sign-in page (the system browser unless replaced).
        sign_in_port: the loopback port the sign-in redirect comes back to.

    Signals:
        status_message(str): a short note for the status bar ("Added HubSpot integration ...").
        integrations_changed(): after an integration was added, edited or removed.
    """

    status_message = Signal(str)
    integrations_changed = Signal()
    #: The keyring check's answer, from its own thread: (can store secrets, the sentence saying so).
    _keyring_answered = Signal(bool, str)

    EMPTY_HINT = "No integrations yet. Click Add… to connect HubSpot, Pipedrive or Salesforce."
    NO_SELECTION_HINT = "Select an integration to see its details."

    def __init__(
        self,
        service: IntegrationService,
        keyring_availability: KeyringAvailability | None = None,
        parent: QWidget | None = None,
        *,
        crm: CrmActions | None = None,
        tasks: BackgroundTasks | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._keyring_availability = keyring_availability
        #: Whether the keyring was checked once (its backends are loaded: checking again is quick).
        self._keyring_known = False
        self._keyring_checking = False
        self._keyring_answered.connect(self._keyring_answer)
        self._crm = crm
        self._tasks = tasks if tasks is not None else BackgroundTasks()
        self._testing: set[str] = set()
        self._sign_in: tuple[str, asyncio.Task[None]] | None = None
        #: The last test or sign-in outcome per integration name: (sentence, is_error).
        self._outcomes: dict[str, tuple[str, bool]] = {}
        self.open_browser: BrowserOpener = open_in_system_browser
        self.sign_in_port = SIGN_IN_PORT
        self.dialog: IntegrationDialog | None = None
        self.error_box: QMessageBox | None = None

        heading = PanelHeading(
            "Integrations",
            "Connections to your CRMs. Credentials are kept in the operating system's keyring, never in the database.",
        )
        self.keyring_warning = QLabel()
        self.keyring_warning.setObjectName("keyringWarning")
        self.keyring_warning.setWordWrap(True)
        self.keyring_warning.hide()
        self.rotation_warning = QLabel()
        self.rotation_warning.setObjectName("rotationWarning")
        self.rotation_warning.setWordWrap(True)
        self.rotation_warning.hide()

        self.add_button = QPushButton("Add…")
        self.add_button.setProperty("primary", True)
        self.edit_button = QPushButton("Edit…")
        self.remove_button = QPushButton("Remove")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip("Ask the CRM who these credentials are, what they may do and the API budget left.")
        self.sign_in_button = QPushButton("Sign in with browser…")
        self.sign_in_button.setToolTip(
            "Sign in to Salesforce in your web browser; the new tokens go to the OS keyring."
        )
        self.test_button.setVisible(crm is not None)
        self.sign_in_button.setVisible(False)

        self.model = IntegrationsTableModel(service, self)
        self.table = record_table(self.model, "Integrations")
        header = self.table.horizontalHeader()
        # The description takes whatever room the fitted columns leave; its full text is in the tooltip.
        header.setSectionResizeMode(IntegrationColumn.DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(60)

        details_box = QGroupBox("Details")
        # The details never squeeze below what they need (the table gives way instead).
        details_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.details = IntegrationDetails()
        self.details.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.connection = ConnectionStatus()
        details_layout = QVBoxLayout(details_box)
        connection_buttons = QHBoxLayout()
        connection_buttons.addWidget(self.test_button)
        connection_buttons.addWidget(self.sign_in_button)
        connection_buttons.addStretch(1)
        details_layout.addWidget(self.details)
        details_layout.addLayout(connection_buttons)
        details_layout.addWidget(self.connection)

        layout = scrolling_page(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(self.keyring_warning)
        layout.addWidget(self.rotation_warning)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(details_box)

        self.add_button.clicked.connect(self.open_add_dialog)
        self.edit_button.clicked.connect(self.open_edit_dialog)
        self.remove_button.clicked.connect(self.confirm_remove)
        self.table.doubleClicked.connect(self.open_edit_dialog)
        self.keys = row_keys(self.table, on_open=lambda _row: self.open_edit_dialog(),
                             on_delete=lambda _row: self.confirm_remove(), say=self.status_message.emit)
        self.test_button.clicked.connect(self.test_connection)
        self.sign_in_button.clicked.connect(self.sign_in)
        self.connection.cancel_button.clicked.connect(self.cancel_sign_in)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        refit_on_new_look(self.table, self._fit_columns)
        self.reload()

    # -- state

    def reload(self, select: str | None = None) -> None:
        """Re-read integrations and the keyring's state; keep (or move) the selection."""
        keep = select or (current.name if (current := self.selected_integration()) else None)
        self._update_keyring_warning()
        self.model.refresh()
        self._update_rotation_warning()
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
        if self._keyring_known:
            self._show_keyring_warning(*self._ask_keyring())
        elif not self._keyring_checking:
            # The first check loads every keyring backend (0.1-0.2 s here; on Linux one runs ldconfig): on a
            # thread of its own, so that the window paints first. Its answer comes back as a queued signal.
            self._keyring_checking = True
            threading.Thread(target=self._check_keyring, name="keyring check", daemon=True).start()

    def _ask_keyring(self) -> tuple[bool, str]:
        assert self._keyring_availability is not None
        try:
            return self._keyring_availability()
        except Exception as exc:  # a broken backend says so in the panel, as an unusable keyring
            return False, f"the keyring could not be checked ({type(exc).__name__}: {exc})"

    def _check_keyring(self) -> None:
        """On the keyring check's thread."""
        ok, message = self._ask_keyring()
        try:
            self._keyring_answered.emit(ok, message)
        except RuntimeError:  # the panel was closed meanwhile
            logger.debug("keyring check answered after the Integrations panel closed")

    def _keyring_answer(self, ok: bool, message: str) -> None:
        self._keyring_known, self._keyring_checking = True, False
        self._show_keyring_warning(ok, message)

    def _show_keyring_warning(self, ok: bool, message: str) -> None:
        self.keyring_warning.setText("Credentials cannot be saved: " + message)
        self.keyring_warning.setVisible(not ok)

    def _update_rotation_warning(self) -> None:
        due = [self.model.row(number) for number in range(self.model.rowCount())]
        due = [row for row in due if row.rotation_due and row.key_age is not None]
        if not due:
            self.rotation_warning.hide()
            return
        names = ", ".join(f"“{row.integration.name}” ({plural(row.key_age.days, 'day')} old)"
                          for row in due if row.key_age)
        period = due[0].key_age.rotate_after_days if due[0].key_age else 0
        self.rotation_warning.setText(
            f"Time to rotate keys (reminder after {plural(period, 'day')}): {names}. Create new keys in the CRM, then "
            "Edit… and paste them; links, runs and mappings are kept."
        )
        self.rotation_warning.show()

    def selected_row(self) -> int | None:
        """The selected table row, if any."""
        return selected_row(self.table)

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
        self._show_connection_state()

    # -- connection test and sign-in

    def _show_connection_state(self) -> None:
        """Fit the test and sign-in buttons, and the last outcome, to the selected integration."""
        integration = self.selected_integration()
        name = integration.name if integration else None
        has_crm = self._crm is not None
        self.test_button.setEnabled(has_crm and name is not None and name not in self._testing)
        is_salesforce = integration is not None and integration.provider is Provider.SALESFORCE
        self.sign_in_button.setVisible(has_crm and is_salesforce)
        self.sign_in_button.setEnabled(has_crm and is_salesforce and self._sign_in is None)
        signing_in = self._sign_in is not None and self._sign_in[0] == name
        if not signing_in:
            self.connection.hide_waiting()
        else:
            self.connection.show_waiting(self.WAITING_FOR_BROWSER)
        if name in self._testing:
            self.connection.show_progress(f"Testing the connection to “{name}”…")
        elif name is not None and name in self._outcomes:
            text, error = self._outcomes[name]
            self.connection.show_result(text, error=error)
        else:
            self.connection.clear()

    def test_connection(self) -> asyncio.Task[None] | None:
        """Test the selected integration's connection; the button stays disabled until the answer is shown."""
        integration = self.selected_integration()
        if integration is None or self._crm is None or integration.name in self._testing:
            return None
        name = integration.name
        self._testing.add(name)
        self._show_connection_state()
        return self._tasks.start(self._test(name), name=f"test connection of {name}")

    async def _test(self, name: str) -> None:
        assert self._crm is not None
        try:
            info = await self._crm.test_connection(name)
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self._outcomes[name] = (error_sentence("The connection test", exc), True)
            logger.info("connection test of %s failed: %s", name, type(exc).__name__)
        else:
            self._outcomes[name] = (connection_sentence(info), False)
            self.status_message.emit(f"“{name}” is connected")
            # The test kept the scopes the CRM reported: the details show them.
            if self.model.reread(name):
                self._selection_changed(QItemSelection(), QItemSelection())
        finally:
            self._testing.discard(name)
            self._show_connection_state()

    WAITING_FOR_BROWSER = "Waiting for the browser… Finish signing in to Salesforce there, then come back."

    def sign_in(self) -> asyncio.Task[None] | None:
        """Sign the selected Salesforce integration in with the system browser (PKCE); Cancel stops waiting."""
        integration = self.selected_integration()
        if integration is None or self._crm is None or self._sign_in is not None:
            return None
        if integration.provider is not Provider.SALESFORCE:
            return None
        name = integration.name
        task = self._tasks.start(self._signing_in(name), name=f"sign in to {name}")
        self._sign_in = (name, task)
        self._outcomes.pop(name, None)
        self._show_connection_state()
        return task

    async def _signing_in(self, name: str) -> None:
        assert self._crm is not None
        try:
            await self._crm.sign_in(name, open_browser=self.open_browser, port=self.sign_in_port)
        except asyncio.CancelledError:
            self._outcomes[name] = ("Sign-in cancelled; the stored credentials are unchanged.", True)
            raise
        except Exception as exc:  # every failure becomes a sentence in the panel, never a crash
            self._outcomes[name] = (error_sentence("Sign-in", exc), True)
            logger.info("sign-in to %s failed: %s", name, type(exc).__name__)
        else:
            self._outcomes[name] = ("Signed in. The new tokens are stored in the OS keyring.", False)
            self.status_message.emit(f"Signed in to Salesforce integration “{name}”")
            self.reload()
            self.integrations_changed.emit()
        finally:
            self._sign_in = None
            self._show_connection_state()

    def cancel_sign_in(self) -> bool:
        """Stop waiting for the browser; return whether a sign-in was running."""
        if self._sign_in is None:
            return False
        _, task = self._sign_in
        return task.cancel()

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
        dialog = IntegrationDialog(self._service, integration, self, crm=self._crm, tasks=self._tasks)
        dialog.saved.connect(lambda saved: self._saved(saved, added=integration is None, was=integration,
                                                       tested=dialog.connection))
        hold_while_open(self, "dialog", dialog)
        dialog.open()
        return dialog

    def _saved(self, integration: Integration, added: bool, was: Integration | None = None,
               tested: ConnectionInfo | None = None) -> None:
        # A test's or sign-in's outcome spoke of the connection as it was (its credentials, URL, domain): it is not
        # shown for what was just saved. Nor is a removed integration's for one added under its name.
        self._outcomes.pop(integration.name, None)
        if was is not None:
            self._outcomes.pop(was.name, None)
        if tested is not None:  # the edit's new keys were tested before they were saved: that test is this one's
            self._outcomes[integration.name] = (connection_sentence(tested), False)
        self.reload(select=integration.name)
        verb = "Added" if added else "Saved"
        self.status_message.emit(f"{verb} {CRM_NAMES[integration.provider]} integration “{integration.name}”"
                                 + (" (connection tested)" if tested is not None else ""))
        self.integrations_changed.emit()

    # -- remove

    def confirm_remove(self) -> QMessageBox | None:
        """Ask before removing the selected integration (window-modal, returns at once)."""
        integration = self.selected_integration()
        if integration is None:
            return None
        return self.ask_first(
            "Remove integration", f"Remove the {CRM_NAMES[integration.provider]} integration “{integration.name}”?",
            "Remove", lambda: self.remove(integration.name),
            detail="Its credentials are deleted from the OS keyring and its sync data from this computer. "
            "Records in the CRM itself are not touched.",
        )

    def remove(self, name: str) -> bool:
        """Remove an integration with its keyring entry; show why when that fails."""
        try:
            removed = self._service.remove(name)
        except (VaultError, NotFoundError, SyncAlreadyRunning) as exc:
            self._show_error("Could not remove the integration", str(exc))
            self.reload()
            return False
        self._outcomes.pop(removed.name, None)
        self.reload()
        self.status_message.emit(f"Removed {CRM_NAMES[removed.provider]} integration “{removed.name}”")
        self.integrations_changed.emit()
        return True

    def _show_error(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.finished.connect(box.deleteLater)
        self.error_box = box
        box.open()
