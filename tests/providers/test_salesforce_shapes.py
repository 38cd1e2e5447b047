"""Exact Salesforce request shapes (respx) and the classifier's decision table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
import respx

from crm_desktop.domain.models import (
    Contact,
    Integration,
    Lead,
    LeadStatus,
    Provider,
    Sentiment,
    SocialContext,
    SocialPlatform,
    SocialProfile,
)
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import (
    AdapterOptions,
    CrmAdapter,
    DeletesRecords,
    OutboundRecord,
    ReportsMissingFields,
)
from crm_desktop.providers.errors import (
    AuthError,
    BudgetExhaustedError,
    ConfigurationError,
    RateLimitError,
    RequestRejectedError,
)
from crm_desktop.providers.http import Decision
from crm_desktop.providers.salesforce import SalesforceAdapter
from crm_desktop.providers.salesforce_errors import classify_salesforce, describe_record_errors
from crm_desktop.providers.salesforce_records import company_from_email, default_contact_record, default_lead_record
from crm_desktop.providers.salesforce_soql import (
    QUERY_URL_LIMIT,
    decode_cursor,
    email_in_queries,
    encode_cursor,
    encode_soql,
    query_url_length,
    soql_quote,
)

INSTANCE = "https://acme.my.salesforce.com"
DATA = "/services/data/v61.0"
TOKEN_URL = "https://login.salesforce.com/services/oauth2/token"
SOCIAL = [
    "twitter_username__c",
    "instagram_username__c",
    "linkedin_url__c",
    "social_followers__c",
    "social_engagement_score__c",
    "social_sentiment__c",
    "lead_source_detail__c",
]


def credentials(**overrides: Any) -> dict[str, Any]:
    base = {
        "clientId": "client-id",
        "clientSecret": "client-secret",
        "accessToken": "access-1",
        "refreshToken": "refresh-1",
        "instanceUrl": INSTANCE,
        "issuedAt": None,
    }
    base.update(overrides)
    return base


class FakeSleep:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_adapter(
    *, save_tokens: Callable[[dict[str, Any]], None] | None = None, sleep: FakeSleep | None = None, **options: Any
) -> SalesforceAdapter:
    integration = Integration(provider=Provider.SALESFORCE, name="Acme org")
    return SalesforceAdapter(
        integration,
        credentials(),
        save_tokens=save_tokens,
        sleep=sleep or FakeSleep(),
        options=AdapterOptions(salesforce_session_seconds=None, **options),
    )


def connection_tested(saved: list[dict[str, Any]]) -> Any:
    """``test_connection`` of a new adapter whose refreshed tokens go into ``saved``."""

    async def run() -> Any:
        adapter = make_adapter(save_tokens=saved.append)
        try:
            return await adapter.test_connection()
        finally:
            await adapter.aclose()

    return asyncio.run(run())


def describe_body(sobject: str, *, social: bool = True) -> dict[str, Any]:
    def field(name: str, ftype: str = "string", length: int = 80, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "label": name.removesuffix("__c").replace("_", " ").title(),
            "type": ftype,
            "custom": name.endswith("__c"),
            "updateable": name not in {"Id", "SystemModstamp"},
            "createable": name not in {"Id", "SystemModstamp"},
            "length": length,
            "picklistValues": extra.pop("picklistValues", []),
            **extra,
        }

    fields = [
        field("Id", "id", 18),
        field("Email", "email"),
        field("FirstName"),
        field("LastName"),
        field("Phone", "phone", 40),
        field("Title", length=128),
        field("SystemModstamp", "datetime", 0),
    ]
    if sobject == "Lead":
        fields += [field("Company", length=255), field("Status", "picklist", 255), field("LeadSource", "picklist")]
    if social:
        fields += [
            field("twitter_username__c"),
            field("instagram_username__c"),
            field("linkedin_url__c", "url", 255),
            field("social_followers__c", "double", 0),
            field("social_engagement_score__c", "double", 0),
            field(
                "social_sentiment__c",
                "picklist",
                255,
                picklistValues=[
                    {"value": v, "label": v.title(), "active": True} for v in ("positive", "neutral", "negative")
                ]
                + [{"value": "mixed", "label": "Mixed", "active": False}],
            ),
            field("lead_source_detail__c", length=255),
        ]
    return {"name": sobject, "fields": fields}


def sf_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers or {})


def soql_of(request: httpx.Request) -> str:
    return request.url.params["q"]


# -- classifier ------------------------------------------------------------------------------------------------

CLASSIFIER_TABLE = [
    (200, [], {}, Decision.OK, None, ""),
    (201, {"id": "003"}, {}, Decision.OK, None, ""),
    (204, None, {}, Decision.OK, None, ""),
    (
        401,
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
        {"WWW-Authenticate": "Token"},
        Decision.REFRESH_THEN_RETRY,
        ErrorCategory.AUTH,
        "INVALID_SESSION_ID",
    ),
    (401, [{"message": "nope", "errorCode": "INVALID_AUTH_HEADER"}], {}, Decision.FATAL, ErrorCategory.AUTH, ""),
    (
        403,
        [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        {},
        Decision.FATAL,
        ErrorCategory.RATE_LIMIT,
        "REQUEST_LIMIT_EXCEEDED",
    ),
    (
        403,
        [{"message": "ConcurrentPerOrg Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        {},
        Decision.RATE_LIMITED,
        ErrorCategory.RATE_LIMIT,
        "REQUEST_LIMIT_EXCEEDED",
    ),
    # The credentials work; a permission is missing: ask the Salesforce admin, never reconnect.
    (
        403,
        [{"message": "no", "errorCode": "INSUFFICIENT_ACCESS"}],
        {},
        Decision.FATAL,
        ErrorCategory.PERMISSION,
        "INSUFFICIENT_ACCESS",
    ),
    (
        403,
        [{"message": "API is not enabled for this Organization or Partner", "errorCode": "API_DISABLED_FOR_ORG"}],
        {},
        Decision.FATAL,
        ErrorCategory.PERMISSION,
        "API_DISABLED_FOR_ORG",
    ),
    (
        400,
        [{"message": "Lead is not enabled", "errorCode": "FUNCTIONALITY_NOT_ENABLED"}],
        {},
        Decision.FATAL,
        ErrorCategory.PERMISSION,
        "FUNCTIONALITY_NOT_ENABLED",
    ),
    (
        400,
        [{"message": "insufficient access rights on object id", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}],
        {},
        Decision.RECORD_FAILURE,
        ErrorCategory.PERMISSION,
        "INSUFFICIENT_ACCESS_OR_READONLY",
    ),
    (
        400,
        [{"message": "insufficient access rights on cross-reference id",
          "errorCode": "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"}],
        {},
        Decision.RECORD_FAILURE,
        ErrorCategory.PERMISSION,
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
    ),
    (
        400,
        [{"message": "unexpected token: FORM", "errorCode": "MALFORMED_QUERY"}],
        {},
        Decision.FATAL,
        ErrorCategory.VALIDATION,
        "MALFORMED_QUERY",
    ),
    (
        400,
        [{"message": "No such column 'twitter_username__c' on entity 'Contact'.", "errorCode": "INVALID_FIELD"}],
        {},
        Decision.FATAL,
        ErrorCategory.VALIDATION,
        "INVALID_FIELD",
    ),
    (
        400,
        [{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING"}],
        {},
        Decision.RECORD_FAILURE,
        ErrorCategory.VALIDATION,
        "REQUIRED_FIELD_MISSING",
    ),
    (
        400,
        [{"message": "dupe", "errorCode": "DUPLICATES_DETECTED"}],
        {},
        Decision.RECORD_FAILURE,
        ErrorCategory.DUPLICATE,
        "DUPLICATES_DETECTED",
    ),
    (
        400,
        {"error": "invalid_grant", "error_description": "expired access/refresh token"},
        {},
        Decision.FATAL,
        ErrorCategory.AUTH,
        "invalid_grant",
    ),
    (404, [{"message": "gone", "errorCode": "NOT_FOUND"}], {}, Decision.FATAL, ErrorCategory.NOT_FOUND, "NOT_FOUND"),
    (429, {}, {"Retry-After": "3"}, Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, ""),
    (500, [{"message": "x", "errorCode": "UNKNOWN_EXCEPTION"}], {}, Decision.RETRY, ErrorCategory.SERVER, ""),
    (503, [{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}], {}, Decision.RETRY, ErrorCategory.SERVER, ""),
]


@pytest.mark.parametrize(("status", "body", "headers", "decision", "category", "code"), CLASSIFIER_TABLE)
def test_classifier_table(
    status: int,
    body: Any,
    headers: dict[str, str],
    decision: Decision,
    category: ErrorCategory | None,
    code: str,
) -> None:
    response = httpx.Response(status, json=body, headers=headers) if body is not None else httpx.Response(status)
    verdict = classify_salesforce(response)
    assert verdict.decision is decision
    assert verdict.category == category
    if code:
        assert verdict.code == code


def test_classifier_waits_and_names() -> None:
    assert classify_salesforce(httpx.Response(429, headers={"Retry-After": "3"})).wait == 3.0
    concurrent = classify_salesforce(
        httpx.Response(
            403, json=[{"message": "ConcurrentPerOrg Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        )
    )
    assert concurrent.wait is not None and concurrent.wait > 0
    missing = classify_salesforce(
        httpx.Response(400, json=[{"message": "No such column 'x__c' on entity 'Lead'.", "errorCode": "INVALID_FIELD"}])
    )
    assert "Lead has no field x__c" in missing.reason
    malformed = classify_salesforce(
        httpx.Response(400, json=[{"message": "near 'secret@x.com'", "errorCode": "MALFORMED_QUERY"}])
    )
    assert "secret@x.com" not in malformed.reason and "bug" in malformed.reason


RECORD_ERRORS = [
    ("DUPLICATES_DETECTED", [], ErrorCategory.DUPLICATE, "duplicate"),
    ("REQUIRED_FIELD_MISSING", ["LastName"], ErrorCategory.VALIDATION, "LastName"),
    ("INVALID_EMAIL_ADDRESS", ["Email"], ErrorCategory.VALIDATION, "Email"),
    ("FIELD_CUSTOM_VALIDATION_EXCEPTION", ["Phone"], ErrorCategory.VALIDATION, "Phone"),
    ("STRING_TOO_LONG", ["Title"], ErrorCategory.VALIDATION, "Title"),
    ("CANNOT_UPDATE_CONVERTED_LEAD", [], ErrorCategory.VALIDATION, "lead was converted"),
    ("ENTITY_IS_DELETED", [], ErrorCategory.NOT_FOUND, "ENTITY_IS_DELETED"),
    ("NOT_FOUND", [], ErrorCategory.NOT_FOUND, "NOT_FOUND"),
]


@pytest.mark.parametrize(("code", "fields", "category", "mention"), RECORD_ERRORS)
def test_record_error_table(code: str, fields: list[str], category: ErrorCategory, mention: str) -> None:
    got_category, message = describe_record_errors(
        [{"statusCode": code, "message": f"{code} duplicate", "fields": fields}]
    )
    assert got_category is category
    assert mention in message and code in message


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        # Salesforce words most field errors with the field's label first: it is not named twice.
        ([{"statusCode": "INVALID_EMAIL_ADDRESS", "message": "Email: invalid email address: bob@",
           "fields": ["Email"]}],
         "Email: invalid email address: bob@ (INVALID_EMAIL_ADDRESS)"),
        ([{"statusCode": "STRING_TOO_LONG", "message": "Last Name: data value too large: Xxx (max length=80)",
           "fields": ["LastName"]}],
         "Last Name: data value too large: Xxx (max length=80) (STRING_TOO_LONG)"),
        ([{"statusCode": "NUMBER_OUTSIDE_VALID_RANGE", "message": "Twitter Followers: value outside of valid range",
           "fields": ["Twitter_Followers__c"]}],
         "Twitter Followers: value outside of valid range (NUMBER_OUTSIDE_VALID_RANGE)"),
        # A reason that does not start with the field keeps the field's name in front of it.
        ([{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
           "fields": ["LastName"]}],
         "LastName: Required fields are missing: [LastName] (REQUIRED_FIELD_MISSING)"),
        ([{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Phone must have 10 digits",
           "fields": ["Phone"]}],
         "Phone: Phone must have 10 digits (FIELD_CUSTOM_VALIDATION_EXCEPTION)"),
    ],
)
def test_record_error_names_its_field_once(errors: list[dict[str, object]], expected: str) -> None:
    assert describe_record_errors(errors)[1] == expected


# -- SOQL building ---------------------------------------------------------------------------------------------


def test_soql_quote_escapes() -> None:
    assert soql_quote("o'brien@x.com") == "'o\\'brien@x.com'"
    assert soql_quote("a\\b") == "'a\\\\b'"
    assert soql_quote("a\nb") == "'a\\nb'"


def test_email_queries_respect_count_and_url_limits() -> None:
    emails = [f"person{i}@example.com" for i in range(450)]
    queries = email_in_queries("Id, Email", "Contact", emails)
    assert len(queries) == 3
    assert all(query_url_length(q) <= QUERY_URL_LIMIT for q in queries)
    assert sum(q.count("@") for q in queries) == 450
    long_emails = [f"{'x' * 60}{i}@{'y' * 40}.example.com" for i in range(200)]
    long_queries = email_in_queries("Id, Email", "Contact", long_emails)
    assert len(long_queries) > 1
    assert all(query_url_length(q) <= QUERY_URL_LIMIT for q in long_queries)
    assert sum(q.count("@") for q in long_queries) == 200


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Contact WHERE Email IN ('ada@example.com','grace.hopper@navy.mil')",
        "SELECT Id FROM Contact WHERE Email = 'o\\'brien+news@example.com'",
        "SELECT Id FROM Contact WHERE Name LIKE 'Jos%' AND Email != 'x&y=z@example.com'",
        "SELECT Id FROM Lead WHERE Company = 'Zürich Böcker #1'",
    ],
)
def test_soql_in_the_url_keeps_quotes_commas_and_at_signs_and_decodes_back(soql: str) -> None:
    encoded = encode_soql(soql)
    assert encoded.startswith("q=")
    assert parse_qs(encoded, keep_blank_values=True)["q"] == [soql]
    assert query_url_length(soql) == len(f"{DATA}/query?") + len(encoded)
    assert "&" not in encoded.removeprefix("q=") and " " not in encoded


def test_plain_email_lists_go_into_the_url_as_written() -> None:
    encoded = encode_soql("SELECT Id FROM Contact WHERE Email IN ('ada@example.com','grace.hopper@navy.mil')")
    assert encoded == "q=SELECT+Id+FROM+Contact+WHERE+Email+IN+('ada@example.com','grace.hopper@navy.mil')"


def test_email_queries_fit_the_url_limit_exactly_as_encoded() -> None:
    emails = [f"{'n' * 40}.o'neil+{i}@{'d' * 30}.example.com" for i in range(400)]
    queries = email_in_queries("Id, Email", "Contact", emails)
    assert len(queries) > 2
    for query in queries:
        assert query_url_length(query) == len(f"{DATA}/query?") + len(urlencode({"q": query}, safe="'(),@:"))
        assert query_url_length(query) <= QUERY_URL_LIMIT


@pytest.mark.parametrize(
    ("email", "company"),
    [
        ("jo@acme.com", "Acme"),
        ("jo@mail.blue-bird.io", "Blue-Bird"),
        ("jo@shop.example.co.uk", "Example"),
        ("jo@gmail.com", "[not provided]"),
    ],
)
def test_company_from_email(email: str, company: str) -> None:
    assert company_from_email(email) == company


def test_cursor_round_trip_and_refusal() -> None:
    moment, record_id = decode_cursor("2026-01-15T12:00:00.123Z|003000000000001AAA")
    assert record_id == "003000000000001AAA"
    assert encode_cursor(moment, "003000000000001AAA") == "2026-01-15T12:00:00.123Z|003000000000001AAA"
    with pytest.raises(Exception, match="pull position"):
        decode_cursor("2026-01-15T12:00:00Z|x' OR Id != '")


# -- default mapping -----------------------------------------------------------------------------------------


def test_default_contact_record_maps_social_fields() -> None:
    contact = Contact(
        email="Ada@Example.com",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines",
        phone="+14155550123",
        social_profiles=[
            SocialProfile(platform=SocialPlatform.TWITTER, username="@ada", followers=1200, engagement=4.5),
            SocialProfile(platform=SocialPlatform.LINKEDIN, username="ada-l", followers=300, engagement=2.0),
            SocialProfile(platform=SocialPlatform.TIKTOK, username="adacodes", followers=50, engagement=9.0),
        ],
        custom_fields={"favourite_colour__c": "blue", "plan": "pro"},
    )
    record = default_contact_record(contact)
    assert record.email == "ada@example.com"
    assert record.fields == {
        "Email": "ada@example.com",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Phone": "+14155550123",
        "twitter_username__c": "ada",
        "linkedin_url__c": "https://www.linkedin.com/in/ada-l",
        "social_followers__c": 1550,
        "social_engagement_score__c": 9.0,
        "favourite_colour__c": "blue",
    }
    assert record.note is not None and "TikTok: @adacodes" in record.note and "Analytical Engines" in record.note


def test_default_lead_record_maps_status_and_context() -> None:
    lead = Lead(
        email="lin@acme.com",
        last_name="Linh",
        source="twitter_dm",
        status=LeadStatus.CONTACTED,
        social_context=SocialContext(
            platform=SocialPlatform.TWITTER, conversation_id="c-1", sentiment=Sentiment.POSITIVE, engagement_score=71
        ),
    )
    record = default_lead_record(lead)
    assert record.fields == {
        "Email": "lin@acme.com",
        "Status": "Working - Contacted",
        "LastName": "Linh",
        "lead_source_detail__c": "twitter_dm",
        "social_sentiment__c": "positive",
        "social_engagement_score__c": 71.0,
    }
    assert record.note == "Lead from a conversation on Twitter/X (conversation c-1)."


# -- request shapes ---------------------------------------------------------------------------------------------


def test_protocols() -> None:
    adapter = make_adapter()
    assert isinstance(adapter, CrmAdapter)
    assert isinstance(adapter, ReportsMissingFields)
    asyncio.run(adapter.aclose())


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_connection_userinfo_and_limits(respx_mock: respx.MockRouter) -> None:
    userinfo = respx_mock.get("/services/oauth2/userinfo").mock(
        return_value=sf_response(
            200,
            {"user_id": "005A", "organization_id": "00DA", "preferred_username": "ops@acme.com"},
        )
    )
    limits = respx_mock.get(f"{DATA}/limits").mock(
        return_value=sf_response(
            200,
            {"DailyApiRequests": {"Max": 15000, "Remaining": 14989}},
            {"Sforce-Limit-Info": "api-usage=11/15000"},
        )
    )

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return await adapter.test_connection(), adapter.api_calls
        finally:
            await adapter.aclose()

    info, calls = asyncio.run(run())
    assert userinfo.calls[0].request.headers["Authorization"] == "Bearer access-1"
    assert limits.calls[0].request.headers["Authorization"] == "Bearer access-1"
    assert info.account == "00DA" and info.user == "ops@acme.com"
    assert info.quota is not None and info.quota.limit == 15000 and info.quota.remaining == 14989
    assert info.quota.used == 11
    assert calls == 2


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_list_fields_and_missing_fields(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(
        return_value=sf_response(200, describe_body("Contact", social=False))
    )
    respx_mock.get(f"{DATA}/sobjects/Lead/describe").mock(return_value=sf_response(200, describe_body("Lead")))

    async def run() -> Any:
        adapter = make_adapter()
        try:
            lead_fields = await adapter.list_fields(RecordObject.LEAD)
            missing = await adapter.missing_fields(RecordObject.CONTACT, ["Email", "email", *SOCIAL])
            return lead_fields, missing
        finally:
            await adapter.aclose()

    lead_fields, missing = asyncio.run(run())
    by_name = {f.name: f for f in lead_fields}
    sentiment = by_name["social_sentiment__c"]
    assert sentiment.custom and sentiment.type == "picklist"
    assert sentiment.options == ("positive", "neutral", "negative")
    assert by_name["Company"].length == 255 and not by_name["Company"].custom
    assert not by_name["Id"].writable and by_name["Email"].writable
    assert by_name["social_followers__c"].length is None
    assert by_name["twitter_username__c"].label == "Twitter Username"
    assert missing == SOCIAL


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_find_by_emails_query_and_next_records_url(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    first_page = {
        "totalSize": 2,
        "done": False,
        "nextRecordsUrl": f"{DATA}/query/01gD0000000001-2000",
        "records": [
            {
                "attributes": {"type": "Contact", "url": f"{DATA}/sobjects/Contact/003A"},
                "Id": "003A",
                "Email": "Ada@Example.com",
                "FirstName": "Ada",
                "SystemModstamp": "2026-01-15T12:00:00.000+0000",
            }
        ],
    }
    second_page = {
        "totalSize": 2,
        "done": True,
        "records": [
            {
                "attributes": {"type": "Contact"},
                "Id": "003B",
                "Email": "o'brien@example.com",
                "SystemModstamp": "2026-01-15T12:00:01.000+0000",
            }
        ],
    }
    query = respx_mock.get(f"{DATA}/query").mock(return_value=sf_response(200, first_page))
    more = respx_mock.get(f"{DATA}/query/01gD0000000001-2000").mock(return_value=sf_response(200, second_page))

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return await adapter.find_by_emails(RecordObject.CONTACT, ["ada@example.com", "O'Brien@example.com"])
        finally:
            await adapter.aclose()

    found = asyncio.run(run())
    expected_select = "Id, Email, FirstName, LastName, Phone, Title, " + ", ".join(SOCIAL) + ", SystemModstamp"
    assert soql_of(query.calls[0].request) == (
        f"SELECT {expected_select} FROM Contact WHERE Email IN ('ada@example.com','o\\'brien@example.com')"
    )
    assert more.called
    assert set(found) == {"ada@example.com", "o'brien@example.com"}
    assert found["ada@example.com"].crm_id == "003A"
    assert found["ada@example.com"].fields["FirstName"] == "Ada"
    assert "attributes" not in found["ada@example.com"].fields
    assert found["o'brien@example.com"].modified_at is not None


def _collection_results(request: httpx.Request, outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    """Answer a collection: per-record errors for emails in ``outcomes``, success for the others."""
    body = json.loads(request.content)
    results = []
    for position, record in enumerate(body["records"]):
        problem = outcomes.get(record.get("Email", ""))
        if problem:
            results.append({"success": False, "errors": [problem]})
        else:
            results.append({"id": record.get("Id") or f"003NEW{position:03d}", "success": True, "errors": []})
    return results


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_upsert_query_then_collections(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    existing = [
        {"attributes": {"type": "Contact"}, "Id": "003OLD1", "Email": "same@x.com", "LastName": "Same",
         "twitter_username__c": "same", "social_followers__c": 10.0, "SystemModstamp": "2026-01-01T00:00:00.000+0000"},
        {"attributes": {"type": "Contact"}, "Id": "003OLD2", "Email": "CHANGED@x.com", "LastName": "Old",
         "twitter_username__c": None, "social_followers__c": None, "SystemModstamp": "2026-01-01T00:00:00.000+0000"},
    ]  # fmt: skip
    query = respx_mock.get(f"{DATA}/query").mock(
        return_value=sf_response(200, {"totalSize": 2, "done": True, "records": existing})
    )
    dupe = {"statusCode": "DUPLICATES_DETECTED", "message": "Use one of these records?", "fields": []}
    create = respx_mock.post(f"{DATA}/composite/sobjects").mock(
        side_effect=lambda request: sf_response(200, _collection_results(request, {"dupe@x.com": dupe}))
    )
    update = respx_mock.patch(f"{DATA}/composite/sobjects").mock(
        side_effect=lambda request: sf_response(200, _collection_results(request, {}))
    )
    records = [
        OutboundRecord("new@x.com", {"LastName": "New", "twitter_username__c": "newbie"}),
        OutboundRecord("Same@X.com", {"LastName": "Same", "twitter_username__c": "same", "social_followers__c": 10}),
        OutboundRecord("changed@x.com", {"LastName": "Changed", "social_followers__c": 7}),
        OutboundRecord("dupe@x.com", {"LastName": "Dupe"}),
        OutboundRecord("moved@x.com", {"LastName": "Moved"}, crm_id="003LINKED"),
        OutboundRecord("not an email", {"LastName": "Broken"}),
        OutboundRecord("nolast@x.com", {"FirstName": "Only"}),
    ]

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return await adapter.upsert(RecordObject.CONTACT, records), adapter.api_calls
        finally:
            await adapter.aclose()

    results, calls = asyncio.run(run())
    assert [r.outcome for r in results] == [
        RecordOutcome.CREATED,
        RecordOutcome.UNCHANGED,
        RecordOutcome.UPDATED,
        RecordOutcome.FAILED,
        RecordOutcome.UPDATED,
        RecordOutcome.FAILED,
        RecordOutcome.FAILED,
    ]
    assert calls == 5  # describe, one query, one create and one update collection, one change stamps' read
    soql = soql_of(query.calls[0].request)
    assert soql.startswith("SELECT Id, Email, LastName, twitter_username__c, social_followers__c, FirstName, ")
    assert soql.endswith(
        "FROM Contact WHERE Email IN ('new@x.com','same@x.com','changed@x.com','dupe@x.com','moved@x.com',"
        "'nolast@x.com')"
    )
    create_body = json.loads(create.calls[0].request.content)
    assert create_body == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Contact"},
                "LastName": "New",
                "twitter_username__c": "newbie",
                "Email": "new@x.com",
            },
            {"attributes": {"type": "Contact"}, "LastName": "Dupe", "Email": "dupe@x.com"},
        ],
    }
    update_body = json.loads(update.calls[0].request.content)
    assert update_body == {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "Id": "003OLD2", "LastName": "Changed", "social_followers__c": 7,
             "Email": "changed@x.com"},
            {"attributes": {"type": "Contact"}, "Id": "003LINKED", "LastName": "Moved", "Email": "moved@x.com"},
        ],
    }  # fmt: skip
    assert create.calls[0].request.headers["Content-Type"] == "application/json"
    assert results[0].crm_id == "003NEW000"
    assert results[1].crm_id == "003OLD1"
    assert results[2].crm_id == "003OLD2"
    assert results[3].category is ErrorCategory.DUPLICATE and "dupe@x.com" in (results[3].message or "")
    assert results[4].crm_id == "003LINKED"
    assert results[5].category is ErrorCategory.VALIDATION and "Email" in (results[5].message or "")
    assert results[6].category is ErrorCategory.VALIDATION and "LastName" in (results[6].message or "")


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_lead_company_filled_and_last_name_required(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Lead/describe").mock(return_value=sf_response(200, describe_body("Lead")))
    respx_mock.get(f"{DATA}/query").mock(return_value=sf_response(200, {"totalSize": 0, "done": True, "records": []}))
    create = respx_mock.post(f"{DATA}/composite/sobjects").mock(
        side_effect=lambda request: sf_response(200, _collection_results(request, {}))
    )
    records = [
        OutboundRecord("kim@acme.com", {"LastName": "Kim"}),
        OutboundRecord("sam@gmail.com", {"LastName": "Sam"}),
        OutboundRecord("own@acme.com", {"LastName": "Own", "Company": "Own Co"}),
        OutboundRecord("anon@acme.com", {"FirstName": "Anon"}),
    ]

    async def run(options: dict[str, Any]) -> Any:
        adapter = make_adapter(**options)
        try:
            return await adapter.upsert(RecordObject.LEAD, records)
        finally:
            await adapter.aclose()

    results = asyncio.run(run({}))
    sent = json.loads(create.calls[0].request.content)["records"]
    assert [r["Company"] for r in sent] == ["Acme", "[not provided]", "Own Co"]
    assert all(r["attributes"] == {"type": "Lead"} for r in sent)
    assert [r.outcome for r in results][:3] == [RecordOutcome.CREATED] * 3
    assert results[3].outcome is RecordOutcome.FAILED
    assert "LastName" in (results[3].message or "") and "anon@acme.com" in (results[3].message or "")

    asyncio.run(run({"default_lead_company": "Social leads"}))
    sent = json.loads(create.calls[1].request.content)["records"]
    assert [r["Company"] for r in sent] == ["Social leads", "Social leads", "Own Co"]


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_whole_batch_rejection_is_split_until_each_record_has_its_own_result(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    respx_mock.get(f"{DATA}/query").mock(return_value=sf_response(200, {"totalSize": 0, "done": True, "records": []}))

    def answer(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)["records"]
        if any(r["Email"] == "bad@x.com" for r in records):
            return sf_response(
                400,
                [{"message": "Cannot deserialize instance of string from START_OBJECT value", "errorCode":
                  "JSON_PARSER_ERROR", "fields": ["Title"]}],
            )  # fmt: skip
        return sf_response(200, _collection_results(request, {}))

    create = respx_mock.post(f"{DATA}/composite/sobjects").mock(side_effect=answer)
    records = [OutboundRecord(f"p{i}@x.com", {"LastName": f"P{i}"}) for i in range(7)]
    # A value the adapter cannot check before sending (a number field's text it reads itself, see
    # test_a_value_a_checkbox_or_number_field_cannot_take_fails_only_its_record_unsent).
    records.insert(5, OutboundRecord("bad@x.com", {"LastName": "Bad", "Title": {"nested": "object"}}))

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return await adapter.upsert(RecordObject.CONTACT, records)
        finally:
            await adapter.aclose()

    results = asyncio.run(run())
    failed = [r for r in results if not r.ok]
    assert [r.email for r in failed] == ["bad@x.com"]
    assert "Title" in (failed[0].message or "") and "JSON_PARSER_ERROR" in (failed[0].message or "")
    assert sum(1 for r in results if r.outcome is RecordOutcome.CREATED) == 7
    created_emails = [
        rec["Email"]
        for call in create.calls
        if call.response.status_code == 200
        for rec in json.loads(call.request.content)["records"]
    ]
    assert sorted(created_emails) == sorted(f"p{i}@x.com" for i in range(7))


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_ambiguous_create_is_reconciled_without_duplicates(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    landed: dict[str, str] = {}

    def query(request: httpx.Request) -> httpx.Response:
        rows = [
            {"attributes": {"type": "Contact"}, "Id": crm_id, "Email": email, "SystemModstamp": "2026-01-01T00:00:00Z"}
            for email, crm_id in landed.items()
            if f"'{email}'" in soql_of(request)
        ]
        return sf_response(200, {"totalSize": len(rows), "done": True, "records": rows})

    attempts: list[list[str]] = []

    def create(request: httpx.Request) -> httpx.Response:
        emails = [r["Email"] for r in json.loads(request.content)["records"]]
        attempts.append(emails)
        if len(attempts) == 1:
            landed[emails[0]] = "003LANDED"  # the first record reached Salesforce, then the connection died
            raise httpx.ReadError("connection reset", request=request)
        return sf_response(200, _collection_results(request, {}))

    query_route = respx_mock.get(f"{DATA}/query").mock(side_effect=query)
    respx_mock.post(f"{DATA}/composite/sobjects").mock(side_effect=create)
    records = [OutboundRecord(f"r{i}@x.com", {"LastName": f"R{i}"}) for i in range(3)]

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return await adapter.upsert(RecordObject.CONTACT, records)
        finally:
            await adapter.aclose()

    results = asyncio.run(run())
    assert attempts == [["r0@x.com", "r1@x.com", "r2@x.com"], ["r1@x.com", "r2@x.com"]]
    assert query_route.call_count == 3  # the lookup, the reconciling lookup, the read of the change stamps
    assert soql_of(query_route.calls[1].request) == (
        "SELECT Id, Email, SystemModstamp FROM Contact WHERE Email IN ('r0@x.com','r1@x.com','r2@x.com')"
    )
    assert [r.outcome for r in results] == [RecordOutcome.CREATED] * 3
    assert results[0].crm_id == "003LANDED"


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_changes_since_query_shape_and_cursor(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Lead/describe").mock(
        return_value=sf_response(200, describe_body("Lead", social=False))
    )
    lead = {"attributes": {"type": "Lead"}}
    page = {
        "totalSize": 2,
        "done": True,
        "records": [
            {**lead, "Id": "00QA", "Email": "a@x.com", "SystemModstamp": "2026-02-01T10:00:00.000+0000"},
            {**lead, "Id": "00QB", "Email": None, "SystemModstamp": "2026-02-01T10:00:00.500+0000"},
        ],
    }
    query = respx_mock.get(f"{DATA}/query").mock(return_value=sf_response(200, page))

    async def run() -> Any:
        adapter = make_adapter()
        try:
            return [p async for p in adapter.changes_since(RecordObject.LEAD, "2026-01-31T00:00:00.000Z|00Q0")]
        finally:
            await adapter.aclose()

    pages = asyncio.run(run())
    assert soql_of(query.calls[0].request) == (
        "SELECT Id, Email, FirstName, LastName, Company, Phone, Status, LeadSource, SystemModstamp FROM Lead "
        "WHERE (SystemModstamp > 2026-01-31T00:00:00.000Z OR (SystemModstamp = 2026-01-31T00:00:00.000Z "
        "AND Id > '00Q0')) ORDER BY SystemModstamp, Id LIMIT 10000"
    )
    assert len(pages) == 1
    assert [r.crm_id for r in pages[0].records] == ["00QA", "00QB"]
    assert pages[0].records[1].email == ""
    assert pages[0].cursor == "2026-02-01T10:00:00.500Z|00QB"


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_add_note_shape(respx_mock: respx.MockRouter) -> None:
    note = respx_mock.post(f"{DATA}/sobjects/Note").mock(
        return_value=sf_response(201, {"id": "002N", "success": True, "errors": []})
    )

    async def run() -> str:
        adapter = make_adapter()
        try:
            return await adapter.add_note(RecordObject.CONTACT, "003A", "Twitter DM\nLoved the launch post")
        finally:
            await adapter.aclose()

    assert asyncio.run(run()) == "002N"
    assert json.loads(note.calls[0].request.content) == {
        "ParentId": "003A",
        "Title": "Twitter DM",
        "Body": "Twitter DM\nLoved the launch post",
    }


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_session_expiry_refreshes_once_and_saves_tokens(respx_mock: respx.MockRouter) -> None:
    def userinfo(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer access-2":
            return sf_response(200, {"organization_id": "00DA", "preferred_username": "ops@acme.com"})
        return sf_response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])

    respx_mock.get("/services/oauth2/userinfo").mock(side_effect=userinfo)
    respx_mock.get(f"{DATA}/limits").mock(return_value=sf_response(200, {}))
    token = respx_mock.post(TOKEN_URL).mock(
        return_value=sf_response(
            200, {"access_token": "access-2", "instance_url": INSTANCE, "issued_at": "1700000000000"}
        )
    )
    saved: list[dict[str, Any]] = []

    info = connection_tested(saved)
    assert info.account == "00DA"
    assert token.call_count == 1
    form = parse_qs(token.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-1"],
        "client_id": ["client-id"],
        "client_secret": ["client-secret"],
    }
    assert saved and saved[0]["accessToken"] == "access-2" and saved[0]["refreshToken"] == "refresh-1"


@respx.mock(using="httpx", assert_all_called=True)
def test_a_sandbox_org_signed_in_at_its_login_url_is_called_at_its_instance(respx_mock: respx.MockRouter) -> None:
    # The token's instance_url is where API calls go (crm-wire-facts, Salesforce OAuth); the integration's URL
    # (test.salesforce.com for a sandbox org, or login.salesforce.com) is where it signs in and refreshes.
    login = "https://test.salesforce.com"
    instance = "https://acme--dev.sandbox.my.salesforce.com"

    def limits(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer access-2":
            return sf_response(200, {}, {"Sforce-Limit-Info": "api-usage=3/15000"})
        return sf_response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])

    called = respx_mock.get(f"{instance}{DATA}/limits").mock(side_effect=limits)
    respx_mock.get(f"{instance}/services/oauth2/userinfo").mock(
        return_value=sf_response(200, {"organization_id": "00DA", "preferred_username": "ops@acme.com"})
    )
    token = respx_mock.post(f"{login}/services/oauth2/token").mock(
        return_value=sf_response(200, {"access_token": "access-2", "instance_url": instance})
    )

    async def run() -> Any:
        integration = Integration(provider=Provider.SALESFORCE, name="Dev sandbox", base_url=login)
        adapter = SalesforceAdapter(
            integration, credentials(instanceUrl=instance), sleep=FakeSleep(),
            options=AdapterOptions(salesforce_session_seconds=None),
        )
        try:
            return await adapter.test_connection()
        finally:
            await adapter.aclose()

    info = asyncio.run(run())
    assert info.account == "00DA" and token.call_count == 1
    assert called.call_count == 2 and info.quota is not None and info.quota.used == 3


@respx.mock(using="httpx", assert_all_called=True)
def test_a_refresh_naming_a_plain_http_instance_is_refused_and_nothing_goes_there(
    respx_mock: respx.MockRouter,
) -> None:
    # A refresh moves the calls to the instance it names (the org moved), as any base URL is checked: plain http off
    # loopback would carry the session in clear.
    respx_mock.get(f"{INSTANCE}{DATA}/limits").mock(
        return_value=sf_response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]))
    respx_mock.post(TOKEN_URL).mock(
        return_value=sf_response(200, {"access_token": "access-2", "instance_url": "http://na99.salesforce.com"}))
    saved: list[dict[str, Any]] = []

    with pytest.raises(ConfigurationError, match="plain http"):
        connection_tested(saved)
    assert saved == [], "the refused instance is not stored"


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_invalid_refresh_token_is_auth_error_without_retry(respx_mock: respx.MockRouter) -> None:
    limits = respx_mock.get(f"{DATA}/limits").mock(
        return_value=sf_response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    )
    userinfo = respx_mock.get("/services/oauth2/userinfo")
    token = respx_mock.post(TOKEN_URL).mock(
        return_value=sf_response(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
    )

    async def run() -> None:
        adapter = make_adapter()
        try:
            await adapter.test_connection()
        finally:
            await adapter.aclose()

    with pytest.raises(AuthError, match="reconnect") as caught:
        asyncio.run(run())
    assert "refresh-1" not in str(caught.value) and "access-1" not in str(caught.value)
    assert limits.call_count == 1 and token.call_count == 1 and not userinfo.called


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_daily_limit_is_fatal_and_concurrent_limit_waits(respx_mock: respx.MockRouter) -> None:
    answers = [
        sf_response(403, [{"message": "ConcurrentPerOrg Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        sf_response(200, {"organization_id": "00DA"}),
        sf_response(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
    ]
    userinfo = respx_mock.get("/services/oauth2/userinfo").mock(side_effect=answers)
    respx_mock.get(f"{DATA}/limits").mock(return_value=sf_response(200, {}))
    sleep = FakeSleep()

    async def run() -> None:
        adapter = make_adapter(sleep=sleep)
        try:
            await adapter.test_connection()
            await adapter.test_connection()
        finally:
            await adapter.aclose()

    with pytest.raises(RateLimitError, match="TotalRequests") as caught:
        asyncio.run(run())
    assert not isinstance(caught.value, BudgetExhaustedError)
    assert userinfo.call_count == 3
    assert sleep.waits and sleep.waits[0] >= 2.0


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_limit_header_feeds_quota_and_reserve_stops_early(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(
        return_value=sf_response(200, describe_body("Contact"), {"Sforce-Limit-Info": "api-usage=14950/15000"})
    )

    async def run() -> Any:
        adapter = make_adapter(daily_reserve=100)
        try:
            await adapter.list_fields(RecordObject.CONTACT)
            quota = adapter.quota()
            with pytest.raises(BudgetExhaustedError):
                await adapter.list_fields(RecordObject.CONTACT)
            return quota
        finally:
            await adapter.aclose()

    quota = asyncio.run(run())
    assert quota.used == 14950 and quota.limit == 15000 and quota.remaining == 50
    assert route.call_count == 1


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_missing_mapped_field_stops_push_naming_it(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(
        return_value=sf_response(200, describe_body("Contact", social=False))
    )
    writes = respx_mock.post(f"{DATA}/composite/sobjects")

    async def run() -> None:
        adapter = make_adapter()
        try:
            await adapter.upsert(
                RecordObject.CONTACT, [OutboundRecord("a@x.com", {"LastName": "A", "twitter_username__c": "a"})]
            )
        finally:
            await adapter.aclose()

    with pytest.raises(RequestRejectedError, match="twitter_username__c"):
        asyncio.run(run())
    assert not writes.called


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=False)
def test_malformed_query_is_fatal_and_not_retried(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    query = respx_mock.get(f"{DATA}/query").mock(
        return_value=sf_response(400, [{"message": "unexpected token: 'a@x.com'", "errorCode": "MALFORMED_QUERY"}])
    )

    async def run() -> None:
        adapter = make_adapter()
        try:
            await adapter.find_by_emails(RecordObject.CONTACT, ["a@x.com"])
        finally:
            await adapter.aclose()

    with pytest.raises(RequestRejectedError, match="MALFORMED_QUERY") as caught:
        asyncio.run(run())
    assert "a@x.com" not in str(caught.value)
    assert query.call_count == 1


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_add_note_falls_back_to_a_task_when_the_org_has_no_note(respx_mock: respx.MockRouter) -> None:
    note = respx_mock.post(f"{DATA}/sobjects/Note").mock(
        return_value=sf_response(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    )
    task = respx_mock.post(f"{DATA}/sobjects/Task").mock(
        side_effect=[
            sf_response(201, {"id": "00TA", "success": True, "errors": []}),
            sf_response(201, {"id": "00TB", "success": True, "errors": []}),
        ]
    )

    async def run() -> list[str]:
        adapter = make_adapter()
        try:
            return [
                await adapter.add_note(RecordObject.LEAD, "00QA", "Instagram comment\nWants a demo"),
                await adapter.add_note(RecordObject.LEAD, "00QA", "Second note"),
            ]
        finally:
            await adapter.aclose()

    assert asyncio.run(run()) == ["00TA", "00TB"]
    assert note.call_count == 1  # the org's lack of Note is remembered
    assert json.loads(task.calls[0].request.content) == {
        "WhoId": "00QA",
        "Subject": "Instagram comment",
        "Description": "Instagram comment\nWants a demo",
    }


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_server_errors_outlasting_retries_fail_only_that_collection(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{DATA}/sobjects/Contact/describe").mock(return_value=sf_response(200, describe_body("Contact")))
    existing = {"attributes": {"type": "Contact"}, "Id": "003OLD", "Email": "old@x.com", "LastName": "Before"}
    respx_mock.get(f"{DATA}/query").mock(
        return_value=sf_response(200, {"totalSize": 1, "done": True, "records": [existing]})
    )
    down = sf_response(503, [{"message": "Server is temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    update = respx_mock.patch(f"{DATA}/composite/sobjects").mock(return_value=down)
    respx_mock.post(f"{DATA}/composite/sobjects").mock(
        side_effect=lambda request: sf_response(200, _collection_results(request, {}))
    )
    sleep = FakeSleep()

    async def run() -> Any:
        adapter = make_adapter(sleep=sleep, max_attempts=3)
        try:
            return await adapter.upsert(
                RecordObject.CONTACT,
                [OutboundRecord("old@x.com", {"LastName": "After"}), OutboundRecord("new@x.com", {"LastName": "New"})],
            )
        finally:
            await adapter.aclose()

    results = asyncio.run(run())
    assert update.call_count == 3 and len(sleep.waits) == 2
    assert results[0].outcome is RecordOutcome.FAILED and results[0].category is ErrorCategory.SERVER
    assert "old@x.com" in (results[0].message or "") and "503" in (results[0].message or "")
    assert results[1].outcome is RecordOutcome.CREATED


@respx.mock(using="httpx", base_url=INSTANCE, assert_all_called=True)
def test_delete_record_sends_delete_on_the_sobject_and_a_404_is_gone(respx_mock: respx.MockRouter) -> None:
    contact = respx_mock.delete(f"{DATA}/sobjects/Contact/003000000000001AAA").mock(
        return_value=httpx.Response(204))
    lead = respx_mock.delete(f"{DATA}/sobjects/Lead/00Q000000000001AAA").mock(return_value=sf_response(
        404, [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]))

    async def run() -> tuple[bool, bool]:
        adapter = make_adapter()
        try:
            assert isinstance(adapter, DeletesRecords)
            return (await adapter.delete_record(RecordObject.CONTACT, "003000000000001AAA"),
                    await adapter.delete_record(RecordObject.LEAD, "00Q000000000001AAA"))
        finally:
            await adapter.aclose()

    assert asyncio.run(run()) == (True, False)
    assert contact.calls[0].request.content == b"" and lead.call_count == 1
