"""A run on the local store (an import, an edit, an undo) commits its values with the run and audit rows that tell
them, or nothing; one whose process was killed shows as interrupted, not as running for ever."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_desktop.app.imports import ImportUndoError
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.import_log import INTERRUPTED_NOTE, ImportLog
from crm_desktop.store.models import AuditLogRow, SyncRunRow, SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.store.process_owner import lock_owner, machine_name
from tests.app.conftest import write


class RecordingFailed(RuntimeError):
    """The crash injected while a run's outcome is written."""


def fail_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the write of a run's outcome fail while its values are being saved, as a crash between the values
    and their audit rows would (the run's failure itself is then recorded)."""
    original = ImportLog._record

    def crash(session: Any, run_id: int, outcome: Any) -> None:
        if outcome.status is not SyncRunStatus.FAILED:
            raise RecordingFailed("the disk went away")
        original(session, run_id, outcome)

    monkeypatch.setattr(ImportLog, "_record", staticmethod(crash))


def runs_of(workspace: Workspace) -> list[SyncRunRow]:
    with workspace.database.session() as session:
        rows = list(session.scalars(select(SyncRunRow).order_by(SyncRunRow.id)))
        session.expunge_all()
        return rows


def audit_count(workspace: Workspace) -> int:
    with workspace.database.session() as session:
        return len(list(session.scalars(select(AuditLogRow.id))))


def test_an_import_whose_audit_cannot_be_written_saves_no_value(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.sync.import_file(write(tmp_path / "seed.csv", "email,company\nada@example.com,Acme\n"),
                               RecordObject.CONTACT)
    before = audit_count(workspace)
    fail_recording(monkeypatch)
    with pytest.raises(RecordingFailed):
        workspace.sync.import_file(write(tmp_path / "more.csv", "email,company\nada@example.com,Globex\n"
                                         "new@example.com,Initech\n"), RecordObject.CONTACT)
    stored = workspace.sync.contacts.find_many(["ada@example.com", "new@example.com"])
    assert stored["ada@example.com"].company == "Acme"  # not changed without its audit row
    assert "new@example.com" not in stored
    assert audit_count(workspace) == before
    assert [run.status for run in runs_of(workspace)] == [SyncRunStatus.SUCCEEDED, SyncRunStatus.FAILED]


def test_an_edit_and_an_undo_commit_with_their_audit(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = workspace.sync.import_file(write(tmp_path / "seed.csv", "email,company\nada@example.com,Acme\n"),
                                        RecordObject.CONTACT)
    ada = workspace.sync.contacts.find_many(["ada@example.com"])["ada@example.com"]
    local_id = workspace.sync.contacts.save(ada).id
    edited = workspace.sync.imports.edit(RecordObject.CONTACT, local_id, {"company": "Globex"})
    assert edited.run_id is not None and ada.company == "Acme"
    fail_recording(monkeypatch)
    with pytest.raises(RecordingFailed):
        workspace.sync.imports.edit(RecordObject.CONTACT, local_id, {"company": "Initech"})
    with pytest.raises(RecordingFailed):
        workspace.sync.imports.undo(edited.run_id)
    with pytest.raises(RecordingFailed):
        workspace.sync.imports.create(RecordObject.CONTACT, "grace@example.com", {"company": "Navy"})
    assert workspace.sync.contacts.find_many(["ada@example.com"])["ada@example.com"].company == "Globex"
    assert workspace.sync.contacts.find_many(["grace@example.com"]) == {}
    assert [run.status for run in runs_of(workspace)][-3:] == [SyncRunStatus.FAILED] * 3
    monkeypatch.undo()
    # Nothing half-written is left for an undo to trip on: the edit and the import still undo cleanly.
    assert workspace.sync.imports.undo(edited.run_id).restored_local == 1
    assert report.run_id is not None
    assert workspace.sync.contacts.find_many(["ada@example.com"])["ada@example.com"].company == "Acme"


def dead_pid() -> int:
    """The pid of a process of this machine that has ended."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(ended.stdout)


def a_running_run(workspace: Workspace, owner: str | None, started_ago: timedelta) -> int:
    with workspace.database.session() as session:
        run = SyncRunRow(integration_id=None, trigger=SyncTrigger.IMPORT, direction=SyncDirection.IMPORT,
                         message="import of people.csv", owner=owner, started_at=utcnow() - started_ago)
        session.add(run)
        session.flush()
        return run.id


def test_a_local_run_whose_process_died_shows_as_interrupted(workspace: Workspace) -> None:
    killed_here = a_running_run(workspace, f"{machine_name()}:{dead_pid()}", timedelta(seconds=5))
    alive_here = a_running_run(workspace, lock_owner(), timedelta(minutes=3))
    # A process id given again (a container's PID 1, a reboot): the age limit still ends the run.
    reused_here = a_running_run(workspace, lock_owner(), timedelta(hours=3))
    elsewhere_long_ago = a_running_run(workspace, "other-desk:4242", timedelta(hours=2))
    elsewhere_now = a_running_run(workspace, "other-desk:4243", timedelta(minutes=5))
    shown = {run.id: run for run in workspace.sync.runs()}
    for interrupted in (killed_here, elsewhere_long_ago, reused_here):
        assert shown[interrupted].status is SyncRunStatus.FAILED
        assert shown[interrupted].message == f"import of people.csv ({INTERRUPTED_NOTE})"
        assert shown[interrupted].finished_at is not None
    for going in (alive_here, elsewhere_now):
        assert shown[going].status is SyncRunStatus.RUNNING
    # An interrupted import saved nothing, so there is nothing to undo; the refusal says so, not "still running".
    with pytest.raises(ImportUndoError,
                       match=r"changed nothing \(it was interrupted before it saved anything\): nothing to undo"):
        workspace.sync.imports.undo(killed_here)
