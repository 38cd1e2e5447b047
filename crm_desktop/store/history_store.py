"""Pruning the run history: whole runs older than a limit, with their record log and field changes, in batches."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordOutcome
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.lock_state import holder_of, lock_time
from crm_desktop.store.models import (
    LOCAL_TRIGGERS,
    MERGED_FIELD,
    AuditLogRow,
    ConflictRow,
    ConflictStatus,
    OutboxRow,
    OutboxStatus,
    SyncLockRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
)
from crm_desktop.store.repositories import hold_for_write

logger = logging.getLogger(__name__)

#: Old runs read per look (by id, oldest first).
RUNS_PER_LOOK = 200
#: Rows (record log lines and field changes) deleted per transaction, at most: a sync waiting for the store's write
#: lock waits for one such transaction, not for the whole prune. A run with more rows goes alone, whole: a run is
#: never left with part of its field changes (an undo of it would put back only part).
ROWS_PER_TRANSACTION = 20_000
#: On SQLite, how long a prune leaves the write lock free after each transaction (seconds): a sync waiting for it
#: (SQLite's busy handler looks again every 100 ms) gets it then, instead of timing out while the prune takes it back
#: at once transaction after transaction.
PAUSE_BETWEEN_TRANSACTIONS = 0.15
#: On SQLite, the free pages (as a share of the file) from which a prune gives the space back to the disk.
GIVE_BACK_FROM = 0.10
#: How long emptying the write-ahead log after giving space back waits for other processes' readers (ms).
CHECKPOINT_WAIT_MS = 200
#: Pages an incremental vacuum frees per statement (each its own short write).
PAGES_PER_VACUUM_STEP = 2_000

#: The local undo runs' messages (:func:`~crm_desktop.store.import_log.undo_message`, and a single change's undo).
_UNDO_OF_RUN = re.compile(r"^undo of run (\d+)$")
_UNDO_OF_CHANGE = re.compile(r"^undo of change (\d+)$")


@dataclass
class PruneCounts:
    """What pruning deletes, or would delete.

    Attributes:
        runs: runs deleted.
        record_log: their record log lines.
        field_changes: their field changes (audit rows: the per-person History and what an undo puts back).
        kept: runs older than the limit kept, as something still needs them (see :class:`RunHistoryStore`).
    """

    runs: int = 0
    record_log: int = 0
    field_changes: int = 0
    kept: int = 0

    @property
    def rows(self) -> int:
        """Every row deleted: the runs and their lines."""
        return self.runs + self.record_log + self.field_changes


@dataclass(frozen=True)
class SpaceReport:
    """What giving the freed space of a SQLite file back did.

    Attributes:
        how: ``incremental`` (freed pages given back a few at a time), ``vacuum`` (the file rewritten, once: from
            then on it gives space back incrementally), ``waiting`` (a sync was running: the next prune does it),
            or ``failed`` (with ``reason``).
        bytes_before, bytes_after: the size of the file with its write-ahead log.
        reason: why it failed.
    """

    how: str
    bytes_before: int
    bytes_after: int
    reason: str = ""

    @property
    def freed(self) -> int:
        return max(0, self.bytes_before - self.bytes_after)


@dataclass
class _Pass:
    """One pass over the old runs: what is kept and why, and what goes."""

    protected: set[int]
    going: set[int] = field(default_factory=set)
    counts: PruneCounts = field(default_factory=PruneCounts)


class RunHistoryStore:
    """Deletes runs older than a limit, each whole: its row, record log and field changes (audit rows).

    Kept whatever their age: a run still running; a run with open conflicts or CRM writes still queued (pending),
    or whose write the CRM refused (the newest write of its record) and the runs that logged that refusal (the next
    push leaves it unsent, and ``runs retry`` reads it); each integration's newest run that synced (the Sync
    Monitor's "Last sync"); the undo of a run that is kept (or the run would look not undone). Rows of no run are
    never touched: a merge's change history (a pull reads it to not bring the merged contact back), the people
    forgotten at their request. Conflicts, CRM writes, alerts and sync figures of a deleted run stay, without it.
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    def count(self, older_than: datetime) -> PruneCounts:
        """What :meth:`prune` would delete now, deleting nothing."""
        return self._walk(older_than, delete_rows=False)

    def prune(self, older_than: datetime, *, on_batch: Callable[[PruneCounts], object] | None = None) -> PruneCounts:
        """Delete the runs that started before ``older_than`` (but those kept, see the class), in transactions of
        at most :data:`ROWS_PER_TRANSACTION` rows (a bigger run alone); ``on_batch`` hears the counts so far after
        each. What it deleted."""
        return self._walk(older_than, delete_rows=True, on_batch=on_batch)

    # -- the pass

    def _walk(self, older_than: datetime, *, delete_rows: bool,
              on_batch: Callable[[PruneCounts], object] | None = None) -> PruneCounts:
        with self._db.session() as session:
            if session.scalar(select(func.count()).select_from(SyncRunRow).where(self._old(older_than))) == 0:
                return PruneCounts()
            state = _Pass(protected=self._protected(session, older_than))
        after = 0
        while True:
            with self._db.session() as session:
                looked = session.execute(
                    select(SyncRunRow.id, SyncRunRow.undoes_run_id, SyncRunRow.trigger, SyncRunRow.direction,
                           SyncRunRow.message)
                    .where(self._old(older_than), SyncRunRow.id > after)
                    .order_by(SyncRunRow.id).limit(RUNS_PER_LOOK)
                ).all()
                if not looked:
                    return state.counts
                after = looked[-1].id
                chosen = [run.id for run in looked if self._may_go(session, state, run)]
                sizes = self._sizes(session, chosen)
            for batch in _batches(chosen, sizes):
                if delete_rows:
                    if self._delete(batch, state) and self._db.is_sqlite:
                        time.sleep(PAUSE_BETWEEN_TRANSACTIONS)
                else:
                    state.counts.runs += len(batch)
                    state.counts.record_log += sum(sizes[run_id][0] for run_id in batch)
                    state.counts.field_changes += sum(sizes[run_id][1] for run_id in batch)
                if on_batch is not None:
                    on_batch(state.counts)

    @staticmethod
    def _old(older_than: datetime) -> ColumnElement[bool]:
        """Runs started before ``older_than``, and finished before it if they finished (those running are then
        kept, see :meth:`_protected`)."""
        return and_(SyncRunRow.started_at < older_than,
                    or_(SyncRunRow.finished_at.is_(None), SyncRunRow.finished_at < older_than))

    def _may_go(self, session: Session, state: _Pass, run: Any) -> bool:
        """Whether an old run may be deleted (noting it among those going), or is kept."""
        run_id = int(run.id)
        if run_id in state.protected or not self._undo_target_goes(session, state, run):
            state.counts.kept += 1
            return False
        state.going.add(run_id)
        return True

    @staticmethod
    def _undo_target_goes(session: Session, state: _Pass, run: Any) -> bool:
        """For an undo run, whether what it undid goes too (or is gone): the undo of a run or change that is kept
        stays, or that run or change would look not undone and be undone again. ``True`` for any other run."""
        target: int | None = run.undoes_run_id
        message = run.message or ""
        if run.direction != SyncDirection.UNDO or run.trigger not in LOCAL_TRIGGERS:
            return target is None or target in state.going
        by_run, by_change = _UNDO_OF_RUN.match(message), _UNDO_OF_CHANGE.match(message)
        if by_run is not None:
            target = int(by_run.group(1))
            return target in state.going or session.get(SyncRunRow, target) is None
        if by_change is not None:
            change = session.execute(select(AuditLogRow.run_id).where(AuditLogRow.id == int(by_change.group(1)))
                                     ).first()
            return change is None or (change.run_id is not None and change.run_id in state.going)
        return target is None or target in state.going

    @staticmethod
    def _protected(session: Session, older_than: datetime) -> set[int]:
        """The old runs kept whatever their age (see the class), read once per pass (a few ids, not tables)."""
        protected: set[int] = set()

        def add(statement: Any) -> None:
            protected.update(int(run_id) for run_id in session.scalars(statement) if run_id is not None)

        add(select(ConflictRow.run_id).distinct().where(ConflictRow.status == ConflictStatus.OPEN))
        add(select(OutboxRow.run_id).distinct().where(OutboxRow.status == OutboxStatus.PENDING))
        # A write the CRM refused that is its record's newest: the push leaves it unsent while it holds the same
        # values, by the refusal in the record log of the run that sent it (or of a later one that resumed it).
        newer = aliased(OutboxRow)
        refused = (
            select(OutboxRow.integration_id, OutboxRow.object, OutboxRow.email, OutboxRow.run_id)
            .where(OutboxRow.status == OutboxStatus.FAILED, OutboxRow.run_id.is_not(None),
                   ~exists().where(newer.integration_id == OutboxRow.integration_id, newer.object == OutboxRow.object,
                                   newer.local_id == OutboxRow.local_id, newer.id > OutboxRow.id))
            .subquery()
        )
        add(select(refused.c.run_id).distinct())
        add(select(SyncRecordLogRow.run_id).distinct()
            .join(SyncRunRow, SyncRunRow.id == SyncRecordLogRow.run_id)
            .join(refused, and_(refused.c.email == SyncRecordLogRow.record_key,
                                refused.c.object == SyncRecordLogRow.object,
                                refused.c.integration_id == SyncRunRow.integration_id,
                                SyncRecordLogRow.run_id >= refused.c.run_id))
            .where(SyncRecordLogRow.outcome == RecordOutcome.FAILED, SyncRunRow.started_at < older_than))
        # Each integration's newest run that synced: the Sync Monitor's "Last sync" (never "never" after a pause).
        synced = and_(SyncRunRow.integration_id.is_not(None),
                      SyncRunRow.status.in_([SyncRunStatus.SUCCEEDED, SyncRunStatus.PARTIAL]),
                      SyncRunRow.direction != SyncDirection.UNDO, SyncRunRow.dry_run.is_(False))
        last = (select(SyncRunRow.integration_id, func.max(SyncRunRow.finished_at).label("at"))
                .where(synced).group_by(SyncRunRow.integration_id).subquery())
        add(select(SyncRunRow.id).join(last, and_(last.c.integration_id == SyncRunRow.integration_id,
                                                  last.c.at == SyncRunRow.finished_at)).where(synced))
        # A run still running (its process may yet finish it), and a run an undo is putting back now.
        add(select(SyncRunRow.id).where(SyncRunRow.status == SyncRunStatus.RUNNING, SyncRunRow.started_at < older_than))
        add(select(SyncRunRow.undoes_run_id).where(SyncRunRow.status == SyncRunStatus.RUNNING))
        return protected

    @staticmethod
    def _sizes(session: Session, run_ids: list[int]) -> dict[int, tuple[int, int]]:
        """Per run, its record log lines and its field changes (those a prune deletes)."""
        sizes = {run_id: (0, 0) for run_id in run_ids}
        for chunk in in_list_chunks(run_ids):
            lines: dict[Any, int] = {run_id: int(n) for run_id, n in session.execute(
                select(SyncRecordLogRow.run_id, func.count()).where(SyncRecordLogRow.run_id.in_(chunk))
                .group_by(SyncRecordLogRow.run_id))}
            changes: dict[Any, int] = {run_id: int(n) for run_id, n in session.execute(
                select(AuditLogRow.run_id, func.count()).where(AuditLogRow.run_id.in_(chunk), _deleted_change())
                .group_by(AuditLogRow.run_id))}
            for run_id in chunk:
                sizes[run_id] = (lines.get(run_id, 0), changes.get(run_id, 0))
        return sizes

    def _delete(self, batch: list[int], state: _Pass) -> bool:
        """Delete these runs and their rows in one transaction, each checked once more holding the write lock: a
        run an undo started on since the pass began is kept, one another prune deleted meanwhile is not counted.
        Whether it wrote."""
        with self._db.session() as session:
            if self._db.is_sqlite:
                hold_for_write(session, cast(Table, SyncRunRow.__table__))
            undoing = select(SyncRunRow.undoes_run_id).where(SyncRunRow.status == SyncRunStatus.RUNNING,
                                                             SyncRunRow.undoes_run_id.is_not(None))
            still = list(session.scalars(select(SyncRunRow.id).where(
                SyncRunRow.id.in_(batch), SyncRunRow.status != SyncRunStatus.RUNNING, SyncRunRow.id.not_in(undoing))))
            if len(still) < len(batch):
                # Those another prune deleted meanwhile are gone, not kept.
                there = session.scalar(select(func.count()).select_from(SyncRunRow).where(SyncRunRow.id.in_(batch)))
                state.counts.kept += int(there or 0) - len(still)
                state.going.difference_update(set(batch) - set(still))
            if not still:
                return False
            state.counts.record_log += _rowcount(session.execute(
                delete(SyncRecordLogRow).where(SyncRecordLogRow.run_id.in_(still))))
            state.counts.field_changes += _rowcount(session.execute(
                delete(AuditLogRow).where(AuditLogRow.run_id.in_(still), _deleted_change())))
            # What points at the runs (a merge's row, conflicts, CRM writes, alerts, figures, undos) is set to no
            # run by the foreign keys' ON DELETE SET NULL.
            state.counts.runs += _rowcount(session.execute(delete(SyncRunRow).where(SyncRunRow.id.in_(still))))
        logger.info("run history: deleted %d old run(s)", len(still))
        return True

    # -- space

    def give_space_back(self, *, from_share: float = GIVE_BACK_FROM) -> SpaceReport | None:
        """On SQLite, give the pages freed by deletions back to the disk when they make ``from_share`` of the file
        or more; ``None`` when there is nothing to do (or the store is not a SQLite file: PostgreSQL's autovacuum
        reuses the space itself).

        A store whose file gives space back incrementally (every store made since this version) frees its pages a
        few thousand at a time, each step a short write. An older one is rewritten once (``VACUUM``) to become so,
        only while no sync runs (the rewrite holds the store for its length); else it waits for the next prune.
        """
        path = self._sqlite_path()
        if path is None:
            return None
        with self._db.engine.connect() as connection:
            pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)
            free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            mode = int(connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)
        if not pages or free < pages * from_share:
            return None
        before = _file_bytes(path)
        if mode != 2 and self._sync_running():
            logger.info("run history: %d free pages to give back once no sync runs", free)
            return SpaceReport("waiting", before, before)
        try:
            with self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                if mode == 2:  # incremental
                    # A script: sqlite3's execute() steps a statement once, and this pragma frees a page a step.
                    driver = connection.connection.driver_connection
                    assert driver is not None
                    for _ in _steps(free):
                        driver.executescript(f"PRAGMA incremental_vacuum({PAGES_PER_VACUUM_STEP});")
                    how = "incremental"
                else:
                    connection.exec_driver_sql("PRAGMA auto_vacuum=INCREMENTAL")
                    connection.exec_driver_sql("VACUUM")
                    how = "vacuum"
                _empty_the_log(connection)
        except Exception as exc:  # a full disk, a busy file: the space is reused by the store all the same
            logger.warning("run history: the freed space could not be given back to the disk: %s", exc)
            return SpaceReport("failed", before, _file_bytes(path), str(exc))
        report = SpaceReport(how, before, _file_bytes(path))
        logger.info("run history: gave %d bytes back to the disk (%s)", report.freed, how)
        return report

    def _sqlite_path(self) -> str | None:
        url = self._db.engine.url
        if not self._db.is_sqlite or url.database in (None, "", ":memory:"):
            return None
        return str(url.database)

    def _sync_running(self) -> bool:
        """Whether a sync holds a live lock, or a run on the local store (an import) is under way."""
        with self._db.session() as session:
            now = lock_time(self._db, session)
            if any(holder_of(row, now).live for row in session.scalars(select(SyncLockRow))):
                return True
            return session.scalar(select(func.count()).select_from(SyncRunRow).where(
                SyncRunRow.status == SyncRunStatus.RUNNING, SyncRunRow.integration_id.is_(None))) != 0


def _deleted_change() -> ColumnElement[bool]:
    """The field changes deleted with their run: all but the row saying which contact a merge folded in."""
    return AuditLogRow.field != MERGED_FIELD


def _rowcount(result: object) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _batches(run_ids: list[int], sizes: dict[int, tuple[int, int]]) -> Iterator[list[int]]:
    """``run_ids`` in groups of at most :data:`ROWS_PER_TRANSACTION` rows (a bigger run alone)."""
    batch: list[int] = []
    rows = 0
    for run_id in run_ids:
        size = 1 + sum(sizes.get(run_id, (0, 0)))
        if batch and rows + size > ROWS_PER_TRANSACTION:
            yield batch
            batch, rows = [], 0
        batch.append(run_id)
        rows += size
    if batch:
        yield batch


def _empty_the_log(connection: Any) -> None:
    """Copy the write-ahead log into the file and empty it, waiting at most :data:`CHECKPOINT_WAIT_MS` for readers
    of other processes: this checkpoint holds every writer off while it waits (a sync would time out behind a long
    reader). With readers still there the log stays, reused, and the next checkpoint empties it."""
    wait = int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
    connection.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
    try:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={wait}")


def _steps(free_pages: int) -> range:
    return range(-(-free_pages // PAGES_PER_VACUUM_STEP))


def _file_bytes(path: str) -> int:
    """The SQLite file's size with its write-ahead log."""
    return sum(os.path.getsize(name) for name in (path, f"{path}-wal") if os.path.exists(name))


__all__ = ["PruneCounts", "RunHistoryStore", "SpaceReport"]
