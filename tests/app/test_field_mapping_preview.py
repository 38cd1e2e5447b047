"""The Field Mapping preview on the sandbox CRMs: each value as the CRM receives it, in its field's type (a checkbox
true, a date-time in UTC with the local time beside it), and a value the field cannot take shown refused, with the
reason the push would fail the record for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_desktop.app.field_mapping import FieldMappingService, PreviewLine
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SyncConfig
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmField
from crm_desktop.providers.pipedrive import PipedriveAdapter
from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import FieldDirection
from crm_desktop.sync.mapping import FieldMapping
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


def sandbox_workspace(directory: Path, keyring: MemoryKeyring, sandbox: Sandbox, provider: Provider) -> Workspace:
    """A workspace with one integration ``crm`` on the in-process ``sandbox``."""
    opened = Workspace.open(directory, vault=Vault(backend=keyring), transport=sandbox.transport())
    credentials = sandbox.credentials()
    domain = credentials.pop("companyDomain", None)
    opened.integrations.add(
        Integration(provider=provider, name="crm", base_url=sandbox.base_url, domain=domain,
                    sync_config=SyncConfig(auto_sync=False)),
        credentials,
    )
    return opened


@pytest.fixture
def keyring_backend(memory_keyring: MemoryKeyring | None) -> MemoryKeyring:
    assert memory_keyring is not None
    return memory_keyring


@pytest.fixture
def salesforce(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    opened = sandbox_workspace(tmp_path / "data", keyring_backend, SalesforceSandbox(SandboxConfig()),
                               Provider.SALESFORCE)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def hubspot(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    opened = sandbox_workspace(tmp_path / "data", keyring_backend, HubSpotSandbox(SandboxConfig()), Provider.HUBSPOT)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def pipedrive(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    opened = sandbox_workspace(tmp_path / "data", keyring_backend, PipedriveSandbox(SandboxConfig()),
                               Provider.PIPEDRIVE)
    try:
        yield opened
    finally:
        opened.close()


def preview_of(workspace: Workspace, fields: dict[str, tuple[str, str]], people: dict[str, dict[str, str]]
               ) -> dict[str, dict[str, PreviewLine]]:
    """Create each of ``fields`` (local custom field -> CRM field name and type) through the adapter, save each of
    ``people`` (email -> custom values), map ``custom.<name>`` to its field and preview each person: lines by local
    field, by email."""
    integration = workspace.integrations.get("crm")
    service = FieldMappingService(workspace.sync)

    async def made() -> list[str]:
        adapter = workspace.crm.adapter_for(integration)
        try:
            return [(await adapter.create_field(RecordObject.CONTACT, name, name.capitalize(), kind)).name
                    for name, kind in fields.values()]
        finally:
            await adapter.aclose()

    names = asyncio.run(made())
    crm_fields = asyncio.run(service.crm_fields("crm", RecordObject.CONTACT))
    if integration.provider is Provider.PIPEDRIVE:  # Pipedrive's custom fields are mapped by name
        names = [next(f.label for f in crm_fields if f.name == name) for name in names]
    mappings = [FieldMapping(f"custom.{local}", name, FieldDirection.TWO_WAY)
                for local, name in zip(fields, names, strict=True)]
    for email, values in people.items():
        workspace.contacts.save(Contact(email=email, first_name="Ada", custom_fields=dict(values)))
    return {email: {line.local_field: line for line in service.preview(
        integration, RecordObject.CONTACT, email, mappings, crm_fields)} for email in people}


@pytest.mark.usefixtures("berlin")
def test_salesforce_preview_shows_typed_values_and_refuses_a_bad_date(salesforce: Workspace) -> None:
    shown = preview_of(
        salesforce,
        {"newsletter": ("newsletter", "boolean"), "meeting": ("meeting", "datetime"), "signup": ("signup", "date")},
        {"ada@example.com": {"newsletter": "yes", "meeting": "2026-12-03 10:00", "signup": "05/12/2026"},
         "bob@example.com": {"newsletter": "no", "meeting": "tomorrow", "signup": "2026-12-05"}},
    )
    ada = shown["ada@example.com"]
    assert (ada["custom.newsletter"].crm_value, ada["custom.newsletter"].sent) == (True, "true")
    assert ada["custom.newsletter"].refused is None
    meeting = ada["custom.meeting"]
    assert meeting.crm_value == "2026-12-03T09:00:00.000Z", "Berlin's 10:00 in winter is 09:00 UTC"
    assert meeting.sent == "2026-12-03T09:00:00.000Z (10:00 your time)"
    signup = ada["custom.signup"]
    assert signup.refused == "'05/12/2026' is not a date (YYYY-MM-DD)"
    assert signup.sent == "not sent: '05/12/2026' is not a date (YYYY-MM-DD)"
    assert signup.crm_value is None and signup.local_value == "05/12/2026"

    bob = shown["bob@example.com"]
    assert (bob["custom.newsletter"].crm_value, bob["custom.newsletter"].sent) == (False, "false")
    assert bob["custom.meeting"].sent == (
        "not sent: 'tomorrow' is not a date and time (YYYY-MM-DD hh:mm, a zone optional)")
    assert (bob["custom.signup"].crm_value, bob["custom.signup"].refused) == ("2026-12-05", None)


@pytest.mark.usefixtures("berlin")
def test_hubspot_preview_shows_bool_date_and_datetime_values_as_sent(hubspot: Workspace) -> None:
    shown = preview_of(
        hubspot,
        {"newsletter": ("newsletter", "bool"), "signup": ("signup", "date"), "meeting": ("meeting", "datetime")},
        {"ada@example.com": {"newsletter": "1", "signup": "2026-12-05", "meeting": "2026-07-01T23:30"},
         "bob@example.com": {"newsletter": "No", "signup": "5 Dec 2026", "meeting": "2026-12-03T23:30Z"}},
    )
    ada = shown["ada@example.com"]
    assert (ada["custom.newsletter"].crm_value, ada["custom.newsletter"].sent) == ("true", "true")
    assert (ada["custom.signup"].crm_value, ada["custom.signup"].refused) == ("2026-12-05", None)
    # Berlin's summer time is UTC+2: 23:30 there is 21:30 UTC, the same day.
    assert ada["custom.meeting"].sent == "2026-07-01T21:30:00.000Z (23:30 your time)"
    bob = shown["bob@example.com"]
    assert bob["custom.newsletter"].crm_value == "false"
    assert bob["custom.signup"].sent == "not sent: '5 Dec 2026' is not a date (YYYY-MM-DD)"
    # A zone given is kept; the local time, on another day, names its date.
    assert bob["custom.meeting"].sent == "2026-12-03T23:30:00.000Z (2026-12-04 00:30 your time)"


def test_pipedrive_preview_shows_a_yes_no_fields_option_and_refuses_a_bad_date(pipedrive: Workspace) -> None:
    shown = preview_of(
        pipedrive,
        {"newsletter": ("newsletter", "boolean"), "signup": ("signup", "date")},
        {"ada@example.com": {"newsletter": "true", "signup": "05/12/2026"}},
    )
    ada = shown["ada@example.com"]
    assert (ada["custom.newsletter"].crm_value, ada["custom.newsletter"].refused) == ("Yes", None), (
        "the field lists its options' labels, not their ids")
    assert ada["custom.signup"].sent == "not sent: '05/12/2026' is not a date (YYYY-MM-DD)"


@pytest.mark.parametrize(("crm", "kind"), [("salesforce", "picklist:Bronze,Silver,Gold"),
                                           ("hubspot", "enumeration:Bronze,Silver,Gold"),
                                           ("pipedrive", "enum")])
def test_a_value_that_is_none_of_a_dropdown_fields_options_is_not_sent(
    crm: str, kind: str, request: pytest.FixtureRequest
) -> None:
    """Seen exploring: a tier of "Platinum" mapped onto a Bronze/Silver/Gold dropdown previewed as sent, and the push
    failed the record (Salesforce INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, HubSpot INVALID_OPTION)."""
    workspace: Workspace = request.getfixturevalue(crm)
    integration = workspace.integrations.get("crm")
    service = FieldMappingService(workspace.sync)

    async def made() -> CrmField:
        adapter = workspace.crm.adapter_for(integration)
        try:
            if isinstance(adapter, PipedriveAdapter):
                return await adapter.create_field(RecordObject.CONTACT, "tier", "Tier", kind,
                                                  ("Bronze", "Silver", "Gold"))
            return await adapter.create_field(RecordObject.CONTACT, "tier", "Tier", kind)
        finally:
            await adapter.aclose()

    field = asyncio.run(made())
    crm_fields = asyncio.run(service.crm_fields("crm", RecordObject.CONTACT))
    listed = next(f for f in crm_fields if f.name == field.name)
    assert listed.options == ("Bronze", "Silver", "Gold"), "the field's allowed values, from the CRM's field list"
    mapping = FieldMapping("custom.tier", listed.label if crm == "pipedrive" else listed.name)
    for email, tier in (("ada@example.com", "Gold"), ("bob@example.com", "Platinum")):
        workspace.contacts.save(Contact(email=email, first_name="Ada", custom_fields={"tier": tier}))
    [ada] = service.preview(integration, RecordObject.CONTACT, "ada@example.com", [mapping], crm_fields)
    assert (ada.crm_value, ada.refused, ada.sent) == ("Gold", None, "Gold")
    [bob] = service.preview(integration, RecordObject.CONTACT, "bob@example.com", [mapping], crm_fields)
    assert bob.refused == "'Platinum' is not one of its options (Bronze, Silver, Gold)"
    assert (bob.crm_value, bob.sent) == (None, f"not sent: {bob.refused}")


def test_a_long_list_of_options_is_named_by_its_first_few(hubspot: Workspace) -> None:
    """HubSpot's Lifecycle Stage has eight stages: the reason names the first six and counts the rest."""
    integration = hubspot.integrations.get("crm")
    service = FieldMappingService(hubspot.sync)
    crm_fields = asyncio.run(service.crm_fields("crm", RecordObject.CONTACT))
    hubspot.contacts.save(Contact(email="ada@example.com", first_name="Ada", custom_fields={"stage": "Prospect"}))
    [line] = service.preview(integration, RecordObject.CONTACT, "ada@example.com",
                             [FieldMapping("custom.stage", "lifecyclestage")], crm_fields)
    assert line.sent == ("not sent: 'Prospect' is not one of its options (subscriber, lead, marketingqualifiedlead, "
                         "salesqualifiedlead, opportunity, customer and 2 more)")


def test_an_unrestricted_salesforce_picklist_takes_any_value(salesforce: Workspace) -> None:
    """Salesforce keeps a value that is none of an unrestricted picklist's values (Salutation): it is sent."""
    integration = salesforce.integrations.get("crm")
    service = FieldMappingService(salesforce.sync)
    crm_fields = asyncio.run(service.crm_fields("crm", RecordObject.CONTACT))
    salutation = next(f for f in crm_fields if f.name == "Salutation")
    assert salutation.options and not salutation.restricted
    salesforce.contacts.save(Contact(email="ada@example.com", first_name="Ada", custom_fields={"title": "Sir"}))
    [line] = service.preview(integration, RecordObject.CONTACT, "ada@example.com",
                             [FieldMapping("custom.title", "Salutation")], crm_fields)
    assert (line.crm_value, line.refused, line.sent) == ("Sir", None, "Sir")
