"""An undo the CRM stops half-way (the token refused between two batches): what the CRM took is put back here too,
the run says what happened, and undoing again puts back the rest."""

from __future__ import annotations

import pytest

from crm_desktop.domain.models import Contact
from crm_desktop.providers.errors import AuthError
from crm_desktop.sandbox.core import FaultKind, FaultRule, LoggedRequest
from crm_desktop.store.models import SyncRunStatus
from tests.sync.conftest import SyncBench, scenario

COUNT = 250  # two undo batches of 200 and 50 records; HubSpot writes 100 a request


@scenario
async def test_an_undo_stopped_between_batches_keeps_what_went_through(hubspot: SyncBench) -> None:
    emails = [f"fan{n}@example.com" for n in range(COUNT)]
    hubspot.save(*[Contact(email=email, first_name=f"Fan{n}", last_name="Lee") for n, email in enumerate(emails)])
    await hubspot.sync()
    for n, email in enumerate(emails):
        hubspot.change(email, first_name=f"WRONG{n}")
    pushed = await hubspot.sync()

    # The token stops working once the first batch of the undo has been written (two HubSpot requests): the
    # sandbox logs a request as it arrives, before it authenticates it.
    sandbox = hubspot.sandbox
    logged = sandbox.log_request
    updates: list[LoggedRequest] = []

    def log_request(entry: LoggedRequest) -> None:
        logged(entry)
        if entry.path.endswith("/batch/update"):
            updates.append(entry)
            if len(updates) == 3:
                sandbox.faults.add(FaultRule(FaultKind.TOKEN_EXPIRY, probability=1.0, remaining=1))

    sandbox.log_request = log_request  # type: ignore[method-assign]
    with pytest.raises(AuthError):
        await hubspot.service.undo(pushed.run_id or 0)
    sandbox.log_request = logged  # type: ignore[method-assign]

    [stopped, *_] = hubspot.service.runs()
    assert (stopped.direction, stopped.status, stopped.updated) == ("undo", SyncRunStatus.FAILED, 200)
    assert "with 200 records put back on both sides: undo it again to put back the rest" in (stopped.message or "")
    firsts = [hubspot.contact(email).first_name for email in emails]
    assert firsts[:200] == [f"Fan{n}" for n in range(200)], "the CRM took them back: so does the store"
    assert firsts[200:] == [f"WRONG{n}" for n in range(200, COUNT)]

    again = await hubspot.service.undo(pushed.run_id or 0)
    assert again.overridden == []
    assert (again.restored_local, again.restored_crm) == (COUNT - 200, COUNT - 200)
    assert [hubspot.contact(email).first_name for email in emails] == [f"Fan{n}" for n in range(COUNT)]
    assert await hubspot.crm_value(emails[-1], "firstName") == f"Fan{COUNT - 1}"
