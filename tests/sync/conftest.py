"""A workspace wired in-process to one CRM sandbox, with helpers to act as the marketer and the salesperson."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_desktop.app.sync_service import SyncService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Lead, Provider, SocialProfile, SyncConfig, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmRecord
from crm_desktop.sandbox.core import LoggedRequest, Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import AuditLogRow, Base, ConflictRule
from crm_desktop.store.sync_store import Link, SyncStore
from crm_desktop.sync.engine import SyncResult
from crm_desktop.sync.mapping import FieldMapping
from crm_desktop.sync.plan import PlannedChange, Value

SHARED_MEMORY = Path("/dev/shm")
SEARCHES_PER_SECOND = 100
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
# POST requests that only read (searches, batch reads) or authenticate.
READ_MARKERS = ("/search", "/batch/read", "/oauth", "/token", "access-token-info")
# The name of each CRM's objects in the sandbox control endpoint /__sandbox__/records/{object}/{id}.
EDIT_OBJECT = {
    Provider.HUBSPOT: {RecordObject.CONTACT: "contacts", RecordObject.LEAD: "leads"},
    Provider.SALESFORCE: {RecordObject.CONTACT: "Contact", RecordObject.LEAD: "Lead"},
    Provider.PIPEDRIVE: {RecordObject.CONTACT: "persons", RecordObject.LEAD: "leads"},
}


def scenario(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async scenario on a fresh event loop (pytest-asyncio is not installed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def values_of(change: PlannedChange) -> dict[str, tuple[Value, Value]]:
    """A planned change's fields as field -> (old, new)."""
    return {name: (field.old, field.new) for name, field in change.fields.items()}


def is_write(request: LoggedRequest) -> bool:
    """Whether a logged sandbox request changes CRM data."""
    return request.method in WRITE_METHODS and not any(marker in request.path for marker in READ_MARKERS)


def person(number: int, **overrides: Any) -> Contact:
    """A local contact with a Twitter profile, numbered for distinct emails."""
    values: dict[str, Any] = {
        "email": f"person{number}@example.com",
        "first_name": f"Ada{number}",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "phone": f"+1415555{number:04d}",
        "social_profiles": [SocialProfile(platform="twitter", username=f"ada{number}", followers=100 + number)],
    }
    values.update(overrides)
    return Contact(**values)


@dataclass
class SyncBench:
    """One workspace synced with one sandbox CRM.

    Attributes:
        provider: the CRM.
        sandbox: the in-process CRM.
        workspace: the local side.
        name: the integration's name.
    """

    provider: Provider
    sandbox: Sandbox
    workspace: Workspace
    name: str = "crm"

    # -- the app's side --------------------------------------------------------------------------------------
    @property
    def service(self) -> SyncService:
        return self.workspace.sync

    @property
    def store(self) -> SyncStore:
        return self.workspace.sync.store

    @property
    def integration(self) -> Integration:
        return self.workspace.integrations.get(self.name)

    async def sync(
        self, direction: SyncDirection = SyncDirection.BOTH, *, dry_run: bool = False
    ) -> SyncResult:
        return await self.service.sync(self.name, direction, dry_run=dry_run)

    def mappings(self, obj: RecordObject = RecordObject.CONTACT) -> list[FieldMapping]:
        return self.service.mappings(self.integration, obj)

    def crm_field(self, local_field: str, obj: RecordObject = RecordObject.CONTACT) -> str:
        return next(m.crm_field for m in self.mappings(obj) if m.local_field == local_field)

    def set_rule(self, local_field: str, rule: ConflictRule, obj: RecordObject = RecordObject.CONTACT) -> None:
        self.service.set_rule(self.integration, obj, local_field, rule)

    def set_blank_wipes(self, local_field: str, obj: RecordObject = RecordObject.CONTACT) -> None:
        mappings = [replace(m, blank_wipes=True) if m.local_field == local_field else m for m in self.mappings(obj)]
        self.service.save_mappings(self.integration, obj, mappings)

    def save(self, *contacts: Contact) -> None:
        self.workspace.contacts.save_many(contacts)

    def save_lead(self, lead: Lead) -> None:
        self.workspace.leads.save(lead)

    def contact(self, email: str) -> Contact:
        found = self.workspace.contacts.find(email)
        assert found is not None, f"no local contact {email}"
        return found

    def change(self, email: str, **changes: Any) -> Contact:
        """The marketer edits a local contact."""
        updated = self.contact(email).model_copy(update=changes)
        self.workspace.contacts.save(updated)
        return updated

    def local_id(self, email: str, obj: RecordObject = RecordObject.CONTACT) -> int:
        return self.store.local_by_emails(obj, [email])[email].id

    def link(self, email: str, obj: RecordObject = RecordObject.CONTACT) -> Link:
        local_id = self.local_id(email, obj)
        link = self.store.links_for_local(self.integration.id or 0, obj, [local_id]).get(local_id)
        assert link is not None, f"{email} is not linked"
        return link

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the local store."""
        with self.workspace.database.session() as session:
            return {
                table.name: [tuple(row) for row in session.execute(select(table)).all()]
                for table in Base.metadata.sorted_tables
            }

    def audit_rows(self, source: str | None = None) -> list[AuditLogRow]:
        """Audit rows, oldest first, optionally of one source (``pull``, ``push``, ``conflict:7``, ``undo``)."""
        with self.workspace.database.session() as session:
            statement = select(AuditLogRow).order_by(AuditLogRow.id)
            if source is not None:
                statement = statement.where(AuditLogRow.source == source)
            rows = list(session.scalars(statement))
            for row in rows:
                session.expunge(row)
            return rows

    # -- the CRM's side --------------------------------------------------------------------------------------
    def mark(self) -> int:
        """The number of the last API request the sandbox answered."""
        return self.sandbox.request_count

    def writes_since(self, mark: int) -> list[LoggedRequest]:
        return [r for r in self.sandbox.requests if r.number > mark and is_write(r)]

    async def edit(self, crm_id: str, changes: dict[str, Any], obj: RecordObject = RecordObject.CONTACT) -> Any:
        """A salesperson edits a record in the CRM, through the sandbox control endpoint."""
        async with self.sandbox.client() as client:
            path = f"/__sandbox__/records/{EDIT_OBJECT[self.provider][obj]}/{crm_id}"
            response = await client.patch(path, json=changes)
        assert response.status_code == 200, response.text
        return response.json()

    async def delete_in_crm(self, crm_id: str) -> None:
        """A salesperson deletes a contact in the CRM."""
        if self.provider is Provider.SALESFORCE:
            await self.edit(crm_id, {"_delete": True})
            return
        if self.provider is Provider.PIPEDRIVE:
            async with self.sandbox.client() as client:
                token = self.sandbox.credentials()["apiToken"]
                response = await client.delete(f"/api/v2/persons/{crm_id}", headers={"x-api-token": token})
            assert response.status_code == 200, response.text
            return
        async with self.sandbox.client() as client:
            token = self.sandbox.credentials()["token"]
            response = await client.delete(
                f"/crm/v3/objects/contacts/{crm_id}", headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 204, response.text

    async def crm_record(self, email: str, obj: RecordObject = RecordObject.CONTACT) -> CrmRecord | None:
        """The CRM's current record, read through the adapter."""
        adapter = self.workspace.crm.adapter_for(self.integration)
        try:
            return await adapter.get_record(obj, email=email)
        finally:
            await adapter.aclose()

    async def crm_value(self, email: str, local_field: str, obj: RecordObject = RecordObject.CONTACT) -> Any:
        record = await self.crm_record(email, obj)
        assert record is not None, f"{email} is not in the CRM"
        return record.fields.get(self.crm_field(local_field, obj))


def _credentials(provider: Provider, sandbox: Sandbox) -> dict[str, Any]:
    credentials = sandbox.credentials()
    if provider is Provider.PIPEDRIVE:
        return {"apiToken": credentials["apiToken"]}
    return credentials


def open_bench(provider: Provider, data_dir: Path, sandbox: Sandbox | None = None) -> SyncBench:
    """A fresh workspace with one integration to a fresh (empty) sandbox of ``provider``."""
    if sandbox is None:
        config = SandboxConfig(contacts=0)
        if provider is Provider.HUBSPOT:
            # Syncs in quick succession would otherwise wait out HubSpot's 4 searches a second (tested elsewhere).
            sandbox = HubSpotSandbox(config, search_per_second_limit=SEARCHES_PER_SECOND)
        elif provider is Provider.SALESFORCE:
            sandbox = SalesforceSandbox(config)
        else:
            sandbox = PipedriveSandbox(config)
    workspace = Workspace.open(data_dir, transport=sandbox.transport())
    integration = Integration(
        provider=provider,
        name="crm",
        base_url=sandbox.base_url,
        domain="sandbox" if provider is Provider.PIPEDRIVE else None,
        sync_config=SyncConfig(auto_sync=True),
    )
    workspace.integrations.add(integration, _credentials(provider, sandbox))
    return SyncBench(provider, sandbox, workspace)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A workspace folder in memory when the machine has one (SQLite closes a connection per session, and each
    close syncs the file), else under the test's temporary folder."""
    if not SHARED_MEMORY.is_dir() or not os.access(SHARED_MEMORY, os.W_OK):
        yield tmp_path / "workspace"
        return
    folder = Path(tempfile.mkdtemp(prefix="crm-sync-test-", dir=SHARED_MEMORY))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def hubspot(data_dir: Path) -> Iterator[SyncBench]:
    """A workspace synced with an empty HubSpot sandbox."""
    bench = open_bench(Provider.HUBSPOT, data_dir)
    yield bench
    bench.workspace.close()


@pytest.fixture(params=[Provider.HUBSPOT, Provider.SALESFORCE, Provider.PIPEDRIVE], ids=lambda p: p.value)
def any_crm(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[SyncBench]:
    """A workspace synced with an empty sandbox of each CRM in turn."""
    bench = open_bench(request.param, data_dir)
    yield bench
    bench.workspace.close()
