"""Two undos of one local run, or of one recorded change, at the same moment, each on its own connection: the one
that asks second waits for the first to commit, then is told it is undone (on SQLite, and on PostgreSQL with
CRM_DESKTOP_DB_URL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from crm_desktop.domain.models import Contact, Lead, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.database import Database
from crm_desktop.store.import_log import AlreadyUndoneError, ImportLog, LocalRunOutcome, undo_message
from crm_desktop.store.models import SyncRunRow, SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import ContactStore
from crm_desktop.store.sync_store import SyncStore


def the_one_refused(other: Database, refused: list[tuple[AlreadyUndoneError, float]],
                    *undos: Callable[[], None]) -> tuple[AlreadyUndoneError, float]:
    """Run each undo on a thread of its own, all at once, wait for them (30 s at most each) and close ``other``
    (the second desktop's database); the one refusal recorded in ``refused``, and when it came."""
    threads = [threading.Thread(target=undo) for undo in undos]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        other.close()
    assert refused, "the second undo was recorded as well"
    [(error, at)] = refused
    return error, at


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
    committing_at: list[float] = []
    refused: list[tuple[AlreadyUndoneError, float]] = []

    def first_undo() -> None:
        with database.session() as session:
            log.undoing(imported, first, succeeded)(session, None)
            claimed.set()
            second_asks.wait(10)
            time.sleep(1.0)  # the second one is asking meanwhile
            # Noted before the commit lets the second one go on: noted after it, the second could be refused
            # (and note its time) before this thread ran again.
            committing_at.append(time.monotonic())

    def second_undo() -> None:
        claimed.wait(10)
        second_asks.set()
        try:
            ImportLog(other).finish_undo(imported, second, succeeded(None))
        except AlreadyUndoneError as exc:
            refused.append((exc, time.monotonic()))

    error, at = the_one_refused(other, refused, first_undo, second_undo)
    assert (error.undone, error.undone_by) == (f"run {imported}", first)
    assert str(error) == f"run {imported} was already undone (by run {first})"
    assert at >= committing_at[0]  # it waited for the first to commit
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


def test_the_second_of_two_undos_of_one_change_waits_on_the_record_and_writes_nothing(database: Database) -> None:
    """A single change's undo holds the record it writes (``change_local``), not a run: that hold alone makes the
    second undo's look wait for the first one's commit."""
    ContactStore(database).save_many([Contact(email="ada@example.com", company="Globex")])
    store, log = SyncStore(database), ImportLog(database)
    ada = store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"].id
    message = "undo of change 7"
    first = log.start(message, direction=SyncDirection.UNDO, trigger=SyncTrigger.EDIT)
    second = log.start(message, direction=SyncDirection.UNDO, trigger=SyncTrigger.EDIT)
    other = Database(database.url)
    claimed, second_asks = threading.Event(), threading.Event()
    committing_at: list[float] = []
    refused: list[tuple[AlreadyUndoneError, float]] = []
    second_read: list[Contact | Lead] = []

    def put_back(record: Contact | Lead) -> Contact | Lead:
        assert isinstance(record, Contact)
        return record.model_copy(update={"company": "Acme"})

    def first_undo() -> None:
        def then(session: Any, result: Any) -> None:
            log.finishing(first, succeeded)(session, result)
            claimed.set()
            second_asks.wait(10)
            time.sleep(1.0)  # the second one is asking meanwhile
            committing_at.append(time.monotonic())  # before the commit that lets the second one go on

        store.change_local(RecordObject.CONTACT, ada, put_back, then=then,
                           first=log.not_undone(message, "change 7 (company)"))

    def second_undo() -> None:
        claimed.wait(10)
        second_asks.set()
        try:
            SyncStore(other).change_local(
                RecordObject.CONTACT, ada, lambda record: second_read.append(record) or put_back(record),
                then=ImportLog(other).finishing(second, succeeded),
                first=ImportLog(other).not_undone(message, "change 7 (company)"))
        except AlreadyUndoneError as exc:
            refused.append((exc, time.monotonic()))

    error, at = the_one_refused(other, refused, first_undo, second_undo)
    assert str(error) == f"change 7 (company) was already undone (by run {first})"
    assert at >= committing_at[0]  # it waited for the first to commit
    assert second_read == [], "the second undo never judged the record"
    assert log.undo_with_message(message) == first
    with database.session() as session:
        assert session.get(SyncRunRow, second).status is SyncRunStatus.RUNNING  # nothing of it recorded
