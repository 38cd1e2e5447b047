"""The Salesforce sandbox against the wire facts: OAuth, sessions, CRUD, SOQL, collections, limits and faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.salesforce import (
    API_PREFIX,
    DEFAULT_CUSTOM_FIELDS,
    WRITE_SLICE,
    SalesforceSandbox,
    id_checksum,
    parse_datetime_literal,
    parse_soql,
    salesforce_id,
    to_18,
)

#: Salesforce's JSON Schema of the describe response, from the vendor specs beside the checkout (../shared).
DESCRIBE_SCHEMA = Path(
    os.environ.get(
        "CRM_DESKTOP_SALESFORCE_DESCRIBE_SCHEMA",
        Path(__file__).resolve().parents[3] / "shared/vendor-specs/salesforce/plugin-schema/sobject-describe.json",
    )
)
needs_describe_schema = pytest.mark.skipif(
    not DESCRIBE_SCHEMA.is_file(), reason=f"Salesforce's describe schema is not at {DESCRIBE_SCHEMA}"
)
REDIRECT_URI = "http://localhost:1717/OauthRedirect"
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def api_client(sandbox: SalesforceSandbox, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
    token = token or sandbox.credentials()["accessToken"]
    return sandbox.client(headers={"Authorization": f"Bearer {token}"}, **kwargs)


async def soql(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.get(f"{API_PREFIX}/query", params={"q": query})


def with_api(sandbox: SalesforceSandbox, body: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        async with api_client(sandbox) as client:
            return await body(client)

    return run(go())


@pytest.fixture
def sandbox() -> SalesforceSandbox:
    return SalesforceSandbox(SandboxConfig(seed=7, hang_seconds=0.5))


PEOPLE: list[dict[str, Any]] = [
    {"FirstName": "Ana", "LastName": "García", "Email": "ana.garcia@lumen.io", "social_followers__c": 120},
    {"FirstName": "Liam", "LastName": "O'Brien", "Email": "Liam.OBrien@Harbor.com", "social_followers__c": 90_000},
    {"FirstName": "Mei", "LastName": "Chen", "Email": "mei.chen@atlas.co", "social_followers__c": 4500},
    {"FirstName": "Omar", "LastName": "Haddad", "Email": "omar@nimbus.ai", "social_followers__c": None},
    {"FirstName": "Zoë", "LastName": "Chen", "Email": "zoe.chen@atlas.co", "social_followers__c": 4500},
]


async def create_people(client: httpx.AsyncClient) -> list[str]:
    records = [{"attributes": {"type": "Contact"}, **person} for person in PEOPLE]
    response = await client.post(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": True, "records": records})
    assert response.status_code == 200, response.text
    results = response.json()
    assert all(result["success"] for result in results), results
    return [result["id"] for result in results]


# -- ids -----------------------------------------------------------------------------------------------------------
def test_ids_are_real_looking_18_character_ids_with_a_case_checksum() -> None:
    assert id_checksum("001A0000006Vm9r") == "IAC"
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to_18("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert to_18("001A0000006Vm9rXYZ") is None
    assert to_18("not-an-id") is None
    contact_id = salesforce_id("003", 123_456)
    assert len(contact_id) == 18 and contact_id.startswith("003")
    assert to_18(contact_id[:15]) == contact_id


@pytest.mark.parametrize("number", [0, 1, 61, 62, 3_843, 3_844, 3_845, 238_327, 1_000_000, 62**7 + 5, 62**9 - 1])
def test_ids_count_in_base_62_with_the_checksum_of_their_15_characters(number: int) -> None:
    digits = ""
    rest = number
    for _ in range(9):
        rest, digit = divmod(rest, 62)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[digit] + digits
    short = f"00QHs0{digits}"
    assert salesforce_id("00Q", number) == short + id_checksum(short)
    assert salesforce_id("00Q", number) < salesforce_id("00Q", number + 1) or number == 62**9 - 1


# -- OAuth ---------------------------------------------------------------------------------------------------------
async def authorize(
    client: httpx.AsyncClient, sandbox: SalesforceSandbox, challenge: str, **extra: str
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": sandbox.client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st4te",
        "scope": "api refresh_token",
        **extra,
    }
    return await client.get("/services/oauth2/authorize", params=params)


def test_oauth_web_server_flow_with_pkce(sandbox: SalesforceSandbox) -> None:
    async def go() -> None:
        verifier, challenge = pkce_pair()
        async with sandbox.client() as client:
            redirect = await authorize(client, sandbox, challenge)
            assert redirect.status_code == 302
            location = urlsplit(redirect.headers["location"])
            assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
            query = parse_qs(location.query)
            assert query["state"] == ["st4te"]
            code = query["code"][0]
            assert code.endswith("==")  # Salesforce codes carry '=' that clients must URL-decode
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": sandbox.client_id,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            }
            token = await client.post("/services/oauth2/token", data=form)
            assert token.status_code == 200, token.text
            body = token.json()
            assert set(body) == {
                "access_token",
                "refresh_token",
                "signature",
                "scope",
                "instance_url",
                "id",
                "token_type",
                "issued_at",
            }
            assert body["token_type"] == "Bearer"
            assert body["instance_url"] == sandbox.base_url
            assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
            assert body["id"].endswith(f"/id/{sandbox.org_id}/{sandbox.user_id}")
            assert body["scope"] == "api refresh_token"

            again = await client.post("/services/oauth2/token", data=form)
            assert again.status_code == 400
            assert again.json()["error"] == "invalid_grant"

            headers = {"Authorization": f"Bearer {body['access_token']}"}
            me = await client.get("/services/oauth2/userinfo", headers=headers)
            assert me.status_code == 200
            assert me.json()["user_id"] == sandbox.user_id
            limits = await client.get(f"{API_PREFIX}/limits", headers=headers)
            assert limits.status_code == 200

    run(go())


def test_oauth_refuses_a_wrong_verifier_a_foreign_redirect_and_a_wrong_client(sandbox: SalesforceSandbox) -> None:
    async def go() -> None:
        verifier, challenge = pkce_pair()
        async with sandbox.client() as client:
            foreign = await authorize(client, sandbox, challenge, redirect_uri="https://evil.example/callback")
            assert foreign.status_code == 400
            assert foreign.json()["error"] == "redirect_uri_mismatch"
            not_loopback_http = await authorize(client, sandbox, challenge, redirect_uri="http://example.com/cb")
            assert not_loopback_http.status_code == 400

            no_pkce = await authorize(client, sandbox, "", code_challenge_method="plain")
            assert no_pkce.status_code == 302
            assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]

            redirect = await authorize(client, sandbox, challenge)
            code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": sandbox.client_id,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": pkce_pair()[0],
            }
            wrong = await client.post("/services/oauth2/token", data=form)
            assert wrong.status_code == 400
            assert wrong.json() == {"error": "invalid_grant", "error_description": "invalid code verifier"}

            bad_secret = await client.post(
                "/services/oauth2/token",
                data={**form, "code_verifier": verifier, "client_secret": "nope"},
            )
            assert bad_secret.status_code == 400
            assert bad_secret.json()["error"] == "invalid_client"
            bad_client = await client.post(
                "/services/oauth2/token",
                data={"grant_type": "refresh_token", "client_id": "someone-else", "refresh_token": "x"},
            )
            assert bad_client.status_code == 400
            assert bad_client.json()["error"] == "invalid_client"

    run(go())


def test_refresh_issues_a_new_access_token_without_a_new_refresh_token(sandbox: SalesforceSandbox) -> None:
    async def go() -> None:
        credentials = sandbox.credentials()
        async with sandbox.client() as client:
            form = {
                "grant_type": "refresh_token",
                "client_id": credentials["clientId"],
                "client_secret": credentials["clientSecret"],
                "refresh_token": credentials["refreshToken"],
            }
            refreshed = await client.post("/services/oauth2/token", data=form)
            assert refreshed.status_code == 200
            body = refreshed.json()
            assert "refresh_token" not in body
            assert body["access_token"] != credentials["accessToken"]
            assert body["instance_url"] == sandbox.base_url

            unknown = await client.post("/services/oauth2/token", data={**form, "refresh_token": "5Aep861forged"})
            assert unknown.status_code == 400
            assert unknown.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}

    run(go())


def expect_invalid_session(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Token"
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_access_token_expires_after_its_calls_and_the_refresh_token_gets_a_new_one() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=1), token_ttl_calls=2)
    credentials = sandbox.credentials()

    async def go() -> None:
        async with api_client(sandbox, credentials["accessToken"]) as client:
            for _ in range(2):
                assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200
            expect_invalid_session(await client.get(f"{API_PREFIX}/limits"))
        async with sandbox.client() as client:
            refreshed = await client.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "refresh_token",
                    "client_id": credentials["clientId"],
                    "refresh_token": credentials["refreshToken"],
                },
            )
            token = refreshed.json()["access_token"]
        async with api_client(sandbox, token) as client:
            assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200

    run(go())


def test_access_token_expires_after_its_lifetime_and_on_the_expire_fault(sandbox: SalesforceSandbox) -> None:
    sandbox.apply_config({"token_ttl_seconds": 60})

    async def go() -> None:
        async with api_client(sandbox) as client:
            assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200
            sandbox.clock.advance(61)
            expect_invalid_session(await client.get(f"{API_PREFIX}/limits"))
        async with api_client(sandbox) as client:  # credentials() hands out a fresh session
            assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200
            faults = await client.put("/__sandbox__/faults", json={"spec": "expire@2"})
            assert faults.status_code == 200
            assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200
            expect_invalid_session(await client.get(f"{API_PREFIX}/limits"))
            expect_invalid_session(await client.get(f"{API_PREFIX}/limits"))
        async with sandbox.client() as client:
            expect_invalid_session(await client.get(f"{API_PREFIX}/limits"))  # no token at all

    run(go())


# -- CRUD ----------------------------------------------------------------------------------------------------------
def test_contact_create_read_update_delete(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        created = await client.post(
            f"{API_PREFIX}/sobjects/Contact",
            json={"FirstName": "Ana", "LastName": "García", "Email": "Ana@Lumen.io", "twitter_username__c": "ana"},
        )
        assert created.status_code == 201
        body = created.json()
        assert body["success"] is True and body["errors"] == []
        contact_id = body["id"]
        assert len(contact_id) == 18 and contact_id.startswith("003")

        read = await client.get(f"{API_PREFIX}/sobjects/Contact/{contact_id}")
        record = read.json()
        assert record["attributes"] == {"type": "Contact", "url": f"{API_PREFIX}/sobjects/Contact/{contact_id}"}
        assert record["Name"] == "Ana García"
        assert record["twitter_username__c"] == "ana"
        assert record["CreatedDate"] == record["SystemModstamp"]
        assert record["CreatedDate"].endswith("+0000")
        short = await client.get(f"{API_PREFIX}/sobjects/Contact/{contact_id[:15]}", params={"fields": "email,Id"})
        assert short.json() == {"attributes": record["attributes"], "Email": "Ana@Lumen.io", "Id": contact_id}

        updated = await client.patch(f"{API_PREFIX}/sobjects/Contact/{contact_id}", json={"title": "CMO"})
        assert updated.status_code == 204
        after = (await client.get(f"{API_PREFIX}/sobjects/Contact/{contact_id}")).json()
        assert after["Title"] == "CMO"
        assert after["SystemModstamp"] > record["SystemModstamp"]
        assert after["LastModifiedDate"] == after["SystemModstamp"]

        assert (await client.delete(f"{API_PREFIX}/sobjects/Contact/{contact_id}")).status_code == 204
        gone = await client.get(f"{API_PREFIX}/sobjects/Contact/{contact_id}")
        assert gone.status_code == 404
        assert gone.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        assert (
            await client.patch(f"{API_PREFIX}/sobjects/Contact/{contact_id}", json={"Title": "x"})
        ).status_code == 404

    with_api(sandbox, go)


def test_a_collection_checks_each_value_like_a_single_write_and_stamps_its_records_once(
    sandbox: SalesforceSandbox,
) -> None:
    contact = {"attributes": {"type": "Contact"}, "LastName": "Kim"}
    records = [
        {**contact, "Email": "kim@x.com", "Phone": "", "social_followers__c": 12, "social_engagement_score__c": 7.256},
        {**contact, "Title": "x" * 129},
        {**contact, "Email": "kim@"},
        {**contact, "social_followers__c": 1e20},
        {**contact, "social_engagement_score__c": True},
        {**contact, "CreatedDate": "2024-01-01T00:00:00Z"},
        {**contact, "lastname": "Lower", "EMAIL": "lower@x.com"},
    ]

    async def go(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        response = await client.post(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": False, "records": records})
        return list(response.json())

    results = with_api(sandbox, go)
    codes = [result["errors"][0]["statusCode"] if not result["success"] else "ok" for result in results]
    assert codes == [
        "ok",
        "STRING_TOO_LONG",
        "INVALID_EMAIL_ADDRESS",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "JSON_PARSER_ERROR",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "ok",
    ]
    first, lower = (sandbox.records["Contact"][results[i]["id"]] for i in (0, 6))
    # Empty text is stored as null; numbers are rounded to their field's scale.
    assert first["Phone"] is None and first["social_followers__c"] == 12.0
    assert first["social_engagement_score__c"] == 7.26
    assert (lower["LastName"], lower["Email"]) == ("Lower", "lower@x.com")
    # One request is one transaction: its records share their created and modified time.
    assert first["CreatedDate"] == lower["CreatedDate"] == lower["SystemModstamp"]


@pytest.mark.parametrize("all_or_none", [False, True])
def test_a_long_collection_lets_other_requests_in_unless_it_is_one_transaction(
    sandbox: SalesforceSandbox, all_or_none: bool
) -> None:
    records = [{"attributes": {"type": "Contact"}, "LastName": f"P{n}", "Email": f"p{n}@x.com"} for n in range(200)]
    turns: list[int] = []

    async def go(client: httpx.AsyncClient) -> int:
        async def other_work() -> None:
            while True:
                turns.append(len(sandbox.records["Contact"]))
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(other_work())
        await asyncio.sleep(0)
        response = await client.post(
            f"{API_PREFIX}/composite/sobjects", json={"allOrNone": all_or_none, "records": records}
        )
        watcher.cancel()
        return response.status_code

    assert with_api(sandbox, go) == 200
    assert len(sandbox.records["Contact"]) == 200
    # Other work ran while the collection was part written (between two slices of its records)...
    part_written = sorted({count for count in turns if 0 < count < 200})
    if all_or_none:
        assert part_written == [], "...except inside one all-or-none transaction"
    else:
        assert part_written == list(range(WRITE_SLICE, 200, WRITE_SLICE))


def test_writes_are_validated_like_salesforce(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        missing = await client.post(f"{API_PREFIX}/sobjects/Lead", json={"FirstName": "No", "Email": "no@x.com"})
        assert missing.status_code == 400
        assert missing.json() == [
            {
                "message": "Required fields are missing: [LastName, Company]",
                "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": ["LastName", "Company"],
            }
        ]
        contact_missing = await client.post(f"{API_PREFIX}/sobjects/Contact", json={"LastName": ""})
        assert contact_missing.json()[0]["fields"] == ["LastName"]

        unknown = await client.post(f"{API_PREFIX}/sobjects/Contact", json={"LastName": "X", "Shoe_Size__c": 42})
        assert unknown.status_code == 400
        assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"

        bad_email = await client.post(f"{API_PREFIX}/sobjects/Contact", json={"LastName": "X", "Email": "not-an-email"})
        assert bad_email.status_code == 400
        assert bad_email.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
        assert bad_email.json()[0]["fields"] == ["Email"]

        read_only = await client.post(f"{API_PREFIX}/sobjects/Contact", json={"LastName": "X", "CreatedDate": "x"})
        assert read_only.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

        sentiment = await client.post(
            f"{API_PREFIX}/sobjects/Contact", json={"LastName": "X", "social_sentiment__c": "ecstatic"}
        )
        assert sentiment.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"

        lead = await client.post(
            f"{API_PREFIX}/sobjects/Lead",
            json={"LastName": "Lee", "Company": "Beacon Labs", "Email": "lee@beacon.io", "LeadSource": "Social Media"},
        )
        assert lead.status_code == 201
        lead_id = lead.json()["id"]
        assert lead_id.startswith("00Q")
        stored = (await client.get(f"{API_PREFIX}/sobjects/Lead/{lead_id}")).json()
        assert stored["Status"] == "Open - Not Contacted"
        assert stored["IsConverted"] is False

        unknown_object = await client.post(f"{API_PREFIX}/sobjects/Account", json={"Name": "x"})
        assert unknown_object.status_code == 404

    with_api(sandbox, go)


# -- SOQL ----------------------------------------------------------------------------------------------------------
def test_soql_parser_reads_the_supported_subset() -> None:
    query = parse_soql(
        "select Id, Email from contact where (Email in ('a@x.com', 'b\\'c@x.com') and not LastName = null) "
        "order by LastName desc nulls last, Email limit 5 offset 2"
    )
    assert query.fields == ["Id", "Email"]
    assert query.object_name == "contact"
    assert query.limit == 5 and query.offset == 2
    assert [(item.field, item.descending, item.nulls_first) for item in query.order_by] == [
        ("LastName", True, False),
        ("Email", False, None),
    ]
    assert parse_datetime_literal("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_soql_filters_sorts_and_limits(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        ids = await create_people(client)

        by_email = await soql(
            client,
            "SELECT Id, Email FROM Contact "
            "WHERE Email IN ('LIAM.OBRIEN@harbor.com', 'nobody@x.com', 'mei.chen@atlas.co')",
        )
        assert by_email.status_code == 200
        body = by_email.json()
        assert body["totalSize"] == 2 and body["done"] is True and "nextRecordsUrl" not in body
        assert [r["Id"] for r in body["records"]] == [ids[1], ids[2]]
        assert body["records"][0]["attributes"]["type"] == "Contact"

        escaped = await soql(client, "SELECT Id FROM Contact WHERE LastName = 'o\\'brien'")
        assert [r["Id"] for r in escaped.json()["records"]] == [ids[1]]

        ordered = await soql(
            client,
            "SELECT FirstName FROM Contact WHERE LastName = 'Chen' OR social_followers__c > 1000 "
            "ORDER BY social_followers__c DESC, FirstName ASC LIMIT 2",
        )
        assert [r["FirstName"] for r in ordered.json()["records"]] == ["Liam", "Mei"]

        both = await soql(client, "SELECT Id FROM Contact WHERE LastName = 'Chen' AND FirstName = 'Zoë'")
        assert [r["Id"] for r in both.json()["records"]] == [ids[4]]

        nulls = await soql(client, "SELECT FirstName FROM Contact ORDER BY social_followers__c")
        assert nulls.json()["records"][0]["FirstName"] == "Omar"

        like = await soql(client, "SELECT Id FROM Contact WHERE Email LIKE '%@atlas.co'")
        assert like.json()["totalSize"] == 2

        count = await soql(client, "SELECT COUNT() FROM Contact WHERE LastName != 'Chen'")
        assert count.json() == {"totalSize": 3, "done": True, "records": []}

    with_api(sandbox, go)


def test_soql_datetime_filter_finds_records_changed_after_a_moment(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        ids = await create_people(client)
        newest = (await soql(client, "SELECT SystemModstamp FROM Contact ORDER BY SystemModstamp DESC LIMIT 1")).json()
        mark = newest["records"][0]["SystemModstamp"]
        since = parse_datetime_literal(mark.replace("+0000", "Z")).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        query = f"SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp > {since} ORDER BY SystemModstamp"
        assert (await soql(client, query)).json()["totalSize"] == 0

        sandbox.clock.advance(2)
        edited = await client.patch(f"/__sandbox__/records/Contact/{ids[2]}", json={"Title": "Head of Growth"})
        assert edited.status_code == 200
        assert edited.json()["Title"] == "Head of Growth"
        found = (await soql(client, query)).json()
        assert [r["Id"] for r in found["records"]] == [ids[2]]
        assert found["records"][0]["SystemModstamp"] > mark

        not_quoted = await soql(client, "SELECT Id FROM Contact WHERE SystemModstamp > '2026-01-01T00:00:00Z'")
        assert not_quoted.status_code == 400
        assert not_quoted.json()[0]["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"

    with_api(sandbox, go)


def soql_moment(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_change_queries_through_the_stamp_index_find_what_a_full_scan_finds() -> None:
    """The emulator reads ``ORDER BY SystemModstamp, Id`` queries through a stamp index (as Salesforce does): after
    creates sharing a stamp, edits, a rolled-back collection, a conversion and a delete, every cursor position gives
    exactly the records, in exactly the order, that filtering and sorting all of them gives."""
    sandbox = SalesforceSandbox(SandboxConfig(seed=3, contacts=60))
    ids = with_api(sandbox, create_people)
    contacts = sandbox.records["Contact"]
    seeded = list(contacts)
    first_query = "SELECT Id FROM Contact WHERE SystemModstamp > 2000-01-01T00:00:00Z ORDER BY SystemModstamp, Id"
    assert len(sandbox.run_query(first_query)[2]) == len(contacts)
    sandbox.clock.advance(1)
    sandbox.edit_record("Contact", seeded[3], {"Title": "Head of Growth"})
    sandbox.edit_record("Contact", ids[1], {"Title": "Editor"})
    sandbox.edit_record("Contact", seeded[10], {"_delete": True})
    lead_id = next(iter(sandbox.records["Lead"]))
    sandbox.edit_record("Lead", lead_id, {"IsConverted": True})

    async def failing_collection(client: httpx.AsyncClient) -> None:
        edits = [
            {"attributes": {"type": "Contact"}, "Id": seeded[5], "Title": "Rolled back"},
            {"attributes": {"type": "Contact"}, "Id": seeded[6], "Email": "not-an-email"},
        ]
        response = await client.patch(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": True, "records": edits})
        assert response.status_code == 200 and not any(result["success"] for result in response.json())

    with_api(sandbox, failing_collection)

    def scanned(object_name: str, stamp: datetime, after_id: str) -> list[str]:
        rows = sorted(sandbox.records[object_name].values(), key=lambda r: (r["SystemModstamp"], r["Id"].casefold()))
        after = after_id.casefold()
        return [
            r["Id"] for r in rows
            if r["SystemModstamp"] > stamp or (r["SystemModstamp"] == stamp and r["Id"].casefold() > after)
        ]

    for object_name in ("Contact", "Lead"):
        ordered = scanned(object_name, datetime(2000, 1, 1, tzinfo=UTC), "")
        assert set(ordered) == set(sandbox.records[object_name])
        everything = f"SELECT Id FROM {object_name} ORDER BY SystemModstamp, Id"
        assert sandbox.run_query(everything)[2] == ordered
        assert sandbox.run_query(everything + " LIMIT 9 OFFSET 4")[2] == ordered[4:13]
        for position in range(0, len(ordered), 3):
            record = sandbox.records[object_name][ordered[position]]
            stamp, after = soql_moment(record["SystemModstamp"]), record["Id"]
            query = (
                f"SELECT Id FROM {object_name} WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} "
                f"AND Id > '{after}')) ORDER BY SystemModstamp, Id"
            )
            expected = scanned(object_name, record["SystemModstamp"], after)
            assert sandbox.run_query(query)[2] == expected
            assert sandbox.run_query(query + " LIMIT 7")[2] == expected[:7]
            assert sandbox.run_query(query + " LIMIT 5 OFFSET 2")[2] == expected[2:7]
    # A write after a query is seen by the next one.
    newest = sandbox.run_query(first_query)[2][-1]
    sandbox.clock.advance(1)
    sandbox.edit_record("Contact", seeded[0], {"Title": "Moved to the end"})
    assert sandbox.run_query(first_query)[2][-2:] == [newest, seeded[0]]


@pytest.mark.parametrize(
    ("query", "error_code"),
    [
        ("SELECT Id Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Email = 'a@b.com' AND LastName = 'x' OR FirstName = 'y'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Email = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact LIMIT many", "MALFORMED_QUERY"),
        ("SELECT Id, Shoe_Size__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Account.Name = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Description = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Account", "INVALID_TYPE"),
        ("SELECT FIELDS(ALL) FROM Contact", "MALFORMED_QUERY"),
        ("", "MALFORMED_QUERY"),
    ],
)
def test_bad_soql_is_refused_with_salesforce_error_codes(
    sandbox: SalesforceSandbox, query: str, error_code: str
) -> None:
    async def go(client: httpx.AsyncClient) -> httpx.Response:
        return await soql(client, query)

    response = with_api(sandbox, go)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == error_code


def test_query_pages_through_nextrecordsurl_to_the_end() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=3, contacts=450), query_page_size=200)

    async def go(client: httpx.AsyncClient) -> None:
        page = (await soql(client, "SELECT Id, Email FROM Contact ORDER BY Email")).json()
        assert page["totalSize"] == 450
        seen = [record["Email"] for record in page["records"]]
        sizes = [len(page["records"])]
        while not page["done"]:
            next_url = page["nextRecordsUrl"]
            assert next_url.startswith(f"{API_PREFIX}/query/01g")
            response = await client.get(next_url)
            assert response.status_code == 200
            page = response.json()
            seen.extend(record["Email"] for record in page["records"])
            sizes.append(len(page["records"]))
        assert sizes == [200, 200, 50]
        assert "nextRecordsUrl" not in page
        assert seen == sorted(seen, key=str.casefold)
        assert len(set(seen)) == 450

        batch = await client.get(
            f"{API_PREFIX}/query",
            params={"q": "SELECT Id FROM Contact"},
            headers={"Sforce-Query-Options": "batchSize=300"},
        )
        assert len(batch.json()["records"]) == 300
        stale = await client.get(f"{API_PREFIX}/query/01gXXXXXXXXXXXXXXX-2000")
        assert stale.status_code == 400
        assert stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"

    with_api(sandbox, go)


# -- sObject Collections -------------------------------------------------------------------------------------------
def test_collections_refuse_more_than_200_records(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> httpx.Response:
        records = [{"attributes": {"type": "Contact"}, "LastName": f"P{n}"} for n in range(201)]
        return await client.post(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": False, "records": records})

    response = with_api(sandbox, go)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sandbox.summary()["Contact"] == 0


def test_collections_report_each_record_in_order_and_keep_the_good_ones(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> list[dict[str, Any]]:
        records = [
            {"attributes": {"type": "Contact"}, "LastName": "Good", "Email": "good@x.com"},
            {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
            {"attributes": {"type": "Lead"}, "LastName": "Lead", "Company": "Co", "Email": "lead@x.com"},
            {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "bad@"},
        ]
        response = await client.post(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": False, "records": records})
        assert response.status_code == 200
        return list(response.json())

    results = with_api(sandbox, go)
    assert [result["success"] for result in results] == [True, False, True, False]
    assert results[0]["id"].startswith("003") and results[2]["id"].startswith("00Q")
    assert results[1]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [LastName]",
            "fields": ["LastName"],
        }
    ]
    assert results[3]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert "errorCode" not in results[3]["errors"][0]
    assert sandbox.summary()["Contact"] == 1 and sandbox.summary()["Lead"] == 1


def test_all_or_none_rolls_back_every_record(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        ids = await create_people(client)
        records = [
            {"attributes": {"type": "Contact"}, "LastName": "Fresh", "Email": "fresh@x.com"},
            {"attributes": {"type": "Contact"}, "Email": "no-last-name@x.com"},
        ]
        response = await client.post(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": True, "records": records})
        results = response.json()
        assert results[0] == {
            "success": False,
            "errors": [
                {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header",
                    "fields": [],
                }
            ],
        }
        assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
        assert (await soql(client, "SELECT COUNT() FROM Contact WHERE Email = 'fresh@x.com'")).json()["totalSize"] == 0

        updates = [
            {"attributes": {"type": "Contact"}, "Id": ids[0], "Title": "Rolled back"},
            {"attributes": {"type": "Contact"}, "Id": ids[1], "Email": "broken@"},
        ]
        patched = await client.patch(f"{API_PREFIX}/composite/sobjects", json={"allOrNone": True, "records": updates})
        results = patched.json()
        assert results[0]["id"] == ids[0]
        assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
        first = (await client.get(f"{API_PREFIX}/sobjects/Contact/{ids[0]}")).json()
        assert first["Title"] is None

        partial = await client.patch(
            f"{API_PREFIX}/composite/sobjects",
            json={
                "allOrNone": False,
                "records": [{**updates[0], "Title": "Kept"}, {**updates[1], "Id": "003Hs0000000zzzAAA"}],
            },
        )
        assert [r["success"] for r in partial.json()] == [True, False]
        assert (await client.get(f"{API_PREFIX}/sobjects/Contact/{ids[0]}")).json()["Title"] == "Kept"

    with_api(sandbox, go)


def test_duplicate_rule_blocks_the_same_email_unless_allow_save(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        ids = await create_people(client)
        duplicate = await client.post(
            f"{API_PREFIX}/sobjects/Contact", json={"LastName": "Again", "Email": "ANA.GARCIA@lumen.io"}
        )
        assert duplicate.status_code == 400
        error = duplicate.json()[0]
        assert error["errorCode"] == "DUPLICATES_DETECTED"
        match = error["duplicateResut"]["matchResults"][0]["matchRecords"][0]["record"]
        assert match["Id"] == ids[0]

        lead = await client.post(
            f"{API_PREFIX}/sobjects/Lead",
            json={"LastName": "García", "Company": "Lumen", "Email": "ana.garcia@lumen.io"},
        )
        assert lead.status_code == 201, "the rule is per object: a Lead may share a Contact's email"

        in_batch = await client.post(
            f"{API_PREFIX}/composite/sobjects",
            json={"records": [{"attributes": {"type": "Contact"}, "LastName": "X", "Email": "mei.chen@atlas.co"}]},
        )
        assert in_batch.json()[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"

        allowed = await client.post(
            f"{API_PREFIX}/sobjects/Contact",
            json={"LastName": "Again", "Email": "ana.garcia@lumen.io"},
            headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
        )
        assert allowed.status_code == 201
        same = await soql(client, "SELECT Id FROM Contact WHERE Email = 'Ana.Garcia@Lumen.io'")
        assert same.json()["totalSize"] == 2

    with_api(sandbox, go)


# -- Task and Note -------------------------------------------------------------------------------------------------
async def create_record(client: httpx.AsyncClient, sobject: str, **fields: Any) -> str:
    response = await client.post(f"{API_PREFIX}/sobjects/{sobject}", json=fields)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_task_is_logged_on_a_contact_or_lead_and_completed_unless_told_otherwise(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        contact_id = await create_record(client, "Contact", LastName="Okafor", Email="ada@okafor.ng")
        lead_id = await create_record(client, "Lead", LastName="Lind", Company="Fjord Coffee")

        created = await client.post(
            f"{API_PREFIX}/sobjects/Task",
            json={"WhoId": contact_id, "Subject": "Twitter DM", "Description": "Asked about pricing"},
        )
        assert created.status_code == 201
        body = created.json()
        assert set(body) == {"id", "success", "errors"}
        assert body["success"] is True and body["errors"] == []
        task_id = body["id"]
        assert len(task_id) == 18 and task_id.startswith("00T") and to_18(task_id) == task_id

        task = (await client.get(f"{API_PREFIX}/sobjects/Task/{task_id}")).json()
        assert task["attributes"] == {"type": "Task", "url": f"{API_PREFIX}/sobjects/Task/{task_id}"}
        assert task["WhoId"] == contact_id
        assert (task["Subject"], task["Description"]) == ("Twitter DM", "Asked about pricing")
        assert (task["Status"], task["IsClosed"], task["Priority"], task["TaskSubtype"]) == (
            "Completed", True, "Normal", "Task"
        )
        assert task["OwnerId"] == sandbox.user_id and task["CreatedDate"] == task["SystemModstamp"]
        assert "Name" not in task and "Email" not in task

        # A 15-character WhoId is stored in its 18-character form; an explicit status is kept.
        open_task = await client.post(
            f"{API_PREFIX}/sobjects/Task",
            json={"WhoId": lead_id[:15], "Subject": "Reply to Instagram comment", "Status": "Not Started",
                  "ActivityDate": "2026-03-02"},
        )
        assert open_task.status_code == 201
        stored = (await client.get(f"{API_PREFIX}/sobjects/Task/{open_task.json()['id']}")).json()
        assert (stored["WhoId"], stored["Status"], stored["IsClosed"]) == (lead_id, "Not Started", False)
        assert stored["ActivityDate"] == "2026-03-02"

        closed = await client.patch(f"{API_PREFIX}/sobjects/Task/{stored['Id']}", json={"Status": "Completed"})
        assert closed.status_code == 204
        assert (await client.get(f"{API_PREFIX}/sobjects/Task/{stored['Id']}")).json()["IsClosed"] is True

        found = await soql(client, f"SELECT Id, Subject FROM Task WHERE WhoId = '{contact_id}' AND IsClosed = true")
        assert [record["Id"] for record in found.json()["records"]] == [task_id]
        due = await soql(client, "SELECT Id FROM Task WHERE ActivityDate < 2026-04-01")
        assert [record["Id"] for record in due.json()["records"]] == [stored["Id"]]

        assert (await client.get(f"{API_PREFIX}/sobjects/Note/{task_id}")).status_code == 404

    with_api(sandbox, go)
    assert sandbox.summary()["Task"] == 2


def test_task_writes_are_refused_like_salesforce(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
        contact_id = await create_record(client, "Contact", LastName="Okafor")
        bodies = {
            "unknown who": {"WhoId": salesforce_id("003", 999), "Subject": "x"},
            "not an id": {"WhoId": "ada@okafor.ng", "Subject": "x"},
            "other object": {"WhoId": salesforce_id("001", 5), "Subject": "x"},
            "blank status": {"WhoId": contact_id, "Status": None},
            "bad status": {"WhoId": contact_id, "Status": "Done"},
            "unknown field": {"WhoId": contact_id, "Mood__c": "happy"},
            "read-only": {"WhoId": contact_id, "IsClosed": True},
            "bad date": {"WhoId": contact_id, "ActivityDate": "next tuesday"},
        }
        answers = {}
        for name, body in bodies.items():
            response = await client.post(f"{API_PREFIX}/sobjects/Task", json=body)
            assert response.status_code == 400, name
            answers[name] = response.json()
        return answers

    answers = with_api(sandbox, go)
    assert answers["unknown who"] == [
        {"message": "invalid cross reference id", "errorCode": "INVALID_CROSS_REFERENCE_KEY", "fields": []}
    ]
    assert answers["not an id"] == [
        {"message": "Name ID: id value of incorrect type: ada@okafor.ng", "errorCode": "MALFORMED_ID",
         "fields": ["WhoId"]}
    ]
    assert answers["other object"][0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert answers["blank status"] == [
        {"message": "Required fields are missing: [Status]", "errorCode": "REQUIRED_FIELD_MISSING",
         "fields": ["Status"]}
    ]
    assert answers["bad status"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert answers["unknown field"][0]["errorCode"] == "INVALID_FIELD"
    assert answers["read-only"][0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert answers["bad date"][0]["errorCode"] == "JSON_PARSER_ERROR"
    assert sandbox.summary()["Task"] == 0


def test_note_is_attached_to_its_parent_and_read_back(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        lead_id = await create_record(client, "Lead", LastName="Lind", Company="Fjord Coffee")
        created = await client.post(
            f"{API_PREFIX}/sobjects/Note",
            json={"ParentId": lead_id, "Title": "Instagram story mention", "Body": "Tagged us twice\nLoves the roast"},
        )
        assert created.status_code == 201
        body = created.json()
        assert body["success"] is True and body["errors"] == [] and body["id"].startswith("002")
        note = (await client.get(f"{API_PREFIX}/sobjects/Note/{body['id']}")).json()
        assert note["attributes"]["type"] == "Note"
        assert (note["ParentId"], note["Title"], note["Body"], note["IsPrivate"]) == (
            lead_id, "Instagram story mention", "Tagged us twice\nLoves the roast", False
        )

        missing = await client.post(f"{API_PREFIX}/sobjects/Note", json={"Body": "no parent, no title"})
        assert missing.status_code == 400
        assert missing.json() == [
            {
                "message": "Required fields are missing: [ParentId, Title]",
                "errorCode": "REQUIRED_FIELD_MISSING",
                "fields": ["ParentId", "Title"],
            }
        ]
        orphan = await client.post(
            f"{API_PREFIX}/sobjects/Note", json={"ParentId": salesforce_id("00Q", 77), "Title": "x"}
        )
        assert orphan.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
        too_long = await client.post(f"{API_PREFIX}/sobjects/Note", json={"ParentId": lead_id, "Title": "x" * 81})
        assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"

        moved = await client.patch(f"{API_PREFIX}/sobjects/Note/{body['id']}", json={"ParentId": lead_id})
        assert moved.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
        retitled = await client.patch(f"{API_PREFIX}/sobjects/Note/{body['id']}", json={"Title": "Story mention"})
        assert retitled.status_code == 204
        assert (await client.get(f"{API_PREFIX}/sobjects/Note/{body['id']}")).json()["Title"] == "Story mention"

        batch = await client.post(
            f"{API_PREFIX}/composite/sobjects",
            json={"records": [{"attributes": {"type": "Note"}, "ParentId": lead_id, "Title": "From a collection"}]},
        )
        assert batch.json()[0]["success"] is True

    with_api(sandbox, go)
    assert sandbox.summary()["Note"] == 2


@needs_describe_schema
def test_task_and_note_describe_match_the_json_schema(sandbox: SalesforceSandbox) -> None:
    schema = json.loads(DESCRIBE_SCHEMA.read_text())

    async def go(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        return {
            name: (await client.get(f"{API_PREFIX}/sobjects/{name}/describe")).json() for name in ("Task", "Note")
        }

    bodies = with_api(sandbox, go)
    for body in bodies.values():
        jsonschema.validate(body, schema, cls=jsonschema.Draft7Validator)
        assert body["mergeable"] is False
        assert not any(field["custom"] for field in body["fields"])
    task = {field["name"]: field for field in bodies["Task"]["fields"]}
    assert bodies["Task"]["keyPrefix"] == "00T"
    assert task["WhoId"]["referenceTo"] == ["Contact", "Lead"] and task["WhoId"]["polymorphicForeignKey"] is True
    assert task["WhoId"]["relationshipName"] == "Who" and task["WhoId"]["nillable"] is True
    assert task["Status"]["defaultValue"] == "Completed" and task["Status"]["defaultedOnCreate"] is True
    assert task["IsClosed"]["createable"] is False
    note = {field["name"]: field for field in bodies["Note"]["fields"]}
    assert bodies["Note"]["keyPrefix"] == "002"
    assert (note["ParentId"]["nillable"], note["ParentId"]["createable"], note["ParentId"]["updateable"]) == (
        False, True, False
    )
    assert note["Title"]["length"] == 80 and note["Title"]["nameField"] is True
    assert "LastActivityDate" not in note


def test_tasks_and_notes_follow_their_person_through_conversion_and_deletion(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        lead_id = await create_record(client, "Lead", LastName="Park", Company="Orbit Media", Email="kai@orbit.io")
        task_id = await create_record(client, "Task", WhoId=lead_id, Subject="TikTok comment")
        note_id = await create_record(client, "Note", ParentId=lead_id, Title="Follows the brand")

        converted = await client.patch(f"/__sandbox__/records/Lead/{lead_id}", json={"IsConverted": True})
        contact_id = converted.json()["ConvertedContactId"]
        assert (await client.get(f"{API_PREFIX}/sobjects/Task/{task_id}")).json()["WhoId"] == contact_id
        assert (await client.get(f"{API_PREFIX}/sobjects/Note/{note_id}")).json()["ParentId"] == contact_id
        on_converted = await client.post(f"{API_PREFIX}/sobjects/Task", json={"WhoId": lead_id})
        assert on_converted.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"

        # allOrNone: the bad id rolls the contact's deletion back, with its task and note.
        rolled_back = await client.delete(
            f"{API_PREFIX}/composite/sobjects",
            params={"ids": f"{contact_id},{salesforce_id('003', 4242)}", "allOrNone": "true"},
        )
        assert [result["success"] for result in rolled_back.json()] == [False, False]
        assert (await client.get(f"{API_PREFIX}/sobjects/Task/{task_id}")).status_code == 200
        assert (await client.get(f"{API_PREFIX}/sobjects/Note/{note_id}")).status_code == 200

        assert (await client.delete(f"{API_PREFIX}/sobjects/Contact/{contact_id}")).status_code == 204
        assert (await client.get(f"{API_PREFIX}/sobjects/Task/{task_id}")).status_code == 404
        assert (await client.get(f"{API_PREFIX}/sobjects/Note/{note_id}")).status_code == 404
        on_deleted = await client.post(f"{API_PREFIX}/sobjects/Task", json={"WhoId": contact_id})
        assert on_deleted.json() == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]

    with_api(sandbox, go)
    assert (sandbox.summary()["Task"], sandbox.summary()["Note"]) == (0, 0)


# -- describe ------------------------------------------------------------------------------------------------------
@needs_describe_schema
def test_describe_matches_salesforce_json_schema_and_lists_custom_fields(sandbox: SalesforceSandbox) -> None:
    schema = json.loads(DESCRIBE_SCHEMA.read_text())

    async def go(client: httpx.AsyncClient) -> dict[str, Any]:
        bodies = {}
        for name in ("Contact", "Lead"):
            response = await client.get(f"{API_PREFIX}/sobjects/{name}/describe")
            assert response.status_code == 200
            bodies[name] = response.json()
        return bodies

    bodies = with_api(sandbox, go)
    for name, body in bodies.items():
        jsonschema.validate(body, schema, cls=jsonschema.Draft7Validator)
        fields = {field["name"]: field for field in body["fields"]}
        assert set(DEFAULT_CUSTOM_FIELDS) <= set(fields)
        assert all(fields[custom]["custom"] for custom in DEFAULT_CUSTOM_FIELDS)
        assert fields["LastName"]["nillable"] is False and fields["LastName"]["createable"] is True
        assert fields["SystemModstamp"]["updateable"] is False
        sentiment = fields["social_sentiment__c"]
        assert sentiment["type"] == "picklist"
        assert [value["value"] for value in sentiment["picklistValues"]] == ["positive", "neutral", "negative", "mixed"]
        assert body["keyPrefix"] == ("003" if name == "Contact" else "00Q")

    sandbox.apply_config({"custom_fields": ["twitter_username__c", "Favourite_Colour__c"]})
    trimmed = with_api(sandbox, go)["Contact"]
    jsonschema.validate(trimmed, schema, cls=jsonschema.Draft7Validator)
    custom = [field["name"] for field in trimmed["fields"] if field["custom"]]
    assert custom == ["twitter_username__c", "Favourite_Colour__c"]


# -- limits --------------------------------------------------------------------------------------------------------
def test_daily_allocation_is_reported_and_enforced() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=2), token_ttl_seconds=None)

    async def go(client: httpx.AsyncClient) -> None:
        configured = await client.patch("/__sandbox__/config", json={"daily_api_limit": 3})
        assert configured.status_code == 200
        usage = []
        for _ in range(3):
            response = await client.get(f"{API_PREFIX}/limits")
            assert response.status_code == 200
            usage.append(response.headers["sforce-limit-info"])
        assert usage == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
        assert response.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 0}
        refused = await client.get(f"{API_PREFIX}/query", params={"q": "SELECT Id FROM Contact"})
        assert refused.status_code == 403
        assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert refused.headers["sforce-limit-info"] == "api-usage=3/3"
        sandbox.clock.advance(86_401)
        assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200

    with_api(sandbox, go)


def test_concurrent_requests_over_the_limit_are_refused() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=2, latency_ms=150), concurrent_limit=2)

    async def go(client: httpx.AsyncClient) -> None:
        responses = await asyncio.gather(*(client.get(f"{API_PREFIX}/limits") for _ in range(5)))
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 200, 403, 403, 403]
        refused = next(response for response in responses if response.status_code == 403)
        assert refused.json() == [
            {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ]
        assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200

    with_api(sandbox, go)


# -- faults --------------------------------------------------------------------------------------------------------
def test_request_faults_from_the_control_endpoint(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        await client.put("/__sandbox__/faults", json={"spec": "5xx@1"})
        unavailable = await client.get(f"{API_PREFIX}/limits")
        assert unavailable.status_code == 503
        assert unavailable.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
        assert "sforce-limit-info" in unavailable.headers

        await client.put("/__sandbox__/faults", json={"spec": "429@1"})
        limited = await client.get(f"{API_PREFIX}/limits")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.json() == [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]

        await client.put("/__sandbox__/faults", json={"spec": "reset@1"})
        with pytest.raises(httpx.ReadError):
            await client.get(f"{API_PREFIX}/limits")
        await client.put("/__sandbox__/faults", json={"spec": "timeout@1"})
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{API_PREFIX}/limits")

        await client.delete("/__sandbox__/faults")
        assert (await client.get(f"{API_PREFIX}/limits")).status_code == 200

    with_api(sandbox, go)


def test_invalid_record_fault_refuses_single_records_with_a_validation_error(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        await client.put("/__sandbox__/faults", json={"spec": "invalid@2"})
        records = [
            {"attributes": {"type": "Contact"}, "LastName": f"P{n}", "Email": f"p{n}@valid.com"} for n in range(3)
        ]
        response = await client.post(f"{API_PREFIX}/composite/sobjects", json={"records": records})
        results = response.json()
        assert [result["success"] for result in results] == [True, False, True]
        assert results[1]["errors"][0]["statusCode"] in {"INVALID_EMAIL_ADDRESS", "FIELD_CUSTOM_VALIDATION_EXCEPTION"}
        state = (await client.get("/__sandbox__/state")).json()
        assert state["faultsFired"] == {"invalid": 1}

    with_api(sandbox, go)


# -- salesperson edits ---------------------------------------------------------------------------------------------
def test_control_edits_convert_and_delete_records(sandbox: SalesforceSandbox) -> None:
    async def go(client: httpx.AsyncClient) -> None:
        created = await client.post(
            f"{API_PREFIX}/sobjects/Lead",
            json={
                "FirstName": "Kai",
                "LastName": "Park",
                "Company": "Orbit Media",
                "Email": "kai@orbit.io",
                "instagram_username__c": "kaipark",
            },
        )
        lead_id = created.json()["id"]
        converted = await client.patch(f"/__sandbox__/records/Lead/{lead_id}", json={"IsConverted": True})
        assert converted.status_code == 200
        lead = converted.json()
        assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
        assert lead["LastModifiedById"] == sandbox.sales_rep_id
        contact = (await client.get(f"{API_PREFIX}/sobjects/Contact/{lead['ConvertedContactId']}")).json()
        assert contact["Email"] == "kai@orbit.io" and contact["instagram_username__c"] == "kaipark"

        refused = await client.patch(f"{API_PREFIX}/sobjects/Lead/{lead_id}", json={"Title": "CEO"})
        assert refused.status_code == 400
        assert refused.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"

        deleted = await client.patch(f"/__sandbox__/records/contact/{contact['Id']}", json={"_delete": True})
        assert deleted.status_code == 200
        assert (await client.get(f"{API_PREFIX}/sobjects/Contact/{contact['Id']}")).status_code == 404
        missing = await client.patch(f"/__sandbox__/records/Contact/{contact['Id']}", json={"Title": "x"})
        assert missing.status_code == 404
        invalid = await client.patch(f"/__sandbox__/records/Lead/{lead_id}", json={"Email": "x"})
        assert invalid.status_code == 400

    with_api(sandbox, go)


# -- seeding -------------------------------------------------------------------------------------------------------
def test_seeded_people_are_contacts_and_the_leads_also_leads() -> None:
    sandbox = SalesforceSandbox(SandboxConfig(seed=11, contacts=60))
    people = generate_people(60, 11)
    assert sandbox.summary() == {
        "Contact": 60,
        "Lead": sum(person.is_lead for person in people),
        "Task": 0,
        "Note": 0,
        "convertedLeads": 0,
    }
    person = people[0]

    async def go(client: httpx.AsyncClient) -> dict[str, Any]:
        response = await soql(
            client,
            "SELECT FirstName, LastName, Phone, social_followers__c, social_sentiment__c, lead_source_detail__c "
            f"FROM Contact WHERE Email = '{person.email.upper()}'",
        )
        return dict(response.json()["records"][0])

    record = with_api(sandbox, go)
    assert record["LastName"] == person.last_name
    assert record["Phone"] == person.phone
    assert record["social_followers__c"] == sum(profile.followers for profile in person.social_profiles)
    assert record["social_sentiment__c"] == person.sentiment.value
    assert record["lead_source_detail__c"] == person.lead_source
    credentials = sandbox.credentials()
    assert set(credentials) == {"clientId", "clientSecret", "accessToken", "refreshToken", "instanceUrl"}
