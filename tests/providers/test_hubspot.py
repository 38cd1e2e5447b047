"""The HubSpot adapter against the in-process HubSpot sandbox: pushes, reads, change pulls, leads, notes, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest

from crm_desktop.domain.models import Contact, Integration, Lead, LeadStatus, Provider, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, ChangePage, OutboundRecord
from crm_desktop.providers.errors import AuthError, BudgetExhaustedError, NotFoundError
from crm_desktop.providers.http import AmbiguousWriteError
from crm_desktop.providers.hubspot import HubSpotAdapter
from crm_desktop.providers.hubspot_records import default_contact_record, default_lead_record
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.hubspot import ASSOCIATION_PAGE_LIMIT, HubSpotSandbox

T = TypeVar("T")


class SandboxSleep:
    """A fast sleep: records each wait and moves the sandbox's clock on by it, so rate windows agree."""

    def __init__(self, sandbox: HubSpotSandbox) -> None:
        self.sandbox = sandbox
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sandbox.clock.advance(seconds)
        await asyncio.sleep(0)


def run(
    sandbox: HubSpotSandbox,
    body: Callable[[HubSpotAdapter], Awaitable[T]],
    *,
    credentials: dict[str, Any] | None = None,
    sleep: SandboxSleep | None = None,
    **options: Any,
) -> T:
    async def main() -> T:
        adapter = HubSpotAdapter(
            Integration(provider=Provider.HUBSPOT, name="hubspot-sandbox", base_url=sandbox.base_url),
            credentials or sandbox.credentials(),
            transport=sandbox.transport(),
            sleep=sleep or SandboxSleep(sandbox),
            options=AdapterOptions(**options),
        )
        try:
            return await body(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(main())


async def control_async(sandbox: HubSpotSandbox, method: str, path: str, body: Any = None) -> Any:
    """Call the sandbox's control endpoint through an httpx client on the same in-process transport."""
    async with sandbox.client() as client:
        response = await client.request(method, f"/__sandbox__/{path}", json=body)
        response.raise_for_status()
        return response.json()


def control(sandbox: HubSpotSandbox, method: str, path: str, body: Any = None) -> Any:
    return asyncio.run(control_async(sandbox, method, path, body))


def hubspot_get(sandbox: HubSpotSandbox, path: str, **params: str) -> dict[str, Any]:
    """Read from the sandbox's HubSpot API with its own token (to check what the adapter wrote)."""

    async def call() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
        async with sandbox.client(headers=headers) as client:
            response = await client.get(path, params=params)
            response.raise_for_status()
            return dict(response.json())

    return asyncio.run(call())


def associated(record: dict[str, Any], other: str) -> list[str]:
    return [link["id"] for link in record.get("associations", {}).get(other, {}).get("results", [])]


def api_log(sandbox: HubSpotSandbox) -> list[dict[str, Any]]:
    return list(control(sandbox, "GET", "requests"))


def set_faults(sandbox: HubSpotSandbox, spec: str) -> None:
    control(sandbox, "PUT", "faults", {"spec": spec})


def fan(number: int, **overrides: Any) -> Contact:
    values: dict[str, Any] = {
        "email": f"fan{number}@example.com",
        "first_name": "Fan",
        "last_name": f"Number{number}",
        "company": "Bluebird Coffee",
        "social_profiles": [
            SocialProfile(platform=SocialPlatform.TWITTER, username=f"fan{number}", followers=10 * number),
            SocialProfile(platform=SocialPlatform.INSTAGRAM, username=f"fan.{number}", followers=5, engagement=12.5),
        ],
    }
    values.update(overrides)
    return Contact(**values)


def fans(count: int) -> list[OutboundRecord]:
    return [default_contact_record(fan(i)) for i in range(count)]


async def pull(adapter: HubSpotAdapter, obj: RecordObject, cursor: str | None) -> list[ChangePage]:
    return [page async for page in adapter.changes_since(obj, cursor)]


# -- happy paths --------------------------------------------------------------------------------------------------
def test_push_creates_then_updates_then_reports_unchanged() -> None:
    sandbox = HubSpotSandbox()
    records = fans(3)
    edited = [replace(records[0], fields={**records[0].fields, "firstname": "Renamed"}), *records[1:]]

    async def body(adapter: HubSpotAdapter) -> tuple[list[Any], ...]:
        first = await adapter.upsert(RecordObject.CONTACT, records)
        second = await adapter.upsert(RecordObject.CONTACT, edited)
        third = await adapter.upsert(RecordObject.CONTACT, edited)
        found = await adapter.find_by_emails(RecordObject.CONTACT, [r.email for r in records])
        return first, second, third, [found[r.email] for r in records]

    first, second, third, found = run(sandbox, body)
    assert [r.outcome for r in first] == [RecordOutcome.CREATED] * 3
    assert [r.outcome for r in second] == [RecordOutcome.UPDATED, RecordOutcome.UNCHANGED, RecordOutcome.UNCHANGED]
    assert [r.outcome for r in third] == [RecordOutcome.UNCHANGED] * 3
    assert [r.crm_id for r in first] == [r.crm_id for r in second] == [r.crm_id for r in third]
    assert found[0].fields["firstname"] == "Renamed"
    assert found[1].fields["twitter_username"] == "fan1"
    assert found[1].fields["instagram_username"] == "fan.1"
    assert found[2].fields["social_followers"] == "25"
    assert sandbox.summary()["contacts"] == 3


def test_find_by_emails_and_get_record_by_email_and_id() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=5))
    people = generate_people(5, sandbox.config.seed)

    async def body(adapter: HubSpotAdapter) -> tuple[Any, ...]:
        found = await adapter.find_by_emails(
            RecordObject.CONTACT, [people[0].email.upper(), people[3].email, "nobody@example.com"]
        )
        by_email = await adapter.get_record(RecordObject.CONTACT, email=people[3].email)
        assert by_email is not None
        by_id = await adapter.get_record(RecordObject.CONTACT, crm_id=by_email.crm_id)
        missing_id = await adapter.get_record(RecordObject.CONTACT, crm_id="999999")
        missing_email = await adapter.get_record(RecordObject.CONTACT, email="nobody@example.com")
        return found, by_email, by_id, missing_id, missing_email

    found, by_email, by_id, missing_id, missing_email = run(sandbox, body)
    assert set(found) == {people[0].email.lower(), people[3].email.lower()}
    assert found[people[0].email.lower()].fields["lastname"] == people[0].last_name
    assert by_id == by_email
    assert by_email.fields["company"] == people[3].company
    assert by_email.modified_at is not None
    assert missing_id is None and missing_email is None


def test_changes_since_pages_to_the_end_then_picks_up_an_edit() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=250))

    first = run(sandbox, lambda a: pull(a, RecordObject.CONTACT, None))
    records = [record for page in first for record in page.records]
    assert [len(page.records) for page in first] == [200, 50]
    assert len({r.crm_id for r in records}) == 250
    stamps = [r.modified_at for r in records]
    assert all(stamp is not None for stamp in stamps) and stamps == sorted(stamps)  # type: ignore[type-var]
    cursor = first[-1].cursor

    edited = records[10]
    control(sandbox, "PATCH", f"records/contacts/{edited.crm_id}", {"properties": {"firstname": "Edited"}})
    incremental = run(sandbox, lambda a: pull(a, RecordObject.CONTACT, cursor))
    assert [[r.crm_id for r in page.records] for page in incremental] == [[edited.crm_id]]
    assert incremental[0].records[0].fields["firstname"] == "Edited"
    assert run(sandbox, lambda a: pull(a, RecordObject.CONTACT, incremental[-1].cursor)) == []
    searches = [e for e in api_log(sandbox) if e["path"].endswith("/search")]
    assert len(searches) == 4 and all(e["status"] == 200 for e in searches)


def test_leads_are_created_with_their_contact_then_updated_in_place() -> None:
    sandbox = HubSpotSandbox()
    lead = Lead(email="grace@example.com", first_name="Grace", last_name="Hopper", source="twitter_dm")
    qualified = lead.model_copy(update={"status": LeadStatus.QUALIFIED})

    async def body(adapter: HubSpotAdapter) -> tuple[Any, ...]:
        created = await adapter.upsert(RecordObject.LEAD, [default_lead_record(lead)])
        again = await adapter.upsert(RecordObject.LEAD, [default_lead_record(lead)])
        moved = await adapter.upsert(RecordObject.LEAD, [default_lead_record(qualified)])
        found = await adapter.find_by_emails(RecordObject.LEAD, ["grace@example.com"])
        by_id = await adapter.get_record(RecordObject.LEAD, crm_id=created[0].crm_id)
        pulled = await pull(adapter, RecordObject.LEAD, None)
        assert created[0].crm_id is not None
        note = await adapter.add_note(RecordObject.LEAD, created[0].crm_id, "Lead source: twitter_dm")
        contact = await adapter.get_record(RecordObject.CONTACT, email="grace@example.com")
        return created, again, moved, found, by_id, pulled, note, contact

    created, again, moved, found, by_id, pulled, note, contact = run(sandbox, body)
    lead_id = created[0].crm_id
    assert created[0].outcome is RecordOutcome.CREATED and lead_id
    assert (again[0].outcome, again[0].crm_id) == (RecordOutcome.UNCHANGED, lead_id)
    assert (moved[0].outcome, moved[0].crm_id) == (RecordOutcome.UPDATED, lead_id)
    assert sandbox.summary()["leads"] == 1 and sandbox.summary()["contacts"] == 1
    record = found["grace@example.com"]
    assert record.crm_id == lead_id
    assert record.fields["hs_pipeline_stage"] == "qualified-stage-id"
    assert record.fields["hs_lead_status"] == "OPEN_DEAL"
    assert by_id is not None and by_id.email == "grace@example.com"
    assert [[r.email for r in page.records] for page in pulled] == [["grace@example.com"]]
    assert contact is not None
    assert associated(
        hubspot_get(sandbox, f"/crm/v3/objects/leads/{lead_id}", associations="contacts"), "contacts"
    ) == [contact.crm_id]
    assert associated(hubspot_get(sandbox, f"/crm/v3/objects/notes/{note}", associations="contacts"), "contacts") == [
        contact.crm_id
    ]


def test_a_linked_lead_deleted_in_hubspot_fails_not_found_and_is_not_re_created() -> None:
    sandbox = HubSpotSandbox()
    lead = Lead(email="grace@example.com", first_name="Grace", last_name="Hopper", source="twitter_dm")

    async def body(adapter: HubSpotAdapter) -> tuple[Any, ...]:
        (created,) = await adapter.upsert(RecordObject.LEAD, [default_lead_record(lead)])
        headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
        async with sandbox.client(headers=headers) as client:
            # A salesperson deletes the lead in HubSpot.
            assert (await client.delete(f"/crm/v3/objects/leads/{created.crm_id}")).status_code == 204
        linked = replace(default_lead_record(lead), crm_id=created.crm_id)
        (again,) = await adapter.upsert(RecordObject.LEAD, [linked])
        return created, again

    created, again = run(sandbox, body)
    assert (again.outcome, again.category) == (RecordOutcome.FAILED, ErrorCategory.NOT_FOUND)
    assert again.crm_id == created.crm_id
    assert again.message is not None and "no longer exists in HubSpot" in again.message
    assert sandbox.summary()["leads"] == 0, "the deleted lead was re-created"
    assert sandbox.summary()["contacts"] == 1


def test_lead_pull_sees_changes_made_on_the_leads_contact() -> None:
    sandbox = HubSpotSandbox()
    lead = Lead(email="grace@example.com", first_name="Grace", last_name="Hopper", source="twitter_dm")

    async def body(adapter: HubSpotAdapter) -> tuple[Any, ...]:
        [created] = await adapter.upsert(RecordObject.LEAD, [default_lead_record(lead)])
        [no_lead] = await adapter.upsert(RecordObject.CONTACT, fans(1))
        first = await pull(adapter, RecordObject.LEAD, None)
        contact = await adapter.get_record(RecordObject.CONTACT, email="grace@example.com")
        assert contact is not None
        # HubSpot keeps a lead's status and names on its contact: a salesperson edits them there.
        edit = {"properties": {"hs_lead_status": "UNQUALIFIED", "lastname": "Hopper-Murray"}}
        await control_async(sandbox, "PATCH", f"records/contacts/{contact.crm_id}", edit)
        # A contact with a lead status but no lead object changes too: it is no lead record.
        await control_async(sandbox, "PATCH", f"records/contacts/{no_lead.crm_id}", {"hs_lead_status": "NEW"})
        changed = await pull(adapter, RecordObject.LEAD, first[-1].cursor)
        settled = await pull(adapter, RecordObject.LEAD, changed[-1].cursor)
        edited = await adapter.get_record(RecordObject.CONTACT, crm_id=contact.crm_id)
        return created, first, changed, settled, edited

    created, first, changed, settled, edited = run(sandbox, body)
    # A full pull reads each lead once, though its contact was written just before.
    assert [[r.crm_id for r in page.records] for page in first] == [[created.crm_id]]
    assert [[r.crm_id for r in page.records] for page in changed] == [[created.crm_id]]
    [record] = changed[0].records
    assert (record.email, record.fields["hs_lead_status"], record.fields["lastname"]) == (
        "grace@example.com",
        "UNQUALIFIED",
        "Hopper-Murray",
    )
    assert record.modified_at == edited.modified_at
    assert settled == []


def test_lost_connection_on_a_note_finds_it_past_a_page_of_associations() -> None:
    sandbox = HubSpotSandbox()
    earlier_notes = ASSOCIATION_PAGE_LIMIT + 1

    async def seed_notes(contact_id: str) -> None:
        headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
        note = {
            "properties": {"hs_note_body": "<p>Earlier</p>", "hs_timestamp": "2026-01-01T00:00:00.000Z"},
            "associations": [
                {
                    "to": {"id": contact_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
                }
            ],
        }
        async with sandbox.client(headers=headers) as client:
            for start in range(0, earlier_notes, 100):
                inputs = [note] * min(100, earlier_notes - start)
                response = await client.post("/crm/v3/objects/notes/batch/create", json={"inputs": inputs})
                assert response.status_code == 201, response.text

    async def body(adapter: HubSpotAdapter) -> str:
        [result] = await adapter.upsert(RecordObject.CONTACT, fans(1))
        assert result.crm_id is not None
        await seed_notes(result.crm_id)
        await control_async(sandbox, "PUT", "faults", {"spec": "reset@1"})
        return await adapter.add_note(RecordObject.CONTACT, result.crm_id, "Commented on the launch post")

    note_id = run(sandbox, body)
    # The new note is the contact's newest, on the second page of its associations: found there, not sent again.
    assert sandbox.summary()["notes"] == earlier_notes + 1
    note = hubspot_get(sandbox, f"/crm/v3/objects/notes/{note_id}", properties="hs_note_body")
    assert note["properties"]["hs_note_body"] == "<p>Commented on the launch post</p>"
    association_reads = [e for e in api_log(sandbox) if e["path"] == "/crm/v4/associations/contacts/notes/batch/read"]
    assert len(association_reads) == 2


def test_note_is_attached_to_the_contact() -> None:
    sandbox = HubSpotSandbox()

    async def body(adapter: HubSpotAdapter) -> tuple[str, str | None]:
        [result] = await adapter.upsert(RecordObject.CONTACT, fans(1))
        assert result.crm_id is not None
        return await adapter.add_note(
            RecordObject.CONTACT, result.crm_id, "Liked <Spring Launch>\nShared it"
        ), result.crm_id

    note_id, contact_id = run(sandbox, body)
    note = hubspot_get(
        sandbox, f"/crm/v3/objects/notes/{note_id}", properties="hs_note_body,hs_timestamp", associations="contacts"
    )
    assert note["properties"]["hs_note_body"] == "<p>Liked &lt;Spring Launch&gt;<br>Shared it</p>"
    assert note["properties"]["hs_timestamp"]
    assert associated(note, "contacts") == [contact_id]


def test_fields_are_listed_and_a_missing_one_created() -> None:
    sandbox = HubSpotSandbox()

    async def body(adapter: HubSpotAdapter) -> tuple[Any, ...]:
        contacts = await adapter.list_fields(RecordObject.CONTACT)
        leads = await adapter.list_fields(RecordObject.LEAD)
        created = await adapter.create_field(RecordObject.CONTACT, "tiktok_username", "TikTok username", "string")
        again = await adapter.create_field(RecordObject.CONTACT, "tiktok_username", "TikTok username", "string")
        after = await adapter.list_fields(RecordObject.CONTACT)
        [pushed] = await adapter.upsert(
            RecordObject.CONTACT, [OutboundRecord("tok@example.com", {"tiktok_username": "tok"})]
        )
        found = await adapter.find_by_emails(RecordObject.CONTACT, ["tok@example.com"])
        return contacts, leads, created, again, after, pushed, found

    contacts, leads, created, again, after, pushed, found = run(sandbox, body)
    by_name = {f.name: f for f in contacts}
    assert by_name["email"].label == "Email" and not by_name["email"].custom
    assert by_name["social_sentiment"].custom and by_name["social_sentiment"].options == (
        "positive",
        "neutral",
        "negative",
        "mixed",
    )
    assert "salesqualifiedlead" in by_name["lifecyclestage"].options
    assert not by_name["lastmodifieddate"].writable
    lead_labels = {f.name: f.label for f in leads}
    assert lead_labels["hs_lead_name"] == "Lead name" and lead_labels["firstname"] == "Contact: First Name"
    assert created == again and created.custom and created.type == "string"
    assert "tiktok_username" in {f.name for f in after}
    assert pushed.outcome is RecordOutcome.CREATED
    assert found["tok@example.com"].fields["tiktok_username"] == "tok"


def test_connection_names_account_and_scopes() -> None:
    sandbox = HubSpotSandbox()
    info = run(sandbox, lambda a: a.test_connection())
    assert info.account == f"HubSpot account {sandbox.portal_id} (US/Eastern)"
    assert "crm.objects.contacts.write" in info.scopes
    assert info.quota is not None and info.quota.limit == 250_000


# -- faults -------------------------------------------------------------------------------------------------------
def test_server_error_burst_is_retried() -> None:
    sandbox = HubSpotSandbox()
    set_faults(sandbox, "5xx@1@2")
    sleep = SandboxSleep(sandbox)
    results = run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(3)), sleep=sleep)
    assert [r.outcome for r in results] == [RecordOutcome.CREATED] * 3
    assert [e["fault"] for e in api_log(sandbox)] == ["5xx", "5xx", None]
    assert len(sleep.waits) == 2


def test_429_waits_the_rate_window_then_succeeds() -> None:
    sandbox = HubSpotSandbox()
    set_faults(sandbox, "429@1")
    sleep = SandboxSleep(sandbox)
    results = run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(2)), sleep=sleep)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert [e["status"] for e in api_log(sandbox)] == [429, 200]
    # HubSpot sends no Retry-After: the ten-second interval header says how long to hold back.
    assert sum(sleep.waits) >= 10.0


def test_connection_reset_on_a_read_is_retried() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=3))
    email = generate_people(3, sandbox.config.seed)[1].email
    set_faults(sandbox, "reset@2")
    found = run(sandbox, lambda a: a.find_by_emails(RecordObject.CONTACT, [email]))
    assert list(found) == [email.lower()]
    reads = [e["fault"] for e in api_log(sandbox) if e["path"].endswith("/batch/read")]
    assert reads == ["reset", None]


@pytest.mark.parametrize("fault", ["reset@1", "timeout@1"])
def test_lost_connection_on_an_upsert_is_reconciled_without_duplicates(fault: str) -> None:
    sandbox = HubSpotSandbox()
    set_faults(sandbox, fault)
    results = run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(3)))
    assert [r.outcome for r in results] == [RecordOutcome.CREATED] * 3
    assert sandbox.summary()["contacts"] == 3
    assert [e["path"] for e in api_log(sandbox)] == ["/crm/v3/objects/contacts/batch/upsert"] * 2


@pytest.mark.parametrize("fault", ["reset", "504"])
def test_lost_connection_on_a_note_does_not_duplicate_it(fault: str) -> None:
    """The note's answer is lost: the connection drops before it was made, or a gateway answers 504 after it was
    (a 5xx to a create is never replayed blindly)."""
    sandbox = HubSpotSandbox()

    async def body(adapter: HubSpotAdapter) -> str:
        [result] = await adapter.upsert(RecordObject.CONTACT, fans(1))
        await control_async(sandbox, "PUT", "faults", {"spec": f"{fault}@1"})
        assert result.crm_id is not None
        return await adapter.add_note(RecordObject.CONTACT, result.crm_id, "Commented on the launch post")

    note_id = run(sandbox, body, sleep=SandboxSleep(sandbox))
    assert sandbox.summary()["notes"] == 1
    assert hubspot_get(sandbox, f"/crm/v3/objects/notes/{note_id}")["id"] == note_id
    expected = ["reset", None] if fault == "reset" else ["504"]  # the 504's note was made: found, not sent again
    assert [e["fault"] for e in api_log(sandbox) if e["path"] == "/crm/v3/objects/notes"] == expected


MERGE = "/crm/v3/objects/contacts/merge"


def two_contacts(sandbox: HubSpotSandbox) -> tuple[str, str]:
    """Ada, and a second contact of hers to merge into her: their HubSpot ids."""

    async def body(adapter: HubSpotAdapter) -> list[str | None]:
        results = await adapter.upsert(RecordObject.CONTACT, [
            default_contact_record(fan(1, email="ada@example.com")),
            default_contact_record(fan(2, email="ada+news@example.com"))])
        return [r.crm_id for r in results]

    keep, other = run(sandbox, body)
    assert keep is not None and other is not None
    return keep, other


@pytest.mark.parametrize(("fault", "sent"), [
    ("timeout_after_doing", ["timeout_after_doing"]),  # made, answer lost: found merged, not sent again
    ("504", ["504"]),  # made, a gateway gave up: found merged
    ("reset", ["reset", None]),  # dropped before it was made: both still there, sent once more
])
def test_a_merge_whose_answer_is_lost_is_looked_up_before_it_is_sent_again(fault: str, sent: list[str | None]) -> None:
    sandbox = HubSpotSandbox()
    keep, other = two_contacts(sandbox)
    control(sandbox, "PUT", "faults", [{"kind": fault, "probability": 1.0, "remaining": 1, "path": MERGE}])

    result = run(sandbox, lambda a: a.merge_records(RecordObject.CONTACT, keep, other,
                                                    merge_email="ada+news@example.com"))

    assert (result.surviving_id, result.merged_id, result.already_merged) == (keep, other, False)
    assert [e["fault"] for e in api_log(sandbox) if e["path"] == MERGE] == sent
    assert set(sandbox._records["contacts"]) == {keep}
    assert hubspot_get(sandbox, f"/crm/v3/objects/contacts/{keep}", properties="hs_merged_object_ids")[
        "properties"]["hs_merged_object_ids"] == other


def test_a_merge_an_earlier_run_made_unseen_is_already_merged_not_failed() -> None:
    # The earlier run's answer was lost and it reported a failure; HubSpot had merged them: the merge sent again
    # is refused as not found (404), and the merged contact's id and email are on the survivor.
    sandbox = HubSpotSandbox()
    keep, other = two_contacts(sandbox)
    control(sandbox, "PUT", "faults", [{"kind": "timeout_after_doing", "probability": 1.0, "remaining": 1}])
    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(control_async_call(sandbox, "POST", MERGE, {"primaryObjectId": keep, "objectIdToMerge": other}))

    result = run(sandbox, lambda a: a.merge_records(RecordObject.CONTACT, keep, other,
                                                    merge_email="ada+news@example.com"))

    assert (result.surviving_id, result.merged_id, result.already_merged) == (keep, other, True)
    assert set(sandbox._records["contacts"]) == {keep}


def test_a_merge_of_a_contact_gone_otherwise_is_still_not_found() -> None:
    sandbox = HubSpotSandbox()
    keep, other = two_contacts(sandbox)
    asyncio.run(control_async_call(sandbox, "DELETE", f"/crm/v3/objects/contacts/{other}"))
    with pytest.raises(NotFoundError):
        run(sandbox, lambda a: a.merge_records(RecordObject.CONTACT, keep, other, merge_email="ada+news@example.com"))


def test_a_merge_whose_answer_is_lost_twice_leaves_both_and_says_so() -> None:
    sandbox = HubSpotSandbox()
    keep, other = two_contacts(sandbox)
    control(sandbox, "PUT", "faults", [{"kind": "reset", "probability": 1.0, "path": MERGE}])
    with pytest.raises(AmbiguousWriteError, match="nothing was written twice"):
        run(sandbox, lambda a: a.merge_records(RecordObject.CONTACT, keep, other))
    assert [e["fault"] for e in api_log(sandbox) if e["path"] == MERGE] == ["reset", "reset"]
    assert set(sandbox._records["contacts"]) == {keep, other}


async def control_async_call(sandbox: HubSpotSandbox, method: str, path: str, body: Any = None) -> httpx.Response:
    """One call to the sandbox's HubSpot API with its own token, as a salesperson or another run makes it."""
    headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
    async with sandbox.client(headers=headers) as client:
        return await client.request(method, path, json=body)


def test_token_expiry_mid_push_stops_with_auth_error_and_no_retry() -> None:
    sandbox = HubSpotSandbox()
    set_faults(sandbox, "expire@2")
    with pytest.raises(AuthError, match="reconnect the integration"):
        run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(300)), concurrency=1)
    log = api_log(sandbox)
    assert [e["status"] for e in log] == [200, 401]
    assert sandbox.summary()["contacts"] == 100


def test_bad_record_inside_a_batch_fails_alone_with_its_reason() -> None:
    sandbox = HubSpotSandbox()
    set_faults(sandbox, "invalid@2")
    records = fans(5)
    records[3] = replace(records[3], fields={**records[3].fields, "social_followers": "lots"})
    results = run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, records))
    assert [r.outcome for r in results] == [
        RecordOutcome.CREATED,
        RecordOutcome.FAILED,
        RecordOutcome.CREATED,
        RecordOutcome.FAILED,
        RecordOutcome.CREATED,
    ]
    assert results[1].category is ErrorCategory.VALIDATION
    assert results[1].message == "fan1@example.com: email: Email address fan1@example.com is invalid (INVALID_EMAIL)"
    assert results[3].message == "fan3@example.com: social_followers: lots was not a valid number. (INVALID_FLOAT)"
    assert sandbox.summary()["contacts"] == 3
    assert len(api_log(sandbox)) == 1


def test_refused_token_raises_auth_error_without_retry() -> None:
    sandbox = HubSpotSandbox()
    with pytest.raises(AuthError) as caught:
        run(sandbox, lambda a: a.test_connection(), credentials={"token": "pat-na1-not-a-real-token"})
    assert "pat-na1-not-a-real-token" not in str(caught.value)
    with pytest.raises(AuthError):
        run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(2)), credentials={"token": "pat-na1-wrong"})
    assert [e["status"] for e in api_log(sandbox)] == [401, 401]


def test_daily_budget_nearly_spent_stops_before_burning_it() -> None:
    sandbox = HubSpotSandbox()
    control(sandbox, "PATCH", "config", {"daily_limit": 8})
    with pytest.raises(BudgetExhaustedError):
        run(sandbox, lambda a: a.upsert(RecordObject.CONTACT, fans(1000)), daily_reserve=3)
    statuses = [e["status"] for e in api_log(sandbox)]
    assert 429 not in statuses
    assert len(statuses) <= 8 - 3


def test_steady_state_at_the_rate_limit_earns_no_429() -> None:
    sandbox = HubSpotSandbox()
    control(sandbox, "PATCH", "config", {"ten_second_limit": 5})
    sleep = SandboxSleep(sandbox)
    emails = [f"nobody{i}@example.com" for i in range(2000)]
    found = run(sandbox, lambda a: a.find_by_emails(RecordObject.CONTACT, emails), sleep=sleep)
    assert found == {}
    statuses = [e["status"] for e in api_log(sandbox)]
    assert len(statuses) == 21
    assert 429 not in statuses
    # 21 requests at 4 per rolling 10 s: the budget held back for most of a minute of (sandbox) time.
    assert sum(sleep.waits) >= 40


def test_search_keeps_to_its_own_four_per_second_limit() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=30))
    sleep = SandboxSleep(sandbox)

    async def body(adapter: HubSpotAdapter) -> list[int]:
        return [sum(len(page.records) for page in await pull(adapter, RecordObject.CONTACT, None)) for _ in range(12)]

    assert run(sandbox, body, sleep=sleep) == [30] * 12
    searches = [e["status"] for e in api_log(sandbox) if e["path"].endswith("/search")]
    assert searches == [200] * 12
    # Twelve searches at most 3 a second (a step under HubSpot's 4): the budget held back about three seconds.
    assert sum(sleep.waits) >= 2.5
