"""Pruning the run history: exactly the old runs' rows go, in batches; what still needs a run keeps it."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store import history_store
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.history_store import PruneCounts, RunHistoryStore
from crm_desktop.store.models import (
    MERGED_FIELD,
    AlertRow,
    AuditLogRow,
    ConflictRow,
    ConflictStatus,
    ForgottenPersonRow,
    OutboxRow,
    OutboxStatus,
    SyncAttemptMetricsRow,
    SyncRecordLogRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    utcnow,
)
from crm_desktop.store.repositories import IntegrationStore

pytestmark = pytest.mark.postgres

NOW = utcnow()
OLD = NOW - timedelta(days=400)
LIMIT = NOW - timedelta(days=365)
RECENT = NOW - timedelta(days=10)


@dataclass
class History:
    """Runs made for a test, by name, and the ids of rows that must outlive the prune."""

    runs: dict[str, int] = field(default_factory=dict)
    kept_rows: dict[str, int] = field(default_factory=dict)


def add_run(session: Session, integration_id: int | None, started: datetime, *, lines: int = 2, changes: int = 2,
            status: SyncRunStatus = SyncRunStatus.SUCCEEDED, trigger: SyncTrigger = SyncTrigger.SCHEDULED,
            direction: SyncDirection = SyncDirection.BOTH, **values: Any) -> int:
    """A finished run with ``lines`` record log lines and ``changes`` field changes."""
    run = SyncRunRow(integration_id=integration_id, trigger=trigger, direction=direction, status=status,
                     started_at=started, finished_at=None if status is SyncRunStatus.RUNNING else started, **values)
    session.add(run)
    session.flush()
    for n in range(lines):
        session.add(SyncRecordLogRow(run_id=run.id, object=RecordObject.CONTACT, record_key=f"p{n}@example.com",
                                     outcome=RecordOutcome.UPDATED, at=started))
    for n in range(changes):
        session.add(AuditLogRow(run_id=run.id, integration_id=integration_id, entity="contact", entity_id=str(n + 1),
                                field="company", old_value="Old", new_value="New", source="sync", at=started))
    session.flush()
    return run.id


def build_history(database: Database) -> History:
    """Two integrations' runs, a year and more old and recent, with what keeps some of the old ones."""
    integrations = IntegrationStore(database)
    crm = integrations.add(Integration(provider="pipedrive", name="crm")).id
    paused = integrations.add(Integration(provider="hubspot", name="paused")).id
    assert crm is not None and paused is not None
    history = History()
    runs, kept = history.runs, history.kept_rows
    with database.session() as session:
        runs["old"] = add_run(session, crm, OLD)
        runs["old dry run"] = add_run(session, crm, OLD, changes=0, dry_run=True)
        runs["old import"] = add_run(session, None, OLD, trigger=SyncTrigger.IMPORT, direction=SyncDirection.IMPORT)
        runs["old undo of old"] = add_run(session, crm, OLD + timedelta(hours=1), direction=SyncDirection.UNDO,
                                          undoes_run_id=runs["old"])
        runs["old with open conflict"] = add_run(session, crm, OLD)
        runs["old undo of kept"] = add_run(session, crm, OLD + timedelta(hours=1), direction=SyncDirection.UNDO,
                                           undoes_run_id=runs["old with open conflict"])
        runs["old with pending write"] = add_run(session, crm, OLD)
        runs["old with refused write"] = add_run(session, crm, OLD)
        runs["old logging the refusal"] = add_run(session, crm, OLD + timedelta(hours=2))
        runs["old with superseded refusal"] = add_run(session, crm, OLD)
        runs["old running"] = add_run(session, crm, OLD, status=SyncRunStatus.RUNNING)
        runs["paused's last sync"] = add_run(session, paused, OLD)
        runs["paused's older sync"] = add_run(session, paused, OLD - timedelta(days=1))
        # Local undos name what they undid in their message: a whole run, or one change (a merge's changes
        # belong to no run, and stay).
        merge_change = AuditLogRow(run_id=None, entity="contact", entity_id="1", field="company", old_value="A",
                                   new_value="B", source="merge", at=OLD)
        session.add(merge_change)
        session.flush()
        old_change = session.scalar(select(func.min(AuditLogRow.id)).where(AuditLogRow.run_id == runs["old"]))
        local_undo = dict(trigger=SyncTrigger.EDIT, direction=SyncDirection.UNDO)
        runs["old undo of old import"] = add_run(session, None, OLD + timedelta(hours=1),
                                                 message=f"undo of run {runs['old import']}", **local_undo)
        runs["old undo of old change"] = add_run(session, None, OLD + timedelta(hours=1),
                                                 message=f"undo of change {old_change}", **local_undo)
        runs["old undo of merge change"] = add_run(session, None, OLD + timedelta(hours=1),
                                                   message=f"undo of change {merge_change.id}", **local_undo)
        runs["recent"] = add_run(session, crm, RECENT)
        runs["recent undo of old"] = add_run(session, crm, RECENT, direction=SyncDirection.UNDO,
                                             undoes_run_id=runs["old dry run"])
        conflict = dict(integration_id=crm, object=RecordObject.CONTACT, local_id=1, record_key="p0@example.com",
                        field="company", local_value="A", crm_value="B")
        session.add(ConflictRow(run_id=runs["old with open conflict"], **conflict))
        resolved = ConflictRow(run_id=runs["old"], status=ConflictStatus.RESOLVED, **conflict)
        session.add(resolved)
        write = dict(integration_id=crm, object=RecordObject.CONTACT, values_hash="h")
        session.add(OutboxRow(run_id=runs["old with pending write"], local_id=1, email="p0@example.com", **write))
        done = OutboxRow(run_id=runs["old"], local_id=2, email="p1@example.com", status=OutboxStatus.DONE, **write)
        session.add(done)
        session.add(OutboxRow(run_id=runs["old with refused write"], local_id=3, email="refused@example.com",
                              status=OutboxStatus.FAILED, **write))
        session.add(OutboxRow(run_id=runs["old with superseded refusal"], local_id=4, email="later@example.com",
                              status=OutboxStatus.FAILED, **write))
        session.add(OutboxRow(run_id=runs["recent"], local_id=4, email="later@example.com",
                              status=OutboxStatus.DONE, **write))
        session.add(SyncRecordLogRow(run_id=runs["old logging the refusal"], object=RecordObject.CONTACT,
                                     record_key="refused@example.com", outcome=RecordOutcome.FAILED,
                                     error_category=ErrorCategory.VALIDATION, message="refused", at=OLD))
        merge = AuditLogRow(run_id=None, entity="contact", entity_id="1", field=MERGED_FIELD,
                            old_value="gone@example.com", new_value="p0@example.com", source="merge", at=OLD)
        session.add(merge)
        # Such a row in a run (a merge records its own without one today) outlives the run all the same: a pull
        # reads it so as not to bring the merged contact back.
        merge_in_run = AuditLogRow(run_id=runs["old"], entity="contact", entity_id="1", field=MERGED_FIELD,
                                   old_value="gone2@example.com", new_value="p0@example.com", source="merge", at=OLD)
        session.add(merge_in_run)
        forgotten = ForgottenPersonRow(email_hash="ab" * 32, forgotten_at=OLD)
        session.add(forgotten)
        alert = AlertRow(kind="run_failed", integration_id=crm, integration_name="crm", message="failed",
                         run_id=runs["old"], raised_at=OLD, last_seen_at=OLD)
        session.add(alert)
        figures = SyncAttemptMetricsRow(integration_id=crm, run_id=runs["old"], at=OLD,
                                        status=SyncRunStatus.SUCCEEDED, contacts_synced=2)
        session.add(figures)
        session.flush()
        kept.update(resolved=resolved.id, done=done.id, merge=merge.id, merge_in_run=merge_in_run.id, alert=alert.id,
                    figures=figures.id)
    return history


GOING = ("old", "old dry run", "old import", "old undo of old", "old with superseded refusal",
         "paused's older sync", "old undo of old import", "old undo of old change")


def count_rows(database: Database, row: Any, *where: Any) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(row).where(*where)) or 0)


def test_pruning_deletes_exactly_the_old_runs_nothing_still_needs(database: Database) -> None:
    history = build_history(database)
    store = RunHistoryStore(database)
    before_lines = count_rows(database, SyncRecordLogRow)
    before_changes = count_rows(database, AuditLogRow)

    planned = store.count(LIMIT)
    pruned = store.prune(LIMIT)

    # Each run going had 2 lines and 2 changes, but the dry run (no changes).
    assert pruned == planned == PruneCounts(runs=8, record_log=16, field_changes=14, kept=8)
    with database.session() as session:
        left = set(session.scalars(select(SyncRunRow.id)))
    assert left == {run_id for name, run_id in history.runs.items() if name not in GOING}
    assert count_rows(database, SyncRecordLogRow) == before_lines - 16
    assert count_rows(database, AuditLogRow) == before_changes - 14
    gone = [history.runs[name] for name in GOING]
    assert count_rows(database, SyncRecordLogRow, SyncRecordLogRow.run_id.in_(gone)) == 0
    assert count_rows(database, AuditLogRow, AuditLogRow.run_id.in_(gone)) == 0
    # What pointed at a deleted run stays, without it; the merge's row and the forgotten person's hash stay.
    with database.session() as session:
        kept = history.kept_rows
        for row, key in ((ConflictRow, "resolved"), (OutboxRow, "done"), (AlertRow, "alert"),
                         (SyncAttemptMetricsRow, "figures"), (AuditLogRow, "merge_in_run")):
            stored = session.get(row, kept[key])
            assert stored is not None and stored.run_id is None, row
        assert session.get(AuditLogRow, kept["merge"]) is not None
        assert session.get(ForgottenPersonRow, "ab" * 32) is not None
        assert session.get(SyncRunRow, history.runs["recent undo of old"]).undoes_run_id is None
        assert session.scalar(select(func.count()).select_from(ConflictRow)
                              .where(ConflictRow.status == ConflictStatus.OPEN)) == 1
    # A second prune finds nothing more to delete.
    assert store.prune(LIMIT) == PruneCounts(kept=8)


def test_pruning_goes_in_bounded_transactions_with_the_same_result(database: Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    history = build_history(database)
    with database.session() as session:
        big = add_run(session, None, OLD, lines=7, changes=0, trigger=SyncTrigger.IMPORT,
                      direction=SyncDirection.IMPORT)
    monkeypatch.setattr(history_store, "ROWS_PER_TRANSACTION", 6)
    monkeypatch.setattr(history_store, "RUNS_PER_LOOK", 4)
    batches: list[int] = []

    pruned = RunHistoryStore(database).prune(LIMIT, on_batch=lambda counts: batches.append(counts.rows))

    assert pruned == PruneCounts(runs=9, record_log=23, field_changes=14, kept=8)
    assert len(batches) == 9  # each run alone, as any two pass 6 rows; the big one (8) alone too
    assert batches == sorted(batches) and batches[-1] == pruned.rows
    assert count_rows(database, SyncRunRow, SyncRunRow.id.in_([big, history.runs["old"]])) == 0


def test_nothing_is_pruned_when_every_run_is_recent(database: Database) -> None:
    crm = IntegrationStore(database).add(Integration(provider="pipedrive", name="crm")).id
    with database.session() as session:
        add_run(session, crm, RECENT)
        add_run(session, crm, RECENT)

    assert RunHistoryStore(database).prune(LIMIT) == PruneCounts()
    assert count_rows(database, SyncRunRow) == 2


def fill_and_age(database: Database, runs: int = 30, lines: int = 200) -> None:
    crm = IntegrationStore(database).add(Integration(provider="pipedrive", name="crm")).id
    with database.session() as session:
        for _ in range(runs):
            add_run(session, crm, OLD, lines=lines, changes=lines // 2)
        add_run(session, crm, RECENT)


def file_bytes(database: Database) -> int:
    path = Path(str(database.engine.url.database))
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_a_new_sqlite_store_gives_the_space_back_a_few_pages_at_a_time(sqlite_database: Database) -> None:
    fill_and_age(sqlite_database)
    store = RunHistoryStore(sqlite_database)
    with sqlite_database.engine.connect() as connection:  # what the filling left in the write-ahead log
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
    full = file_bytes(sqlite_database)

    assert store.prune(LIMIT).runs == 30
    space = store.give_space_back()

    assert space is not None and space.how == "incremental"
    assert space.bytes_after < full / 3 and file_bytes(sqlite_database) == space.bytes_after
    assert store.give_space_back() is None  # nothing left to give back


def older_sqlite_store(tmp_path: Path) -> Database:
    """A store file made before stores gave space back (no auto-vacuum), opened."""
    path = tmp_path / "old" / "crm.db"
    path.parent.mkdir()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA auto_vacuum=NONE")
        raw.execute("CREATE TABLE made_before (x)")
    return Database(sqlite_url(path))


def test_an_older_sqlite_store_is_rewritten_once_then_gives_space_back_incrementally(tmp_path: Path) -> None:
    database = older_sqlite_store(tmp_path)
    try:
        database.migrate()
        fill_and_age(database)
        store = RunHistoryStore(database)
        full = file_bytes(database)
        store.prune(LIMIT)

        space = store.give_space_back()

        assert space is not None and space.how == "vacuum" and space.bytes_after < full / 3
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        database.close()


def test_an_older_sqlite_store_waits_for_a_running_sync_before_its_rewrite(tmp_path: Path) -> None:
    database = older_sqlite_store(tmp_path)
    try:
        database.migrate()
        fill_and_age(database)
        store = RunHistoryStore(database)
        store.prune(LIMIT)
        with database.session() as session:
            add_run(session, None, NOW, status=SyncRunStatus.RUNNING, trigger=SyncTrigger.IMPORT,
                    direction=SyncDirection.IMPORT)

        space = store.give_space_back()

        assert space is not None and space.how == "waiting" and space.freed == 0
    finally:
        database.close()


def test_a_sync_waiting_for_the_sqlite_write_lock_gets_it_between_prune_transactions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each deleted run takes 10 ms (a big store's deletes), so each transaction of 40 runs holds the write lock for
    # about 0.4 s: a sync waiting on it (SQLite's busy handler looks again every 100 ms) must get it after one of
    # them, not wait out its busy timeout while the prune starts one transaction after another.
    path = tmp_path / "crm.db"
    database = Database(sqlite_url(path))
    first_delete = threading.Event()

    def slow(_: object) -> int:
        first_delete.set()
        time.sleep(0.01)
        return 0

    @event.listens_for(database.engine, "connect")
    def _slow_function(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.create_function("slow_delete", 1, slow)

    try:
        database.migrate()
        crm = IntegrationStore(database).add(Integration(provider="pipedrive", name="crm")).id
        with database.session() as session:
            for n in range(400):
                add_run(session, crm, OLD + timedelta(minutes=n), lines=1, changes=0)
            add_run(session, crm, RECENT)
        with database.engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TRIGGER slow_run_delete AFTER DELETE ON sync_runs BEGIN SELECT slow_delete(old.id); END")
        monkeypatch.setattr(history_store, "RUNS_PER_LOOK", 40)
        waits: list[float] = []
        refused: list[str] = []

        def sync() -> None:
            first_delete.wait(10)
            writer = sqlite3.connect(path, isolation_level=None, timeout=2.0)
            try:
                for _ in range(5):
                    asked = time.monotonic()
                    writer.execute("BEGIN IMMEDIATE")
                    waits.append(time.monotonic() - asked)
                    writer.execute("UPDATE integrations SET name = name")
                    writer.execute("COMMIT")
                    time.sleep(0.05)
            except sqlite3.OperationalError as exc:
                refused.append(f"{exc} after {time.monotonic() - asked:.1f} s")
            finally:
                writer.close()

        waiting = threading.Thread(target=sync)
        waiting.start()
        counts = RunHistoryStore(database).prune(LIMIT)
        waiting.join(30)

        assert counts.runs == 400
        assert not refused and len(waits) == 5 and max(waits) < 1.0, (refused, waits)
    finally:
        database.close()


def test_every_column_naming_a_run_is_indexed_so_deleting_runs_reads_no_whole_table(tmp_path: Path) -> None:
    # Deleting a run sets what points at it to no run (or deletes it): without an index on that column the database
    # reads the whole table per run deleted (2 s a prune transaction of 200 runs among 50,000, in which a sync waits).
    database = Database(sqlite_url(tmp_path / "crm.db"))
    try:
        database.migrate()
        with database.engine.connect() as connection:
            tables = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
            unindexed = []
            for table in tables:
                references = connection.exec_driver_sql(f"PRAGMA foreign_key_list('{table}')").all()
                leading = {connection.exec_driver_sql(f"PRAGMA index_info('{index[1]}')").first()[2]
                           for index in connection.exec_driver_sql(f"PRAGMA index_list('{table}')").all()}
                unindexed += [f"{table}.{reference[3]}" for reference in references
                              if reference[2] == "sync_runs" and reference[3] not in leading]

        assert unindexed == []
    finally:
        database.close()


def test_giving_space_back_beside_an_open_reader_does_not_hold_off_a_sync(sqlite_database: Database) -> None:
    # Another process reading (a second window, a backup) keeps the write-ahead log from being emptied: giving the
    # space back must not wait for it holding the store (a checkpoint that truncates the log blocks every writer
    # while it waits), or a sync started meanwhile times out with "database is locked".
    fill_and_age(sqlite_database)
    store = RunHistoryStore(sqlite_database)
    store.prune(LIMIT)
    path = str(sqlite_database.engine.url.database)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sync_runs").fetchall()
    waited: list[float] = []
    refused: list[str] = []

    def sync() -> None:
        time.sleep(0.3)
        writer = sqlite3.connect(path, isolation_level=None, timeout=3.0)
        asked = time.monotonic()
        try:
            writer.execute("BEGIN IMMEDIATE")
            waited.append(time.monotonic() - asked)
            writer.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            refused.append(str(exc))
        finally:
            writer.close()

    waiting = threading.Thread(target=sync)
    try:
        waiting.start()
        started = time.monotonic()
        space = store.give_space_back(from_share=0.0)
        took = time.monotonic() - started
        waiting.join(10)
    finally:
        reader.close()

    assert space is not None and space.how == "incremental"
    assert not refused and waited and waited[0] < 1.0, (refused, waited)
    assert took < 2.0


def test_runs_another_prune_deleted_first_are_not_counted_as_kept(database: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Two prunes at once (two desktops on one database, or the app and `runs prune`): what one deleted while the
    # other looked is neither deleted twice nor said to be "older runs kept: still running, with open conflicts...".
    fill_and_age(database, runs=12, lines=2)
    ours, theirs = RunHistoryStore(database), RunHistoryStore(database)
    deleting = RunHistoryStore._delete
    other: list[PruneCounts] = []

    def after_the_other(self: RunHistoryStore, batch: list[int], state: Any) -> bool:
        if self is ours and not other:
            other.append(theirs.prune(LIMIT))
        return deleting(self, batch, state)

    monkeypatch.setattr(RunHistoryStore, "_delete", after_the_other)

    counts = ours.prune(LIMIT)

    assert other[0].runs == 12 and other[0].kept == 0
    assert counts == PruneCounts()
