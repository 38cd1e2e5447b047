"""The Pipedrive adapter against the Pipedrive sandbox, every exchange checked against Pipedrive's own OpenAPI files."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    Provider,
    Sentiment,
    SocialContext,
    SocialPlatform,
    SocialProfile,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, OutboundRecord, TimelineEntry, TimelineKind
from crm_desktop.providers.errors import AuthError, BudgetExhaustedError, NotFoundError
from crm_desktop.providers.http import AmbiguousWriteError
from crm_desktop.providers.pipedrive import LEAD_ORIGIN_ID, SOCIAL_NOTE_HEADING, PipedriveAdapter
from crm_desktop.providers.pipedrive_errors import token_cost
from crm_desktop.providers.pipedrive_records import default_contact_record, default_lead_record
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from tests.sandbox import pipedrive_spec

pytestmark = pytest.mark.skipif(
    not pipedrive_spec.specs_available(), reason="Pipedrive's OpenAPI files are not on this machine"
)

HASH = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")


class SpecCheckingTransport(httpx.AsyncBaseTransport):
    """Forwards to the sandbox and checks each exchange against Pipedrive's official OpenAPI files.

    A request that breaks the spec, or whose token cost the adapter counts differently from the spec's
    ``x-token-cost``, fails the test. ``lose_after_saving`` makes one matching write reach the sandbox and then
    lose its connection, as a reset after the server saved it would. (openapi-core does not enforce the spec's
    security schemes, so the token header is checked here.)

    Attributes:
        checked: exchanges checked.
        paths: each request's method and path, in order.
        violations: what broke the spec.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.checked = 0
        self.paths: list[str] = []
        self.violations: list[str] = []
        self.lose_after_saving: Callable[[httpx.Request], bool] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        problems = []
        if not request.headers.get("x-api-token") or "api_token" in request.url.params:
            problems.append(f"{request.method} {request.url.path}: the API token must travel in x-api-token only")
        try:
            pipedrive_spec.validate_request(request)
        except AssertionError as exc:
            problems.append(str(exc))
        if token_cost(request.method, request.url.path) != pipedrive_spec.token_cost(request):
            problems.append(f"{request.method} {request.url.path}: the adapter counts another token cost")
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        answer = httpx.Response(response.status_code, headers=response.headers, content=content, request=request)
        declared = pipedrive_spec.spec_operation(request.method, request.url.path).get("responses", {})
        # A load balancer's 504 (the sandbox's gateway_timeout fault) is not Pipedrive's answer: not its envelope.
        from_gateway = answer.status_code == 504 and answer.headers.get("content-type", "").startswith("text/plain")
        try:
            if from_gateway:
                pass
            elif answer.is_success or str(answer.status_code) in declared:
                pipedrive_spec.validate_response(request, answer)
            else:
                pipedrive_spec.validate_error_envelope(request, answer)
        except AssertionError as exc:
            problems.append(str(exc))
        self.checked += 1
        if problems:
            self.violations.extend(problems)
            raise AssertionError("\n".join(problems))
        if self.lose_after_saving is not None and self.lose_after_saving(request):
            self.lose_after_saving = None
            raise httpx.ReadError("connection lost after the server saved the write", request=request)
        return answer


class Harness:
    """An adapter on a sandbox, with virtual time: waits move the sandbox's clock instead of sleeping."""

    def __init__(
        self, sandbox: PipedriveSandbox, *, token: str | None = None, options: AdapterOptions | None = None
    ) -> None:
        self.sandbox = sandbox
        self.transport = SpecCheckingTransport(sandbox.transport())
        self.sleeps: list[float] = []
        credentials = {"apiToken": token} if token is not None else sandbox.credentials()
        self.adapter = PipedriveAdapter(
            Integration(provider=Provider.PIPEDRIVE, name="sandbox", base_url=sandbox.base_url),
            credentials,
            transport=self.transport,
            sleep=self.sleep,
            clock=sandbox.clock.monotonic,
            options=options,
        )

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.sandbox.clock.advance(seconds)
        await asyncio.sleep(0)

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.sandbox.client() as client:
            response = await client.request(method, f"/__sandbox__/{path}", json=body)
            response.raise_for_status()
            return response.json()


def run(sandbox: PipedriveSandbox, body: Callable[[Harness], Awaitable[T]], **kwargs: Any) -> T:
    async def main() -> T:
        harness = Harness(sandbox, **kwargs)
        try:
            result = await body(harness)
        finally:
            await harness.adapter.aclose()
        assert harness.transport.violations == []
        assert harness.transport.checked > 0
        return result

    return asyncio.run(main())


def contact(number: int, **changes: Any) -> Contact:
    data: dict[str, Any] = {
        "email": f"person{number}@example.com",
        "first_name": "Ana",
        "last_name": f"Silva {number}",
        "company": "Acme & Co",
        "phone": f"+1415555{number:04d}",
        "social_profiles": [
            SocialProfile(
                platform=SocialPlatform.TWITTER, username=f"ana{number}", followers=100 * number, engagement=2
            )
        ],
    }
    data.update(changes)
    return Contact(**data)


def persons_with(sandbox: PipedriveSandbox, email: str) -> list[Any]:
    return [p for p in sandbox.persons.values() if any(e["value"] == email for e in p.emails)]


def our_notes(sandbox: PipedriveSandbox, **target: Any) -> list[str]:
    key, value = next(iter(target.items()))
    return [n.content for n in sandbox.notes.values() if getattr(n, key) == value and SOCIAL_NOTE_HEADING in n.content]


def statuses(sandbox: PipedriveSandbox) -> list[int]:
    return [entry.status for entry in sandbox.requests]


@pytest.fixture
def sandbox() -> PipedriveSandbox:
    return PipedriveSandbox()


def seeded(count: int, **kwargs: Any) -> PipedriveSandbox:
    return PipedriveSandbox(SandboxConfig(contacts=count), **kwargs)


# -- connection, fields ------------------------------------------------------------------------------------------


def test_connection_names_the_company_and_user_and_reads_the_budget(sandbox: PipedriveSandbox) -> None:
    info = run(sandbox, lambda h: h.adapter.test_connection())
    assert info.account == "sandbox-company (sandbox)"
    assert info.user == sandbox.user["email"]
    assert info.quota is not None and info.quota.remaining == sandbox.daily_token_budget - sandbox.tokens_spent


def test_a_refused_token_raises_auth_error_and_is_not_retried(sandbox: PipedriveSandbox) -> None:
    with pytest.raises(AuthError):
        run(sandbox, lambda h: h.adapter.test_connection(), token="0" * 40)
    assert statuses(sandbox) == [401]


def test_fields_are_listed_by_name_and_a_created_field_takes_pushed_values() -> None:
    sandbox = PipedriveSandbox()
    person = contact(1)

    async def body(h: Harness) -> Any:
        before = await h.adapter.list_fields(RecordObject.CONTACT)
        made = await h.adapter.create_field(RecordObject.CONTACT, "twitter_username", "twitter_username", "string")
        keys = (await h.adapter.field_map()).keys_by_name()
        results = await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(person, social_field_keys=keys)])
        return before, made, results

    before, made, results = run(sandbox, body)
    assert not any(f.custom for f in before) and all(not HASH.fullmatch(f.label) for f in before)
    assert HASH.fullmatch(made.name) and made.label == "twitter_username" and made.custom
    assert results[0].outcome is RecordOutcome.CREATED
    stored = sandbox.persons[int(results[0].crm_id or 0)]
    assert stored.custom_fields == {made.name: "ana1"}
    note = our_notes(sandbox, person_id=stored.id)[0]
    assert "@ana1" not in note and "Twitter/X: 100 followers" in note  # the field took the handle, the note the reach


def test_a_money_field_takes_an_amount_with_its_currency_and_reads_it_back_so() -> None:
    # Pipedrive's v2 holds a monetary custom value as {value, currency} (crm-wire-facts, Pipedrive person fields).
    sandbox = PipedriveSandbox()
    records = [
        OutboundRecord("plain@example.com", {"name": "Plain", "Lifetime value": "1500"}),
        OutboundRecord("euro@example.com", {"name": "Euro", "Lifetime value": "2500.50 eur"}),
        OutboundRecord("bad@example.com", {"name": "Bad", "Lifetime value": "lots"}),
    ]

    async def body(h: Harness) -> Any:
        made = await h.adapter.create_field(RecordObject.CONTACT, "lifetime_value", "Lifetime value", "monetary")
        results = await h.adapter.upsert(RecordObject.CONTACT, records)
        pulled = await h.adapter.find_by_emails(RecordObject.CONTACT, ["plain@example.com", "euro@example.com"])
        again = await h.adapter.upsert(RecordObject.CONTACT, records[:2])
        return made, results, pulled, again

    made, results, pulled, again = run(sandbox, body)
    assert made.type == "monetary"
    assert [r.outcome for r in results] == [RecordOutcome.CREATED, RecordOutcome.CREATED, RecordOutcome.FAILED]
    assert results[2].message == "bad@example.com: field 'Lifetime value' 'lots' is not an amount " \
        "(1500, or with its currency: 1500 EUR)"
    plain, euro = (persons_with(sandbox, f"{who}@example.com")[0] for who in ("plain", "euro"))
    # Without a currency, the company's (the sandbox's users/me says USD).
    assert plain.custom_fields[made.name] == {"value": 1500, "currency": "USD"}
    assert euro.custom_fields[made.name] == {"value": 2500.5, "currency": "EUR"}
    assert pulled["plain@example.com"].fields[made.name] == "1500 USD"
    assert pulled["euro@example.com"].fields[made.name] == "2500.5 EUR"
    assert [r.outcome for r in again] == [RecordOutcome.UNCHANGED] * 2


def test_seeded_social_fields_take_labels_as_options_and_a_bad_value_fails_only_its_record() -> None:
    sandbox = PipedriveSandbox(social_fields=True)
    lead = Lead(
        email="lead@example.com",
        first_name="Lee",
        last_name="Ng",
        source="twitter_dm",
        social_context=SocialContext(platform=SocialPlatform.TWITTER, sentiment=Sentiment.MIXED, engagement_score=70),
    )

    async def body(h: Harness) -> Any:
        keys = (await h.adapter.field_map()).keys_by_name()
        good = default_contact_record(contact(1), social_field_keys=keys)
        bad = OutboundRecord(email="bad@example.com", fields={"name": "Bad", "social_followers": "lots"})
        results = await h.adapter.upsert(RecordObject.CONTACT, [good, bad, default_contact_record(contact(3))])
        lead_results = await h.adapter.upsert(RecordObject.LEAD, [default_lead_record(lead, social_field_keys=keys)])
        return keys, results, lead_results

    keys, results, lead_results = run(sandbox, body)
    assert [r.outcome for r in results] == [RecordOutcome.CREATED, RecordOutcome.FAILED, RecordOutcome.CREATED]
    failed = results[1]
    assert failed.category is ErrorCategory.VALIDATION and failed.message is not None
    # A number field's value is checked before sending, so the refusal costs no request and names the field.
    assert failed.message == "bad@example.com: field 'social_followers' 'lots' is not a number"
    assert not HASH.search(failed.message)
    assert persons_with(sandbox, "bad@example.com") == []
    lead_person = persons_with(sandbox, "lead@example.com")[0]
    sentiment = next(f for f in sandbox.person_fields if f.name == "social_sentiment")
    assert lead_person.custom_fields[keys["social_sentiment"]] == sentiment.option_id("mixed")
    assert lead_results[0].outcome is RecordOutcome.CREATED


# -- pushing -----------------------------------------------------------------------------------------------------


def test_push_creates_then_updates_then_leaves_unchanged(sandbox: PipedriveSandbox) -> None:
    people = [contact(n) for n in (1, 2, 3)]

    async def push(h: Harness, batch: list[Contact]) -> tuple[list[Any], int]:
        results = await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(c) for c in batch])
        return results, h.adapter.api_calls

    created, calls = run(sandbox, lambda h: push(h, people))
    assert [r.outcome for r in created] == [RecordOutcome.CREATED] * 3
    assert calls == 3 * 3  # per new person: search, create, note
    ids = [int(r.crm_id or 0) for r in created]
    assert [sandbox.persons[i].name for i in ids] == ["Ana Silva 1", "Ana Silva 2", "Ana Silva 3"]
    assert [len(our_notes(sandbox, person_id=i)) for i in ids] == [1, 1, 1]
    assert "Acme &amp; Co" in our_notes(sandbox, person_id=ids[0])[0]

    # A later run (a fresh adapter): one phone changed, one social profile changed, one untouched.
    changed = [
        contact(1, phone="+14155559999"),
        contact(2, social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ana2", followers=999)]),
        contact(3),
    ]
    updated, calls = run(sandbox, lambda h: push(h, changed))
    assert [r.outcome for r in updated] == [RecordOutcome.UPDATED, RecordOutcome.UPDATED, RecordOutcome.UNCHANGED]
    assert [r.crm_id for r in updated] == [str(i) for i in ids]
    assert calls == 3 + 1 + 3 + 1 + 1  # searches, one ids read, notes reads, one PATCH, one note written over
    assert [p["value"] for p in sandbox.persons[ids[0]].phones] == ["+14155559999", "+14155550001"]
    # The changed profile's note was written in place: one social note, current, pinned at the top of the person.
    assert [len(our_notes(sandbox, person_id=i)) for i in ids] == [1, 1, 1]
    assert "@ana2" in our_notes(sandbox, person_id=ids[1])[0]
    assert all(note.pinned == {"person": True} for note in sandbox.notes.values())

    again, _ = run(sandbox, lambda h: push(h, changed))
    assert [r.outcome for r in again] == [RecordOutcome.UNCHANGED] * 3
    assert len(sandbox.persons) == 3



def test_the_social_note_is_one_note_kept_current_in_place(sandbox: PipedriveSandbox) -> None:
    """An older version's social notes (added again at each change, unpinned) and a salesperson's own note: the
    newest of ours is written over and pinned, the others are left; a note deleted in Pipedrive meanwhile is added
    again, not lost."""
    [created] = run(sandbox, lambda h: h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(1))]))
    person_id = int(created.crm_id or 0)
    [ours] = [n for n in sandbox.notes.values() if n.person_id == person_id]
    ours.pinned = {}  # as an older version added it
    older = replace(ours, id=ours.id + 100, content=ours.content.replace("Acme", "Old Co"))
    salesperson = replace(ours, id=ours.id + 200, content="<p>Met at the fair</p>")
    sandbox.notes.update({older.id: older, salesperson.id: salesperson})
    ours.add_time = older.add_time + timedelta(seconds=1)  # ours is the newest

    grown = contact(1, social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ana1",
                                                      followers=5000)])

    async def push_twice(h: Harness) -> list[Any]:
        [first] = await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(grown)])
        del sandbox.notes[ours.id]  # a salesperson deletes it while the run goes on
        regrown = contact(1, social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ana1",
                                                            followers=6000)])
        [second] = await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(regrown)])
        return [first, second]

    before = len(sandbox.notes)
    first, second = run(sandbox, push_twice)
    assert (first.outcome, second.outcome) == (RecordOutcome.UPDATED, RecordOutcome.UPDATED)
    puts = [e.path for e in sandbox.requests if e.method == "PUT"]
    assert puts == [f"/v1/notes/{ours.id}", f"/v1/notes/{ours.id}"]  # the second answered 404: deleted meanwhile
    notes = {n.id: n for n in sandbox.notes.values() if n.person_id == person_id}
    assert len(notes) == before  # one deleted, one added again
    assert notes[older.id].content == older.content and notes[salesperson.id].content == "<p>Met at the fair</p>"
    [current] = [n for n in notes.values() if n.id not in (older.id, salesperson.id)]
    assert "6,000 followers" in current.content and current.pinned == {"person": True}


def test_records_sharing_an_email_write_one_person(sandbox: PipedriveSandbox) -> None:
    records = [
        OutboundRecord(email="twin@example.com", fields={"name": "Twin One"}),
        OutboundRecord(email="TWIN@example.com", fields={"name": "Twin Two"}),
    ]
    results = run(sandbox, lambda h: h.adapter.upsert(RecordObject.CONTACT, records))
    assert [r.outcome for r in results] == [RecordOutcome.CREATED, RecordOutcome.UPDATED]
    assert results[0].crm_id == results[1].crm_id
    assert [p.name for p in persons_with(sandbox, "twin@example.com")] == ["Twin Two"]


def test_find_by_emails_and_get_record_by_email_and_id() -> None:
    sandbox = seeded(6)
    first, second = list(sandbox.persons.values())[:2]
    email_one, email_two = first.emails[0]["value"], second.emails[0]["value"]

    async def body(h: Harness) -> Any:
        found = await h.adapter.find_by_emails(RecordObject.CONTACT, [email_one, email_two.upper(), "no@example.com"])
        by_email = await h.adapter.get_record(RecordObject.CONTACT, email=email_two)
        by_id = await h.adapter.get_record(RecordObject.CONTACT, crm_id=str(first.id))
        missing = (
            await h.adapter.get_record(RecordObject.CONTACT, crm_id="424242"),
            await h.adapter.get_record(RecordObject.CONTACT, email="no@example.com"),
        )
        return found, by_email, by_id, missing

    found, by_email, by_id, missing = run(sandbox, body)
    assert {email: record.crm_id for email, record in found.items()} == {
        email_one.lower(): str(first.id),
        email_two.lower(): str(second.id),
    }
    assert found[email_one.lower()].fields["name"] == first.name
    assert by_email is not None and by_email.crm_id == str(second.id)
    assert by_id is not None and by_id.email == email_one.lower() and by_id.modified_at is not None
    assert missing == (None, None)


def test_finding_many_emails_lists_the_persons_instead_of_searching_each() -> None:
    """A sync's plan looks up each unlinked record's email: 25 of them cost one listing (and one read of the
    persons found), not 25 searches at search's 5 a second; what is found is the same."""
    sandbox = seeded(40)
    persons = list(sandbox.persons.values())[:20]
    emails = [p.emails[0]["value"] for p in persons] + [f"new{n}@example.com" for n in range(5)]

    async def body(h: Harness) -> tuple[dict[str, Any], list[str]]:
        found = await h.adapter.find_by_emails(RecordObject.CONTACT, emails)
        return found, h.transport.paths

    found, paths = run(sandbox, body)
    assert {email: record.crm_id for email, record in found.items()} == {
        p.emails[0]["value"].lower(): str(p.id) for p in persons}
    assert "GET /api/v2/persons/search" not in paths
    assert paths.count("GET /api/v2/persons") == 2  # the listing (40 persons, one page), then the ids read


def test_add_note_escapes_the_text(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> str:
        [result] = await h.adapter.upsert(RecordObject.CONTACT, [OutboundRecord(email="n@example.com", fields={})])
        return await h.adapter.add_note(RecordObject.CONTACT, result.crm_id or "", "<b>hi</b> & bye")

    note_id = run(sandbox, body)
    assert sandbox.notes[int(note_id)].content == "<p>&lt;b&gt;hi&lt;/b&gt; &amp; bye</p>"
    assert persons_with(sandbox, "n@example.com")[0].name == "n@example.com"


# -- changes -----------------------------------------------------------------------------------------------------


def test_changes_since_pages_to_the_end_then_resumes_and_sees_an_edit() -> None:
    sandbox = seeded(23)

    async def body(h: Harness) -> Any:
        h.adapter.page_size = 5
        pages = [page async for page in h.adapter.changes_since(RecordObject.CONTACT, None)]
        resumed = [page async for page in h.adapter.changes_since(RecordObject.CONTACT, pages[1].cursor)]
        quiet = [page async for page in h.adapter.changes_since(RecordObject.CONTACT, pages[-1].cursor)]
        edited_id = int(pages[0].records[0].crm_id)
        await h.control("PATCH", f"records/persons/{edited_id}", {"name": "Renamed Person"})
        after_edit = [page async for page in h.adapter.changes_since(RecordObject.CONTACT, pages[-1].cursor)]
        return pages, resumed, quiet, after_edit

    pages, resumed, quiet, after_edit = run(sandbox, body)
    delivered = [record.crm_id for page in pages for record in page.records]
    assert sorted(delivered, key=int) == [str(i) for i in sorted(sandbox.persons)]
    assert len(pages) == 5
    times = [record.modified_at for page in pages for record in page.records]
    assert times == sorted(t for t in times if t is not None)
    assert [record.crm_id for page in resumed for record in page.records] == delivered[10:]
    assert quiet == []
    assert [(r.crm_id, r.fields["name"]) for page in after_edit for r in page.records] == [
        (delivered[0], "Renamed Person")
    ]


# -- leads, deals, activities ------------------------------------------------------------------------------------


def test_leads_are_linked_to_their_person_and_pulled_back() -> None:
    sandbox = PipedriveSandbox()
    leads = [
        Lead(email="lead1@example.com", first_name="Lia", last_name="One", source="instagram_dm"),
        Lead(
            email="lead2@example.com",
            first_name="Leo",
            last_name="Two",
            social_context=SocialContext(platform=SocialPlatform.LINKEDIN, conversation_id="conv-9"),
        ),
    ]
    records = [default_lead_record(lead) for lead in leads]

    async def body(h: Harness) -> Any:
        first = await h.adapter.upsert(RecordObject.LEAD, records)
        found = await h.adapter.find_by_emails(RecordObject.LEAD, ["lead1@example.com"])
        by_id = await h.adapter.get_record(RecordObject.LEAD, crm_id=first[1].crm_id)
        changes = [page async for page in h.adapter.changes_since(RecordObject.LEAD, None)]
        return first, found, by_id, changes

    first, found, by_id, changes = run(sandbox, body)
    assert [r.outcome for r in first] == [RecordOutcome.CREATED] * 2
    for result, lead in zip(first, leads, strict=True):
        stored = sandbox.leads[str(result.crm_id)]
        assert uuid.UUID(stored.id) and stored.origin_id == LEAD_ORIGIN_ID
        assert persons_with(sandbox, lead.email)[0].id == stored.person_id
        assert len(our_notes(sandbox, lead_id=stored.id)) == 1
    assert sandbox.leads[str(first[0].crm_id)].title == "Lia One via instagram_dm"
    assert found["lead1@example.com"].crm_id == first[0].crm_id
    assert by_id is not None and by_id.email == "lead2@example.com" and by_id.fields["title"] == "Leo Two (social lead)"
    assert {(r.crm_id, r.email) for page in changes for r in page.records} == {
        (first[0].crm_id, "lead1@example.com"),
        (first[1].crm_id, "lead2@example.com"),
    }

    again = run(sandbox, lambda h: h.adapter.upsert(RecordObject.LEAD, records))
    assert [(r.outcome, r.crm_id) for r in again] == [(RecordOutcome.UNCHANGED, r.crm_id) for r in first]
    assert len(sandbox.leads) == 2 and len(sandbox.persons) == 2


def test_deals_and_activities_attach_to_the_person(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> Any:
        [person] = await h.adapter.upsert(RecordObject.CONTACT, [OutboundRecord(email="d@example.com", fields={})])
        person_id = person.crm_id or ""
        deal = await h.adapter.create_deal(person_id, "Annual plan", value=4800)
        activity = await h.adapter.add_activity(person_id, "Follow-up call", note="Liked the <demo>")
        return int(person_id), int(deal), int(activity)

    person_id, deal_id, activity_id = run(sandbox, body)
    deal = sandbox.deals[deal_id]
    assert (deal.title, deal.person_id, deal.value) == ("Annual plan", person_id, 4800)
    activity = sandbox.activities[activity_id]
    assert (activity.subject, activity.type, activity.person_id) == ("Follow-up call", "call", person_id)
    assert activity.note == "<p>Liked the &lt;demo&gt;</p>"


# -- faults ------------------------------------------------------------------------------------------------------


def test_a_burst_of_server_errors_is_recovered() -> None:
    sandbox = PipedriveSandbox(SandboxConfig(faults=[]))

    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", {"spec": "5xx@1@2@3"})
        return await h.adapter.test_connection(), h.sleeps

    info, sleeps = run(sandbox, body)
    assert info.account
    assert [s // 100 for s in statuses(sandbox)] == [5, 5, 5, 2]
    assert len(sleeps) >= 3


def test_a_429_waits_for_retry_after(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", {"spec": "429@2"})
        return await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(1))]), h.sleeps

    results, sleeps = run(sandbox, body)
    assert results[0].outcome is RecordOutcome.CREATED
    assert statuses(sandbox).count(429) == 1
    assert max(sleeps) >= 2.0  # the sandbox's Retry-After
    assert len(persons_with(sandbox, "person1@example.com")) == 1


def test_a_reset_read_is_retried(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", {"spec": "reset@1"})
        return await h.adapter.test_connection()

    assert run(sandbox, body).account
    assert [(e.path, e.fault) for e in sandbox.requests] == [("/v1/users/me", "reset"), ("/v1/users/me", None)]


@pytest.mark.parametrize(("fault", "sent"), [("reset", ["reset", None]), ("504", ["504"])])
def test_a_create_whose_answer_is_lost_is_reconciled_without_a_duplicate(
    sandbox: PipedriveSandbox, fault: str, sent: list[str | None]
) -> None:
    """A reset drops the create before Pipedrive made it (sent again after the look-up); a gateway's 504 comes
    after it was made (found by the look-up, never sent again)."""

    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", [{"kind": fault, "at": [2], "path": "/api/v2/persons"}])
        return await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(1))])

    results = run(sandbox, body)
    assert results[0].outcome is RecordOutcome.CREATED
    assert len(persons_with(sandbox, "person1@example.com")) == 1
    creates = [e for e in sandbox.requests if (e.method, e.path) == ("POST", "/api/v2/persons")]
    assert [e.fault for e in creates] == sent


def two_persons(sandbox: PipedriveSandbox) -> tuple[str, str]:
    """Person 1, and a second person of hers (her other email) to merge into her: their Pipedrive ids."""

    async def body(h: Harness) -> list[str | None]:
        results = await h.adapter.upsert(RecordObject.CONTACT, [
            default_contact_record(contact(1)),
            default_contact_record(contact(2, email="person1+news@example.com"))])
        return [r.crm_id for r in results]

    keep, other = run(sandbox, body)
    assert keep is not None and other is not None
    return keep, other


def merges_sent(sandbox: PipedriveSandbox, other: str) -> list[str | None]:
    return [e.fault for e in sandbox.requests if (e.method, e.path) == ("PUT", f"/v1/persons/{other}/merge")]


@pytest.mark.parametrize(("fault", "sent"), [
    ("timeout_after_doing", ["timeout_after_doing"]),  # made, answer lost: found merged, not sent again
    ("504", ["504"]),  # made, a gateway gave up: found merged
    ("reset", ["reset", None]),  # dropped before it was made: both still there, sent once more
])
def test_a_merge_whose_answer_is_lost_is_looked_up_before_it_is_sent_again(
    sandbox: PipedriveSandbox, fault: str, sent: list[str | None]
) -> None:
    keep, other = two_persons(sandbox)

    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", [{"kind": fault, "probability": 1.0, "remaining": 1, "path": "/merge"}])
        return await h.adapter.merge_records(RecordObject.CONTACT, keep, other, merge_email="person1+news@example.com")

    result = run(sandbox, body)
    assert (result.surviving_id, result.merged_id, result.already_merged) == (keep, other, False)
    assert merges_sent(sandbox, other) == sent
    assert int(other) not in sandbox.persons
    assert [e["value"] for e in sandbox.persons[int(keep)].emails] == [
        "person1@example.com", "person1+news@example.com"]


def test_a_merge_an_earlier_run_made_unseen_is_already_merged_not_failed(sandbox: PipedriveSandbox) -> None:
    # The earlier run's answer was lost and it reported a failure; Pipedrive had merged them: the merge sent again
    # is refused as not found (404), and the merged person's email is on the survivor.
    keep, other = two_persons(sandbox)

    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", [{"kind": "timeout_after_doing", "probability": 1.0, "remaining": 1}])
        with pytest.raises(httpx.ReadTimeout):
            async with sandbox.client(headers={"x-api-token": sandbox.credentials()["apiToken"]}) as client:
                await client.put(f"/v1/persons/{other}/merge", json={"merge_with_id": int(keep)})
        return await h.adapter.merge_records(RecordObject.CONTACT, keep, other, merge_email="person1+news@example.com")

    result = run(sandbox, body)
    assert (result.surviving_id, result.merged_id, result.already_merged) == (keep, other, True)
    assert merges_sent(sandbox, other) == ["timeout_after_doing", None]


def test_a_merge_of_a_person_deleted_otherwise_is_still_not_found(sandbox: PipedriveSandbox) -> None:
    keep, other = two_persons(sandbox)
    del sandbox.persons[int(other)]
    with pytest.raises(NotFoundError):
        run(sandbox, lambda h: h.adapter.merge_records(RecordObject.CONTACT, keep, other,
                                                        merge_email="person1+news@example.com"))


def test_a_merge_whose_answer_is_lost_twice_leaves_both_and_says_so(sandbox: PipedriveSandbox) -> None:
    keep, other = two_persons(sandbox)

    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", [{"kind": "reset", "probability": 1.0, "path": "/merge"}])
        return await h.adapter.merge_records(RecordObject.CONTACT, keep, other, merge_email="person1+news@example.com")

    with pytest.raises(AmbiguousWriteError, match="nothing was written twice"):
        run(sandbox, body)
    assert merges_sent(sandbox, other) == ["reset", "reset"]
    assert {int(keep), int(other)} <= set(sandbox.persons)


def test_a_create_lost_after_it_was_saved_is_found_and_not_repeated(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> Any:
        h.transport.lose_after_saving = lambda r: (r.method, r.url.path) == ("POST", "/api/v2/persons")
        return await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(1))])

    results = run(sandbox, body)
    [person] = persons_with(sandbox, "person1@example.com")
    assert results[0].outcome is RecordOutcome.CREATED and results[0].crm_id == str(person.id)
    assert [e.path for e in sandbox.requests if e.method == "POST"] == ["/api/v2/persons", "/v1/notes"]
    assert len(our_notes(sandbox, person_id=person.id)) == 1


def test_a_token_refused_mid_push_stops_it_and_the_next_push_duplicates_nothing(sandbox: PipedriveSandbox) -> None:
    people = [contact(n) for n in range(1, 7)]
    records = [default_contact_record(c) for c in people]

    async def body(h: Harness) -> None:
        await h.control("PUT", "faults", {"spec": "expire@9"})
        await h.adapter.upsert(RecordObject.CONTACT, records)

    with pytest.raises(AuthError):
        run(sandbox, body)
    assert statuses(sandbox).count(401) == 1  # never retried

    results = run(sandbox, lambda h: h.adapter.upsert(RecordObject.CONTACT, records))
    assert all(r.ok for r in results)
    assert len(sandbox.persons) == 6
    for person in people:
        [stored] = persons_with(sandbox, person.email)
        assert len(our_notes(sandbox, person_id=stored.id)) == 1


def test_a_record_refused_as_invalid_fails_alone_with_the_reason(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> Any:
        await h.control("PUT", "faults", {"spec": "invalid@1"})
        return await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(n)) for n in (1, 2, 3)])

    results = run(sandbox, body)
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1 and sum(r.outcome is RecordOutcome.CREATED for r in results) == 2
    assert failed[0].category is ErrorCategory.VALIDATION and failed[0].message is not None
    assert failed[0].message.startswith(f"{failed[0].email}: Pipedrive refused the person")
    assert "the record was rejected as invalid" in failed[0].message
    assert persons_with(sandbox, failed[0].email) == []


def test_a_nearly_spent_daily_budget_stops_before_it_is_burned(sandbox: PipedriveSandbox) -> None:
    async def body(h: Harness) -> None:
        await h.control("PATCH", "config", {"tokens_spent": sandbox.daily_token_budget - 60})
        await h.adapter.test_connection()  # 2 tokens: 58 left, room for two searches of 20, not three
        await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(contact(n)) for n in (1, 2, 3)])

    with pytest.raises(BudgetExhaustedError, match="tokens are left"):
        run(sandbox, body)
    assert 429 not in statuses(sandbox)
    assert sandbox.tokens_spent <= sandbox.daily_token_budget


def test_steady_state_at_the_rate_limit_earns_no_429(sandbox: PipedriveSandbox) -> None:
    people = [contact(n) for n in range(1, 31)]

    async def body(h: Harness) -> Any:
        start = sandbox.clock.monotonic()
        # Two pushes of 15: small pushes search each email (a push of 20 or more lists persons instead).
        results = []
        for part in (people[:15], people[15:]):
            results += await h.adapter.upsert(RecordObject.CONTACT, [default_contact_record(c) for c in part])
        return results, sandbox.clock.monotonic() - start, h.adapter.quota()

    results, elapsed, quota = run(sandbox, body)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert 429 not in statuses(sandbox)
    assert len(sandbox.requests) == 90
    # 30 searches at 9 per 2-second window and 90 requests at 19 per window: pacing took at least 8 seconds.
    assert elapsed >= 8
    assert quota.remaining == sandbox.daily_token_budget - sandbox.tokens_spent


def test_a_linked_lead_is_updated_in_place(sandbox: PipedriveSandbox) -> None:
    lead = Lead(email="linked@example.com", first_name="Lin", last_name="Ked", source="reddit_dm")

    async def body(h: Harness) -> Any:
        [first] = await h.adapter.upsert(RecordObject.LEAD, [default_lead_record(lead)])
        renamed = default_lead_record(lead.model_copy(update={"source": "reddit_comment"}))
        relinked = OutboundRecord(email=renamed.email, fields=renamed.fields, crm_id=first.crm_id, note=renamed.note)
        [second] = await h.adapter.upsert(RecordObject.LEAD, [relinked])
        return first, second

    first, second = run(sandbox, body)
    assert (first.outcome, second.outcome) == (RecordOutcome.CREATED, RecordOutcome.UPDATED)
    assert second.crm_id == first.crm_id and len(sandbox.leads) == 1
    stored = sandbox.leads[str(first.crm_id)]
    assert stored.title == "Lin Ked via reddit_comment"
    [note] = our_notes(sandbox, lead_id=stored.id)  # the source changed, so the note did: written in place
    assert "reddit_comment" in note


def test_a_timeline_activity_lost_after_it_was_saved_is_found_among_many_and_not_repeated(
    sandbox: PipedriveSandbox,
) -> None:
    async def body(h: Harness) -> Any:
        [person] = await h.adapter.upsert(RecordObject.CONTACT, [OutboundRecord(email="d@example.com", fields={})])
        person_id = person.crm_id or ""
        # More activities than one listing page: the new one is found among the newest, not the oldest hundred.
        start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        older = [TimelineEntry(person_id, f"Older {n}", "", start + timedelta(minutes=n), TimelineKind.MESSAGES)
                 for n in range(120)]
        await h.adapter.log_timeline(RecordObject.CONTACT, older)
        h.transport.lose_after_saving = lambda r: (r.method, r.url.path) == ("POST", "/api/v2/activities")
        entry = TimelineEntry(person_id, "Replied on X", "hello", datetime(2026, 12, 1, 14, 5, tzinfo=UTC),
                              TimelineKind.MESSAGES)
        return int(person_id), await h.adapter.log_timeline(RecordObject.CONTACT, [entry])

    person_id, [result] = run(sandbox, body)
    replies = [a for a in sandbox.activities.values() if a.person_id == person_id and a.subject == "Replied on X"]
    assert len(replies) == 1, "the activity whose answer was lost was posted again"
    assert result.entry_id == str(replies[0].id)
    assert replies[0].due_time == "14:05:00"  # v2 keeps and answers the seconds
