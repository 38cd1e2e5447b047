"""The Integrations panel driven like a user: clicks on its buttons, typing into the dialog, answering the prompts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import keyring.backends.fail
import keyring.errors
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLineEdit, QMessageBox, QStyle, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncDirection
from crm_desktop.store.models import utcnow
from crm_desktop.ui.integrations_model import IntegrationColumn
from crm_desktop.ui.integrations_panel import IntegrationDialog, IntegrationsPanel
from crm_desktop.ui.theme import Theme, apply_theme
from crm_desktop.vault import SERVICE_NAME, Vault
from tests.support.memory_keyring import MemoryKeyring

HUBSPOT_TOKEN = "pat-na1-5f1e2d3c-4b5a"


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def type_into(edit: QLineEdit, text: str) -> None:
    edit.setFocus()
    QTest.keyClicks(edit, text)


def ok_button(dialog: IntegrationDialog) -> QWidget:
    return dialog.button_box.button(QDialogButtonBox.StandardButton.Ok)


def stored_credentials(backend: MemoryKeyring, integration: Integration) -> dict[str, str] | None:
    """The integration's entry read straight from the keyring, under its workspace's own service (the test's one)."""
    [*payloads] = (value for (service, account), value in backend.entries.items()
                   if service.startswith(f"{SERVICE_NAME}/") and account == f"integration-{integration.id}")
    assert len(payloads) <= 1, "one workspace, one entry"
    return json.loads(payloads[0]) if payloads else None


def table_names(panel: IntegrationsPanel) -> list[str]:
    return [panel.model.integration_at(row).name for row in range(panel.model.rowCount())]


def table_text(panel: IntegrationsPanel, name: str, column: IntegrationColumn) -> str:
    row = panel.model.row_of(name)
    assert row is not None, f"{name} is not in the table"
    return str(panel.model.index(row, column).data())


@pytest.fixture
def panel(qtbot: QtBot, workspace: Workspace) -> Iterator[IntegrationsPanel]:
    widget = IntegrationsPanel(workspace.integrations, workspace.vault.availability)
    qtbot.addWidget(widget)
    widget.resize(1000, 640)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget


def open_add_dialog(panel: IntegrationsPanel) -> IntegrationDialog:
    click(panel.add_button)
    dialog = panel.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Add integration"
    return dialog


def choose(dialog: IntegrationDialog, provider: Provider) -> None:
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(provider))


def add_hubspot(panel: IntegrationsPanel, qtbot: QtBot, name: str = "hubspot-marketing") -> Integration:
    dialog = open_add_dialog(panel)
    type_into(dialog.name_edit, name)
    type_into(dialog.description_edit, "Main marketing portal")
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], HUBSPOT_TOKEN)
    with qtbot.waitSignal(panel.integrations_changed, timeout=2000):
        click(ok_button(dialog))
    assert dialog.saved_integration is not None
    return dialog.saved_integration


# -- adding ------------------------------------------------------------------------------------


def test_an_empty_panel_invites_adding_and_disables_edit_and_remove(panel: IntegrationsPanel) -> None:
    assert panel.model.rowCount() == 0
    assert not panel.edit_button.isEnabled()
    assert not panel.remove_button.isEnabled()
    assert not panel.details.showing_integration
    assert not panel.keyring_warning.isVisible()


def test_adding_hubspot_through_the_dialog_lists_it_and_puts_the_token_in_the_vault(
    panel: IntegrationsPanel, qtbot: QtBot, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    dialog = open_add_dialog(panel)
    token_edit = dialog.credential_edits[Provider.HUBSPOT]["token"]
    assert token_edit.echoMode() is QLineEdit.EchoMode.Password
    type_into(dialog.name_edit, "hubspot-marketing")
    type_into(dialog.description_edit, "Main marketing portal")
    type_into(token_edit, HUBSPOT_TOKEN)
    dialog.direction_combo.setCurrentIndex(dialog.direction_combo.findData(SyncDirection.PUSH))
    dialog.interval_spin.clear()
    QTest.keyClicks(dialog.interval_spin, "120")
    with qtbot.waitSignal(panel.status_message, timeout=2000) as status:
        click(ok_button(dialog))

    assert not dialog.isVisible()
    assert panel.dialog is None
    assert status.args == ["Added HubSpot integration “hubspot-marketing”"]
    assert table_names(panel) == ["hubspot-marketing"]
    assert table_text(panel, "hubspot-marketing", IntegrationColumn.CREDENTIALS) == "stored in keyring"
    assert table_text(panel, "hubspot-marketing", IntegrationColumn.SYNC) == "Push to CRM, every 2 h"
    saved = workspace.integrations.get("hubspot-marketing")
    assert saved.description == "Main marketing portal"
    assert saved.sync_config.sync_interval == 120
    assert stored_credentials(keyring_backend, saved) == {"token": HUBSPOT_TOKEN}
    assert token_edit.text() == "", "typed secrets are cleared once saved"
    assert panel.selected_integration() == saved
    assert panel.details.values["Credentials"].text() == "stored in the OS keyring"
    assert panel.details.values["Sync"].text() == "Push to CRM, every 2 h", "the table's words, in the details too"


def test_an_http_base_url_is_refused_inline_naming_the_field_and_the_dialog_stays_open(
    panel: IntegrationsPanel, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    dialog = open_add_dialog(panel)
    type_into(dialog.name_edit, "hubspot-marketing")
    type_into(dialog.base_url_edit, "http://example.com")
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], HUBSPOT_TOKEN)
    click(ok_button(dialog))

    assert dialog.isVisible()
    assert panel.dialog is dialog
    assert dialog.error_label.isVisible()
    assert dialog.error_label.text().startswith("Base URL: plain http is allowed only to loopback")
    assert dialog.invalid_fields() == ["baseUrl"]
    assert dialog.focusWidget() is dialog.base_url_edit
    assert workspace.integrations.list() == []
    assert keyring_backend.entries == {}

    # Typing clears the mark; a loopback http URL (a local sandbox) is accepted.
    dialog.base_url_edit.clear()
    type_into(dialog.base_url_edit, "http://127.0.0.1:8765")
    assert not dialog.error_label.isVisible()
    assert dialog.invalid_fields() == []
    click(ok_button(dialog))
    assert not dialog.isVisible()
    assert table_text(panel, "hubspot-marketing", IntegrationColumn.BASE_URL) == "http://127.0.0.1:8765"


def test_a_short_token_is_refused_naming_the_field_without_echoing_it(
    panel: IntegrationsPanel, workspace: Workspace
) -> None:
    dialog = open_add_dialog(panel)
    type_into(dialog.name_edit, "hubspot-marketing")
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], "pat-x")
    click(ok_button(dialog))
    assert dialog.isVisible()
    assert dialog.error_label.text().startswith("Private-app token: ")
    assert "pat-x" not in dialog.error_label.text()
    assert dialog.invalid_fields() == ["token"]
    assert workspace.integrations.list() == []


def test_a_taken_name_is_refused_on_the_name_field(panel: IntegrationsPanel, qtbot: QtBot) -> None:
    add_hubspot(panel, qtbot)
    dialog = open_add_dialog(panel)
    type_into(dialog.name_edit, "hubspot-marketing")
    click(ok_button(dialog))
    assert dialog.isVisible()
    assert dialog.error_label.text() == "Name: another integration already uses this name"
    assert dialog.invalid_fields() == ["name"]
    assert table_names(panel) == ["hubspot-marketing"]


def test_enter_in_a_field_still_adds_after_tabbing_past_cancel(
    panel: IntegrationsPanel, qtbot: QtBot, workspace: Workspace
) -> None:
    """Tabbing round the form (over Add integration and Cancel, back to the fields) and pressing Enter adds: Cancel
    only stands in as the default while it has the focus, so what was typed is not thrown away."""
    dialog = open_add_dialog(panel)
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog)
    dialog.name_edit.setFocus()
    cancel = dialog.button_box.button(QDialogButtonBox.StandardButton.Cancel)
    for _ in range(30):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        if QApplication.focusWidget() is cancel:
            break
    assert QApplication.focusWidget() is cancel
    QTest.keyClick(cancel, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not cancel
    type_into(dialog.name_edit, "hubspot-marketing")
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], HUBSPOT_TOKEN)
    QTest.keyClick(dialog.name_edit, Qt.Key.Key_Return)

    assert not dialog.isVisible()
    assert dialog.saved_integration is not None, "Enter added the integration, it did not cancel"
    assert table_names(panel) == ["hubspot-marketing"]


def test_an_empty_name_is_refused(panel: IntegrationsPanel) -> None:
    dialog = open_add_dialog(panel)
    click(ok_button(dialog))
    assert dialog.isVisible()
    assert dialog.error_label.text() == "Name: must not be blank", "in plain words, not the validator's"
    assert dialog.invalid_fields() == ["name"]


def test_adding_without_secrets_leaves_the_credentials_missing(
    panel: IntegrationsPanel, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    dialog = open_add_dialog(panel)
    type_into(dialog.name_edit, "hubspot-later")
    click(ok_button(dialog))
    assert not dialog.isVisible()
    assert table_text(panel, "hubspot-later", IntegrationColumn.CREDENTIALS) == "missing"
    assert keyring_backend.entries == {}


def test_each_crm_shows_its_own_secret_fields(panel: IntegrationsPanel) -> None:
    dialog = open_add_dialog(panel)

    def visible_secrets() -> list[str]:
        return [key for key, edit in dialog.credential_edits[dialog.provider].items() if edit.isVisibleTo(dialog)] + [
            f"{other.value}:{key}"
            for other, edits in dialog.credential_edits.items()
            if other is not dialog.provider
            for key, edit in edits.items()
            if edit.isVisibleTo(dialog)
        ]

    assert visible_secrets() == ["token"]
    assert not dialog.domain_edit.isVisibleTo(dialog)
    token = dialog.credential_edits[Provider.HUBSPOT]["token"]
    hint = "pat-… from Settings > Integrations > Private apps"
    assert token.placeholderText() == hint and token.toolTip() == hint, "where to find it, still there once typed"
    dialog.show()
    shown_at = token.width() - 2 * token.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth) - 8
    assert token.fontMetrics().horizontalAdvance(hint) <= shown_at, "the placeholder is not cut"
    choose(dialog, Provider.PIPEDRIVE)
    assert visible_secrets() == ["apiToken"]
    assert dialog.domain_edit.isVisibleTo(dialog)
    choose(dialog, Provider.SALESFORCE)
    assert visible_secrets() == ["clientId", "clientSecret", "accessToken", "refreshToken", "instanceUrl"]
    echo = {key: edit.echoMode() for key, edit in dialog.credential_edits[Provider.SALESFORCE].items()}
    assert echo["clientSecret"] is QLineEdit.EchoMode.Password
    assert echo["accessToken"] is QLineEdit.EchoMode.Password
    assert echo["refreshToken"] is QLineEdit.EchoMode.Password
    assert echo["instanceUrl"] is QLineEdit.EchoMode.Normal
    assert not dialog.domain_edit.isVisibleTo(dialog)


def test_pipedrive_needs_a_company_domain(
    panel: IntegrationsPanel, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    dialog = open_add_dialog(panel)
    choose(dialog, Provider.PIPEDRIVE)
    type_into(dialog.name_edit, "pipedrive-sales")
    type_into(dialog.credential_edits[Provider.PIPEDRIVE]["apiToken"], "0123456789abcdef0123")
    click(ok_button(dialog))
    assert dialog.error_label.text().startswith("Company domain: ")
    assert dialog.invalid_fields() == ["domain"]

    type_into(dialog.domain_edit, "acme")
    click(ok_button(dialog))
    assert not dialog.isVisible()
    saved = workspace.integrations.get("pipedrive-sales")
    assert saved.domain == "acme"
    assert stored_credentials(keyring_backend, saved) == {"apiToken": "0123456789abcdef0123"}


def test_adding_salesforce_stores_every_credential(
    panel: IntegrationsPanel, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    dialog = open_add_dialog(panel)
    choose(dialog, Provider.SALESFORCE)
    type_into(dialog.name_edit, "salesforce-prod")
    type_into(dialog.base_url_edit, "https://acme.my.salesforce.com")
    secrets = {
        "clientId": "3MVG9-consumer-key",
        "clientSecret": "consumer-secret-1",
        "accessToken": "00Dxx!access-token",
        "refreshToken": "5Aep-refresh-token",
        "instanceUrl": "https://acme.my.salesforce.com",
    }
    for key, value in secrets.items():
        type_into(dialog.credential_edits[Provider.SALESFORCE][key], value)
    click(ok_button(dialog))
    assert not dialog.isVisible()
    saved = workspace.integrations.get("salesforce-prod")
    assert stored_credentials(keyring_backend, saved) == secrets


def test_a_bad_salesforce_instance_url_is_named(panel: IntegrationsPanel, workspace: Workspace) -> None:
    dialog = open_add_dialog(panel)
    choose(dialog, Provider.SALESFORCE)
    type_into(dialog.name_edit, "salesforce-prod")
    type_into(dialog.credential_edits[Provider.SALESFORCE]["clientId"], "3MVG9-consumer-key")
    type_into(dialog.credential_edits[Provider.SALESFORCE]["instanceUrl"], "http://acme.my.salesforce.com")
    click(ok_button(dialog))
    assert dialog.error_label.text().startswith("Instance URL: plain http is allowed only to loopback")
    assert dialog.invalid_fields() == ["instanceUrl"]
    assert workspace.integrations.list() == []


def test_cancel_forgets_typed_secrets_and_saves_nothing(panel: IntegrationsPanel, workspace: Workspace) -> None:
    dialog = open_add_dialog(panel)
    token_edit = dialog.credential_edits[Provider.HUBSPOT]["token"]
    type_into(dialog.name_edit, "hubspot-marketing")
    type_into(token_edit, HUBSPOT_TOKEN)
    click(dialog.button_box.button(QDialogButtonBox.StandardButton.Cancel))
    assert not dialog.isVisible()
    assert token_edit.text() == ""
    assert panel.dialog is None
    assert workspace.integrations.list() == []


# -- editing -----------------------------------------------------------------------------------


def test_editing_name_and_description_keeps_the_stored_secret(
    panel: IntegrationsPanel, qtbot: QtBot, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    added = add_hubspot(panel, qtbot)
    click(panel.edit_button)
    dialog = panel.dialog
    assert dialog is not None and dialog.windowTitle() == "Edit integration"
    assert not dialog.provider_combo.isEnabled()
    assert dialog.name_edit.text() == "hubspot-marketing"
    token_edit = dialog.credential_edits[Provider.HUBSPOT]["token"]
    assert token_edit.text() == "", "stored secrets are never shown"
    assert token_edit.placeholderText() == "blank keeps the stored value"

    dialog.name_edit.clear()
    type_into(dialog.name_edit, "hubspot-brand")
    dialog.description_edit.clear()
    type_into(dialog.description_edit, "Brand team portal")
    with qtbot.waitSignal(panel.status_message, timeout=2000) as status:
        click(ok_button(dialog))

    assert status.args == ["Saved HubSpot integration “hubspot-brand”"]
    assert table_names(panel) == ["hubspot-brand"]
    assert table_text(panel, "hubspot-brand", IntegrationColumn.DESCRIPTION) == "Brand team portal"
    assert table_text(panel, "hubspot-brand", IntegrationColumn.CREDENTIALS) == "stored in keyring"
    edited = workspace.integrations.get("hubspot-brand")
    assert edited.id == added.id
    assert stored_credentials(keyring_backend, edited) == {"token": HUBSPOT_TOKEN}


def test_editing_with_a_new_token_replaces_the_stored_one(
    panel: IntegrationsPanel, qtbot: QtBot, keyring_backend: MemoryKeyring
) -> None:
    added = add_hubspot(panel, qtbot)
    click(panel.edit_button)
    dialog = panel.dialog
    assert dialog is not None
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], "pat-na1-new-token-9999")
    click(ok_button(dialog))
    assert not dialog.isVisible()
    assert stored_credentials(keyring_backend, added) == {"token": "pat-na1-new-token-9999"}


def test_editing_one_salesforce_secret_keeps_the_others(
    panel: IntegrationsPanel, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    added = workspace.integrations.add(
        Integration(provider=Provider.SALESFORCE, name="salesforce-prod"),
        {"clientId": "3MVG9-consumer-key", "refreshToken": "5Aep-refresh-token"},
    )
    panel.reload(select="salesforce-prod")
    click(panel.edit_button)
    dialog = panel.dialog
    assert dialog is not None
    type_into(dialog.credential_edits[Provider.SALESFORCE]["clientSecret"], "consumer-secret-2")
    click(ok_button(dialog))
    assert not dialog.isVisible()
    assert stored_credentials(keyring_backend, added) == {
        "clientId": "3MVG9-consumer-key",
        "clientSecret": "consumer-secret-2",
        "refreshToken": "5Aep-refresh-token",
    }


def test_double_clicking_a_row_opens_the_editor(panel: IntegrationsPanel, qtbot: QtBot) -> None:
    add_hubspot(panel, qtbot)
    viewport = panel.table.viewport()
    position = panel.table.visualRect(panel.model.index(0, IntegrationColumn.NAME)).center()
    # A real double-click is a click followed by the double-click event on the same row.
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position)
    QTest.mouseDClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position)
    assert panel.dialog is not None
    assert panel.dialog.name_edit.text() == "hubspot-marketing"


# -- removing ----------------------------------------------------------------------------------


def confirm_box(panel: IntegrationsPanel) -> QMessageBox:
    click(panel.remove_button)
    box = panel.confirm_box
    assert box is not None and box.isVisible()
    return box


def test_removing_asks_first_then_deletes_the_integration_and_its_keyring_entry(
    panel: IntegrationsPanel, qtbot: QtBot, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    added = add_hubspot(panel, qtbot)
    assert stored_credentials(keyring_backend, added) is not None
    box = confirm_box(panel)
    assert "hubspot-marketing" in box.text()
    assert "keyring" in box.informativeText()
    with qtbot.waitSignal(panel.status_message, timeout=2000) as status:
        click(box.button(QMessageBox.StandardButton.Yes))
    assert status.args == ["Removed HubSpot integration “hubspot-marketing”"]
    assert table_names(panel) == []
    assert workspace.integrations.list() == []
    assert keyring_backend.entries == {}
    assert not panel.remove_button.isEnabled()
    assert not panel.details.showing_integration


def test_cancelling_the_removal_keeps_everything(
    panel: IntegrationsPanel, qtbot: QtBot, keyring_backend: MemoryKeyring
) -> None:
    added = add_hubspot(panel, qtbot)
    box = confirm_box(panel)
    click(box.button(QMessageBox.StandardButton.Cancel))
    assert table_names(panel) == ["hubspot-marketing"]
    assert stored_credentials(keyring_backend, added) == {"token": HUBSPOT_TOKEN}


class UndeletableKeyring(MemoryKeyring):
    """A keyring that refuses to delete."""

    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringError("refused")


def test_a_keyring_that_refuses_the_delete_keeps_the_integration_and_says_why(
    qtbot: QtBot, workspace: Workspace, keyring_backend: MemoryKeyring
) -> None:
    workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing"), {"token": HUBSPOT_TOKEN}
    )
    stubborn = UndeletableKeyring()
    stubborn.entries = dict(keyring_backend.entries)
    other = Workspace.open(workspace.paths.data_dir, vault=Vault(backend=stubborn))
    try:
        panel = IntegrationsPanel(other.integrations, other.vault.availability)
        qtbot.addWidget(panel)
        panel.show()
        box = confirm_box(panel)
        click(box.button(QMessageBox.StandardButton.Yes))
        assert table_names(panel) == ["hubspot-marketing"]
        assert panel.error_box is not None and panel.error_box.isVisible()
        assert "refused to delete" in panel.error_box.text()
    finally:
        other.close()


def test_a_missing_keyring_is_announced_from_a_check_off_the_gui_thread(qtbot: QtBot, workspace: Workspace) -> None:
    checked_on: list[threading.Thread] = []

    def no_keyring() -> tuple[bool, str]:
        checked_on.append(threading.current_thread())
        return False, "install gnome-keyring"

    panel = IntegrationsPanel(workspace.integrations, no_keyring)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(panel.keyring_warning.isVisible, timeout=5000)
    assert panel.keyring_warning.text() == "Credentials cannot be saved: install gnome-keyring"
    assert checked_on and threading.main_thread() not in checked_on  # the first check loads every backend
    panel.reload()  # once known, checked again where the panel is
    assert checked_on[-1] is threading.main_thread()


def test_a_keyring_that_raises_is_announced_not_a_crash(qtbot: QtBot, workspace: Workspace) -> None:
    def broken() -> tuple[bool, str]:
        raise keyring.errors.InitError("no D-Bus session")

    panel = IntegrationsPanel(workspace.integrations, broken)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(panel.keyring_warning.isVisible, timeout=5000)
    assert "the keyring could not be checked (InitError: no D-Bus session)" in panel.keyring_warning.text()
    panel.reload()  # and again on the GUI thread
    assert panel.keyring_warning.isVisible()


def test_without_a_usable_keyring_the_dialog_refuses_the_secret_and_adds_nothing(
    qtbot: QtBot, workspace: Workspace
) -> None:
    no_keyring = keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]
    keyless = Workspace.open(workspace.paths.data_dir, vault=Vault(backend=no_keyring))
    try:
        panel = IntegrationsPanel(keyless.integrations, keyless.vault.availability)
        qtbot.addWidget(panel)
        panel.show()
        qtbot.waitUntil(panel.keyring_warning.isVisible, timeout=5000)
        dialog = open_add_dialog(panel)
        type_into(dialog.name_edit, "hubspot-marketing")
        type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], HUBSPOT_TOKEN)
        click(ok_button(dialog))
        assert dialog.isVisible()
        assert "keyring" in dialog.error_label.text()
        assert HUBSPOT_TOKEN not in dialog.error_label.text()
        assert keyless.integrations.list() == []
    finally:
        keyless.close()


def test_old_keys_are_flagged_until_new_ones_are_pasted(
    panel: IntegrationsPanel, workspace: Workspace, qtbot: QtBot
) -> None:
    added = add_hubspot(panel, qtbot)
    assert added.id is not None
    assert table_text(panel, added.name, IntegrationColumn.CREDENTIALS) == "stored in keyring"
    assert panel.details.values["Keys"].text() == "Set today"
    assert panel.rotation_warning.isHidden()

    workspace.integrations._store.mark_keys_set(added.id, utcnow() - timedelta(days=120))
    panel.reload(select=added.name)
    assert table_text(panel, added.name, IntegrationColumn.CREDENTIALS) == "stored in keyring · rotate (120 d old)"
    row = panel.model.row_of(added.name)
    assert row is not None
    tooltip = str(panel.model.index(row, IntegrationColumn.CREDENTIALS).data(Qt.ItemDataRole.ToolTipRole))
    assert "set 120 days ago" in tooltip and "reminder after 90 days" in tooltip
    assert panel.details.values["Keys"].text().startswith("Set 120 days ago — time to rotate them")
    assert panel.details.values["Keys"].property("rotate") is True
    assert panel.rotation_warning.isVisible()
    assert "“hubspot-marketing” (120 days old)" in panel.rotation_warning.text()

    click(panel.edit_button)
    dialog = panel.dialog
    assert dialog is not None
    type_into(dialog.credential_edits[Provider.HUBSPOT]["token"], "pat-na1-rotated-token-7777")
    click(ok_button(dialog))
    assert not dialog.isVisible()
    assert table_text(panel, added.name, IntegrationColumn.CREDENTIALS) == "stored in keyring"
    assert panel.details.values["Keys"].text() == "Set today"
    assert panel.rotation_warning.isHidden()


def test_names_and_crms_still_fit_their_columns_after_the_theme_changes(
    qtbot: QtBot, qapp: QApplication, workspace: Workspace,
) -> None:
    for name, provider in (("hubspot-marketing", Provider.HUBSPOT), ("salesforce-prod", Provider.SALESFORCE)):
        workspace.integrations.add(Integration(name=name, provider=provider, base_url="http://127.0.0.1:1"), None)
    widget = IntegrationsPanel(workspace.integrations, workspace.vault.availability)
    qtbot.addWidget(widget)
    widget.resize(1240, 640)
    widget.show()
    qtbot.waitExposed(widget)
    try:
        apply_theme(qapp, Theme.DARK)  # the stylesheet's padding and fonts come after the columns were fitted
        qtbot.wait(10)
        for column in (IntegrationColumn.NAME, IntegrationColumn.CRM):
            needed = widget.table.sizeHintForColumn(column)
            assert widget.table.columnWidth(column) >= min(needed, widget.MAX_COLUMN_WIDTH), column
    finally:
        apply_theme(qapp, Theme.LIGHT)  # tables colour their text by the theme applied, for every later test
        qapp.setStyleSheet("")
        qapp.setPalette(qapp.style().standardPalette())
