"""Undo of a sync run that pulled custom values puts back the local values with their types (42, not "42")."""

from __future__ import annotations

from typing import Any

from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import FieldDirection, SyncRunStatus
from crm_desktop.sync.mapping import FieldMapping
from tests.sync.conftest import SyncBench, person, scenario

EMAIL = "person1@example.com"


def typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    """Values with their types, so that 42 and "42" (or True and 1) are told apart."""
    return {name: (type(value), value) for name, value in values.items()}


def map_custom(bench: SyncBench, pairs: dict[str, str]) -> None:
    """Map local custom fields to HubSpot text properties, both ways."""
    mappings = [m for m in bench.mappings(RecordObject.CONTACT) if m.local_field not in pairs]
    mappings += [FieldMapping(local, crm, FieldDirection.TWO_WAY) for local, crm in pairs.items()]
    bench.service.save_mappings(bench.integration, RecordObject.CONTACT, mappings)


@scenario
async def test_undo_of_a_pull_puts_back_numbers_and_yes_no_not_their_text(hubspot: SyncBench) -> None:
    map_custom(hubspot, {"custom.visits": "city", "custom.vip": "jobtitle", "custom.score": "country"})
    seeded = {"visits": 42, "vip": True, "code": "007"}
    hubspot.save(person(1, custom_fields=seeded))
    first = await hubspot.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    crm_id = hubspot.link(EMAIL).crm_id
    # A salesperson types words where the numbers were, and fills a field the contact did not have.
    await hubspot.edit(crm_id, {"city": "forty-two", "jobtitle": "maybe", "country": "7"})
    run = await hubspot.sync()
    assert typed(hubspot.contact(EMAIL).custom_fields) == typed(
        {"visits": "forty-two", "vip": "maybe", "code": "007", "score": "7"})

    await hubspot.service.undo(run.run_id or 0)
    assert typed(hubspot.contact(EMAIL).custom_fields) == typed(seeded), "the undo put the values back as text"
