"""The social fields a CRM lacks (Pipedrive's, until Create missing fields makes them) are logged once per
integration and change, not at every run: the Field Mapping panel names them all the while."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncConfig
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.store.models import FieldDirection, SyncRunStatus
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


def missing_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if "not synced until created" in r.getMessage()]
    caplog.clear()
    return lines


def test_the_fields_pipedrive_lacks_are_logged_once_per_change(
    tmp_path: Path, memory_keyring: MemoryKeyring | None, caplog: pytest.LogCaptureFixture
) -> None:
    assert memory_keyring is not None
    sandbox = PipedriveSandbox(SandboxConfig())

    def opened() -> Workspace:
        return Workspace.open(tmp_path / "data", vault=Vault(backend=memory_keyring), transport=sandbox.transport())

    def synced(workspace: Workspace) -> None:
        result = asyncio.run(workspace.sync.sync("Pipedrive"))
        assert result.status is SyncRunStatus.SUCCEEDED, result.failures

    workspace = opened()
    credentials = sandbox.credentials()
    domain = credentials.pop("companyDomain", None)
    workspace.integrations.add(Integration(provider=Provider.PIPEDRIVE, name="Pipedrive", base_url=sandbox.base_url,
                                           domain=domain, sync_config=SyncConfig(auto_sync=False)), credentials)
    workspace.contacts.save(Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace"))
    caplog.set_level(logging.WARNING, logger="crm_desktop.app.sync_service")
    try:
        synced(workspace)
        [first] = missing_lines(caplog)
        assert first.startswith("Pipedrive has no contact field ") and "twitter_username" in first, first
        synced(workspace)
        assert missing_lines(caplog) == [], "logged again at the next run, nothing having changed"
    finally:
        workspace.close()

    # A cron `sync --due` is a process of its own: it remembers as well.
    workspace = opened()
    try:
        synced(workspace)
        assert missing_lines(caplog) == []
        # A mapping changed: the fields left out are told again, as they are now.
        integration = workspace.integrations.get("Pipedrive")
        twitter = next(m for m in workspace.sync.mappings(integration, RecordObject.CONTACT)
                       if "twitter" in m.crm_field.lower() and m.pushes)
        workspace.sync.change_mapping(integration, RecordObject.CONTACT, twitter.local_field,
                                      direction=FieldDirection.OFF)
        synced(workspace)
        [again] = missing_lines(caplog)
        assert again.startswith("Pipedrive has no contact field ") and "twitter_username" not in again, again
        synced(workspace)
        assert missing_lines(caplog) == []
    finally:
        workspace.close()
