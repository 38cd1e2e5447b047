"""Editing an integration's keys in the window: tested with the CRM before they replace the stored ones, against the
three sandbox CRMs served on loopback and the real Secret Service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Provider
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.ui.integration_dialog import IntegrationDialog
from crm_desktop.ui.integrations_panel import IntegrationsPanel
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.vault import Vault
from tests.support.served_crms import ServedCrms, served_crms
from tests.ui.conftest import click, drive, unfinished_tasks
from tests.vault.test_vault import secret_service_vault  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.secret_service, pytest.mark.loopback]

#: Per CRM: keys the CRM refuses, typed into the dialog's fields (Salesforce: a stale access token is renewed with
#: the refresh token, so both must be wrong), and how the dialog names them.
WRONG_KEYS: dict[Provider, tuple[dict[str, str], str]] = {
    Provider.HUBSPOT: ({"token": "pat-na1-00000000-0000-0000-0000-000000000000"}, "the new Private-app token"),
    Provider.PIPEDRIVE: ({"apiToken": "0" * 40}, "the new API token"),
    Provider.SALESFORCE: ({"accessToken": "00Dxx!wrong-access-token", "refreshToken": "5Aep-wrong-refresh-token"},
                          "the new Access token and Refresh token"),
}


@dataclass
class Desk:
    """A workspace on the real keyring with one integration per served sandbox, and its Integrations panel."""

    workspace: Workspace
    crms: ServedCrms
    panel: IntegrationsPanel

    def stored(self, provider: Provider) -> dict[str, Any] | None:
        integrations = self.workspace.integrations
        return integrations.credentials(integrations.get(provider.value))

    def edit(self, provider: Provider, keys: dict[str, str]) -> IntegrationDialog:
        """Open Edit… on the provider's integration, type ``keys`` and press Save changes (it returns at once)."""
        row = self.panel.model.row_of(provider.value)
        assert row is not None
        self.panel.table.selectRow(row)
        click(self.panel.edit_button)
        dialog = self.panel.dialog
        assert dialog is not None and dialog.windowTitle() == "Edit integration"
        for key, text in keys.items():
            edit = dialog.credential_edits[provider][key]
            edit.clear()
            QTest.keyClicks(edit, text)
        click(dialog.button_box.button(QDialogButtonBox.StandardButton.Ok))
        return dialog


def question(dialog: IntegrationDialog) -> QMessageBox | None:
    """The question the dialog shows, if any."""
    return next((box for box in dialog.findChildren(QMessageBox) if box.isVisible()), None)


@pytest.fixture
def desk(tmp_path: Path, secret_service_vault: Vault, qtbot: QtBot,  # noqa: F811
         qasync_loop: qasync.QEventLoop) -> Iterator[Desk]:
    vault = Vault(backend=secret_service_vault.backend, service=f"crm-desktop-test-{uuid.uuid4().hex[:8]}")
    workspace = Workspace.open(tmp_path / "data", vault=vault)
    try:
        with served_crms() as crms:
            crms.connect(workspace)
            panel = IntegrationsPanel(workspace.integrations, workspace.vault.availability, crm=workspace.crm,
                                      tasks=BackgroundTasks())
            qtbot.addWidget(panel)
            panel.resize(1000, 680)
            panel.show()
            qtbot.waitExposed(panel)
            yield Desk(workspace, crms, panel)
            qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    finally:
        for integration in workspace.integrations.list():
            workspace.integrations.remove(integration.name)
        workspace.close()


@pytest.mark.parametrize("provider", [Provider.PIPEDRIVE, Provider.HUBSPOT, Provider.SALESFORCE],
                         ids=lambda p: p.value)
def test_keys_the_crm_refuses_never_replace_working_ones(desk: Desk, provider: Provider, qtbot: QtBot) -> None:
    """Seen: Edit… on a working Pipedrive integration, a wrong API token pasted, OK: "Saved", the working token gone
    from the keyring, and the next sync a 401."""
    working = desk.stored(provider)
    assert working is not None
    keys, words = WRONG_KEYS[provider]
    crm = provider.label

    dialog = desk.edit(provider, keys)
    qtbot.waitUntil(lambda: desk.panel.dialog is None or dialog.error_label.isVisible(), timeout=10_000)

    assert desk.panel.dialog is dialog and dialog.isVisible(), "the dialog stays open to correct the key"
    text = dialog.error_label.text()
    assert dialog.error_label.isVisible()
    several = " and " in words
    kept = "they were not saved, and the stored ones stay" if several else "it was not saved, and the stored one stays"
    assert text.startswith(f"{crm} refused {words}: {kept}.\n"), text
    said = text.split("\n")[1]
    assert "(401" in said or "invalid_grant" in said, "what the CRM said"
    assert said.count(crm) == 1, f"what the CRM said names it once: {said}"
    assert sorted(dialog.invalid_fields()) == sorted(keys), "the refused keys are marked"
    for typed in keys.values():
        assert typed not in text
    assert desk.stored(provider) == working, "the working keys are still in the keyring"
    info = drive(qtbot, desk.workspace.crm.test_connection(provider.value))
    assert info.account, "and they still work"

    # The marketer pastes the right key: tested, saved, and the test's outcome shown.
    right = getattr(desk.crms, provider.value).credentials()
    dialog = desk.edit(provider, {key: right[key] for key in keys})
    qtbot.waitUntil(lambda: desk.panel.dialog is None, timeout=10_000)
    stored = desk.stored(provider)
    assert stored is not None and all(stored[key] for key in keys)
    assert desk.panel.connection.result.text().startswith("Connected to "), desk.panel.connection.result.text()
    assert dialog.connection is not None


def test_keys_the_crm_cannot_be_asked_about_are_saved_only_when_the_marketer_says_so(
    desk: Desk, qtbot: QtBot
) -> None:
    desk.workspace.crm.options = AdapterOptions(max_attempts=1)
    integration = desk.workspace.integrations.get("pipedrive")
    working = desk.stored(Provider.PIPEDRIVE)
    offline = integration.model_copy(update={"base_url": "http://127.0.0.1:9"})  # the discard port: nobody answers
    desk.workspace.integrations.update(offline)
    desk.panel.reload()
    new_token = "1" * 40

    dialog = desk.edit(Provider.PIPEDRIVE, {"apiToken": new_token})
    qtbot.waitUntil(lambda: desk.panel.dialog is None or question(dialog) is not None, timeout=10_000)
    assert desk.stored(Provider.PIPEDRIVE) == working, "nothing is saved before the marketer answers"
    box = question(dialog)
    assert box is not None and box is dialog.save_untested_box
    assert box.text().startswith("Pipedrive could not be reached to test the new API token.\nPipedrive: network "), \
        box.text()
    keep_editing = next(b for b in box.buttons() if b.text() == "Keep editing")
    click(keep_editing)
    assert dialog.isVisible() and dialog.save_untested_box is None
    assert "the stored keys stay" in dialog.error_label.text()
    assert desk.stored(Provider.PIPEDRIVE) == working

    click(dialog.button_box.button(QDialogButtonBox.StandardButton.Ok))
    qtbot.waitUntil(lambda: question(dialog) is not None, timeout=10_000)
    box = dialog.save_untested_box
    assert box is not None
    save = next(b for b in box.buttons() if box.buttonRole(b) is QMessageBox.ButtonRole.AcceptRole)
    assert save.text() == "Save untested"
    click(save)
    qtbot.waitUntil(lambda: desk.panel.dialog is None, timeout=10_000)
    stored = desk.stored(Provider.PIPEDRIVE)
    assert stored is not None and stored["apiToken"] == new_token
    assert dialog.connection is None


def test_cancel_while_new_keys_are_tested_saves_nothing(desk: Desk, qtbot: QtBot) -> None:
    working = desk.stored(Provider.HUBSPOT)
    right = desk.crms.hubspot.credentials()["token"]
    dialog = desk.edit(Provider.HUBSPOT, {"token": right + "x"})
    assert dialog.saving and dialog.progress_label.text() == "Testing the new Private-app token with HubSpot…"
    assert not dialog.button_box.button(QDialogButtonBox.StandardButton.Ok).isEnabled(), "one save at a time"
    click(dialog.button_box.button(QDialogButtonBox.StandardButton.Cancel))
    assert desk.panel.dialog is None
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert desk.stored(Provider.HUBSPOT) == working
