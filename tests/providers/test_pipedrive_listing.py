"""Pipedrive pushes large enough to list every person into an email index instead of searching each email."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import AdapterOptions, OutboundRecord
from crm_desktop.providers.pipedrive import LIST_DEDUPE_MIN_RECORDS, PipedriveAdapter
from crm_desktop.providers.pipedrive_records import default_contact_record
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from tests.providers.test_pipedrive import SpecCheckingTransport, contact, our_notes, persons_with, seeded, statuses
from tests.sandbox import pipedrive_spec

SEARCH = "/api/v2/persons/search"
PERSONS = "/api/v2/persons"

pytestmark = pytest.mark.skipif(
    not pipedrive_spec.specs_available(), reason="Pipedrive's OpenAPI files are not on this machine"
)


class SomeoneElse(httpx.AsyncBaseTransport):
    """Passes requests on; before the push's first person write, a salesperson creates persons of their own."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sandbox: PipedriveSandbox, emails: list[str]) -> None:
        self.inner = inner
        self.sandbox = sandbox
        self.emails = emails

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.emails and request.method in {"POST", "PATCH"} and request.url.path.startswith(PERSONS):
            emails, self.emails = self.emails, []
            async with self.sandbox.client(headers={"x-api-token": self.sandbox.credentials()["apiToken"]}) as client:
                for email in emails:
                    body = {"name": "Added by a salesperson", "emails": [{"value": email, "primary": True}]}
                    (await client.post(PERSONS, json=body)).raise_for_status()
        return await self.inner.handle_async_request(request)


def push(
    sandbox: PipedriveSandbox,
    records: list[OutboundRecord],
    *,
    page_size: int,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] = lambda inner: inner,
) -> list[Any]:
    """Upsert ``records`` through the spec-checking transport, listing ``page_size`` persons a page and listing
    what changed once the index is half a (virtual) second old."""

    async def fast_sleep(seconds: float) -> None:
        sandbox.clock.advance(seconds)
        await asyncio.sleep(0)

    async def main() -> list[Any]:
        checking = SpecCheckingTransport(sandbox.transport())
        adapter = PipedriveAdapter(
            Integration(provider=Provider.PIPEDRIVE, name="sandbox", base_url=sandbox.base_url),
            sandbox.credentials(),
            transport=wrap(checking),
            sleep=fast_sleep,
            clock=sandbox.clock.monotonic,
            # Two requests at a time: four records in progress, each looked up in the index just before its write.
            options=AdapterOptions(concurrency=2),
        )
        adapter.page_size = page_size
        adapter.index_refresh_seconds = 0.5
        try:
            results = await adapter.upsert(RecordObject.CONTACT, records)
        finally:
            await adapter.aclose()
        assert checking.violations == []
        return results

    return asyncio.run(main())


def listings(sandbox: PipedriveSandbox) -> list[str]:
    """The query of each person listing the push made."""
    return [e.query for e in sandbox.requests if (e.method, e.path) == ("GET", PERSONS)]


def test_a_large_push_lists_persons_once_and_searches_nothing() -> None:
    sandbox = seeded(35)
    existing = [p.emails[0]["value"] for p in list(sandbox.persons.values())[:10]]
    records = [OutboundRecord(email=email, fields={"name": f"Renamed {n}"}) for n, email in enumerate(existing)]
    records += [default_contact_record(contact(n)) for n in range(1, 21)]

    results = push(sandbox, records, page_size=10)

    assert [r.outcome for r in results] == [RecordOutcome.UPDATED] * 10 + [RecordOutcome.CREATED] * 20
    assert SEARCH not in {e.path for e in sandbox.requests}
    for record in records:
        assert len(persons_with(sandbox, record.email)) == 1
    assert len(sandbox.persons) == 55
    assert [p.name for p in list(sandbox.persons.values())[:2]] == ["Renamed 0", "Renamed 1"]
    # 4 pages list the 35 persons; while the push writes, what changed since is listed as the index ages.
    pages = listings(sandbox)
    assert len([q for q in pages if "updated_since" not in q]) == 4
    assert len([q for q in pages if "updated_since" in q]) >= 2
    assert 429 not in statuses(sandbox)
    # A created person's note is posted without reading its notes first.
    [person] = persons_with(sandbox, "person1@example.com")
    assert len(our_notes(sandbox, person_id=person.id)) == 1


def test_a_person_created_by_someone_else_after_the_listing_is_not_created_again() -> None:
    sandbox = PipedriveSandbox()
    records = [default_contact_record(contact(n)) for n in range(1, 31)]
    theirs = ["person25@example.com", "person30@example.com"]

    results = push(sandbox, records, page_size=10, wrap=lambda inner: SomeoneElse(inner, sandbox, theirs))

    for email in theirs:
        [person] = persons_with(sandbox, email)
        result = results[records.index(next(r for r in records if r.email == email))]
        assert (result.outcome, result.crm_id) == (RecordOutcome.UPDATED, str(person.id))
        assert person.name != "Added by a salesperson"
    assert len(sandbox.persons) == 30
    assert SEARCH not in {e.path for e in sandbox.requests}


def test_a_push_too_small_or_a_crm_too_big_to_list_searches_each_email() -> None:
    small = PipedriveSandbox()
    records = [default_contact_record(contact(n)) for n in range(1, LIST_DEDUPE_MIN_RECORDS)]
    push(small, records, page_size=10)
    assert listings(small) == []
    assert [e.path for e in small.requests].count(SEARCH) == len(records)

    # Listing 45 persons a page at a time would cost more than searching 20 emails: it stops and searches.
    big = seeded(45)
    records = [default_contact_record(contact(n)) for n in range(1, LIST_DEDUPE_MIN_RECORDS + 1)]
    results = push(big, records, page_size=1)
    assert all(r.outcome is RecordOutcome.CREATED for r in results)
    assert len(listings(big)) == 2 * len(records)
    assert [e.path for e in big.requests].count(SEARCH) == len(records)
