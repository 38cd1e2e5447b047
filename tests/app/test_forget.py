"""Forgetting a person at their request: every row about them goes in one transaction, and no pull, import or push
brings them back until the forgetting is lifted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_desktop.app.forget import ForgetService
from crm_desktop.app.imports import ImportService, ImportUndoError
from crm_desktop.app.people import PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Lead, SyncDirection
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.domain.social import ConversationEvent, EngagementEvent, Message
from crm_desktop.store.database import Database
from crm_desktop.store.forget_store import email_digest
from crm_desktop.store.models import Base, ForgottenPersonRow, SyncRecordLogRow
from crm_desktop.store.repositories import NotFoundError
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.engine import SyncAlreadyRunning
from tests.app.conftest import FANS, write
from tests.support.served_crms import ServedCrms

FAN = FANS[0]
#: What each sandbox calls a contact, and a salesperson's edit there that a pull then reads.
CRM_EDITS = {"salesforce": ("Contact", {"LastName": "Edited in Salesforce"}),
             "hubspot": ("contacts", {"lastname": "Edited in HubSpot"}),
             "pipedrive": ("persons", {"name": "Fan Edited in Pipedrive"})}


def rows_naming(database: Database, *texts: str) -> dict[str, list[Any]]:
    """Every row, of every table of the store, in which one of ``texts`` appears (any column, any case)."""
    found: dict[str, list[Any]] = {}
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)):
                text = " ".join(str(value) for value in row).lower()
                if any(t.lower() in text for t in texts):
                    found.setdefault(table.name, []).append(tuple(row))
    return found


def _fan_everywhere(workspace: Workspace) -> tuple[int, int]:
    """Give :data:`FAN` a lead, social activity (conversation, messages, engagement), an edit in their history; the
    contact's and the lead's ids."""
    workspace.leads.save(Lead(email=FAN, first_name="Fan", company="Acme"))
    workspace.social.record_conversation(ConversationEvent.model_validate({
        "conversationId": "tw-fan-1", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z",
        "campaign": "black-friday",
        "participant": {"email": FAN, "firstName": "Fan", "username": "@fanone", "followers": 80}}))
    workspace.social.record_message(Message.model_validate({
        "conversationId": "tw-fan-1", "messageId": "m-1", "direction": "inbound", "sentAt": "2026-11-20T10:01:00Z",
        "text": "Hello, I am the first fan", "sentiment": "positive"}))
    workspace.social.record_engagement(EngagementEvent.model_validate({
        "platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
        "campaign": "black-friday", "user": {"username": "@fanone"}}))
    contact_id, lead_id = ForgetService(workspace.database).holders(FAN)
    assert contact_id is not None and lead_id is not None
    ImportService(workspace.database).edit(RecordObject.CONTACT, contact_id, {"company": "Fan Club"})
    return contact_id, lead_id


def test_forgetting_erases_the_person_from_every_table_and_a_pull_does_not_bring_them_back(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    served, workspace = fans_on_three_crms
    for name in CRM_EDITS:
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))
    contact_id, lead_id = _fan_everywhere(workspace)
    for name in CRM_EDITS:  # the lead and the edit reach the CRMs too
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))
    crm_ids = {}
    for name in CRM_EDITS:
        integration = workspace.integrations.get(name)
        assert integration.id is not None
        link = workspace.sync.store.links_for_local(integration.id, RecordObject.CONTACT, [contact_id])[contact_id]
        crm_ids[name] = link.crm_id
    before = rows_naming(workspace.database, FAN, "fanone", "tw-fan-1", "first fan")
    assert {"contacts", "leads", "social_profiles", "touchpoints", "conversations", "messages", "social_identities",
            "crm_links", "audit_log", "sync_record_log", "outbox"} <= set(before)

    report = ForgetService(workspace.database).forget("FAN1@Example.com")

    assert (report.email, report.contact_id, report.lead_id) == (FAN, contact_id, lead_id)
    assert report.counts["contacts"] == report.counts["leads"] == 1
    assert report.counts["crmLinks"] >= 3 and report.counts["messages"] == 1 and report.counts["fieldChanges"] >= 1
    assert rows_naming(workspace.database, FAN, "fanone", "tw-fan-1", "first fan") == {}
    with workspace.database.session() as session:  # only a digest of the email is kept
        assert session.scalars(select(ForgottenPersonRow.email_hash)).all() == [email_digest(FAN)]
    others = [workspace.contacts.find(email) for email in FANS[1:]]
    assert all(other is not None for other in others)  # nobody else was touched

    # A salesperson edits the person in each CRM: the next pull reads the record and skips it, saying why.
    for name, (object_name, changes) in CRM_EDITS.items():
        getattr(served, name).edit_record(object_name, crm_ids[name], changes)
        result = asyncio.run(workspace.sync.sync(name, SyncDirection.PULL))
        assert result.failures == [], name
        with workspace.database.session() as session:
            logged = session.execute(select(SyncRecordLogRow.outcome, SyncRecordLogRow.message, SyncRecordLogRow.crm_id)
                                     .where(SyncRecordLogRow.run_id == result.run_id)).all()
        assert (RecordOutcome.SKIPPED, f"forgotten on {report.forgotten_at:%Y-%m-%d} at your request; not pulled",
                crm_ids[name]) in logged, (name, logged)
    assert workspace.contacts.find(FAN) is None
    assert rows_naming(workspace.database, FAN) == {}

    # Lifted (a mistake): the next pull of an edited record brings the person back.
    assert ForgetService(workspace.database).unforget(FAN) == report.forgotten_at
    object_name, changes = CRM_EDITS["hubspot"]
    served.hubspot.edit_record(object_name, crm_ids["hubspot"], {"lastname": "Back again"})
    asyncio.run(workspace.sync.sync("hubspot", SyncDirection.PULL))
    back = workspace.contacts.find(FAN)
    assert back is not None and back.last_name == "Back again"


def test_an_undo_of_an_earlier_import_does_not_write_a_forgotten_person_back(workspace: Workspace,
                                                                            tmp_path: Path) -> None:
    imports = ImportService(workspace.database)
    first = imports.import_file(write(tmp_path / "a.csv", f"email,company\n{FAN},Acme\n"), RecordObject.CONTACT)
    second = imports.import_file(write(tmp_path / "b.csv", f"email,company\n{FAN},Globex\n"), RecordObject.CONTACT)
    ForgetService(workspace.database).forget(FAN)

    for run in (second, first):
        assert run.run_id is not None
        with pytest.raises(ImportUndoError, match="nothing to undo"):
            imports.undo(run.run_id)
    assert workspace.contacts.find(FAN) is None
    assert rows_naming(workspace.database, FAN) == {}


def test_an_import_skips_a_forgotten_person_and_says_why_until_lifted(workspace: Workspace, tmp_path: Path) -> None:
    imports = ImportService(workspace.database)
    path = write(tmp_path / "people.csv", f"email,firstName\n{FAN.upper()},Fan\n{FANS[1]},Other\n")
    imports.import_file(path, RecordObject.LEAD)
    forgetting = ForgetService(workspace.database)
    forgotten = forgetting.forget(FAN)

    report = imports.import_file(path, RecordObject.LEAD)

    assert report.skipped == [(2, FAN, f"forgotten on {forgotten.forgotten_at:%Y-%m-%d} at your request; "
                                       "not imported")]
    assert (report.created, report.updated, report.unchanged, report.problems) == (0, 0, 1, [])
    assert workspace.leads.find(FAN) is None
    assert rows_naming(workspace.database, FAN) == {}

    assert forgetting.unforget(FAN) is not None
    again = imports.import_file(path, RecordObject.LEAD)
    assert (again.skipped, again.created) == ([], 1)
    assert forgetting.unforget(FAN) is None  # nothing left to lift


def test_the_import_preview_counts_a_forgotten_person_as_skipped_not_new(workspace: Workspace, tmp_path: Path) -> None:
    """The preview said a forgotten person's row was new, and Save then skipped it: the preview now says so."""
    ForgetService(workspace.database).forget(FAN)
    path = write(tmp_path / "people.csv", f"email,firstName\n{FAN.upper()},Fan\n{FANS[1]},Other\n")

    preview = PeopleService(workspace.database, workspace.social, workspace.sync).preview_import(
        path, RecordObject.LEAD)

    assert (preview.new, preview.existing, preview.forgotten, preview.problems) == (1, 0, 1, [])
    report = ImportService(workspace.database).import_file(path, RecordObject.LEAD)
    assert (report.created, len(report.skipped)) == (preview.new, preview.forgotten)


def test_forgetting_someone_not_stored_keeps_them_from_being_imported(workspace: Workspace, tmp_path: Path) -> None:
    forgetting = ForgetService(workspace.database)
    report = forgetting.forget("Someone@Example.com")
    assert (report.contact_id, report.lead_id) == (None, None)
    assert report.summary().startswith("forgot someone@example.com: no contact or lead was stored")

    imported = ImportService(workspace.database).import_file(
        write(tmp_path / "c.csv", "email\nsomeone@example.com\n"), RecordObject.CONTACT)
    assert [email for _, email, _ in imported.skipped] == ["someone@example.com"]
    assert workspace.contacts.find("someone@example.com") is None


@pytest.mark.parametrize(("key", "refusal"), [("nobody", ValueError), ("0", NotFoundError), ("999", NotFoundError)])
def test_a_key_that_names_no_one_is_refused(workspace: Workspace, key: str, refusal: type[Exception]) -> None:
    with pytest.raises(refusal):
        ForgetService(workspace.database).email_of(RecordObject.CONTACT, key)


def test_in_crms_the_linked_records_are_deleted_in_each_crm_first(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    _served, workspace = fans_on_three_crms
    workspace.leads.save(Lead(email=FAN, first_name="Fan", last_name="Number 1", company="Acme"))
    for name in CRM_EDITS:
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))
    forgetting = ForgetService(workspace.database, workspace.crm)
    linked = forgetting.store.crm_links(FAN)
    assert len(linked) == 6  # a contact and a lead in each CRM

    deletions = asyncio.run(forgetting.delete_in_crms(FAN))

    assert [(d.integration, d.obj, d.outcome) for d in deletions if d.outcome != "deleted"] == [], deletions
    assert len(deletions) == 6

    async def found_in(name: str, obj: RecordObject) -> Any:
        adapter = workspace.crm.adapter_for(workspace.integrations.get(name))
        try:
            return await adapter.get_record(obj, email=FAN)
        finally:
            await adapter.aclose()

    for name in CRM_EDITS:
        for obj in (RecordObject.CONTACT, RecordObject.LEAD):
            assert asyncio.run(found_in(name, obj)) is None, (name, obj)
    # Run again (a CRM had failed the first time, say): nothing fails (HubSpot answers 204 for a contact it
    # archived already; Salesforce and Pipedrive 404, read as gone).
    again = asyncio.run(forgetting.delete_in_crms(FAN))
    assert {d.integration: d.outcome for d in again if d.obj is RecordObject.CONTACT} == {
        "salesforce": "gone", "hubspot": "deleted", "pipedrive": "gone"}, again
    forgetting.forget(FAN)
    assert forgetting.store.crm_links(FAN) == []
    assert asyncio.run(found_in("hubspot", RecordObject.CONTACT)) is None


def test_forgetting_in_the_crms_holds_off_every_sync_until_it_is_done(
    fans_on_three_crms: tuple[ServedCrms, Workspace],
) -> None:
    # Between the CRM deletes and the erasure here, a sync could push the person again (a new CRM record, whose
    # link the erasure then drops): forgetting holds every integration's sync lock, and waits for none.
    _served, workspace = fans_on_three_crms
    for name in CRM_EDITS:
        asyncio.run(workspace.sync.sync(name, SyncDirection.BOTH))
    forgetting = ForgetService(workspace.database, workspace.crm)
    locks = SyncStore(workspace.database)
    pipedrive = workspace.integrations.get("pipedrive")
    assert pipedrive.id is not None
    assert locks.acquire_lock(pipedrive.id, "teammate:77")  # a sync of pipedrive under way elsewhere

    with pytest.raises(SyncAlreadyRunning, match=r"pipedrive.*forget them once it is over"):
        asyncio.run(forgetting.forget_in_crms_first(FAN))
    assert len(forgetting.store.crm_links(FAN)) == 3, "nothing deleted, nothing forgotten"
    assert all(locks.lock_holder(i.id or 0) is None for i in workspace.integrations.list() if i.id != pipedrive.id)

    locks.release_lock(pipedrive.id, "teammate:77")
    seen: dict[str, object] = {}
    deleting = forgetting.delete_in_crms

    async def deleting_while_held(email: str) -> Any:
        seen.update({i.name: locks.lock_holder(i.id or 0) for i in workspace.integrations.list()})
        return await deleting(email)

    forgetting.delete_in_crms = deleting_while_held  # type: ignore[method-assign]
    outcome = asyncio.run(forgetting.forget_in_crms_first(FAN))
    assert outcome.report is not None and forgetting.store.crm_links(FAN) == []
    assert set(seen) == set(CRM_EDITS) and all(holder is not None for holder in seen.values()), seen
    assert all(locks.lock_holder(i.id or 0) is None for i in workspace.integrations.list()), "all let go"
