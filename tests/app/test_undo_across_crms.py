"""Undoing one integration's run while the same change went on to the other CRMs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sync.actions import UndoRefused
from tests.app.conftest import FANS
from tests.support.served_crms import ServedCrms

pytestmark = pytest.mark.loopback


async def _crm_first_name(workspace: Workspace, name: str, email: str) -> Any:
    integration = workspace.integrations.get(name)
    adapter = workspace.crm.adapter_for(integration)
    try:
        record = await adapter.get_record(RecordObject.CONTACT, email=email)
    finally:
        await adapter.aclose()
    assert record is not None
    field = next(m.crm_field for m in workspace.sync.mappings(integration, RecordObject.CONTACT)
                 if m.local_field == "firstName")
    return record.fields.get(field)


def test_a_push_to_another_crm_since_does_not_block_the_undo(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    _served, workspace = fans_on_three_crms
    for name in ("salesforce", "hubspot"):
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))
    fan = workspace.contacts.find(FANS[0])
    assert fan is not None
    workspace.contacts.save(fan.model_copy(update={"first_name": "WRONG"}))  # a bad import, say
    pushed = asyncio.run(workspace.sync.sync("salesforce", SyncDirection.BOTH))
    asyncio.run(workspace.sync.sync("hubspot", SyncDirection.BOTH))  # the same change goes to HubSpot too

    # Nothing changed in Salesforce or here since the Salesforce run: its undo goes through, unforced.
    try:
        report = asyncio.run(workspace.sync.undo(pushed.run_id or 0))
    except UndoRefused as refused:
        pytest.fail(f"undo refused: {refused}")
    assert not report.overridden
    assert asyncio.run(_crm_first_name(workspace, "salesforce", FANS[0])) == "Fan"
    restored = workspace.contacts.find(FANS[0])
    assert restored is not None and restored.first_name == "Fan"


def test_a_later_write_to_the_same_crm_still_blocks_the_undo(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    _served, workspace = fans_on_three_crms
    asyncio.run(workspace.sync.sync("hubspot", SyncDirection.BOTH))
    fan = workspace.contacts.find(FANS[0])
    assert fan is not None
    workspace.contacts.save(fan.model_copy(update={"first_name": "First"}))
    first = asyncio.run(workspace.sync.sync("hubspot", SyncDirection.BOTH))
    workspace.contacts.save(fan.model_copy(update={"first_name": "Second"}))
    asyncio.run(workspace.sync.sync("hubspot", SyncDirection.BOTH))

    with pytest.raises(UndoRefused, match="firstName"):
        asyncio.run(workspace.sync.undo(first.run_id or 0))
    assert asyncio.run(_crm_first_name(workspace, "hubspot", FANS[0])) == "Second"
