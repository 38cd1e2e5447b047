"""The Sync Monitor's services: each integration's health, metrics over time, a run's errors, retry and export.

Every sync attempt's figures are recorded as the attempt ends (the GUI's, the scheduler's and the CLI's alike), so
health and charts are read from the store, never from live signals only.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from crm_desktop.app.csv_export import inert_cell, spreadsheet_csv
from crm_desktop.app.settings import SyncPreviewSetting
from crm_desktop.app.sync_service import SyncService
from crm_desktop.app.text import plural
from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers.errors import MissingCredentialsError, ProviderError
from crm_desktop.providers.factory import missing_credentials
from crm_desktop.store.database import Database
from crm_desktop.store.metrics_store import (
    AttemptFigures,
    ErrorGroup,
    FailedRecord,
    HealthFacts,
    HourlyFigures,
    MetricsStore,
    hour_of,
)
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.sync.engine import SyncAlreadyRunning, SyncResult
from crm_desktop.sync.lock_refusal import describe_holder, holder_phrase
from crm_desktop.sync.plan import ChangeAction, PlanCounts, PlannedChange, Side, SyncPlan
from crm_desktop.vault import VaultError

logger = logging.getLogger(__name__)

__all__ = [
    "ChangeAction",
    "ErrorGroup",
    "HealthState",
    "IntegrationHealth",
    "MetricPoint",
    "MetricsRange",
    "MetricsSeries",
    "NothingToRetry",
    "PlanCounts",
    "PlannedChange",
    "RetryReport",
    "Side",
    "SyncMonitorService",
    "SyncPlan",
    "attempt_figures",
    "health_state",
    "inert_cell",
    "wrote_locally",
]

def utcnow() -> datetime:
    return datetime.now(UTC)


def wrote_locally(result: SyncResult) -> bool:
    """Whether a run created or updated local records (a pull, a decided conflict): the People list shows them,
    so it reads them again; a run that only wrote to the CRM leaves the list as it is."""
    plan = result.plan
    return any(plan.count(side=Side.LOCAL, action=action) for action in (ChangeAction.CREATE, ChangeAction.UPDATE))


class HealthState(StrEnum):
    """Where an integration's syncing stands, as the health line says it."""

    IN_SYNC = "in_sync"
    SYNCING = "syncing"
    #: The last run synced, but some of its records failed (each with its error in the run's details).
    SOME_FAILED = "some_failed"
    FAILING = "failing"
    NEEDS_RECONNECT = "needs_reconnect"
    RATE_LIMITED = "rate_limited"
    OFFLINE = "offline"
    #: The last run was cancelled before it finished (the app quit): what it did is counted, the next run goes on.
    CANCELLED = "cancelled"
    NOT_SYNCED = "not_synced"

    @property
    def label(self) -> str:
        """The state in the marketer's words."""
        return _STATE_LABELS[self]


_STATE_LABELS = {
    HealthState.IN_SYNC: "In sync",
    HealthState.SYNCING: "Syncing",
    HealthState.SOME_FAILED: "Some records failed",
    HealthState.FAILING: "Failing",
    HealthState.NEEDS_RECONNECT: "Needs reconnect",
    HealthState.RATE_LIMITED: "Rate-limited",
    HealthState.OFFLINE: "Offline",
    HealthState.CANCELLED: "Cancelled",
    HealthState.NOT_SYNCED: "Not synced yet",
}


@dataclass(frozen=True)
class IntegrationHealth:
    """One integration's health line.

    Attributes:
        name: the integration.
        state: in sync, syncing, failing...
        reason: why, in one sentence (the last error's message when failing).
        last_success_at: when the last run that synced finished (in full, or all but some records).
        outbox_pending: records waiting in the outbox (recorded, not yet confirmed by the CRM).
        quota_limit, quota_remaining: the daily API quota the CRM reported last, when it tells.
        last_attempt_at: when the newest sync attempt ended (a cancelled one's line says when).
    """

    name: str
    state: HealthState
    reason: str
    last_success_at: datetime | None
    outbox_pending: int
    quota_limit: int | None
    quota_remaining: int | None
    last_attempt_at: datetime | None = None

    @property
    def quota_left_share(self) -> float | None:
        """The share (0..1) of the daily quota left, when known."""
        if not self.quota_limit or self.quota_remaining is None:
            return None
        return max(0.0, min(1.0, self.quota_remaining / self.quota_limit))


def health_state(facts: HealthFacts, *, running_here: bool, now: datetime) -> tuple[HealthState, str]:
    """An integration's state and the reason for it, from what the store knows (pure, for tests and the CLI).

    A run of another process counts while its lock is live, as the lock's own clock tells (the database server's on
    PostgreSQL: this desktop's clock may be off); ``now``, this desktop's time, only dates when the lock would be
    taken over.
    """
    if running_here:
        return HealthState.SYNCING, "a sync is running"
    if facts.lock is not None and facts.lock.live:
        return HealthState.SYNCING, f"{holder_phrase(facts.lock)} is running {describe_holder(facts.lock, now)}"
    attempt = facts.latest_attempt
    if attempt is None:
        return HealthState.NOT_SYNCED, "no sync has run yet"
    message = attempt.message or ""
    category = attempt.error_category
    if category is ErrorCategory.AUTH:
        return HealthState.NEEDS_RECONNECT, message or "the CRM refused the credentials"
    if category is ErrorCategory.PERMISSION:
        # Reconnecting would not help: the message names the permission or scope to ask the CRM's admin for.
        return HealthState.FAILING, message or "the CRM user lacks a permission: ask the CRM's admin to grant it"
    if category is ErrorCategory.NETWORK:
        return HealthState.OFFLINE, message or "the CRM could not be reached"
    if category is ErrorCategory.RATE_LIMIT or attempt.quota_remaining == 0:
        return HealthState.RATE_LIMITED, message or "the CRM's API quota is used up"
    if attempt.status is SyncRunStatus.CANCELLED:
        # Stopped (the app quit), not refused: nothing to fix, and what it sent before it stopped is in the CRM.
        synced = attempt.contacts_synced + attempt.leads_synced
        counted = [f"{plural(synced, 'record')} created or updated"] if synced else []
        if attempt.records_failed:
            counted.append(f"{plural(attempt.records_failed, 'record')} failed")
        done = " and ".join(counted) + " before it stopped" if counted else "no record counted before it stopped"
        return HealthState.CANCELLED, (f"the last run was cancelled before it finished ({done}); the next run "
                                       "picks up where it stopped")
    if attempt.status is SyncRunStatus.PARTIAL and category is None:
        # The run synced; only some records were refused, each on its own (no run-wide cause to fix).
        failed = attempt.records_failed
        return HealthState.SOME_FAILED, message or (
            f"{plural(failed, 'record')} failed in the last run" if failed else "some records failed in the last run")
    if attempt.status in (SyncRunStatus.FAILED, SyncRunStatus.PARTIAL):
        if attempt.records_failed and not message:
            message = f"{plural(attempt.records_failed, 'record')} failed in the last run"
        return HealthState.FAILING, message or f"the last run {attempt.status.value}"
    return HealthState.IN_SYNC, "the last run succeeded"


def _synced(result: SyncResult) -> dict[RecordObject, int]:
    """Records of each object a run's plan creates or updates, on either side, each counted once (exact for a plan
    that kept every change)."""
    emails: dict[RecordObject, set[str]] = {}
    for change in result.plan.changes:
        if change.action in (ChangeAction.CREATE, ChangeAction.UPDATE):
            emails.setdefault(change.object, set()).add(change.email)
    return {obj: len(keys) for obj, keys in emails.items()}


def attempt_figures(integration: Integration, outcome: SyncResult | Exception,
                    synced: Mapping[RecordObject, int] | None = None) -> AttemptFigures | None:
    """The figures of a sync attempt that ended with ``outcome`` (``None`` for a sync refused as already running,
    which was no attempt of its own, and for one this desktop's keyring had no credentials for: nothing reached the
    CRM, and on a team database the other desktops, with their own copy of the key, sync it all the same; each
    desktop's health line reads its own keyring for that).

    ``synced`` is the records created or updated per object, from the run's record log; without it they are
    counted from the run's plan, which a large run keeps only a sample of.
    """
    assert integration.id is not None
    if isinstance(outcome, (SyncAlreadyRunning, MissingCredentialsError)):
        return None
    if isinstance(outcome, Exception):
        if isinstance(outcome, ProviderError):
            category: ErrorCategory | None = outcome.category
        elif isinstance(outcome, VaultError):
            category = ErrorCategory.AUTH  # no usable credentials: reconnecting is what helps
        else:
            category = None
        message = str(outcome) or type(outcome).__name__
        return AttemptFigures(integration.id, None, SyncRunStatus.FAILED, category, message)
    quota = outcome.quota
    if synced is None:
        synced = _synced(outcome)
    stopped_by, why = outcome.stopped_by, outcome.message
    refused = [f for f in outcome.failures if f.category is ErrorCategory.PERMISSION]
    if stopped_by is None and refused:
        # Records refused for a permission the CRM user lacks: the health line says which one to ask for.
        stopped_by = ErrorCategory.PERMISSION
        count = max(len(refused), outcome.failed_by_category.get(ErrorCategory.PERMISSION, 0))
        records = f"{count:,} record" + ("" if count == 1 else "s")
        why = why or f"{records} refused for lack of a permission ({refused[0].message})"
    return AttemptFigures(
        integration.id,
        outcome.run_id,
        outcome.status,
        stopped_by,
        why,
        contacts_synced=synced.get(RecordObject.CONTACT, 0),
        leads_synced=synced.get(RecordObject.LEAD, 0),
        records_failed=outcome.counts.get("failed", len(outcome.failures)),
        api_calls=outcome.api_calls,
        api_errors=outcome.api_errors,
        quota_limit=quota.limit if quota is not None else None,
        quota_remaining=quota.remaining if quota is not None else None,
    )


class MetricsRange(StrEnum):
    """The periods the charts show."""

    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def label(self) -> str:
        return {MetricsRange.DAY: "Last 24 hours", MetricsRange.WEEK: "Last 7 days",
                MetricsRange.MONTH: "Last 30 days"}[self]

    @property
    def span(self) -> timedelta:
        return {MetricsRange.DAY: timedelta(hours=24), MetricsRange.WEEK: timedelta(days=7),
                MetricsRange.MONTH: timedelta(days=30)}[self]

    @property
    def bucket(self) -> timedelta:
        """How much time one point of the charts sums: an hour, six hours, a day."""
        return {MetricsRange.DAY: timedelta(hours=1), MetricsRange.WEEK: timedelta(hours=6),
                MetricsRange.MONTH: timedelta(days=1)}[self]


@dataclass(frozen=True)
class MetricPoint:
    """The figures of one chart point (every integration together, except the quota: per integration).

    Attributes:
        start: the bucket's start (UTC).
        contacts_per_hour: contacts synced per hour in the bucket.
        runs: sync attempts in the bucket.
        success_rate: the share of attempts that succeeded (``None`` without attempts).
        api_error_rate: the share of API calls answered with an error (``None`` without calls).
        average_latency: average social event -> CRM latency in seconds (``None`` without events).
        quota_used_share: per integration name, the most of its daily quota seen used (0..1).
    """

    start: datetime
    contacts_per_hour: float
    runs: int
    success_rate: float | None
    api_error_rate: float | None
    average_latency: float | None
    quota_used_share: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsSeries:
    """The charts' points over a range, one per bucket, oldest first (empty buckets included)."""

    range: MetricsRange
    points: list[MetricPoint]
    integrations: list[str]

    @property
    def start(self) -> datetime:
        return self.points[0].start

    @property
    def end(self) -> datetime:
        return self.points[-1].start + self.range.bucket


def _bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    seconds = int(bucket.total_seconds())
    return epoch + timedelta(seconds=(int((moment - epoch).total_seconds()) // seconds) * seconds)


def metrics_series(hours: Iterable[HourlyFigures], names: dict[int, str], span: MetricsRange,
                   now: datetime) -> MetricsSeries:
    """Sum hourly figures into the range's buckets (pure)."""
    bucket = span.bucket
    last = _bucket_start(now, bucket)
    count = math.ceil(span.span / bucket)
    starts = [last - bucket * n for n in range(count - 1, -1, -1)]
    totals: dict[datetime, list[HourlyFigures]] = {start: [] for start in starts}
    for hour in hours:
        start = _bucket_start(hour.hour, bucket)
        if start in totals:
            totals[start].append(hour)
    bucket_hours = bucket.total_seconds() / 3600
    points = []
    for start in starts:
        rows = totals[start]
        runs = sum(r.runs for r in rows)
        calls = sum(r.api_calls for r in rows)
        events = sum(r.latency_events for r in rows)
        quota: dict[str, float] = {}
        for r in rows:
            if r.quota_used is not None and r.quota_limit:
                name = names.get(r.integration_id, f"integration {r.integration_id}")
                quota[name] = max(quota.get(name, 0.0), min(1.0, r.quota_used / r.quota_limit))
        points.append(MetricPoint(
            start,
            sum(r.contacts_synced for r in rows) / bucket_hours,
            runs,
            sum(r.runs_succeeded for r in rows) / runs if runs else None,
            sum(r.api_errors for r in rows) / calls if calls else None,
            sum(r.latency_seconds for r in rows) / events if events else None,
            quota,
        ))
    return MetricsSeries(span, points, sorted(set(names.values())))


@dataclass(frozen=True)
class RetryReport:
    """What retrying a run's failed records did.

    Attributes:
        run_id: the run retried.
        result: the new push run (``None`` when no failed record could be sent again).
        retried: failed records sent again.
        not_local: failed records that are not local records (pulled from the CRM): the next sync pulls them again.
    """

    run_id: int
    result: SyncResult | None
    retried: int
    not_local: list[str]


class NothingToRetry(ValueError):
    """The run has no failed record that can be sent again; the message says why."""


class SyncMonitorService:
    """Health, metrics, errors, retry and export for the Sync Monitor (GUI) and ``crm-desktop runs`` (CLI).

    Attributes:
        sync: the sync service (its runs are recorded here as they end).
        store: the metrics tables.
        preview: whether "Sync all now" shows the dry-run preview first.
    """

    def __init__(self, database: Database, sync: SyncService, preview: SyncPreviewSetting) -> None:
        self.sync = sync
        self.store = MetricsStore(database)
        self.preview = preview
        sync.add_run_listener(self.record_attempt)
        # A run cancelled mid-way (the app quitting) is an attempt too: recorded where it ran, as it stopped.
        sync.add_cancel_listener(self.record_attempt)

    # -- recording -----------------------------------------------------------------------------
    def record_attempt(self, integration: Integration, outcome: SyncResult | Exception) -> None:
        """Keep the figures of a sync attempt that just ended (a listener of the sync service)."""
        try:
            synced = (self.store.synced_records(outcome.run_id)
                      if isinstance(outcome, SyncResult) and outcome.run_id is not None else None)
            figures = attempt_figures(integration, outcome, synced)
            if figures is None:
                return
            self.store.record_attempt(figures)
        except Exception:  # the run itself is recorded already; a lost figure must not fail it
            logger.exception("could not record the figures of %s's sync", integration.name)

    def record_event_latency(self, integration_name: str, seconds: float, at: datetime | None = None) -> None:
        """Add one social event's delivery latency (seen -> written to the CRM) to the charts.

        Raises:
            NotFoundError: for an unknown integration.
            ValueError: for a negative or non-finite latency.
        """
        integration = self.sync.integrations.get(integration_name)
        assert integration.id is not None
        self.store.record_event_latency(integration.id, seconds, at)

    # -- health --------------------------------------------------------------------------------
    def health(self, now: datetime | None = None) -> list[IntegrationHealth]:
        """Every integration's health line, in the integrations' order."""
        now = now or utcnow()
        integrations = [i for i in self.sync.integrations.list() if i.id is not None]
        facts = self.store.health_facts([i.id for i in integrations if i.id is not None])
        lines = []
        for integration in integrations:
            assert integration.id is not None
            fact = facts[integration.id]
            state, reason = health_state(fact, running_here=self.sync.is_syncing(integration.name), now=now)
            if state is not HealthState.SYNCING and not self._has_credentials_here(integration):
                state, reason = HealthState.NEEDS_RECONNECT, missing_credentials(
                    integration, "this desktop's OS keyring")
            quota = fact.quota_report  # as the CRM last reported it: a refused attempt reports none
            lines.append(IntegrationHealth(
                integration.name, state, reason, fact.last_success_at, fact.outbox_pending,
                quota.quota_limit if quota else None, quota.quota_remaining if quota else None,
                fact.latest_attempt.at if fact.latest_attempt else None,
            ))
        return lines

    def _has_credentials_here(self, integration: Integration) -> bool:
        """Whether this desktop's keyring holds the integration's credentials (a keyring that cannot be read is
        not taken for one without them: its runs say what is wrong with it)."""
        try:
            return self.sync.integrations.has_credentials(integration)
        except VaultError:
            return True

    # -- metrics -------------------------------------------------------------------------------
    def metrics(self, span: MetricsRange, now: datetime | None = None) -> MetricsSeries:
        """The charts' figures over ``span`` up to ``now``."""
        now = now or utcnow()
        names = {i.id: i.name for i in self.sync.integrations.list() if i.id is not None}
        start = _bucket_start(now, span.bucket) - span.span + span.bucket
        return metrics_series(self.store.hourly(hour_of(start), list(names)), names, span, now)

    # -- a run's errors ------------------------------------------------------------------------
    def error_groups(self, run_id: int) -> list[ErrorGroup]:
        """A run's failed records by error category, most first, each with a sample."""
        return self.store.error_groups(run_id)

    def failed_records(self, run_id: int) -> Iterable[FailedRecord]:
        return self.store.failed_records(run_id)

    def export_errors(self, run_id: int, path: Path) -> int:
        """Write a run's failed records to a CSV file (UTF-8 with BOM, for spreadsheets); returns how many.

        Cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...) are kept inert with a leading
        apostrophe: the messages quote what the CRM and the records said.
        """
        self.sync.store.get_run(run_id)  # NotFoundError for an unknown run, before a file is made
        count = 0
        with spreadsheet_csv(path) as writer:
            writer.writerow(["run", "object", "record", "crm_id", "error_category", "message", "at"])
            for record in self.store.failed_records(run_id):
                writer.writerow([inert_cell(v) for v in (
                    run_id, record.object.value, record.record_key, record.crm_id or "",
                    record.category.value if record.category else "", record.message,
                    record.at.astimezone(UTC).isoformat(timespec="seconds"),
                )])
                count += 1
        return count

    # -- retry ---------------------------------------------------------------------------------
    def _failed_local_records(self, run_id: int) -> tuple[Integration, dict[RecordObject, list[int]], list[str]]:
        """The run's integration, its failed local records by object, and the failed keys that are not local."""
        integration = self.sync.integration_of_run(run_id)
        wanted: dict[RecordObject, list[str]] = {}
        for record in self.store.failed_records(run_id):
            wanted.setdefault(record.object, []).append(record.record_key)
        if not wanted:
            raise NothingToRetry(f"run {run_id} has no failed records")
        local_ids: dict[RecordObject, list[int]] = {}
        not_local: list[str] = []
        for obj, keys in wanted.items():
            unique = list(dict.fromkeys(keys))
            found = self.sync.store.local_by_emails(obj, unique)
            local_ids[obj] = sorted({record.id for record in found.values()})
            not_local.extend(key for key in unique if key not in found)
        if not any(local_ids.values()):
            raise NothingToRetry(
                f"run {run_id}'s failed records are not local records (pulled from the CRM); the next sync pulls "
                "them again"
            )
        return integration, local_ids, not_local

    async def retry_failed(self, run_id: int, trigger: SyncTrigger = SyncTrigger.MANUAL) -> RetryReport:
        """Send just the failed records of run ``run_id`` again, as a push run of their integration.

        Raises:
            NothingToRetry: when the run has no failed local record.
            NotFoundError: for an unknown run, or an import run (no integration).
            SyncAlreadyRunning: when a sync of the integration is going on.
        """
        # The store reads run in a thread: the desktop app's loop is also its window's.
        integration, local_ids, not_local = await asyncio.to_thread(self._failed_local_records, run_id)
        result = await self.sync.push_now(integration.name, local_ids, trigger)
        if result.run_id is not None:
            await asyncio.to_thread(self.sync.store.update_run, result.run_id,
                                    message=f"retry of the failed records of run {run_id}")
        retried = sum(len(ids) for ids in local_ids.values())
        logger.info("retried %d failed record(s) of run %d as run %s", retried, run_id, result.run_id)
        return RetryReport(run_id, result, retried, not_local)

