"""A CRM record found by a second email is not linked to another person, and a pulled email that another local
record holds is not taken on: Pipedrive finds a person by any of their emails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_desktop.domain.models import Contact, Provider
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject
from tests.sync.conftest import SyncBench, open_bench, scenario


async def add_person(bench: SyncBench, name: str, emails: list[str]) -> int:
    """A salesperson adds a Pipedrive person with these emails (the first primary), through its API."""
    token = bench.sandbox.credentials()["apiToken"]
    body = {"name": name, "emails": [{"value": e, "primary": i == 0} for i, e in enumerate(emails)]}
    async with bench.sandbox.client() as client:
        response = await client.post(f"/api/v2/persons?api_token={token}", json=body)
    assert response.status_code in (200, 201), response.text
    return int(response.json()["data"]["id"])


def person_name(bench: SyncBench, person_id: int) -> str:
    sandbox: Any = bench.sandbox
    return str(sandbox.persons[person_id].name)


@scenario
async def test_a_person_found_by_a_second_email_is_not_written_over(data_dir: Path) -> None:
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        quinn = await add_person(bench, "Quinn Roe", ["quinn@example.net", "q.roe@example.net"])
        bench.save(Contact(email="quinn@example.net", first_name="Quinn", last_name="Roe"),
                   Contact(email="q.roe@example.net", first_name="Q", last_name="Roe"))
        result = await bench.sync()
        assert person_name(bench, quinn) == "Quinn Roe", "the second local contact was written over the person"
        [failure] = result.failures
        assert failure.email == "q.roe@example.net" and failure.category is ErrorCategory.DUPLICATE
        assert "another email of its record" in failure.message and "quinn@example.net" in failure.message
        assert bench.link("quinn@example.net").crm_id == str(quinn)

        # The next syncs neither crash nor rename a local contact to the other's email.
        for _ in range(2):
            again = await bench.sync()
            assert [f.email for f in again.failures] == ["q.roe@example.net"]
        emails = sorted(c.email for c in bench.workspace.contacts.page(0, 10))
        assert emails == ["q.roe@example.net", "quinn@example.net"]
    finally:
        bench.workspace.close()


@scenario
async def test_an_email_changed_in_the_crm_to_another_local_contacts_is_not_pulled(data_dir: Path) -> None:
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        bench.save(Contact(email="ann@example.com", first_name="Ann"), Contact(email="bo@example.com", first_name="Bo"))
        await bench.sync()
        bo = bench.link("bo@example.com")
        # A salesperson gives Bo's person Ann's email.
        await bench.edit(bo.crm_id, {"emails": [{"value": "ann@example.com", "primary": True}]})
        result = await bench.sync()
        logged = {row.record_key: row for row in bench.service.run(result.run_id or 0)[1]}
        assert logged["bo@example.com"].error_category is ErrorCategory.DUPLICATE
        assert "another local contact's" in (logged["bo@example.com"].message or "")
        emails = sorted(c.email for c in bench.workspace.contacts.page(0, 10))
        assert emails == ["ann@example.com", "bo@example.com"]
        assert bench.local_id("bo@example.com", RecordObject.CONTACT) != bench.local_id("ann@example.com")
    finally:
        bench.workspace.close()


@scenario
async def test_a_person_merged_in_the_crm_into_another_linked_one_stops_no_sync(data_dir: Path) -> None:
    bench = open_bench(Provider.PIPEDRIVE, data_dir)
    try:
        bench.save(*(Contact(email=f"d{n}@example.com", first_name=f"D{n}", last_name="Merge") for n in range(3)))
        await bench.sync()
        gone, kept = bench.link("d1@example.com").crm_id, bench.link("d2@example.com").crm_id
        # A salesperson merges d1's person into d2's: d2's id stays, with d1's email as its second one.
        token = bench.sandbox.credentials()["apiToken"]
        async with bench.sandbox.client() as client:
            merged = await client.put(f"/v1/persons/{gone}/merge?api_token={token}", json={"merge_with_id": int(kept)})
        assert merged.status_code == 200, merged.text
        bench.change("d1@example.com", last_name="EditedHere")
        bench.save(Contact(email="new@example.com", first_name="New", last_name="Person"))
        for _ in range(2):  # every later sync goes on too
            result = await bench.sync()
            assert [(f.email, f.category) for f in result.failures] == [("d1@example.com", ErrorCategory.DUPLICATE)]
            assert "merge the two in People" in result.failures[0].message
        assert person_name(bench, int(kept)) == "D2 Merge", "d1's edit was written over d2's person"
        assert bench.link("d2@example.com").crm_id == kept
        assert bench.link("new@example.com").crm_id not in (gone, kept)
    finally:
        bench.workspace.close()
