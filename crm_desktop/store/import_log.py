"""Imports into the local store as runs: a ``sync_runs`` row with trigger ``import``, its audit rows and refusals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, delete, insert, select, update
from sqlalchemy.orm import Session

from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.database import Database
from crm_desktop.store.models import (
    LOCAL_TRIGGERS,
    AuditLogRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    audit_insert_row,
    utcnow,
)
from crm_desktop.store.process_owner import lock_owner, machine_name, owner_is_dead

ResultT = TypeVar("ResultT")

#: A run on the local store started this long ago and not finished was interrupted: the longest import (a million
#: rows) takes minutes. One of this machine whose process is gone is known at once.
LOCAL_RUN_STALE_AFTER = timedelta(hours=1)
#: Added to the message of a local run whose process stopped before it finished. A local run's writes and its
#: outcome are committed together, so such a run saved nothing.
INTERRUPTED_NOTE = "interrupted: the app stopped before it finished; nothing of it was saved"


@dataclass
class LocalRunOutcome:
    """How a run on the local store ended: its status, its audit rows (``entity``, ``entity_id``, ``field``, old and
    new value, optionally ``source``), each refused row (object, the record's email or line, why) and its counts."""

    status: SyncRunStatus
    audit: Sequence[dict[str, Any]] = ()
    refused: Sequence[tuple[RecordObject, str, str]] = ()
    counts: dict[str, int] = field(default_factory=dict)


class AlreadyUndoneError(Exception):
    """Another undo of the same thing (a run, or one recorded change; from another desktop, or cron) succeeded while
    this one was under way; nothing of this one was written.

    Attributes:
        undone: what was undone, as the message names it ("run 12", "change 40 (Company)").
        undone_by: the undo run that succeeded.
    """

    def __init__(self, undone: str, undone_by: int) -> None:
        super().__init__(f"{undone} was already undone (by run {undone_by})")
        self.undone = undone
        self.undone_by = undone_by


class ImportLog:
    """Import runs: started, finished with their counts and audit rows (old and new value of every field changed).

    They belong to no integration; ``runs undo`` reads their audit rows like a sync run's.
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    def start(self, message: str, *, direction: SyncDirection = SyncDirection.IMPORT,
              trigger: SyncTrigger = SyncTrigger.IMPORT) -> int:
        """A new running run on the local store (an import, an edit by hand, an undo of one); its id."""
        self.mark_interrupted()
        with self._db.session() as session:
            run = SyncRunRow(integration_id=None, trigger=trigger, direction=direction, message=message,
                             owner=lock_owner())
            session.add(run)
            session.flush()
            return run.id

    def finish(
        self, run_id: int, status: SyncRunStatus, audit: Sequence[dict[str, Any]], *,
        refused: Sequence[tuple[RecordObject, str, str]] = (), **counts: int,
    ) -> None:
        """Record the outcome of a run that wrote nothing, or whose writes were committed on their own."""
        with self._db.session() as session:
            self._record(session, run_id, LocalRunOutcome(status, audit, refused, counts))

    def finishing(
        self, run_id: int, outcome: Callable[[ResultT], LocalRunOutcome]
    ) -> Callable[[Session, ResultT], None]:
        """What a store write calls in its own transaction, with its result, to record the run's ``outcome`` of
        that result: the values and the audit rows that tell them are committed together, or neither is (a crash
        mid-way leaves no change that an undo cannot see)."""
        return lambda session, result: self._record(session, run_id, outcome(result))

    @staticmethod
    def _record(session: Session, run_id: int, outcome: LocalRunOutcome) -> None:
        """Write the run's outcome and audit rows, with each refused row in the run's record log, where
        `runs show`, `runs errors` and the Sync Monitor list a sync's failed records."""
        now = utcnow()
        if outcome.refused:
            session.execute(insert(cast(Table, SyncRecordLogRow.__table__)), [
                {"run_id": run_id, "object": obj, "record_key": key[:254], "outcome": RecordOutcome.FAILED,
                 "error_category": ErrorCategory.VALIDATION, "message": message, "at": now}
                for obj, key, message in outcome.refused])
        if outcome.audit:
            session.execute(
                insert(cast(Table, AuditLogRow.__table__)),
                [audit_insert_row({"at": now, "source": "import", "side": "local", **row, "run_id": run_id,
                                   "integration_id": None}) for row in outcome.audit],
            )
        session.execute(update(SyncRunRow).where(SyncRunRow.id == run_id).values(
            status=outcome.status, finished_at=now, **outcome.counts))

    def mark_interrupted(self, now: datetime | None = None) -> int:
        """Mark failed the local runs still "running" whose process is gone (of this machine) or that another
        desktop started over :data:`LOCAL_RUN_STALE_AFTER` ago; how many. Without this, an import killed mid-way
        would show as running for ever."""
        now = now or utcnow()
        with self._db.session() as session:
            running = session.execute(select(SyncRunRow.id, SyncRunRow.owner, SyncRunRow.started_at).where(
                SyncRunRow.integration_id.is_(None), SyncRunRow.status == SyncRunStatus.RUNNING)).all()
            here = machine_name()
            # A process id can be given again (after a reboot, or PID 1 of every container): the age limit holds
            # for this machine's runs too.
            gone = [run_id for run_id, owner, started_at in running
                    if started_at < now - LOCAL_RUN_STALE_AFTER
                    or (owner is not None and owner.rpartition(":")[0] == here and owner_is_dead(owner))]
            for run_id in gone:
                run = session.get(SyncRunRow, run_id)
                if run is not None and run.status is SyncRunStatus.RUNNING:
                    run.status, run.finished_at = SyncRunStatus.FAILED, now
                    run.message = f"{run.message} ({INTERRUPTED_NOTE})" if run.message else INTERRUPTED_NOTE
            return len(gone)

    def undone_by(self, run_id: int) -> int | None:
        """The run that undid import run ``run_id`` successfully, if any."""
        return self.undo_with_message(undo_message(run_id))

    def undo_with_message(self, message: str) -> int | None:
        """The first local undo run whose message is ``message`` (:func:`undo_message`, or a single change's undo)
        that succeeded, if any."""
        with self._db.session() as session:
            return session.scalar(_undone_by(message))

    def undoing(
        self, run_id: int, undo_id: int, outcome: Callable[[ResultT], LocalRunOutcome] | None
    ) -> Callable[[Session, ResultT], None]:
        """As :meth:`finishing`, for ``undo_id``, the run undoing run ``run_id`` (``outcome`` ``None``: only the
        check, for a transaction that does not finish the undo): in the transaction of the restore, asks once more
        whether another undo of ``run_id`` succeeded meanwhile, holding that run's row until the commit, so that of
        two undos at once (two desktops, or a desktop and cron) one writes and the other sees it.

        Raises (from the store write, which is then rolled back whole):
            AlreadyUndoneError: another undo of ``run_id`` succeeded.
        """
        def record(session: Session, result: ResultT) -> None:
            _refuse_if_undone(session, undo_message(run_id), f"run {run_id}", hold_run=run_id)
            if outcome is not None:
                self._record(session, undo_id, outcome(result))

        return record

    def finish_undo(self, run_id: int, undo_id: int, outcome: LocalRunOutcome) -> None:
        """Record the outcome of ``undo_id``, an undo of ``run_id`` that wrote no value, checked as
        :meth:`undoing` checks it.

        Raises:
            AlreadyUndoneError: another undo of ``run_id`` succeeded meanwhile (nothing is recorded).
        """
        with self._db.session() as session:
            _refuse_if_undone(session, undo_message(run_id), f"run {run_id}", hold_run=run_id)
            self._record(session, undo_id, outcome)

    @staticmethod
    def not_undone(message: str, undone: str) -> Callable[[Session], None]:
        """The check of :meth:`undoing` alone, for a transaction that already holds, before it calls this, a row
        that every undo of the same thing holds first (so that the second of two undos at once waits there for the
        first one's commit): raises, from that transaction, if a local undo run with ``message`` succeeded.

        Raises (from the store write, which is then rolled back whole):
            AlreadyUndoneError: such an undo succeeded; its message says ``undone`` was already undone.
        """
        return lambda session: _refuse_if_undone(session, message, undone, hold_run=None)

    def discard(self, run_id: int) -> None:
        """Remove a local run still running that wrote nothing (an undo that found the run undone by another)."""
        with self._db.session() as session:
            session.execute(delete(SyncRunRow).where(
                SyncRunRow.id == run_id, SyncRunRow.integration_id.is_(None),
                SyncRunRow.status == SyncRunStatus.RUNNING))


def _refuse_if_undone(session: Session, message: str, undone: str, *, hold_run: int | None) -> None:
    """Raise if a local undo run with ``message`` succeeded, looked at in ``session``'s transaction after holding
    run ``hold_run``'s row until the commit (``None``: the transaction holds such a row already).

    The hold is a write that changes nothing: it takes SQLite's write lock, if the transaction has not taken it
    yet, before the look (so it sees what another connection committed, and nothing is committed until ours is),
    and PostgreSQL's lock of that row (a second undo waits here until the first commits, then sees it)."""
    if hold_run is not None:
        session.execute(update(SyncRunRow).where(SyncRunRow.id == hold_run).values(id=SyncRunRow.id))
    earlier = session.scalar(_undone_by(message))
    if earlier is not None:
        raise AlreadyUndoneError(undone, earlier)


def _undone_by(message: str) -> Select[int]:
    """The first local undo run with ``message`` that succeeded."""
    return select(SyncRunRow.id).where(
        SyncRunRow.trigger.in_(LOCAL_TRIGGERS),
        SyncRunRow.direction == SyncDirection.UNDO,
        SyncRunRow.message == message,
        SyncRunRow.status == SyncRunStatus.SUCCEEDED,
    ).order_by(SyncRunRow.id).limit(1)


def undo_message(run_id: int) -> str:
    """The message of the run that undoes import run ``run_id``."""
    return f"undo of run {run_id}"
