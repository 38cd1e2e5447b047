"""HubSpot sandbox: auth, contacts and batches, search, leads, notes, properties, rate limits, faults and edits."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from crm_desktop.sandbox import hubspot as hubspot_module
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.hubspot import HubSpotSandbox, epoch_ms, parse_instant

Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CONTACTS = "/crm/v3/objects/contacts"
SEARCH = f"{CONTACTS}/search"


def run(sandbox: HubSpotSandbox, scenario: Scenario, *, token: str | None = None, anonymous: bool = False) -> None:
    """Run ``scenario`` against the sandbox in-process, authenticated with its token unless ``anonymous``."""

    async def main() -> None:
        headers = {} if anonymous else {"Authorization": f"Bearer {token or sandbox.credentials()['token']}"}
        async with sandbox.client(headers=headers) as client:
            await scenario(client)

    asyncio.run(main())


def emails(body: dict[str, Any]) -> set[str]:
    return {r["properties"]["email"] for r in body["results"]}


def eq(name: str, value: str, operator: str = "EQ") -> dict[str, Any]:
    return {"filterGroups": [{"filters": [{"propertyName": name, "operator": operator, "value": value}]}]}


# -- auth --------------------------------------------------------------------------------------------------------
def test_missing_or_unknown_token_is_invalid_authentication() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        for headers in ({}, {"Authorization": "Bearer pat-na1-not-a-real-token"}, {"Authorization": "Basic abc"}):
            response = await client.get(CONTACTS, headers=headers)
            assert response.status_code == 401
            body = response.json()
            assert body["status"] == "error"
            assert body["category"] == "INVALID_AUTHENTICATION"
            assert body["correlationId"]
            assert "X-HubSpot-RateLimit-Max" not in response.headers

    run(sandbox, scenario, anonymous=True)


def test_token_expiry_fault_refuses_one_request_and_the_private_app_token_keeps_working() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.put("/__sandbox__/faults", json={"spec": "expire@1"})).status_code == 200
        expired = await client.get(CONTACTS)
        assert expired.status_code == 401
        assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
        assert (await client.get(CONTACTS)).status_code == 200
        await client.post("/__sandbox__/expire-tokens")
        assert (await client.get(CONTACTS)).status_code == 200

    run(sandbox, scenario)


def test_oauth_tokens_expire_and_are_refreshed_through_the_token_endpoint() -> None:
    sandbox = HubSpotSandbox(oauth=True)
    credentials = sandbox.credentials()
    assert {"token", "refresh_token", "client_id", "client_secret"} <= set(credentials)

    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get(CONTACTS)).status_code == 200
        await client.post("/__sandbox__/expire-tokens")
        expired = await client.get(CONTACTS)
        assert expired.status_code == 401
        assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"

        form = {
            "grant_type": "refresh_token",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "refresh_token": "not-the-refresh-token",
        }
        refused = await client.post("/oauth/v1/token", data=form)
        assert refused.status_code == 400
        assert refused.json()["status"] == "BAD_REFRESH_TOKEN"

        form["refresh_token"] = credentials["refresh_token"]
        refreshed = await client.post("/oauth/v1/token", data=form)
        assert refreshed.status_code == 200
        tokens = refreshed.json()
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 1800
        assert tokens["refresh_token"] == credentials["refresh_token"]
        fresh = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get(CONTACTS, headers=fresh)).status_code == 200
        assert (await client.get(CONTACTS)).status_code == 401

        sandbox.clock.advance(1801)
        late = await client.get(CONTACTS, headers=fresh)
        assert late.status_code == 401
        assert late.json()["category"] == "EXPIRED_AUTHENTICATION"

    run(sandbox, scenario)


def test_connection_check_endpoints_name_the_portal_and_scopes() -> None:
    sandbox = HubSpotSandbox(portal_id=1234567)
    token = sandbox.credentials()["token"]

    async def scenario(client: httpx.AsyncClient) -> None:
        details = await client.get("/account-info/v3/details")
        assert details.status_code == 200
        assert details.json()["portalId"] == 1234567
        assert details.json()["timeZone"] == "US/Eastern"
        info = await client.get(f"/oauth/v1/access-tokens/{token}")
        assert info.status_code == 200
        assert info.json()["hub_id"] == 1234567
        assert "crm.objects.contacts.write" in info.json()["scopes"]
        assert (await client.get("/oauth/v1/access-tokens/unknown-token")).status_code == 404
        private = await client.post("/oauth/v2/private-apps/get/access-token-info", json={"tokenKey": token})
        assert private.json()["hubId"] == 1234567

    run(sandbox, scenario)
    # The token travels in the path, the body and the header of these calls: the request log keeps none of it.
    logged = [entry.to_json() for entry in sandbox.requests]
    assert [entry["path"] for entry in logged][1:3] == ["/oauth/v1/access-tokens/<redacted>"] * 2
    assert logged[-1]["body"] == {"tokenKey": "<redacted>"}
    assert token not in json.dumps(logged)


def test_a_token_without_the_write_scope_gets_missing_scopes() -> None:
    sandbox = HubSpotSandbox(scopes=["crm.objects.contacts.read"])

    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.get(CONTACTS)).status_code == 200
        refused = await client.post(CONTACTS, json={"properties": {"email": "a@example.com"}})
        assert refused.status_code == 403
        body = refused.json()
        assert body["category"] == "MISSING_SCOPES"
        assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
        assert sandbox.summary()["contacts"] == 0

    run(sandbox, scenario)


# -- contacts ----------------------------------------------------------------------------------------------------
def test_contact_crud_addressed_by_id_and_by_email() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        created = await client.post(
            CONTACTS, json={"properties": {"email": "Ann.Lee@Example.com", "firstname": "Ann", "social_followers": 42}}
        )
        assert created.status_code == 201
        record = created.json()
        contact_id = record["id"]
        props = record["properties"]
        assert props["email"] == "ann.lee@example.com"
        assert props["social_followers"] == "42"
        assert props["hs_object_id"] == contact_id
        assert ISO_MS.match(props["createdate"]) and ISO_MS.match(props["lastmodifieddate"])
        assert record["createdAt"] == props["createdate"]
        assert record["archived"] is False

        by_id = await client.get(f"{CONTACTS}/{contact_id}", params={"properties": "firstname,company"})
        assert by_id.status_code == 200
        assert by_id.json()["properties"]["firstname"] == "Ann"
        assert by_id.json()["properties"]["company"] is None
        by_email = await client.get(f"{CONTACTS}/ANN.LEE@example.com", params={"idProperty": "email"})
        assert by_email.status_code == 200
        assert by_email.json()["id"] == contact_id

        patched = await client.patch(
            f"{CONTACTS}/ann.lee@example.com", params={"idProperty": "email"}, json={"properties": {"company": "Acme"}}
        )
        assert patched.status_code == 200
        after = patched.json()
        assert after["properties"]["company"] == "Acme"
        assert after["properties"]["lastmodifieddate"] > props["lastmodifieddate"]
        assert after["updatedAt"] == after["properties"]["lastmodifieddate"]

        assert (await client.delete(f"{CONTACTS}/{contact_id}")).status_code == 204
        gone = await client.get(f"{CONTACTS}/{contact_id}")
        assert gone.status_code == 404
        assert gone.json()["category"] == "OBJECT_NOT_FOUND"
        archived = await client.get(f"{CONTACTS}/{contact_id}", params={"archived": "true"})
        assert archived.json()["archived"] is True
        assert (await client.delete(f"{CONTACTS}/{contact_id}")).status_code == 204
        again = await client.post(CONTACTS, json={"properties": {"email": "ann.lee@example.com"}})
        assert again.status_code == 201, "an archived contact's email is free again"

    run(sandbox, scenario)


def test_listing_contacts_pages_with_after_until_the_end() -> None:
    sandbox = HubSpotSandbox()
    ids = sandbox.seed_contacts({"email": f"p{i}@example.com", "firstname": f"P{i}"} for i in range(25))

    async def scenario(client: httpx.AsyncClient) -> None:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 10, "properties": "email"}
        pages = 0
        while True:
            body = (await client.get(CONTACTS, params=params)).json()
            pages += 1
            seen += [r["id"] for r in body["results"]]
            assert all("email" in r["properties"] for r in body["results"])
            if "paging" not in body:
                break
            assert body["paging"]["next"]["link"].endswith(f"after={body['paging']['next']['after']}")
            params["after"] = body["paging"]["next"]["after"]
        assert pages == 3
        assert seen == ids
        assert (await client.get(CONTACTS, params={"limit": 101})).status_code == 400

    run(sandbox, scenario)


def test_duplicate_email_is_a_conflict_whatever_its_case() -> None:
    sandbox = HubSpotSandbox()
    first, other = sandbox.seed_contacts([{"email": "dup@example.com"}, {"email": "other@example.com"}])

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(CONTACTS, json={"properties": {"email": "DUP@Example.com"}})
        assert response.status_code == 409
        body = response.json()
        assert body["message"] == f"Contact already exists. Existing ID: {first}"
        assert body["category"] == "CONFLICT"
        assert body["status"] == "error"
        assert body["correlationId"]
        moved = await client.patch(f"{CONTACTS}/{other}", json={"properties": {"email": "dup@example.com"}})
        assert moved.status_code == 409

    run(sandbox, scenario)


@pytest.mark.parametrize(
    ("properties", "expected_message"),
    [
        (
            {"email": "not-an-email"},
            'Property values were not valid: [{"isValid":false,"message":"Email address not-an-email is invalid",'
            '"error":"INVALID_EMAIL","name":"email"}]',
        ),
        (
            {"favourite_color": "red"},
            'Property values were not valid: [{"isValid":false,"message":"Property \\"favourite_color\\" does not '
            'exist","error":"PROPERTY_DOESNT_EXIST","name":"favourite_color"}]',
        ),
    ],
)
def test_invalid_values_get_hubspots_exact_validation_message(
    properties: dict[str, str], expected_message: str
) -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(CONTACTS, json={"properties": properties})
        assert response.status_code == 400
        assert response.json()["category"] == "VALIDATION_ERROR"
        assert response.json()["message"] == expected_message

    run(sandbox, scenario)
    assert sandbox.summary()["contacts"] == 0


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("social_followers", "lots", "INVALID_FLOAT"),
        ("social_sentiment", "angry", "INVALID_OPTION"),
        ("lifecyclestage", "Customer", "INVALID_OPTION"),
        ("lastmodifieddate", "2026-01-01T00:00:00Z", "READ_ONLY_VALUE"),
    ],
)
def test_typed_property_values_are_checked(name: str, value: str, error: str) -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(CONTACTS, json={"properties": {"email": "t@example.com", name: value}})
        assert response.status_code == 400
        assert f'"error":"{error}","name":"{name}"' in response.json()["message"]

    run(sandbox, scenario)


# -- batches -----------------------------------------------------------------------------------------------------
def test_batch_upsert_creates_then_updates_by_email() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        inputs = [
            {"idProperty": "email", "id": "ann@example.com", "properties": {"firstname": "Ann"}},
            {"idProperty": "email", "id": "bob@example.com", "properties": {"firstname": "Bob"}},
        ]
        first = await client.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})
        assert first.status_code == 200
        body = first.json()
        assert body["status"] == "COMPLETE"
        assert [r["new"] for r in body["results"]] == [True, True]
        assert ISO_MS.match(body["startedAt"]) and ISO_MS.match(body["completedAt"])
        ids = {r["properties"]["email"]: r["id"] for r in body["results"]}
        assert set(ids) == {"ann@example.com", "bob@example.com"}
        for result in body["results"]:
            assert {"id", "properties", "createdAt", "updatedAt", "archived", "new"} <= set(result)
            assert result["properties"]["hs_object_id"] == result["id"]

        inputs[0]["id"] = "ANN@example.com"
        inputs[0]["properties"] = {"firstname": "Annie", "social_sentiment": "positive"}
        second = await client.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})
        assert second.status_code == 200
        results = {r["properties"]["email"]: r for r in second.json()["results"]}
        assert results["ann@example.com"]["new"] is False
        assert results["ann@example.com"]["id"] == ids["ann@example.com"]
        assert results["ann@example.com"]["properties"]["firstname"] == "Annie"
        assert results["ann@example.com"]["properties"]["social_sentiment"] == "positive"
        assert sandbox.summary()["contacts"] == 2

    run(sandbox, scenario)


@pytest.mark.parametrize(
    ("path", "body", "name"),
    [
        (f"{CONTACTS}/batch/create", {"inputs": {"properties": {}}}, "inputs"),
        (f"{CONTACTS}/batch/update", {"inputs": [{"id": "1"}, "2"]}, "inputs"),
        (f"{CONTACTS}/batch/read", {"inputs": None}, "inputs"),
        (SEARCH, {"filterGroups": {"filters": []}}, "filterGroups"),
        (SEARCH, {"filterGroups": [{"filters": [eq("email", "a@b.c"), "x"]}]}, "filters"),
    ],
)
def test_a_batch_or_search_list_that_is_not_objects_is_refused_by_name(
    path: str, body: dict[str, Any], name: str
) -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        refused = await client.post(path, json=body)
        assert refused.status_code == 400
        assert refused.json()["category"] == "VALIDATION_ERROR"
        assert refused.json()["message"] == f"Invalid input JSON: {name} must be a list of objects"

    run(sandbox, scenario)


def test_batch_create_takes_100_inputs_and_refuses_101() -> None:
    sandbox = HubSpotSandbox()

    def batch(count: int, start: int = 0) -> dict[str, Any]:
        return {"inputs": [{"properties": {"email": f"c{start + i}@example.com"}} for i in range(count)]}

    async def scenario(client: httpx.AsyncClient) -> None:
        ok = await client.post(f"{CONTACTS}/batch/create", json=batch(100))
        assert ok.status_code == 201
        assert len(ok.json()["results"]) == 100
        too_many = await client.post(f"{CONTACTS}/batch/create", json=batch(101, start=100))
        assert too_many.status_code == 400
        assert too_many.json()["category"] == "VALIDATION_ERROR"
        assert "101" in too_many.json()["message"]
        upsert = {"inputs": [{"idProperty": "email", "id": f"u{i}@example.com", "properties": {}} for i in range(101)]}
        assert (await client.post(f"{CONTACTS}/batch/upsert", json=upsert)).status_code == 400

    run(sandbox, scenario)
    assert sandbox.summary()["contacts"] == 100


def test_batch_with_a_bad_email_is_207_with_the_other_inputs_written() -> None:
    sandbox = HubSpotSandbox()
    (existing,) = sandbox.seed_contacts([{"email": "taken@example.com"}])

    async def scenario(client: httpx.AsyncClient) -> None:
        inputs = [
            {"idProperty": "email", "id": "good@example.com", "properties": {"firstname": "Good"}},
            {"idProperty": "email", "id": "bad-address", "properties": {"firstname": "Bad"}},
            {"idProperty": "email", "id": "also.good@example.com", "properties": {}},
        ]
        response = await client.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})
        assert response.status_code == 207
        body = response.json()
        assert emails(body) == {"good@example.com", "also.good@example.com"}
        assert body["numErrors"] == 1
        error = body["errors"][0]
        assert error["status"] == "error"
        assert error["category"] == "VALIDATION_ERROR"
        assert '"error":"INVALID_EMAIL"' in error["message"]
        assert error["context"]["ids"] == ["bad-address"]

        creates = [
            {"properties": {"email": "new@example.com"}, "objectWriteTraceId": "row-1"},
            {"properties": {"email": "TAKEN@example.com"}, "objectWriteTraceId": "row-2"},
        ]
        partial = await client.post(f"{CONTACTS}/batch/create", json={"inputs": creates})
        assert partial.status_code == 207
        conflict = partial.json()["errors"][0]
        assert conflict["category"] == "CONFLICT"
        assert conflict["message"] == f"Contact already exists. Existing ID: {existing}"
        assert conflict["context"]["objectWriteTraceId"] == ["row-2"]
        assert partial.json()["results"][0]["objectWriteTraceId"] == "row-1"

    run(sandbox, scenario)
    assert sandbox.summary()["contacts"] == 4


def test_batch_read_update_and_archive() -> None:
    sandbox = HubSpotSandbox()
    ids = sandbox.seed_contacts([{"email": "a@example.com"}, {"email": "b@example.com"}])

    async def scenario(client: httpx.AsyncClient) -> None:
        read = await client.post(
            f"{CONTACTS}/batch/read",
            json={"idProperty": "email", "properties": ["email"], "inputs": [{"id": "a@example.com"}, {"id": "x@y.z"}]},
        )
        assert read.status_code == 207
        assert emails(read.json()) == {"a@example.com"}
        assert read.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
        assert read.json()["errors"][0]["context"] == {"ids": ["x@y.z"]}

        updates = [{"id": ids[0], "properties": {"firstname": "A"}}, {"id": ids[1], "properties": {"firstname": "B"}}]
        updated = await client.post(f"{CONTACTS}/batch/update", json={"inputs": updates})
        assert updated.status_code == 200
        assert {r["properties"]["firstname"] for r in updated.json()["results"]} == {"A", "B"}
        twice = await client.post(f"{CONTACTS}/batch/update", json={"inputs": [updates[0], updates[0]]})
        assert twice.status_code == 400

        archive = {"inputs": [{"id": ids[0]}, {"id": "999999"}]}
        assert (await client.post(f"{CONTACTS}/batch/archive", json=archive)).status_code == 204

    run(sandbox, scenario)
    assert sandbox.summary()["contacts"] == 1
    assert sandbox.summary()["archived"] == 1


# -- search ------------------------------------------------------------------------------------------------------
SEARCH_PEOPLE = [
    {
        "email": "ann@alpha.com",
        "firstname": "Ann",
        "lastname": "Lee",
        "company": "Alpha Coffee",
        "social_followers": 10,
        "social_sentiment": "positive",
        "lifecyclestage": "lead",
    },
    {
        "email": "bob@beta.io",
        "firstname": "Bob",
        "lastname": "Stone",
        "company": "Beta Labs",
        "social_followers": 250,
        "social_sentiment": "negative",
        "lifecyclestage": "customer",
    },
    {
        "email": "cy@alpha.com",
        "firstname": "Cy",
        "lastname": "Park",
        "social_followers": 1200,
        "social_sentiment": "neutral",
        "lifecyclestage": "customer",
    },
    {"email": "dee@gamma.net", "firstname": "Dee", "company": "Gamma Media", "social_followers": 9},
]


@pytest.mark.parametrize(
    ("search_filter", "expected"),
    [
        ({"propertyName": "email", "operator": "EQ", "value": "ANN@alpha.com"}, {"ann"}),
        ({"propertyName": "lifecyclestage", "operator": "NEQ", "value": "customer"}, {"ann", "dee"}),
        ({"propertyName": "lifecyclestage", "operator": "IN", "values": ["lead", "customer"]}, {"ann", "bob", "cy"}),
        ({"propertyName": "social_sentiment", "operator": "NOT_IN", "values": ["positive", "negative"]}, {"cy", "dee"}),
        ({"propertyName": "social_followers", "operator": "GT", "value": "10"}, {"bob", "cy"}),
        ({"propertyName": "social_followers", "operator": "GTE", "value": "10"}, {"ann", "bob", "cy"}),
        ({"propertyName": "social_followers", "operator": "LT", "value": "250"}, {"ann", "dee"}),
        ({"propertyName": "social_followers", "operator": "LTE", "value": 250}, {"ann", "bob", "dee"}),
        (
            {"propertyName": "social_followers", "operator": "BETWEEN", "value": "10", "highValue": "250"},
            {"ann", "bob"},
        ),
        ({"propertyName": "lastname", "operator": "HAS_PROPERTY"}, {"ann", "bob", "cy"}),
        ({"propertyName": "social_sentiment", "operator": "NOT_HAS_PROPERTY"}, {"dee"}),
        ({"propertyName": "company", "operator": "CONTAINS_TOKEN", "value": "coffee"}, {"ann"}),
        ({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@alpha.com"}, {"ann", "cy"}),
        ({"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": "*@alpha.com"}, {"bob", "dee"}),
    ],
)
def test_search_operators(search_filter: dict[str, Any], expected: set[str]) -> None:
    sandbox = HubSpotSandbox()
    sandbox.seed_contacts(SEARCH_PEOPLE)

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post(SEARCH, json={"filterGroups": [{"filters": [search_filter]}], "limit": 10})
        assert response.status_code == 200
        body = response.json()
        assert {e.split("@")[0] for e in emails(body)} == expected
        assert body["total"] == len(expected)

    run(sandbox, scenario)


def test_search_groups_sorts_properties_and_query() -> None:
    sandbox = HubSpotSandbox(search_per_second_limit=50)
    sandbox.seed_contacts(SEARCH_PEOPLE)

    async def scenario(client: httpx.AsyncClient) -> None:
        either = {
            "filterGroups": [
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "ann"}]},
                {
                    "filters": [
                        {"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"},
                        {"propertyName": "social_followers", "operator": "GT", "value": "1000"},
                    ]
                },
            ]
        }
        assert emails((await client.post(SEARCH, json=either)).json()) == {"ann@alpha.com", "cy@alpha.com"}

        by_reach = {
            "sorts": [{"propertyName": "social_followers", "direction": "DESCENDING"}],
            "properties": ["email", "social_followers"],
        }
        body = (await client.post(SEARCH, json=by_reach)).json()
        assert [r["properties"]["social_followers"] for r in body["results"]] == ["1200", "250", "10", "9"]
        assert "firstname" not in body["results"][0]["properties"]
        assert {"hs_object_id", "createdate", "lastmodifieddate"} <= set(body["results"][0]["properties"])

        by_sentiment = {"sorts": [{"propertyName": "social_sentiment", "direction": "ASCENDING"}]}
        order = [r["properties"]["email"] for r in (await client.post(SEARCH, json=by_sentiment)).json()["results"]]
        assert order == ["bob@beta.io", "cy@alpha.com", "ann@alpha.com", "dee@gamma.net"], "missing values sort last"

        assert emails((await client.post(SEARCH, json={"query": "alpha"})).json()) == {"ann@alpha.com", "cy@alpha.com"}
        assert emails((await client.post(SEARCH, json={"query": "sto"})).json()) == {"bob@beta.io"}

    run(sandbox, scenario)


def test_search_compares_dates_given_as_epoch_ms_or_iso() -> None:
    sandbox = HubSpotSandbox()
    sandbox.seed_contacts([{"email": "old@example.com"}])
    sandbox.clock.advance(60)
    (new_id,) = sandbox.seed_contacts([{"email": "new@example.com"}])
    created = parse_instant(sandbox._records["contacts"][new_id].properties["createdate"])

    async def scenario(client: httpx.AsyncClient) -> None:
        cases = (
            (str(epoch_ms(created) - 30_000), {"new@example.com"}),
            ((created - timedelta(seconds=30)).isoformat(), {"new@example.com"}),
            ("2000-01-01T00:00:00Z", {"old@example.com", "new@example.com"}),
        )
        for value, expected in cases:
            body = (await client.post(SEARCH, json=eq("createdate", value, "GTE"))).json()
            assert emails(body) == expected
            sandbox.clock.advance(1)  # stay under the search limit of 4 requests a second
        body = (await client.post(SEARCH, json=eq("createdate", created.isoformat(), "LT"))).json()
        assert emails(body) == {"old@example.com"}
        bad = await client.post(SEARCH, json=eq("createdate", "yesterday", "GTE"))
        assert bad.status_code == 400

    run(sandbox, scenario)


def test_search_pages_to_the_end_and_enforces_its_limits() -> None:
    sandbox = HubSpotSandbox()
    sandbox.seed_contacts({"email": f"s{i}@example.com"} for i in range(25))

    async def scenario(client: httpx.AsyncClient) -> None:
        seen: list[str] = []
        request: dict[str, Any] = {"limit": 10, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}
        for expected_after in ("10", "20", None):
            body = (await client.post(SEARCH, json=request)).json()
            assert body["total"] == 25
            seen += [r["id"] for r in body["results"]]
            if expected_after is None:
                assert "paging" not in body
            else:
                assert body["paging"]["next"]["after"] == expected_after
                request["after"] = expected_after
            sandbox.clock.advance(1)  # stay under the search limit of 4 requests a second
        assert len(seen) == len(set(seen)) == 25

        assert (await client.post(SEARCH, json={"limit": 200})).status_code == 200
        too_big = await client.post(SEARCH, json={"limit": 201})
        assert too_big.status_code == 400
        assert too_big.json()["category"] == "VALIDATION_ERROR"
        sandbox.clock.advance(1)

        one = {"propertyName": "email", "operator": "HAS_PROPERTY"}
        six_groups = {"filterGroups": [{"filters": [one]}] * 6}
        eleven_filters = {"filterGroups": [{"filters": [one] * 11}]}
        twenty_six = {"filterGroups": [{"filters": [one] * 10}] * 2 + [{"filters": [one] * 6}]}
        twenty_five = {"filterGroups": [{"filters": [one] * 5}] * 5}
        for body, status in ((six_groups, 400), (eleven_filters, 400), (twenty_six, 400), (twenty_five, 200)):
            assert (await client.post(SEARCH, json=body)).status_code == status
        sandbox.clock.advance(1)
        unknown = await client.post(SEARCH, json=eq("shoe_size", "9"))
        assert unknown.status_code == 400

    run(sandbox, scenario)


def test_search_cannot_page_past_10000_results() -> None:
    sandbox = HubSpotSandbox()
    sandbox.seed_contacts({"firstname": f"Bulk{i}"} for i in range(10_050))

    async def scenario(client: httpx.AsyncClient) -> None:
        near_end = (await client.post(SEARCH, json={"limit": 200, "after": "9800"})).json()
        assert near_end["total"] == 10_050
        assert len(near_end["results"]) == 200
        assert near_end["paging"]["next"]["after"] == "10000"
        capped = (await client.post(SEARCH, json={"limit": 200, "after": 9900})).json()
        assert len(capped["results"]) == 100
        past = await client.post(SEARCH, json={"limit": 10, "after": "10000"})
        assert past.status_code == 400
        assert past.json()["category"] == "VALIDATION_ERROR"

    run(sandbox, scenario)


def test_search_has_its_own_limit_of_four_requests_a_second() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(4):
            assert (await client.post(SEARCH, json={})).status_code == 200
        limited = await client.post(SEARCH, json={})
        assert limited.status_code == 429
        body = limited.json()
        assert body["errorType"] == "RATE_LIMIT"
        assert body["policyName"] == "SECONDLY"
        assert (await client.get(CONTACTS)).status_code == 200, "other endpoints are not held back"
        sandbox.clock.advance(1.01)
        assert (await client.post(SEARCH, json={})).status_code == 200

    run(sandbox, scenario)


def test_new_writes_become_searchable_after_the_index_delay() -> None:
    sandbox = HubSpotSandbox(search_index_delay_seconds=5)

    async def scenario(client: httpx.AsyncClient) -> None:
        created = await client.post(CONTACTS, json={"properties": {"email": "late@example.com", "firstname": "Old"}})
        assert created.status_code == 201
        assert (await client.post(SEARCH, json={})).json()["total"] == 0
        sandbox.clock.advance(5)
        assert (await client.post(SEARCH, json={})).json()["total"] == 1
        await client.patch(f"{CONTACTS}/{created.json()['id']}", json={"properties": {"firstname": "New"}})
        stale = (await client.post(SEARCH, json={"properties": ["firstname"]})).json()
        assert stale["results"][0]["properties"]["firstname"] == "Old"
        sandbox.clock.advance(5)
        fresh = (await client.post(SEARCH, json={"properties": ["firstname"]})).json()
        assert fresh["results"][0]["properties"]["firstname"] == "New"

    run(sandbox, scenario)


def test_search_by_email_looks_at_the_records_that_held_the_email_and_sees_what_search_would() -> None:
    sandbox = HubSpotSandbox(search_index_delay_seconds=5)
    ids = sandbox.seed_contacts([{"email": f"p{n}@x.com", "firstname": f"P{n}"} for n in range(300)])
    sandbox.clock.advance(5)

    def by_email(*addresses: str, groups: int = 1) -> dict[str, Any]:
        values = list(addresses)
        filters = [{"propertyName": "email", "operator": "IN", "values": values}]
        return {"filterGroups": [{"filters": filters}] * groups, "limit": 100, "properties": ["email", "firstname"]}

    def in_order(body: dict[str, Any]) -> list[str]:
        return [result["properties"]["email"] for result in body["results"]]

    async def scenario(client: httpx.AsyncClient) -> None:
        found = (await client.post(SEARCH, json=by_email("P250@X.com", "p3@x.com", "nobody@x.com"))).json()
        # Oldest first, as a scan finds them; case does not matter.
        assert in_order(found) == ["p3@x.com", "p250@x.com"] and found["total"] == 2
        # An email changed: search sees the old one until the index catches up, then only the new one.
        changed = await client.patch(f"{CONTACTS}/{ids[3]}", json={"properties": {"email": "moved@x.com"}})
        assert changed.status_code == 200
        assert in_order((await client.post(SEARCH, json=by_email("p3@x.com"))).json()) == ["p3@x.com"]
        assert (await client.post(SEARCH, json=by_email("moved@x.com"))).json()["total"] == 0
        sandbox.clock.advance(5)
        assert (await client.post(SEARCH, json=by_email("p3@x.com"))).json()["total"] == 0
        assert in_order((await client.post(SEARCH, json=by_email("moved@x.com"))).json()) == ["moved@x.com"]
        # Another filter beside the email in the group still applies; a group without an email filter means all.
        narrowed = {"filterGroups": [{"filters": [
            {"propertyName": "email", "operator": "EQ", "value": "p7@x.com"},
            {"propertyName": "firstname", "operator": "EQ", "value": "P8"},
        ]}]}
        assert (await client.post(SEARCH, json=narrowed)).json()["total"] == 0
        mixed = {"filterGroups": [
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": "p7@x.com"}]},
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "P8"}]},
        ], "limit": 10}
        assert in_order((await client.post(SEARCH, json=mixed)).json()) == ["p7@x.com", "p8@x.com"]

    run(sandbox, scenario)


# -- leads and notes ---------------------------------------------------------------------------------------------
def lead_link(contact_id: str, type_id: int = 578) -> list[dict[str, Any]]:
    return [
        {"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
    ]


def test_a_lead_needs_an_association_to_a_contact() -> None:
    sandbox = HubSpotSandbox()
    (contact_id,) = sandbox.seed_contacts([{"email": "lead@example.com"}])
    leads = "/crm/v3/objects/leads"

    async def scenario(client: httpx.AsyncClient) -> None:
        alone = await client.post(leads, json={"properties": {"hs_lead_name": "Lead One"}})
        assert alone.status_code == 400
        assert alone.json()["category"] == "VALIDATION_ERROR"
        dangling = await client.post(leads, json={"properties": {}, "associations": lead_link("424242")})
        assert dangling.status_code == 400
        wrong_type = await client.post(leads, json={"properties": {}, "associations": lead_link(contact_id, 202)})
        assert wrong_type.status_code == 400

        created = await client.post(
            leads,
            json={
                "properties": {"hs_lead_name": "Lead One", "hs_pipeline_stage": "new-stage-id"},
                "associations": lead_link(contact_id),
            },
        )
        assert created.status_code == 201
        lead = created.json()
        assert ISO_MS.match(lead["properties"]["hs_lastmodifieddate"])
        fetched = (await client.get(f"{leads}/{lead['id']}", params={"associations": "contacts"})).json()
        assert fetched["associations"]["contacts"]["results"] == [{"id": contact_id, "type": "lead_to_primary_contact"}]
        contact = (await client.get(f"{CONTACTS}/{contact_id}", params={"associations": "leads"})).json()
        assert contact["associations"]["leads"]["results"][0]["id"] == lead["id"]
        listed = (await client.get(leads, params={"properties": "hs_lead_name"})).json()
        assert [r["properties"]["hs_lead_name"] for r in listed["results"]] == ["Lead One"]

        batch = {
            "inputs": [
                {"properties": {"hs_lead_name": "Two"}, "associations": lead_link(contact_id)},
                {"properties": {"hs_lead_name": "Three"}},
            ]
        }
        partial = await client.post(f"{leads}/batch/create", json=batch)
        assert partial.status_code == 207
        assert len(partial.json()["results"]) == 1

    run(sandbox, scenario)
    assert sandbox.summary()["leads"] == 2


def test_notes_attach_to_contacts() -> None:
    sandbox = HubSpotSandbox()
    (contact_id,) = sandbox.seed_contacts([{"email": "noted@example.com"}])
    notes = "/crm/v3/objects/notes"

    async def scenario(client: httpx.AsyncClient) -> None:
        note = {
            "properties": {"hs_note_body": "<p>Replied to our DM</p>", "hs_timestamp": "2026-03-01T10:00:00Z"},
            "associations": lead_link(contact_id, 202),
        }
        created = await client.post(notes, json=note)
        assert created.status_code == 201
        assert created.json()["properties"]["hs_timestamp"] == "2026-03-01T10:00:00.000Z"
        note_id = created.json()["id"]
        fetched = await client.get(f"{notes}/{note_id}", params={"properties": "hs_note_body"})
        assert fetched.json()["properties"]["hs_note_body"] == "<p>Replied to our DM</p>"

        no_time = await client.post(notes, json={"properties": {"hs_note_body": "x"}})
        assert no_time.status_code == 400
        assert '"error":"REQUIRED_PROPERTY","name":"hs_timestamp"' in no_time.json()["message"]

        epoch = str(epoch_ms(parse_instant("2026-03-02T00:00:00Z")))
        batch = {
            "inputs": [
                {"properties": {"hs_note_body": f"n{i}", "hs_timestamp": epoch}, "associations": note["associations"]}
                for i in range(2)
            ]
        }
        assert (await client.post(f"{notes}/batch/create", json=batch)).status_code == 201
        assert len((await client.get(notes)).json()["results"]) == 3
        contact = (await client.get(f"{CONTACTS}/{contact_id}", params={"associations": "notes"})).json()
        assert len(contact["associations"]["notes"]["results"]) == 3

    run(sandbox, scenario)


# -- associations (v4) -------------------------------------------------------------------------------------------
def v4_read(from_type: str, to_type: str) -> str:
    return f"/crm/v4/associations/{from_type}/{to_type}/batch/read"


def unlabeled(type_id: int) -> dict[str, Any]:
    return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}


def test_v4_batch_read_lists_each_records_associations_and_reports_the_rest_as_207() -> None:
    sandbox = HubSpotSandbox()
    fan, quiet = sandbox.seed_contacts([{"email": "fan@example.com"}, {"email": "quiet@example.com"}])
    leads, notes = "/crm/v3/objects/leads", "/crm/v3/objects/notes"

    async def scenario(client: httpx.AsyncClient) -> None:
        primary = (await client.post(leads, json={"properties": {}, "associations": lead_link(fan)})).json()["id"]
        other = (await client.post(leads, json={"properties": {}, "associations": lead_link(fan, 608)})).json()["id"]
        note = {"properties": {"hs_timestamp": "2026-03-01T10:00:00Z"}, "associations": lead_link(fan, 202)}
        note_id = (await client.post(notes, json=note)).json()["id"]

        inputs = [{"id": fan}, {"id": quiet}, {"id": "9"}]
        read = await client.post(v4_read("contacts", "leads"), json={"inputs": inputs})
        assert read.status_code == 207
        body = read.json()
        assert body["status"] == "COMPLETE" and ISO_MS.match(body["startedAt"]) and ISO_MS.match(body["completedAt"])
        assert body["results"] == [
            {
                "from": {"id": fan},
                "to": [
                    {"toObjectId": int(primary), "associationTypes": [unlabeled(609)]},
                    {"toObjectId": int(other), "associationTypes": [unlabeled(609)]},
                ],
            }
        ]
        assert body["numErrors"] == 2
        assert body["errors"][0] == {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
            "message": f"No lead is associated with contact {quiet}.",
            "context": {"fromObjectId": [quiet], "fromObjectType": ["contact"], "toObjectType": ["lead"]},
        }
        assert body["errors"][1]["context"]["fromObjectId"] == ["9"]

        # Object type ids and singular names address the same objects; the primary contact is labeled.
        back = await client.post(v4_read("0-136", "0-1"), json={"inputs": [{"id": primary}, {"id": other}]})
        assert back.status_code == 200 and "errors" not in back.json()
        assert [result["to"] for result in back.json()["results"]] == [
            [
                {
                    "toObjectId": int(fan),
                    "associationTypes": [
                        unlabeled(608),
                        {"category": "HUBSPOT_DEFINED", "typeId": 578, "label": "Primary"},
                    ],
                }
            ],
            [{"toObjectId": int(fan), "associationTypes": [unlabeled(608)]}],
        ]
        to_notes = (await client.post(v4_read("contact", "note"), json={"inputs": [{"id": fan}]})).json()
        assert to_notes["results"][0]["to"] == [{"toObjectId": int(note_id), "associationTypes": [unlabeled(201)]}]

        # An archived lead is no longer associated.
        assert (await client.delete(f"{leads}/{other}")).status_code == 204
        after = (await client.post(v4_read("contacts", "leads"), json={"inputs": [{"id": fan}]})).json()
        assert [to["toObjectId"] for to in after["results"][0]["to"]] == [int(primary)]

        unknown = await client.post(v4_read("contacts", "widgets"), json={"inputs": [{"id": fan}]})
        assert unknown.status_code == 400 and unknown.json()["message"] == "Unable to infer object type from: widgets"
        hundred_and_one = [{"id": str(i)} for i in range(101)]
        too_many = await client.post(v4_read("contacts", "leads"), json={"inputs": hundred_and_one})
        assert too_many.status_code == 400 and "Batch input limit exceeded" in too_many.json()["message"]
        not_inputs = await client.post(v4_read("contacts", "leads"), json={"ids": [fan]})
        assert not_inputs.status_code == 400

    run(sandbox, scenario)


def test_v4_batch_read_pages_a_records_associations_with_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hubspot_module, "ASSOCIATION_PAGE_LIMIT", 2)
    sandbox = HubSpotSandbox()
    (contact_id,) = sandbox.seed_contacts([{"email": "chatty@example.com"}])

    async def scenario(client: httpx.AsyncClient) -> None:
        note = {"properties": {"hs_timestamp": "2026-03-01T10:00:00Z"}, "associations": lead_link(contact_id, 202)}
        created = await client.post("/crm/v3/objects/notes/batch/create", json={"inputs": [note] * 5})
        note_ids = sorted(int(result["id"]) for result in created.json()["results"])
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            item = {"id": contact_id, **({"after": cursor} if cursor else {})}
            page = (await client.post(v4_read("contacts", "notes"), json={"inputs": [item]})).json()["results"][0]
            seen.extend(to["toObjectId"] for to in page["to"])
            pages += 1
            if "paging" not in page:
                break
            cursor = page["paging"]["next"]["after"]
        assert seen == note_ids and pages == 3
        bad = await client.post(v4_read("contacts", "notes"), json={"inputs": [{"id": contact_id, "after": "zz"}]})
        assert bad.status_code == 400

    run(sandbox, scenario)


def test_v4_batch_read_needs_read_scopes_on_both_objects() -> None:
    sandbox = HubSpotSandbox(scopes=["crm.objects.contacts.read"])
    (contact_id,) = sandbox.seed_contacts([{"email": "scoped@example.com"}])

    async def scenario(client: httpx.AsyncClient) -> None:
        refused = await client.post(v4_read("contacts", "leads"), json={"inputs": [{"id": contact_id}]})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.leads.read"]
        allowed = await client.post(v4_read("contacts", "notes"), json={"inputs": [{"id": contact_id}]})
        assert allowed.status_code == 207

    run(sandbox, scenario)


# -- properties --------------------------------------------------------------------------------------------------
def test_properties_list_standard_and_social_fields() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        listed = await client.get("/crm/v3/properties/contacts")
        assert listed.status_code == 200
        by_name = {p["name"]: p for p in listed.json()["results"]}
        for name in ("email", "firstname", "lifecyclestage", "hs_lead_status", "lastmodifieddate", "hs_object_id"):
            assert by_name[name]["hubspotDefined"] is True
        for name in ("twitter_username", "instagram_username", "linkedin_url", "social_followers"):
            assert "hubspotDefined" not in by_name[name]
        sentiment = by_name["social_sentiment"]
        assert (sentiment["type"], sentiment["fieldType"]) == ("enumeration", "select")
        assert [o["value"] for o in sentiment["options"]] == ["positive", "neutral", "negative", "mixed"]
        assert by_name["lastmodifieddate"]["modificationMetadata"]["readOnlyValue"] is True
        one = await client.get("/crm/v3/properties/contacts/social_followers")
        assert one.json()["type"] == "number"
        assert (await client.get("/crm/v3/properties/contacts/shoe_size")).status_code == 404

    run(sandbox, scenario)


def test_creating_a_property_makes_it_writable_once() -> None:
    sandbox = HubSpotSandbox(social_properties=False)
    definition = {
        "name": "twitter_username",
        "label": "Twitter username",
        "type": "string",
        "fieldType": "text",
        "groupName": "socialmediainformation",
    }

    async def scenario(client: httpx.AsyncClient) -> None:
        write = {"properties": {"email": "tw@example.com", "twitter_username": "tw"}}
        refused = await client.post(CONTACTS, json=write)
        assert refused.status_code == 400
        assert "PROPERTY_DOESNT_EXIST" in refused.json()["message"]

        created = await client.post("/crm/v3/properties/contacts", json=definition)
        assert created.status_code == 201
        assert created.json()["name"] == "twitter_username"
        assert created.json()["groupName"] == "socialmediainformation"
        assert (await client.post(CONTACTS, json=write)).status_code == 201

        again = await client.post("/crm/v3/properties/contacts", json=definition)
        assert again.status_code == 409
        assert again.json()["status"] == "error"

    run(sandbox, scenario)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"label": None}, "[label]"),
        ({"type": None, "groupName": ""}, "[type, groupName]"),
        ({"type": "text"}, "is not a property type"),
        ({"type": "number"}, "is not valid for a property of type number"),
        ({"type": "enumeration", "fieldType": "select"}, "options"),
        ({"name": "hs_mine"}, "reserved"),
        ({"groupName": "nowhere"}, "does not exist"),
    ],
)
def test_property_definitions_are_validated(changes: dict[str, Any], fragment: str) -> None:
    sandbox = HubSpotSandbox()
    body = {"name": "favourite_color", "label": "Favourite color", "type": "string", "fieldType": "text"}
    body["groupName"] = "contactinformation"
    body.update(changes)
    body = {key: value for key, value in body.items() if value is not None}

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.post("/crm/v3/properties/contacts", json=body)
        assert response.status_code == 400
        assert response.json()["category"] == "VALIDATION_ERROR"
        assert fragment in response.json()["message"]

    run(sandbox, scenario)


# -- rate limits -------------------------------------------------------------------------------------------------
def test_ten_second_window_answers_429_then_recovers() -> None:
    sandbox = HubSpotSandbox(ten_second_limit=5)

    async def scenario(client: httpx.AsyncClient) -> None:
        remaining = []
        for _ in range(5):
            response = await client.get(CONTACTS)
            assert response.status_code == 200
            assert response.headers["X-HubSpot-RateLimit-Max"] == "5"
            assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
            remaining.append(response.headers["X-HubSpot-RateLimit-Remaining"])
        assert remaining == ["4", "3", "2", "1", "0"]

        limited = await client.get(CONTACTS)
        assert limited.status_code == 429
        body = limited.json()
        assert body["status"] == "error"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["errorType"] == "RATE_LIMIT"
        assert body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["correlationId"]
        assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"

        sandbox.clock.advance(10)
        assert (await client.get(CONTACTS)).status_code == 200
        assert (await client.patch("/__sandbox__/config", json={"ten_second_limit": 190})).status_code == 200
        assert (await client.get(CONTACTS)).headers["X-HubSpot-RateLimit-Max"] == "190"

    run(sandbox, scenario)


def test_daily_limit_answers_the_daily_policy_until_the_next_day() -> None:
    sandbox = HubSpotSandbox(daily_limit=3)

    async def scenario(client: httpx.AsyncClient) -> None:
        left = []
        for _ in range(3):
            response = await client.get(CONTACTS)
            assert response.headers["X-HubSpot-RateLimit-Daily"] == "3"
            left.append(response.headers["X-HubSpot-RateLimit-Daily-Remaining"])
        assert left == ["2", "1", "0"]
        limited = await client.get(CONTACTS)
        assert limited.status_code == 429
        assert limited.json()["policyName"] == "DAILY"
        sandbox.clock.advance(24 * 3600)
        assert (await client.get(CONTACTS)).status_code == 200

    run(sandbox, scenario)


# -- faults and salesperson edits --------------------------------------------------------------------------------
def test_request_faults_from_the_control_endpoint() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.put("/__sandbox__/faults", json={"spec": "5xx@1"})
        failed = await client.get(CONTACTS)
        assert failed.status_code in (502, 503)
        assert failed.json()["status"] == "error"
        assert failed.json()["correlationId"]
        assert (await client.get(CONTACTS)).status_code == 200

        await client.put("/__sandbox__/faults", json={"spec": "429@1"})
        limited = await client.get(CONTACTS)
        assert limited.status_code == 429
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
        assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"

        await client.put("/__sandbox__/faults", json={"spec": "reset@1"})
        with pytest.raises(httpx.ReadError):
            await client.get(CONTACTS)
        assert (await client.get(CONTACTS)).status_code == 200

    run(sandbox, scenario)


def test_invalid_record_fault_refuses_one_input_of_a_batch() -> None:
    sandbox = HubSpotSandbox()

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.put("/__sandbox__/faults", json={"spec": "invalid@2"})
        batch = {"inputs": [{"properties": {"email": f"f{i}@example.com"}} for i in range(3)]}
        response = await client.post(f"{CONTACTS}/batch/create", json=batch)
        assert response.status_code == 207
        assert emails(response.json()) == {"f0@example.com", "f2@example.com"}
        assert response.json()["errors"][0]["category"] == "VALIDATION_ERROR"

    run(sandbox, scenario)


def test_a_salesperson_edit_moves_lastmodifieddate_and_an_incremental_search_finds_it() -> None:
    sandbox = HubSpotSandbox()
    untouched, edited = sandbox.seed_contacts([{"email": "same@example.com"}, {"email": "edit@example.com"}])
    cursor = sandbox._records["contacts"][edited].properties["lastmodifieddate"]
    sandbox.clock.advance(5)

    async def scenario(client: httpx.AsyncClient) -> None:
        response = await client.patch(
            f"/__sandbox__/records/contacts/{edited}", json={"properties": {"firstname": "Edited"}}
        )
        assert response.status_code == 200
        assert response.json()["properties"]["lastmodifieddate"] > cursor
        flat = await client.patch(f"/__sandbox__/records/contacts/{edited}", json={"jobtitle": "CMO"})
        assert flat.json()["properties"]["jobtitle"] == "CMO"
        assert (await client.patch("/__sandbox__/records/contacts/999", json={"firstname": "x"})).status_code == 404
        assert (await client.patch(f"/__sandbox__/records/contacts/{edited}", json={"nope": 1})).status_code == 400

        since = str(epoch_ms(parse_instant(cursor)) + 1)
        body = {
            **eq("lastmodifieddate", since, "GTE"),
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["firstname", "jobtitle"],
        }
        found = (await client.post(SEARCH, json=body)).json()
        assert [r["id"] for r in found["results"]] == [edited]
        assert found["results"][0]["properties"]["firstname"] == "Edited"
        assert untouched not in {r["id"] for r in found["results"]}

    run(sandbox, scenario)


def test_generated_people_are_seeded_as_contacts_and_associated_leads() -> None:
    config = SandboxConfig(contacts=40, seed=3)
    people = generate_people(40, 3)
    sandbox = HubSpotSandbox(config)
    summary = sandbox.summary()
    assert summary["contacts"] == 40
    assert summary["leads"] == sum(p.is_lead for p in people) > 0

    async def scenario(client: httpx.AsyncClient) -> None:
        person = next(p for p in people if p.is_lead)
        fetched = await client.get(
            f"{CONTACTS}/{person.email}",
            params={"idProperty": "email", "properties": "lifecyclestage,social_sentiment", "associations": "leads"},
        )
        assert fetched.status_code == 200
        record = fetched.json()
        assert record["properties"]["lifecyclestage"] == person.lifecycle
        assert record["properties"]["social_sentiment"] == person.sentiment.value
        assert len(record["associations"]["leads"]["results"]) == 1

    run(sandbox, scenario)
