"""Fixtures of the app services' tests: an empty workspace on a SQLite file of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncConfig
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.vault import Vault
from tests.support.cli_runs import workspace_at
from tests.support.memory_keyring import MemoryKeyring
from tests.support.served_crms import ServedCrms, served_crms

#: The local contacts of :func:`fans_on_three_crms`.
FANS = [f"fan{n}@example.com" for n in range(1, 4)]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """An empty workspace (a test module may give its own, wired to a sandbox)."""
    opened = Workspace.open(tmp_path / "D")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def fans_on_three_crms(tmp_path: Path) -> Iterator[tuple[ServedCrms, Workspace]]:
    """The three sandbox CRMs served on loopback, a workspace with an integration on each (named after its CRM),
    and three local contacts, :data:`FANS`, not yet synced."""
    with served_crms() as served, workspace_at(tmp_path / "workspace") as workspace:
        served.connect(workspace)
        workspace.contacts.save_many(Contact(email=email, first_name="Fan", last_name=f"Number {n}")
                                     for n, email in enumerate(FANS, start=1))
        yield served, workspace


def write(path: Path, text: str) -> Path:
    """``text`` written to ``path`` in UTF-8; the path."""
    path.write_text(text, encoding="utf-8")
    return path


def hubspot_workspace(directory: Path, keyring: MemoryKeyring, sandbox: HubSpotSandbox, name: str) -> Workspace:
    """A workspace in ``directory`` with one HubSpot integration ``name`` on the in-process ``sandbox`` (auto-sync
    off: the test syncs)."""
    opened = Workspace.open(directory, vault=Vault(backend=keyring), transport=sandbox.transport())
    opened.integrations.add(
        Integration(provider=Provider.HUBSPOT, name=name, base_url=sandbox.base_url,
                    sync_config=SyncConfig(auto_sync=False)),
        sandbox.credentials(),
    )
    return opened


@pytest.fixture
def hubspot_sandbox() -> HubSpotSandbox:
    """An in-process HubSpot sandbox (no HTTP server: the workspace's adapters talk to it through its transport)."""
    return HubSpotSandbox(SandboxConfig())


@pytest.fixture
def hubspot_marketing(
    tmp_path: Path, memory_keyring: MemoryKeyring | None, hubspot_sandbox: HubSpotSandbox
) -> Iterator[Workspace]:
    """A workspace with the integration "hubspot-marketing" on :func:`hubspot_sandbox` (:func:`hubspot_workspace`)."""
    assert memory_keyring is not None
    opened = hubspot_workspace(tmp_path / "data", memory_keyring, hubspot_sandbox, "hubspot-marketing")
    try:
        yield opened
    finally:
        opened.close()
