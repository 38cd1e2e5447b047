"""One person's actions against the three sandbox CRMs over loopback: duplicates found and merged (in HubSpot and
Pipedrive through their merge APIs, Salesforce said to merge by hand), sync one record now, the record's web
address, and undo of a single recorded change (refused when the value moved, pushed by the next sync)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_desktop.app.change_undo import ChangeUndoRefused
from crm_desktop.app.crm_web import CrmLinkUnavailable, record_web_url
from crm_desktop.app.duplicates import DuplicateReason, MergeError, email_identity
from crm_desktop.app.people import DuplicateRecordError, NotFoundError, PeopleQuery, PeopleService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Provider, SocialPlatform, SocialProfile, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import SyncRecordLogRow, SyncRunStatus, SyncTrigger
from tests.support.cli_runs import workspace_at
from tests.support.served_crms import served_crms

pytestmark = pytest.mark.loopback


@dataclass
class Desk:
    workspace: Workspace
    people: PeopleService
    salesforce: SalesforceSandbox
    hubspot: HubSpotSandbox
    pipedrive: PipedriveSandbox

    def local_id(self, email: str) -> int:
        found = self.workspace.sync.store.local_by_emails(RecordObject.CONTACT, [email])
        return found[email].id

    def crm_id(self, name: str, email: str) -> str:
        integration = self.workspace.integrations.get(name)
        local = self.local_id(email)
        links = self.workspace.sync.store.links_for_local(integration.id or 0, RecordObject.CONTACT, [local])
        return links[local].crm_id

    def push_all(self) -> None:
        ids = [self.local_id(c.email) for c in self.workspace.contacts.page(0, 100)]
        for name in ("salesforce", "hubspot", "pipedrive"):
            result = asyncio.run(self.workspace.sync.push_now(name, {RecordObject.CONTACT: ids}, SyncTrigger.MANUAL))
            assert not result.failures, result.failures


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with served_crms() as served, workspace_at(tmp_path / "workspace") as workspace:
        served.connect(workspace)
        workspace.contacts.save_many([
            Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace", company=None,
                    phone="+14155550101",
                    social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ada")]),
            Contact(email="ada+news@example.com", first_name="Augusta", last_name="King",
                    company="Analytical Engines", phone="+14155550101",
                    social_profiles=[SocialProfile(platform=SocialPlatform.INSTAGRAM, username="ada.k")]),
            Contact(email="grace@example.com", first_name="Grace", last_name="Hopper", company="Navy",
                    social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ADA")]),
        ])
        people = PeopleService(workspace.database, workspace.social, workspace.sync)
        yield Desk(workspace, people, served.salesforce, served.hubspot, served.pipedrive)


def test_email_identity_reaches_the_same_mailbox() -> None:
    assert email_identity("Ada+News@Example.com") == "ada@example.com"
    assert email_identity("a.d.a@googlemail.com") == email_identity("ada@gmail.com") == "ada@gmail.com"
    assert email_identity("a.da@example.com") == "a.da@example.com", "dots matter outside Gmail"


def test_likely_duplicates_by_email_phone_and_username(desk: Desk) -> None:
    report = desk.people.duplicates.find()
    found = {(group.reason, group.shared): [email for _, email in group.contacts] for group in report.groups}
    assert found == {
        (DuplicateReason.EMAIL, "ada@example.com"): ["ada@example.com", "ada+news@example.com"],
        (DuplicateReason.PHONE, "+14155550101"): ["ada@example.com", "ada+news@example.com"],
        (DuplicateReason.SOCIAL, "twitter: ada"): ["ada@example.com", "grace@example.com"],
    }
    assert report.reported == []


def test_duplicates_the_crms_reported_are_listed_once_per_integration_and_email(desk: Desk) -> None:
    # A Salesforce duplicate rule's refusal as the sync engine logs it (the adapters match by email first, so the
    # sandboxes only refuse one in a race): two runs, the newest message wins.
    integration = desk.workspace.integrations.get("salesforce")
    store = desk.workspace.sync.store
    for message in ("first refusal", "DUPLICATES_DETECTED: You're creating a duplicate record"):
        run = store.start_run(integration.id or 0, SyncTrigger.MANUAL, SyncDirection.PUSH)
        with desk.workspace.database.session() as session:
            session.add(SyncRecordLogRow(run_id=run, object=RecordObject.CONTACT, record_key="grace@example.com",
                                         crm_id=None, outcome=RecordOutcome.FAILED,
                                         error_category=ErrorCategory.DUPLICATE, message=message))
        store.finish_run(run, SyncRunStatus.PARTIAL)
    reported = desk.people.duplicates.find().reported
    assert [(r.integration, r.email, r.local_id, r.message) for r in reported] == [
        ("salesforce", "grace@example.com", desk.local_id("grace@example.com"),
         "DUPLICATES_DETECTED: You're creating a duplicate record")]


def test_merge_in_hubspot_and_pipedrive_and_by_hand_in_salesforce(desk: Desk) -> None:
    desk.push_all()
    keep, other = desk.local_id("ada@example.com"), desk.local_id("ada+news@example.com")
    hubspot_keep = desk.crm_id("hubspot", "ada@example.com")
    hubspot_other = desk.crm_id("hubspot", "ada+news@example.com")
    pipedrive_keep = desk.crm_id("pipedrive", "ada@example.com")
    pipedrive_other = desk.crm_id("pipedrive", "ada+news@example.com")
    salesforce_other = desk.crm_id("salesforce", "ada+news@example.com")

    plan = asyncio.run(desk.people.duplicates.plan(keep, other))
    assert {step.integration: step.action for step in plan.crm_steps} == {
        "hubspot": "merge", "pipedrive": "merge", "salesforce": "by hand"}
    assert [(f.field, f.label, f.keep, f.other) for f in plan.fields] == [
        ("firstName", "First name", "Ada", "Augusta"), ("lastName", "Last name", "Lovelace", "King"),
        ("company", "Company", None, "Analytical Engines"), ("phone", "Phone", "+14155550101", "+14155550101")]

    report = asyncio.run(desk.people.duplicates.merge(keep, other, {"company", "lastName"}))

    assert {"lastName", "company", "instagram_username"} <= set(report.changed)
    assert {"Last name", "Company", "Instagram username"} <= set(report.changed_labels)
    assert "firstName" not in report.changed
    assert any("hubspot" in line for line in report.merged_in_crm)
    assert any("pipedrive" in line for line in report.merged_in_crm)
    assert len(report.by_hand) == 1 and report.by_hand[0].startswith("salesforce:")
    assert salesforce_other in report.by_hand[0]
    # HubSpot, over the socket: the merged contact is gone, the kept one carries its email as an additional one.
    answer = httpx.get(f"{desk.hubspot.base_url}/crm/v3/objects/contacts/{hubspot_other}",
                       headers={"Authorization": f"Bearer {desk.hubspot.credentials()['token']}"}, timeout=10)
    assert answer.status_code == 404
    kept = desk.hubspot._records["contacts"][hubspot_keep].properties
    assert kept["hs_additional_emails"] == "ada+news@example.com"
    assert kept["hs_merged_object_ids"] == hubspot_other
    # Pipedrive: the other person is gone, its email joined the kept person's emails.
    assert int(pipedrive_other) not in desk.pipedrive.persons
    emails = [e["value"] for e in desk.pipedrive.persons[int(pipedrive_keep)].emails]
    assert emails == ["ada@example.com", "ada+news@example.com"]
    # Locally: one contact, with the picked fields, both profiles, and the audit of the merge.
    assert desk.workspace.contacts.find("ada+news@example.com") is None
    merged = desk.workspace.contacts.find("ada@example.com")
    assert merged is not None
    assert (merged.first_name, merged.last_name, merged.company) == ("Ada", "King", "Analytical Engines")
    assert {p.platform for p in merged.social_profiles} == {SocialPlatform.TWITTER, SocialPlatform.INSTAGRAM}
    audit = desk.people.store.audit(RecordObject.CONTACT, keep)
    assert {(a.field, a.before, a.after) for a in audit if a.source.startswith("merge")} >= {
        ("lastName", "Lovelace", "King"), ("company", None, "Analytical Engines"),
        ("merged contact", "ada+news@example.com", "ada@example.com")}
    links = desk.people.duplicates.store.links_of([keep, other])
    assert other not in {local for by_local in links.values() for local in by_local}
    # The next sync pushes the picked values to HubSpot.
    result = asyncio.run(desk.workspace.sync.push_now("hubspot", {RecordObject.CONTACT: [keep]}, SyncTrigger.MANUAL))
    assert not result.failures
    kept = desk.hubspot._records["contacts"][hubspot_keep].properties
    assert (kept.get("lastname"), kept.get("company")) == ("King", "Analytical Engines")

    # Salesforce still has the merged Contact: a pull does not bring it back, so no sync makes it again in
    # HubSpot or Pipedrive, which merged it away.
    pulled = asyncio.run(desk.workspace.sync.sync("salesforce"))
    assert desk.workspace.contacts.find("ada+news@example.com") is None
    logged = {row.record_key: row for row in desk.workspace.sync.run(pulled.run_id or 0)[1]}
    assert "merged here into ada@example.com" in (logged["ada+news@example.com"].message or "")
    hubspot_contacts = len(desk.hubspot._records["contacts"])
    for name in ("hubspot", "pipedrive"):
        asyncio.run(desk.workspace.sync.sync(name))
    assert len(desk.hubspot._records["contacts"]) == hubspot_contacts
    assert int(pipedrive_other) not in desk.pipedrive.persons
    assert desk.crm_id("pipedrive", "ada@example.com") == pipedrive_keep


def test_a_merge_of_a_contact_with_itself_or_a_gone_one_is_refused(desk: Desk) -> None:
    keep = desk.local_id("ada@example.com")
    with pytest.raises(MergeError, match="itself"):
        asyncio.run(desk.people.duplicates.merge(keep, keep))
    with pytest.raises(MergeError, match="99999"):
        asyncio.run(desk.people.duplicates.merge(keep, 99999))
    with pytest.raises(MergeError, match="email"):
        asyncio.run(desk.people.duplicates.merge(keep, desk.local_id("grace@example.com"), {"email"}))
    assert desk.workspace.contacts.find("grace@example.com") is not None


def test_sync_one_pushes_just_that_record_now(desk: Desk) -> None:
    ada = desk.local_id("ada@example.com")
    first = asyncio.run(desk.people.sync_one("pipedrive", RecordObject.CONTACT, ada))
    assert (first.outcome, first.run_id is not None) == ("created", True)
    assert [p.name for p in desk.pipedrive.persons.values()] == ["Ada Lovelace"], "only that one record went"
    again = asyncio.run(desk.people.sync_one("pipedrive", RecordObject.CONTACT, ada))
    assert again.outcome == "unchanged"
    contact = desk.workspace.contacts.find("ada@example.com")
    assert contact is not None
    desk.workspace.contacts.save(contact.model_copy(update={"first_name": "Augusta"}))
    third = asyncio.run(desk.people.sync_one("pipedrive", RecordObject.CONTACT, ada))
    assert third.outcome == "updated"
    assert [p.name for p in desk.pipedrive.persons.values()] == ["Augusta Lovelace"]
    detail = desk.people.detail(RecordObject.CONTACT, ada)
    line = next(link for link in detail.crm_links if link.integration == "pipedrive")
    assert (line.state, line.crm_id) == ("linked", desk.crm_id("pipedrive", "ada@example.com"))


def test_record_web_addresses_from_the_integration_settings(desk: Desk) -> None:
    desk.push_all()
    ada = "ada@example.com"
    salesforce_id = desk.crm_id("salesforce", ada)
    url = asyncio.run(desk.people.record_url("salesforce", RecordObject.CONTACT, salesforce_id))
    assert url == f"{desk.salesforce.base_url}/lightning/r/Contact/{salesforce_id}/view"
    hubspot_id = desk.crm_id("hubspot", ada)
    url = asyncio.run(desk.people.record_url("hubspot", RecordObject.CONTACT, hubspot_id))
    assert url == f"https://app.hubspot.com/contacts/{desk.hubspot.portal_id}/record/0-1/{hubspot_id}"
    calls = desk.hubspot.request_count
    again = asyncio.run(desk.people.record_url("hubspot", RecordObject.CONTACT, hubspot_id))
    assert again == url
    assert desk.hubspot.request_count == calls, "the portal id is asked for once, then kept"
    pipedrive_id = desk.crm_id("pipedrive", ada)
    url = asyncio.run(desk.people.record_url("pipedrive", RecordObject.CONTACT, pipedrive_id))
    assert url == f"https://acme.pipedrive.com/person/{pipedrive_id}"
    assert record_web_url(Provider.SALESFORCE, RecordObject.LEAD, "00Q1", instance_url="https://x.my.salesforce.com/"
                          ) == "https://x.my.salesforce.com/lightning/r/Lead/00Q1/view"
    with pytest.raises(CrmLinkUnavailable, match="company domain"):
        record_web_url(Provider.PIPEDRIVE, RecordObject.CONTACT, "7")


def import_company(desk: Desk, company: str) -> None:
    csv = desk.workspace.paths.data_dir / "company.csv"
    csv.write_text(f"email,company\nada@example.com,{company}\n", encoding="utf-8")
    report = desk.workspace.sync.import_file(csv, RecordObject.CONTACT)
    assert report.updated == 1


def hubspot_company(desk: Desk) -> str | None:
    return desk.hubspot._records["contacts"][desk.crm_id("hubspot", "ada@example.com")].properties.get("company")


def push_ada(desk: Desk, name: str) -> None:
    ada = desk.local_id("ada@example.com")
    result = asyncio.run(desk.workspace.sync.push_now(name, {RecordObject.CONTACT: [ada]}, SyncTrigger.MANUAL))
    assert not result.failures, result.failures


def test_undo_of_one_change_is_audited_and_pushed_by_the_next_sync(desk: Desk) -> None:
    desk.push_all()
    ada = desk.local_id("ada@example.com")
    import_company(desk, "First Co")
    push_ada(desk, "hubspot")
    import_company(desk, "Second Co")
    push_ada(desk, "hubspot")
    assert hubspot_company(desk) == "Second Co"
    change = next(a for a in desk.people.store.audit(RecordObject.CONTACT, ada)
                  if a.field == "company" and a.after == "Second Co" and a.side == "local")
    assert change.before == "First Co"

    report = desk.people.undo_change(change.id)
    assert (report.field, report.restored, report.replaced) == ("company", "First Co", "Second Co")
    contact = desk.workspace.contacts.find("ada@example.com")
    assert contact is not None and contact.company == "First Co"
    newest = desk.people.store.audit(RecordObject.CONTACT, ada)[0]
    assert (newest.field, newest.before, newest.after, newest.source) == ("company", "Second Co", "First Co", "undo")
    with pytest.raises(ChangeUndoRefused, match="already undone"):
        desk.people.undo_change(change.id)

    push_ada(desk, "hubspot")
    assert hubspot_company(desk) == "First Co", "the undo reached the CRM on the next sync"


def test_undo_is_refused_when_the_value_changed_since_unless_forced(desk: Desk) -> None:
    ada = desk.local_id("ada@example.com")
    import_company(desk, "First Co")
    import_company(desk, "Second Co")
    first = next(a for a in desk.people.store.audit(RecordObject.CONTACT, ada) if a.after == "First Co")
    with pytest.raises(ChangeUndoRefused) as refused:
        desk.people.undo_change(first.id)
    assert refused.value.changed_since and "Second Co" in str(refused.value)
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company == "Second Co", "a refused undo changes nothing"
    report = desk.people.undo_change(first.id, force=True)
    assert (report.restored, report.replaced) == (None, "Second Co")
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company is None


def test_a_merge_row_is_not_a_value_to_put_back(desk: Desk) -> None:
    keep, other = desk.local_id("ada@example.com"), desk.local_id("grace@example.com")
    asyncio.run(desk.people.duplicates.merge(keep, other))
    merged_row = next(a for a in desk.people.store.audit(RecordObject.CONTACT, keep) if a.field == "merged contact")
    with pytest.raises(ChangeUndoRefused, match="not a field value"):
        desk.people.undo_change(merged_row.id)
    with pytest.raises(ChangeUndoRefused, match="no recorded change"):
        desk.people.undo_change(10_000)


def test_an_edit_by_hand_is_saved_audited_undone_and_pushed_by_the_next_sync(desk: Desk) -> None:
    desk.push_all()
    ada = desk.local_id("ada@example.com")
    detail = desk.people.detail(RecordObject.CONTACT, ada)
    assert detail.fields == {"firstName": "Ada", "lastName": "Lovelace", "company": None, "phone": "+14155550101"}

    report = desk.people.edit(RecordObject.CONTACT, ada, {
        "firstName": "Ada", "company": "Analytical Engines", "phone": "+1 415 555 0199"})
    assert [(c.field, c.old, c.new) for c in report.changes] == [
        ("company", None, "Analytical Engines"), ("phone", "+14155550101", "+14155550199")], "the phone normalised"
    assert report.run_id is not None
    run = desk.workspace.sync.store.get_run(report.run_id)
    assert (run.status, run.message, run.updated) == (SyncRunStatus.SUCCEEDED, "edit of ada@example.com", 1)
    history = desk.people.store.audit(RecordObject.CONTACT, ada)
    assert {(a.field, a.before, a.after, a.source) for a in history[:2]} == {
        ("company", None, "Analytical Engines", "edit"), ("phone", "+14155550101", "+14155550199", "edit")}
    assert desk.people.edit(RecordObject.CONTACT, ada, {"company": "Analytical Engines"}).run_id is None, \
        "an edit that changes nothing records no run"

    push_ada(desk, "hubspot")
    assert hubspot_company(desk) == "Analytical Engines", "the next sync sent the edit to the CRM"
    company = next(a for a in history if a.field == "company")
    desk.people.undo_change(company.id)
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and (stored.company, stored.phone) == (None, "+14155550199")

    cleared = desk.people.edit(RecordObject.CONTACT, ada, {"phone": ""})
    assert [(c.field, c.new) for c in cleared.changes] == [("phone", None)], "a blank value clears the field"


def test_a_refused_edit_names_each_field_and_writes_nothing(desk: Desk) -> None:
    ada = desk.local_id("ada@example.com")
    before = desk.workspace.contacts.find("ada@example.com")
    runs = len(desk.workspace.sync.store.list_runs(limit=100))
    with pytest.raises(InvalidRecordError) as refused:
        desk.people.edit(RecordObject.CONTACT, ada, {"company": "Fine Co", "phone": "call me maybe",
                                                     "firstName": "x" * 300})
    assert set(refused.value.fields) == {"phone", "firstName"}
    assert "ada@example.com" in str(refused.value)
    assert desk.workspace.contacts.find("ada@example.com") == before, "nothing of a refused edit is written"
    assert len(desk.workspace.sync.store.list_runs(limit=100)) == runs, "and no run is recorded"
    with pytest.raises(InvalidRecordError, match=r"custom\.notes: 131,073 characters") as refused:
        desk.people.edit(RecordObject.CONTACT, ada, {"custom.notes": "x" * 131_073})
    assert refused.value.fields == ["custom.notes"], "named by the key the form gave it as"
    with pytest.raises(ValueError, match="not a field that can be edited"):
        desk.people.edit(RecordObject.CONTACT, ada, {"email": "other@example.com"})
    with pytest.raises(NotFoundError):
        desk.people.edit(RecordObject.CONTACT, 10_000, {"company": "Gone Co"})


def test_a_person_added_by_hand_is_checked_recorded_and_pushed(desk: Desk) -> None:
    with pytest.raises(InvalidRecordError) as refused:
        desk.people.create(RecordObject.CONTACT, "not an email", {"company": "X"})
    assert refused.value.fields == ["email"]
    with pytest.raises(DuplicateRecordError, match=r"ada@example\.com is already a contact"):
        desk.people.create(RecordObject.CONTACT, " Ada@Example.com ", {"company": "Other Co"})
    assert desk.workspace.contacts.find("ada@example.com").company is None  # type: ignore[union-attr]

    report = desk.people.create(RecordObject.CONTACT, "Hedy@Example.com", {
        "firstName": "Hedy", "lastName": "Lamarr", "phone": "+1 415 555 0111", "custom.segment": "vip"})
    assert (report.email, report.local_id is not None) == ("hedy@example.com", True)
    assert [(c.field, c.new) for c in report.changes] == [
        ("firstName", "Hedy"), ("lastName", "Lamarr"), ("phone", "+14155550111"), ("custom.segment", "vip")]
    stored = desk.workspace.contacts.find("hedy@example.com")
    assert stored is not None and stored.custom_fields == {"segment": "vip"}
    run = desk.workspace.sync.store.get_run(report.run_id or 0)
    assert (run.created, run.message) == (1, "edit of hedy@example.com")
    history = desk.people.store.audit(RecordObject.CONTACT, report.local_id or 0)
    assert [(a.field, a.before, a.after, a.source) for a in history] == [("email", None, "hedy@example.com", "edit")]

    lead = desk.people.create(RecordObject.LEAD, "dan@example.com", {"firstName": "Dan", "status": "qualified"})
    stored_lead = desk.workspace.leads.find("dan@example.com")
    assert stored_lead is not None and stored_lead.status == "qualified" and lead.run_id is not None

    result = asyncio.run(desk.workspace.sync.push_now("pipedrive", {RecordObject.CONTACT: [report.local_id or 0]},
                                                      SyncTrigger.MANUAL))
    assert not result.failures
    assert [p.name for p in desk.pipedrive.persons.values()] == ["Hedy Lamarr"]


def test_an_export_writes_the_listed_people_in_columns_an_import_reads_back(desk: Desk, tmp_path: Path) -> None:
    ada = desk.local_id("ada@example.com")
    desk.people.edit(RecordObject.CONTACT, ada, {"custom.segment": "=HYPERLINK(\"http://evil.example\")"})
    path = tmp_path / "people.csv"
    written = desk.people.export_csv(PeopleQuery(obj=RecordObject.CONTACT, text="ada"), path, page_size=1)
    assert written == 2, "only the people the filter lists, read a page at a time"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "email", "firstName", "lastName", "company", "phone", "instagram_username", "instagram_followers",
        "instagram_engagement", "twitter_username", "twitter_followers", "twitter_engagement", "segment",
    ], "the columns the people have, a network's together (no profile has a URL: no URL column)"
    assert [row["email"] for row in rows] == ["ada+news@example.com", "ada@example.com"], "in the list's order"
    assert rows[1]["phone"] == "+14155550101", "a phone number is written as it is"
    assert rows[1]["twitter_username"] == "ada"
    assert rows[1]["segment"] == "'=HYPERLINK(\"http://evil.example\")", "a formula is kept inert"

    unchanged = desk.workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (unchanged.unchanged, unchanged.updated, unchanged.problems) == (2, 0, []), "the file imports as it is"
    # Edited in a spreadsheet and imported back: only what was changed changes.
    rows[0]["company"] = "Analytical Engines plc"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = desk.workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.updated, report.unchanged, report.problems) == (1, 1, [])
    changed = {r.email: [(c.field, c.new) for c in r.changes] for r in report.records if r.changes}
    assert changed["ada+news@example.com"] == [("company", "Analytical Engines plc")]
    assert "ada@example.com" not in changed, "the apostrophe that kept a formula inert is not read back"


def test_an_export_of_awkward_values_imports_back_as_it_was(desk: Desk, tmp_path: Path) -> None:
    formula_name = '=HYPERLINK("http://evil.example","x")'
    desk.workspace.contacts.save_many([
        Contact(email="'-jo@example.com", first_name="Jo", company="'=literal",
                custom_fields={"note": "'+1", "Phone": "home", "custom.x": "y", formula_name: "v"}),
        Contact(email="typed@example.com", first_name="Old", custom_fields={
            "visits": 5, "vip": True, "ratio": 1.0, "motto": "O'Neil; 'Jr'; x"}),
    ])
    path = tmp_path / "people.csv"
    desk.people.export_csv(PeopleQuery(obj=RecordObject.CONTACT), path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    # A custom field an import would take for the record's own phone, or for another prefix, keeps its prefix; a
    # name that is a formula is as inert in the header as in a cell.
    assert {"custom.Phone", "custom.custom.x", "'" + formula_name} <= set(header)
    jo = dict(zip(header, next(r for r in rows if r[0].endswith("jo@example.com")), strict=True))
    # Values that start with an apostrophe keep it (they had lost it, and the email had made a second contact).
    assert (jo["email"], jo["company"], jo["note"]) == ("''-jo@example.com", "''=literal", "''+1")

    report = desk.workspace.sync.import_file(path, RecordObject.CONTACT)
    assert (report.created, report.updated, report.problems) == (0, 0, []), [r.changes for r in report.records]
    stored = desk.workspace.contacts.find("'-jo@example.com")
    assert stored is not None and stored.custom_fields == {
        "note": "'+1", "Phone": "home", "custom.x": "y", formula_name: "v"}

    # One cell edited: the custom fields left alone keep their types (they had all become text).
    at = header.index("firstName")
    for row in rows:
        if row[0] == "typed@example.com":
            row[at] = "New"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    report = desk.workspace.sync.import_file(path, RecordObject.CONTACT)
    assert [(c.field, c.new) for r in report.records for c in r.changes] == [("firstName", "New")]
    typed = desk.workspace.contacts.find("typed@example.com")
    assert typed is not None and typed.custom_fields == {
        "visits": 5, "vip": True, "ratio": 1.0, "motto": "O'Neil; 'Jr'; x"}
    assert [type(v) for v in typed.custom_fields.values()] == [int, bool, float, str]


def import_rows(desk: Desk, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    report = desk.workspace.sync.import_file(path, RecordObject.CONTACT)
    assert not report.problems, report.problems


def meanwhile(monkeypatch: pytest.MonkeyPatch, owner: object, method: str, write: Callable[[Any], None]) -> None:
    """Run ``write`` right after the first call of ``owner.method`` has read the store: another writer's save
    landing between a service's read and its write."""
    original = getattr(owner, method)

    def read_then_write(*args: Any) -> Any:
        monkeypatch.setattr(owner, method, original)
        found = original(*args)
        write(found)
        return found

    monkeypatch.setattr(owner, method, read_then_write)


def test_an_edit_keeps_what_was_saved_between_its_read_and_its_write(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = desk.local_id("grace@example.com")
    meanwhile(monkeypatch, desk.workspace.sync.imports.store, "local_records", lambda _: import_rows(
        desk, tmp_path / "meanwhile.csv", "email,company,linkedin_username\ngrace@example.com,US Navy,ghopper\n"))
    report = desk.people.edit(RecordObject.CONTACT, grace, {"firstName": "Amazing Grace"})
    assert [(c.field, c.new) for c in report.changes] == [("firstName", "Amazing Grace")]
    stored = desk.workspace.contacts.find("grace@example.com")
    assert stored is not None
    # The import's company and profile had been overwritten by the edit's copy of the record.
    assert (stored.first_name, stored.company) == ("Amazing Grace", "US Navy")
    assert sorted(p.username for p in stored.social_profiles) == ["ADA", "ghopper"]


def test_an_edit_follows_the_record_when_its_email_changed_meanwhile(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = desk.workspace.sync.imports.store
    grace = desk.local_id("grace@example.com")

    def a_pull_renames(found: Any) -> None:
        store.save_local(RecordObject.CONTACT, grace,
                         found[grace].record.model_copy(update={"email": "grace@navy.example.com"}))

    meanwhile(monkeypatch, store, "local_records", a_pull_renames)
    desk.people.edit(RecordObject.CONTACT, grace, {"company": "Yale"})
    emails = sorted(c.email for c in desk.workspace.contacts.page(0, 100))
    assert "grace@example.com" not in emails, "the edit made a new contact under the old email"
    moved = desk.workspace.contacts.find("grace@navy.example.com")
    assert moved is not None and moved.company == "Yale"


def test_a_person_added_by_hand_never_overwrites_one_saved_meanwhile(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meanwhile(monkeypatch, desk.workspace.sync.imports, "_find_many", lambda _: import_rows(
        desk, tmp_path / "meanwhile.csv", "email,company\nhedy@example.com,Big Customer Inc\n"))
    with pytest.raises(DuplicateRecordError, match=r"hedy@example\.com is already a contact"):
        desk.people.create(RecordObject.CONTACT, "Hedy@Example.com", {"lastName": "Lamarr"})
    stored = desk.workspace.contacts.find("hedy@example.com")
    assert stored is not None and (stored.company, stored.last_name) == ("Big Customer Inc", None)
    runs = desk.workspace.sync.store.list_runs(limit=1)
    assert (runs[0].message, runs[0].status, runs[0].created) == (
        "edit of hedy@example.com", SyncRunStatus.FAILED, 0), "the refused add is recorded as failed, not created"


def test_a_merge_keeps_a_blank_picked_here_in_the_crm_and_after_the_next_sync(desk: Desk) -> None:
    desk.push_all()
    keep, other = desk.local_id("ada@example.com"), desk.local_id("ada+news@example.com")
    hubspot_keep = desk.crm_id("hubspot", "ada@example.com")
    # The kept contact has no company and the marketer keeps it so ("take other" unticked for Company).
    report = asyncio.run(desk.people.duplicates.merge(keep, other, {"lastName"}))
    assert any("hubspot" in line for line in report.merged_in_crm)
    kept = desk.hubspot._records["contacts"][hubspot_keep].properties
    assert not kept.get("company"), "HubSpot's merge filled the company the marketer kept blank"
    assert kept.get("lastname") == "King"
    for name in ("hubspot", "pipedrive"):
        asyncio.run(desk.workspace.sync.sync(name))
    merged = desk.workspace.contacts.find("ada@example.com")
    assert merged is not None and (merged.last_name, merged.company) == ("King", None)
