"""A write the CRM refuses when a run resumes it after a crash is not sent again by the same run (issue 14 §5).

Found by the fault drill with revocations (``bench/fault_drill.py --crm hubspot --revoke``): a run stopped with
writes still pending in the outbox; the next run resumed them, the CRM refused one, and the same run's push then
planned that still unlinked contact again and sent it a second time. A CRM that refuses a record refuses it again
(two failures logged for one record, one more request); when the second send landed, the run listed the contact
as failed and as created at once, and the Sync Monitor showed a failure for a contact the CRM held.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from crm_desktop.domain.models import Contact, SyncDirection
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmAdapter, OutboundRecord, RecordResult
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import SyncRunStatus
from tests.sync.conftest import SyncBench, scenario

REFUSED = "rae@example.com"


class ProcessDied(BaseException):
    """Stands for the process dying at that point (nothing after it runs, as after a SIGKILL)."""


def die_before_the_crm_write(bench: SyncBench, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next run's process dies with its writes recorded in the outbox and not yet sent."""
    actions = bench.service.actions
    adapter_for = actions.adapter_for

    def dying_adapter_for(integration: object) -> CrmAdapter:
        adapter = adapter_for(integration)

        async def dying_upsert(obj: RecordObject, records: Sequence[OutboundRecord],
                               answers: list[RecordResult | None] | None = None) -> list[RecordResult]:
            raise ProcessDied

        adapter.upsert = dying_upsert  # type: ignore[method-assign]
        return adapter

    monkeypatch.setattr(actions, "adapter_for", dying_adapter_for)


@scenario
async def test_a_resumed_write_the_crm_refuses_is_sent_and_logged_once_in_the_run(
    any_crm: SyncBench, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = any_crm
    bench.save(Contact(email=REFUSED, first_name="Rae", last_name="Refused"))
    die_before_the_crm_write(bench, monkeypatch)
    with pytest.raises(ProcessDied):
        await bench.sync(SyncDirection.PUSH)
    monkeypatch.undo()
    integration_id = bench.integration.id
    assert integration_id is not None
    assert [i.email for i in bench.store.pending_outbox(integration_id, RecordObject.CONTACT)] == [REFUSED]

    # The CRM refuses the record, every time it is sent (as it refuses an invalid value).
    bench.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, probability=1.0)])
    resumed = await bench.sync(SyncDirection.PUSH)

    assert resumed.status is not SyncRunStatus.SUCCEEDED
    assert resumed.run_id is not None
    logged = [(row.record_key, row.outcome) for row in bench.store.record_log(resumed.run_id)]
    assert logged == [(REFUSED, RecordOutcome.FAILED)], "the refused write was sent again by the same run"
    assert resumed.counts["failed"] == 1
    assert bench.store.pending_outbox(integration_id, RecordObject.CONTACT) == []
