"""A local yes/no column pushed to a Salesforce checkbox goes as a JSON boolean; a value that is not yes/no fails only
its own record (named, unsent), and the next sync finds nothing to change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_desktop.domain.models import Provider, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from crm_desktop.providers.contract import CrmField
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.store.models import FieldDirection, SyncRunStatus
from crm_desktop.sync.engine import SyncResult
from crm_desktop.sync.mapping import FieldMapping
from crm_desktop.sync.plan import ChangeAction
from tests.sync.conftest import SyncBench, open_bench, person, scenario


def refused_before(result: SyncResult) -> list[str]:
    """The records a run did not send because the CRM refused them unchanged before (each listed as skipped)."""
    return sorted(c.email for c in result.changes
                  if c.action is ChangeAction.SKIP and c.reason.startswith("refused by "))


def map_custom(bench: SyncBench, pairs: dict[str, str]) -> None:
    """Map local custom fields to these CRM fields, both ways."""
    mappings = [m for m in bench.mappings() if m.local_field not in pairs and m.crm_field not in pairs.values()]
    mappings += [FieldMapping(local, crm, FieldDirection.TWO_WAY) for local, crm in pairs.items()]
    bench.service.save_mappings(bench.integration, RecordObject.CONTACT, mappings)



async def push_to_new_yes_no_field(bench: SyncBench, field_type: str, mapped_as: str,
                                   values: dict[int, str]) -> CrmField:
    """Create a ``newsletter`` yes/no field through the adapter, map ``custom.newsletter`` to it (by ``mapped_as``),
    save person N with each of ``values`` and push them: all created. The field made."""
    adapter = bench.workspace.crm.adapter_for(bench.integration)
    try:
        made = await adapter.create_field(RecordObject.CONTACT, "newsletter", "Newsletter", field_type)
    finally:
        await adapter.aclose()
    map_custom(bench, {"custom.newsletter": mapped_as})
    bench.save(*(person(n, custom_fields={"newsletter": text}) for n, text in values.items()))
    pushed = await bench.sync(SyncDirection.PUSH)
    assert pushed.status is SyncRunStatus.SUCCEEDED and pushed.counts["created"] == len(values), pushed.failures
    return made


def stored_opt_outs(bench: SyncBench) -> dict[str, Any]:
    """``HasOptedOutOfEmail`` of every Contact the Salesforce sandbox holds, by email."""
    assert isinstance(bench.sandbox, SalesforceSandbox)
    return {str(r.get("Email")): r.get("HasOptedOutOfEmail") for r in bench.sandbox.records["Contact"].values()}


def sent_opt_outs(bench: SyncBench, mark: int) -> list[Any]:
    """The ``HasOptedOutOfEmail`` values of the records written since ``mark``, as they went on the wire."""
    return [
        record["HasOptedOutOfEmail"]
        for request in bench.writes_since(mark)
        if request.path.endswith("/composite/sobjects") and isinstance(request.body, dict)
        for record in request.body.get("records", [])
        if "HasOptedOutOfEmail" in record
    ]


@scenario
async def test_a_local_yes_no_column_lands_in_a_salesforce_checkbox_and_a_bad_value_fails_alone(
    data_dir: Path,
) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        map_custom(bench, {"custom.opt_out": "HasOptedOutOfEmail"})
        # As a marketer's file has them: true/false in any case, yes/no, 1/0; and one that is neither.
        values = {1: "true", 2: "FALSE", 3: "yes", 4: "0", 5: "maybe", 6: "True", 7: "no", 8: "1"}
        bench.save(*(person(n, custom_fields={"opt_out": text}) for n, text in values.items()))
        mark = bench.mark()

        first = await bench.sync(SyncDirection.BOTH)

        # The record holding "maybe" fails alone, named with its field and the reason, and is not sent.
        assert [(f.email, f.category, f.message) for f in first.failures] == [(
            "person5@example.com", ErrorCategory.VALIDATION,
            "Contact person5@example.com: Email Opt Out: 'maybe' is not yes/no",
        )]
        assert first.counts["created"] == 7 and first.counts["failed"] == 1, first.counts
        # The others land, each as a JSON boolean, in one request (no parse error of the whole batch to split).
        sent = sent_opt_outs(bench, mark)
        assert sorted(sent) == sorted([True, False, True, False, True, False, True]) and all(
            isinstance(value, bool) for value in sent)
        creates = [r for r in bench.writes_since(mark) if r.path.endswith("/composite/sobjects")]
        assert len(creates) == 1 and all(r.status == 200 for r in creates)
        expected = {f"person{n}@example.com": text.lower() in {"true", "yes", "1"} for n, text in values.items()}
        del expected["person5@example.com"]
        assert stored_opt_outs(bench) == expected

        # Pulled back, a JSON boolean reads as the local text it came from: nothing to change either way.
        mark = bench.mark()
        after = await bench.sync(SyncDirection.BOTH)
        assert after.status is not SyncRunStatus.FAILED, after.failures
        assert (after.counts["created"], after.counts["updated"]) == (0, 0), after.changes
        # The refused record is not sent again as it is: skipped, with the refusal, rather than failing again.
        assert after.failures == [] and refused_before(after) == ["person5@example.com"]
        assert sent_opt_outs(bench, mark) == []
        assert {n: bench.contact(f"person{n}@example.com").custom_fields["opt_out"] for n in values} == values

        # A salesperson edits other fields of every landed record in Salesforce: the pull reads each checkbox as
        # the yes/no the local text says ("yes", "1", "FALSE"), so none is pulled over, nor sent back.
        landed = [n for n in values if n != 5]
        for n in landed:
            await bench.edit(bench.link(f"person{n}@example.com").crm_id, {"FirstName": f"Edited{n}"})
        mark = bench.mark()
        edited = await bench.sync(SyncDirection.BOTH)
        assert edited.status is not SyncRunStatus.FAILED, edited.failures
        assert {n: bench.contact(f"person{n}@example.com").custom_fields["opt_out"] for n in values} == values
        assert {n: bench.contact(f"person{n}@example.com").first_name for n in landed} == {
            n: f"Edited{n}" for n in landed}
        assert sent_opt_outs(bench, mark) == []
    finally:
        bench.workspace.close()


@scenario
async def test_salesforce_checkbox_and_date_fields_made_by_the_app_take_a_files_values(data_dir: Path) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        adapter = bench.workspace.crm.adapter_for(bench.integration)
        try:
            flag = await adapter.create_field(RecordObject.CONTACT, "newsletter", "Newsletter", "boolean")
            day = await adapter.create_field(RecordObject.CONTACT, "signup", "Signup", "date")
        finally:
            await adapter.aclose()
        assert (flag.name, flag.type, day.name, day.type) == ("newsletter__c", "boolean", "signup__c", "date")
        map_custom(bench, {"custom.newsletter": "Newsletter", "custom.signup": "Signup"})
        rows = {1: ("yes", "2026-12-05"), 2: ("0", "05/12/2026"), 3: ("TRUE", "")}
        bench.save(*(person(n, custom_fields={"newsletter": flag_text, "signup": day_text})
                     for n, (flag_text, day_text) in rows.items()))

        pushed = await bench.sync(SyncDirection.PUSH)

        # A date written day or month first is not guessed: that record fails alone, named, and is not sent.
        assert [(f.email, f.message) for f in pushed.failures] == [(
            "person2@example.com", "Contact person2@example.com: Signup: '05/12/2026' is not a date (YYYY-MM-DD)")]
        assert pushed.counts["created"] == 2, pushed.counts
        assert isinstance(bench.sandbox, SalesforceSandbox)
        stored = {str(r.get("Email")): (r.get("newsletter__c"), r.get("signup__c"))
                  for r in bench.sandbox.records["Contact"].values() if r.get("Email", "").startswith("person")}
        assert {email: (held, str(day) if day else None) for email, (held, day) in stored.items()} == {
            "person1@example.com": (True, "2026-12-05"), "person3@example.com": (True, None)}

        again = await bench.sync(SyncDirection.BOTH)
        assert (again.counts["created"], again.counts["updated"]) == (0, 0), again.changes
        assert {n: (bench.contact(f"person{n}@example.com").custom_fields.get("newsletter"),
                    bench.contact(f"person{n}@example.com").custom_fields.get("signup", "")) for n in rows} == rows
    finally:
        bench.workspace.close()


@scenario
async def test_a_local_yes_no_column_lands_in_a_pipedrive_yes_no_field_made_by_the_app(data_dir: Path) -> None:
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        # A boolean field as the app creates it ("Create missing fields"): an enum with the options Yes and No.
        values = {1: "true", 2: "no", 3: "1", 4: "False"}
        made = await push_to_new_yes_no_field(bench, "boolean", "Newsletter", values)
        assert (made.type, made.options) == ("enum", ("Yes", "No"))
        assert isinstance(bench.sandbox, PipedriveSandbox)
        field = next(f for f in bench.sandbox.person_fields if f.key == made.name)
        yes, no = field.option_id("Yes"), field.option_id("No")
        stored = {
            n: next(p for p in bench.sandbox.persons.values()
                    if any(e["value"] == f"person{n}@example.com" for e in p.emails)).custom_fields.get(made.name)
            for n in values
        }
        assert stored == {1: yes, 2: no, 3: yes, 4: no}

        # A salesperson renames one person and ticks Yes for another in Pipedrive. The pull reads the option ids
        # as yes/no: the local values the CRM still holds stay as the marketer wrote them, the ticked one is "true".
        await bench.edit(bench.link("person1@example.com").crm_id, {"name": "Renamed One"})
        await bench.edit(bench.link("person2@example.com").crm_id, {"custom_fields": {made.name: yes}})
        pulled = await bench.sync(SyncDirection.BOTH)

        assert pulled.status is SyncRunStatus.SUCCEEDED, pulled.failures
        assert {n: bench.contact(f"person{n}@example.com").custom_fields["newsletter"] for n in values} == {
            1: "true", 2: "true", 3: "1", 4: "False"}
        assert bench.contact("person1@example.com").first_name == "Renamed"
        record = await bench.crm_record("person2@example.com")
        assert record is not None and record.fields[made.name] is True
    finally:
        bench.workspace.close()


@scenario
async def test_yes_no_text_reaches_a_hubspot_bool_property_as_true_or_false(hubspot: SyncBench) -> None:
    values = {1: "True", 2: "no", 3: "1", 4: "yes"}
    made = await push_to_new_yes_no_field(hubspot, "bool", "newsletter", values)
    assert made.type == "bool"
    assert isinstance(hubspot.sandbox, HubSpotSandbox)
    stored = {n: hubspot.sandbox._records["contacts"][hubspot.link(f"person{n}@example.com").crm_id]
              .properties.get("newsletter") for n in values}
    assert stored == {1: "true", 2: "false", 3: "true", 4: "true"}

    # A salesperson edits each contact's first name in HubSpot: the pull reads the property's "true"/"false" as the
    # yes/no the local text says, so the marketer's "True", "no", "1", "yes" stay as they are.
    for n in values:
        await hubspot.edit(hubspot.link(f"person{n}@example.com").crm_id, {"firstname": f"Edited{n}"})
    edited = await hubspot.sync(SyncDirection.BOTH)
    assert edited.status is SyncRunStatus.SUCCEEDED, edited.failures
    assert {n: hubspot.contact(f"person{n}@example.com").first_name for n in values} == {
        n: f"Edited{n}" for n in values}
    assert {n: hubspot.contact(f"person{n}@example.com").custom_fields["newsletter"] for n in values} == values


def stored_meetings(bench: SyncBench) -> dict[str, Any]:
    """``meeting__c`` of every person the Salesforce sandbox holds, by email."""
    assert isinstance(bench.sandbox, SalesforceSandbox)
    return {str(r["Email"]): r.get("meeting__c") for r in bench.sandbox.records["Contact"].values()
            if str(r.get("Email", "")).startswith("person")}


@scenario
async def test_a_files_date_times_land_in_a_salesforce_datetime_field_as_instants_and_stay_as_written(
    data_dir: Path, berlin: None
) -> None:
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        adapter = bench.workspace.crm.adapter_for(bench.integration)
        try:
            made = await adapter.create_field(RecordObject.CONTACT, "meeting", "Meeting", "datetime")
        finally:
            await adapter.aclose()
        assert (made.name, made.type) == ("meeting__c", "datetime")
        map_custom(bench, {"custom.meeting": "Meeting"})
        # As a file has them: no zone (the desktop's, Berlin), seconds or not, a fraction, an offset, Z, a date alone
        # (local midnight), a summer time; and one that is no date and time at all.
        values = {1: "2026-12-03T10:00", 2: "2026-12-03 10:00:00", 3: "2026-12-03T10:00:00.250+02:00",
                  4: "2026-07-01 08:30", 5: "2026-12-03", 6: "tomorrow", 7: "2026-12-03T09:00Z"}
        bench.save(*(person(n, custom_fields={"meeting": text}) for n, text in values.items()))
        mark = bench.mark()

        pushed = await bench.sync(SyncDirection.PUSH)

        # The record holding "tomorrow" fails alone, named with its field and the reason, and is not sent.
        assert [(f.email, f.category, f.message) for f in pushed.failures] == [(
            "person6@example.com", ErrorCategory.VALIDATION,
            "Contact person6@example.com: Meeting: 'tomorrow' is not a date and time (YYYY-MM-DD hh:mm, a zone "
            "optional)",
        )]
        assert pushed.counts["created"] == 6, pushed.counts
        # The others go in UTC, in one request that Salesforce takes whole.
        creates = [r for r in bench.writes_since(mark) if r.path.endswith("/composite/sobjects")]
        assert len(creates) == 1 and creates[0].status == 200
        assert isinstance(creates[0].body, dict)
        sent = {record["Email"]: record["meeting__c"] for record in creates[0].body["records"]}
        assert sent["person1@example.com"] == "2026-12-03T09:00:00.000Z"
        assert stored_meetings(bench) == {
            "person1@example.com": datetime(2026, 12, 3, 9, tzinfo=UTC),
            "person2@example.com": datetime(2026, 12, 3, 9, tzinfo=UTC),
            "person3@example.com": datetime(2026, 12, 3, 8, 0, 0, 250_000, tzinfo=UTC),
            "person4@example.com": datetime(2026, 7, 1, 6, 30, tzinfo=UTC),
            "person5@example.com": datetime(2026, 12, 2, 23, tzinfo=UTC),
            "person7@example.com": datetime(2026, 12, 3, 9, tzinfo=UTC),
        }

        # A salesperson edits the first name of every landed record in Salesforce. The pull reads each date-time
        # (``2026-12-03T09:00:00.000+0000``) as the instant the local text names: the text stays as the marketer
        # wrote it, with no audit of it, and nothing goes back.
        landed = [n for n in values if n != 6]
        for n in landed:
            await bench.edit(bench.link(f"person{n}@example.com").crm_id, {"FirstName": f"Edited{n}"})
        mark = bench.mark()
        edited = await bench.sync(SyncDirection.BOTH)

        assert edited.status is not SyncRunStatus.FAILED, edited.failures
        assert {n: bench.contact(f"person{n}@example.com").first_name for n in landed} == {
            n: f"Edited{n}" for n in landed}
        assert {n: bench.contact(f"person{n}@example.com").custom_fields["meeting"] for n in values} == values
        assert [(row.entity_id, row.field, row.new_value) for row in bench.audit_rows()
                if row.run_id == edited.run_id and "meeting" in row.field.lower()] == []
        assert not [r for r in bench.writes_since(mark) if r.path.endswith("/composite/sobjects")
                    and "meeting__c" in str(r.body)]

        # The marketer rewrites one time in another form naming the same instant: the org holds it already, so
        # the push writes nothing.
        bench.save(bench.contact("person1@example.com").model_copy(
            update={"custom_fields": {"meeting": "2026-12-03T09:00:00Z"}}))
        mark = bench.mark()
        same = await bench.sync(SyncDirection.PUSH)
        assert same.failures == [] and refused_before(same) == ["person6@example.com"]
        assert (same.counts["unchanged"], same.counts["updated"]) == (1, 0), same.counts
        assert not [r for r in bench.writes_since(mark) if r.path.endswith("/composite/sobjects")], same.changes
    finally:
        bench.workspace.close()


def hubspot_stored(bench: SyncBench, *names: str) -> dict[str, tuple[Any, ...]]:
    """These properties of every person the HubSpot sandbox holds, by email."""
    assert isinstance(bench.sandbox, HubSpotSandbox)
    return {str(r.properties.get("email")): tuple(r.properties.get(name) for name in names)
            for r in bench.sandbox._records["contacts"].values()
            if str(r.properties.get("email", "")).startswith("person")}


@scenario
async def test_a_files_dates_and_date_times_land_in_hubspot_properties_as_on_salesforce_and_stay_as_written(
    berlin: None, hubspot: SyncBench
) -> None:
    adapter = hubspot.workspace.crm.adapter_for(hubspot.integration)
    try:
        meeting = await adapter.create_field(RecordObject.CONTACT, "meeting", "Meeting", "datetime")
        signup = await adapter.create_field(RecordObject.CONTACT, "signup", "Signup", "date")
    finally:
        await adapter.aclose()
    assert (meeting.type, signup.type) == ("datetime", "date")
    map_custom(hubspot, {"custom.meeting": "meeting", "custom.signup": "signup"})
    # As a file has them: no zone (the desktop's, Berlin, where HubSpot would read UTC), seconds or not, a fraction,
    # an offset, Z, a date alone (local midnight), a summer time; one that is no date and time, and one date written
    # day first (not guessed).
    times = {1: "2026-12-03T10:00", 2: "2026-12-03 10:00:00", 3: "2026-12-03T10:00:00.250+02:00",
             4: "2026-07-01 08:30", 5: "2026-12-03", 6: "tomorrow", 7: "2026-12-03T09:00Z", 8: "2026-12-03T10:00"}
    days = {n: f"2026-12-0{n}" for n in times} | {8: "05/12/2026"}
    hubspot.save(*(person(n, custom_fields={"meeting": times[n], "signup": days[n]}) for n in times))
    mark = hubspot.mark()

    pushed = await hubspot.sync(SyncDirection.PUSH)

    # The two records holding what their property cannot take fail alone, named with the field and the reason.
    assert sorted((f.email, f.category, f.message) for f in pushed.failures) == [
        ("person6@example.com", ErrorCategory.VALIDATION,
         "person6@example.com: Meeting: 'tomorrow' is not a date and time (YYYY-MM-DD hh:mm, a zone optional)"),
        ("person8@example.com", ErrorCategory.VALIDATION,
         "person8@example.com: Signup: '05/12/2026' is not a date (YYYY-MM-DD)"),
    ]
    assert pushed.counts["created"] == 6, pushed.counts
    # The others go in UTC, in one request HubSpot takes whole; the refused ones are not sent.
    upserts = [r for r in hubspot.writes_since(mark) if r.path.endswith("/contacts/batch/upsert")]
    assert len(upserts) == 1 and upserts[0].status == 200, [(r.path, r.status) for r in upserts]
    assert isinstance(upserts[0].body, dict)
    sent = {item["id"]: item["properties"] for item in upserts[0].body["inputs"]}
    assert "person6@example.com" not in sent and "person8@example.com" not in sent
    assert sent["person1@example.com"] == {**sent["person1@example.com"], "meeting": "2026-12-03T09:00:00.000Z",
                                           "signup": "2026-12-01"}
    assert hubspot_stored(hubspot, "meeting", "signup") == {
        "person1@example.com": ("2026-12-03T09:00:00.000Z", "2026-12-01"),
        "person2@example.com": ("2026-12-03T09:00:00.000Z", "2026-12-02"),
        "person3@example.com": ("2026-12-03T08:00:00.250Z", "2026-12-03"),
        "person4@example.com": ("2026-07-01T06:30:00.000Z", "2026-12-04"),
        "person5@example.com": ("2026-12-02T23:00:00.000Z", "2026-12-05"),
        "person7@example.com": ("2026-12-03T09:00:00.000Z", "2026-12-07"),
    }

    # A salesperson edits the first name of every landed contact in HubSpot. The pull reads each date-time
    # (``2026-12-03T09:00:00.000Z``) as the instant the local text names and each date as the same date: the texts
    # stay as the marketer wrote them, with no audit of them, and nothing goes back.
    landed = [n for n in times if n not in (6, 8)]
    for n in landed:
        await hubspot.edit(hubspot.link(f"person{n}@example.com").crm_id, {"firstname": f"Edited{n}"})
    mark = hubspot.mark()
    edited = await hubspot.sync(SyncDirection.BOTH)

    assert edited.status is not SyncRunStatus.FAILED, edited.failures
    assert {n: hubspot.contact(f"person{n}@example.com").first_name for n in landed} == {
        n: f"Edited{n}" for n in landed}
    assert {n: (hubspot.contact(f"person{n}@example.com").custom_fields["meeting"],
                hubspot.contact(f"person{n}@example.com").custom_fields["signup"]) for n in times} == {
        n: (times[n], days[n]) for n in times}
    assert [(row.entity_id, row.field, row.new_value) for row in hubspot.audit_rows()
            if row.run_id == edited.run_id and ("meeting" in row.field.lower() or "signup" in row.field.lower())] == []
    assert not [r for r in hubspot.writes_since(mark) if "meeting" in str(r.body) or "signup" in str(r.body)]
    assert edited.failures == [] and refused_before(edited) == ["person6@example.com", "person8@example.com"]


@scenario
async def test_a_files_dates_land_in_a_pipedrive_date_field_made_by_the_app_and_a_bad_one_fails_alone(
    data_dir: Path,
) -> None:
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        adapter = bench.workspace.crm.adapter_for(bench.integration)
        try:
            made = await adapter.create_field(RecordObject.CONTACT, "signup", "Signup", "date")
        finally:
            await adapter.aclose()
        assert made.type == "date"
        map_custom(bench, {"custom.signup": "Signup"})
        days = {1: "2026-12-05", 2: "05/12/2026", 3: "2026-12-07", 4: "2026-12-05T10:00"}
        bench.save(*(person(n, custom_fields={"signup": text}) for n, text in days.items()))
        mark = bench.mark()

        pushed = await bench.sync(SyncDirection.PUSH)

        # A date written day first, or with a time, is not guessed: each of those records fails alone, unsent.
        assert sorted((f.email, f.category, f.message) for f in pushed.failures) == [
            ("person2@example.com", ErrorCategory.VALIDATION,
             "person2@example.com: field 'Signup' '05/12/2026' is not a date (YYYY-MM-DD)"),
            ("person4@example.com", ErrorCategory.VALIDATION,
             "person4@example.com: field 'Signup' '2026-12-05T10:00' is not a date (YYYY-MM-DD)"),
        ]
        assert pushed.counts["created"] == 2, pushed.counts
        assert not [r for r in bench.writes_since(mark) if "05/12/2026" in str(r.body) or "T10:00" in str(r.body)]
        assert isinstance(bench.sandbox, PipedriveSandbox)
        stored = {e["value"]: p.custom_fields.get(made.name) for p in bench.sandbox.persons.values()
                  for e in p.emails if str(e["value"]).startswith("person")}
        assert stored == {"person1@example.com": "2026-12-05", "person3@example.com": "2026-12-07"}

        # A salesperson renames both in Pipedrive: the dates read back as the local texts hold them, untouched.
        for n in (1, 3):
            await bench.edit(bench.link(f"person{n}@example.com").crm_id, {"name": f"Edited{n} Person"})
        edited = await bench.sync(SyncDirection.BOTH)
        assert edited.status is not SyncRunStatus.FAILED, edited.failures
        assert {n: bench.contact(f"person{n}@example.com").first_name for n in (1, 3)} == {1: "Edited1", 3: "Edited3"}
        assert {n: bench.contact(f"person{n}@example.com").custom_fields["signup"] for n in days} == days
    finally:
        bench.workspace.close()


@scenario
async def test_a_whole_number_past_64_bits_fails_its_own_record_on_salesforce_and_the_others_land(
    data_dir: Path,
) -> None:
    # A custom number may be any size locally; Salesforce's widest number field holds 18 digits. Such a value used
    # to stop the whole run before anything was sent (the JSON encoder refused it): now the CRM refuses that record's
    # field, named with the reason, and the other records of the batch are created.
    bench = open_bench(Provider.SALESFORCE, data_dir)
    try:
        map_custom(bench, {"custom.reach": "twitter_followers__c"})
        bench.save(person(1, custom_fields={"reach": 12}), person(2, custom_fields={"reach": 10**30}))
        result = await bench.sync(SyncDirection.PUSH)
        assert result.status is SyncRunStatus.PARTIAL
        assert result.counts["created"] == 1
        [failure] = result.failures
        assert failure.email == "person2@example.com" and failure.category is ErrorCategory.VALIDATION
        assert "Twitter Followers" in failure.message and "NUMBER_OUTSIDE_VALID_RANGE" in failure.message
        assert isinstance(bench.sandbox, SalesforceSandbox)
        stored = {str(r.get("Email")): r.get("twitter_followers__c") for r in bench.sandbox.records["Contact"].values()}
        assert stored == {"person1@example.com": 12}
        assert bench.contact("person2@example.com").custom_fields == {"reach": 10**30}
    finally:
        bench.workspace.close()


@scenario
async def test_a_whole_number_a_hubspot_number_property_rounds_is_not_pulled_back_over_the_local_one(
    hubspot: SyncBench,
) -> None:
    # HubSpot keeps a number property as a double: 12345678901234567891 comes back as 12345678901234567168. That
    # still holds the local number; a salesperson's edit of another field must not pull the rounded one over it.
    map_custom(hubspot, {"custom.reach": "twitter_followers"})
    hubspot.save(person(1, custom_fields={"reach": 12345678901234567891}), person(2, custom_fields={"reach": 10**30}))
    pushed = await hubspot.sync()
    assert pushed.counts["created"] == 2, pushed.failures
    for n in (1, 2):
        await hubspot.edit(hubspot.link(f"person{n}@example.com").crm_id, {"firstname": f"Edited{n}"})

    pulled = await hubspot.sync()

    assert pulled.status is SyncRunStatus.SUCCEEDED, pulled.failures
    assert hubspot.contact("person1@example.com").custom_fields == {"reach": 12345678901234567891}
    assert hubspot.contact("person2@example.com").custom_fields == {"reach": 10**30}
    assert hubspot.contact("person1@example.com").first_name == "Edited1"
    _run, log = hubspot.service.run(pulled.run_id or 0)
    assert all("custom.reach" not in (row.message or "") for row in log), [row.message for row in log]
    mark = hubspot.mark()
    again = await hubspot.sync()
    assert again.counts["updated"] == 0 and hubspot.writes_since(mark) == []
