"""An undo the CRM let through only in part can be run again, and puts back the rest."""

from __future__ import annotations

import pytest

from crm_desktop.domain.models import Contact
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.sync.actions import UndoRefused
from tests.sync.conftest import SyncBench, scenario

EMAILS = [f"fan{n}@example.com" for n in range(8)]


@scenario
async def test_an_undo_refused_in_part_is_finished_by_a_second_one(any_crm: SyncBench) -> None:
    any_crm.save(*[Contact(email=email, first_name=f"Fan{n}", last_name="Lee") for n, email in enumerate(EMAILS)])
    await any_crm.sync()
    for n, email in enumerate(EMAILS):
        any_crm.change(email, first_name=f"WRONG{n}")
    pushed = await any_crm.sync()
    assert pushed.counts["updated"] == len(EMAILS)

    # The CRM refuses three of the records the undo writes back.
    any_crm.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=3))
    first = await any_crm.service.undo(pushed.run_id or 0)
    first_run, _ = any_crm.service.run(first.run_id)
    assert first_run.status is SyncRunStatus.PARTIAL and first_run.failed == 3
    wrong = [email for email in EMAILS if any_crm.contact(email).first_name.startswith("WRONG")]
    assert len(wrong) == 3

    # Once the CRM takes them, the same undo again puts back those three, and nothing else is said to have changed.
    second = await any_crm.service.undo(pushed.run_id or 0)
    assert second.overridden == []
    assert (second.restored_local, second.restored_crm) == (3, 3)
    assert [any_crm.contact(email).first_name for email in EMAILS] == [f"Fan{n}" for n in range(len(EMAILS))]
    for email in wrong:
        assert (await any_crm.crm_value(email, "firstName")).startswith("Fan")
    second_run, _ = any_crm.service.run(second.run_id)
    assert (second_run.status, second_run.updated) == (SyncRunStatus.SUCCEEDED, 3)

    with pytest.raises(UndoRefused, match=f"already undone \\(by run {second.run_id}\\)"):
        await any_crm.service.undo(pushed.run_id or 0)
