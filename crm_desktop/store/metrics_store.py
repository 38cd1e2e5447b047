"""Sync metrics and health facts: per-attempt and hourly figures, outbox backlog, locks and a run's failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, cast

from sqlalchemy import Table, case, distinct, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.database import Database
from crm_desktop.store.lock_state import LockHolder, holder_of, lock_time
from crm_desktop.store.models import (
    OutboxRow,
    OutboxStatus,
    SyncAttemptMetricsRow,
    SyncHourlyMetricsRow,
    SyncLockRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    utcnow,
)

logger = logging.getLogger(__name__)

#: The hourly sums an attempt adds to (quota is kept as the most used, not summed).
_SUMMED = ("runs", "runs_succeeded", "contacts_synced", "leads_synced", "records_failed", "api_calls", "api_errors",
           "latency_seconds", "latency_events")


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class AttemptFigures:
    """What one sync attempt did and met, as recorded after it ended.

    Attributes:
        integration_id: the integration synced.
        run_id: its run, ``None`` when the attempt stopped before the run was recorded.
        status: succeeded, partial, failed or cancelled.
        error_category: why the attempt as a whole failed or stopped early.
        message: that reason in words (no customer data, no secrets).
        contacts_synced, leads_synced: records created or updated, on either side.
        records_failed: records that failed.
        api_calls: requests sent to the CRM; api_errors: answers of 400 and above among them.
        quota_limit, quota_remaining: the daily API quota the CRM reported last, when it tells.
        at: when the attempt ended.
    """

    integration_id: int
    run_id: int | None
    status: SyncRunStatus
    error_category: ErrorCategory | None = None
    message: str | None = None
    contacts_synced: int = 0
    leads_synced: int = 0
    records_failed: int = 0
    api_calls: int = 0
    api_errors: int = 0
    quota_limit: int | None = None
    quota_remaining: int | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class HourlyFigures:
    """One integration's sums over one UTC hour."""

    integration_id: int
    hour: datetime
    runs: int
    runs_succeeded: int
    contacts_synced: int
    leads_synced: int
    records_failed: int
    api_calls: int
    api_errors: int
    latency_seconds: float
    latency_events: int
    quota_used: int | None
    quota_limit: int | None


@dataclass(frozen=True)
class HealthFacts:
    """What the store knows about one integration's sync health.

    Attributes:
        latest_attempt: the newest sync attempt, if any.
        last_success_at: when the newest run that synced finished (succeeded, or partial: some records
            failed).
        running_since: when the run holding the integration's lock started (another process included).
        heartbeat_at: that run's last heartbeat.
        outbox_pending: CRM writes recorded and not yet confirmed.
        lock: who holds the integration's lock and how long it has been silent, by the lock's own clock (the
            database server's on PostgreSQL, not this desktop's).
        quota_report: the newest attempt in which the CRM reported its API quota (an attempt refused or cut off
            before it answered reports none, and the quota stays as the CRM last reported it).
    """

    integration_id: int
    latest_attempt: AttemptFigures | None
    last_success_at: datetime | None
    running_since: datetime | None
    heartbeat_at: datetime | None
    outbox_pending: int
    lock: LockHolder | None = None
    quota_report: AttemptFigures | None = None


@dataclass(frozen=True)
class ErrorGroup:
    """A run's failed records of one error category: how many, and the first one's message as a sample."""

    category: ErrorCategory | None
    count: int
    sample_record: str
    sample_message: str


@dataclass(frozen=True)
class FailedRecord:
    """One failed record of a run, as its record log holds it."""

    object: RecordObject
    record_key: str
    crm_id: str | None
    category: ErrorCategory | None
    message: str
    at: datetime


def _attempt(row: SyncAttemptMetricsRow) -> AttemptFigures:
    return AttemptFigures(
        row.integration_id, row.run_id, row.status, row.error_category, row.message, row.contacts_synced,
        row.leads_synced, row.records_failed, row.api_calls, row.api_errors, row.quota_limit, row.quota_remaining,
        row.at,
    )


class MetricsStore:
    """Reads and writes the Sync Monitor's figures; the hourly table is kept by upserts, safe across processes."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- writing -------------------------------------------------------------------------------
    def record_attempt(self, figures: AttemptFigures) -> None:
        """Keep one attempt's figures and add them to its hour, in one transaction."""
        at = figures.at or utcnow()
        quota_used = None
        if figures.quota_limit is not None and figures.quota_remaining is not None:
            quota_used = max(0, figures.quota_limit - figures.quota_remaining)
        with self._db.session() as session:
            session.add(SyncAttemptMetricsRow(
                integration_id=figures.integration_id, run_id=figures.run_id, at=at, status=figures.status,
                error_category=figures.error_category, message=figures.message,
                contacts_synced=figures.contacts_synced, leads_synced=figures.leads_synced,
                records_failed=figures.records_failed, api_calls=figures.api_calls, api_errors=figures.api_errors,
                quota_limit=figures.quota_limit, quota_remaining=figures.quota_remaining,
            ))
            self._add_to_hour(
                session, figures.integration_id, hour_of(at),
                {"runs": 1, "runs_succeeded": int(figures.status is SyncRunStatus.SUCCEEDED),
                 "contacts_synced": figures.contacts_synced, "leads_synced": figures.leads_synced,
                 "records_failed": figures.records_failed, "api_calls": figures.api_calls,
                 "api_errors": figures.api_errors},
                quota_used=quota_used, quota_limit=figures.quota_limit,
            )

    def record_event_latency(self, integration_id: int, seconds: float, at: datetime | None = None) -> None:
        """Add one social event's delivery latency (event seen -> CRM write confirmed) to its hour.

        Raises:
            ValueError: for a negative or non-finite latency.
        """
        self.record_event_latencies(integration_id, [seconds], at)

    def record_event_latencies(self, integration_id: int, seconds: Sequence[float], at: datetime | None = None) -> None:
        """Add the delivery latencies of the events one delivery confirmed to its hour, in one statement.

        Raises:
            ValueError: for a negative or non-finite latency (nothing is added).
        """
        for one in seconds:
            if not one >= 0 or one == float("inf"):
                raise ValueError(f"an event latency must be a finite number of seconds >= 0, not {one!r}")
        if not seconds:
            return
        with self._db.session() as session:
            self._add_to_hour(session, integration_id, hour_of(at or utcnow()),
                              {"latency_seconds": float(sum(seconds)), "latency_events": len(seconds)})

    def _add_to_hour(self, session: Session, integration_id: int, hour: datetime, added: dict[str, Any], *,
                     quota_used: int | None = None, quota_limit: int | None = None) -> None:
        table = cast(Table, SyncHourlyMetricsRow.__table__)
        values: dict[str, Any] = {name: 0 for name in _SUMMED}
        values["latency_seconds"] = 0.0
        values.update(added)
        values.update(integration_id=integration_id, hour=hour, quota_used=quota_used, quota_limit=quota_limit)
        # PostgreSQL's dialect is imported when a PostgreSQL store needs it: a start on SQLite does not load it.
        insert = (sqlite_insert if session.get_bind().dialect.name == "sqlite"
                  else import_module("sqlalchemy.dialects.postgresql").insert)
        statement = insert(table).values(**values)
        new = statement.excluded
        changes: dict[str, Any] = {name: table.c[name] + new[name] for name in added}
        if quota_used is not None:
            changes["quota_used"] = case(
                (table.c.quota_used.is_(None), new.quota_used),
                (new.quota_used > table.c.quota_used, new.quota_used),
                else_=table.c.quota_used,
            )
            changes["quota_limit"] = func.coalesce(new.quota_limit, table.c.quota_limit)
        session.execute(statement.on_conflict_do_update(index_elements=["integration_id", "hour"], set_=changes))

    # -- reading -------------------------------------------------------------------------------
    def hourly(self, since: datetime, integration_ids: Sequence[int] | None = None) -> list[HourlyFigures]:
        """Hourly sums from the hour of ``since`` on, oldest first, per integration."""
        query = select(SyncHourlyMetricsRow).where(SyncHourlyMetricsRow.hour >= hour_of(since))
        if integration_ids is not None:
            query = query.where(SyncHourlyMetricsRow.integration_id.in_(list(integration_ids)))
        with self._db.session() as session:
            rows = session.scalars(query.order_by(SyncHourlyMetricsRow.hour, SyncHourlyMetricsRow.integration_id))
            return [
                HourlyFigures(r.integration_id, r.hour, r.runs, r.runs_succeeded, r.contacts_synced, r.leads_synced,
                              r.records_failed, r.api_calls, r.api_errors, r.latency_seconds, r.latency_events,
                              r.quota_used, r.quota_limit)
                for r in rows
            ]

    def latest_attempt(self, integration_id: int) -> AttemptFigures | None:
        with self._db.session() as session:
            row = session.scalars(
                select(SyncAttemptMetricsRow).where(SyncAttemptMetricsRow.integration_id == integration_id)
                .order_by(SyncAttemptMetricsRow.id.desc()).limit(1)
            ).first()
            return _attempt(row) if row is not None else None

    def health_facts(self, integration_ids: Sequence[int]) -> dict[int, HealthFacts]:
        """Each integration's newest attempt, the newest that reported the API quota, last run that synced, running
        lock and outbox backlog (six queries for all integrations together)."""
        ids = list(integration_ids)
        with self._db.session() as session:
            newest = (
                select(func.max(SyncAttemptMetricsRow.id))
                .where(SyncAttemptMetricsRow.integration_id.in_(ids))
                .group_by(SyncAttemptMetricsRow.integration_id)
            )
            attempts = {
                row.integration_id: _attempt(row)
                for row in session.scalars(select(SyncAttemptMetricsRow).where(SyncAttemptMetricsRow.id.in_(newest)))
            }
            newest_quota = (
                select(func.max(SyncAttemptMetricsRow.id))
                .where(SyncAttemptMetricsRow.integration_id.in_(ids),
                       SyncAttemptMetricsRow.quota_remaining.is_not(None))
                .group_by(SyncAttemptMetricsRow.integration_id)
            )
            quota_reports = {
                row.integration_id: _attempt(row)
                for row in session.scalars(
                    select(SyncAttemptMetricsRow).where(SyncAttemptMetricsRow.id.in_(newest_quota)))
            }
            successes: dict[int, datetime] = dict(session.execute(  # type: ignore[arg-type]
                select(SyncRunRow.integration_id, func.max(SyncRunRow.finished_at))
                # A partial run synced all but some records: it is a sync that happened, not "never".
                .where(SyncRunRow.integration_id.in_(ids),
                       SyncRunRow.status.in_([SyncRunStatus.SUCCEEDED, SyncRunStatus.PARTIAL]),
                       SyncRunRow.direction != "undo", SyncRunRow.dry_run.is_(False))
                .group_by(SyncRunRow.integration_id)
            ).all())
            pending: dict[int, int] = dict(session.execute(
                select(OutboxRow.integration_id, func.count())
                .where(OutboxRow.integration_id.in_(ids), OutboxRow.status == OutboxStatus.PENDING)
                .group_by(OutboxRow.integration_id)
            ).all())
            locks = {row.integration_id: row for row in session.scalars(
                select(SyncLockRow).where(SyncLockRow.integration_id.in_(ids))
            )}
            lock_now = lock_time(self._db, session) if locks else None
            run_ids = [lock.run_id for lock in locks.values() if lock.run_id is not None]
            run_starts: dict[int, datetime] = dict(session.execute(
                select(SyncRunRow.id, SyncRunRow.started_at).where(SyncRunRow.id.in_(run_ids))
            ).all()) if run_ids else {}
        facts = {}
        for integration_id in ids:
            lock = locks.get(integration_id)
            facts[integration_id] = HealthFacts(
                integration_id,
                attempts.get(integration_id),
                successes.get(integration_id),
                None if lock is None else run_starts.get(lock.run_id or -1, lock.acquired_at),
                lock.heartbeat_at if lock is not None else None,
                int(pending.get(integration_id, 0)),
                holder_of(lock, lock_now) if lock is not None and lock_now is not None else None,
                quota_reports.get(integration_id),
            )
        return facts

    def synced_records(self, run_id: int) -> dict[RecordObject, int]:
        """Records of each object a run created or updated, on either side, each counted once (from its record
        log: the run's result keeps only a sample of its changes)."""
        with self._db.session() as session:
            rows = session.execute(
                select(SyncRecordLogRow.object, func.count(distinct(SyncRecordLogRow.record_key)))
                .where(SyncRecordLogRow.run_id == run_id,
                       SyncRecordLogRow.outcome.in_([RecordOutcome.CREATED, RecordOutcome.UPDATED]))
                .group_by(SyncRecordLogRow.object)
            ).all()
        return {obj: int(count) for obj, count in rows}

    def error_groups(self, run_id: int) -> list[ErrorGroup]:
        """A run's failed records grouped by error category, most first, each with its first record as sample."""
        failed = (SyncRecordLogRow.run_id == run_id, SyncRecordLogRow.outcome == RecordOutcome.FAILED)
        with self._db.session() as session:
            counted = session.execute(
                select(SyncRecordLogRow.error_category, func.count(), func.min(SyncRecordLogRow.id))
                .where(*failed).group_by(SyncRecordLogRow.error_category)
            ).all()
            samples = {
                row.id: row for row in session.scalars(
                    select(SyncRecordLogRow).where(SyncRecordLogRow.id.in_([first for _, _, first in counted]))
                )
            }
        groups = [
            ErrorGroup(category, int(count), samples[first].record_key, samples[first].message or "")
            for category, count, first in counted
        ]
        return sorted(groups, key=lambda g: (-g.count, str(g.category or "")))

    def failed_records(self, run_id: int, page_size: int = 1000) -> Iterator[FailedRecord]:
        """A run's failed records in the order they were logged, read a page at a time."""
        after = 0
        while True:
            with self._db.session() as session:
                rows = session.scalars(
                    select(SyncRecordLogRow)
                    .where(SyncRecordLogRow.run_id == run_id, SyncRecordLogRow.outcome == RecordOutcome.FAILED,
                           SyncRecordLogRow.id > after)
                    .order_by(SyncRecordLogRow.id).limit(page_size)
                ).all()
            if not rows:
                return
            for row in rows:
                yield FailedRecord(row.object, row.record_key, row.crm_id, row.error_category, row.message or "",
                                   row.at)
            after = rows[-1].id
