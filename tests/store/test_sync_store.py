"""The sync store's lookups of one run or one conflict by id."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.store import lock_state
from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncLockRow, SyncRunStatus, SyncTrigger, typed_audit_values
from crm_desktop.store.process_owner import machine_name
from crm_desktop.store.repositories import IntegrationStore, NotFoundError
from crm_desktop.store.sync_store import INTERRUPTED_MESSAGE, INTERRUPTED_UNDO_MESSAGE, LOCK_STALE_AFTER, SyncStore
from crm_desktop.sync.lock_refusal import SyncAlreadyRunning, take_lock

pytestmark = pytest.mark.postgres


def test_a_run_is_read_by_id_and_a_missing_one_is_named(database: Database) -> None:
    integration = IntegrationStore(database).add(Integration(provider="pipedrive", name="pd"))
    assert integration.id is not None
    store = SyncStore(database)
    run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.finish_run(run_id, SyncRunStatus.SUCCEEDED)

    run = store.get_run(run_id)

    assert (run.id, run.integration_id, run.status) == (run_id, integration.id, SyncRunStatus.SUCCEEDED)
    with pytest.raises(NotFoundError, match=rf"^no sync run {run_id + 1}$"):
        store.get_run(run_id + 1)


def test_a_missing_conflict_is_named(database: Database) -> None:
    with pytest.raises(NotFoundError, match=r"^no conflict 7$"):
        SyncStore(database).get_conflict(7)


def race_for_the_lock(stores: list[SyncStore], integration_id: int, trial: int) -> list[bool]:
    """Each store asks for the lock at the same moment, on a thread of its own; who got it."""
    start = threading.Barrier(len(stores))
    won: list[bool] = []

    def take(store: SyncStore, owner: str) -> None:
        start.wait()
        won.append(store.acquire_lock(integration_id, owner=owner))

    racers = [threading.Thread(target=take, args=(store, f"desk-{n}:{trial}")) for n, store in enumerate(stores)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    return won


def test_a_stale_lock_is_taken_over_by_one_of_two_racing_processes(database: Database) -> None:
    """Two desktops (here two connections, on two threads) find the lock of a crashed run at the same moment:
    one takes it over, the other is told a run is going on. On SQLite both used to take it."""
    integration = IntegrationStore(database).add(
        Integration.model_validate({"provider": "hubspot", "name": "hs", "scopes": []}))
    assert integration.id is not None
    other = Database(str(database.engine.url.render_as_string(hide_password=False)))
    stores = [SyncStore(database), SyncStore(other)]
    try:
        for trial in range(12):
            for owner in ("", f"crashed-host:{trial}"):  # the last trial's winner is gone too, then a run crashes
                if owner:
                    assert stores[0].acquire_lock(integration.id, owner=owner)
                with database.session() as session:  # its heartbeat stopped long ago
                    session.execute(update(SyncLockRow).values(heartbeat_at=datetime(2026, 1, 1, tzinfo=UTC)))
            won = race_for_the_lock(stores, integration.id, trial)
            assert sorted(won) == [False, True], f"trial {trial}: {won}"
    finally:
        other.close()


def test_a_live_lock_of_a_desktop_whose_clock_is_behind_is_not_taken_over(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Desktops of a team keep their own clocks: one ten minutes slow wrote heartbeats that another desktop, reading
    them against its own clock, took for a crashed run's, and both synced the integration at once. A lock's times
    are the database server's."""
    if database.is_sqlite:
        pytest.skip("a SQLite file is shared by the processes of one machine, which share its clock")
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    store = SyncStore(database)
    right_time = lock_state.utcnow
    monkeypatch.setattr(lock_state, "utcnow", lambda: right_time() - timedelta(minutes=10))
    assert store.acquire_lock(integration.id, owner="slow-clock:1")
    store.heartbeat(integration.id, owner="slow-clock:1")
    monkeypatch.setattr(lock_state, "utcnow", right_time)
    assert not store.acquire_lock(integration.id, owner="right-clock:2")
    assert store.lock_holder(integration.id) == ("slow-clock:1", None)


def a_dead_pid() -> int:
    """The id of a process of this machine that has ended."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                             check=True)
    return int(process.stdout)


def age_lock(database: Database, by: timedelta) -> None:
    """Make the locks' last heartbeats ``by`` older (their holder went silent that long ago)."""
    with database.session() as session:
        for row in session.scalars(select(SyncLockRow)):
            row.heartbeat_at = row.heartbeat_at - by


def test_a_lock_of_a_dead_process_of_this_machine_is_taken_over_at_once(database: Database) -> None:
    """A sync killed with kill -9 on this machine leaves its lock with a fresh heartbeat: its process is gone, so
    the restarted app takes it over at once, without waiting for the heartbeat to go stale. Another machine's
    process cannot be looked for: its lock, with the same pid, waits for its heartbeat."""
    integrations = IntegrationStore(database)
    here = integrations.add(Integration(provider="hubspot", name="hs", base_url="https://x")).id
    there = integrations.add(Integration(provider="hubspot", name="hs2", base_url="https://x")).id
    assert here is not None and there is not None
    store = SyncStore(database)
    pid = a_dead_pid()
    assert store.acquire_lock(here, owner=f"{machine_name()}:{pid}")
    assert store.acquire_lock(there, owner=f"not-{machine_name()}:{pid}")

    state = store.lock_state(here)
    assert state is not None and state.owner_dead and not state.live
    assert store.acquire_lock(here, owner="restarted:1")
    assert not store.acquire_lock(there, owner="restarted:1")
    elsewhere = store.lock_state(there)
    assert elsewhere is not None and elsewhere.live and not elsewhere.owner_dead


def test_a_lock_tells_how_long_its_holder_has_been_silent(database: Database) -> None:
    """What a refused desktop is told: who holds the lock, how long ago it was heard from, and how long until the
    lock is taken over if it stays silent."""
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    store = SyncStore(database)
    assert store.lock_state(integration.id) is None
    assert store.acquire_lock(integration.id, owner="desk-2:4242")
    run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.heartbeat(integration.id, run_id, owner="desk-2:4242")
    age_lock(database, timedelta(seconds=40))

    state = store.lock_state(integration.id)

    assert state is not None
    assert (state.owner, state.machine, state.process, state.run_id) == ("desk-2:4242", "desk-2", "4242", run_id)
    assert timedelta(seconds=40) <= state.silent_for < timedelta(seconds=45)
    assert state.live and not state.owner_dead
    assert LOCK_STALE_AFTER - timedelta(seconds=45) < state.taken_over_in <= LOCK_STALE_AFTER - timedelta(seconds=40)


def test_a_refusal_names_the_holder_that_refused_it_even_if_it_let_go_at_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in the team drill on PostgreSQL: a desktop refused by a short run read the holder again to name it, found
    the lock let go meanwhile, and said only "is already running". The holder is the one read in the refusal."""
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    store = SyncStore(database)
    assert store.acquire_lock(integration.id, owner="desk-b:4242")
    read_after = store.lock_state

    def let_go_then_read(integration_id: int) -> object:
        store.release_lock(integration_id, owner="desk-b:4242")
        return read_after(integration_id)

    monkeypatch.setattr(store, "lock_state", let_go_then_read)

    with pytest.raises(SyncAlreadyRunning) as refused:
        take_lock(store, integration.id, "hs", owner="desk-a:7")

    assert str(refused.value).startswith("a sync of 'hs' is already running (on desk-b, process 4242)")
    assert refused.value.holder is not None and refused.value.holder.owner == "desk-b:4242"


def test_a_run_found_interrupted_gets_the_counts_of_its_record_log(database: Database) -> None:
    """A run killed mid-way never wrote its figures (they are written as a run ends) though its record log holds
    what it did: when its lock is taken over, it is closed as interrupted with the counts of its log."""
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    store = SyncStore(database)
    assert store.acquire_lock(integration.id, owner="crashed-host:1")
    killed = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.BOTH)
    store.heartbeat(integration.id, killed, owner="crashed-host:1")
    contact, lead = RecordObject.CONTACT, RecordObject.LEAD
    store.add_record_outcomes(killed, [
        (contact, "a@example.com", "1", RecordOutcome.CREATED, None, None),
        (contact, "b@example.com", "2", RecordOutcome.CREATED, None, None),
        (lead, "c@example.com", "3", RecordOutcome.UPDATED, None, None),
        (contact, "d@example.com", "4", RecordOutcome.UNCHANGED, None, None),
        (contact, "e@example.com", None, RecordOutcome.FAILED, None, "refused"),
        (contact, "f@example.com", "6", RecordOutcome.CONFLICT, None, "changed on both sides"),
        (contact, "g@example.com", None, RecordOutcome.SKIPPED, None, "no email"),
    ])
    earlier = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.finish_run(earlier, SyncRunStatus.SUCCEEDED, created=7, total=7)
    age_lock(database, LOCK_STALE_AFTER * 2)

    assert store.acquire_lock(integration.id, owner="desk-2:7")

    run = store.get_run(killed)
    assert (run.status, run.message) == (SyncRunStatus.FAILED, INTERRUPTED_MESSAGE)
    assert run.message is not None and run.message.startswith("interrupted")
    assert run.finished_at is not None
    assert (run.created, run.updated, run.unchanged, run.failed, run.conflicts, run.total) == (2, 1, 1, 1, 1, 5)
    finished = store.get_run(earlier)
    assert (finished.status, finished.created, finished.total) == (SyncRunStatus.SUCCEEDED, 7, 7)


def test_an_undo_stopped_by_a_crash_says_to_undo_again_not_that_a_run_resumed_it(database: Database) -> None:
    """An undo keeps no outbox: no sync sends what it had not put back, so its run must not say one did."""
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    store = SyncStore(database)
    undone = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.BOTH)
    store.finish_run(undone, SyncRunStatus.SUCCEEDED, updated=3, total=3)
    assert store.acquire_lock(integration.id, owner="crashed-host:1")
    killed = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.UNDO, undoes_run_id=undone)
    store.heartbeat(integration.id, killed, owner="crashed-host:1")
    age_lock(database, LOCK_STALE_AFTER * 2)

    assert store.acquire_lock(integration.id, owner="desk-2:7")

    run = store.get_run(killed)
    assert (run.status, run.message) == (SyncRunStatus.FAILED, INTERRUPTED_UNDO_MESSAGE)
    assert "undo the run again" in INTERRUPTED_UNDO_MESSAGE
    assert store.undo_of(undone) is None, "the run is still to be undone"


@pytest.mark.parametrize(("value", "text", "kind"), [
    (42, "42", "int"), (-7, "-7", "int"), (True, "true", "bool"), (False, "false", "bool"), (0.5, "0.5", "float"),
    (1e20, "1e+20", "float"), ("42", "42", "text"), ("", "", "text"), (None, None, None),
])
def test_an_audit_row_keeps_a_value_as_its_text_and_its_type(
        database: Database, value: object, text: str | None, kind: str | None) -> None:
    integration = IntegrationStore(database).add(Integration(provider="pipedrive", name="pd"))
    assert integration.id is not None
    store = SyncStore(database)
    run_id = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.PULL)
    store.add_audit(integration.id, [
        {"run_id": run_id, "entity": "contact", "entity_id": "1", "field": "custom.visits", "source": "pull",
         **typed_audit_values(value, "after")},
        # A value given without its type, as a sync gives a name's: text, no type, as before types were kept.
        {"run_id": run_id, "entity": "contact", "entity_id": "1", "field": "firstName", "source": "pull",
         "old_value": "Ada", "new_value": None},
    ])

    typed_row, text_row = store.audit_for_run(run_id)

    assert (typed_row.old_value, typed_row.old_type, typed_row.new_value, typed_row.new_type) == (
        text, kind, "after", "text")
    assert type(typed_row.old) is type(value) and typed_row.old == value
    assert (text_row.old_value, text_row.old_type, text_row.new_value, text_row.new_type, text_row.old) == (
        "Ada", None, None, None, "Ada")
