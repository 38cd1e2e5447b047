"""Sandbox deal pipelines (checked against Pipedrive's OpenAPI files), lifecycle dates, and the salesperson's steps
of the control endpoint: convert a lead, move a lifecycle stage, win a deal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_desktop.sandbox.core import Sandbox, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import DAILY_BUDGET_HEADER, PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.sandbox.pipedrive_spec import specs_available, token_cost, validate_error_envelope, validate_exchange

needs_spec = pytest.mark.skipif(not specs_available(), reason="Pipedrive's OpenAPI files are not available")


def send(sandbox: Sandbox, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
         ) -> httpx.Response:
    async def go() -> httpx.Response:
        async with sandbox.client() as client:
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def pipedrive_call(sandbox: PipedriveSandbox, method: str, path: str, expect: int = 200, **kwargs: Any
                   ) -> httpx.Response:
    before = sandbox.daily_token_budget - sandbox.tokens_spent
    response = send(sandbox, method, path, {"x-api-token": sandbox.credentials()["apiToken"]}, **kwargs)
    assert response.status_code == expect, response.text
    if specs_available():
        if expect == 200:
            validate_exchange(response.request, response)
            spent = before - int(response.headers[DAILY_BUDGET_HEADER])
            assert spent == token_cost(response.request), f"{method} {path} cost {spent}"
        else:
            validate_error_envelope(response.request, response)
    return response


@needs_spec
def test_pipedrive_pipelines_stages_and_deals_in_a_stage_match_the_spec() -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=3), burst_limit=1000, search_burst_limit=1000)
    pipelines = pipedrive_call(sandbox, "GET", "/api/v2/pipelines").json()["data"]
    assert [p["name"] for p in pipelines] == ["Pipeline", "Social leads"]
    stages = pipedrive_call(sandbox, "GET", "/api/v2/stages", params={"pipeline_id": 2}).json()["data"]
    assert [(s["name"], s["pipeline_id"]) for s in stages] == [
        ("New social lead", 2), ("Qualified", 2), ("Proposal", 2)
    ]
    pipedrive_call(sandbox, "GET", "/api/v2/pipelines/2")
    person_id = next(iter(sandbox.persons))
    deal = pipedrive_call(sandbox, "POST", "/api/v2/deals", json={
        "title": "Social deal", "person_id": person_id, "stage_id": stages[1]["id"], "value": 250, "currency": "EUR",
    }).json()["data"]
    assert (deal["pipeline_id"], deal["stage_id"], deal["status"]) == (2, stages[1]["id"], "open")
    first_of_pipeline = pipedrive_call(sandbox, "POST", "/api/v2/deals", json={
        "title": "Default stage", "person_id": person_id, "pipeline_id": 2,
    }).json()["data"]
    assert first_of_pipeline["stage_id"] == stages[0]["id"]
    listed = pipedrive_call(
        sandbox, "GET", "/api/v2/deals", params={"person_id": person_id, "stage_id": stages[1]["id"]}
    )
    assert [d["id"] for d in listed.json()["data"]] == [deal["id"]]
    refused = pipedrive_call(sandbox, "POST", "/api/v2/deals", expect=400, json={"title": "x", "stage_id": 999})
    assert "stage_id" in refused.json()["error"]
    mismatch = pipedrive_call(sandbox, "POST", "/api/v2/deals", expect=400,
                              json={"title": "x", "pipeline_id": 1, "stage_id": stages[0]["id"]})
    assert "is not in pipeline 1" in mismatch.json()["error"]


def test_pipedrive_salesperson_wins_the_persons_open_deal() -> None:
    sandbox = PipedriveSandbox(SandboxConfig(contacts=2))
    person = next(iter(sandbox.persons.values()))
    email = person.emails[0]["value"]
    step = send(sandbox, "POST", "/__sandbox__/salesperson/win-deal", json={"email": email.upper(), "value": 80,
                                                                            "currency": "GBP"})
    assert step.status_code == 200, step.text
    won = step.json()
    assert (won["status"], won["value"], won["currency"], won["person_id"]) == ("won", 80, "GBP", person.id)
    assert won["won_time"]
    again = send(sandbox, "POST", "/__sandbox__/salesperson/win-deal", json={"dealId": won["id"]})
    assert again.status_code == 400 and "won already" in again.json()["error"]
    assert send(sandbox, "POST", "/__sandbox__/salesperson/win-deal",
                json={"email": "nobody@example.com"}).status_code == 404
    assert send(sandbox, "POST", "/__sandbox__/salesperson/win-deal",
                json={"email": email, "currency": "euro"}).status_code == 400
    assert send(sandbox, "POST", "/__sandbox__/salesperson/win-deal", content=b"[1]").status_code == 400
    assert send(sandbox, "POST", "/__sandbox__/salesperson/convert-lead", json={"email": email}).status_code == 404


def test_salesforce_salesperson_converts_a_lead_by_email() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(contacts=6))
    lead = next(iter(sandbox.records["Lead"].values()))
    step = send(sandbox, "POST", "/__sandbox__/salesperson/convert-lead", json={"email": lead["Email"]})
    assert step.status_code == 200, step.text
    converted = step.json()
    assert converted["IsConverted"] is True and converted["Status"] == "Closed - Converted"
    assert converted["ConvertedDate"] == sandbox.clock.now().date().isoformat()
    assert converted["ConvertedContactId"]
    assert send(sandbox, "POST", "/__sandbox__/salesperson/convert-lead", json={}).status_code == 400
    assert send(sandbox, "POST", "/__sandbox__/salesperson/convert-lead",
                json={"email": "nobody@example.com"}).status_code == 404


def test_hubspot_stamps_the_date_a_contact_enters_each_lifecycle_stage() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=0))
    headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
    created = send(sandbox, "POST", "/crm/v3/objects/contacts", headers,
                   json={"properties": {"email": "ana@example.com", "lifecyclestage": "lead"}}).json()
    assert created["properties"]["hs_lifecyclestage_lead_date"]
    sandbox.clock.advance(60)
    step = send(sandbox, "POST", "/__sandbox__/salesperson/lifecycle", json={"email": "ana@example.com"})
    assert step.status_code == 200, step.text
    properties = step.json()["properties"]
    assert properties["lifecyclestage"] == "customer"
    assert properties["hs_lifecyclestage_customer_date"] > properties["hs_lifecyclestage_lead_date"]
    definitions = send(sandbox, "GET", "/crm/v3/properties/contacts", headers).json()["results"]
    customer_date = next(d for d in definitions if d["name"] == "hs_lifecyclestage_customer_date")
    assert (customer_date["type"], customer_date["modificationMetadata"]["readOnlyValue"]) == ("datetime", True)
    # Found by search on the lifecycle stage, with the date asked for.
    found = send(sandbox, "POST", "/crm/v3/objects/contacts/search", headers, json={
        "filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "IN",
                                       "values": ["opportunity", "customer"]}]}],
        "properties": ["email", "hs_lifecyclestage_customer_date"],
    }).json()
    assert [r["properties"]["email"] for r in found["results"]] == ["ana@example.com"]
    assert found["results"][0]["properties"]["hs_lifecyclestage_customer_date"]
    assert send(sandbox, "POST", "/__sandbox__/salesperson/lifecycle",
                json={"email": "ana@example.com", "stage": "vip"}).status_code == 400


def test_hubspot_deals_and_their_pipeline() -> None:
    sandbox = HubSpotSandbox(SandboxConfig(contacts=1))
    headers = {"Authorization": f"Bearer {sandbox.credentials()['token']}"}
    (pipeline,) = send(sandbox, "GET", "/crm/v3/pipelines/deals", headers).json()["results"]
    assert (pipeline["id"], pipeline["label"]) == ("default", "Sales Pipeline")
    stages = {stage["id"]: stage["metadata"] for stage in pipeline["stages"]}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["appointmentscheduled"] == {"isClosed": "false", "probability": "0.2"}
    assert send(sandbox, "GET", "/crm/v3/pipelines/widgets", headers).status_code == 400
    contact_id = next(iter(sandbox._records["contacts"]))
    association = [{"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                         "associationTypeId": 3}]}]
    missing = send(sandbox, "POST", "/crm/v3/objects/deals", headers, json={"properties": {"dealname": "X"}})
    assert missing.status_code == 400 and "dealstage" in missing.text
    wrong_stage = send(sandbox, "POST", "/crm/v3/objects/deals", headers,
                       json={"properties": {"dealname": "X", "dealstage": "signed"}})
    assert wrong_stage.status_code == 400
    deal = send(sandbox, "POST", "/crm/v3/objects/deals", headers, json={
        "properties": {"dealname": "Annual", "dealstage": "closedwon", "amount": "1200"},
        "associations": association,
    })
    assert deal.status_code == 201, deal.text
    assert deal.json()["properties"]["pipeline"] == "default"  # HubSpot's default pipeline when none is given
    linked = send(sandbox, "POST", "/crm/v4/associations/contacts/deals/batch/read", headers,
                  json={"inputs": [{"id": contact_id}]}).json()["results"]
    assert [to["toObjectId"] for to in linked[0]["to"]] == [int(deal.json()["id"])]
    no_scope = HubSpotSandbox(SandboxConfig(contacts=0), scopes=("oauth", "crm.objects.contacts.read"))
    refused = send(no_scope, "GET", "/crm/v3/pipelines/deals",
                   {"Authorization": f"Bearer {no_scope.credentials()['token']}"})
    assert refused.status_code == 403


class SpecCheckedTransport(httpx.AsyncBaseTransport):
    """The sandbox's transport, each exchange validated against Pipedrive's OpenAPI files."""

    def __init__(self, sandbox: PipedriveSandbox) -> None:
        self.inner = sandbox.transport()
        self.checked: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        validate_exchange(request, response)
        self.checked.append(f"{request.method} {request.url.path}")
        return response


@needs_spec
def test_the_pipedrive_adapters_conversion_and_deal_requests_match_the_spec() -> None:
    from crm_desktop.domain.models import Integration, Provider
    from crm_desktop.providers.factory import build_adapter
    from crm_desktop.providers.pipedrive import PipedriveAdapter

    sandbox = PipedriveSandbox(SandboxConfig(contacts=3), burst_limit=1000, search_burst_limit=1000)
    person = next(iter(sandbox.persons.values()))
    email = str(person.emails[0]["value"])
    transport = SpecCheckedTransport(sandbox)

    async def scenario() -> None:
        adapter = build_adapter(Integration(provider=Provider.PIPEDRIVE, name="crm", base_url=sandbox.base_url,
                                            domain="acme"), {"apiToken": sandbox.credentials()["apiToken"]},
                                transport=transport)
        assert isinstance(adapter, PipedriveAdapter)
        try:
            pipelines = await adapter.deal_pipelines()
            social = next(p for p in pipelines if p.name == "Social leads")
            assert await adapter.person_deal(email, social.id) is None
            deal_id = await adapter.open_person_deal(email, "Ana (social lead)", social.id, social.stages[1].id,
                                                     None, None)
            assert deal_id is not None and await adapter.person_deal(email, social.id) == deal_id
            async with sandbox.client() as client:
                await client.post("/__sandbox__/salesperson/win-deal",
                                  json={"dealId": int(deal_id), "value": 70, "currency": "EUR"})
            (won,) = await adapter.conversions_since(None)
            assert (won.external_id, won.value, won.currency) == (f"deal:{deal_id}", 70, "EUR")
            assert await adapter.conversions_since(datetime.now(UTC) + timedelta(hours=1)) == []
        finally:
            await adapter.aclose()

    asyncio.run(scenario())
    assert {"GET /api/v2/pipelines", "GET /api/v2/stages", "GET /api/v2/persons/search", "POST /api/v2/deals",
            "GET /api/v2/deals", "GET /api/v2/persons"} <= set(transport.checked)
