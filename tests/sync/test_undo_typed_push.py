"""Undo of a push puts back the CRM's old custom values with their type, on both sides (42, not "42")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_desktop.domain.models import Provider, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import AuditValueType, FieldDirection, SyncRunStatus, SyncTrigger
from crm_desktop.sync.mapping import FieldMapping
from tests.sync.conftest import SyncBench, open_bench, person, scenario

EMAIL = "person1@example.com"


def typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """Values with their types, so that 42 and "42" (or True and 1) are told apart."""
    return {name: (type(value), value) for name, value in values.items()}


def map_custom(bench: SyncBench, pairs: dict[str, str]) -> None:
    """Map local custom fields to these CRM fields, both ways (in place of the mappings that used the fields)."""
    mappings = [m for m in bench.mappings() if m.local_field not in pairs and m.crm_field not in pairs.values()]
    mappings += [FieldMapping(local, crm, FieldDirection.TWO_WAY) for local, crm in pairs.items()]
    bench.service.save_mappings(bench.integration, RecordObject.CONTACT, mappings)


def salesforce_values(bench: SyncBench, crm_id: str, *names: str) -> dict[str, Any]:
    """Fields of a contact as the Salesforce sandbox stores them (and serves them as JSON)."""
    assert isinstance(bench.sandbox, SalesforceSandbox)
    record = next(r for key, r in bench.sandbox.records["Contact"].items() if key.startswith(crm_id[:15]))
    return {name: record.get(name) for name in names}


async def push_then_retype(bench: SyncBench, seeded: dict[str, Any], pushed: dict[str, Any],
                           retyped: dict[str, Any]) -> int:
    """Sync ``seeded``, push ``pushed``, then type words over them locally; returns the push's run id."""
    bench.save(person(1, custom_fields=seeded))
    first = await bench.sync(SyncDirection.BOTH)
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    bench.change(EMAIL, custom_fields=pushed)
    push = await bench.sync(SyncDirection.BOTH)
    assert push.status is SyncRunStatus.SUCCEEDED and push.counts["updated"] == 1, push.failures
    # After the push the marketer types words where the numbers were (not synced yet); the undo of the push puts
    # back on both sides what the CRM held before it.
    bench.change(EMAIL, custom_fields=retyped)
    assert push.run_id is not None
    return push.run_id


@scenario
async def test_undo_of_a_push_puts_back_salesforce_numbers_as_numbers_on_both_sides(data_dir: Path) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        map_custom(bench, {"custom.visits": "social_followers__c", "custom.ratio": "social_engagement_score__c"})
        seeded = {"visits": 42, "ratio": 1.5, "code": "007"}
        run_id = await push_then_retype(bench, seeded, {**seeded, "visits": 43, "ratio": 2.25},
                                        {**seeded, "visits": "unknown", "ratio": "n/a"})
        crm_id = bench.link(EMAIL).crm_id
        assert salesforce_values(bench, crm_id, "social_followers__c", "social_engagement_score__c") == {
            "social_followers__c": 43.0, "social_engagement_score__c": 2.25}

        # The push's audit keeps each custom value's type beside its text: what the CRM held, and what was sent.
        rows = {r.field: r for r in bench.audit_rows("push") if r.run_id == run_id}
        assert (rows["custom.visits"].old, rows["custom.visits"].new) == (42, 43)
        assert (rows["custom.ratio"].old_type, rows["custom.ratio"].new_type) == (AuditValueType.DECIMAL,) * 2

        report = await bench.service.undo(run_id, SyncTrigger.CLI)
        assert report.restored_crm == 2, report
        # The CRM holds JSON numbers again, and the local record numbers, not their text.
        stored = salesforce_values(bench, crm_id, "social_followers__c", "social_engagement_score__c")
        assert typed(stored) == typed({"social_followers__c": 42.0, "social_engagement_score__c": 1.5})
        assert typed(bench.contact(EMAIL).custom_fields) == typed(seeded), "the undo put the values back as text"
        assert bench.link(EMAIL).base_values["custom.visits"] == "42"

        after = await bench.sync(SyncDirection.BOTH)
        assert after.status is SyncRunStatus.SUCCEEDED, after.failures
        assert (after.counts["created"], after.counts["updated"]) == (0, 0), after.changes
        assert typed(bench.contact(EMAIL).custom_fields) == typed(seeded)
        assert typed(salesforce_values(bench, crm_id, "social_followers__c", "social_engagement_score__c")) == typed(
            {"social_followers__c": 42.0, "social_engagement_score__c": 1.5})
    finally:
        bench.workspace.close()


@scenario
async def test_undo_of_a_push_puts_back_yes_no_and_numbers_held_in_hubspot_text(hubspot: SyncBench) -> None:
    # HubSpot keeps every property value as text on the wire: the CRM gets its text back, the local record the type.
    map_custom(hubspot, {"custom.visits": "city", "custom.vip": "jobtitle"})
    seeded = {"visits": 42, "vip": True}
    run_id = await push_then_retype(hubspot, seeded, {"visits": 43, "vip": False}, {"visits": "many", "vip": "maybe"})

    await hubspot.service.undo(run_id, SyncTrigger.CLI)
    assert isinstance(hubspot.sandbox, HubSpotSandbox)
    stored = hubspot.sandbox._records["contacts"][hubspot.link(EMAIL).crm_id].properties
    assert (stored.get("city"), stored.get("jobtitle")) == ("42", "true")
    assert typed(hubspot.contact(EMAIL).custom_fields) == typed(seeded), "the undo put the values back as text"

    after = await hubspot.sync(SyncDirection.BOTH)
    assert after.status is SyncRunStatus.SUCCEEDED, after.failures
    assert (after.counts["created"], after.counts["updated"]) == (0, 0), after.changes
    assert typed(hubspot.contact(EMAIL).custom_fields) == typed(seeded)
