"""A real run's plan keeps exact counts and a bounded sample of its changes, while every record's outcome and
changes go to the store page by page; a dry run keeps its whole plan for the preview."""

from __future__ import annotations

import pytest

from crm_desktop.app.sync_monitor import attempt_figures
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.sync import engine
from crm_desktop.sync.engine import SyncProgress
from crm_desktop.sync.plan import ChangeAction, Side
from tests.sync.conftest import SyncBench, person, scenario

CONTACTS = 250
SAMPLE = 5


def recorded_attempt(bench: SyncBench) -> tuple[int | None, int, int]:
    """The run, contacts synced and records failed the Sync Monitor recorded for the last attempt."""
    latest = bench.workspace.monitor.store.latest_attempt(bench.integration.id or 0)
    assert latest is not None
    return latest.run_id, latest.contacts_synced, latest.records_failed


@scenario
async def test_a_real_run_keeps_a_sample_of_changes_and_exact_counts(hubspot: SyncBench,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "SAMPLE_SIZE", SAMPLE)
    hubspot.save(*(person(n) for n in range(CONTACTS)))
    logged_while_pushing: list[tuple[int, int]] = []

    def progress(step: SyncProgress) -> None:
        if step.phase.startswith("pushing"):
            run = hubspot.service.runs(hubspot.name, limit=1)[0]
            logged_while_pushing.append((step.done, hubspot.store.record_log_count(run.id)))

    result = await hubspot.service.sync(hubspot.name, progress=progress)

    assert result.status is SyncRunStatus.SUCCEEDED, result.failures
    assert result.counts["created"] == CONTACTS and result.counts["failed"] == 0
    # The plan keeps the first few changes, and counts every one.
    assert len(result.plan.changes) == SAMPLE and len(result.changes) == SAMPLE
    assert result.plan.omitted == CONTACTS - SAMPLE and not result.plan.complete
    assert result.plan.count(obj=RecordObject.CONTACT, side=Side.CRM, action=ChangeAction.CREATE) == CONTACTS
    assert [c.email for c in result.plan.changes] == [f"person{n}@example.com" for n in range(SAMPLE)]
    assert all(c.action is ChangeAction.CREATE and c.fields for c in result.plan.changes)
    # What the Sync Monitor records comes from the counts and the store, not from the sample.
    assert recorded_attempt(hubspot) == (result.run_id, CONTACTS, 0)
    # Every record is in the run's record log and audit, written batch by batch while the run went on.
    assert result.run_id is not None
    log = hubspot.store.record_log(result.run_id)
    assert len(log) == CONTACTS and {row.outcome for row in log} == {RecordOutcome.CREATED}
    assert len({row.entity_id for row in hubspot.audit_rows("push") if row.run_id == result.run_id}) == CONTACTS
    first_batch, logged = logged_while_pushing[0]
    assert first_batch < CONTACTS and logged == first_batch, logged_while_pushing


@scenario
async def test_a_dry_run_keeps_its_whole_plan(hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "SAMPLE_SIZE", SAMPLE)
    hubspot.save(*(person(n) for n in range(CONTACTS)))
    dry = await hubspot.sync(dry_run=True)
    assert dry.plan.complete and dry.plan.omitted == 0
    assert sorted(c.email for c in dry.changes) == sorted(f"person{n}@example.com" for n in range(CONTACTS))
    assert dry.counts["created"] == CONTACTS
    figures = attempt_figures(hubspot.integration, dry)
    assert figures is not None and figures.contacts_synced == CONTACTS


@scenario
async def test_failures_beyond_the_sample_are_counted_and_alerted(hubspot: SyncBench,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "FAILURE_SAMPLE", 1)
    hubspot.save(*(person(n) for n in range(12)))
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[2, 5, 9]))
    result = await hubspot.sync()
    assert result.status is SyncRunStatus.PARTIAL
    assert (result.counts["created"], result.counts["failed"]) == (9, 3)
    assert len(result.failures) == 1 and result.unlisted_failures == 2
    assert result.failed_by_category == {ErrorCategory.VALIDATION: 3}
    assert recorded_attempt(hubspot) == (result.run_id, 9, 3)
    [alert] = hubspot.workspace.alerts.alerts_for_run(hubspot.integration, result)
    assert alert.alert.message.startswith("HubSpot refused 3 records of “crm” in run #")
    assert f"{result.failures[0].email}: " in alert.alert.message and " and 2 more)." in alert.alert.message
    assert result.run_id is not None
    failed = [r for r in hubspot.store.record_log(result.run_id) if r.outcome is RecordOutcome.FAILED]
    assert len(failed) == 3
