"""Undo of a run that resumed a write to a contact found in the CRM by email (issue 14 section 5, the crash drill).

A push write queued for a contact with no link yet, because the CRM already held it under the same email, and then
resumed after the process died between the CRM write and its recording, was audited with an empty old value for
every field: the outbox did not keep what the write overwrote. ``runs undo`` then took the record for one the run
had created and kept the CRM's new values (or, with a local change in the same run, blanked values both sides had
held). The outbox now keeps the CRM's values each write overwrites, so the resuming run audits exactly those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import null, update

from crm_desktop.domain.models import Contact, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.providers.contract import CrmAdapter, OutboundRecord, RecordResult
from crm_desktop.store.models import OutboxRow, SyncRunStatus, SyncTrigger
from tests.sync.conftest import SyncBench, scenario

MATCHED = "dee@example.com"
NEW = "neo@example.com"
#: The contact both sides hold before the run: same email and phone; the local side has another first name.
CRM_HELD = {"firstName": "Dee", "lastName": "Diff", "phone": "+447800087283"}
LOCAL_FIRST_NAME = "Deirdre"


class ProcessDied(BaseException):
    """Stands for the process dying at that point (nothing after it runs, as after a SIGKILL)."""


async def crm_snapshot(bench: SyncBench, email: str) -> dict[str, Any]:
    """The CRM's values of the compared fields, read through the app's adapter."""
    return {name: await bench.crm_value(email, name) for name in CRM_HELD}


def local_snapshot(bench: SyncBench, email: str) -> dict[str, Any]:
    contact = bench.contact(email)
    return {"firstName": contact.first_name, "lastName": contact.last_name, "phone": contact.phone}


async def seed_in_crm(bench: SyncBench, email: str, values: dict[str, str]) -> None:
    """A salesperson's contact, created in the CRM through its own API."""
    adapter = bench.workspace.crm.adapter_for(bench.integration)
    try:
        fields = {bench.crm_field(name): value for name, value in values.items()}
        [result] = await adapter.upsert(RecordObject.CONTACT, [OutboundRecord(email, fields)])
        assert result.crm_id, result.message
    finally:
        await adapter.aclose()


def die_after_the_crm_write(bench: SyncBench, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next run's process dies right after the CRM took its write, before the store recorded it."""
    actions = bench.service.actions
    adapter_for = actions.adapter_for

    def dying_adapter_for(integration: Any) -> CrmAdapter:
        adapter = adapter_for(integration)
        send = adapter.upsert

        async def dying_upsert(obj: RecordObject, records: Sequence[OutboundRecord],
                               answers: list[RecordResult | None] | None = None) -> list[RecordResult]:
            # The process dies before the answers are recorded: they are not passed on.
            await send(obj, records)
            raise ProcessDied

        adapter.upsert = dying_upsert  # type: ignore[method-assign]
        return adapter

    monkeypatch.setattr(actions, "adapter_for", dying_adapter_for)


@pytest.mark.parametrize("resumed_by", [SyncDirection.PUSH, SyncDirection.BOTH], ids=lambda d: d.value)
@scenario
async def test_undo_of_a_resumed_write_to_a_contact_found_by_email_restores_what_both_sides_held(
    any_crm: SyncBench, monkeypatch: pytest.MonkeyPatch, resumed_by: SyncDirection,
) -> None:
    bench = any_crm
    await seed_in_crm(bench, MATCHED, CRM_HELD)
    bench.save(
        Contact(email=MATCHED, first_name=LOCAL_FIRST_NAME, last_name=CRM_HELD["lastName"], phone=CRM_HELD["phone"]),
        Contact(email=NEW, first_name="Neo", last_name="Novel", phone="+447400859772"),
    )
    crm_before = await crm_snapshot(bench, MATCHED)
    assert crm_before == CRM_HELD

    die_after_the_crm_write(bench, monkeypatch)
    with pytest.raises(ProcessDied):
        await bench.sync(SyncDirection.PUSH)
    monkeypatch.undo()
    integration_id = bench.integration.id
    assert integration_id is not None
    pending = {i.email: i for i in bench.store.pending_outbox(integration_id, RecordObject.CONTACT)}
    assert set(pending) == {MATCHED, NEW}
    assert pending[MATCHED].crm_id is None, "the contact was only found by email, never linked"
    # The outbox kept what the write overwrites in the CRM; a create overwrites nothing.
    assert pending[MATCHED].crm_old_values == {"firstName": "Dee"}
    assert pending[NEW].crm_old_values is None
    assert (await crm_snapshot(bench, MATCHED))["firstName"] == LOCAL_FIRST_NAME, "the write landed before the death"

    resumed = await bench.sync(resumed_by)
    assert resumed.status is SyncRunStatus.SUCCEEDED, resumed.message
    assert bench.store.pending_outbox(integration_id, RecordObject.CONTACT) == []
    assert resumed.run_id is not None
    matched_id = str(bench.local_id(MATCHED))
    audited = {(row.side, row.field): (row.old_value, row.new_value)
               for row in bench.store.audit_for_run(resumed.run_id) if row.entity_id == matched_id}
    assert audited == {("crm", "firstName"): ("Dee", LOCAL_FIRST_NAME)}, "the resumed write's old values are lost"

    report = await bench.service.undo(resumed.run_id, SyncTrigger.CLI)

    # Both sides hold what they held before the run: the CRM's own values (the phone both held is not blanked),
    # and locally the first name from before the run's write, as undoing an uninterrupted run leaves it.
    assert await crm_snapshot(bench, MATCHED) == crm_before
    assert local_snapshot(bench, MATCHED) == crm_before
    # A contact the run created stays (sync never deletes), with its values.
    assert [k for k in report.kept if k.startswith(NEW)] == [f"{NEW}: created in the CRM by the run; kept "
                                                             "(sync never deletes)"]
    assert (await bench.crm_value(NEW, "phone")) == "+447400859772"


@scenario
async def test_a_write_queued_before_the_outbox_kept_old_values_is_audited_against_the_link_base(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write left pending by a version without the column (NULL after the migration) still audits right."""
    bench = hubspot
    email = "ada@example.com"
    bench.save(Contact(email=email, first_name="Ada", last_name="Lovelace"))
    first = await bench.sync(SyncDirection.PUSH)
    assert first.counts["created"] == 1
    bench.change(email, first_name="Augusta")
    die_after_the_crm_write(bench, monkeypatch)
    with pytest.raises(ProcessDied):
        await bench.sync(SyncDirection.PUSH)
    monkeypatch.undo()
    integration_id = bench.integration.id
    assert integration_id is not None
    [pending] = bench.store.pending_outbox(integration_id, RecordObject.CONTACT)
    assert pending.crm_old_values == {"firstName": "Ada"}
    with bench.workspace.database.session() as session:
        session.execute(update(OutboxRow).values(crm_old_values=null()))
    [pending] = bench.store.pending_outbox(integration_id, RecordObject.CONTACT)
    assert pending.crm_old_values is None

    resumed = await bench.sync(SyncDirection.PUSH)
    assert resumed.run_id is not None

    audited = {row.field: (row.old_value, row.new_value) for row in bench.store.audit_for_run(resumed.run_id)}
    assert audited == {"firstName": ("Ada", "Augusta")}
    await bench.service.undo(resumed.run_id, SyncTrigger.CLI)
    assert await bench.crm_value(email, "firstName") == "Ada"
