"""A field changed on both sides under each conflict rule, resolving manual conflicts, and undoing a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from crm_desktop.domain.models import Contact, SyncDirection
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.store.models import ConflictRule, ConflictStatus, ContactRow, SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.sync.actions import ConflictResolutionError, UndoRefused
from crm_desktop.sync.engine import SyncAlreadyRunning
from crm_desktop.sync.plan import Side
from tests.sync.conftest import SyncBench, person, scenario, values_of

EMAIL = "person1@example.com"
ORIGINAL = "Analytical Engines"


async def seed(bench: SyncBench) -> None:
    bench.save(person(1), person(2))
    result = await bench.sync()
    assert result.status is SyncRunStatus.SUCCEEDED, result.failures


async def change_both(bench: SyncBench, local: str | None, crm: str | None, newer: str) -> None:
    """Change the company on both sides; ``newer`` says which side changes last (by timestamp)."""

    async def change_crm() -> None:
        await bench.edit(bench.link(EMAIL).crm_id, {"company": crm or ""})

    if newer == "crm":
        bench.change(EMAIL, company=local)
        bench.sandbox.clock.advance(2)  # the CRM's clock is at least 2 s after the local edit
        await change_crm()
    else:
        await change_crm()
        record = await bench.crm_record(EMAIL)
        assert record is not None and record.modified_at is not None
        await asyncio.sleep(max(0.0, (record.modified_at - utcnow()).total_seconds()) + 0.002)
        assert utcnow() > record.modified_at
        bench.change(EMAIL, company=local)


@dataclass(frozen=True)
class Case:
    rule: ConflictRule
    local: str | None
    crm: str | None
    newer: str
    kept: str | None

    def __str__(self) -> str:
        return f"{self.rule.value}-local={self.local}-crm={self.crm}-{self.newer}-newer"


CASES = [
    Case(ConflictRule.LAST_WRITE_WINS, "Local Co", "CRM Co", "crm", "CRM Co"),
    Case(ConflictRule.LAST_WRITE_WINS, "Local Co", "CRM Co", "local", "Local Co"),
    Case(ConflictRule.PREFER_CRM, "Local Co", "CRM Co", "local", "CRM Co"),
    Case(ConflictRule.PREFER_LOCAL, "Local Co", "CRM Co", "crm", "Local Co"),
    Case(ConflictRule.PREFER_CRM_UNLESS_BLANK, "Local Co", "CRM Co", "local", "CRM Co"),
    Case(ConflictRule.PREFER_CRM_UNLESS_BLANK, "Local Co", None, "crm", "Local Co"),
    Case(ConflictRule.PREFER_LOCAL_UNLESS_BLANK, "Local Co", "CRM Co", "crm", "Local Co"),
    Case(ConflictRule.PREFER_LOCAL_UNLESS_BLANK, None, "CRM Co", "local", "CRM Co"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@scenario
async def test_a_field_changed_on_both_sides_follows_its_rule(hubspot: SyncBench, case: Case) -> None:
    hubspot.set_rule("company", case.rule)
    await seed(hubspot)
    await change_both(hubspot, case.local, case.crm, case.newer)

    result = await hubspot.sync()
    # Settled by the rule: counted as decided, none waits for the marketer.
    assert (result.counts["decided"], result.counts["conflicts"]) == (1, 0)
    assert hubspot.contact(EMAIL).company == case.kept
    assert await hubspot.crm_value(EMAIL, "company") == case.kept
    assert hubspot.service.conflicts() == []
    [decided] = [c for c in result.changes if c.action == "conflict"]
    assert values_of(decided) == {"company": (case.local, case.crm)}
    assert hubspot.contact("person2@example.com").company == ORIGINAL

    mark = hubspot.mark()
    again = await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert (again.counts["decided"], again.counts["conflicts"]) == (0, 0)
    assert hubspot.contact(EMAIL).company == case.kept


async def manual_conflict(bench: SyncBench) -> int:
    """A manual conflict on the company of person1; returns its id."""
    bench.set_rule("company", ConflictRule.MANUAL)
    await seed(bench)
    await change_both(bench, "Local Co", "CRM Co", "crm")
    result = await bench.sync()
    assert result.counts["conflicts"] == 1
    [conflict] = bench.service.conflicts()
    return conflict.id


@scenario
async def test_a_manual_conflict_waits_with_both_values_and_times(hubspot: SyncBench) -> None:
    conflict_id = await manual_conflict(hubspot)
    conflict = hubspot.service.conflict(conflict_id)
    assert (conflict.record_key, conflict.field) == (EMAIL, "company")
    assert (conflict.local_value, conflict.crm_value, conflict.base_value) == ("Local Co", "CRM Co", ORIGINAL)
    assert conflict.crm_id == hubspot.link(EMAIL).crm_id
    assert conflict.local_changed_at is not None and conflict.crm_changed_at is not None
    assert conflict.crm_changed_at > conflict.local_changed_at
    assert conflict.status is ConflictStatus.OPEN
    assert hubspot.service.conflict_count() == 1
    # Neither side is touched while the marketer decides, however often the sync runs.
    assert hubspot.contact(EMAIL).company == "Local Co"
    assert await hubspot.crm_value(EMAIL, "company") == "CRM Co"
    mark = hubspot.mark()
    again = await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert again.counts["conflicts"] == 0
    assert hubspot.service.conflict_count() == 1


@scenario
async def test_a_dry_run_does_not_count_a_waiting_conflict_again(hubspot: SyncBench) -> None:
    await manual_conflict(hubspot)
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"firstname": "Grace"})
    expected = [("local", "update", {"firstName": ("Ada1", "Grace")})]
    plan = await hubspot.sync(dry_run=True)
    assert [(c.side, c.action, values_of(c)) for c in plan.changes] == expected
    assert plan.counts["conflicts"] == 0
    real = await hubspot.sync()
    assert [(c.side, c.action, values_of(c)) for c in real.changes] == expected
    assert real.counts["conflicts"] == 0
    assert hubspot.service.conflict_count() == 1


@scenario
async def test_other_fields_of_a_record_in_conflict_still_sync(hubspot: SyncBench) -> None:
    await manual_conflict(hubspot)
    hubspot.change(EMAIL, first_name="Augusta")
    mark = hubspot.mark()
    await hubspot.sync()
    [write] = hubspot.writes_since(mark)
    [item] = write.body["inputs"]
    assert set(item["properties"]) - {"email"} == {"firstname"}, "a field waiting in Conflicts was pushed"
    assert await hubspot.crm_value(EMAIL, "company") == "CRM Co"
    assert await hubspot.crm_value(EMAIL, "firstName") == "Augusta"
    assert hubspot.service.conflict_count() == 1


@pytest.mark.parametrize(
    ("take", "value", "kept", "sides"),
    [
        ("crm", None, "CRM Co", {"local"}),
        ("local", None, "Local Co", {"crm"}),
        (None, "Typed Co", "Typed Co", {"local", "crm"}),
    ],
    ids=["take-crm", "take-local", "typed"],
)
@scenario
async def test_resolving_a_conflict_applies_it_to_both_sides(
    hubspot: SyncBench, take: str | None, value: str | None, kept: str, sides: set[str]
) -> None:
    conflict_id = await manual_conflict(hubspot)
    assert await hubspot.service.resolve(conflict_id, take=take, value=value) == kept

    assert hubspot.contact(EMAIL).company == kept
    assert await hubspot.crm_value(EMAIL, "company") == kept
    resolved = hubspot.service.conflict(conflict_id)
    assert resolved.status is ConflictStatus.RESOLVED
    assert resolved.resolved_value == kept
    assert hubspot.service.conflict_count() == 0
    audit = hubspot.audit_rows(f"conflict:{conflict_id}")
    assert {row.side for row in audit} == sides
    assert all(row.field == "company" and row.new_value == kept for row in audit)

    with pytest.raises(ConflictResolutionError):
        await hubspot.service.resolve(conflict_id, take="crm")
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert hubspot.contact(EMAIL).company == kept
    assert hubspot.link(EMAIL).base_values["company"] == kept


@scenario
async def test_taking_the_local_value_keeps_the_value_now_when_it_changed_since(hubspot: SyncBench) -> None:
    # Another integration's conflict on this field, resolved first, or an edit, changed the local value after the
    # conflict was recorded: "Keep local value" keeps the value the Conflicts view shows as "Here" (the value now),
    # not the stale recorded one, and gives it to the CRM.
    conflict_id = await manual_conflict(hubspot)
    hubspot.change(EMAIL, company="Newer Co")
    assert hubspot.service.local_values_now([hubspot.service.conflict(conflict_id)]) == {conflict_id: "Newer Co"}
    assert await hubspot.service.resolve(conflict_id, take="local") == "Newer Co"
    assert hubspot.contact(EMAIL).company == "Newer Co"
    assert await hubspot.crm_value(EMAIL, "company") == "Newer Co"
    resolved = hubspot.service.conflict(conflict_id)
    assert (resolved.status, resolved.resolution, resolved.resolved_value) == (ConflictStatus.RESOLVED, "local",
                                                                               "Newer Co")
    [audit] = hubspot.audit_rows(f"conflict:{conflict_id}")
    assert (audit.side, audit.field, audit.old_value, audit.new_value) == ("crm", "company", "CRM Co", "Newer Co")
    assert hubspot.link(EMAIL).base_values["company"] == "Newer Co"
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert hubspot.contact(EMAIL).company == "Newer Co"
    assert await hubspot.crm_value(EMAIL, "company") == "Newer Co"


@scenario
async def test_taking_a_local_value_blanked_since_clears_the_crm_field(hubspot: SyncBench) -> None:
    # Shown as blank "Here" now: keeping it is a decision to clear the field in the CRM too.
    conflict_id = await manual_conflict(hubspot)
    hubspot.change(EMAIL, company=None)
    assert await hubspot.service.resolve(conflict_id, take="local") is None
    assert hubspot.contact(EMAIL).company is None
    assert not await hubspot.crm_value(EMAIL, "company")
    assert hubspot.service.conflict(conflict_id).resolved_value is None
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert hubspot.contact(EMAIL).company is None
    assert not await hubspot.crm_value(EMAIL, "company")


@scenario
async def test_taking_the_local_value_of_a_record_deleted_since_says_so(hubspot: SyncBench) -> None:
    conflict_id = await manual_conflict(hubspot)
    local_id = hubspot.local_id(EMAIL)
    with hubspot.store.db.session() as session:
        session.delete(session.get(ContactRow, local_id))
    mark = hubspot.mark()
    with pytest.raises(ConflictResolutionError, match=r"no longer in the local store.*no local value of company"):
        await hubspot.service.resolve(conflict_id, take="local")
    assert hubspot.writes_since(mark) == []
    assert await hubspot.crm_value(EMAIL, "company") == "CRM Co"
    assert hubspot.service.conflict(conflict_id).status is ConflictStatus.OPEN


@scenario
async def test_an_edit_saved_while_the_crm_answers_a_kept_local_value_leaves_the_conflict_open(
    hubspot: SyncBench,
) -> None:
    # The value kept is read before the CRM is written and read again, the record held, in the transaction that
    # records the resolution: an edit landing in between is not overwritten, nor recorded as the decision.
    conflict_id = await manual_conflict(hubspot)
    hubspot.change(EMAIL, company="Newer Co")
    hubspot.sandbox.config.latency_ms = 600
    resolving = asyncio.ensure_future(hubspot.service.resolve(conflict_id, take="local"))
    await asyncio.sleep(0.25)
    assert not resolving.done()
    hubspot.change(EMAIL, company="Newest Co")
    with pytest.raises(ConflictResolutionError, match=r"changed here to 'Newest Co'.*stays open"):
        await resolving
    hubspot.sandbox.config.latency_ms = 0
    assert hubspot.contact(EMAIL).company == "Newest Co"
    conflict = hubspot.service.conflict(conflict_id)
    assert conflict.status is ConflictStatus.OPEN and conflict.resolved_at is None
    assert hubspot.audit_rows(f"conflict:{conflict_id}") == []
    # Decided again, the value now wins.
    assert await hubspot.service.resolve(conflict_id, take="local") == "Newest Co"
    assert await hubspot.crm_value(EMAIL, "company") == "Newest Co"


@scenario
async def test_a_typed_blank_clears_the_field_on_both_sides(hubspot: SyncBench) -> None:
    conflict_id = await manual_conflict(hubspot)
    assert await hubspot.service.resolve(conflict_id, value="  ") is None
    assert hubspot.contact(EMAIL).company is None
    assert not await hubspot.crm_value(EMAIL, "company")
    mark = hubspot.mark()
    await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert hubspot.contact(EMAIL).company is None


@scenario
async def test_resolving_keeps_other_local_edits_waiting_to_be_pushed(hubspot: SyncBench) -> None:
    conflict_id = await manual_conflict(hubspot)
    hubspot.change(EMAIL, first_name="Augusta")  # edited after the conflict, not pushed yet
    await hubspot.service.resolve(conflict_id, take="crm")
    await hubspot.sync()
    assert await hubspot.crm_value(EMAIL, "firstName") == "Augusta"
    assert await hubspot.crm_value(EMAIL, "company") == "CRM Co"


@scenario
async def test_undo_restores_the_previous_values_on_both_sides(hubspot: SyncBench) -> None:
    await seed(hubspot)
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"firstname": "Grace"})  # pulled by the run
    hubspot.change("person2@example.com", company="Difference Engines")  # pushed by the run
    hubspot.save(person(3))  # created in the CRM by the run
    run = await hubspot.sync()
    assert hubspot.contact(EMAIL).first_name == "Grace"
    assert await hubspot.crm_value("person2@example.com", "company") == "Difference Engines"
    assert run.counts["created"] == 1

    report = await hubspot.service.undo(run.run_id or 0)
    assert hubspot.contact(EMAIL).first_name == "Ada1"
    assert await hubspot.crm_value(EMAIL, "firstName") == "Ada1"
    assert await hubspot.crm_value("person2@example.com", "company") == ORIGINAL
    assert hubspot.contact("person2@example.com").company == ORIGINAL
    assert any("person3@example.com" in kept for kept in report.kept), report.kept
    assert await hubspot.crm_record("person3@example.com") is not None
    undo_run, _log = hubspot.service.run(report.run_id)
    assert undo_run.status is SyncRunStatus.SUCCEEDED
    assert {(row.entity_id, row.field) for row in hubspot.audit_rows("undo")} >= {
        (str(hubspot.local_id(EMAIL)), "firstName"),
        (str(hubspot.local_id("person2@example.com")), "company"),
    }

    # The undone values stay: the next sync neither redoes the run nor writes anything.
    mark = hubspot.mark()
    after = await hubspot.sync()
    assert hubspot.writes_since(mark) == []
    assert after.counts["updated"] == after.counts["created"] == 0
    assert hubspot.contact(EMAIL).first_name == "Ada1"
    assert await hubspot.crm_value("person2@example.com", "company") == ORIGINAL


@scenario
async def test_undo_takes_back_a_push_into_fields_that_were_blank_in_the_crm(hubspot: SyncBench) -> None:
    hubspot.save(person(1, company=None, phone=None))
    await hubspot.sync()
    assert await hubspot.crm_value(EMAIL, "company") is None
    hubspot.change(EMAIL, company="FooCo")
    run = await hubspot.sync()
    assert await hubspot.crm_value(EMAIL, "company") == "FooCo"

    report = await hubspot.service.undo(run.run_id or 0)
    # Every value the run wrote was blank before: it had been taken for a contact the run created, and kept.
    assert not report.kept, report.kept
    assert await hubspot.crm_value(EMAIL, "company") is None
    assert hubspot.contact(EMAIL).company is None


@scenario
async def test_undo_of_a_pull_into_blank_local_fields_sticks(hubspot: SyncBench) -> None:
    hubspot.save(person(1, company=None))
    await hubspot.sync()
    # A salesperson fills the blank company and changes the last name; the run pulls both.
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"company": "NewCo", "lastname": "Byron"})
    run = await hubspot.sync()
    assert (hubspot.contact(EMAIL).company, hubspot.contact(EMAIL).last_name) == ("NewCo", "Byron")

    report = await hubspot.service.undo(run.run_id or 0)
    assert (hubspot.contact(EMAIL).company, hubspot.contact(EMAIL).last_name) == (None, "Lovelace")
    # The CRM keeps its company (a blank does not wipe there), the report says so, and the next sync does not
    # pull it back.
    assert await hubspot.crm_value(EMAIL, "company") == "NewCo"
    assert report.kept == [f"{EMAIL}: company is blank here again; {hubspot.integration.name} keeps 'NewCo' (an undo "
                           "sends no blank the run did not write there)"]
    plan = await hubspot.sync(dry_run=True)
    assert [c for c in plan.plan.changes if c.action.value != "unchanged"] == [], plan.plan.changes
    await hubspot.sync()
    assert hubspot.contact(EMAIL).company is None


@scenario
async def test_undo_of_a_run_that_pulled_new_contacts_keeps_them(hubspot: SyncBench) -> None:
    assert isinstance(hubspot.sandbox, HubSpotSandbox)
    hubspot.sandbox.seed_contacts([{"email": "crm.only@example.com", "firstname": "Charles"}])
    run = await hubspot.sync()
    assert run.counts["created"] == 1
    report = await hubspot.service.undo(run.run_id or 0)
    assert hubspot.workspace.contacts.find("crm.only@example.com") is not None
    assert any("crm.only@example.com" in kept for kept in report.kept), report.kept
    assert report.restored_local == report.restored_crm == 0
    assert hubspot.link("crm.only@example.com", RecordObject.CONTACT).crm_id


@scenario
async def test_undo_is_refused_while_a_sync_of_the_integration_runs_in_this_process(hubspot: SyncBench) -> None:
    await seed(hubspot)
    [previous] = hubspot.service.runs()
    hubspot.save(person(3))
    hubspot.sandbox.config.latency_ms = 5  # keeps the sync in flight
    running = asyncio.ensure_future(hubspot.sync())
    await asyncio.sleep(0)  # the sync starts
    assert hubspot.service.is_running(hubspot.name)
    with pytest.raises(SyncAlreadyRunning):
        await hubspot.service.undo(previous.id)
    result = await running
    assert result.status is SyncRunStatus.SUCCEEDED
    assert [run.direction for run in hubspot.service.runs()] == ["both", "both"]


@scenario
async def test_undo_of_a_pull_counts_what_it_wrote_record_by_record(hubspot: SyncBench) -> None:
    await seed(hubspot)
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"firstname": "Grace"})
    pulled = await hubspot.sync(SyncDirection.PULL)
    assert hubspot.contact(EMAIL).first_name == "Grace"
    mark = hubspot.mark()

    report = await hubspot.service.undo(pulled.run_id or 0, SyncTrigger.CLI)
    # The run wrote one local value; the CRM is set to it too so both sides agree, and said so apart.
    assert (report.restored_local, report.restored_crm, report.aligned_crm) == (1, 0, 1)
    assert [(c.email, c.side, values_of(c)) for c in report.plan.changes] == [
        (EMAIL, Side.CRM, {"firstName": ("Grace", "Ada1")}),
        (EMAIL, Side.LOCAL, {"firstName": ("Grace", "Ada1")}),
    ]
    assert len(hubspot.writes_since(mark)) == 1
    undo_run, log = hubspot.service.run(report.run_id)
    assert (undo_run.trigger, undo_run.direction, undo_run.updated) == (SyncTrigger.CLI, "undo", 1)
    assert [(row.record_key, row.outcome) for row in log] == [(EMAIL, RecordOutcome.UPDATED)]
    assert log[0].message == f"undo of run {pulled.run_id}: firstName (local), firstName (CRM)"


@scenario
async def test_a_run_is_undone_once(hubspot: SyncBench) -> None:
    await seed(hubspot)
    hubspot.change(EMAIL, company="Difference Engines")
    run = await hubspot.sync()
    await hubspot.service.undo(run.run_id or 0)
    mark = hubspot.mark()
    with pytest.raises(UndoRefused, match=f"run {run.run_id} was already undone"):
        await hubspot.service.undo(run.run_id or 0)
    assert hubspot.writes_since(mark) == []
    assert [r.direction for r in hubspot.service.runs()].count("undo") == 1


@scenario
async def test_undo_refuses_to_overwrite_a_later_conflict_resolution_unless_forced(hubspot: SyncBench) -> None:
    await seed(hubspot)
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"company": "CRM Co"})
    older = await hubspot.sync()  # pulls the company
    assert hubspot.contact(EMAIL).company == "CRM Co"
    hubspot.set_rule("company", ConflictRule.MANUAL)
    await change_both(hubspot, "Local Co", "Other CRM Co", "crm")
    await hubspot.sync()
    [conflict] = hubspot.service.conflicts()
    await hubspot.service.resolve(conflict.id, take="local")
    before = hubspot.snapshot()
    mark = hubspot.mark()

    with pytest.raises(UndoRefused) as refused:
        await hubspot.service.undo(older.run_id or 0)
    assert f"{EMAIL} company (locally): the run left 'CRM Co', now 'Local Co'" in str(refused.value)
    assert "--force" in str(refused.value)
    assert hubspot.writes_since(mark) == []
    assert hubspot.snapshot() == before, "a refused undo wrote something"

    report = await hubspot.service.undo(older.run_id or 0, force=True)
    assert str(report.overridden[0]).startswith(f"{EMAIL} company (locally)")
    assert hubspot.contact(EMAIL).company == ORIGINAL
    assert await hubspot.crm_value(EMAIL, "company") == ORIGINAL


@scenario
async def test_a_pulled_page_whose_write_fails_is_not_counted(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(hubspot)
    await hubspot.edit(hubspot.link(EMAIL).crm_id, {"firstname": "Grace"})

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hubspot.store, "apply_record_writes", disk_full)
    with pytest.raises(OSError):
        await hubspot.sync()
    [run] = hubspot.service.runs(limit=1)
    assert run.status is SyncRunStatus.FAILED
    assert (run.updated, run.created) == (0, 0), "the run counted a page that was rolled back"
    assert hubspot.contact(EMAIL).first_name == "Ada1"


@scenario
async def test_resolving_keeps_an_edit_saved_while_the_crm_answered(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    conflict_id = await manual_conflict(hubspot)
    store = hubspot.store
    original = store.links_for_local

    def read_then_edit(*args: Any) -> Any:
        # Another window or desktop saves the person after the resolve read it, before it writes.
        monkeypatch.setattr(store, "links_for_local", original)
        hubspot.change(EMAIL, phone="+14155550199")
        return original(*args)

    monkeypatch.setattr(store, "links_for_local", read_then_edit)
    await hubspot.service.resolve(conflict_id, take="crm")
    stored = hubspot.contact(EMAIL)
    assert (stored.company, stored.phone) == ("CRM Co", "+14155550199"), "the resolve wrote its stale copy back"
    # The edit saved meanwhile is still pushed by the next sync.
    await hubspot.sync()
    assert await hubspot.crm_value(EMAIL, "phone") == "+14155550199"


@scenario
async def test_a_pulled_person_an_import_saved_meanwhile_is_merged_not_inserted_twice(
    hubspot: SyncBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox: Any = hubspot.sandbox
    sandbox.seed_contacts([{"email": "nina@example.com", "firstname": "Nina", "company": "CRM Co"}])
    store = hubspot.store
    original = store.apply_record_writes
    calls: list[int] = []

    def import_lands_first(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # an import beside the sync saves the same person just before the page is written
            hubspot.save(Contact(email="nina@example.com", phone="+14155550123"))
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "apply_record_writes", import_lands_first)
    result = await hubspot.sync()
    assert result.status is SyncRunStatus.SUCCEEDED, result.message
    stored = hubspot.contact("nina@example.com")
    assert (stored.first_name, stored.company, stored.phone) == ("Nina", "CRM Co", "+14155550123")
    assert hubspot.link("nina@example.com").crm_id



@scenario
async def test_a_first_link_fills_blank_local_fields_from_the_crm(hubspot: SyncBench) -> None:
    """A person imported by email alone and found in the CRM: the fields blank here take the CRM's values, whatever
    the rule (the local record is the newer one, and last write wins would have kept the blanks for ever)."""
    sandbox: Any = hubspot.sandbox
    sandbox.seed_contacts([{"email": "nina@example.com", "firstname": "Nina", "company": "CRM Co",
                            "phone": "+14155550100"}])
    hubspot.save(Contact(email="nina@example.com", phone="+14155550123"))
    await hubspot.sync()
    stored = hubspot.contact("nina@example.com")
    # Both held a phone: the rule decides (last write wins: the local save, the newer).
    assert (stored.first_name, stored.company, stored.phone) == ("Nina", "CRM Co", "+14155550123")
    assert await hubspot.crm_value("nina@example.com", "phone") == "+14155550123"
    again = await hubspot.sync(dry_run=True)
    assert [c for c in again.plan.changes if c.action.value != "unchanged"] == []


#: How a salesperson sets a record's email in each CRM's own shape.
EMAIL_EDIT = {"hubspot": lambda email: {"email": email}, "salesforce": lambda email: {"Email": email},
              "pipedrive": lambda email: {"emails": [{"value": email, "primary": True}]}}


@scenario
async def test_undo_of_a_pulled_email_change_puts_the_email_back_in_the_crm_too(any_crm: SyncBench) -> None:
    any_crm.save(Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace"))
    await any_crm.sync()
    crm_id = any_crm.link("ada@example.com").crm_id
    await any_crm.edit(crm_id, EMAIL_EDIT[any_crm.provider.value]("new.ada@example.com"))
    pulled = await any_crm.sync()
    assert any_crm.workspace.contacts.find("new.ada@example.com") is not None
    report = await any_crm.service.undo(pulled.run_id or 0)
    assert any_crm.workspace.contacts.find("ada@example.com") is not None
    assert await any_crm.crm_value("ada@example.com", "email") == "ada@example.com"
    assert report.restored_crm + report.aligned_crm == 1
    after = await any_crm.sync()
    assert (after.counts["created"], after.counts["updated"]) == (0, 0)
    assert any_crm.workspace.contacts.find("ada@example.com") is not None
    assert any_crm.link("ada@example.com").crm_id == crm_id
