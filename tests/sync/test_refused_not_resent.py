"""A record the CRM refused for its data is not sent again by the next runs until it changes (or on "Retry failed").

Found hands-on: a contact Salesforce refused (``STRING_TOO_LONG``: an email over its 80 characters) was sent
again, and refused again, by every scheduled run until the marketer fixed it: each run spent API calls on it and
reported the same failure, and the Sync Monitor and alerts repeated it. Now each following run reports it as
skipped, with the CRM's refusal, and sends it again once it changes or when the marketer asks ("Retry failed").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from crm_desktop.domain.models import Contact, Provider, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import FieldDirection, SyncRunStatus
from crm_desktop.sync.engine import SyncResult
from crm_desktop.sync.plan import ChangeAction
from tests.sync.conftest import SyncBench, open_bench, scenario

REFUSED = "rae@example.com"
FINE = "fay@example.com"
#: 85 characters: valid here, too long for Salesforce's Email field (80).
LONG = "rae.maximiliana.evangelina.bartholomea.rosalind.refused@marketing.analytical-engines.com"


def sent_for(bench: SyncBench, mark: int, email: str) -> list[str]:
    """The paths of the CRM writes since ``mark`` whose body names ``email``."""
    return [r.path for r in bench.writes_since(mark) if email in str(r.body)]


def skip_reasons(result: SyncResult, email: str) -> list[str]:
    """Why a run (or a dry run) skipped ``email``."""
    return [c.reason for c in result.changes if c.email == email and c.action is ChangeAction.SKIP]


@scenario
async def test_a_record_salesforce_refuses_is_skipped_until_it_changes(data_dir: Path) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        assert len(LONG) > 80
        bench.save(Contact(email=LONG, first_name="Rae", last_name="Refused"),
                   Contact(email=FINE, first_name="Fay", last_name="Fine"))
        first = await bench.sync()
        assert first.counts["failed"] == 1 and first.counts["created"] == 1
        assert [(f.email, f.category) for f in first.failures] == [(LONG, ErrorCategory.VALIDATION)]
        assert first.run_id is not None

        # The next run does not send it again: no request, no failure, a skip that says why.
        mark = bench.mark()
        second = await bench.sync()
        assert sent_for(bench, mark, LONG) == [], "the refused record was sent again unchanged"
        assert second.status is SyncRunStatus.SUCCEEDED
        assert second.counts["failed"] == 0 and second.failures == []
        [reason] = skip_reasons(second, LONG)
        assert reason.startswith("refused by Salesforce on ")
        assert "data value too large" in reason and reason.endswith(
            "it is sent again once it changes, or when that run's failures are retried (Retry failed in the Sync "
            f"Monitor, or crm-desktop runs retry {first.run_id})")
        assert f"(run {first.run_id})" in reason
        assert second.run_id is not None
        logged = [(r.record_key, r.outcome, r.error_category, r.message) for r in bench.store.record_log(second.run_id)
                  if r.record_key == LONG]
        assert logged == [(LONG, RecordOutcome.SKIPPED, None, reason)]
        assert bench.service.run_errors(second.run_id) == {}, "the Sync Monitor would repeat the error"

        # A dry run (the preview) plans the same skip, and sends nothing either.
        mark = bench.mark()
        preview = await bench.sync(dry_run=True)
        assert skip_reasons(preview, LONG) == [reason]
        assert sent_for(bench, mark, LONG) == []

        # Fixed locally (a shorter email), it is sent, and lands.
        bench.store.save_local(RecordObject.CONTACT, bench.local_id(LONG),
                               bench.contact(LONG).model_copy(update={"email": REFUSED}))
        mark = bench.mark()
        third = await bench.sync()
        assert sent_for(bench, mark, REFUSED), "the fixed record was not sent"
        assert third.counts["created"] == 1 and third.counts["failed"] == 0
        assert await bench.crm_value(REFUSED, "firstName") == "Rae"
        assert await bench.crm_record(LONG) is None
        assert bench.link(REFUSED).crm_id
    finally:
        bench.workspace.close()


@scenario
async def test_retry_failed_sends_a_refused_record_again(data_dir: Path) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        bench.save(Contact(email=LONG, first_name="Rae", last_name="Refused"))
        first = await bench.sync()
        assert first.counts["failed"] == 1 and first.run_id is not None
        skipped = await bench.sync(SyncDirection.PUSH)
        assert skip_reasons(skipped, LONG)

        # The marketer asks for it: "Retry failed" on the run that failed sends it, though it did not change.
        mark = bench.mark()
        report = await bench.workspace.monitor.retry_failed(first.run_id)
        assert report.retried == 1 and report.result is not None
        assert sent_for(bench, mark, LONG), "Retry failed did not send the refused record"
        assert report.result.counts["failed"] == 1
        assert skip_reasons(report.result, LONG) == []

        # Refused again, it waits again: the next scheduled run skips it, naming the retry's refusal.
        mark = bench.mark()
        after = await bench.sync(SyncDirection.PUSH)
        assert sent_for(bench, mark, LONG) == []
        [reason] = skip_reasons(after, LONG)
        assert f"(run {report.result.run_id})" in reason
    finally:
        bench.workspace.close()


@scenario
async def test_a_record_any_crm_refuses_is_not_sent_again_unchanged(any_crm: SyncBench) -> None:
    bench = any_crm
    # The CRM refuses the first record written, once: sent again, it would land.
    bench.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[1], remaining=1)])
    bench.save(Contact(email=REFUSED, first_name="Rae", last_name="Refused"))
    first = await bench.sync(SyncDirection.PUSH)
    assert [(f.email, f.category) for f in first.failures] == [(REFUSED, ErrorCategory.VALIDATION)]

    mark = bench.mark()
    second = await bench.sync(SyncDirection.PUSH)
    assert bench.writes_since(mark) == [], "the refused record was sent again unchanged"
    assert second.counts["failed"] == 0 and second.counts["created"] == 0
    [reason] = skip_reasons(second, REFUSED)
    crm = {Provider.SALESFORCE: "Salesforce", Provider.HUBSPOT: "HubSpot", Provider.PIPEDRIVE: "Pipedrive"}
    assert reason.startswith(f"refused by {crm[bench.provider]} on ")

    bench.change(REFUSED, last_name="Accepted")
    third = await bench.sync(SyncDirection.PUSH)
    assert third.counts["created"] == 1 and third.counts["failed"] == 0
    assert await bench.crm_value(REFUSED, "lastName") == "Accepted"
    assert bench.local_id(REFUSED, RecordObject.CONTACT)


@scenario
async def test_a_refused_record_is_sent_again_once_the_mapping_changes(hubspot: SyncBench) -> None:
    bench = hubspot
    bench.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[1], remaining=1)])
    bench.save(Contact(email=REFUSED, first_name="Rae", last_name="Refused", company="Refusals Inc"))
    first = await bench.sync(SyncDirection.PUSH)
    assert [f.email for f in first.failures] == [REFUSED]
    mark = bench.mark()
    held = await bench.sync(SyncDirection.PUSH)
    assert bench.writes_since(mark) == [] and skip_reasons(held, REFUSED)

    # The marketer stops sending the company: what the record sends changed, so it is sent again.
    mappings = [replace(m, direction=FieldDirection.OFF) if m.local_field == "company" else m
                for m in bench.mappings()]
    bench.service.save_mappings(bench.integration, RecordObject.CONTACT, mappings)
    mark = bench.mark()
    second = await bench.sync(SyncDirection.PUSH)
    assert sent_for(bench, mark, REFUSED), "the record was not sent under the new mapping"
    assert second.counts["created"] == 1 and skip_reasons(second, REFUSED) == []
    assert await bench.crm_value(REFUSED, "firstName") == "Rae"
