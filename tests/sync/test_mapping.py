"""Mapping validation against each CRM sandbox's live field list."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.field_setup import FieldSetupService
from crm_desktop.domain.models import Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import FieldDirection
from crm_desktop.sync.mapping import FieldMapping, canonical
from tests.sync.conftest import SyncBench, open_bench, person, scenario


def remap(bench: SyncBench, local_field: str, crm_field: str, obj: RecordObject = RecordObject.CONTACT,
          direction: FieldDirection = FieldDirection.TWO_WAY) -> None:
    """Point one local field at another CRM field (adding the mapping when it is new)."""
    mappings = [m for m in bench.mappings(obj) if m.local_field != local_field]
    mappings.append(FieldMapping(local_field, crm_field, direction))
    bench.service.save_mappings(bench.integration, obj, mappings)


@pytest.mark.parametrize("obj", list(RecordObject), ids=lambda o: o.value)
@scenario
async def test_the_default_mappings_fit_each_crm(any_crm: SyncBench, obj: RecordObject) -> None:
    # Pipedrive has no social person fields until `fields ensure` creates them; mapped by name, they then fit.
    report = await FieldSetupService(any_crm.workspace.crm).ensure_social_fields(any_crm.name)
    assert report.ok, report.to_wire()
    assert await any_crm.service.check_mappings(any_crm.name, obj) == []


@scenario
async def test_a_missing_seed_field_names_the_command_that_creates_it(data_dir: Path) -> None:
    pipedrive = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        problems = await pipedrive.service.check_mappings(pipedrive.name, RecordObject.CONTACT)
    finally:
        pipedrive.workspace.close()
    assert {p.crm_field for p in problems} == {"twitter_username", "instagram_username", "social_engagement_score"}
    assert all("crm-desktop fields ensure" in p.reason for p in problems)


@scenario
async def test_a_missing_crm_field_is_named(hubspot: SyncBench) -> None:
    remap(hubspot, "tiktokUsername", "tiktok_handle")
    problems = await hubspot.service.check_mappings(hubspot.name, RecordObject.CONTACT)
    assert [(p.local_field, p.crm_field) for p in problems] == [("tiktokUsername", "tiktok_handle")]
    assert "no such field" in problems[0].reason
    assert "tiktokUsername -> tiktok_handle" in str(problems[0])


@scenario
async def test_text_into_a_number_field_is_a_type_mismatch(hubspot: SyncBench) -> None:
    remap(hubspot, "company", "social_followers")
    [problem] = await hubspot.service.check_mappings(hubspot.name, RecordObject.CONTACT)
    assert problem.local_field == "company"
    assert "numbers" in problem.reason and "text" in problem.reason


@scenario
async def test_a_read_only_crm_field_must_be_pull_only(hubspot: SyncBench) -> None:
    remap(hubspot, "custom.hubspot_id", "hs_object_id")
    [problem] = await hubspot.service.check_mappings(hubspot.name, RecordObject.CONTACT)
    assert "read-only" in problem.reason
    remap(hubspot, "custom.hubspot_id", "lastmodifieddate", direction=FieldDirection.PULL_ONLY)
    assert await hubspot.service.check_mappings(hubspot.name, RecordObject.CONTACT) == []


@scenario
async def test_a_computed_field_cannot_be_pulled(hubspot: SyncBench) -> None:
    mappings = [
        replace(m, direction=FieldDirection.TWO_WAY) if m.local_field == "socialFollowers" else m
        for m in hubspot.mappings()
    ]
    hubspot.service.save_mappings(hubspot.integration, RecordObject.CONTACT, mappings)
    [problem] = await hubspot.service.check_mappings(hubspot.name, RecordObject.CONTACT)
    assert problem.local_field == "socialFollowers"
    assert "only be pushed" in problem.reason


@pytest.mark.parametrize("any_crm", [Provider.SALESFORCE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_a_number_into_a_checkbox_is_a_type_mismatch(any_crm: SyncBench) -> None:
    remap(any_crm, "socialEngagementScore", "HasOptedOutOfEmail", direction=FieldDirection.PUSH_ONLY)
    [problem] = await any_crm.service.check_mappings(any_crm.name, RecordObject.CONTACT)
    assert problem.local_field == "socialEngagementScore"
    assert "cannot hold a number" in problem.reason and "boolean" in problem.reason


@scenario
async def test_salesforce_without_the_social_fields_names_each_one(data_dir: Path) -> None:
    sandbox = SalesforceSandbox(SandboxConfig())
    sandbox.set_custom_fields([])
    bench = open_bench(Provider.SALESFORCE, data_dir, sandbox)
    try:
        problems = await bench.service.check_mappings(bench.name, RecordObject.CONTACT)
    finally:
        bench.workspace.close()
    assert {p.crm_field for p in problems} == {
        "twitter_username__c", "twitter_url__c", "twitter_followers__c", "instagram_username__c",
        "instagram_url__c", "instagram_followers__c", "linkedin_username__c", "linkedin_url__c",
        "social_engagement_score__c", "social_touchpoints__c", "social_followers__c",
    }
    assert all("no such field" in p.reason for p in problems)


def hubspot_property(bench: SyncBench, email: str, name: str) -> Any:
    """A HubSpot contact's property as the sandbox holds it."""
    sandbox: Any = bench.sandbox
    found = [r for r in sandbox._records["contacts"].values() if r.properties.get("email") == email]
    assert len(found) == 1, found
    return found[0].properties.get(name)


@scenario
async def test_a_mapped_standard_hubspot_property_is_read_and_codes_keep_their_zeros(hubspot: SyncBench) -> None:
    # `city` is a standard HubSpot property the app does not map by default: reads must ask for it once mapped,
    # or a salesperson's value reads as blank and the local one is written over it.
    remap(hubspot, "custom.zip", "city")
    hubspot.save(person(1, custom_fields={"zip": "02134"}), person(2, custom_fields={"zip": "007"}))
    await hubspot.sync()
    assert hubspot_property(hubspot, "person1@example.com", "city") == "02134"
    assert hubspot_property(hubspot, "person2@example.com", "city") == "007"

    await hubspot.edit(hubspot.link("person1@example.com").crm_id, {"city": "00501"})
    result = await hubspot.sync()
    assert not result.failures and not result.counts.get("conflicts"), result.counts
    assert hubspot.contact("person1@example.com").custom_fields["zip"] == "00501"
    assert hubspot_property(hubspot, "person1@example.com", "city") == "00501"
    again = await hubspot.sync(dry_run=True)
    assert again.plan.changes == [], again.plan.changes


@pytest.mark.parametrize(("given", "canonical_text"), [
    ("02134", "02134"), ("007", "007"), ("-03", "-03"), ("00.5", "00.5"),  # codes: leading zeros kept
    ("12345678901234567890", "12345678901234567890"),  # more digits than a float holds: kept exactly
    ("52.5200066", "52.5200066"), ("0.1234567", "0.1234567"),
    ("12.0", "12"), ("12.50", "12.5"), (" 42 ", "42"), ("0", "0"), ("-0", "0"),  # numbers a CRM sends as text
    (12, "12"), (12.0, "12"), (0.1 + 0.2, "0.3"), (52.5200066, "52.5200066"), (True, "true"),
    ("1e5", "1e5"), ("", None), (None, None),
])
def test_canonical_text_compares_numbers_and_keeps_codes(given: Any, canonical_text: str | None) -> None:
    assert canonical(given) == canonical_text


@scenario
async def test_a_field_mapped_after_the_first_sync_is_compared_on_every_linked_record(hubspot: SyncBench) -> None:
    hubspot.save(person(1, custom_fields={"zip": "02134"}), person(2, custom_fields={"zip": "10001"}), person(3))
    first = await hubspot.sync()
    assert first.not_sent == {"zip": 2}
    await hubspot.edit(hubspot.link("person2@example.com").crm_id, {"city": "Boston"})
    await hubspot.edit(hubspot.link("person3@example.com").crm_id, {"city": "Paris"})
    await hubspot.sync()  # the edits are pulled; city is not mapped yet

    remap(hubspot, "custom.zip", "city")
    plan = await hubspot.sync(dry_run=True)
    assert plan.plan.changes, "mapping a field planned nothing for the values already there"
    await hubspot.sync()
    # Pushed where only the local record held a value, pulled where only the CRM did, and where both did the
    # field's rule decided (last write wins: the salesperson's edit, after the local save).
    assert hubspot_property(hubspot, "person1@example.com", "city") == "02134"
    assert hubspot.contact("person3@example.com").custom_fields.get("zip") == "Paris"
    assert hubspot.contact("person2@example.com").custom_fields.get("zip") == "Boston"
    assert hubspot_property(hubspot, "person2@example.com", "city") == "Boston"
    again = await hubspot.sync(dry_run=True)
    assert [c for c in again.plan.changes if c.action.value != "unchanged"] == []
