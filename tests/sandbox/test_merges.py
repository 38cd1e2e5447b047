"""The sandboxes' merge endpoints: HubSpot's contacts merge and Pipedrive's persons merge, as the vendors answer
(Pipedrive's exchange checked against its official OpenAPI file and token cost)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from tests.sandbox.pipedrive_spec import specs_available
from tests.sandbox.test_pipedrive_contract import SpecCheckedApi, new_person


def hubspot_call(sandbox: HubSpotSandbox, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with sandbox.client() as client:
            headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def test_hubspot_merge_folds_the_second_contact_into_the_primary() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    primary = hubspot_call(sandbox, "POST", "/crm/v3/objects/contacts", json={"properties": {
        "email": "ada@example.com", "firstname": "Ada"}}).json()["id"]
    other = hubspot_call(sandbox, "POST", "/crm/v3/objects/contacts", json={"properties": {
        "email": "ada+news@example.com", "firstname": "Augusta", "company": "Engines"}}).json()["id"]

    answer = hubspot_call(sandbox, "POST", "/crm/v3/objects/contacts/merge",
                          json={"primaryObjectId": primary, "objectIdToMerge": other})

    assert answer.status_code == 200, answer.text
    merged = answer.json()
    assert merged["id"] == primary
    properties = merged["properties"]
    assert (properties["email"], properties["firstname"], properties["company"]) == (
        "ada@example.com", "Ada", "Engines"), "the primary's values win; its blanks take the other's"
    assert properties["hs_additional_emails"] == "ada+news@example.com"
    assert properties["hs_merged_object_ids"] == other
    assert hubspot_call(sandbox, "GET", f"/crm/v3/objects/contacts/{other}").status_code == 404
    found = hubspot_call(sandbox, "GET", "/crm/v3/objects/contacts/ada+news@example.com",
                         params={"idProperty": "email"})
    assert found.status_code == 404, "the merged contact's email no longer finds a record of its own"


@pytest.mark.parametrize(("body", "status", "category"), [
    ({"primaryObjectId": "1"}, 400, "VALIDATION_ERROR"),
    ({"primaryObjectId": "1", "objectIdToMerge": "1"}, 400, "VALIDATION_ERROR"),
    ({"primaryObjectId": "1", "objectIdToMerge": "999"}, 404, "OBJECT_NOT_FOUND"),
])
def test_hubspot_merge_refusals(body: dict[str, str], status: int, category: str) -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    hubspot_call(sandbox, "POST", "/crm/v3/objects/contacts", json={"properties": {"email": "ada@example.com"}})
    answer = hubspot_call(sandbox, "POST", "/crm/v3/objects/contacts/merge", json=body)
    assert answer.status_code == status
    assert answer.json()["category"] == category


@pytest.mark.skipif(not specs_available(), reason="Pipedrive's OpenAPI files are not available")
def test_pipedrive_merge_keeps_merge_with_id_and_answers_as_the_spec_says() -> None:
    sandbox = PipedriveSandbox(burst_limit=10_000, search_burst_limit=10_000)
    api = SpecCheckedApi(sandbox)
    keep = new_person(api, "Ada Lovelace", "ada@example.com")
    other = new_person(api, "Augusta King", "ada+news@example.com")
    note = api.call("POST", "/v1/notes", json={"content": "met at the fair", "person_id": other["id"]})["data"]

    data = api.call("PUT", f"/v1/persons/{other['id']}/merge", json={"merge_with_id": keep["id"]})["data"]

    assert (data["id"], data["merge_what_id"], data["name"]) == (keep["id"], other["id"], "Ada Lovelace")
    assert [e["value"] for e in data["email"]] == ["ada@example.com", "ada+news@example.com"]
    assert other["id"] not in sandbox.persons
    assert sandbox.notes[note["id"]].person_id == keep["id"], "the other person's notes move to the survivor"
    missing = api.send("PUT", f"/v1/persons/{other['id']}/merge", json={"merge_with_id": keep["id"]})
    assert missing.status_code == 404
    itself = api.send("PUT", f"/v1/persons/{keep['id']}/merge", json={"merge_with_id": keep["id"]})
    assert itself.status_code == 400 and itself.json()["success"] is False


@pytest.mark.skipif(not specs_available(), reason="Pipedrive's OpenAPI files are not available")
def test_pipedrive_merge_answers_a_money_value_as_v1_does() -> None:
    # v1 gives a money value's amount under its key and its currency under <key>_currency; v2 holds them as one
    # object (crm-wire-facts, Pipedrive person fields).
    sandbox = PipedriveSandbox(burst_limit=10_000, search_burst_limit=10_000)
    api = SpecCheckedApi(sandbox)
    money = api.call("POST", "/v1/personFields", json={"name": "Lifetime value", "field_type": "monetary"})["data"]
    keep = new_person(api, "Ada Lovelace", "ada@example.com")
    other = new_person(api, "Augusta King", "ada+news@example.com")
    api.call("PATCH", f"/api/v2/persons/{other['id']}",
             json={"custom_fields": {money["key"]: {"value": 1500, "currency": "EUR"}}})

    data = api.call("PUT", f"/v1/persons/{other['id']}/merge", json={"merge_with_id": keep["id"]})["data"]

    assert (data[money["key"]], data[f"{money['key']}_currency"]) == (1500, "EUR")
