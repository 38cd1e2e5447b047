"""Exact HubSpot request shapes (respx), the batch result mapping, and the classifier's decision table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

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
    ChangePage,
    CreatesCustomFields,
    CrmAdapter,
    DeletesRecords,
    OutboundRecord,
)
from crm_desktop.providers.errors import (
    AuthError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    RequestRejectedError,
)
from crm_desktop.providers.http import Decision
from crm_desktop.providers.hubspot import HubSpotAdapter
from crm_desktop.providers.hubspot_errors import classify_hubspot, property_problems
from crm_desktop.providers.hubspot_records import default_contact_record, default_lead_record

API = "https://api.hubapi.com"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
STARTED = "2026-03-01T10:00:00.000Z"
BEFORE = "2026-03-01T09:00:00.000Z"
AFTER = "2026-03-01T10:00:00.500Z"
T = TypeVar("T")


class FakeSleep:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def run_with(body: Callable[[HubSpotAdapter], Awaitable[T]], *, sleep: FakeSleep | None = None, **options: Any) -> T:
    async def main() -> T:
        adapter = HubSpotAdapter(
            Integration(provider=Provider.HUBSPOT, name="hubspot-test"),
            {"token": TOKEN},
            sleep=sleep or FakeSleep(),
            options=AdapterOptions(**options),
        )
        try:
            return await body(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def sent(route: respx.Route, number: int = -1) -> Any:
    return json.loads(route.calls[number].request.content)


def upsert_answer(request: httpx.Request, *, new: bool = True, updated: str = AFTER) -> httpx.Response:
    """A batch/upsert answer echoing every input, as HubSpot does."""
    inputs = json.loads(request.content)["inputs"]
    results = [
        {
            "id": str(5000 + int(item["objectWriteTraceId"])),
            "new": new,
            "properties": {"email": item["id"], "lastmodifieddate": updated},
            "createdAt": BEFORE if not new else AFTER,
            "updatedAt": updated,
            "archived": False,
            "objectWriteTraceId": item["objectWriteTraceId"],
        }
        for item in inputs
    ]
    return httpx.Response(200, json={"status": "COMPLETE", "results": results, "startedAt": STARTED})


def existing_contact(request: httpx.Request) -> httpx.Response:
    """A batch/upsert answer for contacts HubSpot already had (changed by this write)."""
    return upsert_answer(request, new=False)


def record(email: str, **fields: Any) -> OutboundRecord:
    return OutboundRecord(email=email, fields={"firstname": "Ada", **fields})


# -- classifier ---------------------------------------------------------------------------------------------------
VALIDATION_BODY = {
    "status": "error",
    "category": "VALIDATION_ERROR",
    "message": 'Property values were not valid: [{"isValid":false,"message":"Email address x is invalid",'
    '"error":"INVALID_EMAIL","name":"email"}]',
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "decision", "category", "code", "wait"),
    [
        (200, {}, {}, Decision.OK, None, "", None),
        (207, {"status": "COMPLETE"}, {}, Decision.OK, None, "", None),
        (
            401,
            {"category": "INVALID_AUTHENTICATION"},
            {},
            Decision.FATAL,
            ErrorCategory.AUTH,
            "INVALID_AUTHENTICATION",
            None,
        ),
        (401, {}, {}, Decision.FATAL, ErrorCategory.AUTH, "INVALID_AUTHENTICATION", None),
        (
            401,
            {"category": "EXPIRED_AUTHENTICATION"},
            {},
            Decision.REFRESH_THEN_RETRY,
            ErrorCategory.AUTH,
            "EXPIRED_AUTHENTICATION",
            None,
        ),
        (403, {"category": "MISSING_SCOPES"}, {}, Decision.FATAL, ErrorCategory.PERMISSION, "MISSING_SCOPES", None),
        (429, {"policyName": "DAILY"}, {}, Decision.FATAL, ErrorCategory.RATE_LIMIT, "DAILY", None),
        (
            429,
            {"policyName": "TEN_SECONDLY_ROLLING"},
            {"Retry-After": "3"},
            Decision.RATE_LIMITED,
            ErrorCategory.RATE_LIMIT,
            "TEN_SECONDLY_ROLLING",
            3.0,
        ),
        (
            429,
            {"policyName": "TEN_SECONDLY_ROLLING"},
            {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
            Decision.RATE_LIMITED,
            ErrorCategory.RATE_LIMIT,
            "TEN_SECONDLY_ROLLING",
            10.0,
        ),
        (429, {"policyName": "SECONDLY"}, {}, Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, "SECONDLY", 1.0),
        (
            409,
            {"category": "CONFLICT", "message": "Contact already exists. Existing ID: 6001"},
            {},
            Decision.RECORD_FAILURE,
            ErrorCategory.DUPLICATE,
            "CONFLICT",
            None,
        ),
        (400, VALIDATION_BODY, {}, Decision.RECORD_FAILURE, ErrorCategory.VALIDATION, "VALIDATION_ERROR", None),
        (404, {"category": "OBJECT_NOT_FOUND"}, {}, Decision.FATAL, ErrorCategory.NOT_FOUND, "OBJECT_NOT_FOUND", None),
        (500, {}, {}, Decision.RETRY, ErrorCategory.SERVER, "", None),
        (502, {"category": "BAD_GATEWAY"}, {}, Decision.RETRY, ErrorCategory.SERVER, "BAD_GATEWAY", None),
        (503, {}, {"Retry-After": "2"}, Decision.RETRY, ErrorCategory.SERVER, "", 2.0),
        (423, {}, {}, Decision.RETRY, ErrorCategory.SERVER, "", None),
    ],
)
def test_classifier_decides_by_status_and_hubspot_body(
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    decision: Decision,
    category: ErrorCategory | None,
    code: str,
    wait: float | None,
) -> None:
    verdict = classify_hubspot(httpx.Response(status, json=body, headers=headers))
    assert verdict.decision is decision
    assert verdict.category == category
    assert verdict.code == code
    assert verdict.wait == wait


def test_classifier_names_the_refused_field_and_scope_without_values() -> None:
    verdict = classify_hubspot(httpx.Response(400, json=VALIDATION_BODY))
    assert verdict.reason == "invalid value for email (INVALID_EMAIL)"
    scopes = {
        "category": "MISSING_SCOPES",
        "errors": [{"context": {"requiredGranularScopes": ["crm.objects.leads.read"]}}],
    }
    assert "crm.objects.leads.read" in classify_hubspot(httpx.Response(403, json=scopes)).reason


def test_property_problems_fall_back_to_the_errors_list() -> None:
    error = {
        "message": "bad",
        "errors": [
            {"message": "x is no number", "code": "INVALID_FLOAT", "context": {"propertyName": ["social_followers"]}}
        ],
    }
    [problem] = property_problems(error)
    assert (problem.name, problem.code) == ("social_followers", "INVALID_FLOAT")


# -- default mappings ---------------------------------------------------------------------------------------------
def test_default_contact_record_maps_social_profiles_and_lifecycle() -> None:
    contact = Contact(
        email="Ada@Example.com",
        first_name="Ada",
        last_name="Lovelace",
        company="Analytical Engines",
        phone="+14155550123",
        social_profiles=[
            SocialProfile(platform=SocialPlatform.TWITTER, username="@ada", followers=100, engagement=12.5),
            SocialProfile(platform=SocialPlatform.LINKEDIN, username="ada-l", followers=50, engagement=40.0),
            SocialProfile(platform=SocialPlatform.TIKTOK, username="adadances", followers=7, engagement=3.0),
        ],
        custom_fields={"lifecycle": "Customer", "favourite_colour": "green", "Not A Property": "x"},
    )
    outbound = default_contact_record(contact)
    assert outbound.email == "ada@example.com"
    assert outbound.fields == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "company": "Analytical Engines",
        "phone": "+14155550123",
        "twitter_username": "ada",
        "linkedin_url": "https://www.linkedin.com/in/ada-l",
        "social_followers": 157,
        "social_engagement_score": 40.0,
        "lifecyclestage": "customer",
        "favourite_colour": "green",
    }
    assert outbound.note is not None and "TikTok: @adadances (7 followers" in outbound.note


def test_default_lead_record_maps_status_lifecycle_and_lead_object_fields() -> None:
    lead = Lead(
        email="grace@example.com",
        first_name="Grace",
        last_name="Hopper",
        source="twitter_dm",
        status=LeadStatus.QUALIFIED,
        social_context=SocialContext(
            platform=SocialPlatform.TWITTER, conversation_id="tw-9", sentiment=Sentiment.POSITIVE, engagement_score=80
        ),
    )
    outbound = default_lead_record(lead)
    assert outbound.fields == {
        "firstname": "Grace",
        "lastname": "Hopper",
        "hs_lead_status": "OPEN_DEAL",
        "lifecyclestage": "salesqualifiedlead",
        "hs_lead_name": "Grace Hopper",
        "hs_pipeline_stage": "qualified-stage-id",
        "social_sentiment": "positive",
        "social_engagement_score": 80.0,
    }
    assert outbound.note == "Lead source: twitter_dm\nConversation on Twitter/X: tw-9"


# -- request shapes -----------------------------------------------------------------------------------------------
def test_adapter_meets_the_contract_and_creates_fields() -> None:
    async def check(adapter: HubSpotAdapter) -> None:
        assert isinstance(adapter, CrmAdapter)
        assert isinstance(adapter, CreatesCustomFields)

    run_with(check)


def test_upsert_sends_batches_of_100_by_email_with_the_bearer_token() -> None:
    records = [record(f"person{i}@example.com", social_followers=i, active=True) for i in range(250)]
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=upsert_answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, records))
    assert [len(sent(route, n)["inputs"]) for n in range(3)] == [100, 100, 50]
    request = route.calls[0].request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    first = min((sent(route, n)["inputs"][0] for n in range(3)), key=lambda item: int(item["objectWriteTraceId"]))
    assert first == {
        "idProperty": "email",
        "id": "person0@example.com",
        "properties": {"firstname": "Ada", "social_followers": 0, "active": "true"},
        "objectWriteTraceId": "0",
    }
    assert [r.outcome for r in results] == [RecordOutcome.CREATED] * 250
    assert [r.email for r in results] == [r.email for r in records]
    assert results[249].crm_id == "5249"


def test_upsert_outcomes_follow_new_flag_and_modification_time() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        body = upsert_answer(request, new=False).json()
        # The second record was not touched: HubSpot kept its old modification time.
        body["results"][1]["updatedAt"] = BEFORE
        body["results"][1]["properties"]["lastmodifieddate"] = BEFORE
        body["results"][0]["new"] = True
        assert len(inputs) == 3
        body["results"].reverse()  # results are not in input order
        for result in body["results"]:
            del result["objectWriteTraceId"]  # mapped back by email then
        return httpx.Response(200, json=body)

    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record(f"p{i}@example.com") for i in range(3)]))
    assert [r.outcome for r in results] == [RecordOutcome.CREATED, RecordOutcome.UNCHANGED, RecordOutcome.UPDATED]
    assert [r.crm_id for r in results] == ["5000", "5001", "5002"]


def test_linked_record_is_updated_by_id_with_its_new_email() -> None:
    def update_answer(request: httpx.Request) -> httpx.Response:
        [item] = json.loads(request.content)["inputs"]
        result = {"id": item["id"], "properties": item["properties"], "updatedAt": AFTER, "createdAt": BEFORE}
        return httpx.Response(200, json={"status": "COMPLETE", "results": [result], "startedAt": STARTED})

    linked = OutboundRecord(email="new@example.com", fields={"firstname": "Ada"}, crm_id="6001")
    with respx.mock(using="httpx", base_url=API, assert_all_called=False) as mock:
        update = mock.post("/crm/v3/objects/contacts/batch/update").mock(side_effect=update_answer)
        upsert = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=upsert_answer)
        [result] = run_with(lambda a: a.upsert(RecordObject.CONTACT, [linked]))
    assert sent(update)["inputs"] == [
        {"id": "6001", "properties": {"firstname": "Ada", "email": "new@example.com"}, "objectWriteTraceId": "0"}
    ]
    assert not upsert.called
    assert (result.outcome, result.crm_id) == (RecordOutcome.UPDATED, "6001")


GONE_ERROR = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not found", "context": {"ids": ["6001"]}}


def gone_in_its_result(request: httpx.Request) -> httpx.Response:
    """A batch/update answer that refuses input 6001 (deleted in HubSpot) and updates the others (207)."""
    inputs = json.loads(request.content)["inputs"]
    results = [
        {
            "id": i["id"],
            "properties": i["properties"],
            "updatedAt": AFTER,
            "objectWriteTraceId": i["objectWriteTraceId"],
        }
        for i in inputs
        if i["id"] != "6001"
    ]
    body = {"status": "COMPLETE", "results": results, "errors": [GONE_ERROR], "startedAt": STARTED}
    return httpx.Response(207, json=body)


def gone_as_a_whole(request: httpx.Request) -> httpx.Response:
    """A batch/update refused as a whole (404) while it holds input 6001; updated normally without it."""
    inputs = json.loads(request.content)["inputs"]
    if any(i["id"] == "6001" for i in inputs):
        return httpx.Response(404, json={**GONE_ERROR, "message": "Could not get some CONTACT objects"})
    return gone_in_its_result(request)


@pytest.mark.parametrize("answer", [gone_in_its_result, gone_as_a_whole], ids=["207", "404"])
def test_linked_record_deleted_in_hubspot_fails_not_found_and_is_not_recreated(
    answer: Callable[[httpx.Request], httpx.Response],
) -> None:
    gone = OutboundRecord(email="ada@example.com", fields={"firstname": "Ada"}, crm_id="6001")
    kept = OutboundRecord(email="grace@example.com", fields={"firstname": "Grace"}, crm_id="6002")
    with respx.mock(using="httpx", base_url=API, assert_all_called=False) as mock:
        update = mock.post("/crm/v3/objects/contacts/batch/update").mock(side_effect=answer)
        upsert = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=upsert_answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [gone, kept]))
    assert not upsert.called, "a contact deleted in HubSpot was upserted by email again"
    assert update.called
    assert (results[0].outcome, results[0].category) == (RecordOutcome.FAILED, ErrorCategory.NOT_FOUND)
    assert results[0].message is not None and "ada@example.com" in results[0].message
    assert "6001" in results[0].message and "no longer exists" in results[0].message
    assert (results[1].outcome, results[1].crm_id) == (RecordOutcome.UPDATED, "6002")


def test_batch_update_404_without_a_gone_record_still_raises() -> None:
    linked = OutboundRecord(email="ada@example.com", fields={"firstname": "Ada"}, crm_id="6001")
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/batch/update").mock(return_value=httpx.Response(404, text="no route"))
        with pytest.raises(NotFoundError):
            run_with(lambda a: a.upsert(RecordObject.CONTACT, [linked]))


def test_partial_errors_fail_only_their_records_with_field_and_reason() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = upsert_answer(request).json()
        body["results"] = [r for r in body["results"] if r["id"] != "5001"]
        body["errors"] = [
            {**VALIDATION_BODY, "context": {"ids": ["p1@example.com"]}},
        ]
        return httpx.Response(207, json=body)

    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record(f"p{i}@example.com") for i in range(3)]))
    assert [r.outcome for r in results] == [RecordOutcome.CREATED, RecordOutcome.FAILED, RecordOutcome.CREATED]
    assert results[1].category is ErrorCategory.VALIDATION
    assert results[1].message == "p1@example.com: email: Email address x is invalid (INVALID_EMAIL)"


def test_batch_refused_as_a_whole_is_split_until_the_bad_record_stands_alone() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        if any(item["id"] == "bad@example.com" for item in inputs):
            problem = (
                '[{"isValid":false,"message":"lots was not a valid number.","error":"INVALID_FLOAT",'
                '"name":"social_followers"}]'
            )
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"Property values were not valid: {problem}",
                },
            )
        return upsert_answer(request)

    records = [record(f"p{i}@example.com") for i in range(8)]
    records[5] = record("bad@example.com", social_followers="lots")
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, records))
    # 8 -> 4 + 4 -> (2 + 2) -> (1 + 1): one refused batch per level, ok halves sent once.
    assert route.call_count == 7
    assert [r.outcome for r in results].count(RecordOutcome.CREATED) == 7
    assert results[5].outcome is RecordOutcome.FAILED
    assert results[5].message == "bad@example.com: social_followers: lots was not a valid number. (INVALID_FLOAT)"


def test_duplicate_emails_in_one_push_go_in_separate_batches() -> None:
    records = [record("twice@example.com"), record("other@example.com"), record("TWICE@example.com".lower())]
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=upsert_answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, records))
    assert [[i["id"] for i in sent(route, n)["inputs"]] for n in range(2)] == [
        ["twice@example.com", "other@example.com"],
        ["twice@example.com"],
    ]
    assert all(r.ok for r in results)


def test_conflict_on_a_linked_email_change_is_a_duplicate_failure() -> None:
    conflict = {"status": "error", "category": "CONFLICT", "message": "Contact already exists. Existing ID: 6002"}
    linked = OutboundRecord(email="taken@example.com", fields={}, crm_id="6001")
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/batch/update").mock(return_value=httpx.Response(409, json=conflict))
        [result] = run_with(lambda a: a.upsert(RecordObject.CONTACT, [linked]))
    assert result.category is ErrorCategory.DUPLICATE
    assert result.message == "taken@example.com: email: already exists in HubSpot (record 6002)"


def test_upsert_whose_connection_died_is_replayed_and_still_reported_created() -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadError("connection reset", request=request)
        body = upsert_answer(request, new=False, updated=STARTED).json()
        for result in body["results"]:
            result["createdAt"] = STARTED  # created by the lost first attempt
        return httpx.Response(200, json=body)

    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=answer)
        results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record("p@example.com")]))
    assert route.call_count == 2
    assert results[0].outcome is RecordOutcome.CREATED


def test_find_by_emails_reads_in_batches_by_email() -> None:
    properties = {
        "results": [
            {"name": "tiktok_username", "label": "TikTok", "type": "string"},
            {"name": "email", "label": "Email", "type": "string", "hubspotDefined": True},
        ]
    }

    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        results = [
            {"id": "7", "properties": {"email": i["id"], "lastmodifieddate": AFTER}}
            for i in inputs
            if i["id"].startswith("known")
        ]
        return httpx.Response(207, json={"status": "COMPLETE", "results": results, "errors": []})

    emails = ["Known@Example.com"] + [f"p{i}@example.com" for i in range(149)] + ["known@example.com", "not-an-email"]
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json=properties))
        route = mock.post("/crm/v3/objects/contacts/batch/read").mock(side_effect=answer)
        found = run_with(lambda a: a.find_by_emails(RecordObject.CONTACT, emails))
    assert route.call_count == 2
    body = sent(route, 0) if len(sent(route, 0)["inputs"]) == 100 else sent(route, 1)
    assert body["idProperty"] == "email"
    assert body["inputs"][0] == {"id": "known@example.com"}
    assert "tiktok_username" in body["properties"] and "lifecyclestage" in body["properties"]
    assert list(found) == ["known@example.com"]
    assert found["known@example.com"].crm_id == "7"


def test_changes_since_searches_by_modification_time_and_pages_past_shared_instants() -> None:
    instant = "2026-03-01T10:00:00.000Z"
    later = "2026-03-01T10:00:05.000Z"
    pages = [
        {
            "results": [
                {"id": str(i), "properties": {"email": f"p{i}@x.com", "lastmodifieddate": instant}} for i in range(200)
            ],
            "paging": {"next": {"after": "200"}},
        },
        {
            "results": [
                {"id": str(i), "properties": {"email": f"p{i}@x.com", "lastmodifieddate": instant}}
                for i in range(200, 210)
            ]
            + [{"id": "900", "properties": {"email": "late@x.com", "lastmodifieddate": later}}]
        },
    ]
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json={"results": []}))
        route = mock.post("/crm/v3/objects/contacts/search").mock(
            side_effect=[httpx.Response(200, json=page) for page in pages]
        )

        async def pull(adapter: HubSpotAdapter) -> list[Any]:
            return [page async for page in adapter.changes_since(RecordObject.CONTACT, f"{instant}|")]

        result = run_with(pull)
    first, second = sent(route, 0), sent(route, 1)
    assert first["filterGroups"] == [
        {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1772359200000"}]}
    ]
    assert first["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert first["limit"] == 200 and "after" not in first
    # Every record of the first page shares one instant: the same window is paged on with `after`.
    assert second["after"] == "200" and second["filterGroups"] == first["filterGroups"]
    assert [len(p.records) for p in result] == [200, 11]
    assert result[-1].cursor == f"{later}|900"


def test_changes_since_restarts_the_window_after_each_page() -> None:
    page = {
        "results": [
            {"id": "1", "properties": {"lastmodifieddate": "2026-03-01T10:00:00.000Z"}},
            {"id": "2", "properties": {"lastmodifieddate": "2026-03-01T10:00:01.000Z"}},
        ],
        "paging": {"next": {"after": "2"}},
    }
    last = {
        "results": [
            {"id": "2", "properties": {"lastmodifieddate": "2026-03-01T10:00:01.000Z"}},
            {"id": "3", "properties": {"lastmodifieddate": "2026-03-01T10:00:01.000Z"}},
        ]
    }
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json={"results": []}))
        route = mock.post("/crm/v3/objects/contacts/search").mock(
            side_effect=[httpx.Response(200, json=page), httpx.Response(200, json=last)]
        )

        async def pull(adapter: HubSpotAdapter) -> list[Any]:
            return [page async for page in adapter.changes_since(RecordObject.CONTACT, None)]

        result = run_with(pull)
    assert "filterGroups" not in sent(route, 0)
    assert sent(route, 1)["filterGroups"][0]["filters"][0]["value"] == "1772359201000"
    assert "after" not in sent(route, 1)
    assert [[r.crm_id for r in p.records] for p in result] == [["1", "2"], ["3"]]
    assert result[-1].cursor == "2026-03-01T10:00:01.000Z|2,3"


def test_add_note_posts_escaped_body_timestamp_and_contact_association() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/notes").mock(return_value=httpx.Response(201, json={"id": "40001"}))
        note_id = run_with(lambda a: a.add_note(RecordObject.CONTACT, "1001", "Liked <post>\nvia Instagram"))
    body = sent(route)
    assert note_id == "40001"
    assert body["properties"]["hs_note_body"] == "<p>Liked &lt;post&gt;<br>via Instagram</p>"
    assert body["properties"]["hs_timestamp"].endswith("Z")
    assert body["associations"] == [
        {"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}
    ]


def test_create_field_posts_a_contact_property() -> None:
    created = {
        "name": "social_sentiment",
        "label": "Sentiment",
        "type": "enumeration",
        "fieldType": "select",
        "options": [{"label": "positive", "value": "positive"}, {"label": "negative", "value": "negative"}],
    }
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/properties/contacts").mock(return_value=httpx.Response(201, json=created))
        field = run_with(
            lambda a: a.create_field(
                RecordObject.CONTACT, "social_sentiment", "Sentiment", "enumeration:positive,negative"
            )
        )
    assert sent(route) == {
        "name": "social_sentiment",
        "label": "Sentiment",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [
            {"label": "positive", "value": "positive", "displayOrder": 0},
            {"label": "negative", "value": "negative", "displayOrder": 1},
        ],
    }
    assert (field.name, field.type, field.custom, field.options) == (
        "social_sentiment",
        "enumeration",
        True,
        ("positive", "negative"),
    )


def test_create_field_refused_names_the_property() -> None:
    refused = {"status": "error", "category": "VALIDATION_ERROR", "message": "Property name 'Bad Name' is invalid"}
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/properties/contacts").mock(return_value=httpx.Response(400, json=refused))
        with pytest.raises(RequestRejectedError, match="property Bad Name: Property name 'Bad Name' is invalid"):
            run_with(lambda a: a.create_field(RecordObject.CONTACT, "Bad Name", "Bad", "string"))


def test_test_connection_reads_account_then_token_scopes() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/account-info/v3/details").mock(
            return_value=httpx.Response(200, json={"portalId": 62515, "timeZone": "Europe/Berlin"})
        )
        oauth = mock.get(f"/oauth/v1/access-tokens/{TOKEN}").mock(return_value=httpx.Response(404, json={}))
        private = mock.post("/oauth/v2/private-apps/get/access-token-info").mock(
            return_value=httpx.Response(200, json={"appId": 77, "scopes": ["crm.objects.contacts.read"]})
        )
        info = run_with(lambda a: a.test_connection())
    assert oauth.called
    assert sent(private) == {"tokenKey": TOKEN}
    assert info.account == "HubSpot account 62515 (Europe/Berlin)"
    assert info.user == "private app 77"
    assert info.scopes == ("crm.objects.contacts.read",)


def test_test_connection_with_unknown_scopes() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/account-info/v3/details").mock(return_value=httpx.Response(200, json={"portalId": 1}))
        mock.get(f"/oauth/v1/access-tokens/{TOKEN}").mock(return_value=httpx.Response(404, json={}))
        mock.post("/oauth/v2/private-apps/get/access-token-info").mock(return_value=httpx.Response(404, json={}))
        info = run_with(lambda a: a.test_connection())
    assert info.scopes == ()


def test_lead_push_upserts_the_contact_then_creates_the_associated_lead() -> None:
    lead_properties = {
        "results": [
            {"name": n, "label": n, "type": "string", "hubspotDefined": True}
            for n in ("hs_lead_name", "hs_pipeline_stage", "hs_object_id")
        ]
    }

    def created(request: httpx.Request) -> httpx.Response:
        [item] = json.loads(request.content)["inputs"]
        result = {"id": "300", "properties": item["properties"], "objectWriteTraceId": item["objectWriteTraceId"]}
        return httpx.Response(201, json={"status": "COMPLETE", "results": [result], "startedAt": STARTED})

    lead = default_lead_record(Lead(email="grace@example.com", first_name="Grace", status=LeadStatus.NEW))
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=lead_properties))
        contact = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=existing_contact)
        v4 = mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(
            return_value=httpx.Response(200, json={"status": "COMPLETE", "results": []})
        )
        create = mock.post("/crm/v3/objects/leads/batch/create").mock(side_effect=created)
        [result] = run_with(lambda a: a.upsert(RecordObject.LEAD, [lead]))
    # The contact existed already, so its leads were looked up first (there were none).
    assert sent(contact)["inputs"][0]["properties"] == {
        "firstname": "Grace",
        "hs_lead_status": "NEW",
        "lifecyclestage": "lead",
    }
    assert sent(v4) == {"inputs": [{"id": "5000"}]}
    assert sent(create)["inputs"] == [
        {
            "properties": {"hs_lead_name": "Grace", "hs_pipeline_stage": "new-stage-id"},
            "associations": [
                {"to": {"id": "5000"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 578}]}
            ],
            "objectWriteTraceId": "0",
        }
    ]
    assert (result.outcome, result.crm_id, result.email) == (RecordOutcome.CREATED, "300", "grace@example.com")


def test_lead_create_whose_connection_died_is_reconciled_without_a_second_lead() -> None:
    lead_properties = {"results": [{"name": "hs_lead_name", "label": "Lead name", "type": "string"}]}
    associations = [
        httpx.Response(200, json={"results": []}),
        httpx.Response(200, json={"results": [{"from": {"id": "5000"}, "to": [{"toObjectId": 301}]}]}),
    ]
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=lead_properties))
        mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=existing_contact)
        mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(side_effect=associations)
        create = mock.post("/crm/v3/objects/leads/batch/create").mock(side_effect=httpx.ReadError("reset"))
        [result] = run_with(lambda a: a.upsert(RecordObject.LEAD, [record("grace@example.com", hs_lead_name="G")]))
    assert create.call_count == 1
    assert (result.outcome, result.crm_id) == (RecordOutcome.CREATED, "301")


MERGE_READ = {"properties": "email,hs_additional_emails,hs_merged_object_ids"}


def contact_answer(contact_id: str, **properties: str) -> httpx.Response:
    return httpx.Response(200, json={"id": contact_id, "properties": {"hs_object_id": contact_id, **properties},
                                     "createdAt": BEFORE, "updatedAt": AFTER, "archived": False})


GONE = httpx.Response(404, json={"status": "error", "message": "resource not found", "category": "OBJECT_NOT_FOUND"})


def test_a_merge_whose_answer_was_lost_reads_both_contacts_and_is_not_sent_again() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        merge = mock.post("/crm/v3/objects/contacts/merge").mock(side_effect=httpx.ReadError("connection reset"))
        other = mock.get("/crm/v3/objects/contacts/202", params=MERGE_READ).mock(return_value=GONE)
        keep = mock.get("/crm/v3/objects/contacts/101", params=MERGE_READ).mock(return_value=contact_answer(
            "101", email="ada@example.com", hs_additional_emails="ada+news@example.com", hs_merged_object_ids="202"))
        result = run_with(lambda a: a.merge_records(RecordObject.CONTACT, "101", "202",
                                                    merge_email="ada+news@example.com"))
    assert json.loads(merge.calls[0].request.content) == {"primaryObjectId": "101", "objectIdToMerge": "202"}
    assert (merge.call_count, other.call_count, keep.call_count) == (1, 1, 1)
    assert (result.surviving_id, result.merged_id, result.already_merged) == ("101", "202", False)


def test_a_merged_away_id_that_hubspot_answers_with_its_survivor_is_merged() -> None:
    # HubSpot answers a merged contact's id with the contact it went into (which may have a new id).
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/merge").mock(return_value=GONE)
        mock.get("/crm/v3/objects/contacts/202", params=MERGE_READ).mock(return_value=contact_answer(
            "303", email="ada@example.com", hs_merged_object_ids="101;202"))
        result = run_with(lambda a: a.merge_records(RecordObject.CONTACT, "101", "202"))
    assert (result.surviving_id, result.already_merged) == ("303", True)


def test_a_merge_refused_as_not_found_with_both_apart_is_not_found() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.post("/crm/v3/objects/contacts/merge").mock(return_value=GONE)
        mock.get("/crm/v3/objects/contacts/202", params=MERGE_READ).mock(return_value=GONE)
        mock.get("/crm/v3/objects/contacts/101", params=MERGE_READ).mock(
            return_value=contact_answer("101", email="ada@example.com"))
        with pytest.raises(NotFoundError):
            run_with(lambda a: a.merge_records(RecordObject.CONTACT, "101", "202", merge_email="ada+news@example.com"))


# -- rate limits and auth -----------------------------------------------------------------------------------------
def test_ten_secondly_429_waits_what_retry_after_says() -> None:
    sleep = FakeSleep()
    limited = httpx.Response(
        429, json={"status": "error", "policyName": "TEN_SECONDLY_ROLLING"}, headers={"Retry-After": "3"}
    )
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(
            side_effect=[
                limited,
                upsert_answer(
                    httpx.Request("POST", API, json={"inputs": [{"id": "p@example.com", "objectWriteTraceId": "0"}]})
                ),
            ]
        )
        [result] = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record("p@example.com")]), sleep=sleep)
    assert route.call_count == 2
    assert result.outcome is RecordOutcome.CREATED
    assert 3.0 in sleep.waits and max(sleep.waits) <= 3.01


def test_daily_429_stops_at_once() -> None:
    daily = httpx.Response(429, json={"status": "error", "policyName": "DAILY", "errorType": "RATE_LIMIT"})
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(return_value=daily)
        with pytest.raises(RateLimitError, match="daily API limit"):
            run_with(lambda a: a.upsert(RecordObject.CONTACT, [record("p@example.com")]))
    assert route.call_count == 1


def test_expired_private_app_token_asks_to_reconnect_without_retrying() -> None:
    expired = httpx.Response(
        401,
        json={
            "status": "error",
            "category": "EXPIRED_AUTHENTICATION",
            "message": "The OAuth token used to make this call expired 1 second(s) ago.",
        },
    )
    with respx.mock(using="httpx", base_url=API) as mock:
        route = mock.post("/crm/v3/objects/contacts/batch/upsert").mock(return_value=expired)
        with pytest.raises(AuthError, match="reconnect") as caught:
            run_with(lambda a: a.upsert(RecordObject.CONTACT, [record("p@example.com")]))
    assert route.call_count == 1
    assert TOKEN not in str(caught.value)


def test_headers_correct_the_window_and_feed_the_quota() -> None:
    headers = {
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "180",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Daily": "625000",
        "X-HubSpot-RateLimit-Daily-Remaining": "600000",
    }

    async def check(adapter: HubSpotAdapter) -> None:
        await adapter.list_fields(RecordObject.CONTACT)
        quota = adapter.quota()
        assert (quota.limit, quota.remaining, quota.used, quota.window_remaining) == (625000, 600000, 25000, 180)
        assert adapter.budget.window_limit == 190
        assert adapter.api_calls == 1

    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/contacts").mock(
            return_value=httpx.Response(200, json={"results": []}, headers=headers)
        )
        run_with(check)


def test_lead_of_a_new_contact_is_created_without_looking_for_existing_leads() -> None:
    lead_properties = {"results": [{"name": "hs_lead_name", "label": "Lead name", "type": "string"}]}
    created = {"status": "COMPLETE", "results": [{"id": "302", "objectWriteTraceId": "0"}], "startedAt": STARTED}
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=lead_properties))
        mock.post("/crm/v3/objects/contacts/batch/upsert").mock(side_effect=upsert_answer)
        create = mock.post("/crm/v3/objects/leads/batch/create").mock(return_value=httpx.Response(201, json=created))
        [result] = run_with(lambda a: a.upsert(RecordObject.LEAD, [record("new@example.com")]))
        paths = [call.request.url.path for call in mock.calls]
    assert paths == [
        "/crm/v3/properties/leads",
        "/crm/v3/objects/contacts/batch/upsert",
        "/crm/v3/objects/leads/batch/create",
    ]
    assert sent(create)["inputs"][0]["properties"] == {"hs_lead_name": "new@example.com"}
    assert (result.outcome, result.crm_id) == (RecordOutcome.CREATED, "302")


# -- associations and the lead pull -------------------------------------------------------------------------------
LEAD_PROPERTIES = {"results": [{"name": "hs_lead_name", "label": "Lead name", "type": "string"}]}


def batch_read_of(records: dict[str, dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    """A batch/read answer holding the asked records that exist."""

    def answer(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        results = [{"id": i["id"], "properties": records[i["id"]]} for i in inputs if i["id"] in records]
        return httpx.Response(200, json={"status": "COMPLETE", "results": results})

    return answer


def associations_of(linked: dict[str, list[int]], page_size: int = 1000) -> Callable[[httpx.Request], httpx.Response]:
    """A v4 association batch/read answer: each input's linked ids after its ``after``, a page at a time (207
    with NO_ASSOCIATIONS_FOUND errors for inputs without any)."""

    def answer(request: httpx.Request) -> httpx.Response:
        results, errors = [], []
        for item in json.loads(request.content)["inputs"]:
            targets = [t for t in linked.get(item["id"], []) if t > int(item.get("after", 0))]
            if not targets:
                errors.append(
                    {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"fromObjectId": [item["id"]]}}
                )
                continue
            result: dict[str, Any] = {
                "from": {"id": item["id"]},
                "to": [{"toObjectId": t, "associationTypes": []} for t in targets[:page_size]],
            }
            if len(targets) > page_size:
                result["paging"] = {"next": {"after": str(targets[page_size - 1])}}
            results.append(result)
        body = {"status": "COMPLETE", "results": results, "errors": errors}
        return httpx.Response(207 if errors else 200, json=body)

    return answer


def test_association_batch_read_follows_paging() -> None:
    contact = {"email": "grace@example.com", "lastmodifieddate": BEFORE}
    leads = {str(n): {"hs_lastmodifieddate": BEFORE} for n in (301, 302, 303)}
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=LEAD_PROPERTIES))
        mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json={"results": []}))
        mock.post("/crm/v3/objects/contacts/batch/read").mock(
            side_effect=lambda request: httpx.Response(200, json={"results": [{"id": "5000", "properties": contact}]})
        )
        v4 = mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(
            side_effect=associations_of({"5000": [301, 302, 303]}, page_size=2)
        )
        read = mock.post("/crm/v3/objects/leads/batch/read").mock(side_effect=batch_read_of(leads))
        found = run_with(lambda a: a.find_by_emails(RecordObject.LEAD, ["grace@example.com"]))
    assert [sent(v4, n)["inputs"] for n in range(v4.call_count)] == [[{"id": "5000"}], [{"id": "5000", "after": "302"}]]
    # The contact's newest lead sits on the second page of its associations.
    assert sent(read)["inputs"] == [{"id": "303"}]
    assert found["grace@example.com"].crm_id == "303"


def test_association_paging_that_repeats_its_cursor_stops() -> None:
    looping = {"results": [{"from": {"id": "5000"}, "to": [{"toObjectId": 301}], "paging": {"next": {"after": "301"}}}]}
    contact = {"results": [{"id": "5000", "properties": {"email": "grace@example.com"}}]}
    with respx.mock(using="httpx", base_url=API) as mock:
        mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=LEAD_PROPERTIES))
        mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json={"results": []}))
        mock.post("/crm/v3/objects/contacts/batch/read").mock(return_value=httpx.Response(200, json=contact))
        v4 = mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(
            return_value=httpx.Response(200, json=looping)
        )
        with pytest.raises(ProviderError, match="same association page cursor"):
            run_with(lambda a: a.find_by_emails(RecordObject.LEAD, ["grace@example.com"]))
    assert v4.call_count == 2


def lead_pull_routes(mock: respx.MockRouter, *, date: str | None = None) -> tuple[respx.Route, respx.Route]:
    """Routes for a lead pull: lead 300 (contact 4000) changed at 10:00:01; contact 5000 (lead 301) at 10:00:02
    and contact 5001 (a lead status, no lead) at 10:00:03; lead 302 of contact 4000 unchanged."""
    headers = {"Date": date} if date else {}
    mock.get("/crm/v3/properties/leads").mock(return_value=httpx.Response(200, json=LEAD_PROPERTIES))
    mock.get("/crm/v3/properties/contacts").mock(return_value=httpx.Response(200, json={"results": []}))
    lead_changes = {
        "results": [{"id": "300", "properties": {"hs_lead_name": "Ada", "hs_lastmodifieddate": "2026-03-01T10:00:01Z"}}]
    }
    contact_changes = {
        "results": [
            {
                "id": "5000",
                "properties": {
                    "email": "grace@example.com",
                    "hs_lead_status": "UNQUALIFIED",
                    "lastmodifieddate": "2026-03-01T10:00:02Z",
                },
            },
            {
                "id": "5001",
                "properties": {
                    "email": "old@example.com",
                    "hs_lead_status": "NEW",
                    "lastmodifieddate": "2026-03-01T10:00:03Z",
                },
            },
        ]
    }
    leads = mock.post("/crm/v3/objects/leads/search").mock(
        return_value=httpx.Response(200, json=lead_changes, headers=headers)
    )
    contacts = mock.post("/crm/v3/objects/contacts/search").mock(
        return_value=httpx.Response(200, json=contact_changes, headers=headers)
    )
    mock.post("/crm/v4/associations/leads/contacts/batch/read").mock(side_effect=associations_of({"300": [4000]}))
    mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(side_effect=associations_of({"5000": [301]}))
    mock.post("/crm/v3/objects/contacts/batch/read").mock(
        side_effect=batch_read_of({"4000": {"email": "ada@example.com", "lastmodifieddate": "2026-02-01T00:00:00Z"}})
    )
    mock.post("/crm/v3/objects/leads/batch/read").mock(
        side_effect=batch_read_of({"301": {"hs_lead_name": "Grace", "hs_lastmodifieddate": "2026-02-01T00:00:00Z"}})
    )
    return leads, contacts


async def pull_leads(adapter: HubSpotAdapter, cursor: str | None) -> list[ChangePage]:
    return [page async for page in adapter.changes_since(RecordObject.LEAD, cursor)]


def test_lead_pull_merges_lead_changes_with_changes_of_their_contacts() -> None:
    cursor = "2026-03-01T10:00:00.000Z|299;2026-03-01T09:00:00.000Z|4999"
    with respx.mock(using="httpx", base_url=API) as mock:
        leads, contacts = lead_pull_routes(mock)
        [page] = run_with(lambda a: pull_leads(a, cursor))
    assert sent(leads)["filterGroups"] == [
        {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1772359200000"}]}
    ]
    assert sent(contacts)["filterGroups"] == [
        {
            "filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1772355600000"},
                {"propertyName": "hs_lead_status", "operator": "HAS_PROPERTY"},
            ]
        }
    ]
    assert sent(contacts)["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    # Oldest first: lead 300 itself changed, then lead 301 through its contact; contact 5001 has no lead.
    assert [(r.crm_id, r.email) for r in page.records] == [("300", "ada@example.com"), ("301", "grace@example.com")]
    assert page.records[1].fields["hs_lead_status"] == "UNQUALIFIED"
    assert page.records[1].fields["hs_lead_name"] == "Grace"
    assert page.records[1].modified_at == datetime(2026, 3, 1, 10, 0, 2, tzinfo=UTC)
    assert page.cursor == "2026-03-01T10:00:01.000Z|300;2026-03-01T10:00:03.000Z|5001"


@pytest.mark.parametrize(
    ("cursor", "lead_filters", "contacts_from"),
    [
        # A cursor written before contact changes were watched: contacts are watched from its lead time on.
        ("2026-03-01T10:00:00.000Z|299", True, "1772359200000"),
        # A full pull reads every lead's contact: contacts are watched from a minute before it began (HubSpot's
        # clock from the Date header, when it is behind the local one).
        (None, False, "1583056740000"),
    ],
    ids=["legacy-cursor", "full-pull"],
)
def test_lead_pull_picks_where_it_watches_contacts_from(
    cursor: str | None, lead_filters: bool, contacts_from: str
) -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        leads, contacts = lead_pull_routes(mock, date="Sun, 01 Mar 2020 10:00:00 GMT")
        [page] = run_with(lambda a: pull_leads(a, cursor))
    assert ("filterGroups" in sent(leads)) is lead_filters
    assert sent(contacts)["filterGroups"][0]["filters"][0]["value"] == contacts_from
    assert [r.crm_id for r in page.records] == ["300", "301"]
    assert page.cursor.endswith(";2026-03-01T10:00:03.000Z|5001")


def test_lead_met_through_both_searches_in_one_page_comes_once() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        lead_pull_routes(mock)
        # Contact 4000 (lead 300's) changed too, after the lead did.
        mock.post("/crm/v3/objects/contacts/search").mock(
            return_value=httpx.Response(
                200,
                json={
                    "results": [
                        {
                            "id": "4000",
                            "properties": {
                                "email": "ada@example.com",
                                "hs_lead_status": "OPEN_DEAL",
                                "lastmodifieddate": "2026-03-01T10:00:05Z",
                            },
                        }
                    ]
                },
            )
        )
        mock.post("/crm/v4/associations/contacts/leads/batch/read").mock(
            side_effect=associations_of({"4000": [300, 302]})
        )
        mock.post("/crm/v3/objects/leads/batch/read").mock(
            side_effect=batch_read_of(
                {
                    "300": {"hs_lead_name": "Ada", "hs_lastmodifieddate": "2026-03-01T10:00:01Z"},
                    "302": {"hs_lead_name": "Ada again", "hs_lastmodifieddate": "2026-02-01T00:00:00Z"},
                }
            )
        )
        [page] = run_with(lambda a: pull_leads(a, "2026-03-01T10:00:00.000Z|;2026-03-01T10:00:00.000Z|"))
    assert [r.crm_id for r in page.records] == ["300", "302"]
    assert {r.fields["hs_lead_status"] for r in page.records} == {"OPEN_DEAL"}
    assert page.cursor == "2026-03-01T10:00:01.000Z|300;2026-03-01T10:00:05.000Z|4000"


def test_delete_record_sends_delete_on_the_contact_and_a_404_is_gone() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        deleted = mock.delete("/crm/v3/objects/contacts/501").mock(return_value=httpx.Response(204))
        mock.delete("/crm/v3/objects/contacts/502").mock(return_value=httpx.Response(
            404, json={"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"}))

        async def both(adapter: HubSpotAdapter) -> tuple[bool, bool]:
            assert isinstance(adapter, DeletesRecords)
            return (await adapter.delete_record(RecordObject.CONTACT, "501"),
                    await adapter.delete_record(RecordObject.CONTACT, "502"))

        assert run_with(both) == (True, False)
    assert deleted.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"
