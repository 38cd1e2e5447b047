"""The integrations table model on its own, without a view: columns, cells, keyring states and Qt's model rules."""

from __future__ import annotations

import keyring.errors
import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.ui.integrations_model import (
    CredentialsState,
    IntegrationColumn,
    IntegrationsTableModel,
    default_api_address,
    interval_text,
    sync_text,
)
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring

DISPLAY = Qt.ItemDataRole.DisplayRole


def cell(model: IntegrationsTableModel, row: int, column: IntegrationColumn, role: int = DISPLAY) -> object:
    return model.data(model.index(row, column), role)


def add_two(workspace: Workspace) -> None:
    workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing", description="Main marketing portal"),
        {"token": "pat-na1-abcdefgh"},
    )
    workspace.integrations.add(
        Integration(
            provider=Provider.SALESFORCE,
            name="salesforce-sandbox",
            base_url="https://acme--full.sandbox.my.salesforce.com",
            sync_config=SyncConfig(direction=SyncDirection.PUSH, sync_interval=90, auto_sync=False),
        ),
        None,
    )


def test_an_empty_workspace_gives_an_empty_table_with_named_columns(workspace: Workspace) -> None:
    model = IntegrationsTableModel(workspace.integrations)
    model.refresh()
    assert model.rowCount() == 0
    assert model.columnCount() == 6
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Name", "CRM", "Description", "Base URL", "Credentials", "Sync"]
    assert model.headerData(0, Qt.Orientation.Vertical) is None


def test_rows_show_each_integration(workspace: Workspace) -> None:
    add_two(workspace)
    model = IntegrationsTableModel(workspace.integrations)
    model.refresh()
    assert model.rowCount() == 2
    assert [cell(model, 0, c) for c in IntegrationColumn] == [
        "hubspot-marketing",
        "HubSpot",
        "Main marketing portal",
        "vendor default",
        "stored in keyring",
        "Two-way, every 6 h",
    ]
    assert [cell(model, 1, c) for c in IntegrationColumn] == [
        "salesforce-sandbox",
        "Salesforce",
        "",
        "https://acme--full.sandbox.my.salesforce.com",
        "missing",
        "Push to CRM, when you start it",
    ]


def test_cells_carry_the_integration_tooltips_and_warning_colour(workspace: Workspace) -> None:
    add_two(workspace)
    model = IntegrationsTableModel(workspace.integrations)
    model.refresh()
    integration = cell(model, 1, IntegrationColumn.SYNC, IntegrationsTableModel.IntegrationRole)
    assert isinstance(integration, Integration) and integration.name == "salesforce-sandbox"
    assert cell(model, 0, IntegrationColumn.DESCRIPTION, Qt.ItemDataRole.ToolTipRole) == "Main marketing portal"
    assert cell(model, 0, IntegrationColumn.BASE_URL, Qt.ItemDataRole.ToolTipRole) == "https://api.hubapi.com"
    missing = cell(model, 1, IntegrationColumn.CREDENTIALS, Qt.ItemDataRole.ForegroundRole)
    assert isinstance(missing, QBrush) and missing.color().name() == "#b91c1c"
    assert cell(model, 0, IntegrationColumn.CREDENTIALS, Qt.ItemDataRole.ForegroundRole) is None
    assert "Edit" in str(cell(model, 1, IntegrationColumn.CREDENTIALS, Qt.ItemDataRole.ToolTipRole))
    assert model.data(QModelIndex()) is None
    assert model.data(model.index(5, 0)) is None


def test_lookup_by_name_and_row(workspace: Workspace) -> None:
    add_two(workspace)
    model = IntegrationsTableModel(workspace.integrations)
    model.refresh()
    assert model.row_of("salesforce-sandbox") == 1
    assert model.row_of("nope") is None
    assert model.integration_at(0).name == "hubspot-marketing"
    assert model.row(1).credentials is CredentialsState.MISSING
    with pytest.raises(IndexError):
        model.integration_at(2)


def test_refresh_follows_the_store_and_resets_the_model(qtbot: QtBot, workspace: Workspace) -> None:
    model = IntegrationsTableModel(workspace.integrations)
    model.refresh()
    add_two(workspace)
    assert model.rowCount() == 0, "the model shows what it last read"
    with qtbot.waitSignal(model.modelReset, timeout=1000):
        model.refresh()
    assert model.rowCount() == 2
    workspace.integrations.remove("hubspot-marketing")
    model.refresh()
    assert [model.integration_at(r).name for r in range(model.rowCount())] == ["salesforce-sandbox"]


class LockedKeyring(MemoryKeyring):
    """A keyring that exists but is locked."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")


def test_a_locked_keyring_shows_as_unavailable(workspace: Workspace) -> None:
    add_two(workspace)
    locked = Workspace.open(workspace.paths.data_dir, vault=Vault(backend=LockedKeyring()))
    try:
        model = IntegrationsTableModel(locked.integrations)
        model.refresh()
        assert cell(model, 0, IntegrationColumn.CREDENTIALS) == "keyring unavailable"
        assert "locked" in str(cell(model, 0, IntegrationColumn.CREDENTIALS, Qt.ItemDataRole.ToolTipRole))
    finally:
        locked.close()


def test_the_model_keeps_qts_model_rules(workspace: Workspace) -> None:
    add_two(workspace)
    model = IntegrationsTableModel(workspace.integrations)
    # Qt's own checker reports each broken rule as a Qt warning, which fails the test.
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    model.refresh()
    workspace.integrations.remove("salesforce-sandbox")
    model.refresh()
    assert model.rowCount() == 1
    del tester


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(5, "every 5 min"), (45, "every 45 min"), (60, "every hour"), (90, "every 90 min"), (360, "every 6 h"),
     (1440, "every day"), (2880, "every 2 days")],
)
def test_interval_text(minutes: int, text: str) -> None:
    assert interval_text(minutes) == text


def test_sync_text_names_direction_and_when() -> None:
    assert (
        sync_text(SyncConfig(direction=SyncDirection.PULL, sync_interval=30))
        == "Pull from CRM, every 30 min"
    )
    manual = SyncConfig(direction=SyncDirection.PULL, sync_interval=30, auto_sync=False)
    assert sync_text(manual) == "Pull from CRM, when you start it", "no interval that does not apply"


@pytest.mark.parametrize(
    ("integration", "address"),
    [
        (Integration(provider=Provider.PIPEDRIVE, name="p", domain="acme"), "https://acme.pipedrive.com"),
        (Integration(provider=Provider.PIPEDRIVE, name="p", domain="acme.pipedrive.com"), "https://acme.pipedrive.com"),
        (Integration(provider=Provider.HUBSPOT, name="h"), "https://api.hubapi.com"),
    ],
)
def test_default_api_address(integration: Integration, address: str) -> None:
    assert default_api_address(integration) == address
