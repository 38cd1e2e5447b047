"""A phone the CRM writes its own way (``+1 212 555 0100``) is the number the local store keeps in E.164.

Seen exploring: keeping the CRM's value of a phone conflict, or pulling a phone a salesperson typed with spaces,
stored the number in E.164 here but left the CRM's text as the merge base; the next push of the record (another
field edited) sent the same number again in E.164, counted it and wrote a History line for a value that never
changed, and rewrote the salesperson's formatting in the CRM.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from crm_desktop.domain.models import Contact, Provider
from crm_desktop.store.models import ConflictRow, ConflictRule, CrmLinkRow, SyncRunStatus
from crm_desktop.sync.mapping import FieldMapping, Transform, crm_holds, from_crm
from tests.sync.conftest import SyncBench, scenario

EMAIL = "pia@example.com"
FORMATTED = "+1 212 555 0100"
E164 = "+12125550100"


PHONE = FieldMapping("phone", "Phone", transforms=(Transform.E164,))


@pytest.mark.parametrize("crm_text", [FORMATTED, "+1 (212) 555-0100", "212.555.0100", "+1-212-555-0100", E164])
def test_a_number_is_read_in_one_form_however_the_crm_writes_it(crm_text: str) -> None:
    assert from_crm(PHONE, crm_text) == E164
    assert crm_holds(PHONE, E164, crm_text)
    assert not crm_holds(PHONE, "+12125550101", crm_text), "another number is a change"


def test_text_that_is_no_number_is_read_as_it_is() -> None:
    assert from_crm(PHONE, "call the office") == "call the office"
    assert not crm_holds(PHONE, E164, "call the office")


def phone_in_crm(bench: SyncBench, value: str) -> dict[str, Any]:
    """A salesperson's edit of the phone, in the CRM's own shape."""
    if bench.provider is Provider.PIPEDRIVE:
        return {"phones": [{"value": value, "primary": True, "label": "work"}]}
    return {"Phone" if bench.provider is Provider.SALESFORCE else "phone": value}


async def linked(bench: SyncBench) -> None:
    bench.save(Contact(email=EMAIL, first_name="Pia", last_name="Prior", phone="+14155550111"))
    result = await bench.sync()
    assert result.status is SyncRunStatus.SUCCEEDED and result.counts["created"] == 1, result.failures


async def push_of_another_field_leaves_the_phone(bench: SyncBench) -> None:
    """The marketer edits the first name: the next sync sends that, not the phone again."""
    audited = len(bench.audit_rows())
    bench.change(EMAIL, first_name="Piata")
    result = await bench.sync()
    assert result.status is SyncRunStatus.SUCCEEDED, result.failures
    assert result.counts["updated"] == 1, result.changes
    assert [row.field for row in bench.audit_rows()[audited:]] == ["firstName"], "a History line for the phone"
    assert await bench.crm_value(EMAIL, "phone") == FORMATTED, "the CRM's own formatting was rewritten"
    assert bench.contact(EMAIL).phone == E164
    audited = len(bench.audit_rows())
    mark = bench.mark()
    again = await bench.sync()
    assert (again.counts["created"], again.counts["updated"]) == (0, 0), again.changes
    assert bench.writes_since(mark) == []
    assert len(bench.audit_rows()) == audited


@scenario
async def test_keeping_the_crms_formatted_phone_leaves_nothing_to_push(any_crm: SyncBench) -> None:
    bench = any_crm
    conflict = bench.service.conflict(await raise_phone_conflict(bench))
    assert conflict.crm_value == FORMATTED, "the CRM's side is shown as the CRM holds it, the decision reads a number"

    mark = bench.mark()
    kept = await bench.service.resolve(conflict.id, take="crm")
    assert kept == E164
    assert bench.writes_since(mark) == [], "the CRM already holds the number it was kept at"
    assert bench.contact(EMAIL).phone == E164
    assert bench.link(EMAIL).base_values["phone"] == E164
    assert [row.field for row in bench.audit_rows(f"conflict:{conflict.id}")] == ["phone"]
    await push_of_another_field_leaves_the_phone(bench)


async def raise_phone_conflict(bench: SyncBench) -> int:
    bench.set_rule("phone", ConflictRule.MANUAL)
    await linked(bench)
    bench.change(EMAIL, phone="+14155550177")
    bench.sandbox.clock.advance(2)
    await bench.edit(bench.link(EMAIL).crm_id, phone_in_crm(bench, FORMATTED))
    raised = await bench.sync()
    assert raised.counts["conflicts"] == 1, raised.changes
    [conflict] = bench.service.conflicts()
    return conflict.id


@scenario
async def test_a_conflict_and_a_base_recorded_in_the_crms_form_by_an_older_version(any_crm: SyncBench) -> None:
    """A workspace synced before numbers were read in one form holds the CRM's text in open conflicts and merge
    bases: it is read as the same number."""
    bench = any_crm
    conflict_id = await raise_phone_conflict(bench)
    with bench.workspace.database.session() as session:
        session.execute(update(ConflictRow).where(ConflictRow.id == conflict_id).values(crm_value=FORMATTED))
    mark = bench.mark()
    assert await bench.service.resolve(conflict_id, take="crm") == E164
    assert bench.writes_since(mark) == []
    assert bench.contact(EMAIL).phone == E164
    link = bench.link(EMAIL)
    with bench.workspace.database.session() as session:
        session.execute(update(CrmLinkRow).where(CrmLinkRow.crm_id == link.crm_id)
                        .values(base_values={**link.base_values, "phone": FORMATTED}))
    await push_of_another_field_leaves_the_phone(bench)


@scenario
async def test_a_pulled_formatted_phone_is_kept_in_e164_and_not_sent_back(any_crm: SyncBench) -> None:
    bench = any_crm
    await linked(bench)
    await bench.edit(bench.link(EMAIL).crm_id, phone_in_crm(bench, FORMATTED))
    pulled = await bench.sync()
    assert pulled.counts["updated"] == 1, pulled.changes
    assert bench.contact(EMAIL).phone == E164
    assert bench.link(EMAIL).base_values["phone"] == E164
    await push_of_another_field_leaves_the_phone(bench)


@scenario
async def test_a_number_changed_in_the_crm_and_written_another_way_is_still_a_change(any_crm: SyncBench) -> None:
    bench = any_crm
    await linked(bench)
    await bench.edit(bench.link(EMAIL).crm_id, phone_in_crm(bench, "+1 (415) 555-0122"))
    pulled = await bench.sync()
    assert pulled.counts["updated"] == 1, pulled.changes
    assert bench.contact(EMAIL).phone == "+14155550122"
    bench.change(EMAIL, phone="(415) 555-0133")
    pushed = await bench.sync()
    assert pushed.counts["updated"] == 1, pushed.changes
    assert await bench.crm_value(EMAIL, "phone") == "+14155550133"
