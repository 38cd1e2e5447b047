"""The Sync Monitor's figures in the store: attempts, hourly sums by upsert, latency, health facts, run failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.database import Database
from crm_desktop.store.metrics_store import AttemptFigures, MetricsStore, hour_of
from crm_desktop.store.models import OutboxStatus, SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import IntegrationStore
from crm_desktop.store.sync_store import SyncStore

pytestmark = pytest.mark.postgres

AT = datetime(2026, 12, 1, 9, 15, tzinfo=UTC)


def integration(database: Database, name: str = "hubspot-marketing") -> int:
    added = IntegrationStore(database).add(Integration(provider=Provider.HUBSPOT, name=name))
    assert added.id is not None
    return added.id


def test_attempts_in_one_hour_add_up_and_keep_the_most_quota_used(database: Database) -> None:
    metrics = MetricsStore(database)
    hubspot = integration(database)
    metrics.record_attempt(AttemptFigures(hubspot, None, SyncRunStatus.SUCCEEDED, contacts_synced=40, leads_synced=2,
                                          api_calls=10, api_errors=1, quota_limit=1000, quota_remaining=900, at=AT))
    metrics.record_attempt(AttemptFigures(hubspot, None, SyncRunStatus.FAILED, ErrorCategory.NETWORK, "offline",
                                          records_failed=3, api_calls=4, api_errors=4, quota_limit=1000,
                                          quota_remaining=950, at=AT + timedelta(minutes=30)))
    metrics.record_attempt(AttemptFigures(hubspot, None, SyncRunStatus.SUCCEEDED, contacts_synced=5,
                                          at=AT + timedelta(hours=1)))

    hours = metrics.hourly(AT - timedelta(hours=2))

    assert [h.hour for h in hours] == [hour_of(AT), hour_of(AT) + timedelta(hours=1)]
    first, second = hours
    assert (first.runs, first.runs_succeeded, first.contacts_synced, first.leads_synced, first.records_failed,
            first.api_calls, first.api_errors) == (2, 1, 40, 2, 3, 14, 5)
    assert (first.quota_used, first.quota_limit) == (100, 1000), "the most used in the hour, not the last"
    assert (second.runs, second.contacts_synced, second.quota_used) == (1, 5, None)
    assert metrics.hourly(AT + timedelta(hours=1)) == [second]
    latest = metrics.latest_attempt(hubspot)
    assert latest is not None and latest.contacts_synced == 5


def test_event_latency_adds_to_its_hour_and_refuses_nonsense(database: Database) -> None:
    metrics = MetricsStore(database)
    hubspot = integration(database)
    metrics.record_event_latency(hubspot, 2.5, at=AT)
    metrics.record_event_latency(hubspot, 1.5, at=AT + timedelta(minutes=5))
    with pytest.raises(ValueError, match="finite number of seconds"):
        metrics.record_event_latency(hubspot, -1.0)
    with pytest.raises(ValueError):
        metrics.record_event_latency(hubspot, float("nan"))

    [hour] = metrics.hourly(AT)
    assert (hour.latency_seconds, hour.latency_events, hour.runs) == (4.0, 2, 0)


def test_health_facts_tell_last_success_backlog_lock_and_newest_attempt(database: Database) -> None:
    metrics = MetricsStore(database)
    sync = SyncStore(database)
    hubspot, idle = integration(database), integration(database, "pipedrive-sales")
    ok = sync.start_run(hubspot, SyncTrigger.MANUAL, "both")
    sync.finish_run(ok, SyncRunStatus.SUCCEEDED)
    failed = sync.start_run(hubspot, SyncTrigger.MANUAL, "both")
    sync.finish_run(failed, SyncRunStatus.FAILED)
    metrics.record_attempt(AttemptFigures(hubspot, failed, SyncRunStatus.FAILED, ErrorCategory.AUTH, "refused"))
    sync.add_outbox(hubspot, failed, [
        {"object": RecordObject.CONTACT, "local_id": n, "email": f"p{n}@example.com", "values_hash": "h"}
        for n in (1, 2)
    ])
    assert sync.acquire_lock(hubspot)
    running = sync.start_run(hubspot, SyncTrigger.SCHEDULED, "both")
    sync.heartbeat(hubspot, running)

    facts = metrics.health_facts([hubspot, idle])

    assert facts[hubspot].last_success_at == sync.get_run(ok).finished_at
    assert facts[hubspot].outbox_pending == 2
    assert facts[hubspot].running_since == sync.get_run(running).started_at
    attempt = facts[hubspot].latest_attempt
    assert attempt is not None and attempt.error_category is ErrorCategory.AUTH and attempt.run_id == failed
    assert facts[idle].latest_attempt is None and facts[idle].last_success_at is None
    assert (facts[idle].outbox_pending, facts[idle].running_since) == (0, None)
    assert OutboxStatus.PENDING.value == "pending"


def test_a_runs_failures_group_by_category_with_a_sample(database: Database) -> None:
    metrics = MetricsStore(database)
    sync = SyncStore(database)
    hubspot = integration(database)
    run = sync.start_run(hubspot, SyncTrigger.MANUAL, "push")
    contact = RecordObject.CONTACT
    sync.add_record_outcomes(run, [
        (contact, "a@example.com", None, RecordOutcome.FAILED, ErrorCategory.VALIDATION, "email: not an email"),
        (contact, "b@example.com", None, RecordOutcome.CREATED, None, None),
        (contact, "c@example.com", None, RecordOutcome.FAILED, ErrorCategory.VALIDATION, "phone: too long"),
        (contact, "d@example.com", None, RecordOutcome.FAILED, ErrorCategory.DUPLICATE, "exists as 501"),
        (contact, "e@example.com", None, RecordOutcome.SKIPPED, ErrorCategory.NOT_FOUND, "deleted in the CRM"),
    ])

    groups = metrics.error_groups(run)

    assert [(g.category, g.count, g.sample_record, g.sample_message) for g in groups] == [
        (ErrorCategory.VALIDATION, 2, "a@example.com", "email: not an email"),
        (ErrorCategory.DUPLICATE, 1, "d@example.com", "exists as 501"),
    ]
    failed = list(metrics.failed_records(run, page_size=2))
    assert [f.record_key for f in failed] == ["a@example.com", "c@example.com", "d@example.com"]
    assert metrics.error_groups(run + 1) == []


def test_a_run_elsewhere_is_judged_by_the_locks_clock_not_this_desktops(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a lock's heartbeats are the server's time: a desktop whose clock is ten minutes ahead showed a
    colleague's live run as over (its own clock minus the server's heartbeat) and its Sync Monitor said "in sync".
    The silence is the database's own reckoning."""
    if database.is_sqlite:
        pytest.skip("a SQLite file is shared by the processes of one machine, which share its clock")
    from crm_desktop.app.sync_monitor import HealthState, health_state  # the health line is the app's

    hubspot = integration(database)
    assert SyncStore(database).acquire_lock(hubspot, owner="desk-2:4242")
    fast_clock = datetime.now(UTC) + timedelta(minutes=10)

    fact = MetricsStore(database).health_facts([hubspot])[hubspot]

    state, reason = health_state(fact, running_here=False, now=fast_clock)
    assert state is HealthState.SYNCING, reason
    assert "on desk-2, process 4242" in reason and "last heartbeat 0 s ago" in reason, reason
