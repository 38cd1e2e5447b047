"""Undo of a run that first linked a contact both sides already held (found by the two-way crash drill).

When a two-way run links a local contact to the CRM record with the same email and the local value wins, the push's
audit row must record the value the CRM held before (it recorded it as empty, so ``runs undo`` took the record for
one the run created and kept the CRM's new value). The same holds for a later conflict the local side wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.server import make_sandbox
from crm_desktop.store.models import SyncTrigger
from crm_desktop.vault import Vault
from crm_desktop.vault.ephemeral import EphemeralKeyring
from tests.sync.conftest import scenario


@scenario
async def test_undo_of_a_first_link_restores_the_crm_value(tmp_path: Path) -> None:
    sandbox: Any = make_sandbox("hubspot", SandboxConfig())  # HubSpot's own seeding and record table
    sandbox.seed_contacts(
        [{"email": "dee@example.com", "firstname": "Dee", "lastname": "Diff", "phone": "+447800087283"}]
    )
    workspace = Workspace.open(tmp_path, vault=Vault(backend=EphemeralKeyring()), transport=sandbox.transport())
    try:
        workspace.integrations.add(
            Integration(provider=Provider.HUBSPOT, name="hub", base_url=sandbox.base_url), sandbox.credentials()
        )
        workspace.contacts.save(Contact(email="dee@example.com", first_name="Dee", last_name="Diff",
                                        phone="+447400859772"))
        result = await workspace.sync.sync("hub")
        assert result.run_id is not None
        [record] = [r for r in sandbox._records["contacts"].values() if not r.archived]
        assert record.properties["phone"] == "+447400859772"  # the local value won and was pushed

        await workspace.sync.undo(result.run_id, SyncTrigger.CLI)

        assert record.properties["phone"] == "+447800087283"
    finally:
        workspace.close()
