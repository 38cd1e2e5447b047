"""Echoes of the app's own writes: the next pull recognises them by the CRM's change stamp and merges nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_desktop.domain.models import Lead, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmRecord
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.sync.engine import SyncEngine
from tests.sync.conftest import SyncBench, open_bench, person, scenario
from tests.sync.test_scenarios import EMAILS, first_name_edit


def merged_crm_ids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CRM ids of the pulled records the engine merges (plans against their local record), in order."""
    merged: list[str] = []
    plan_record = SyncEngine._plan_record

    def spy(self: SyncEngine, obj: Any, record: CrmRecord, *args: Any, **kwargs: Any) -> Any:
        merged.append(record.crm_id)
        return plan_record(self, obj, record, *args, **kwargs)

    monkeypatch.setattr(SyncEngine, "_plan_record", spy)
    return merged


@scenario
async def test_a_pushed_record_keeps_the_stamp_the_crm_gave_the_write(any_crm: SyncBench) -> None:
    bench = any_crm
    bench.save(person(1), person(2), person(3))
    result = await bench.sync()
    assert result.status is SyncRunStatus.SUCCEEDED, result.failures
    for email in EMAILS:
        record = await bench.crm_record(email)
        assert record is not None and record.modified_at is not None
        assert bench.link(email).crm_modified_at == record.modified_at


@scenario
async def test_the_echo_of_our_write_is_skipped_and_a_later_edit_is_merged(
    any_crm: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = any_crm
    bench.save(person(1), person(2), person(3))
    first = await bench.sync()
    assert first.status is SyncRunStatus.SUCCEEDED, first.failures
    assert first.counts["created"] == 3
    # A salesperson edits one of the records the push just wrote, before the app pulls again.
    edited = bench.link("person3@example.com").crm_id
    await bench.edit(edited, first_name_edit(bench.provider, "Grace"))

    merged = merged_crm_ids(monkeypatch)
    mark = bench.mark()
    second = await bench.sync()

    assert second.status is SyncRunStatus.SUCCEEDED, second.failures
    assert merged == [edited], "only the record changed after our write is merged; our writes' echoes are not"
    assert bench.contact("person3@example.com").first_name == "Grace"
    assert [bench.contact(email).first_name for email in EMAILS[:2]] == ["Ada1", "Ada2"]
    assert bench.writes_since(mark) == []
    assert second.counts["conflicts"] == 0
    assert [(c.email, set(c.fields)) for c in second.changes if c.side == "local"] == [
        ("person3@example.com", {"firstName"})
    ]
    # The merged record now carries the edit's stamp: the next pull has nothing to merge.
    record = await bench.crm_record("person3@example.com")
    assert record is not None and bench.link("person3@example.com").crm_modified_at == record.modified_at
    merged.clear()
    await bench.sync()
    assert merged == []


@scenario
async def test_a_local_change_pushed_again_is_its_own_echo(any_crm: SyncBench, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = any_crm
    bench.save(person(1), person(2), person(3))
    await bench.sync()
    bench.change("person2@example.com", first_name="Augusta")
    pushed = await bench.sync()
    assert pushed.counts["updated"] == 1

    merged = merged_crm_ids(monkeypatch)
    await bench.sync()
    assert merged == []
    assert bench.contact("person2@example.com").first_name == "Augusta"


@pytest.mark.parametrize("any_crm", [Provider.PIPEDRIVE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_an_edit_in_the_same_second_as_our_write_is_merged(
    any_crm: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipedrive's v2 stamps are whole seconds: an edit in our write's second carries our write's stamp."""
    bench = any_crm
    bench.save(person(1), person(2))
    await bench.sync()
    edited = bench.link("person2@example.com").crm_id
    await bench.edit(edited, first_name_edit(bench.provider, "Grace"))
    record = await bench.crm_record("person2@example.com")
    assert record is not None and record.modified_at is not None and record.modified_at.microsecond == 0
    # As if the write and the edit fell in the same second: the link holds the stamp the edit left.
    bench.store.save_link(bench.integration.id or 0, RecordObject.CONTACT, bench.local_id("person2@example.com"),
                          edited, crm_modified_at=record.modified_at)

    merged = merged_crm_ids(monkeypatch)
    await bench.sync()
    assert merged == [edited]
    assert bench.contact("person2@example.com").first_name == "Grace"


@scenario
async def test_names_a_crm_splits_its_own_way_come_back_as_they_went(any_crm: SyncBench) -> None:
    # Pipedrive keeps one full name and splits it at the first space: "Mary" / "Ann van der Berg".
    any_crm.save(person(1, first_name="Mary Ann", last_name="van der Berg"))
    await any_crm.sync()
    for _ in range(2):
        again = await any_crm.sync()
        assert again.counts["updated"] == 0, again.plan.changes
    stored = any_crm.contact("person1@example.com")
    assert (stored.first_name, stored.last_name) == ("Mary Ann", "van der Berg")

    # A change of the name in the CRM is still pulled.
    crm_id = any_crm.link("person1@example.com").crm_id
    edit = {Provider.PIPEDRIVE: {"name": "Mary Ann Smith"}, Provider.HUBSPOT: {"lastname": "Smith"},
            Provider.SALESFORCE: {"LastName": "Smith"}}[any_crm.provider]
    await any_crm.edit(crm_id, edit)
    await any_crm.sync()
    stored = any_crm.contact("person1@example.com")
    assert " ".join(filter(None, (stored.first_name, stored.last_name))) == "Mary Ann Smith"


@scenario
async def test_a_name_of_one_part_or_none_comes_back_from_pipedrive_as_it_went(data_dir: Path) -> None:
    # Pipedrive keeps one full name (a nameless person is named by the email) and splits it at the first space:
    # "Park" alone came back as the first name beside the last name "Park", an email as the first name. Another
    # change of each record makes the pull merge them whole (not as echoes of the push).
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        bench.save(person(1, first_name=None, last_name="Park"), person(2, first_name=None, last_name=None))
        bench.save_lead(Lead(email="lead1@example.com", last_name="Park", source="twitter"))
        first = await bench.sync()
        assert first.status is SyncRunStatus.SUCCEEDED, first.failures
        for email in ("person1@example.com", "person2@example.com"):
            await bench.edit(bench.link(email).crm_id, {"phones": [{"value": "+14155550199", "primary": True}]})
        lead_link = bench.link("lead1@example.com", RecordObject.LEAD)
        await bench.edit(lead_link.crm_id, {"title": "Park, via a retweet"}, RecordObject.LEAD)

        again = await bench.sync()

        assert again.status is SyncRunStatus.SUCCEEDED, again.failures
        one, nameless = bench.contact("person1@example.com"), bench.contact("person2@example.com")
        assert (one.first_name, one.last_name, one.phone) == (None, "Park", "+14155550199")
        assert (nameless.first_name, nameless.last_name) == (None, None)
        lead = bench.workspace.leads.find("lead1@example.com")
        assert lead is not None and (lead.first_name, lead.last_name) == (None, "Park")
    finally:
        bench.workspace.close()
