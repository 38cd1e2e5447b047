"""Timeline entries (Salesforce Tasks, HubSpot notes, Pipedrive activities) written on the sandboxes and read back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from crm_desktop.domain.models import Integration
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import LogsTimeline, OutboundRecord, TimelineEntry, TimelineKind
from crm_desktop.providers.factory import build_adapter
from crm_desktop.providers.hubspot_batches import note_results
from crm_desktop.sandbox.core import Sandbox
from tests.support.cli_runs import credentials_of, make_sandbox

PROVIDERS = ["salesforce", "hubspot", "pipedrive"]
AT = datetime(2026, 11, 20, 10, 1, tzinfo=UTC)
NAME_FIELDS = {"salesforce": {"LastName": "Park"}, "hubspot": {"lastname": "Park"}, "pipedrive": {"name": "Lea Park"}}


class LosingTransport(httpx.AsyncBaseTransport):
    """Forwards to the sandbox; the first request ``lose`` picks reaches it and then loses its answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, lose: Callable[[httpx.Request], bool] | None = None) -> None:
        self.inner = inner
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lose is not None and self.lose(request):
            self.lose = None
            await response.aread()
            raise httpx.ReadError("connection lost after the server saved the write", request=request)
        return response


def entries_on(crm_id: str) -> list[TimelineEntry]:
    return [
        TimelineEntry(crm_id, "Conversation started on twitter", "Campaign: black-friday", AT,
                      TimelineKind.CONVERSATION_STARTED),
        TimelineEntry(crm_id, "2 messages on twitter", "inbound: Do you ship to <Lisbon>?\noutbound: Yes", AT,
                      TimelineKind.MESSAGES),
    ]


def timeline_of(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    """What the sandbox holds, as (record id, subject-or-body, done) rows."""
    if provider == "salesforce":
        return [{"who": t["WhoId"], "text": t["Subject"], "done": t["Status"] == "Completed",
                 "date": str(t["ActivityDate"]), "body": t["Description"]}
                for t in sandbox.records["Task"].values()]  # type: ignore[attr-defined]
    if provider == "hubspot":
        return [{"who": next(iter(n.associations.get("contacts", {})), None), "text": n.properties["hs_note_body"],
                 "done": True, "date": n.properties["hs_timestamp"][:10], "body": n.properties["hs_note_body"]}
                for n in sandbox._records["notes"].values()]  # type: ignore[attr-defined]
    return [{"who": str(a.person_id), "text": a.subject, "done": a.done, "date": a.due_date, "body": a.note}
            for a in sandbox.activities.values()]  # type: ignore[attr-defined]


async def person(provider: str, sandbox: Sandbox, transport: httpx.AsyncBaseTransport) -> tuple[Any, str]:
    integration = Integration(id=1, provider=provider, name="crm", base_url=sandbox.base_url, domain="acme")
    adapter = build_adapter(integration, credentials_of(provider, sandbox), transport=transport)
    [created] = await adapter.upsert(RecordObject.CONTACT,
                                     [OutboundRecord(email="lea@example.com", fields=NAME_FIELDS[provider])])
    assert created.outcome is RecordOutcome.CREATED and created.crm_id, created
    return adapter, created.crm_id


@pytest.mark.parametrize("provider", PROVIDERS)
def test_entries_land_on_the_record_timeline_in_one_batch(provider: str) -> None:
    sandbox = make_sandbox(provider)

    async def scenario() -> None:
        adapter, crm_id = await person(provider, sandbox, sandbox.transport())
        assert isinstance(adapter, LogsTimeline)
        before = adapter.api_calls
        results = await adapter.log_timeline(RecordObject.CONTACT, entries_on(crm_id))
        assert all(r.ok for r in results), results
        assert len({r.entry_id for r in results}) == 2
        calls = adapter.api_calls - before
        assert calls == (2 if provider == "pipedrive" else 1)  # Pipedrive has no batch create
        await adapter.aclose()

    asyncio.run(scenario())
    rows = timeline_of(sandbox, provider)
    assert len(rows) == 2
    assert all(row["done"] and row["date"] == "2026-11-20" for row in rows)
    assert any("Lisbon" in str(row["body"]) for row in rows)
    if provider == "salesforce":
        assert {row["text"] for row in rows} == {"Conversation started on twitter", "2 messages on twitter"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_entry_on_an_unknown_record_is_refused_alone(provider: str) -> None:
    sandbox = make_sandbox(provider)

    async def scenario() -> None:
        adapter, crm_id = await person(provider, sandbox, sandbox.transport())
        unknown = "003000000000999AAA" if provider == "salesforce" else "999999"
        good, bad = await adapter.log_timeline(RecordObject.CONTACT, [entries_on(crm_id)[0], entries_on(unknown)[0]])
        assert good.ok and not bad.ok
        assert bad.category in {ErrorCategory.VALIDATION, ErrorCategory.NOT_FOUND}
        assert bad.message and unknown in bad.message
        crm = {"salesforce": "Salesforce", "hubspot": "HubSpot", "pipedrive": "Pipedrive"}[provider]
        assert bad.message.count(crm) <= 1, f"the CRM named once: {bad.message}"
        await adapter.aclose()

    asyncio.run(scenario())
    assert len(timeline_of(sandbox, provider)) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_lost_answer_is_looked_up_not_written_twice(provider: str) -> None:
    sandbox = make_sandbox(provider)
    path = {"salesforce": "/composite/sobjects", "hubspot": "/notes/batch/create", "pipedrive": "/activities"}[provider]
    transport = LosingTransport(sandbox.transport())

    async def scenario() -> None:
        adapter, crm_id = await person(provider, sandbox, transport)
        transport.lose = lambda request: request.method == "POST" and request.url.path.endswith(path)
        results = await adapter.log_timeline(RecordObject.CONTACT, entries_on(crm_id))
        assert all(r.ok for r in results), results
        assert transport.lose is None  # the answer was lost once
        await adapter.aclose()

    asyncio.run(scenario())
    assert len(timeline_of(sandbox, provider)) == 2


class DroppingTransport(httpx.AsyncBaseTransport):
    """Forwards to the sandbox; the first request ``drop`` picks never reaches it, and its connection fails as one
    whose answer was lost does (the client cannot tell the two apart)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.drop: Callable[[httpx.Request], bool] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.drop is not None and self.drop(request):
            self.drop = None
            raise httpx.ReadError("connection reset before the server read the write", request=request)
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_lost_write_is_not_taken_for_an_earlier_entry_of_the_same_subject(provider: str) -> None:
    """Two conversations a person started on one network minutes apart have entries of one subject: when the
    second's write is lost before it landed, the look-up must not take the first's entry for it."""
    sandbox = make_sandbox(provider)
    path = {"salesforce": "/composite/sobjects", "hubspot": "/notes/batch/create", "pipedrive": "/activities"}[provider]
    transport = DroppingTransport(sandbox.transport())
    first_at, second_at = datetime(2026, 11, 20, 10, 1, tzinfo=UTC), datetime(2026, 11, 20, 10, 4, tzinfo=UTC)

    async def scenario() -> None:
        adapter, crm_id = await person(provider, sandbox, transport)
        [first] = await adapter.log_timeline(RecordObject.CONTACT, [
            TimelineEntry(crm_id, "Conversation started on Twitter", "Conversation: tw-1", first_at,
                          TimelineKind.CONVERSATION_STARTED)])
        transport.drop = lambda request: request.method == "POST" and request.url.path.endswith(path)
        [second] = await adapter.log_timeline(RecordObject.CONTACT, [
            TimelineEntry(crm_id, "Conversation started on Twitter", "Conversation: tw-2", second_at,
                          TimelineKind.CONVERSATION_STARTED)])
        assert transport.drop is None  # the second write was dropped once
        assert first.ok and second.ok
        assert second.entry_id != first.entry_id
        await adapter.aclose()

    asyncio.run(scenario())
    bodies = [row["body"] for row in timeline_of(sandbox, provider)]
    assert len(bodies) == 2
    assert any("tw-2" in body for body in bodies)


def test_a_pipedrive_activity_refused_for_its_token_names_pipedrive_once() -> None:
    """Seen: "Pipedrive: activity on person 7: Pipedrive: Pipedrive refused the API token (401)…"."""
    sandbox = make_sandbox("pipedrive")

    async def scenario() -> Any:
        adapter, crm_id = await person("pipedrive", sandbox, sandbox.transport())
        sandbox.expire_tokens()  # type: ignore[attr-defined]
        [result] = await adapter.log_timeline(RecordObject.CONTACT, entries_on(crm_id)[:1])
        await adapter.aclose()
        return result, crm_id

    result, crm_id = asyncio.run(scenario())
    assert not result.ok and result.category is ErrorCategory.AUTH
    assert result.message.startswith(f"Pipedrive: activity on person {crm_id}: the API token was refused (401)"), \
        result.message
    assert result.message.count("Pipedrive") == 1, result.message


def test_a_hubspot_note_refused_without_a_reason_names_hubspot_once() -> None:
    """Seen: "HubSpot: notes: refused by HubSpot" for a batch of notes HubSpot refused with no message."""
    [result] = note_results({}, 400, [0], {0: "5"}).values()
    assert result.message == "notes: refused by HubSpot"
    [result] = note_results({"message": "bad association"}, 400, [0], {0: "5"}).values()
    assert result.message == "HubSpot: notes: bad association"
