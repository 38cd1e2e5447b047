"""Undo of one recorded change (the People panel's History tab) from two processes at once (two desktops on one team
store): the change is undone once, and the undo that comes second says it was already undone and leaves nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_desktop.app.change_undo import ChangeUndoRefused, change_undo_message
from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.models import AuditLogRow, SyncRunRow
from crm_desktop.store.sync_store import SyncStore
from tests.support.cli_runs import workspace_at
from tests.support.meanwhile import run_meanwhile


def people_of(workspace: Workspace) -> PeopleService:
    """The service behind the People panel of this workspace."""
    return PeopleService(workspace.database, workspace.social, workspace.sync)


def other_undo_at(monkeypatch: pytest.MonkeyPatch, owner: type[Any], name: str, directory: Path, audit_id: int,
                  *, before: bool) -> list[int | str]:
    """Make the first call of ``owner.name`` run another undo of change ``audit_id`` whole, on its own thread with a
    workspace (and database connections) of its own, as another desktop would (before the call, or once it
    returned); the undo runs it recorded, or its refusal."""
    outcomes: list[int | str] = []

    def undo() -> None:
        with workspace_at(directory) as workspace:
            try:
                outcomes.append(people_of(workspace).undo_change(audit_id).run_id)
            except ChangeUndoRefused as exc:
                outcomes.append(str(exc))

    run_meanwhile(monkeypatch, owner, name, undo, outcomes, before=before)
    return outcomes


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
@pytest.mark.parametrize(("name", "before"), [
    # Right after the record is read (the old code's first look was before it): this undo then finds the value
    # the other one put back.
    ("local_records", False),
    # Between the look and the write: this undo would lay its value over the one the other put back.
    ("change_local", True),
], ids=["after-the-read", "before-the-write"])
def test_a_change_undone_by_another_process_meanwhile_is_undone_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, before: bool, force: bool,
) -> None:
    directory = tmp_path / "workspace"
    with workspace_at(directory) as workspace:
        workspace.contacts.save_many([Contact(email="ada@example.com", first_name="Ada", company="Acme")])
        csv = directory / "company.csv"
        csv.write_text("email,company\nada@example.com,Globex\n", encoding="utf-8")
        assert workspace.sync.import_file(csv, RecordObject.CONTACT).updated == 1
        people = people_of(workspace)
        ada = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"].id
        change = next(a for a in people.store.audit(RecordObject.CONTACT, ada) if a.field == "company")
        assert (change.before, change.after) == ("Acme", "Globex")

        others = other_undo_at(monkeypatch, SyncStore, name, directory, change.id, before=before)
        with pytest.raises(ChangeUndoRefused) as refused:
            people.undo_change(change.id, force=force)
        assert len(others) == 2 and isinstance(others[1], int), others
        winner = others[1]
        assert str(refused.value) == f"change {change.id} (company) was already undone (by run {winner})"
        assert not refused.value.changed_since

        # One undo run, succeeded; none left by this one, failed or running.
        with workspace.database.session() as session:
            undos = session.execute(select(SyncRunRow.id, SyncRunRow.status).where(
                SyncRunRow.message.startswith(change_undo_message(change.id)))).all()
            assert [(run_id, status.value) for run_id, status in undos] == [(winner, "succeeded")]
            # The value from before the change, put back once: the winner's audit row only.
            audited = session.execute(select(AuditLogRow.field, AuditLogRow.old_value, AuditLogRow.new_value,
                                             AuditLogRow.run_id).where(AuditLogRow.source == "undo")).all()
            assert [tuple(row) for row in audited] == [("company", "Globex", "Acme", winner)]
        stored = workspace.contacts.find("ada@example.com")
        assert stored is not None and stored.company == "Acme"
        # And the change stays undone once: another undo is refused at the first look.
        with pytest.raises(ChangeUndoRefused, match=f"already undone \\(by run {winner}\\)"):
            people.undo_change(change.id, force=True)
