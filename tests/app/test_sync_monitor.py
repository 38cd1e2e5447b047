"""The Sync Monitor service against an in-process HubSpot sandbox: health, metrics, error groups, retry, CSV export."""

from __future__ import annotations

import asyncio
import csv
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_desktop.app.sync_monitor import (
    HealthState,
    MetricsRange,
    NothingToRetry,
    health_state,
    inert_cell,
)
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.errors import MissingCredentialsError
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.lock_state import LockHolder
from crm_desktop.store.metrics_store import AttemptFigures, HealthFacts
from crm_desktop.store.models import SyncLockRow, SyncRunStatus, SyncTrigger
from crm_desktop.store.process_owner import machine_name
from crm_desktop.vault import Vault
from tests.app.conftest import hubspot_workspace
from tests.support.memory_keyring import MemoryKeyring

NAME = "hubspot-marketing"


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig())


@pytest.fixture
def workspace(tmp_path: Path, memory_keyring: MemoryKeyring | None, sandbox: HubSpotSandbox) -> Iterator[Workspace]:
    assert memory_keyring is not None
    opened = hubspot_workspace(tmp_path / "data", memory_keyring, sandbox, NAME)
    opened.contacts.save_many(
        Contact(email=f"person{n}@example.com", first_name=f"Ada{n}", last_name="Lovelace") for n in range(1, 5)
    )
    try:
        yield opened
    finally:
        opened.close()


def test_a_successful_sync_is_in_sync_with_its_figures_charted(workspace: Workspace) -> None:
    [before] = workspace.monitor.health()
    assert (before.state, before.last_success_at, before.outbox_pending) == (HealthState.NOT_SYNCED, None, 0)

    result = asyncio.run(workspace.sync.sync(NAME))

    [line] = workspace.monitor.health()
    assert line.state is HealthState.IN_SYNC, line.reason
    assert line.last_success_at == workspace.sync.store.get_run(result.run_id or 0).finished_at
    assert line.outbox_pending == 0
    assert line.quota_limit is not None and line.quota_remaining is not None
    assert line.quota_remaining < line.quota_limit, "the run's calls came off the daily quota"
    series = workspace.monitor.metrics(MetricsRange.DAY)
    assert len(series.points) == 24
    now_point = series.points[-1]
    assert (now_point.contacts_per_hour, now_point.runs, now_point.success_rate) == (4.0, 1, 1.0)
    assert now_point.api_error_rate == 0.0
    assert now_point.quota_used_share[NAME] > 0
    assert all(p.runs == 0 and p.success_rate is None for p in series.points[:-1])
    assert len(workspace.monitor.metrics(MetricsRange.WEEK).points) == 28
    month = workspace.monitor.metrics(MetricsRange.MONTH)
    assert len(month.points) == 30 and month.points[-1].contacts_per_hour == pytest.approx(4 / 24)


def test_failed_records_group_by_category_and_retry_sends_just_them(
    workspace: Workspace, sandbox: HubSpotSandbox
) -> None:
    sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[2])])
    first = asyncio.run(workspace.sync.sync(NAME))
    assert first.status is SyncRunStatus.PARTIAL and first.run_id is not None
    [failure] = first.failures
    [line] = workspace.monitor.health()
    # 56 of 57 records synced is a sync that happened: not "failing", never synced.
    assert (line.state, line.reason) == (HealthState.SOME_FAILED, "1 record failed in the last run")
    assert line.last_success_at == workspace.sync.store.get_run(first.run_id).finished_at

    [group] = workspace.monitor.error_groups(first.run_id)
    assert (group.category, group.count, group.sample_record) == (ErrorCategory.VALIDATION, 1, failure.email)
    assert group.sample_message == failure.message

    report = asyncio.run(workspace.monitor.retry_failed(first.run_id))

    assert report.retried == 1 and report.not_local == []
    assert report.result is not None and report.result.status is SyncRunStatus.SUCCEEDED
    retry_run = workspace.sync.store.get_run(report.result.run_id or 0)
    assert (retry_run.created, retry_run.updated, retry_run.unchanged, retry_run.total) == (1, 0, 0, 1)
    assert retry_run.direction == "push"
    assert retry_run.message == f"retry of the failed records of run {first.run_id}"
    assert sandbox.summary()["contacts"] == 4
    [line] = workspace.monitor.health()
    assert line.state is HealthState.IN_SYNC
    with pytest.raises(NothingToRetry, match="no failed records"):
        asyncio.run(workspace.monitor.retry_failed(report.result.run_id or 0))


def test_a_refused_token_needs_reconnect(workspace: Workspace, sandbox: HubSpotSandbox) -> None:
    workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-expired", base_url=sandbox.base_url),
        {"token": "pat-na1-00000000-0000-0000-0000-000000000000"},
    )
    with pytest.raises(Exception):  # noqa: B017 (whichever error the adapter raises; the health line tells)
        asyncio.run(workspace.sync.sync("hubspot-expired"))

    lines = {line.name: line for line in workspace.monitor.health()}
    assert lines["hubspot-expired"].state is HealthState.NEEDS_RECONNECT
    assert "pat-na1" not in lines["hubspot-expired"].reason
    assert lines[NAME].state is HealthState.NOT_SYNCED


def test_a_failed_attempt_keeps_the_quota_the_crm_last_reported(workspace: Workspace) -> None:
    """The health line's gauge is the daily quota "as the CRM last reported it": an attempt refused before the CRM
    said anything (a token it refuses, a CRM out of reach) read "unknown" instead."""
    asyncio.run(workspace.sync.sync(NAME))
    [synced] = workspace.monitor.health()
    assert synced.quota_limit is not None and synced.quota_remaining is not None
    integration = workspace.integrations.get(NAME)
    workspace.integrations.save_credentials(integration, {"token": "pat-na1-00000000-0000-0000-0000-000000000000"})
    with pytest.raises(Exception):  # noqa: B017 (whichever error the adapter raises; the health line tells)
        asyncio.run(workspace.sync.sync(NAME))

    [line] = workspace.monitor.health()
    assert line.state is HealthState.NEEDS_RECONNECT
    assert (line.quota_limit, line.quota_remaining) == (synced.quota_limit, synced.quota_remaining)


def test_error_export_keeps_formulas_inert(workspace: Workspace, tmp_path: Path) -> None:
    integration = workspace.integrations.get(NAME)
    store = workspace.sync.store
    run = store.start_run(integration.id or 0, SyncTrigger.MANUAL, "push")
    store.add_record_outcomes(run, [
        (RecordObject.CONTACT, "=HYPERLINK(\"http://evil\")@example.com", None, RecordOutcome.FAILED,
         ErrorCategory.VALIDATION, "+cmd|' /C calc'!A0"),
        (RecordObject.CONTACT, "ok@example.com", None, RecordOutcome.CREATED, None, None),
        (RecordObject.LEAD, "lead@example.com", None, RecordOutcome.FAILED, ErrorCategory.DUPLICATE,
         "-2+3 exists already"),
        (RecordObject.LEAD, "at@example.com", None, RecordOutcome.FAILED, ErrorCategory.SERVER, "@SUM(A1)"),
    ])
    target = tmp_path / "errors.csv"

    assert workspace.monitor.export_errors(run, target) == 3

    with target.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["run", "object", "record", "crm_id", "error_category", "message", "at"]
    assert [row[2] for row in rows[1:]] == ["'=HYPERLINK(\"http://evil\")@example.com", "lead@example.com",
                                           "at@example.com"]
    assert [row[5] for row in rows[1:]] == ["'+cmd|' /C calc'!A0", "'-2+3 exists already", "'@SUM(A1)"]
    assert [row[4] for row in rows[1:]] == ["validation", "duplicate", "server"]
    assert not (tmp_path / "errors.csv.part").exists()


def test_inert_cell_prefixes_only_formula_starts() -> None:
    assert [inert_cell(v) for v in ("=1+1", "+1+cmd|' /C calc'!A0", "-2+3+cmd|x", "@x", "\tx", "plain", "", None,
                                    42)] == [
        "'=1+1", "'+1+cmd|' /C calc'!A0", "'-2+3+cmd|x", "'@x", "'\tx", "plain", "", "", "42"]
    # A lone signed number (an E.164 phone number among them) is read as itself: it is written as it is.
    assert [inert_cell(v) for v in ("+14155550101", "-3.5", "-1")] == ["+14155550101", "-3.5", "-1"]


def test_event_latency_averages_per_bucket(workspace: Workspace) -> None:
    now = datetime.now(UTC)
    workspace.monitor.record_event_latency(NAME, 3.0, at=now)
    workspace.monitor.record_event_latency(NAME, 5.0, at=now)
    workspace.monitor.record_event_latency(NAME, 60.0, at=now - timedelta(hours=30))

    day = workspace.monitor.metrics(MetricsRange.DAY, now)
    assert day.points[-1].average_latency == 4.0
    assert all(p.average_latency is None for p in day.points[:-1]), "30 hours ago is outside the last 24 hours"
    week = workspace.monitor.metrics(MetricsRange.WEEK, now)
    assert [p.average_latency for p in week.points if p.average_latency is not None][-1] == 4.0
    assert 60.0 in [p.average_latency for p in week.points]


NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def facts(attempt: AttemptFigures | None = None, heartbeat: datetime | None = None) -> HealthFacts:
    lock = LockHolder("desk-2:4242", None, NOW - heartbeat, False) if heartbeat is not None else None
    return HealthFacts(1, attempt, None, heartbeat, heartbeat, 0, lock)


@pytest.mark.parametrize(("attempt", "heartbeat", "state"), [
    (None, None, HealthState.NOT_SYNCED),
    (None, NOW - timedelta(seconds=20), HealthState.SYNCING),
    (AttemptFigures(1, 1, SyncRunStatus.SUCCEEDED), NOW - timedelta(hours=2), HealthState.IN_SYNC),
    (AttemptFigures(1, 1, SyncRunStatus.SUCCEEDED), None, HealthState.IN_SYNC),
    (AttemptFigures(1, 1, SyncRunStatus.PARTIAL, records_failed=2), None, HealthState.SOME_FAILED),
    (AttemptFigures(1, 1, SyncRunStatus.PARTIAL, ErrorCategory.SERVER, "HubSpot answered 503"), None,
     HealthState.FAILING),
    (AttemptFigures(1, 1, SyncRunStatus.FAILED, ErrorCategory.SERVER, "HubSpot answered 503"), None,
     HealthState.FAILING),
    (AttemptFigures(1, 1, SyncRunStatus.FAILED, ErrorCategory.AUTH, "refused"), None, HealthState.NEEDS_RECONNECT),
    # A missing permission is no reconnect: the sign-in works, the CRM's admin must grant it.
    (AttemptFigures(1, 1, SyncRunStatus.FAILED, ErrorCategory.PERMISSION, "ask the admin"), None, HealthState.FAILING),
    (AttemptFigures(1, 1, SyncRunStatus.PARTIAL, ErrorCategory.PERMISSION, "ask the admin", quota_limit=100,
                    quota_remaining=0), None, HealthState.FAILING),
    (AttemptFigures(1, None, SyncRunStatus.FAILED, ErrorCategory.NETWORK, "no route"), None, HealthState.OFFLINE),
    (AttemptFigures(1, 1, SyncRunStatus.PARTIAL, ErrorCategory.RATE_LIMIT, "budget spent"), None,
     HealthState.RATE_LIMITED),
    (AttemptFigures(1, 1, SyncRunStatus.SUCCEEDED, quota_limit=100, quota_remaining=0), None,
     HealthState.RATE_LIMITED),
    # Stopped by a Quit: nothing failed, nothing to fix (it was "failing" in red).
    (AttemptFigures(1, 1, SyncRunStatus.CANCELLED, message="cancelled", contacts_synced=200), None,
     HealthState.CANCELLED),
    (AttemptFigures(1, 1, SyncRunStatus.CANCELLED), None, HealthState.CANCELLED),
])
def test_health_state_from_the_facts(attempt: AttemptFigures | None, heartbeat: datetime | None,
                                     state: HealthState) -> None:
    assert health_state(facts(attempt, heartbeat), running_here=False, now=NOW)[0] is state


def test_a_cancelled_run_s_reason_counts_what_it_did_before_it_stopped() -> None:
    def reason(**figures: int) -> str:
        attempt = AttemptFigures(1, 1, SyncRunStatus.CANCELLED, **figures)  # type: ignore[arg-type]
        return health_state(facts(attempt), running_here=False, now=NOW)[1]

    assert reason(contacts_synced=150, leads_synced=50, records_failed=1) == (
        "the last run was cancelled before it finished (200 records created or updated and 1 record failed before "
        "it stopped); the next run picks up where it stopped")
    assert reason() == ("the last run was cancelled before it finished (no record counted before it stopped); the "
                        "next run picks up where it stopped")


def test_a_push_holding_the_lock_is_named_a_push_in_the_health_line(workspace: Workspace) -> None:
    store = workspace.sync.store
    integration = workspace.integrations.get(NAME)
    assert integration.id is not None
    assert store.acquire_lock(integration.id, owner="desk-2:4242:contacts push")
    [line] = workspace.monitor.health(datetime.now(UTC))
    assert line.state is HealthState.SYNCING
    assert line.reason.startswith("a contacts push is running (on desk-2, process 4242); last heartbeat "), line.reason


def test_a_sync_running_elsewhere_says_who_runs_it_and_when_its_lock_is_taken_over(workspace: Workspace) -> None:
    """Another desktop's (or a killed process's) run shows as syncing: the health line names the desktop and
    process, how long ago it was last heard from, and when its lock is taken over if it stays silent. A lock whose
    process of this machine is gone is no run at all."""
    store = workspace.sync.store
    integration = workspace.integrations.get(NAME)
    assert integration.id is not None
    assert store.acquire_lock(integration.id, owner="desk-2:4242")
    with workspace.database.session() as session:
        for row in session.scalars(select(SyncLockRow)):
            row.heartbeat_at = row.heartbeat_at - timedelta(seconds=40)
    now = datetime.now(UTC)

    [line] = workspace.monitor.health(now)

    assert line.state is HealthState.SYNCING
    match = re.fullmatch(r"a sync is running \(on desk-2, process 4242\); last heartbeat (\d+) s ago; if it stays "
                         r"silent, the next sync takes the lock over at (\d\d:\d\d:\d\d) \(in 4 min (\d+) s\)",
                         line.reason)
    assert match is not None, line.reason
    silent, at, left = int(match[1]), match[2], int(match[3])
    assert 40 <= silent < 45 and silent + left == 60
    takeover = now + timedelta(minutes=5, seconds=-silent)  # on this desktop's clock, to the second
    assert at in {f"{(takeover + timedelta(seconds=s)).astimezone():%H:%M:%S}" for s in (-1, 0, 1)}, at

    store.release_lock(integration.id, owner="desk-2:4242")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    assert store.acquire_lock(integration.id, owner=f"{machine_name()}:{int(gone.stdout)}")
    [line] = workspace.monitor.health()
    assert line.state is HealthState.NOT_SYNCED, line.reason


def test_a_sync_killed_on_this_machine_shows_interrupted_with_what_its_record_log_holds(
    workspace: Workspace,
) -> None:
    """A sync killed with kill -9 left its run "running" with no figures (they are written as a run ends) while its
    record log held its writes. Once its process is gone, the run history shows it interrupted, with the counts of
    its record log, and its lock is free, before any other sync starts."""
    store = workspace.sync.store
    integration = workspace.integrations.get(NAME)
    assert integration.id is not None
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    owner = f"{machine_name()}:{int(gone.stdout)}"
    assert store.acquire_lock(integration.id, owner=owner)
    killed = store.start_run(integration.id, SyncTrigger.MANUAL, "push")
    store.heartbeat(integration.id, killed, owner=owner)
    store.add_record_outcomes(killed, [
        (RecordObject.CONTACT, "person1@example.com", "11", RecordOutcome.CREATED, None, None),
        (RecordObject.CONTACT, "person2@example.com", "12", RecordOutcome.UPDATED, None, None),
        (RecordObject.CONTACT, "person3@example.com", None, RecordOutcome.FAILED, ErrorCategory.VALIDATION, "no"),
    ])

    [run] = workspace.sync.runs(NAME)

    assert run.id == killed and run.status is SyncRunStatus.FAILED
    assert run.message is not None and run.message.startswith("interrupted")
    assert (run.created, run.updated, run.failed, run.total) == (1, 1, 1, 3)
    assert store.lock_holder(integration.id) is None
    [line] = workspace.monitor.health()
    assert line.state is not HealthState.SYNCING, line.reason


def test_running_here_is_syncing_and_a_stale_lock_is_not() -> None:
    assert health_state(facts(), running_here=True, now=NOW)[0] is HealthState.SYNCING
    stale = facts(AttemptFigures(1, 1, SyncRunStatus.SUCCEEDED), NOW - timedelta(hours=1))
    assert health_state(stale, running_here=False, now=NOW)[0] is HealthState.IN_SYNC


def test_a_team_desktop_without_the_key_does_not_mark_the_integration_needs_reconnect_for_everyone(
    tmp_path: Path, workspace: Workspace, sandbox: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second desktop on the same database (the workspace's SQLite file here, as a team's PostgreSQL would be),
    # with a keyring of its own that holds no key for the integration yet.
    monkeypatch.setenv("CRM_DESKTOP_DB_URL", workspace.database.url)
    colleague = Workspace.open(tmp_path / "colleague", vault=Vault(backend=MemoryKeyring()),
                               transport=sandbox.transport())
    try:
        asyncio.run(workspace.sync.sync(NAME))
        with pytest.raises(MissingCredentialsError):
            asyncio.run(colleague.sync.sync(NAME))

        [here] = workspace.monitor.health()
        assert here.state is HealthState.IN_SYNC, here.reason  # this desktop has the key, and the last run synced
        [there] = colleague.monitor.health()
        assert there.state is HealthState.NEEDS_RECONNECT
        assert there.reason.startswith(f"integration {NAME!r} has no credentials in this desktop's OS keyring")
        assert f"crm-desktop integration update {NAME} --secret-stdin" in there.reason
        # Nothing reached the CRM: not an attempt of the integration's, so not a failure in the team's charts.
        points = workspace.monitor.metrics(MetricsRange.DAY).points
        assert (sum(p.runs for p in points), [p.success_rate for p in points if p.runs]) == (1, [1.0])
    finally:
        colleague.close()
