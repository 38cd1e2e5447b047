"""Testing a connection and signing in to Salesforce from the Integrations panel, against in-process sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.ui.integrations_panel import IntegrationsPanel
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring
from tests.ui.conftest import HubSpotBench, unfinished_tasks


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def make_panel(qtbot: QtBot, workspace: Workspace) -> IntegrationsPanel:
    panel = IntegrationsPanel(
        workspace.integrations, workspace.vault.availability, crm=workspace.crm, tasks=BackgroundTasks()
    )
    qtbot.addWidget(panel)
    panel.resize(1000, 680)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def select(panel: IntegrationsPanel, name: str) -> None:
    row = panel.model.row_of(name)
    assert row is not None
    panel.table.selectRow(row)


@pytest.fixture
def hubspot_panel(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> IntegrationsPanel:
    return make_panel(qtbot, hubspot.workspace)


def test_test_connection_shows_the_account_user_scopes_and_quota(
    hubspot_panel: IntegrationsPanel, hubspot: HubSpotBench, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = hubspot_panel
    select(panel, "hubspot-marketing")
    keyring_asked: list[str] = []
    service = hubspot.workspace.integrations
    has_credentials = service.has_credentials
    monkeypatch.setattr(service, "has_credentials", lambda i: keyring_asked.append(i.name) or has_credentials(i))
    assert panel.test_button.isVisible() and panel.test_button.isEnabled()
    assert not panel.sign_in_button.isVisible(), "only Salesforce signs in with the browser"
    assert panel.details.values["Scopes"].text() == "—", "none known before a test"
    click(panel.test_button)
    assert not panel.test_button.isEnabled(), "disabled while the test runs"
    assert "Testing the connection to “hubspot-marketing”" in panel.connection.result.text()
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)

    text = panel.connection.result.text()
    assert text.startswith("Connected to HubSpot account ")
    assert " as marketing@crm-desktop-sandbox.example." in text
    assert "crm.objects.contacts.write" in text
    assert "calls left of 250,000" in text
    assert panel.connection.result.property("tone") == "ok"
    # Seen in the demo: the test kept the scopes with the integration, but the details still said "—".
    assert "crm.objects.contacts.write" in panel.details.values["Scopes"].text()
    assert keyring_asked == [], "a test changes no keys: the keyring is not asked again on the GUI thread"
    assert panel.selected_integration() is not None and panel.selected_integration().name == "hubspot-marketing"
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


def revoked_token_tested(panel: IntegrationsPanel, qtbot: QtBot, hubspot: HubSpotBench) -> str:
    """Add "hubspot-revoked" with a token HubSpot refuses, press Test connection; the outcome shown."""
    hubspot.add_integration("hubspot-revoked", token="pat-na1-00000000-0000-0000-0000-000000000000")
    panel.reload(select="hubspot-revoked")
    click(panel.test_button)
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    return panel.connection.result.text()


def test_a_refused_token_is_a_sentence_and_the_button_comes_back(
    hubspot_panel: IntegrationsPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel = hubspot_panel
    text = revoked_token_tested(panel, qtbot, hubspot)
    assert text.startswith("The connection test failed: ") and text.endswith(".")
    assert "pat-na1" not in text
    assert panel.connection.result.property("tone") == "error"
    # Each integration keeps its own outcome.
    select(panel, "hubspot-marketing")
    assert not panel.connection.result.isVisible()
    select(panel, "hubspot-revoked")
    assert panel.connection.result.text() == text


def test_new_credentials_or_a_new_integration_never_show_an_old_test_outcome(
    hubspot_panel: IntegrationsPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel = hubspot_panel
    assert revoked_token_tested(panel, qtbot, hubspot).startswith("The connection test failed: ")

    # The marketer pastes the right token. Seen: the panel went on saying the test failed, for a token no longer
    # stored, until the next test.
    QTest.keyClick(panel.table, Qt.Key.Key_Return)
    dialog = panel.dialog
    assert dialog is not None and dialog.windowTitle() == "Edit integration"
    token = dialog.credential_edits[Provider.HUBSPOT]["token"]
    token.setFocus()
    QTest.keyClicks(token, hubspot.sandbox.credentials()["token"])
    click(dialog.button_box.button(QDialogButtonBox.StandardButton.Ok))
    qtbot.waitUntil(lambda: panel.dialog is None, timeout=5000)  # the new token is tested before it is saved
    assert panel.selected_integration() is not None and panel.selected_integration().name == "hubspot-revoked"
    # The outcome shown is the test of the token just saved.
    assert panel.connection.result.text().startswith("Connected to HubSpot account "), panel.connection.result.text()
    assert panel.connection.result.property("tone") == "ok"

    # A tested integration removed, and one added under its name with a wrong token. Seen: "Connected to HubSpot
    # account …" in green, the removed one's outcome.
    select(panel, "hubspot-marketing")
    click(panel.test_button)
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    assert panel.connection.result.text().startswith("Connected to HubSpot account ")
    panel.confirm_remove()
    box = panel.confirm_box
    assert box is not None
    click(box.button(QMessageBox.StandardButton.Yes))
    click(panel.add_button)
    dialog = panel.dialog
    assert dialog is not None
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(Provider.HUBSPOT))
    QTest.keyClicks(dialog.name_edit, "hubspot-marketing")
    QTest.keyClicks(dialog.base_url_edit, hubspot.sandbox.base_url)
    QTest.keyClicks(dialog.credential_edits[Provider.HUBSPOT]["token"], "pat-na1-11111111-1111-1111-1111-111111111111")
    click(dialog.button_box.button(QDialogButtonBox.StandardButton.Ok))
    assert panel.selected_integration() is not None and panel.selected_integration().name == "hubspot-marketing"
    assert not panel.connection.result.isVisible(), panel.connection.result.text()
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


# -- Salesforce sign-in -----------------------------------------------------------------------------------------


@pytest.fixture
def salesforce(
    tmp_path: Path, keyring_backend: MemoryKeyring, qtbot: QtBot, qasync_loop: qasync.QEventLoop
) -> Iterator[tuple[SalesforceSandbox, IntegrationsPanel, Workspace]]:
    sandbox = SalesforceSandbox(SandboxConfig())
    workspace = Workspace.open(tmp_path / "sf", vault=Vault(backend=keyring_backend), transport=sandbox.transport())
    workspace.integrations.add(
        Integration(provider=Provider.SALESFORCE, name="salesforce-prod", base_url=sandbox.base_url),
        {"clientId": sandbox.client_id, "clientSecret": sandbox.client_secret},
    )
    panel = make_panel(qtbot, workspace)
    panel.sign_in_port = 0  # any free loopback port
    try:
        yield sandbox, panel, workspace
    finally:
        workspace.close()


def test_signing_in_with_the_browser_stores_working_tokens(
    salesforce: tuple[SalesforceSandbox, IntegrationsPanel, Workspace], qtbot: QtBot
) -> None:
    sandbox, panel, workspace = salesforce
    opened: list[str] = []

    async def browser(authorize_url: str) -> None:
        """The user's browser: Salesforce's consent page redirects to the app's loopback listener."""
        opened.append(authorize_url)
        async with sandbox.client() as salesforce_site:
            consent = await salesforce_site.get(authorize_url, follow_redirects=False)
        assert consent.status_code == 302, consent.text
        async with httpx.AsyncClient(timeout=10.0) as loopback:
            landing = await loopback.get(consent.headers["location"])
        assert landing.status_code == 200

    panel.open_browser = browser
    select(panel, "salesforce-prod")
    assert panel.sign_in_button.isVisible() and panel.sign_in_button.isEnabled()
    assert panel.model.row(0).credentials.value == "stored in keyring"
    with qtbot.waitSignal(panel.integrations_changed, timeout=10_000):
        click(panel.sign_in_button)
    qtbot.waitUntil(panel.sign_in_button.isEnabled, timeout=5000)

    assert len(opened) == 1 and "code_challenge_method=S256" in opened[0]
    assert panel.connection.result.text() == "Signed in. The new tokens are stored in the OS keyring."
    assert not panel.connection.waiting.isVisible()
    stored = workspace.integrations.credentials(workspace.integrations.get("salesforce-prod"))
    assert stored is not None and stored.get("accessToken") and stored.get("instanceUrl")

    click(panel.test_button)
    qtbot.waitUntil(panel.test_button.isEnabled, timeout=5000)
    assert panel.connection.result.text().startswith("Connected to ")
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


def test_signing_in_without_a_client_id_says_where_to_type_it_in_the_app(
    salesforce: tuple[SalesforceSandbox, IntegrationsPanel, Workspace], qtbot: QtBot
) -> None:
    """A Salesforce integration added in the app with its credentials left blank (as the dialog allows): the sign-in
    said only "give one with --client-id", an option of a command the window has no place for."""
    sandbox, panel, workspace = salesforce
    workspace.integrations.add(Integration(provider=Provider.SALESFORCE, name="sf-new", base_url=sandbox.base_url),
                               None)
    opened: list[str] = []
    panel.open_browser = opened.append
    panel.reload(select="sf-new")
    task = panel.sign_in()
    assert task is not None
    qtbot.waitUntil(task.done, timeout=5000)

    text = panel.connection.result.text()
    assert panel.connection.result.property("tone") == "error" and opened == []
    assert "Client ID" in text and "Edit…" in text, text
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


def test_cancel_stops_waiting_for_the_browser(
    salesforce: tuple[SalesforceSandbox, IntegrationsPanel, Workspace], qtbot: QtBot
) -> None:
    _, panel, workspace = salesforce
    opened: list[str] = []
    panel.open_browser = opened.append  # the user never finishes in the browser
    select(panel, "salesforce-prod")
    task = panel.sign_in()
    assert task is not None
    qtbot.waitUntil(lambda: bool(opened), timeout=5000)
    assert panel.connection.waiting.isVisible()
    assert panel.connection.waiting_label.text().startswith("Waiting for the browser…")
    assert not panel.sign_in_button.isEnabled()

    click(panel.connection.cancel_button)
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.cancelled()
    assert not panel.connection.waiting.isVisible()
    assert panel.sign_in_button.isEnabled()
    assert panel.connection.result.text() == "Sign-in cancelled; the stored credentials are unchanged."
    stored = workspace.integrations.credentials(workspace.integrations.get("salesforce-prod"))
    assert stored is not None and "accessToken" not in stored
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)
