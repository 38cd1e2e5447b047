"""Two undos of one local run at the same moment, each on its own connection: the one that asks second waits for the
first to commit, then is told the run is undone (on SQLite, and on PostgreSQL with CRM_DESKTOP_DB_URL)."""

from __future__ import annotations

import threading
import time

import pytest

from crm_desktop.domain.models import SyncDirection
from crm_desktop.store.database import Database
from crm_desktop.store.import_log import AlreadyUndoneError, ImportLog, LocalRunOutcome, undo_message
from crm_desktop.store.models import SyncRunRow, SyncRunStatus


def succeeded(_: object) -> LocalRunOutcome:
    return LocalRunOutcome(SyncRunStatus.SUCCEEDED, [{"entity": "contact", "entity_id": "1", "field": "company",
                                                      "old_value": "Globex", "new_value": "Acme", "source": "undo"}])


def test_the_second_of_two_undos_at_once_waits_for_the_first_and_writes_nothing(database: Database) -> None:
    log = ImportLog(database)
    imported = log.start("import people.csv")
    log.finish(imported, SyncRunStatus.SUCCEEDED, ())
    first = log.start(undo_message(imported), direction=SyncDirection.UNDO)
    second = log.start(undo_message(imported), direction=SyncDirection.UNDO)
    # The second undo on a connection of its own, as another desktop's.
    other = Database(database.url)
    claimed, second_asks = threading.Event(), threading.Event()
    committed_at: list[float] = []
    refused: list[tuple[AlreadyUndoneError, float]] = []

    def first_undo() -> None:
        with database.session() as session:
            log.undoing(imported, first, succeeded)(session, None)
            claimed.set()
            second_asks.wait(10)
            time.sleep(1.0)  # the second one is asking meanwhile
        committed_at.append(time.monotonic())

    def second_undo() -> None:
        claimed.wait(10)
        second_asks.set()
        try:
            ImportLog(other).finish_undo(imported, second, succeeded(None))
        except AlreadyUndoneError as exc:
            refused.append((exc, time.monotonic()))

    try:
        threads = [threading.Thread(target=first_undo), threading.Thread(target=second_undo)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        other.close()
    assert refused, "the second undo was recorded as well"
    [(error, at)] = refused
    assert (error.run_id, error.undone_by) == (imported, first)
    assert str(error) == f"run {imported} was already undone (by run {first})"
    assert at >= committed_at[0]  # it waited for the first to commit
    assert log.undone_by(imported) == first
    with database.session() as session:
        assert session.get(SyncRunRow, second).status is SyncRunStatus.RUNNING  # nothing of it recorded
    log.discard(second)
    with database.session() as session:
        assert session.get(SyncRunRow, second) is None
        assert session.get(SyncRunRow, first).status is SyncRunStatus.SUCCEEDED


def test_a_transaction_that_only_checks_refuses_too(database: Database) -> None:
    log = ImportLog(database)
    imported = log.start("import people.csv")
    log.finish(imported, SyncRunStatus.SUCCEEDED, ())
    first = log.start(undo_message(imported), direction=SyncDirection.UNDO)
    log.finish_undo(imported, first, succeeded(None))
    second = log.start(undo_message(imported), direction=SyncDirection.UNDO)
    with pytest.raises(AlreadyUndoneError, match=f"already undone \\(by run {first}\\)"), database.session() as session:
        log.undoing(imported, second, None)(session, None)
