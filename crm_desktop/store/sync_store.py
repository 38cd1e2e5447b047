"""The sync engine's persistent facts: runs, locks, cursors, links, outbox, record log, audit and conflicts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, Update, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from crm_desktop.domain.models import Contact, Lead, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.forget_store import ForgetStore
from crm_desktop.store.lock_state import LOCK_STALE_AFTER as LOCK_STALE_AFTER  # where callers long read it
from crm_desktop.store.lock_state import LockHolder, holder_of, lock_time
from crm_desktop.store.models import (
    MERGED_FIELD,
    AuditLogRow,
    ConflictRow,
    ConflictStatus,
    ContactRow,
    CrmLinkRow,
    FieldMappingRow,
    LeadRow,
    OutboxRow,
    OutboxStatus,
    SocialProfileRow,
    SyncAttemptMetricsRow,
    SyncCursorRow,
    SyncLockRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    WorkspaceSettingRow,
    audit_insert_row,
    utcnow,
)
from crm_desktop.store.process_owner import lock_owner
from crm_desktop.store.repositories import (
    SAVE_BATCH,
    ContactStore,
    EmailTakenError,
    NotFoundError,
    _apply_contact,
    _apply_contact_columns,
    hold_for_write,
    lead_row_values,
    save_profiles_in_bulk,
    stored_contact,
    stored_lead,
)

logger = logging.getLogger(__name__)

#: The message of a run whose process stopped before finishing it (found when its lock is taken over); its counts
#: are then those of its record log, what it did before it stopped.
INTERRUPTED_MESSAGE = ("interrupted: the run stopped before it could record its end (the app closed, or the database "
                       "did not answer); the next run sends the writes it had not sent")
#: An undo keeps no outbox: what it had not put back waits for the marketer to undo the run again.
INTERRUPTED_UNDO_MESSAGE = ("interrupted: the undo stopped before it could record its end (the app closed, or the "
                            "database did not answer); undo the run again to put back the rest")


@dataclass(frozen=True)
class LocalRecord:
    """A local contact or lead as the engine sees it.

    Attributes:
        id: the local id.
        object: contact or lead.
        record: the domain record.
        updated_at: when it last changed locally.
    """

    id: int
    object: RecordObject
    record: Contact | Lead
    updated_at: datetime


@dataclass(frozen=True)
class Link:
    """A local record's link to a CRM record, with the merge base."""

    local_id: int
    crm_id: str
    base_values: dict[str, Any]
    pushed_hash: str | None
    crm_modified_at: datetime | None
    local_synced_at: datetime | None
    deleted_in_crm: bool


@dataclass(frozen=True)
class OutboxItem:
    """One intended CRM write."""

    id: int
    object: RecordObject
    local_id: int
    email: str
    crm_id: str | None
    fields: dict[str, Any]
    base_after: dict[str, Any]
    values_hash: str
    local_version: datetime | None
    run_id: int | None
    #: What the CRM held, as planned, in each field the write changes (local field -> value); ``None`` for a
    #: create, and for a write queued before the outbox kept them.
    crm_old_values: dict[str, Any] | None = None


@dataclass(frozen=True)
class PulledWrite:
    """What applying a pulled record writes: its new local values (if any), its link with the merge base, and the
    audit rows and conflicts that go with it.

    Attributes:
        local_id: the local record; ``None`` for a record the pull creates.
        record: the new local values; ``None`` when the local record stays as it is.
        crm_id: the CRM record linked.
        base_values: the merge base after the pull.
        crm_modified_at: the CRM's change stamp of the record.
        needs_push: the push phase still has to send local values (the link is not marked synced).
        local_version: the local record's ``updated_at`` when it is not rewritten (marks it synced).
        audit: audit rows without ``entity_id`` (the local id, known once a created record is inserted).
        conflicts: conflict rows without ``local_id``.
    """

    local_id: int | None
    record: Contact | Lead | None
    crm_id: str
    base_values: dict[str, Any]
    crm_modified_at: datetime | None
    needs_push: bool = False
    local_version: datetime | None = None
    audit: tuple[dict[str, Any], ...] = ()
    conflicts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RefusedWrite:
    """A local record's newest CRM write, which the CRM refused for the record's data (the record log says why).

    Attributes:
        local_id: the local record.
        values_hash: the fingerprint of the CRM values the refused write was made from.
        local_version: the local record's ``updated_at`` when the write was made.
        category: why the CRM refused it (its error category).
        message: the CRM's refusal, as the run's record log keeps it.
        at: when the refusal was logged.
        run_id: the run that logged the refusal.
    """

    local_id: int
    values_hash: str
    local_version: datetime | None
    category: ErrorCategory
    message: str
    at: datetime
    run_id: int


@dataclass
class ResolutionWrites:
    """What a batch of conflict resolutions writes, worked out once its local records are held and read
    (:meth:`SyncStore.write_resolutions`).

    Attributes:
        records: the local records changed, by object and local id, each with its new ``updated_at``.
        links: the links whose merge base and sync mark move, by object and local id: the CRM id and the values
            to save (as :meth:`SyncStore.save_link`).
        audit: the audit rows.
        resolved: the conflicts closed: id, resolution and the value kept.
        released: the claimed conflicts let go, open again (as :meth:`SyncStore.release_conflict`).
    """

    records: dict[tuple[RecordObject, int], tuple[Contact | Lead, datetime]] = field(default_factory=dict)
    links: dict[tuple[RecordObject, int], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[tuple[int, str, Any]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)


#: The columns of ``crm_links`` a :class:`Link` is made of, in its field order.
_LINK_COLUMNS = (
    "local_id", "crm_id", "base_values", "pushed_hash", "crm_modified_at", "local_synced_at", "deleted_in_crm",
)


def _grouped_by_keys(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of keys (one executemany statement takes rows of one shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


RowT = TypeVar("RowT")


def _table(row_class: type[Any]) -> Table:
    """The Core table of a mapped class (bulk statements skip the ORM's per-row work)."""
    return cast(Table, row_class.__table__)


def _finish_outbox_items(status: OutboxStatus, now: datetime, **columns: Any) -> Update:
    """A bulk update of outbox items by ``outbox_id`` to ``status`` (with ``columns``), counting the attempt."""
    outbox = _table(OutboxRow)
    return (
        update(outbox)
        .where(outbox.c.id == bindparam("outbox_id"))
        .values(status=status, attempts=outbox.c.attempts + 1, updated_at=now, **columns)
    )


#: How long a claim on a conflict being resolved (:meth:`SyncStore.claim_conflict`) holds: a resolution takes one
#: CRM write, so an older claim belongs to a process that stopped half-way.
CONFLICT_CLAIM_EXPIRES = timedelta(minutes=5)


class SyncStore:
    """Everything the sync engine persists, one short transaction per call."""

    def __init__(self, database: Database) -> None:
        self.db = database
        #: Runs of this process whose end could not be recorded (the database went away under them): still
        #: "running" in the store, under a lock of this very process, which the next claim of it closes.
        self._cut_off: set[int] = set()

    # -- locks ---------------------------------------------------------------------------------
    def _lock_time(self, session: Session) -> datetime:
        """The time a lock's heartbeat is written and judged by (:func:`lock_time`)."""
        return lock_time(self.db, session)

    def acquire_lock(self, integration_id: int, owner: str | None = None) -> bool:
        """Take the integration's sync lock; ``False`` when a live run holds it."""
        return self.claim_lock(integration_id, owner)[0]

    def claim_lock(self, integration_id: int, owner: str | None = None) -> tuple[bool, LockHolder | None]:
        """Take the integration's sync lock: ``(True, None)``, or ``(False, holder)`` with the live holder that
        refused it, as read in the refusing transaction (a holder that lets go a moment later is still named).
        The holder is ``None`` only when a run took the lock and let it go three times while this one tried."""
        owner = owner or lock_owner()
        for _ in range(3):
            with self.db.session() as session:
                if self.db.is_sqlite:
                    # The lock row is read under the write lock: two processes finding the same stale lock would
                    # both take it over otherwise (PostgreSQL holds the row with FOR UPDATE instead).
                    hold_for_write(session, _table(SyncLockRow))
                now = self._lock_time(session)
                row = session.get(SyncLockRow, integration_id, with_for_update=not self.db.is_sqlite)
                if row is not None:
                    holder = holder_of(row, now)
                    if row.owner != owner and holder.live:
                        return False, holder
                    if row.owner != owner:
                        # The owner died mid-run: runs only start under this lock, so any run of the integration
                        # still "running" is its, and would show so for ever (and could never be undone). Its
                        # pending writes stay in the outbox for the next run to resume.
                        self._close_interrupted_runs(session, integration_id, now)
                    elif self._cut_off:
                        # This process's own run that the database went away under: the same, once it is back.
                        self._close_interrupted_runs(session, integration_id, now, only=self._cut_off)
                    row.owner, row.acquired_at, row.heartbeat_at, row.run_id = owner, now, now, None
                    return True, None
            try:
                with self.db.session() as session:
                    session.add(SyncLockRow(integration_id=integration_id, owner=owner, acquired_at=now,
                                            heartbeat_at=now))
            except IntegrityError:
                taken_by = self.lock_state(integration_id)  # another process took it between read and insert
                if taken_by is not None:
                    return False, taken_by
                continue  # ... and has let it go already: try again
            return True, None
        return False, None

    def heartbeat(self, integration_id: int, run_id: int | None = None, owner: str | None = None) -> None:
        with self.db.session() as session:
            session.execute(
                update(SyncLockRow)
                .where(SyncLockRow.integration_id == integration_id, SyncLockRow.owner == (owner or lock_owner()))
                .values(heartbeat_at=self._lock_time(session), run_id=run_id)
            )

    def release_lock(self, integration_id: int, owner: str | None = None) -> None:
        with self.db.session() as session:
            session.execute(
                delete(SyncLockRow).where(
                    SyncLockRow.integration_id == integration_id, SyncLockRow.owner == (owner or lock_owner())
                )
            )

    def lock_holder(self, integration_id: int) -> tuple[str, int | None] | None:
        """Who holds the lock and the run it is doing, if anyone."""
        with self.db.session() as session:
            row = session.get(SyncLockRow, integration_id)
            return (row.owner, row.run_id) if row else None

    def lock_state(self, integration_id: int) -> LockHolder | None:
        """Who holds the lock, the run it is doing and how long ago it was last heard from (by the lock's clock,
        the database server's on PostgreSQL), if anyone holds it."""
        with self.db.session() as session:
            row = session.get(SyncLockRow, integration_id)
            return holder_of(row, self._lock_time(session)) if row is not None else None

    def close_orphaned_runs(self) -> int:
        """Close the runs whose lock's holder is gone (a process of this machine that no longer exists, or one
        silent for :data:`LOCK_STALE_AFTER`) as interrupted, with the counts of their record logs, and free their
        locks: what taking such a lock over does, for a list of runs read before any sync takes it. Returns how
        many runs were closed."""
        with self.db.session() as session:
            now = self._lock_time(session)
            if all(holder_of(row, now).live for row in session.scalars(select(SyncLockRow))):
                return 0  # the common case, read without the write lock
        closed = 0
        with self.db.session() as session:
            if self.db.is_sqlite:
                hold_for_write(session, _table(SyncLockRow))
            now = self._lock_time(session)
            for row in session.scalars(select(SyncLockRow).with_for_update(skip_locked=not self.db.is_sqlite)):
                if not holder_of(row, now).live:
                    closed += self._close_interrupted_runs(session, row.integration_id, now)
                    session.delete(row)
        return closed

    def run_cut_off(self, run_id: int) -> None:
        """Note that this process could not record the end of run ``run_id`` (the database did not answer): the
        next claim of its integration's lock by this process closes it as interrupted."""
        self._cut_off.add(run_id)

    @staticmethod
    def _close_interrupted_runs(session: Session, integration_id: int, now: datetime,
                                only: set[int] | None = None) -> int:
        """Close the integration's runs still "running" once their process is known to be gone (or, ``only``,
        these runs of this process, which the database went away under): failed, as interrupted, with the counts
        of their record log (what each wrote before it stopped, which its own figures, written as a run ends,
        never got)."""
        statement = select(SyncRunRow.id, SyncRunRow.direction).where(
            SyncRunRow.integration_id == integration_id, SyncRunRow.status == SyncRunStatus.RUNNING)
        if only is not None:
            statement = statement.where(SyncRunRow.id.in_(sorted(only)))
        runs = list(session.execute(statement))
        for run_id, direction in runs:
            counted: dict[RecordOutcome, int] = {
                outcome: int(count) for outcome, count in session.execute(
                    select(SyncRecordLogRow.outcome, func.count())
                    .where(SyncRecordLogRow.run_id == run_id)
                    .group_by(SyncRecordLogRow.outcome)
                )
            }
            figures = {
                "created": counted.get(RecordOutcome.CREATED, 0),
                "updated": counted.get(RecordOutcome.UPDATED, 0),
                "unchanged": counted.get(RecordOutcome.UNCHANGED, 0),
                "failed": counted.get(RecordOutcome.FAILED, 0),
                "conflicts": counted.get(RecordOutcome.CONFLICT, 0),
            }
            session.execute(
                update(SyncRunRow).where(SyncRunRow.id == run_id).values(
                    status=SyncRunStatus.FAILED, finished_at=now,
                    message=INTERRUPTED_UNDO_MESSAGE if direction == SyncDirection.UNDO else INTERRUPTED_MESSAGE,
                    total=sum(figures[k] for k in ("created", "updated", "unchanged", "failed")), **figures,
                )
            )
        return len(runs)

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, integration_id: int, trigger: SyncTrigger, direction: SyncDirection, message: str | None = None,
                  *, undoes_run_id: int | None = None) -> int:
        with self.db.session() as session:
            run = SyncRunRow(integration_id=integration_id, trigger=trigger, direction=direction, message=message,
                             undoes_run_id=undoes_run_id)
            session.add(run)
            session.flush()
            return run.id

    def update_run(self, run_id: int, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(SyncRunRow).where(SyncRunRow.id == run_id).values(**values))

    def finish_run(self, run_id: int, status: SyncRunStatus, **values: Any) -> None:
        self.update_run(run_id, status=status, finished_at=utcnow(), **values)

    def get_run(self, run_id: int) -> SyncRunRow:
        return self._detached(SyncRunRow, run_id, f"no sync run {run_id}")

    def _detached(self, row_class: type[RowT], key: int, missing: str) -> RowT:
        """The ``row_class`` row whose primary key is ``key``, detached from its session.

        Raises:
            NotFoundError: saying ``missing`` when there is none.
        """
        with self.db.session() as session:
            row = session.get(row_class, key)
            if row is None:
                raise NotFoundError(missing)
            session.expunge(row)
            return row

    def _all_detached(self, statement: Select[RowT]) -> list[RowT]:
        """Every row ``statement`` selects, detached from its session."""
        with self.db.session() as session:
            rows = list(session.scalars(statement))
            for row in rows:
                session.expunge(row)
            return rows

    def list_runs(self, integration_id: int | None = None, limit: int = 50, *,
                  before: int | None = None) -> list[SyncRunRow]:
        """The newest ``limit`` runs, newest first; with ``before``, those older than run ``before`` (the next page
        of a long history, read by its key rather than by reading every newer run again)."""
        statement = select(SyncRunRow).order_by(SyncRunRow.id.desc()).limit(limit)
        if before is not None:
            statement = statement.where(SyncRunRow.id < before)
        if integration_id is not None:
            statement = statement.where(SyncRunRow.integration_id == integration_id)
        return self._all_detached(statement)

    def runs_changed(self, newer_than: int, unfinished: Sequence[int]) -> list[SyncRunRow]:
        """Runs started after run ``newer_than`` and the ``unfinished`` runs as they stand now, newest first: what
        a live view of the run history re-reads instead of every run it shows."""
        wanted = SyncRunRow.id > newer_than
        if unfinished:
            wanted = or_(wanted, SyncRunRow.id.in_(list(unfinished)))
        return self._all_detached(select(SyncRunRow).where(wanted).order_by(SyncRunRow.id.desc()))

    def last_successful_run(self, integration_id: int, directions: Sequence[SyncDirection]) -> datetime | None:
        """When the last run in one of ``directions`` that did not fail started."""
        with self.db.session() as session:
            return session.scalar(
                select(func.max(SyncRunRow.started_at)).where(
                    SyncRunRow.integration_id == integration_id,
                    SyncRunRow.direction.in_(list(directions)),
                    SyncRunRow.status.in_([SyncRunStatus.SUCCEEDED, SyncRunStatus.PARTIAL]),
                    SyncRunRow.dry_run.is_(False),
                )
            )

    def sign_in_refused_at(self, integration_id: int) -> datetime | None:
        """When the integration's newest sync attempt ended, if the CRM refused its sign-in then (or no usable
        credentials could be read); ``None`` when the newest attempt got past the sign-in, or there is none."""
        with self.db.session() as session:
            newest = session.execute(
                select(SyncAttemptMetricsRow.at, SyncAttemptMetricsRow.error_category)
                .where(SyncAttemptMetricsRow.integration_id == integration_id)
                .order_by(SyncAttemptMetricsRow.id.desc()).limit(1)
            ).first()
        if newest is None or newest.error_category is not ErrorCategory.AUTH:
            return None
        return cast(datetime, newest.at)

    def record_log(self, run_id: int) -> list[SyncRecordLogRow]:
        """A run's whole record log (a small run's; large ones are read with :meth:`record_log_page`)."""
        rows: list[SyncRecordLogRow] = []
        while page := self.record_log_page(run_id, offset=len(rows), limit=1000):
            rows.extend(page)
            if len(page) < 1000:
                break
        return rows

    def record_log_page(
        self, run_id: int, *, offset: int = 0, limit: int = 500, failures_first: bool = False
    ) -> list[SyncRecordLogRow]:
        """One page of a run's record log, in the order it happened (failed, then conflicting, then skipped records
        first when asked)."""
        statement = select(SyncRecordLogRow).where(SyncRecordLogRow.run_id == run_id)
        if failures_first:
            rank = case(
                (SyncRecordLogRow.outcome == RecordOutcome.FAILED, 0),
                (SyncRecordLogRow.outcome == RecordOutcome.CONFLICT, 1),
                (SyncRecordLogRow.outcome == RecordOutcome.SKIPPED, 2),
                else_=3,
            )
            statement = statement.order_by(rank, SyncRecordLogRow.id)
        else:
            statement = statement.order_by(SyncRecordLogRow.id)
        return self._all_detached(statement.offset(offset).limit(limit))

    def record_log_count(self, run_id: int) -> int:
        with self.db.session() as session:
            statement = select(func.count()).select_from(SyncRecordLogRow).where(SyncRecordLogRow.run_id == run_id)
            return int(session.scalar(statement) or 0)

    def record_log_errors(self, run_id: int) -> dict[ErrorCategory, int]:
        """How many records of a run failed or were skipped, per error category."""
        with self.db.session() as session:
            rows = session.execute(
                select(SyncRecordLogRow.error_category, func.count())
                .where(SyncRecordLogRow.run_id == run_id, SyncRecordLogRow.error_category.is_not(None))
                .group_by(SyncRecordLogRow.error_category)
            )
            return {category: int(count) for category, count in rows if category is not None}

    def add_record_outcomes(
        self,
        run_id: int,
        outcomes: Iterable[tuple[RecordObject, str, str | None, RecordOutcome, ErrorCategory | None, str | None]],
    ) -> None:
        rows = [
            {
                "run_id": run_id,
                "object": obj,
                "record_key": key[:254],
                "crm_id": crm_id,
                "outcome": outcome,
                "error_category": category,
                "message": message,
                "at": utcnow(),
            }
            for obj, key, crm_id, outcome, category, message in outcomes
        ]
        if not rows:
            return
        with self.db.session() as session:
            session.execute(insert(_table(SyncRecordLogRow)), rows)

    # -- cursors -------------------------------------------------------------------------------
    def get_cursor(self, integration_id: int, obj: RecordObject) -> str | None:
        with self.db.session() as session:
            return session.scalar(
                select(SyncCursorRow.cursor).where(
                    SyncCursorRow.integration_id == integration_id, SyncCursorRow.object == obj
                )
            )

    def _set_cursor(self, session: Session, integration_id: int, obj: RecordObject, cursor: str) -> None:
        row = session.scalar(
            select(SyncCursorRow).where(SyncCursorRow.integration_id == integration_id, SyncCursorRow.object == obj)
        )
        if row is None:
            session.add(SyncCursorRow(integration_id=integration_id, object=obj, cursor=cursor))
        else:
            row.cursor = cursor

    # -- local records -------------------------------------------------------------------------
    @staticmethod
    def _row_class(obj: RecordObject) -> type[ContactRow] | type[LeadRow]:
        return ContactRow if obj is RecordObject.CONTACT else LeadRow

    @staticmethod
    def _read_locals(session: Session, obj: RecordObject, where: Any) -> list[LocalRecord]:
        """Local records matching ``where`` (a condition on the contacts or leads table), read as plain rows."""
        if obj is RecordObject.LEAD:
            leads = session.execute(select(_table(LeadRow)).where(where))
            return [LocalRecord(r.id, obj, stored_lead(r), r.updated_at) for r in leads]
        contacts, profiles = _table(ContactRow), _table(SocialProfileRow)
        rows = list(session.execute(select(contacts).where(where)))
        held: dict[int, list[Any]] = {}
        for chunk in in_list_chunks(rows):
            ids = [row.id for row in chunk]
            statement = select(profiles).where(profiles.c.contact_id.in_(ids)).order_by(profiles.c.id)
            for profile in session.execute(statement):
                held.setdefault(profile.contact_id, []).append(profile)
        return [LocalRecord(r.id, obj, stored_contact(r, held.get(r.id, [])), r.updated_at) for r in rows]

    def _load_rows(self, session: Session, obj: RecordObject, ids: Sequence[int]) -> dict[int, ContactRow | LeadRow]:
        cls = self._row_class(obj)
        statement = select(cls).where(cls.id.in_(list(ids)))
        if cls is ContactRow:
            statement = statement.options(selectinload(ContactRow.social_profiles))
        rows: list[ContactRow | LeadRow] = list(session.scalars(statement))
        return {row.id: row for row in rows}

    def _locals_among(self, obj: RecordObject, column: str, values: Sequence[Any]) -> list[LocalRecord]:
        """The local records whose ``column`` holds one of ``values``, asked for 500 values a query."""
        table = _table(self._row_class(obj))
        found: list[LocalRecord] = []
        with self.db.session() as session:
            for chunk in in_list_chunks(values):
                found.extend(self._read_locals(session, obj, table.c[column].in_(chunk)))
        return found

    def local_records(self, obj: RecordObject, ids: Sequence[int]) -> dict[int, LocalRecord]:
        return {local.id: local for local in self._locals_among(obj, "id", ids)}

    def local_by_emails(self, obj: RecordObject, emails: Sequence[str]) -> dict[str, LocalRecord]:
        return {local.record.email: local for local in self._locals_among(obj, "email", emails)}

    def forgotten_among(self, emails: Sequence[str]) -> dict[str, datetime]:
        """Of these emails, those of people forgotten at their request: email -> when."""
        return ForgetStore(self.db).forgotten_among(emails)

    def merged_into(self, emails: Sequence[str]) -> dict[str, str]:
        """Of these emails, those of contacts a merge folded into another contact still stored: email -> the kept
        contact's email (as it is now)."""
        kept: dict[str, int] = {}
        with self.db.session() as session:
            for chunk in in_list_chunks(list(emails)):
                statement = (select(AuditLogRow.old_value, AuditLogRow.entity_id)
                             .where(AuditLogRow.field == MERGED_FIELD, AuditLogRow.entity == RecordObject.CONTACT.value,
                                    AuditLogRow.old_value.in_(chunk))
                             .order_by(AuditLogRow.id))
                kept.update((str(email), int(keep_id)) for email, keep_id in session.execute(statement))
            if not kept:
                return {}
            kept_now = select(ContactRow.id, ContactRow.email).where(ContactRow.id.in_(sorted(set(kept.values()))))
            now = {contact_id: email for contact_id, email in session.execute(kept_now)}
        return {email: now[keep_id] for email, keep_id in kept.items() if keep_id in now}

    def _changed_local(self, columns: Any, integration_id: int, obj: RecordObject) -> Any:
        """``SELECT columns`` over the local records never synced or changed since their last sync."""
        cls = self._row_class(obj)
        return (
            select(columns)
            .select_from(cls)
            .outerjoin(
                CrmLinkRow,
                and_(
                    CrmLinkRow.integration_id == integration_id,
                    CrmLinkRow.object == obj,
                    CrmLinkRow.local_id == cls.id,
                ),
            )
            .where(
                or_(
                    CrmLinkRow.id.is_(None),
                    and_(
                        CrmLinkRow.deleted_in_crm.is_(False),
                        or_(CrmLinkRow.local_synced_at.is_(None), cls.updated_at > CrmLinkRow.local_synced_at),
                    ),
                ),
            )
        )

    def changed_local_ids(self, integration_id: int, obj: RecordObject, after_id: int, limit: int) -> list[int]:
        """Ids of local records never synced or changed since their last sync, in id order, one page at a time."""
        cls = self._row_class(obj)
        with self.db.session() as session:
            statement = (
                self._changed_local(cls.id, integration_id, obj).where(cls.id > after_id).order_by(cls.id).limit(limit)
            )
            return list(session.scalars(statement))

    def count_changed_local(self, integration_id: int, obj: RecordObject) -> int:
        """How many local records a push would look at (never synced, or changed since): a push's progress total."""
        with self.db.session() as session:
            return int(session.scalar(self._changed_local(func.count(), integration_id, obj)) or 0)

    def unlinked_local_ids(self, integration_id: int, obj: RecordObject, after_id: int, limit: int) -> list[int]:
        """Ids of local records not yet linked to the CRM (the hourly "push new contacts")."""
        cls = self._row_class(obj)
        with self.db.session() as session:
            linked = select(CrmLinkRow.local_id).where(
                CrmLinkRow.integration_id == integration_id, CrmLinkRow.object == obj
            )
            statement = select(cls.id).where(cls.id > after_id, cls.id.not_in(linked)).order_by(cls.id).limit(limit)
            return list(session.scalars(statement))

    def save_local(
        self, obj: RecordObject, local_id: int | None, record: Contact | Lead
    ) -> tuple[int, datetime]:
        """Create or update a local record (by id when known); return its id and new ``updated_at``."""
        with self.db.session() as session:
            row: ContactRow | LeadRow | None = None
            if local_id is not None:
                row = self._load_rows(session, obj, [local_id]).get(local_id)
            if row is None:
                row = self._new_row(obj, record)
                session.add(row)
            self._fill_row(row, record)
            row.updated_at = utcnow()
            session.flush()
            return row.id, row.updated_at

    def add_local(self, obj: RecordObject, record: Contact | Lead,
                  then: Callable[[Session, int], None] | None = None) -> int:
        """Insert a new local record and return its id; never an update of a stored one. ``then`` writes, in the
        same transaction, what must be committed with it (given the new id).

        Raises:
            EmailTakenError: when a record with that email is stored (by now: checked by the insert itself).
        """
        try:
            with self.db.session() as session:
                row = self._new_row(obj, record)
                session.add(row)
                self._fill_row(row, record)
                session.flush()
                if then is not None:
                    then(session, row.id)
                return row.id
        except IntegrityError:
            raise EmailTakenError(f"{record.email} is already a {obj.value}") from None

    def change_local(
        self, obj: RecordObject, local_id: int, change: Callable[[Contact | Lead], Contact | Lead | None],
        then: Callable[[Session, tuple[Contact | Lead, Contact | Lead | None, datetime]], None] | None = None,
        *, first: Callable[[Session], None] | None = None,
    ) -> tuple[Contact | Lead, Contact | Lead | None, datetime] | None:
        """Change one local record by id: ``change`` gets it as stored and returns what to store (``None``: leave
        it). The record is held from before the read until the write (the database's write lock on SQLite, the
        row's lock on PostgreSQL), so a sync, import or event saving it meanwhile waits and is not overwritten.
        An exception from ``change`` writes nothing. ``first`` looks, in the same transaction once the record is
        held and before it is read, at what another writer of the record committed (an exception from it writes
        nothing either). ``then`` writes, in the same transaction, what must be committed with the change (given
        the result below). Neither is called when the record is gone.

        Returns:
            The record before and after (after ``None`` when nothing was written) and its ``updated_at`` then, or
            ``None`` when it is gone.
        """
        table = _table(self._row_class(obj))
        with self.db.session() as session:
            held = session.execute(update(table).where(table.c.id == local_id).values(updated_at=table.c.updated_at))
            if not cast(Any, held).rowcount:
                return None
            if first is not None:
                first(session)
            (local,) = self._read_locals(session, obj, table.c.id == local_id)
            before = local.record
            after = change(before)
            updated_at = local.updated_at
            if after is not None:
                row = self._load_rows(session, obj, [local_id])[local_id]
                self._fill_row(row, after)
                row.updated_at = updated_at = utcnow()
                session.flush()
            if then is not None:
                then(session, (before, after, updated_at))
            return before, after, updated_at

    def _new_row(self, obj: RecordObject, record: Contact | Lead) -> ContactRow | LeadRow:
        if self._row_class(obj) is ContactRow:
            return ContactRow(email=record.email, custom_fields={})
        return LeadRow(email=record.email)

    @staticmethod
    def _fill_row(
        row: ContactRow | LeadRow,
        record: Contact | Lead,
        profiles_later: list[tuple[ContactRow, Contact]] | None = None,
    ) -> None:
        """Give a contact or lead row the values of a domain record; a contact's profiles go to ``profiles_later``
        when given, for :func:`save_profiles_in_bulk`, else into the row's collection."""
        row.email = record.email
        if isinstance(row, ContactRow):
            assert isinstance(record, Contact)
            if profiles_later is None:
                _apply_contact(row, record)
            else:
                _apply_contact_columns(row, record)
                profiles_later.append((row, record))
            return
        assert isinstance(record, Lead)
        for name, value in lead_row_values(record).items():
            setattr(row, name, value)

    # -- links ---------------------------------------------------------------------------------
    def _links(self, integration_id: int, obj: RecordObject, *where: Any) -> list[Link]:
        """Links of one object matching ``where``, read as plain rows (a sync reads a page of them at a time)."""
        table = _table(CrmLinkRow)
        statement = select(*(table.c[name] for name in _LINK_COLUMNS)).where(
            table.c.integration_id == integration_id, table.c.object == obj, *where
        )
        with self.db.session() as session:
            return [Link(*row) for row in session.execute(statement)]

    def links_for_local(self, integration_id: int, obj: RecordObject, local_ids: Sequence[int]) -> dict[int, Link]:
        found = self._links(integration_id, obj, _table(CrmLinkRow).c.local_id.in_(list(local_ids)))
        return {link.local_id: link for link in found}

    def link_stamps(self, integration_id: int, obj: RecordObject, crm_ids: Sequence[str]) -> dict[str, datetime]:
        """CRM id -> the CRM's change stamp kept on its link (links with one, to a record not deleted in the CRM).

        Two columns only: a pull checks a whole page for its own writes' echoes before it reads any merge base."""
        table = _table(CrmLinkRow)
        statement = select(table.c.crm_id, table.c.crm_modified_at).where(
            table.c.integration_id == integration_id, table.c.object == obj, table.c.crm_id.in_(list(crm_ids)),
            table.c.crm_modified_at.is_not(None), table.c.deleted_in_crm.is_(False),
        )
        with self.db.session() as session:
            return {crm_id: stamp for crm_id, stamp in session.execute(statement)}

    def links_for_crm(self, integration_id: int, obj: RecordObject, crm_ids: Sequence[str]) -> dict[str, Link]:
        found = self._links(integration_id, obj, _table(CrmLinkRow).c.crm_id.in_(list(crm_ids)))
        return {link.crm_id: link for link in found}

    def save_link(self, integration_id: int, obj: RecordObject, local_id: int, crm_id: str, **values: Any) -> None:
        """Create or update the link of a local record (values: base_values, pushed_hash, ...)."""
        with self.db.session() as session:
            self._save_link(session, integration_id, obj, local_id, crm_id, **values)

    @staticmethod
    def _save_link(
        session: Session, integration_id: int, obj: RecordObject, local_id: int, crm_id: str, **values: Any
    ) -> None:
        row = session.scalar(
            select(CrmLinkRow).where(
                CrmLinkRow.integration_id == integration_id,
                CrmLinkRow.object == obj,
                CrmLinkRow.local_id == local_id,
            )
        )
        if row is None:
            # The CRM id may still be linked to another local record (a merge on the CRM side): move it.
            session.execute(
                delete(CrmLinkRow).where(
                    CrmLinkRow.integration_id == integration_id, CrmLinkRow.object == obj, CrmLinkRow.crm_id == crm_id
                )
            )
            row = CrmLinkRow(integration_id=integration_id, object=obj, local_id=local_id, crm_id=crm_id)
            session.add(row)
        row.crm_id = crm_id
        for key, value in values.items():
            setattr(row, key, value)

    @classmethod
    def _save_links(
        cls,
        session: Session,
        integration_id: int,
        obj: RecordObject,
        links: Sequence[tuple[int, str, dict[str, Any]]],
    ) -> None:
        """:meth:`_save_link` for many records of one object: two queries, then one bulk update and one bulk insert."""
        table = _table(CrmLinkRow)
        same_object = (table.c.integration_id == integration_id, table.c.object == obj)
        local_ids = [local_id for local_id, _, _ in links]
        link_ids: dict[int, int] = {
            local_id: link_id
            for local_id, link_id in session.execute(
                select(table.c.local_id, table.c.id).where(*same_object, table.c.local_id.in_(local_ids))
            )
        }
        new_crm_ids = [crm_id for local_id, crm_id, _ in links if local_id not in link_ids]
        taken = (
            list(session.execute(select(table.c.id, table.c.local_id).where(*same_object,
                                                                            table.c.crm_id.in_(new_crm_ids))))
            if new_crm_ids
            else []
        )
        if any(local_id in link_ids for _, local_id in taken) or len(set(local_ids)) != len(local_ids):
            # A CRM id moving between records of this very batch: one by one keeps the order's meaning.
            for local_id, crm_id, values in links:
                cls._save_link(session, integration_id, obj, local_id, crm_id, **values)
            return
        if taken:
            # CRM ids still linked to other local records (a merge on the CRM side): the links move.
            session.execute(delete(table).where(table.c.id.in_([link_id for link_id, _ in taken])))
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        inserts: list[dict[str, Any]] = []
        for local_id, crm_id, values in links:
            if local_id in link_ids:
                names = tuple(sorted(values))
                row = {"link_id": link_ids[local_id], "new_crm_id": crm_id}
                updates.setdefault(names, []).append(row | {f"new_{name}": values[name] for name in names})
            else:
                inserts.append(
                    {"integration_id": integration_id, "object": obj, "local_id": local_id, "crm_id": crm_id, **values}
                )
        for names, rows in updates.items():
            statement = (
                update(table)
                .where(table.c.id == bindparam("link_id"))
                .values(crm_id=bindparam("new_crm_id"), **{name: bindparam(f"new_{name}") for name in names})
            )
            session.execute(statement, rows)
        for same_keys in _grouped_by_keys(inserts):
            session.execute(insert(table), same_keys)

    # -- outbox --------------------------------------------------------------------------------
    def add_outbox(self, integration_id: int, run_id: int | None, items: Sequence[dict[str, Any]]) -> list[int]:
        """Record intended writes before they are sent; returns their ids."""
        with self.db.session() as session:
            rows = [OutboxRow(integration_id=integration_id, run_id=run_id, **item) for item in items]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def pending_outbox(self, integration_id: int, obj: RecordObject) -> list[OutboxItem]:
        with self.db.session() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.integration_id == integration_id,
                    OutboxRow.object == obj,
                    OutboxRow.status == OutboxStatus.PENDING,
                )
                .order_by(OutboxRow.id)
            )
            return [
                OutboxItem(
                    r.id, r.object, r.local_id, r.email, r.crm_id, dict(r.fields), dict(r.base_after),
                    r.values_hash, r.local_version, r.run_id,
                    dict(r.crm_old_values) if r.crm_old_values is not None else None,
                )
                for r in rows
            ]

    def complete_outbox(
        self,
        integration_id: int,
        done: Sequence[tuple[OutboxItem, str, datetime | None]],
        failed: Sequence[tuple[OutboxItem, str]],
        audit: Sequence[dict[str, Any]] = (),
        crm_stamps: Mapping[int, datetime | None] | None = None,
    ) -> None:
        """Mark writes done (linking each record to its CRM id and moving its base) or failed, and store the
        ``audit`` rows of the writes, all in one transaction.

        ``crm_stamps`` (outbox id -> the CRM's change stamp right after the write) become the links'
        ``crm_modified_at``, so the next pull knows these writes' echoes; a write without one clears it."""
        stamps = crm_stamps or {}
        now = utcnow()
        with self.db.session() as session:
            if done:
                session.execute(
                    _finish_outbox_items(OutboxStatus.DONE, now, crm_id=bindparam("done_crm_id")),
                    [{"outbox_id": item.id, "done_crm_id": crm_id} for item, crm_id, _ in done],
                )
            for obj in {item.object for item, _, _ in done}:
                self._save_links(
                    session,
                    integration_id,
                    obj,
                    [
                        (
                            item.local_id,
                            crm_id,
                            {
                                "base_values": item.base_after,
                                "pushed_hash": item.values_hash,
                                "crm_modified_at": stamps.get(item.id),
                                "local_synced_at": local_version,
                                "deleted_in_crm": False,
                            },
                        )
                        for item, crm_id, local_version in done
                        if item.object is obj
                    ],
                )
            if failed:
                session.execute(
                    _finish_outbox_items(OutboxStatus.FAILED, now, error=bindparam("failed_error")),
                    [{"outbox_id": item.id, "failed_error": error[:2000]} for item, error in failed],
                )
            if audit:
                session.execute(
                    insert(_table(AuditLogRow)),
                    [audit_insert_row({"at": now, **row, "integration_id": integration_id}) for row in audit],
                )

    def refused_writes(
        self, integration_id: int, obj: RecordObject, local_ids: Sequence[int], categories: Iterable[ErrorCategory],
    ) -> dict[int, RefusedWrite]:
        """Local id -> its newest CRM write, for the records among ``local_ids`` whose newest write failed for one
        of ``categories``, as the record log of the run that sent it (or resumed it) says; a write whose failure was
        not logged is not counted as refused."""
        wanted = set(categories)
        if not local_ids or not wanted:
            return {}
        outbox = _table(OutboxRow)
        found: dict[int, RefusedWrite] = {}
        with self.db.session() as session:
            for chunk in in_list_chunks(sorted(set(local_ids))):
                newest = (
                    select(func.max(outbox.c.id))
                    .where(outbox.c.integration_id == integration_id, outbox.c.object == obj,
                           outbox.c.local_id.in_(list(chunk)))
                    .group_by(outbox.c.local_id)
                )
                failed = session.execute(
                    select(outbox.c.local_id, outbox.c.email, outbox.c.run_id, outbox.c.values_hash,
                           outbox.c.local_version)
                    .where(outbox.c.id.in_(newest), outbox.c.status == OutboxStatus.FAILED,
                           outbox.c.run_id.is_not(None))
                ).all()
                if not failed:
                    continue
                # The failure is logged by the run that sent the write, or by a later one that resumed it.
                logged: dict[str, list[SyncRecordLogRow]] = {}
                for row in session.scalars(
                    select(SyncRecordLogRow)
                    .join(SyncRunRow, SyncRunRow.id == SyncRecordLogRow.run_id)
                    .where(SyncRunRow.integration_id == integration_id,
                           SyncRecordLogRow.run_id >= min(r.run_id for r in failed),
                           SyncRecordLogRow.object == obj,
                           SyncRecordLogRow.outcome == RecordOutcome.FAILED,
                           SyncRecordLogRow.record_key.in_(sorted({r.email[:254] for r in failed})))
                    .order_by(SyncRecordLogRow.id)
                ):
                    logged.setdefault(row.record_key, []).append(row)
                for r in failed:
                    entry = next((row for row in reversed(logged.get(r.email[:254], [])) if row.run_id >= r.run_id),
                                 None)
                    if entry is None or entry.error_category is None or entry.error_category not in wanted:
                        continue
                    found[r.local_id] = RefusedWrite(r.local_id, r.values_hash, r.local_version,
                                                     entry.error_category, entry.message or "refused", entry.at,
                                                     entry.run_id)
        return found

    def mark_pushed(
        self,
        integration_id: int,
        obj: RecordObject,
        records: Sequence[tuple[int, str, dict[str, Any] | None, str | None, datetime | None]],
    ) -> None:
        """Mark records the push had nothing to send for as synced, in one transaction.

        Each is (local id, CRM id, new merge base or ``None`` to keep it, pushed hash, local version synced): a
        record already linked keeps its base; one found in the CRM by email holding its values gets linked.
        """
        if not records:
            return
        with self.db.session() as session:
            self._save_links(
                session,
                integration_id,
                obj,
                [
                    (
                        local_id,
                        crm_id,
                        {"local_synced_at": synced}
                        if base is None
                        else {"base_values": base, "pushed_hash": digest, "local_synced_at": synced,
                              "deleted_in_crm": False},
                    )
                    for local_id, crm_id, base, digest, synced in records
                ],
            )

    def mark_deleted_in_crm(self, integration_id: int, obj: RecordObject, local_id: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(CrmLinkRow)
                .where(
                    CrmLinkRow.integration_id == integration_id,
                    CrmLinkRow.object == obj,
                    CrmLinkRow.local_id == local_id,
                )
                .values(deleted_in_crm=True)
            )

    # -- pulled page / undo apply ---------------------------------------------------------------
    def apply_record_writes(
        self,
        integration_id: int,
        obj: RecordObject,
        writes: Sequence[PulledWrite],
        *,
        cursor: str | None = None,
    ) -> None:
        """Write records' local values, links, audit rows and conflicts, then advance the cursor (a pulled page's),
        all in one transaction with a handful of batched statements: a crash leaves all of it or none.

        Raises:
            EmailTakenError: when a record the page would insert was saved meanwhile by another writer (an import
                beside the sync): nothing is written; planned again, the page finds that record.
        """
        try:
            self._apply_record_writes(integration_id, obj, writes, cursor)
        except IntegrityError:
            raise EmailTakenError(f"{obj.value}s of this page were saved meanwhile by another writer") from None

    def _apply_record_writes(
        self, integration_id: int, obj: RecordObject, writes: Sequence[PulledWrite], cursor: str | None
    ) -> None:
        now = utcnow()
        with self.db.session() as session:
            changed = [w for w in writes if w.record is not None and w.local_id is not None]
            rows = self._load_rows(session, obj, [w.local_id for w in changed if w.local_id is not None])
            new = [w.record for w in writes if w.record is not None and w.local_id is None]
            inserted = self._insert_records(session, obj, new, now) if new else {}
            # (write, local id, the record's updated_at when this transaction wrote it)
            written: list[tuple[PulledWrite, int, datetime | None]] = []
            profiles: list[tuple[ContactRow, Contact]] = []
            for write in writes:
                if write.record is None:
                    assert write.local_id is not None
                    written.append((write, write.local_id, None))
                elif write.local_id is None:
                    written.append((write, inserted[write.record.email], now))
                elif (row := rows.get(write.local_id)) is not None:
                    self._fill_row(row, write.record, profiles)
                    row.updated_at = now
                    written.append((write, write.local_id, now))
                # else: deleted locally since the page was planned: nothing to merge into
            session.flush()
            save_profiles_in_bulk(session, profiles)
            links: list[tuple[int, str, dict[str, Any]]] = []
            audit: list[dict[str, Any]] = []
            conflicts: list[dict[str, Any]] = []
            for write, local_id, written_at in written:
                synced_at = None if write.needs_push else (written_at or write.local_version)
                links.append(
                    (
                        local_id,
                        write.crm_id,
                        {
                            "base_values": write.base_values,
                            "crm_modified_at": write.crm_modified_at,
                            "local_synced_at": synced_at,
                        },
                    )
                )
                audit.extend(
                    audit_insert_row({"at": now, **entry, "entity_id": str(local_id), "integration_id": integration_id})
                    for entry in write.audit
                )
                conflicts.extend(
                    {**entry, "local_id": local_id, "integration_id": integration_id} for entry in write.conflicts
                )
            if links:
                self._save_links(session, integration_id, obj, links)
            if audit:
                session.execute(insert(_table(AuditLogRow)), audit)
            if conflicts:
                session.execute(insert(_table(ConflictRow)), conflicts)
            if cursor is not None:
                self._set_cursor(session, integration_id, obj, cursor)

    def _insert_records(
        self, session: Session, obj: RecordObject, records: Sequence[Contact | Lead], now: datetime
    ) -> dict[str, int]:
        """Insert new local records (and a contact's profiles) with bulk statements; their ids by email."""
        if obj is RecordObject.CONTACT:
            contacts = [r for r in records if isinstance(r, Contact)]
            saved = ContactStore._inserted(session, contacts)
            ids = {email: item.id for email, item in saved.items()}
            # One stamp for the page: the link's "synced at" compares with it.
            table = _table(ContactRow)
            for chunk in in_list_chunks(list(ids.values())):
                session.execute(update(table).where(table.c.id.in_(chunk)).values(updated_at=now))
            return ids
        table = _table(LeadRow)
        rows = [
            {"email": r.email, **lead_row_values(r), "created_at": now, "updated_at": now}
            for r in records if isinstance(r, Lead)
        ]
        # Matched back by email (unique): asking for the parameters' order makes SQLite insert a row per statement.
        statement = insert(table).returning(table.c.id, table.c.email)
        return {email: lead_id for lead_id, email in session.execute(statement, rows)}

    # -- audit ---------------------------------------------------------------------------------
    def add_audit(self, integration_id: int, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.db.session() as session:
            self._add_audit(session, integration_id, rows)

    @staticmethod
    def _add_audit(session: Session, integration_id: int, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        now = utcnow()
        session.execute(
            insert(_table(AuditLogRow)),
            [audit_insert_row({"at": now, **row, "integration_id": integration_id}) for row in rows],
        )

    def iter_audit_for_run(self, run_id: int, page_size: int = 1000) -> Iterator[AuditLogRow]:
        """A run's audit rows, oldest first, read a page at a time."""
        after = 0
        while True:
            rows = self._all_detached(
                select(AuditLogRow)
                .where(AuditLogRow.run_id == run_id, AuditLogRow.id > after)
                .order_by(AuditLogRow.id)
                .limit(page_size)
            )
            yield from rows
            if len(rows) < page_size:
                return
            after = rows[-1].id

    def audit_changes_after(
        self, entity: str, entity_ids: Sequence[str], after_id: int, integration_id: int
    ) -> dict[str, set[tuple[str, str]]]:
        """Per record, the (field, side) pairs changed by audit rows newer than ``after_id``: local changes by
        anything, CRM changes only in ``integration_id``'s CRM (another integration's push wrote another CRM)."""
        found: dict[str, set[tuple[str, str]]] = {}
        if not entity_ids:
            return found
        with self.db.session() as session:
            rows = session.execute(
                select(AuditLogRow.entity_id, AuditLogRow.field, AuditLogRow.side).where(
                    AuditLogRow.entity == entity,
                    AuditLogRow.entity_id.in_(list(entity_ids)),
                    AuditLogRow.id > after_id,
                    or_(AuditLogRow.side != "crm", AuditLogRow.integration_id == integration_id),
                )
            )
            for entity_id, name, side in rows:
                found.setdefault(entity_id, set()).add((name, side))
        return found

    def gone_by_merge(self, obj: RecordObject, local_id: int) -> tuple[str, str] | None:
        """A record no longer stored that a merge folded into another: its email and the kept contact's."""
        if obj is not RecordObject.CONTACT:
            return None
        with self.db.session() as session:
            emails = session.scalars(select(AuditLogRow.new_value).where(
                AuditLogRow.entity == obj.value, AuditLogRow.entity_id == str(local_id), AuditLogRow.field == "email",
                AuditLogRow.new_value.is_not(None)).order_by(AuditLogRow.id.desc())).all()
            for email in dict.fromkeys(emails):
                kept = session.scalar(select(AuditLogRow.new_value).where(
                    AuditLogRow.entity == obj.value, AuditLogRow.field == MERGED_FIELD,
                    AuditLogRow.old_value == email).order_by(AuditLogRow.id.desc()).limit(1))
                if kept is not None and email is not None:
                    return str(email), str(kept)
        return None

    def undo_of(self, run_id: int) -> int | None:
        """The run that undid ``run_id`` in whole (succeeded), if any: an undo the CRM let through only in part
        (partial) or not at all (failed) leaves the run to be undone again."""
        with self.db.session() as session:
            return session.scalar(
                select(SyncRunRow.id).where(
                    SyncRunRow.undoes_run_id == run_id,
                    SyncRunRow.status == SyncRunStatus.SUCCEEDED,
                ).order_by(SyncRunRow.id).limit(1)
            )

    def audit_for_run(self, run_id: int) -> list[AuditLogRow]:
        return self._all_detached(select(AuditLogRow).where(AuditLogRow.run_id == run_id).order_by(AuditLogRow.id))

    # -- field mappings ------------------------------------------------------------------------
    def load_mappings(self, integration_id: int, obj: RecordObject) -> list[FieldMappingRow]:
        """The saved mappings of an integration's object (empty when the defaults apply)."""
        return self._all_detached(
            select(FieldMappingRow)
            .where(FieldMappingRow.integration_id == integration_id, FieldMappingRow.object == obj)
            .order_by(FieldMappingRow.id)
        )

    def save_mappings(
        self, integration_id: int, obj: RecordObject, rows: Sequence[dict[str, Any]], *, reread: Sequence[str] = ()
    ) -> None:
        """Replace an integration's mappings of one object.

        ``reread``: local fields whose flow is new (or goes to another CRM field). In the same transaction every
        link of the object forgets their merge base, its CRM change stamp and the local version it last pushed,
        and the object's pull cursor goes: the next sync compares those fields on every linked record, pulling
        the CRM's values, pushing the local ones, or raising a conflict where both hold different values.
        """
        with self.db.session() as session:
            session.execute(
                delete(FieldMappingRow).where(
                    FieldMappingRow.integration_id == integration_id, FieldMappingRow.object == obj
                )
            )
            session.flush()
            session.add_all(FieldMappingRow(integration_id=integration_id, object=obj, **row) for row in rows)
            if reread:
                self._forget_fields(session, integration_id, obj, set(reread))

    @staticmethod
    def _forget_fields(session: Session, integration_id: int, obj: RecordObject, fields: set[str]) -> None:
        session.execute(delete(SyncCursorRow).where(
            SyncCursorRow.integration_id == integration_id, SyncCursorRow.object == obj))
        table = _table(CrmLinkRow)
        mine = (table.c.integration_id == integration_id, table.c.object == obj)
        session.execute(update(table).where(*mine).values(crm_modified_at=None, local_synced_at=None))
        after_id = 0
        while True:
            page = list(session.execute(select(table.c.id, table.c.base_values).where(*mine, table.c.id > after_id)
                                        .order_by(table.c.id).limit(SAVE_BATCH)))
            if not page:
                return
            after_id = page[-1].id
            forgot = [{"link_id": row.id, "base": {k: v for k, v in (row.base_values or {}).items() if k not in fields}}
                      for row in page if fields & set(row.base_values or {})]
            if forgot:
                session.execute(update(table).where(table.c.id == bindparam("link_id"))
                                .values(base_values=bindparam("base")), forgot)

    # -- notices -------------------------------------------------------------------------------
    def notice_changed(self, key: str, facts: dict[str, Any], *, remember: bool = True) -> bool:
        """Whether ``facts`` differ from those remembered under ``key`` (or none were), remembering them unless
        ``remember`` is false (a dry run): a notice given once per change, not at every run, whichever process runs
        it (the app, a cron ``sync``). Another process remembering the same first facts at once wins (``False``)."""
        try:
            with self.db.session() as session:
                row = session.get(WorkspaceSettingRow, key)
                if row is not None and dict(row.value) == facts:
                    return False
                if remember and row is None:
                    session.add(WorkspaceSettingRow(key=key, value=facts))
                elif remember and row is not None:
                    row.value = facts
                return True
        except IntegrityError:
            return False

    # -- conflicts -----------------------------------------------------------------------------
    def open_conflicts(
        self, integration_id: int | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ConflictRow]:
        """Open conflicts, oldest first; a page of ``limit`` after conflict ``after_id`` when given."""
        statement = (
            select(ConflictRow)
            .where(ConflictRow.status == ConflictStatus.OPEN, ConflictRow.id > after_id)
            .order_by(ConflictRow.id)
            .limit(limit)
        )
        if integration_id is not None:
            statement = statement.where(ConflictRow.integration_id == integration_id)
        return self._all_detached(statement)

    def count_open_conflicts(self) -> int:
        with self.db.session() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(ConflictRow).where(ConflictRow.status == ConflictStatus.OPEN)
                )
                or 0
            )

    def get_conflict(self, conflict_id: int) -> ConflictRow:
        return self._detached(ConflictRow, conflict_id, f"no conflict {conflict_id}")

    def conflicts_by_id(self, conflict_ids: Sequence[int]) -> dict[int, ConflictRow]:
        """The conflicts of ``conflict_ids``, open or not, by id (ids of none left out), read 500 a query."""
        found: dict[int, ConflictRow] = {}
        for chunk in in_list_chunks(list(conflict_ids)):
            rows = self._all_detached(select(ConflictRow).where(ConflictRow.id.in_(chunk)))
            found.update((row.id, row) for row in rows)
        return found

    def open_conflict_fields(self, integration_id: int, obj: RecordObject, local_id: int) -> set[str]:
        with self.db.session() as session:
            return set(
                session.scalars(
                    select(ConflictRow.field).where(
                        ConflictRow.integration_id == integration_id,
                        ConflictRow.object == obj,
                        ConflictRow.local_id == local_id,
                        ConflictRow.status == ConflictStatus.OPEN,
                    )
                )
            )

    def open_conflict_fields_of(
        self, integration_id: int, obj: RecordObject, local_ids: Sequence[int]
    ) -> dict[int, set[str]]:
        """Fields with an open conflict, per local record, for a batch of records."""
        found: dict[int, set[str]] = {}
        with self.db.session() as session:
            rows = session.execute(
                select(ConflictRow.local_id, ConflictRow.field).where(
                    ConflictRow.integration_id == integration_id,
                    ConflictRow.object == obj,
                    ConflictRow.local_id.in_(list(local_ids)),
                    ConflictRow.status == ConflictStatus.OPEN,
                )
            )
            for local_id, name in rows:
                found.setdefault(local_id, set()).add(name)
        return found

    def claim_conflict(self, conflict_id: int) -> bool:
        """Mark an open conflict as being resolved here, so that another window, desktop or ``conflicts resolve``
        deciding it at the same moment is told so before it writes anything; ``False`` when it is resolved already
        or being resolved elsewhere.

        The claim is the open conflict's ``resolved_at`` set by one conditional UPDATE (its row count says who won,
        on SQLite and PostgreSQL alike). A claim older than :data:`CONFLICT_CLAIM_EXPIRES` is a process that
        stopped half-way, and is taken over.
        """
        now = utcnow()
        with self.db.session() as session:
            claimed = session.execute(
                update(ConflictRow)
                .where(ConflictRow.id == conflict_id, ConflictRow.status == ConflictStatus.OPEN,
                       or_(ConflictRow.resolved_at.is_(None), ConflictRow.resolved_at < now - CONFLICT_CLAIM_EXPIRES))
                .values(resolved_at=now)
            )
            return cast(int, getattr(claimed, "rowcount", 0)) == 1

    def claim_conflicts(self, conflict_ids: Sequence[int]) -> set[int]:
        """:meth:`claim_conflict` for many in one statement per 500: the ids claimed here (the others are resolved
        already, or being resolved elsewhere)."""
        now = utcnow()
        claimed: set[int] = set()
        with self.db.session() as session:
            for chunk in in_list_chunks(list(conflict_ids)):
                statement = (
                    update(ConflictRow)
                    .where(ConflictRow.id.in_(chunk), ConflictRow.status == ConflictStatus.OPEN,
                           or_(ConflictRow.resolved_at.is_(None),
                               ConflictRow.resolved_at < now - CONFLICT_CLAIM_EXPIRES))
                    .values(resolved_at=now)
                    .returning(ConflictRow.id)
                    .execution_options(synchronize_session=False)
                )
                claimed.update(session.scalars(statement))
        return claimed

    def release_conflict(self, conflict_id: int) -> None:
        """Let go of a claim (:meth:`claim_conflict`) whose resolution failed: the conflict waits open again."""
        with self.db.session() as session:
            session.execute(update(ConflictRow).where(ConflictRow.id == conflict_id,
                                                      ConflictRow.status == ConflictStatus.OPEN)
                            .values(resolved_at=None))

    def resolve_conflict(self, conflict_id: int, resolution: str, value: str | None) -> None:
        with self.db.session() as session:
            self._resolve_conflict(session, conflict_id, resolution, value)

    @staticmethod
    def _resolve_conflict(session: Session, conflict_id: int, resolution: str, value: str | None) -> None:
        session.execute(
            update(ConflictRow)
            .where(ConflictRow.id == conflict_id)
            .values(status=ConflictStatus.RESOLVED, resolution=resolution, resolved_value=value, resolved_at=utcnow())
        )

    def write_resolutions(
        self, integration_id: int, records: Iterable[tuple[RecordObject, int]],
        decide: Callable[[dict[tuple[RecordObject, int], LocalRecord], dict[tuple[RecordObject, int], Link]],
                         ResolutionWrites],
    ) -> ResolutionWrites:
        """Hold the local ``records`` (as :meth:`change_local` holds one), read them and their links, and write
        what ``decide`` makes of them (given those still there, by object and id): the records, links, audit rows
        and conflicts closed or let go, in one transaction and a few statements, whatever the batch's size. A batch
        of resolutions commits whole or not at all; an exception from ``decide`` or from a write writes nothing.
        The links are read with the records held: a sync that pulled into them while the CRM was being written
        moved their merge base and sync mark, which the resolutions must build on, not undo.

        Returns:
            What ``decide`` answered, once committed.
        """
        wanted: dict[RecordObject, set[int]] = {}
        for obj, local_id in records:
            wanted.setdefault(obj, set()).add(local_id)
        with self.db.session() as session:
            held: dict[tuple[RecordObject, int], LocalRecord] = {}
            links: dict[tuple[RecordObject, int], Link] = {}
            link_table = _table(CrmLinkRow)
            # In one order (object, then id), so two batches holding records of the same people never wait on
            # each other crosswise (PostgreSQL's row locks).
            for obj in sorted(wanted):
                table = _table(self._row_class(obj))
                for chunk in in_list_chunks(sorted(wanted[obj])):
                    session.execute(update(table).where(table.c.id.in_(chunk)).values(updated_at=table.c.updated_at))
                    held.update(((obj, local.id), local)
                                for local in self._read_locals(session, obj, table.c.id.in_(chunk)))
                    links.update(((obj, link.local_id), link) for link in (Link(*row) for row in session.execute(
                        select(*(link_table.c[name] for name in _LINK_COLUMNS)).where(
                            link_table.c.integration_id == integration_id, link_table.c.object == obj,
                            link_table.c.local_id.in_(chunk)))))
            writes = decide(held, links)
            self._write_resolutions(session, integration_id, writes)
            return writes

    def _write_resolutions(self, session: Session, integration_id: int, writes: ResolutionWrites) -> None:
        changed: dict[RecordObject, dict[int, tuple[Contact | Lead, datetime]]] = {}
        for (obj, local_id), stamped in writes.records.items():
            changed.setdefault(obj, {})[local_id] = stamped
        for obj, records in changed.items():
            for chunk in in_list_chunks(sorted(records)):
                rows = self._load_rows(session, obj, chunk)
                for local_id in chunk:
                    record, updated_at = records[local_id]
                    self._fill_row(rows[local_id], record)
                    rows[local_id].updated_at = updated_at
        session.flush()
        links: dict[RecordObject, list[tuple[int, str, dict[str, Any]]]] = {}
        for (obj, local_id), (crm_id, values) in writes.links.items():
            links.setdefault(obj, []).append((local_id, crm_id, values))
        for obj, same_object in links.items():
            self._save_links(session, integration_id, obj, same_object)
        self._add_audit(session, integration_id, writes.audit)
        conflicts = _table(ConflictRow)
        if writes.resolved:
            session.execute(
                update(conflicts).where(conflicts.c.id == bindparam("conflict_id")).values(
                    status=ConflictStatus.RESOLVED, resolution=bindparam("new_resolution"),
                    resolved_value=bindparam("new_value"), resolved_at=utcnow()),
                [{"conflict_id": conflict_id, "new_resolution": resolution, "new_value": value}
                 for conflict_id, resolution, value in writes.resolved],
            )
        for chunk in in_list_chunks(writes.released):
            session.execute(update(conflicts).where(conflicts.c.id.in_(chunk),
                                                    conflicts.c.status == ConflictStatus.OPEN)
                            .values(resolved_at=None))
