"""An import lays each row over the record as it is stored when the import writes, not as it was when the file was
read: what a sync, an edit or an event saved in between stays, and the audit says what the import itself changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crm_desktop.app.imports import FieldChange, ImportService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Lead, LeadStatus
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.database import Database, sqlite_url
from crm_desktop.store.models import ContactRow
from crm_desktop.store.repositories import hold_for_write
from tests.app.conftest import write


def after_the_read(monkeypatch: pytest.MonkeyPatch, imports: ImportService, save: Callable[[], None]) -> None:
    """Run ``save`` once the import has read the stored records it lays its rows over (another writer's save
    landing between the import's read and its write)."""
    original = imports._find_many

    def read_then_save(*args: Any) -> Any:
        found = original(*args)
        save()
        return found

    monkeypatch.setattr(imports, "_find_many", read_then_save)


def test_a_sync_saved_between_the_read_and_the_write_is_kept(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = write(tmp_path / "seed.csv", "email,firstName,company,phone\n"
                 "ada@example.com,Ada,Acme,+14155550101\nalan@example.com,Alan,Acme,\n")
    assert workspace.sync.import_file(seed, RecordObject.CONTACT).created == 2
    contacts = workspace.contacts

    def a_pull_lands() -> None:
        ada = contacts.find("ada@example.com")
        assert ada is not None
        contacts.save(ada.model_copy(update={"phone": "+14155550199", "last_name": "Lovelace"}))
        contacts.save(Contact(email="grace@example.com", first_name="Grace"))  # created by the pull
        alan = contacts.find("alan@example.com")
        assert alan is not None
        contacts.save(alan.model_copy(update={"company": "Bletchley"}))  # what the file says too

    after_the_read(monkeypatch, workspace.sync.imports, a_pull_lands)
    path = write(tmp_path / "people.csv", "email,company\n"
                 "ada@example.com,Globex\ngrace@example.com,Navy\nalan@example.com,Bletchley\n")
    report = workspace.sync.import_file(path, RecordObject.CONTACT)

    ada = contacts.find("ada@example.com")
    assert ada is not None
    # The import's copy of Ada, read before the pull, had put the old phone back and dropped the last name.
    assert (ada.company, ada.phone, ada.last_name) == ("Globex", "+14155550199", "Lovelace")
    grace = contacts.find("grace@example.com")
    assert grace is not None and (grace.first_name, grace.company) == ("Grace", "Navy")
    assert contacts.count() == 3
    assert [(r.email, r.outcome) for r in report.records] == [
        ("ada@example.com", "updated"), ("grace@example.com", "updated"), ("alan@example.com", "unchanged")]
    assert report.records[1].changes == [FieldChange("company", None, "Navy")]
    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)
    assert report.run_id is not None
    run = workspace.sync.store.get_run(report.run_id)
    assert (run.created, run.updated, run.unchanged, run.total) == (0, 2, 1, 3)

    # The audit holds what the import changed, from the values it replaced: its undo keeps what the pull saved.
    workspace.sync.imports.undo(report.run_id)
    ada = contacts.find("ada@example.com")
    grace = contacts.find("grace@example.com")
    assert ada is not None and (ada.company, ada.phone, ada.last_name) == ("Acme", "+14155550199", "Lovelace")
    assert grace is not None and (grace.first_name, grace.company) == ("Grace", None)


def test_a_lead_changed_meanwhile_keeps_the_change(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = write(tmp_path / "seed.csv", "email,company,status\nlin@example.com,Acme,new\n")
    assert workspace.sync.import_file(seed, RecordObject.LEAD).created == 1
    leads = workspace.leads

    def qualified_meanwhile() -> None:
        lin = leads.find("lin@example.com")
        assert lin is not None
        leads.save(lin.model_copy(update={"status": LeadStatus.QUALIFIED}))

    after_the_read(monkeypatch, workspace.sync.imports, qualified_meanwhile)
    report = workspace.sync.import_file(write(tmp_path / "leads.csv", "email,company\nlin@example.com,Globex\n"),
                                        RecordObject.LEAD)
    lin = leads.find("lin@example.com")
    assert isinstance(lin, Lead) and (lin.company, lin.status) == ("Globex", LeadStatus.QUALIFIED)
    assert report.records[0].changes == [FieldChange("company", "Acme", "Globex")]


def test_unchanged_records_are_not_laid_again(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = write(tmp_path / "seed.csv", "email,company,twitter_username,linkedin_username\n"
                 "ada@example.com,Acme,ada,adal\n")
    workspace.sync.import_file(seed, RecordObject.CONTACT)
    laid: list[str] = []
    original = workspace.contacts.save_many

    def counting(records: Any, *, relay: Any = None, after: Any = None) -> Any:
        def counted(record: Any, now: Any) -> Any:
            again = relay(record, now)
            if again is not record:
                laid.append(record.email)
            return again
        return original(records, relay=counted if relay else None, after=after)

    monkeypatch.setattr(workspace.sync.imports.contacts, "save_many", counting)
    workspace.sync.import_file(write(tmp_path / "p.csv", "email,company\nada@example.com,Globex\n"
                                     "new@example.com,Initech\n"), RecordObject.CONTACT)
    assert laid == [], "a record as it was read (profiles included) was taken for one changed meanwhile"


def test_the_write_lock_is_held_from_before_the_read(tmp_path: Path) -> None:
    database = Database(sqlite_url(tmp_path / "crm.db"))
    database.migrate()
    other = sqlite3.connect(tmp_path / "crm.db", timeout=0)
    try:
        with database.session() as session:
            hold_for_write(session, ContactRow.__table__)  # type: ignore[arg-type]
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("INSERT INTO contacts (email, custom_fields, created_at, updated_at) "
                              "VALUES ('x@example.com', '{}', '2026-01-01', '2026-01-01')")
        other.execute("INSERT INTO contacts (email, custom_fields, created_at, updated_at) "
                      "VALUES ('x@example.com', '{}', '2026-01-01', '2026-01-01')")
        other.commit()
    finally:
        other.close()
        database.engine.dispose()


def test_an_undo_keeps_what_was_saved_after_it_read_the_records(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = write(tmp_path / "seed.csv", "email,firstName,company\nada@example.com,Ada,Acme\nbo@example.com,Bo,Acme\n")
    workspace.sync.import_file(seed, RecordObject.CONTACT)
    report = workspace.sync.import_file(write(tmp_path / "p.csv", "email,company\nada@example.com,Globex\n"
                                              "bo@example.com,Globex\n"), RecordObject.CONTACT)
    assert report.run_id is not None
    contacts = workspace.contacts
    imports = workspace.sync.imports
    restore = imports._restore

    def edits_then_restore(*args: Any, **kwargs: Any) -> Any:
        # Saved by another window or desktop after the undo read the records, before it writes them.
        ada, bo = contacts.find("ada@example.com"), contacts.find("bo@example.com")
        if ada is not None and bo is not None and ada.phone is None:
            contacts.save(ada.model_copy(update={"phone": "+14155550123"}))  # another field: kept, company undone
            contacts.save(bo.model_copy(update={"company": "Initech"}))  # the undone field: the newer value stays
        return restore(*args, **kwargs)

    monkeypatch.setattr(imports, "_restore", edits_then_restore)
    undone = imports.undo(report.run_id)
    ada, bo = contacts.find("ada@example.com"), contacts.find("bo@example.com")
    assert ada is not None and (ada.company, ada.phone) == ("Acme", "+14155550123")
    assert bo is not None and bo.company == "Initech"
    assert any("bo@example.com: company changed meanwhile" in line for line in undone.kept), undone.kept
