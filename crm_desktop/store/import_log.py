"""Imports into the local store as runs: a ``sync_runs`` row with trigger ``import``, its audit rows and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select

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
    utcnow,
)


class ImportLog:
    """Import runs: started, finished with their counts and audit rows (old and new value of every field changed).

    They belong to no integration; ``runs undo`` reads their audit rows like a sync run's.
    """

    def __init__(self, database: Database) -> None:
        self._db = database

    def start(self, message: str, *, direction: SyncDirection = SyncDirection.IMPORT,
              trigger: SyncTrigger = SyncTrigger.IMPORT) -> int:
        """A new running run on the local store (an import, an edit by hand, an undo of one); its id."""
        with self._db.session() as session:
            run = SyncRunRow(integration_id=None, trigger=trigger, direction=direction, message=message)
            session.add(run)
            session.flush()
            return run.id

    def finish(
        self, run_id: int, status: SyncRunStatus, audit: Sequence[dict[str, Any]], *,
        refused: Sequence[tuple[RecordObject, str, str]] = (), **counts: int,
    ) -> None:
        """Record the run's outcome and its audit rows (``entity``, ``entity_id``, ``field``, old and new) at once,
        with each refused row (object, the record's email or line, why) in the run's record log, where `runs show`,
        `runs errors` and the Sync Monitor list a sync's failed records."""
        now = utcnow()
        with self._db.session() as session:
            if refused:
                session.execute(insert(cast(Table, SyncRecordLogRow.__table__)), [
                    {"run_id": run_id, "object": obj, "record_key": key[:254], "outcome": RecordOutcome.FAILED,
                     "error_category": ErrorCategory.VALIDATION, "message": message, "at": now}
                    for obj, key, message in refused])
            if audit:
                session.execute(
                    insert(cast(Table, AuditLogRow.__table__)),
                    [{"at": now, "source": "import", "side": "local", **row, "run_id": run_id, "integration_id": None}
                     for row in audit],
                )
            run = session.get(SyncRunRow, run_id)
            if run is not None:
                run.status = status
                run.finished_at = now
                for name, value in counts.items():
                    setattr(run, name, value)

    def undone_by(self, run_id: int) -> int | None:
        """The run that undid import run ``run_id`` successfully, if any."""
        with self._db.session() as session:
            return session.scalar(
                select(SyncRunRow.id).where(
                    SyncRunRow.trigger.in_(LOCAL_TRIGGERS),
                    SyncRunRow.direction == SyncDirection.UNDO,
                    SyncRunRow.message == undo_message(run_id),
                    SyncRunRow.status == SyncRunStatus.SUCCEEDED,
                ).limit(1)
            )


def undo_message(run_id: int) -> str:
    """The message of the run that undoes import run ``run_id``."""
    return f"undo of run {run_id}"
