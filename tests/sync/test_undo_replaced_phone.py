"""Undo of a pushed phone puts the CRM's number back (found by the two-way crash drill on Pipedrive).

A Pipedrive person holds a list of phones, and a sync reads the primary one. A push of a new number makes it the
primary one and keeps the old number as another; the undo's write of the old number was then taken for one the
person already held, so the new number stayed primary: the CRM kept the run's phone while the local side got the
old one back, and the next sync pulled the run's phone in again.
"""

from __future__ import annotations

from crm_desktop.domain.models import Contact, SyncDirection
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from tests.sync.conftest import SyncBench, scenario

EMAIL = "pia@example.com"
BEFORE = "+447800087283"
PUSHED = "+447400859772"


@scenario
async def test_undo_of_a_pushed_phone_puts_the_old_number_back_on_both_sides(any_crm: SyncBench) -> None:
    bench = any_crm
    bench.save(Contact(email=EMAIL, first_name="Pia", last_name="Prior", phone=BEFORE))
    first = await bench.sync(SyncDirection.BOTH)
    assert first.counts["created"] == 1
    bench.change(EMAIL, phone=PUSHED)
    pushed = await bench.sync(SyncDirection.BOTH)
    assert pushed.run_id is not None and pushed.counts["updated"] == 1
    assert await bench.crm_value(EMAIL, "phone") == PUSHED

    await bench.service.undo(pushed.run_id, SyncTrigger.CLI)

    assert await bench.crm_value(EMAIL, "phone") == BEFORE
    assert bench.contact(EMAIL).phone == BEFORE
    # Both sides agree with the link's base: the next sync has nothing to move either way.
    after = await bench.sync(SyncDirection.BOTH)
    assert after.status is SyncRunStatus.SUCCEEDED
    assert (after.counts["created"], after.counts["updated"]) == (0, 0), after.changes
    assert await bench.crm_value(EMAIL, "phone") == BEFORE
    assert bench.contact(EMAIL).phone == BEFORE
