"""The Salesforce adapter against the in-process Salesforce sandbox: pushes, pulls, notes, faults and limits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from crm_desktop.domain.models import Contact, Integration, Lead, Provider, SocialContext
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers import salesforce as salesforce_module
from crm_desktop.providers.contract import AdapterOptions, OutboundRecord, RecordResult
from crm_desktop.providers.errors import (
    AuthError,
    BudgetExhaustedError,
    NotFoundError,
    RateLimitError,
    RequestRejectedError,
    TransientError,
)
from crm_desktop.providers.salesforce import SalesforceAdapter
from crm_desktop.providers.salesforce_records import default_contact_record, default_lead_record
from crm_desktop.sandbox.core import LoggedRequest, SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer

COMPOSITE = "/services/data/v61.0/composite/sobjects"
QUERY = "/services/data/v61.0/query"
TOKEN = "/services/oauth2/token"


class RecordingSleep:
    """A sleep that records each wait and sleeps only ``scale`` of it (0: just yields to the loop)."""

    def __init__(self, scale: float = 0.0) -> None:
        self.scale = scale
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds * self.scale)


def new_sandbox(contacts: int = 0, **kwargs: Any) -> SalesforceSandbox:
    return SalesforceSandbox(SandboxConfig(contacts=contacts), **kwargs)


def adapter_for(
    sandbox: SalesforceSandbox,
    *,
    credentials: dict[str, Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    save_tokens: Callable[[dict[str, Any]], None] | None = None,
    sleep: RecordingSleep | None = None,
    **options: Any,
) -> SalesforceAdapter:
    integration = Integration(provider=Provider.SALESFORCE, name="Sandbox org", base_url=sandbox.base_url)
    return SalesforceAdapter(
        integration,
        credentials or sandbox.credentials(),
        transport=transport or sandbox.transport(),
        save_tokens=save_tokens,
        sleep=sleep or RecordingSleep(),
        options=AdapterOptions(**options),
    )


async def control(sandbox: SalesforceSandbox, method: str, path: str, payload: Any = None) -> Any:
    """Call the sandbox's control endpoint over the same in-process transport."""
    async with sandbox.client() as client:
        response = await client.request(method, f"/__sandbox__/{path}", json=payload)
        response.raise_for_status()
        return response.json()


def api_log(sandbox: SalesforceSandbox) -> list[LoggedRequest]:
    return list(sandbox.requests)


def run(sandbox: SalesforceSandbox, scenario: Callable[[SalesforceAdapter], Awaitable[Any]], **kwargs: Any) -> Any:
    async def go() -> Any:
        adapter = adapter_for(sandbox, **kwargs)
        try:
            return await scenario(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(go())


def people(count: int, *, prefix: str = "p", **fields: Any) -> list[OutboundRecord]:
    return [
        OutboundRecord(
            f"{prefix}{i}@acme-{i % 7}.com",
            {"FirstName": f"First{i}", "LastName": f"Last{i}", "twitter_username__c": f"{prefix}{i}", **fields},
        )
        for i in range(count)
    ]


def outcomes(results: list[RecordResult]) -> list[RecordOutcome]:
    return [r.outcome for r in results]


def stored(sandbox: SalesforceSandbox, sobject: str) -> list[dict[str, Any]]:
    return list(sandbox.records[sobject].values())


# -- pushes -----------------------------------------------------------------------------------------------------


def test_create_then_update_then_unchanged() -> None:
    sandbox = new_sandbox()
    first = people(5)
    second = [
        OutboundRecord(r.email, {**r.fields, "social_followers__c": 100 + i}) if i < 2 else r
        for i, r in enumerate(first)
    ]

    async def scenario(adapter: SalesforceAdapter) -> Any:
        created = await adapter.upsert(RecordObject.CONTACT, first)
        calls_after_create = adapter.api_calls
        updated = await adapter.upsert(RecordObject.CONTACT, second)
        calls_after_update = adapter.api_calls
        again = await adapter.upsert(RecordObject.CONTACT, second)
        return created, updated, again, calls_after_create, calls_after_update, adapter.api_calls

    created, updated, again, calls1, calls2, calls3 = run(sandbox, scenario)
    assert outcomes(created) == [RecordOutcome.CREATED] * 5
    assert outcomes(updated) == [RecordOutcome.UPDATED] * 2 + [RecordOutcome.UNCHANGED] * 3
    assert outcomes(again) == [RecordOutcome.UNCHANGED] * 5
    assert [r.crm_id for r in updated] == [r.crm_id for r in created]
    # Each write is followed by one read of the written records' change stamps (the engine's echo recognition).
    assert calls1 == 4  # describe, one dedupe query, one create collection, one stamp read
    assert calls2 - calls1 == 3  # one query, one update collection, one stamp read
    assert calls3 - calls2 == 1  # one query, nothing to write (nor to read back)
    contacts = {c["Email"]: c for c in stored(sandbox, "Contact")}
    assert len(contacts) == 5
    assert contacts["p0@acme-0.com"]["social_followers__c"] == 100.0
    assert contacts["p4@acme-4.com"]["twitter_username__c"] == "p4"


def test_default_mapping_of_generated_people_pushes_then_stays_unchanged() -> None:
    sandbox = new_sandbox()
    generated = generate_people(60, seed=11)
    contacts = [
        default_contact_record(
            Contact(
                email=p.email,
                first_name=p.first_name,
                last_name=p.last_name,
                company=p.company,
                phone=p.phone,
                social_profiles=p.social_profiles,
            )
        )
        for p in generated
    ]
    leads = [
        default_lead_record(
            Lead(
                email=p.email,
                first_name=p.first_name,
                last_name=p.last_name,
                company=p.company,
                source=p.lead_source,
                status=p.lead_status,
                social_context=SocialContext(
                    platform=p.social_platform,
                    conversation_id=p.conversation_id,
                    sentiment=p.sentiment,
                    engagement_score=p.engagement_score,
                ),
            )
        )
        for p in generated
        if p.is_lead
    ]

    async def scenario(adapter: SalesforceAdapter) -> Any:
        first = await adapter.upsert(RecordObject.CONTACT, contacts), await adapter.upsert(RecordObject.LEAD, leads)
        second = await adapter.upsert(RecordObject.CONTACT, contacts), await adapter.upsert(RecordObject.LEAD, leads)
        return first, second

    (contact_results, lead_results), (contacts_again, leads_again) = run(sandbox, scenario)
    assert [r.message for r in contact_results + lead_results if not r.ok] == []
    assert len(sandbox.records["Contact"]) == 60 and len(sandbox.records["Lead"]) == len(leads) > 0
    assert {r.outcome for r in contacts_again + leads_again} == {RecordOutcome.UNCHANGED}
    stored_contact = next(c for c in stored(sandbox, "Contact") if c["Email"] == generated[0].email)
    assert stored_contact["social_followers__c"] == float(generated[0].total_followers)


def test_api_calls_per_record_stay_near_one_per_hundred() -> None:
    sandbox = new_sandbox()
    records = people(1000, prefix="bulk")

    async def scenario(adapter: SalesforceAdapter) -> Any:
        results = await adapter.upsert(RecordObject.CONTACT, records)
        return results, adapter.api_calls

    results, calls = run(sandbox, scenario)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert len(sandbox.records["Contact"]) == 1000
    assert calls == 16  # describe + 5 queries + 5 collections of 200 + 5 reads of their change stamps
    assert calls / len(records) <= 0.016


def test_lead_company_filled_and_missing_last_name_refused_before_sending() -> None:
    sandbox = new_sandbox()
    records = [
        OutboundRecord("kai@bluebird.io", {"LastName": "Kai"}),
        OutboundRecord("nameless@bluebird.io", {"FirstName": "No"}),
    ]

    results = run(sandbox, lambda adapter: adapter.upsert(RecordObject.LEAD, records))
    assert results[0].outcome is RecordOutcome.CREATED
    assert results[1].outcome is RecordOutcome.FAILED and results[1].category is ErrorCategory.VALIDATION
    assert "LastName" in (results[1].message or "")
    leads = stored(sandbox, "Lead")
    assert [(lead["Email"], lead["Company"]) for lead in leads] == [("kai@bluebird.io", "Bluebird")]
    sent = [r.body for r in api_log(sandbox) if r.method == "POST" and r.path == COMPOSITE]
    assert [rec["Email"] for rec in sent[0]["records"]] == ["kai@bluebird.io"]


def test_linked_record_is_updated_by_id_when_its_email_changed() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        created = await adapter.upsert(RecordObject.CONTACT, [OutboundRecord("old@acme.com", {"LastName": "Moved"})])
        crm_id = created[0].crm_id
        moved = await adapter.upsert(
            RecordObject.CONTACT, [OutboundRecord("new@acme.com", {"LastName": "Moved"}, crm_id=crm_id)]
        )
        return crm_id, moved

    crm_id, moved = run(sandbox, scenario)
    assert moved[0].outcome is RecordOutcome.UPDATED and moved[0].crm_id == crm_id
    contacts = stored(sandbox, "Contact")
    assert len(contacts) == 1 and contacts[0]["Email"] == "new@acme.com" and contacts[0]["Id"] == crm_id


def test_bad_records_inside_a_batch_fail_alone_with_their_reasons() -> None:
    sandbox = new_sandbox(contacts=12)
    leads = list(sandbox.records["Lead"].values())
    converted, deleted = leads[0], leads[1]

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", f"records/Lead/{converted['Id']}", {"IsConverted": True})
        await control(sandbox, "PATCH", f"records/Lead/{deleted['Id']}", {"_delete": True})
        records = [
            OutboundRecord("fine1@acme.com", {"LastName": "Fine"}),
            OutboundRecord("toolong@acme.com", {"LastName": "Long", "Title": "x" * 200}),
            OutboundRecord("fine2@acme.com", {"LastName": "Fine", "social_sentiment__c": "ecstatic"}),
            OutboundRecord(converted["Email"], {"LastName": "Converted", "Title": "CTO"}),
            OutboundRecord("gone@acme.com", {"LastName": "Gone"}, crm_id=deleted["Id"]),
            OutboundRecord("fine3@acme.com", {"LastName": "Fine"}),
        ]
        return await adapter.upsert(RecordObject.LEAD, records)

    results = run(sandbox, scenario)
    assert outcomes(results) == [
        RecordOutcome.CREATED,
        RecordOutcome.FAILED,
        RecordOutcome.FAILED,
        RecordOutcome.FAILED,
        RecordOutcome.FAILED,
        RecordOutcome.CREATED,
    ]
    too_long, picklist, was_converted, gone = results[1:5]
    assert too_long.category is ErrorCategory.VALIDATION
    assert "Title" in (too_long.message or "") and "STRING_TOO_LONG" in (too_long.message or "")
    assert "toolong@acme.com" in (too_long.message or "")
    # The field by the label Salesforce's reason starts with, named once.
    assert picklist.category is ErrorCategory.VALIDATION
    assert "fine2@acme.com: Social Sentiment: bad value for restricted picklist field" in (picklist.message or "")
    assert was_converted.category is ErrorCategory.VALIDATION and "lead was converted" in (was_converted.message or "")
    assert gone.category is ErrorCategory.NOT_FOUND and "ENTITY_IS_DELETED" in (gone.message or "")


def test_injected_invalid_record_fails_alone() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "invalid@3"})
        return await adapter.upsert(RecordObject.CONTACT, people(6))

    results = run(sandbox, scenario)
    failed = [r for r in results if not r.ok]
    assert [r.email for r in failed] == [results[2].email]
    assert failed[0].category is ErrorCategory.VALIDATION
    assert "INVALID_EMAIL_ADDRESS" in (failed[0].message or "") or "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (
        failed[0].message or ""
    )
    assert len(sandbox.records["Contact"]) == 5


def test_duplicate_rule_reports_duplicate() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        first = await adapter.upsert(RecordObject.CONTACT, [OutboundRecord("a@acme.com", {"LastName": "A"})])
        await adapter.upsert(RecordObject.CONTACT, [OutboundRecord("b@acme.com", {"LastName": "B"})])
        # Re-pointing the linked record at an email another contact holds trips the duplicate rule.
        return await adapter.upsert(
            RecordObject.CONTACT, [OutboundRecord("b@acme.com", {"LastName": "A"}, crm_id=first[0].crm_id)]
        )

    results = run(sandbox, scenario)
    assert results[0].outcome is RecordOutcome.FAILED and results[0].category is ErrorCategory.DUPLICATE


def test_missing_custom_fields_are_reported_and_stop_a_push() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"custom_fields": ["twitter_username__c"]})
        missing = await adapter.missing_fields(RecordObject.CONTACT, ["Email", "twitter_username__c", "tiktok__c"])
        with pytest.raises(RequestRejectedError, match="tiktok__c"):
            await adapter.upsert(
                RecordObject.CONTACT, [OutboundRecord("x@acme.com", {"LastName": "X", "tiktok__c": "x"})]
            )
        return missing

    assert run(sandbox, scenario) == ["tiktok__c"]
    assert not [r for r in api_log(sandbox) if r.path == COMPOSITE]


# -- reads ------------------------------------------------------------------------------------------------------


def test_find_by_emails_and_get_record() -> None:
    sandbox = new_sandbox(contacts=20)
    contacts = stored(sandbox, "Contact")
    wanted = [contacts[3]["Email"].upper(), contacts[7]["Email"], "nobody@nowhere.example"]

    async def scenario(adapter: SalesforceAdapter) -> Any:
        found = await adapter.find_by_emails(RecordObject.CONTACT, wanted)
        by_email = await adapter.get_record(RecordObject.CONTACT, email=contacts[5]["Email"])
        by_id = await adapter.get_record(RecordObject.CONTACT, crm_id=contacts[9]["Id"])
        unknown_id = await adapter.get_record(RecordObject.CONTACT, crm_id="003Hs00000000ZZZZZ")
        unknown_email = await adapter.get_record(RecordObject.CONTACT, email="nobody@nowhere.example")
        return found, by_email, by_id, unknown_id, unknown_email

    found, by_email, by_id, unknown_id, unknown_email = run(sandbox, scenario)
    assert set(found) == {contacts[3]["Email"].lower(), contacts[7]["Email"].lower()}
    record = found[contacts[3]["Email"].lower()]
    assert record.crm_id == contacts[3]["Id"]
    assert record.fields["LastName"] == contacts[3]["LastName"]
    assert "twitter_username__c" in record.fields and record.modified_at is not None
    assert by_email is not None and by_email.crm_id == contacts[5]["Id"]
    assert by_id is not None and by_id.email == contacts[9]["Email"].lower()
    assert unknown_id is None and unknown_email is None


def test_list_fields_shows_labels_types_and_picklists() -> None:
    sandbox = new_sandbox()
    fields = run(sandbox, lambda adapter: adapter.list_fields(RecordObject.LEAD))
    by_name = {f.name: f for f in fields}
    assert by_name["Company"].label == "Company" and by_name["Company"].length == 255
    assert by_name["Email"].type == "email" and by_name["Email"].writable
    assert not by_name["SystemModstamp"].writable
    sentiment = by_name["social_sentiment__c"]
    assert sentiment.custom and set(sentiment.options) == {"positive", "neutral", "negative", "mixed"}
    assert "Working - Contacted" in by_name["Status"].options


def test_changes_since_pages_to_the_end_then_only_new_edits() -> None:
    sandbox = new_sandbox(contacts=450)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"query_page_size": 200})
        pages = [page async for page in adapter.changes_since(RecordObject.CONTACT, None)]
        cursor = pages[-1].cursor
        edited = pages[0].records[10]
        await control(sandbox, "PATCH", f"records/Contact/{edited.crm_id}", {"Title": "Head of Social"})
        after_edit = [page async for page in adapter.changes_since(RecordObject.CONTACT, cursor)]
        quiet = [page async for page in adapter.changes_since(RecordObject.CONTACT, after_edit[-1].cursor)]
        return pages, edited, after_edit, quiet

    pages, edited, after_edit, quiet = run(sandbox, scenario)
    assert [len(p.records) for p in pages] == [200, 200, 50]
    ids = [r.crm_id for p in pages for r in p.records]
    assert len(set(ids)) == 450
    stamps = [r.modified_at for p in pages for r in p.records]
    assert stamps == sorted(stamps)
    assert [r.crm_id for p in after_edit for r in p.records] == [edited.crm_id]
    assert after_edit[0].records[0].fields["Title"] == "Head of Social"
    assert quiet == []
    queries = [r for r in api_log(sandbox) if r.path.startswith(QUERY)]
    assert sum(1 for r in queries if r.path != QUERY) == 2  # two nextRecordsUrl pages in the first pull


def test_changes_since_restarts_its_query_after_the_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(salesforce_module, "CHANGES_QUERY_LIMIT", 120)
    sandbox = new_sandbox(contacts=300)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        return [page async for page in adapter.changes_since(RecordObject.CONTACT, None)]

    pages = run(sandbox, scenario)
    ids = [r.crm_id for p in pages for r in p.records]
    assert len(ids) == 300 and len(set(ids)) == 300
    assert [len(p.records) for p in pages] == [120, 120, 60]
    first_queries = [r for r in api_log(sandbox) if r.path == QUERY]
    assert len(first_queries) == 3


def soql_of(entry: LoggedRequest) -> str:
    return parse_qs(entry.query).get("q", [""])[0]


def test_a_pull_told_its_echoes_reads_stamps_first_and_full_records_only_for_the_others() -> None:
    """After a push, most changed records are our own writes: the pull reads ``Id, SystemModstamp`` and fetches
    every field only of the records that are not echoes, while the cursor still moves past all of them."""
    sandbox = new_sandbox(contacts=450)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"query_page_size": 200})
        everything = [page async for page in adapter.changes_since(RecordObject.CONTACT, None)]
        ids = [r.crm_id for p in everything for r in p.records]
        others = {ids[5], ids[260], ids[449]}
        asked: list[list[str]] = []

        def echoes(stamped: Sequence[tuple[str, datetime | None]]) -> set[str]:
            asked.append([crm_id for crm_id, _ in stamped])
            assert all(stamp is not None for _, stamp in stamped)
            return {crm_id for crm_id, _ in stamped if crm_id not in others}

        sandbox.requests.clear()
        pages = [page async for page in adapter.changes_since(RecordObject.CONTACT, None, echoes=echoes)]
        after = [page async for page in adapter.changes_since(RecordObject.CONTACT, pages[-1].cursor, echoes=echoes)]
        return everything, pages, asked, others, after

    everything, pages, asked, others, after = run(sandbox, scenario)
    assert [len(p.records) for p in pages] == [1, 1, 1]
    assert {r.crm_id for p in pages for r in p.records} == others
    assert [p.cursor for p in pages] == [p.cursor for p in everything]
    assert [crm_id for page in asked for crm_id in page] == [r.crm_id for p in everything for r in p.records]
    full = {r.crm_id: r for p in everything for r in p.records}
    for record in (r for p in pages for r in p.records):
        assert record.fields == full[record.crm_id].fields and record.email == full[record.crm_id].email
    assert after == []
    queries = [soql_of(e) for e in api_log(sandbox) if e.path == QUERY]
    change_queries = [q for q in queries if "ORDER BY SystemModstamp" in q]
    assert change_queries and all(q.startswith("SELECT Id, SystemModstamp FROM Contact") for q in change_queries)
    by_id = [q for q in queries if "WHERE Id IN" in q]
    assert len(by_id) == 3 and all("twitter_username__c" in q for q in by_id)


def test_a_pull_full_of_other_changes_reads_whole_pages_again() -> None:
    """When the other changes of a page would take more than one ``Id IN`` query, the page and the rest of the
    pull are read whole (one call a page), and nothing is lost or delivered twice."""
    sandbox = new_sandbox(contacts=900)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"query_page_size": 300})
        ids = [r.crm_id async for p in adapter.changes_since(RecordObject.CONTACT, None) for r in p.records]
        ours = set(ids[:300])  # the first page is all echoes, the next ones all others' changes
        sandbox.requests.clear()
        pages = [
            page async for page in adapter.changes_since(
                RecordObject.CONTACT, None, echoes=lambda stamped: {i for i, _ in stamped if i in ours}
            )
        ]
        return ids, pages

    ids, pages = run(sandbox, scenario)
    assert [len(p.records) for p in pages] == [0, 300, 300]
    assert [r.crm_id for p in pages for r in p.records] == ids[300:]
    queries = [soql_of(e) for e in api_log(sandbox) if e.path == QUERY]
    assert [q.startswith("SELECT Id, SystemModstamp FROM") for q in queries] == [True, False]
    assert "WHERE (SystemModstamp >" in queries[1]
    assert not any("WHERE Id IN" in q for q in queries)


class HiddenSObjects(httpx.AsyncBaseTransport):
    """The sandbox as an org that does not offer some sObjects over REST: Salesforce's NOT_FOUND for them."""

    def __init__(self, sandbox: SalesforceSandbox, hidden: set[str]) -> None:
        self._inner = sandbox.transport()
        self._hidden = {f"/services/data/v61.0/sobjects/{name}" for name in hidden}
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in self._hidden:
            self.refused.append(request.url.path)
            body = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
            return httpx.Response(404, json=body, request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_notes_are_attached_when_the_org_has_a_note_object() -> None:
    text = "Twitter DM\nAsked about pricing"

    def add_note_to_first_contact(sandbox: SalesforceSandbox, hidden: set[str]) -> tuple[str, str, list[str]]:
        contact_id = stored(sandbox, "Contact")[0]["Id"]
        transport = HiddenSObjects(sandbox, hidden)

        async def scenario(adapter: SalesforceAdapter) -> Any:
            first = await adapter.add_note(RecordObject.CONTACT, contact_id, text)
            second = await adapter.add_note(RecordObject.CONTACT, contact_id, "Retweeted the launch")
            return first, second

        note_ids = run(sandbox, scenario, transport=transport)
        return contact_id, note_ids[0], transport.refused

    # The org has Note: each note is a Note on the contact, titled by its first line.
    sandbox = new_sandbox(contacts=3)
    contact_id, note_id, _ = add_note_to_first_contact(sandbox, set())
    note = sandbox.records["Note"][note_id]
    assert (note["ParentId"], note["Title"], note["Body"]) == (contact_id, "Twitter DM", text)
    assert sorted(n["Body"] for n in stored(sandbox, "Note")) == ["Retweeted the launch", text]
    assert sandbox.records["Task"] == {}
    posted = [r for r in api_log(sandbox) if r.method == "POST" and r.path.startswith("/services/data/")]
    assert [(r.path, r.status) for r in posted] == [("/services/data/v61.0/sobjects/Note", 201)] * 2

    # No Note object: the adapter falls back to a Task on the person (WhoId) and sticks with it.
    sandbox = new_sandbox(contacts=3)
    contact_id, task_id, refused = add_note_to_first_contact(sandbox, {"Note"})
    assert refused == ["/services/data/v61.0/sobjects/Note"]
    task = sandbox.records["Task"][task_id]
    assert (task["WhoId"], task["Subject"], task["Description"]) == (contact_id, "Twitter DM", text)
    assert task["Status"] == "Completed"
    assert len(sandbox.records["Task"]) == 2 and sandbox.records["Note"] == {}
    tasks_posted = [r.path for r in api_log(sandbox) if r.method == "POST"]
    assert tasks_posted == ["/services/data/v61.0/sobjects/Task"] * 2

    # Neither: the adapter says so instead of pretending.
    sandbox = new_sandbox(contacts=3)
    with pytest.raises(NotFoundError, match="neither Note nor Task"):
        add_note_to_first_contact(sandbox, {"Note", "Task"})
    assert (sandbox.records["Note"], sandbox.records["Task"]) == ({}, {})


def test_connection_reports_user_org_and_quota() -> None:
    sandbox = new_sandbox()
    info = run(sandbox, lambda adapter: adapter.test_connection())
    assert info.account == sandbox.org_id and info.user == sandbox.username
    assert info.quota is not None and info.quota.limit == sandbox.daily_api_limit
    assert info.quota.remaining is not None and 0 < info.quota.remaining < sandbox.daily_api_limit


# -- faults -----------------------------------------------------------------------------------------------------


def test_server_error_burst_is_retried() -> None:
    sandbox = new_sandbox()
    sleep = RecordingSleep()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "5xx@2@3@4"})
        return await adapter.upsert(RecordObject.CONTACT, people(3))

    results = run(sandbox, scenario, sleep=sleep)
    assert outcomes(results) == [RecordOutcome.CREATED] * 3
    statuses = [r.status for r in api_log(sandbox)]
    assert statuses.count(503) == 3
    assert len(sleep.waits) == 3
    assert len(sandbox.records["Contact"]) == 3


def test_rate_limit_retry_after_is_honoured() -> None:
    sandbox = new_sandbox()
    sleep = RecordingSleep()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "429@3"})
        return await adapter.upsert(RecordObject.CONTACT, people(3))

    results = run(sandbox, scenario, sleep=sleep)
    assert outcomes(results) == [RecordOutcome.CREATED] * 3
    assert [r.status for r in api_log(sandbox)].count(429) == 1
    assert 1.0 in sleep.waits  # the sandbox's Retry-After: 1
    assert len(sandbox.records["Contact"]) == 3


def test_connection_reset_on_a_read_is_retried() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "reset@2"})
        return await adapter.upsert(RecordObject.CONTACT, people(3))

    results = run(sandbox, scenario)
    assert outcomes(results) == [RecordOutcome.CREATED] * 3
    queries = [r for r in api_log(sandbox) if r.path == QUERY]
    # The dedupe query, reset then retried; then the read of the written records' change stamps.
    assert [q.fault for q in queries] == ["reset", None, None]


def test_a_gateway_timeout_after_a_create_landed_creates_once() -> None:
    """The composite create was made, then a gateway answered 504: the records are found, not created again."""
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        gateway_gives_up = {"kind": "504", "probability": 1.0, "remaining": 1, "path": COMPOSITE}
        await control(sandbox, "PUT", "faults", [gateway_gives_up])
        return await adapter.upsert(RecordObject.CONTACT, people(4))

    results = run(sandbox, scenario)
    assert outcomes(results) == [RecordOutcome.CREATED] * 4
    assert len(sandbox.records["Contact"]) == 4
    creates = [r.fault for r in api_log(sandbox) if (r.method, r.path) == ("POST", COMPOSITE)]
    assert creates == ["504"]


def test_connection_reset_before_a_create_landed_creates_once() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "reset@3"})
        return await adapter.upsert(RecordObject.CONTACT, people(4))

    results = run(sandbox, scenario)
    assert outcomes(results) == [RecordOutcome.CREATED] * 4
    assert len(sandbox.records["Contact"]) == 4
    paths = [(r.method, r.path) for r in api_log(sandbox)]
    assert paths.count(("POST", COMPOSITE)) == 2  # the dropped create, then the one that landed
    assert paths.count(("GET", QUERY)) == 3  # the dedupe query, the reconciling one, the change stamps' read


class LoseFirstCreateAnswer(httpx.AsyncBaseTransport):
    """Delivers the first collection create to the sandbox, then drops the connection before the answer arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.dropped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == COMPOSITE and not self.dropped:
            self.dropped += 1
            await response.aread()
            raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_connection_lost_after_a_create_landed_is_reconciled_without_duplicates() -> None:
    sandbox = new_sandbox()
    transport = LoseFirstCreateAnswer(sandbox.transport())

    async def scenario(adapter: SalesforceAdapter) -> Any:
        return await adapter.upsert(RecordObject.CONTACT, people(4))

    results = run(sandbox, scenario, transport=transport)
    assert transport.dropped == 1
    assert outcomes(results) == [RecordOutcome.CREATED] * 4
    assert len(sandbox.records["Contact"]) == 4
    assert {r.crm_id for r in results} == set(sandbox.records["Contact"])
    paths = [(r.method, r.path) for r in api_log(sandbox)]
    assert paths.count(("POST", COMPOSITE)) == 1  # everything had landed: nothing was sent twice


class SlowFirstCreate(httpx.AsyncBaseTransport):
    """The CRM takes ``seconds`` over the first collection create (triggers, flows) and makes it whether or not its
    client still waits, as Salesforce finishes a request whose client gave up: a client whose read timeout is
    shorter gets ``ReadTimeout`` meanwhile."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.work: asyncio.Task[httpx.Response] | None = None
        self.timed_out = 0

    async def _late(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.seconds)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != COMPOSITE or self.work is not None:
            return await self.inner.handle_async_request(request)
        self.work = asyncio.ensure_future(self._late(request))
        read = (request.extensions.get("timeout") or {}).get("read")
        try:
            return await asyncio.wait_for(asyncio.shield(self.work), read)
        except TimeoutError:
            self.timed_out += 1
            raise httpx.ReadTimeout("no answer within the read timeout", request=request) from None

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_create_slower_than_the_request_timeout_is_waited_for_not_sent_twice() -> None:
    # A write's connection is kept while the CRM works on it: giving up and looking the records up before the CRM
    # made them would send them again, and the CRM would then make both (no duplicate rule stops the second in an
    # org whose admin turned the Email duplicate rules off).
    sandbox = new_sandbox(duplicate_rules=False)
    transport = SlowFirstCreate(sandbox.transport(), seconds=1.5)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        results = await adapter.upsert(RecordObject.CONTACT, people(4))
        assert transport.work is not None
        await transport.work  # whatever the client did, the CRM finishes the slow create
        return results

    results = run(sandbox, scenario, transport=transport, timeout=0.5)
    assert outcomes(results) == [RecordOutcome.CREATED] * 4
    assert len(sandbox.records["Contact"]) == 4
    assert transport.timed_out == 0


def test_token_expiry_mid_push_refreshes_once_and_saves_the_new_token() -> None:
    sandbox = new_sandbox()
    original = sandbox.credentials()
    saved: list[dict[str, Any]] = []

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PUT", "faults", {"spec": "expire@3"})
        return await adapter.upsert(RecordObject.CONTACT, people(250))

    results = run(sandbox, scenario, save_tokens=saved.append)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert len(sandbox.records["Contact"]) == 250
    assert len(saved) == 1
    assert saved[0]["accessToken"] != original["accessToken"]
    assert saved[0]["refreshToken"] == original["refreshToken"]
    log = api_log(sandbox)
    assert [r.status for r in log if r.path == TOKEN] == [200]
    assert [r.status for r in log].count(401) == 1


@pytest.mark.loopback
@pytest.mark.parametrize("refused_first", [True, False], ids=["refused-at-the-old-instance", "stale-by-its-age"])
def test_a_refresh_naming_another_instance_moves_the_following_calls_there(refused_first: bool) -> None:
    # The org moved from instance A to B: the session is refused at A (or known stale), the refresh answers B's
    # instance_url. It was saved, but the adapter kept calling A (refused again: "reconnect the integration") until
    # the app restarted.
    moved_from, org = new_sandbox(), new_sandbox()
    with SandboxServer([moved_from, org]):
        session = {"accessToken": "00D-stale"} if refused_first else {"issuedAt": 1_000}
        credentials = {**org.credentials(), **session, "instanceUrl": moved_from.base_url}
        integration = Integration(provider=Provider.SALESFORCE, name="Sandbox org", base_url=org.base_url)
        saved: list[dict[str, Any]] = []
        adapter = SalesforceAdapter(integration, credentials, save_tokens=saved.append, sleep=RecordingSleep(),
                                    options=AdapterOptions())

        async def scenario() -> list[RecordResult]:
            try:
                results = await adapter.upsert(RecordObject.CONTACT, people(3))
                await adapter.test_connection()
                return results
            finally:
                await adapter.aclose()

        results = asyncio.run(scenario())
    assert outcomes(results) == [RecordOutcome.CREATED] * 3
    assert len(org.records["Contact"]) == 3
    assert [(r.path, r.status) for r in api_log(moved_from)] == (
        [("/services/data/v61.0/sobjects/Contact/describe", 401)] if refused_first else []
    ), "only the call refused there went to the old instance"
    assert [r.status for r in api_log(org) if r.path == TOKEN] == [200]
    assert [s["instanceUrl"] for s in saved] == [org.base_url], "the integration's saved session names the new one"
    assert str(adapter.http.client.base_url).rstrip("/") == org.base_url


def test_refused_refresh_token_raises_auth_error_without_retrying() -> None:
    sandbox = new_sandbox()
    credentials = {**sandbox.credentials(), "accessToken": "00Dstale!token", "refreshToken": "5Aep-revoked"}

    with pytest.raises(AuthError, match="reconnect") as caught:
        run(sandbox, lambda adapter: adapter.upsert(RecordObject.CONTACT, people(2)), credentials=credentials)
    assert "revoked" not in str(caught.value) and "stale" not in str(caught.value)
    log = api_log(sandbox)
    assert [(r.path, r.status) for r in log] == [
        ("/services/data/v61.0/sobjects/Contact/describe", 401),
        (TOKEN, 400),
    ]


@pytest.mark.loopback
def test_a_login_server_that_never_answers_the_refresh_times_out_instead_of_freezing_the_sync() -> None:
    # A connection the network swallows (it is accepted, nothing ever comes back): the session's refresh is given up
    # after the request timeout as any request is, never waited on for ever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        integration = Integration(provider=Provider.SALESFORCE, name="Sandbox org", base_url=url)
        adapter = SalesforceAdapter(
            integration, {"clientId": "app", "refreshToken": "5Aep-refresh", "instanceUrl": url},
            sleep=RecordingSleep(), options=AdapterOptions(timeout=0.3, max_attempts=2),
        )

        async def scenario() -> Any:
            try:
                return await asyncio.wait_for(adapter.test_connection(), 10)
            finally:
                await adapter.aclose()

        with pytest.raises(TransientError, match="network failure") as caught:
            asyncio.run(scenario())
    assert caught.value.category is ErrorCategory.NETWORK
    assert adapter.api_calls == 2, "the refresh was tried again once, as any request is"


def test_daily_budget_nearly_spent_stops_before_burning_the_reserve() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"daily_api_limit": 300, "api_usage": 250})
        with pytest.raises(BudgetExhaustedError, match="left today"):
            await adapter.upsert(RecordObject.CONTACT, people(8000))
        return await control(sandbox, "GET", "state")

    state = run(sandbox, scenario, daily_reserve=30)
    assert sandbox.daily_api_limit - sandbox._api_usage() >= 30
    assert not [r for r in api_log(sandbox) if r.status == 403]
    assert state["requests"] <= 21


def test_daily_limit_reached_is_fatal_and_not_retried() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"daily_api_limit": 300, "api_usage": 300})
        await adapter.upsert(RecordObject.CONTACT, people(2))

    with pytest.raises(RateLimitError, match="TotalRequests") as caught:
        run(sandbox, scenario)
    assert not isinstance(caught.value, BudgetExhaustedError)
    assert [(r.status, r.path) for r in api_log(sandbox)] == [(403, "/services/data/v61.0/sobjects/Contact/describe")]


def test_steady_state_at_the_concurrent_limit_earns_no_refusal() -> None:
    sandbox = new_sandbox(concurrent_limit=5)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"latency_ms": 5})
        return await adapter.upsert(RecordObject.CONTACT, people(1400))

    results = run(sandbox, scenario, concurrency=5)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert not [r for r in api_log(sandbox) if r.status in (403, 429)]
    assert len(sandbox.records["Contact"]) == 1400


def test_over_the_concurrent_limit_waits_and_retries() -> None:
    sandbox = new_sandbox(concurrent_limit=2)
    sleep = RecordingSleep(scale=0.01)

    async def scenario(adapter: SalesforceAdapter) -> Any:
        await control(sandbox, "PATCH", "config", {"latency_ms": 20})
        return await adapter.upsert(RecordObject.CONTACT, people(1000))

    results = run(sandbox, scenario, concurrency=6, sleep=sleep)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    refused = [r for r in api_log(sandbox) if r.status == 403]
    assert refused  # the org refused the requests over its limit...
    assert len(sandbox.records["Contact"]) == 1000  # ...and the adapter waited and sent them again
    assert sleep.waits and max(sleep.waits) >= 2.0  # ConcurrentPerOrg carries no Retry-After: 2 s backoff


def test_a_long_push_writes_while_it_still_looks_records_up() -> None:
    sandbox = new_sandbox()
    # Two slots (four workers) for ten lookups: each worker writes what its first answer left before it looks more up.
    results = run(sandbox, lambda adapter: adapter.upsert(RecordObject.CONTACT, people(2_000)), concurrency=2)
    assert outcomes(results) == [RecordOutcome.CREATED] * 2_000
    log = [entry for entry in api_log(sandbox) if entry.path in (QUERY, COMPOSITE)]
    first_write = next(i for i, entry in enumerate(log) if entry.method == "POST")
    last_query = max(i for i, entry in enumerate(log) if entry.path == QUERY)
    # Pipelined: the first collection went out before the last lookup; still one lookup, one write and one read
    # of the written change stamps per 200.
    assert first_write < last_query
    assert sum(1 for entry in log if entry.path == QUERY) == 20
    assert sum(1 for entry in log if entry.method == "POST") == 10
    assert len(sandbox.records["Contact"]) == 2_000


def test_a_lookup_that_keeps_failing_fails_only_its_own_records() -> None:
    sandbox = new_sandbox()

    async def scenario(adapter: SalesforceAdapter) -> Any:
        # One lookup query answers 503 and, with no retries left, fails; the other four and their writes go on.
        await control(sandbox, "PUT", "faults", [{"kind": "5xx", "path": "/query", "probability": 1.0, "remaining": 1}])
        return await adapter.upsert(RecordObject.CONTACT, people(1_000))

    results = run(sandbox, scenario, max_attempts=1)
    failed = [r for r in results if r.outcome is RecordOutcome.FAILED]
    assert len(failed) == 200
    assert {r.category for r in failed} == {ErrorCategory.SERVER}
    assert all("Contact" in (r.message or "") for r in failed)
    assert sum(1 for r in results if r.outcome is RecordOutcome.CREATED) == 800
    assert len(sandbox.records["Contact"]) == 800
