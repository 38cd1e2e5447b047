"""Exact Pipedrive request shapes (respx), the classifier's decision table, token costs and the default mappings."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
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
    CreatesCustomFields,
    CrmAdapter,
    CrmField,
    DeletesRecords,
    OutboundRecord,
)
from crm_desktop.providers.errors import AuthError, BudgetExhaustedError, ConfigurationError, RequestRejectedError
from crm_desktop.providers.http import Decision
from crm_desktop.providers.pipedrive import LEAD_ORIGIN_ID, PipedriveAdapter
from crm_desktop.providers.pipedrive_errors import (
    BLOCKED_WAIT_SECONDS,
    DAILY_BUDGET_CODE,
    classify_pipedrive,
    token_cost,
)
from crm_desktop.providers.pipedrive_fields import PersonFieldMap, field_wire_value
from crm_desktop.providers.pipedrive_records import (
    ChangeMark,
    default_contact_record,
    default_lead_record,
    note_fingerprint,
    note_html,
)
from tests.sandbox import pipedrive_spec

API = "https://acme.pipedrive.com"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
HASH = "9dc80c50d78a15643bfc4ca79d76156a73a1ca0e"
SENTIMENT_HASH = "1111111111aaaaaaaaaa2222222222bbbbbbbbbb"
LEAD_ID = "adf21080-0e10-11eb-879b-05d71fb426ec"
T = TypeVar("T")


class FakeSleep:
    """Records waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def run_with(body: Callable[[PipedriveAdapter], Awaitable[T]], *, sleep: FakeSleep | None = None, **options: Any) -> T:
    async def main() -> T:
        adapter = PipedriveAdapter(
            Integration(provider=Provider.PIPEDRIVE, name="acme", domain="acme"),
            {"apiToken": TOKEN},
            sleep=sleep or FakeSleep(),
            options=AdapterOptions(**options),
        )
        try:
            return await body(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def ok(data: Any, additional: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return httpx.Response(200, json=body, headers=headers)


def refused(status: int, error: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"success": False, "error": error, "error_info": "Please check developers.pipedrive.com", "data": None}
    return httpx.Response(status, json=body, headers=headers)


def person(person_id: int = 7, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": person_id,
        "name": "Ana Silva",
        "first_name": "Ana",
        "last_name": "Silva",
        "owner_id": 1,
        "add_time": "2026-03-01T10:00:00Z",
        "update_time": "2026-03-01T10:00:00Z",
        "emails": [{"value": "ana@example.com", "primary": True, "label": "work"}],
        "phones": [{"value": "+14155550123", "primary": True, "label": "mobile"}],
        "visible_to": 3,
        "label_ids": [],
        "custom_fields": {HASH: None},
    }
    data.update(changes)
    return data


def search_hit(person_id: int = 7, email: str = "ana@example.com") -> dict[str, Any]:
    item = {"id": person_id, "type": "person", "name": "Ana Silva", "emails": [email], "phones": []}
    return {"items": [{"result_score": 1.0, "item": item}]}


PERSON_FIELDS = [
    {"id": 1, "key": "name", "name": "Name", "field_type": "varchar", "edit_flag": False},
    {"id": 2, "key": "email", "name": "Email", "field_type": "varchar", "edit_flag": False},
    {"id": 3, "key": "add_time", "name": "Person created", "field_type": "date", "edit_flag": False},
    {"id": 4, "key": HASH, "name": "Twitter username", "field_type": "varchar", "edit_flag": True},
    {
        "id": 5,
        "key": SENTIMENT_HASH,
        "name": "Social sentiment",
        "field_type": "enum",
        "edit_flag": True,
        "options": [{"id": 31, "label": "positive"}, {"id": 32, "label": "negative"}],
    },
]


def sent_json(route: respx.Route, call: int = -1) -> Any:
    return json.loads(route.calls[call].request.content)


def params_of(route: respx.Route, call: int = -1) -> dict[str, str]:
    return dict(route.calls[call].request.url.params)


# -- construction ------------------------------------------------------------------------------------------------


def test_base_url_comes_from_the_company_domain_or_the_integration() -> None:
    def base(integration: Integration, credentials: dict[str, Any] | None = None) -> str:
        adapter = PipedriveAdapter(integration, credentials or {"apiToken": TOKEN})
        try:
            return str(adapter.http.client.base_url).rstrip("/")
        finally:
            asyncio.run(adapter.aclose())

    assert base(Integration(provider=Provider.PIPEDRIVE, name="a", domain="acme")) == API
    assert base(Integration(provider=Provider.PIPEDRIVE, name="a", domain="acme.pipedrive.com")) == API
    assert base(Integration(provider=Provider.PIPEDRIVE, name="a"), {"apiToken": TOKEN, "companyDomain": "acme"}) == API
    loopback = Integration(provider=Provider.PIPEDRIVE, name="a", domain="acme", base_url="http://127.0.0.1:8123")
    assert base(loopback) == "http://127.0.0.1:8123"
    with pytest.raises(ConfigurationError, match="API token"):
        PipedriveAdapter(Integration(provider=Provider.PIPEDRIVE, name="a", domain="acme"), {})
    with pytest.raises(ConfigurationError, match="company domain"):
        PipedriveAdapter(Integration(provider=Provider.PIPEDRIVE, name="a"), {"apiToken": TOKEN})


def test_the_adapter_meets_the_contract_and_creates_custom_fields() -> None:
    adapter = PipedriveAdapter(Integration(provider=Provider.PIPEDRIVE, name="a", domain="acme"), {"apiToken": TOKEN})
    try:
        assert isinstance(adapter, CrmAdapter)
        assert isinstance(adapter, CreatesCustomFields)
    finally:
        asyncio.run(adapter.aclose())


# -- request shapes ----------------------------------------------------------------------------------------------


@respx.mock(using="httpx", base_url=API)
def test_connection_sends_the_token_in_a_header_and_reads_the_budget(
    respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    user = {
        "id": 1,
        "name": "Ana Admin",
        "email": "admin@acme.example.com",
        "company_name": "Acme Ltd",
        "company_domain": "acme",
        "access": [{"app": "sales", "admin": True}, {"app": "global"}],
    }
    headers = {
        "x-ratelimit-limit": "40",
        "x-ratelimit-remaining": "39",
        "x-ratelimit-reset": "2",
        "x-daily-requests-left": "29000",
    }
    route = respx_mock.get("/v1/users/me").mock(return_value=ok(user, headers=headers))
    caplog.set_level(logging.DEBUG)

    async def body(adapter: PipedriveAdapter) -> Any:
        info = await adapter.test_connection()
        return info, adapter.budget.window_limit

    info, window_limit = run_with(body)
    request = route.calls[0].request
    assert request.headers["x-api-token"] == TOKEN
    assert "api_token" not in request.url.params
    assert TOKEN not in str(request.url)
    assert (info.account, info.user, info.scopes) == ("Acme Ltd", "admin@acme.example.com", ("sales:admin", "global"))
    assert info.quota is not None and info.quota.remaining == 29000 and info.quota.window_remaining == 39
    assert window_limit == 40  # the plan's burst limit, corrected from the headers
    assert TOKEN not in caplog.text


@respx.mock(using="httpx", base_url=API)
def test_list_fields_pages_and_shows_names_not_hashes(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get("/v1/personFields").mock(
        side_effect=[
            ok(
                PERSON_FIELDS[:3],
                {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": True, "next_start": 500}},
            ),
            ok(PERSON_FIELDS[3:], {"pagination": {"start": 500, "limit": 500, "more_items_in_collection": False}}),
        ]
    )

    async def body(adapter: PipedriveAdapter) -> Any:
        return await adapter.list_fields(RecordObject.CONTACT), await adapter.field_map()

    fields, mapping = run_with(body)
    assert [params_of(route, i) for i in range(2)] == [{"start": "0", "limit": "500"}, {"start": "500", "limit": "500"}]
    by_key = {f.name: f for f in fields}
    assert by_key[HASH].label == "Twitter username" and by_key[HASH].custom and by_key[HASH].writable
    assert not by_key["add_time"].writable and not by_key["name"].custom
    assert by_key[SENTIMENT_HASH].options == ("positive", "negative")
    assert all(len(f.label) < 40 for f in fields)
    assert mapping.key_for("twitter USERNAME") == HASH and mapping.key_for(HASH) == HASH
    assert mapping.name_for(HASH) == "Twitter username"
    assert mapping.name_for("f" * 40) == "a custom field"
    assert mapping.to_keys({"Twitter username": "ana"}) == {HASH: "ana"}
    assert mapping.to_names({HASH: "ana"}) == {"Twitter username": "ana"}
    assert mapping.keys_by_name() == {"Twitter username": HASH, "Social sentiment": SENTIMENT_HASH}
    assert mapping.humanise(f"custom_fields.{HASH} must be a string") == (
        "custom_fields.'Twitter username' must be a string"
    )
    assert mapping.wire_value(SENTIMENT_HASH, "Negative") == 32
    with pytest.raises(ValueError, match="not one of its options"):
        mapping.wire_value(SENTIMENT_HASH, "furious")


@respx.mock(using="httpx", base_url=API)
def test_find_by_emails_searches_exactly_then_reads_full_persons(respx_mock: respx.MockRouter) -> None:
    search = respx_mock.get("/api/v2/persons/search").mock(
        side_effect=lambda request: ok(
            search_hit() if request.url.params["term"] == "ana@example.com" else {"items": []}, {"next_cursor": None}
        )
    )
    listing = respx_mock.get("/api/v2/persons").mock(
        return_value=ok([person(custom_fields={HASH: "anasilva"})], {"next_cursor": None})
    )
    # A person with custom values is read through the field list (an enum holds an option id), listed once.
    fields = respx_mock.get("/v1/personFields").mock(
        return_value=ok(PERSON_FIELDS, {"more_items_in_collection": False}))

    found = run_with(lambda a: a.find_by_emails(RecordObject.CONTACT, ["Ana@Example.com", "nobody@example.com"]))
    assert fields.call_count == 1
    assert sorted(params_of(search, i)["term"] for i in range(2)) == ["ana@example.com", "nobody@example.com"]
    assert params_of(search, 0).keys() == {"term", "fields", "exact_match"}
    assert {params_of(search, 0)["fields"], params_of(search, 0)["exact_match"]} == {"email", "true"}
    assert params_of(listing) == {"ids": "7", "limit": "100"}
    assert list(found) == ["ana@example.com"]
    record = found["ana@example.com"]
    assert (record.crm_id, record.email, record.fields["name"], record.fields[HASH]) == (
        "7",
        "ana@example.com",
        "Ana Silva",
        "anasilva",
    )
    assert record.modified_at is not None and record.modified_at.isoformat() == "2026-03-01T10:00:00+00:00"


@respx.mock(using="httpx", base_url=API)
def test_upsert_creates_a_person_and_its_escaped_social_note(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/api/v2/persons/search").mock(return_value=ok({"items": []}, {"next_cursor": None}))
    create = respx_mock.post("/api/v2/persons").mock(return_value=ok(person()))
    note = respx_mock.post("/v1/notes").mock(return_value=ok({"id": 55, "content": "x", "person_id": 7}))
    record = OutboundRecord(
        email="ana@example.com",
        fields={"first_name": "Ana", "last_name": "Silva", "email": "ana@example.com", "phone": "+14155550123"},
        note="Company: Acme & Co\nTwitter: @ana <3",
    )

    async def body(adapter: PipedriveAdapter) -> Any:
        return await adapter.upsert(RecordObject.CONTACT, [record]), adapter.api_calls

    results, calls = run_with(body)
    assert sent_json(create) == {
        "name": "Ana Silva",
        "emails": [{"value": "ana@example.com", "primary": True, "label": "work"}],
        "phones": [{"value": "+14155550123", "primary": True, "label": "work"}],
    }
    assert sent_json(note) == {
        "content": "<p><b>Social data from CRM Desktop</b></p><p>Company: Acme &amp; Co<br>Twitter: @ana &lt;3</p>",
        "person_id": 7,
        "pinned_to_person_flag": 1,
    }
    assert [(r.outcome, r.crm_id) for r in results] == [(RecordOutcome.CREATED, "7")]
    assert calls == 3  # search, create, note: a new person needs no look at its notes


@respx.mock(using="httpx", base_url=API)
def test_upsert_patches_only_what_differs_and_keeps_other_phones(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/v1/personFields").mock(return_value=ok(PERSON_FIELDS, {"more_items_in_collection": False}))
    respx_mock.get("/api/v2/persons/search").mock(return_value=ok(search_hit(), {"next_cursor": None}))
    respx_mock.get("/api/v2/persons").mock(return_value=ok([person()], {"next_cursor": None}))
    patch = respx_mock.patch("/api/v2/persons/7").mock(return_value=ok(person()))
    record = OutboundRecord(
        email="ana@example.com",
        fields={
            "first_name": "Ana",
            "last_name": "Silva",
            "phone": "+14155550199",
            "Twitter username": "anasilva",
            "Social sentiment": "positive",
        },
    )

    results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record]))
    assert sent_json(patch) == {
        "phones": [
            {"value": "+14155550199", "primary": True, "label": "work"},
            {"value": "+14155550123", "primary": False, "label": "mobile"},
        ],
        "custom_fields": {HASH: "anasilva", SENTIMENT_HASH: 31},
    }
    assert [(r.outcome, r.crm_id) for r in results] == [(RecordOutcome.UPDATED, "7")]


@respx.mock(using="httpx", base_url=API)
def test_upsert_of_an_identical_person_writes_nothing(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/api/v2/persons/search").mock(return_value=ok(search_hit(), {"next_cursor": None}))
    respx_mock.get("/api/v2/persons").mock(return_value=ok([person()], {"next_cursor": None}))
    record = OutboundRecord(email="ana@example.com", fields={"name": "Ana Silva", "phone": "(415) 555-0123"})

    async def body(adapter: PipedriveAdapter) -> Any:
        return await adapter.upsert(RecordObject.CONTACT, [record]), adapter.api_calls

    results, calls = run_with(body)
    assert [(r.outcome, r.crm_id) for r in results] == [(RecordOutcome.UNCHANGED, "7")]
    assert calls == 2  # search and the ids read; no write


@respx.mock(using="httpx", base_url=API, assert_all_called=False)
def test_a_linked_record_is_read_by_id_without_a_search_and_gets_its_new_email(respx_mock: respx.MockRouter) -> None:
    search = respx_mock.get("/api/v2/persons/search")
    listing = respx_mock.get("/api/v2/persons").mock(return_value=ok([person()], {"next_cursor": None}))
    patch = respx_mock.patch("/api/v2/persons/7").mock(return_value=ok(person()))
    record = OutboundRecord(email="ana.silva@example.com", fields={"name": "Ana Silva"}, crm_id="7")

    results = run_with(lambda a: a.upsert(RecordObject.CONTACT, [record]))
    assert not search.called and params_of(listing)["ids"] == "7"
    assert sent_json(patch) == {
        "emails": [
            {"value": "ana.silva@example.com", "primary": True, "label": "work"},
            {"value": "ana@example.com", "primary": False, "label": "work"},
        ]
    }
    assert results[0].outcome is RecordOutcome.UPDATED


@respx.mock(using="httpx", base_url=API)
def test_a_refused_field_fails_only_its_record_and_is_named_not_hashed(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/v1/personFields").mock(return_value=ok(PERSON_FIELDS, {"more_items_in_collection": False}))
    respx_mock.get("/api/v2/persons/search").mock(return_value=ok({"items": []}, {"next_cursor": None}))
    error = f"Validation failed: custom_fields.{HASH} (Twitter username): must be a string"
    respx_mock.post("/api/v2/persons").mock(
        side_effect=lambda request: (
            refused(400, error)
            if json.loads(request.content)["name"] == "Bad One"
            else ok(person(8, name=json.loads(request.content)["name"]))
        )
    )
    records = [
        OutboundRecord(email="good@example.com", fields={"name": "Good One"}),
        OutboundRecord(email="bad@example.com", fields={"name": "Bad One", "Twitter username": 12}),
        OutboundRecord(email="also@example.com", fields={"name": "Also Good"}),
        OutboundRecord(email="odd@example.com", fields={"name": "Odd", "Favourite colour": "red"}),
    ]

    results = run_with(lambda a: a.upsert(RecordObject.CONTACT, records))
    assert [r.outcome for r in results] == [
        RecordOutcome.CREATED,
        RecordOutcome.FAILED,
        RecordOutcome.CREATED,
        RecordOutcome.FAILED,
    ]
    bad = results[1]
    assert bad.category is ErrorCategory.VALIDATION and bad.message is not None
    assert bad.message.startswith("bad@example.com: Pipedrive refused the person field 'custom_fields.'Twitter")
    assert "must be a string" in bad.message and HASH not in bad.message
    assert results[3].message == (
        "odd@example.com: field 'Favourite colour' is not a Pipedrive person field (create it first)"
    )


@respx.mock(using="httpx", base_url=API)
def test_upsert_of_a_lead_creates_the_person_first_then_a_linked_lead(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/api/v2/persons/search").mock(return_value=ok({"items": []}, {"next_cursor": None}))
    respx_mock.post("/api/v2/persons").mock(return_value=ok(person()))
    lead_route = respx_mock.post("/v1/leads").mock(
        return_value=httpx.Response(201, json={"success": True, "data": {"id": LEAD_ID, "title": "t", "person_id": 7}})
    )
    note = respx_mock.post("/v1/notes").mock(return_value=ok({"id": 56, "content": "x", "lead_id": LEAD_ID}))
    lead = Lead(
        email="ana@example.com",
        first_name="Ana",
        last_name="Silva",
        source="twitter_dm",
        social_context=SocialContext(platform=SocialPlatform.TWITTER, sentiment=Sentiment.POSITIVE),
    )

    results = run_with(lambda a: a.upsert(RecordObject.LEAD, [default_lead_record(lead)]))
    assert sent_json(lead_route) == {"title": "Ana Silva via twitter_dm", "person_id": 7, "origin_id": LEAD_ORIGIN_ID}
    assert sent_json(note)["lead_id"] == LEAD_ID and "person_id" not in sent_json(note)
    assert [(r.outcome, r.crm_id) for r in results] == [(RecordOutcome.CREATED, LEAD_ID)]


@respx.mock(using="httpx", base_url=API)
def test_deals_activities_and_notes_shapes(respx_mock: respx.MockRouter) -> None:
    deal = respx_mock.post("/api/v2/deals").mock(return_value=ok({"id": 41, "title": "Renewal"}))
    activity = respx_mock.post("/api/v2/activities").mock(return_value=ok({"id": 42, "subject": "Call back"}))
    note = respx_mock.post("/v1/notes").mock(return_value=ok({"id": 43, "content": "x"}))

    async def body(adapter: PipedriveAdapter) -> Any:
        return (
            await adapter.create_deal("7", "Renewal", value=1200.5),
            await adapter.create_deal("7", "Upsell"),
            await adapter.add_activity("7", "Call back", note="Asked about <pricing>"),
            await adapter.add_note(RecordObject.CONTACT, "7", "Met at the fair"),
        )

    ids = run_with(body)
    assert ids == ("41", "41", "42", "43")
    assert sent_json(deal, 0) == {"title": "Renewal", "person_id": 7, "value": 1200.5}
    assert sent_json(deal, 1) == {"title": "Upsell", "person_id": 7}
    assert sent_json(activity) == {
        "subject": "Call back",
        "type": "call",
        "person_id": 7,
        "note": "<p>Asked about &lt;pricing&gt;</p>",
    }
    assert sent_json(note) == {"content": "<p>Met at the fair</p>", "person_id": 7}


@respx.mock(using="httpx", base_url=API)
def test_changes_since_follows_the_cursor_and_resumes_after_the_delivered_ones(respx_mock: respx.MockRouter) -> None:
    first = person(1, update_time="2026-03-01T10:00:00Z")
    second = person(2, update_time="2026-03-01T10:00:05Z")
    third = person(3, update_time="2026-03-01T10:00:05Z")
    route = respx_mock.get("/api/v2/persons").mock(
        side_effect=[
            ok([first, second], {"next_cursor": "page-2"}),
            ok([third], {"next_cursor": None}),
            ok([second, third, person(4, update_time="2026-03-01T10:00:05Z")], {"next_cursor": None}),
        ]
    )

    async def body(adapter: PipedriveAdapter) -> Any:
        pages = [page async for page in adapter.changes_since(RecordObject.CONTACT, None)]
        later = [page async for page in adapter.changes_since(RecordObject.CONTACT, pages[-1].cursor)]
        return pages, later

    pages, later = run_with(body)
    assert params_of(route, 0) == {"sort_by": "update_time", "sort_direction": "asc", "limit": "500"}
    assert params_of(route, 1) == {
        "sort_by": "update_time",
        "sort_direction": "asc",
        "limit": "500",
        "cursor": "page-2",
    }
    assert params_of(route, 2)["updated_since"] == "2026-03-01T10:00:05Z" and "cursor" not in params_of(route, 2)
    assert [[r.crm_id for r in page.records] for page in pages] == [["1", "2"], ["3"]]
    assert [[r.crm_id for r in page.records] for page in later] == [["4"]]  # 2 and 3 were delivered already


def test_change_mark_redelivers_a_record_edited_again_within_the_same_second() -> None:
    mark = ChangeMark()
    original = person(5, update_time="2026-03-01T10:00:05Z")
    mark.deliver(original)
    resumed = ChangeMark.read(mark.text(), "Pipedrive")
    assert resumed.stamp == "2026-03-01T10:00:05Z"
    assert not resumed.is_new_record(original)
    assert resumed.is_new_record(person(5, update_time="2026-03-01T10:00:05Z", name="Ana S."))
    assert resumed.is_new_record(person(6, update_time="2026-03-01T10:00:05Z"))
    with pytest.raises(Exception, match="Pipedrive change cursor cannot be read"):
        ChangeMark.read("not a cursor", "Pipedrive")


@respx.mock(using="httpx", base_url=API)
def test_create_field_posts_name_and_type_and_reuses_an_existing_name(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/v1/personFields").mock(return_value=ok(PERSON_FIELDS, {"more_items_in_collection": False}))
    created = {"id": 9, "key": "2" * 40, "name": "Social followers", "field_type": "double", "edit_flag": True}
    enum = {
        "id": 10,
        "key": "3" * 40,
        "name": "Tier",
        "field_type": "enum",
        "edit_flag": True,
        "options": [{"id": 1, "label": "Gold"}, {"id": 2, "label": "Silver"}],
    }
    post = respx_mock.post("/v1/personFields").mock(side_effect=[ok(created), ok(enum)])

    async def body(adapter: PipedriveAdapter) -> Any:
        made = await adapter.create_field(RecordObject.CONTACT, "social_followers", "Social followers", "number")
        tier = await adapter.create_field(
            RecordObject.CONTACT, "tier", "Tier", "enumeration", options=["Gold", "Silver"]
        )
        again = await adapter.create_field(RecordObject.CONTACT, "twitter_username", "Twitter username", "string")
        return made, tier, again, (await adapter.field_map()).wire_value("3" * 40, "silver")

    made, tier, again, option = run_with(body)
    assert sent_json(post, 0) == {"name": "Social followers", "field_type": "double"}
    assert sent_json(post, 1) == {
        "name": "Tier",
        "field_type": "enum",
        "options": [{"label": "Gold"}, {"label": "Silver"}],
    }
    assert post.call_count == 2  # "Twitter username" already exists
    assert (made.name, made.label, made.type, made.custom) == ("2" * 40, "Social followers", "double", True)
    assert tier.options == ("Gold", "Silver") and option == 2
    assert again.name == HASH
    with pytest.raises(RequestRejectedError, match="types are"):
        run_with(lambda a: a.create_field(RecordObject.CONTACT, "x", "X", "hologram"))


# -- the classifier ----------------------------------------------------------------------------------------------

ENVELOPE = "application/json"

CLASSIFIER_TABLE: list[tuple[str, int, dict[str, str], Any, Decision, ErrorCategory | None, float | None, str]] = [
    ("ok", 200, {}, {"success": True, "data": {}}, Decision.OK, None, None, ""),
    ("created", 201, {}, {"success": True, "data": {}}, Decision.OK, None, None, ""),
    ("bad token", 401, {}, {"success": False, "error": "unauthorized access"}, Decision.FATAL, ErrorCategory.AUTH,
     None, "UNAUTHORIZED"),
    ("blocked after hammering", 403, {"content-type": "text/html"}, "<html><body>Forbidden</body></html>",
     Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, BLOCKED_WAIT_SECONDS, "BLOCKED"),
    ("no permission", 403, {}, {"success": False, "error": "Forbidden"}, Decision.FATAL, ErrorCategory.PERMISSION, None,
     "FORBIDDEN"),
    ("burst with retry-after", 429, {"retry-after": "3"}, {"success": False, "error": "Request over limit"},
     Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, 3.0, "RATE_LIMIT"),
    ("burst with reset only", 429, {"x-ratelimit-reset": "2"}, {"success": False, "error": "Request over limit"},
     Decision.RATE_LIMITED, ErrorCategory.RATE_LIMIT, 2.0, "RATE_LIMIT"),
    ("daily budget by message", 429, {"retry-after": "3600"},
     {"success": False, "error": "Daily API token budget spent"}, Decision.FATAL, ErrorCategory.RATE_LIMIT, 3600.0,
     DAILY_BUDGET_CODE),
    ("daily budget by header", 429, {"x-daily-requests-left": "0"}, {"success": False, "error": "Request over limit"},
     Decision.FATAL, ErrorCategory.RATE_LIMIT, None, DAILY_BUDGET_CODE),
    ("validation names field", 400, {}, {"success": False, "error": "Validation failed: name: must be a string"},
     Decision.RECORD_FAILURE, ErrorCategory.VALIDATION, None, "name"),
    ("parameter names field", 400, {}, {"success": False, "error": "Parameter 'title' is required"},
     Decision.RECORD_FAILURE, ErrorCategory.VALIDATION, None, "title"),
    ("unprocessable", 422, {}, {"success": False, "error": "Unprocessable"}, Decision.RECORD_FAILURE,
     ErrorCategory.VALIDATION, None, ""),
    ("duplicate", 409, {}, {"success": False, "error": "Conflict"}, Decision.RECORD_FAILURE,
     ErrorCategory.DUPLICATE, None, ""),
    ("not found", 404, {}, {"success": False, "error": "Person not found"}, Decision.FATAL,
     ErrorCategory.NOT_FOUND, None, "NOT_FOUND"),
    ("gone", 410, {}, {"success": False, "error": "Gone"}, Decision.FATAL, ErrorCategory.NOT_FOUND, None, "NOT_FOUND"),
    ("server error", 500, {}, {"success": False, "error": "Internal server error"}, Decision.RETRY,
     ErrorCategory.SERVER, None, ""),
    ("unavailable with retry-after", 503, {"retry-after": "5"}, {"success": False, "error": "down"}, Decision.RETRY,
     ErrorCategory.SERVER, 5.0, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "headers", "body", "decision", "category", "wait", "code"),
    [case[1:] for case in CLASSIFIER_TABLE],
    ids=[case[0] for case in CLASSIFIER_TABLE],
)
def test_classifier_decision_table(
    status: int,
    headers: dict[str, str],
    body: Any,
    decision: Decision,
    category: ErrorCategory | None,
    wait: float | None,
    code: str,
) -> None:
    request = httpx.Request("GET", f"{API}/api/v2/persons")
    if isinstance(body, str):
        response = httpx.Response(status, headers=headers, content=body.encode(), request=request)
    else:
        response = httpx.Response(status, headers=headers, json=body, request=request)
    verdict = classify_pipedrive(response)
    assert (verdict.decision, verdict.category, verdict.wait, verdict.code) == (decision, category, wait, code)


@respx.mock(using="httpx", base_url=API)
def test_a_refused_token_raises_auth_error_without_retrying(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get("/v1/users/me").mock(return_value=refused(401, "unauthorized access"))
    with pytest.raises(AuthError, match="reconnect") as caught:
        run_with(lambda a: a.test_connection())
    assert route.call_count == 1
    assert TOKEN not in str(caught.value)


@respx.mock(using="httpx", base_url=API)
def test_server_errors_are_retried_and_rate_limits_wait_as_told(respx_mock: respx.MockRouter) -> None:
    user = {"id": 1, "name": "A", "email": "a@acme.example.com", "company_name": "Acme"}
    route = respx_mock.get("/v1/users/me").mock(
        side_effect=[
            refused(503, "Service temporarily unavailable"),
            refused(429, "Request over limit", {"retry-after": "7"}),
            httpx.Response(403, headers={"content-type": "text/html"}, content=b"<html>blocked</html>"),
            ok(user),
        ]
    )
    sleep = FakeSleep()
    info = run_with(lambda a: a.test_connection(), sleep=sleep)
    assert info.account == "Acme" and route.call_count == 4
    assert any(wait >= 7 for wait in sleep.waits)
    assert any(wait >= BLOCKED_WAIT_SECONDS for wait in sleep.waits)


@respx.mock(using="httpx", base_url=API)
def test_a_spent_daily_budget_stops_everything_at_once(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get("/v1/users/me").mock(
        return_value=refused(429, "Daily API token budget spent", {"x-daily-requests-left": "0", "retry-after": "9000"})
    )

    async def body(adapter: PipedriveAdapter) -> list[str]:
        outcomes = []
        for _ in range(2):
            try:
                await adapter.test_connection()
            except BudgetExhaustedError as exc:
                outcomes.append(str(exc))
        return outcomes

    outcomes = run_with(body)
    assert len(outcomes) == 2 and "resets at 00:00 UTC" in outcomes[0]
    assert route.call_count == 1  # the second call stopped before it was sent


@respx.mock(using="httpx", base_url=API, assert_all_called=False)
def test_the_daily_reserve_stops_a_call_before_it_would_spend_it(respx_mock: respx.MockRouter) -> None:
    user = {"id": 1, "name": "A", "email": "a@acme.example.com", "company_name": "Acme"}
    respx_mock.get("/v1/users/me").mock(return_value=ok(user, headers={"x-daily-requests-left": "115"}))
    search = respx_mock.get("/api/v2/persons/search")

    async def body(adapter: PipedriveAdapter) -> None:
        await adapter.test_connection()
        await adapter.find_by_emails(RecordObject.CONTACT, ["ana@example.com"])

    with pytest.raises(BudgetExhaustedError, match="115 of today's Pipedrive API tokens"):
        run_with(body, daily_reserve=100)  # a search costs 20: 115 - 20 < 100
    assert not search.called


# -- token costs against the official spec -----------------------------------------------------------------------

CALLS = [
    ("GET", "/v1/users/me"),
    ("GET", "/v1/personFields"),
    ("POST", "/v1/personFields"),
    ("GET", "/api/v2/persons"),
    ("GET", "/api/v2/persons/search"),
    ("GET", "/api/v2/persons/7"),
    ("POST", "/api/v2/persons"),
    ("PATCH", "/api/v2/persons/7"),
    ("GET", "/v1/leads"),
    ("GET", f"/v1/leads/{LEAD_ID}"),
    ("POST", "/v1/leads"),
    ("PATCH", f"/v1/leads/{LEAD_ID}"),
    ("GET", "/v1/notes"),
    ("POST", "/v1/notes"),
    ("PUT", "/v1/notes/55"),
    ("GET", "/api/v2/deals"),
    ("POST", "/api/v2/deals"),
    ("GET", "/api/v2/activities"),
    ("POST", "/api/v2/activities"),
    ("GET", "/api/v2/pipelines"),
    ("GET", "/api/v2/stages"),
    ("PUT", "/v1/persons/7/merge"),
]


@pytest.mark.skipif(not pipedrive_spec.specs_available(), reason="Pipedrive's OpenAPI files are not on this machine")
@pytest.mark.parametrize(("method", "path"), CALLS)
def test_token_costs_match_the_official_spec(method: str, path: str) -> None:
    request = httpx.Request(method, f"{API}{path}")
    assert token_cost(method, path) == pipedrive_spec.token_cost(request)


# -- the default mappings and note text --------------------------------------------------------------------------


def test_default_contact_record_puts_social_data_in_the_note_unless_a_field_takes_it() -> None:
    contact = Contact(
        email="Ana@Example.com",
        first_name="Ana",
        last_name="Silva",
        company="Acme",
        phone="+1 415 555 0123",
        social_profiles=[
            SocialProfile(platform=SocialPlatform.TWITTER, username="@ana", followers=1200, engagement=3.5),
            SocialProfile(platform=SocialPlatform.LINKEDIN, username="anasilva", url="https://linkedin.com/in/ana"),
        ],
        custom_fields={"tier": "gold"},
    )
    record = default_contact_record(contact)
    assert record.email == "ana@example.com"
    assert record.fields == {
        "email": "ana@example.com",
        "first_name": "Ana",
        "last_name": "Silva",
        "phone": "+14155550123",
    }
    assert record.note == (
        "Company: Acme\n"
        "LinkedIn: @anasilva (0 followers, engagement score 0) https://linkedin.com/in/ana\n"
        "Twitter/X: @ana (1,200 followers, engagement score 3.5)\n"
        "Followers in all: 1,200\n"
        "tier: gold"
    )
    mapped = default_contact_record(contact, social_field_keys={"twitter_username": HASH, "tier": "4" * 40})
    assert mapped.fields[HASH] == "ana" and mapped.fields["4" * 40] == "gold"
    assert mapped.note is not None and "tier: gold" not in mapped.note


def test_default_lead_record_titles_the_lead_and_notes_its_context() -> None:
    lead = Lead(
        email="ana@example.com",
        first_name="Ana",
        last_name="Silva",
        company="Acme",
        source="instagram_dm",
        status=LeadStatus.CONTACTED,
        social_context=SocialContext(
            platform=SocialPlatform.INSTAGRAM, conversation_id="c-1", sentiment=Sentiment.MIXED, engagement_score=61
        ),
    )
    record = default_lead_record(lead)
    assert record.fields == {
        "email": "ana@example.com",
        "first_name": "Ana",
        "last_name": "Silva",
        "title": "Ana Silva via instagram_dm",
    }
    assert record.note == (
        "Status: contacted\nCompany: Acme\nSource: instagram_dm\nPlatform: Instagram\nConversation: c-1\n"
        "Sentiment: mixed\nEngagement score: 61"
    )
    mapped = default_lead_record(lead, social_field_keys={"social_sentiment": SENTIMENT_HASH})
    assert mapped.fields[SENTIMENT_HASH] == "mixed" and "Sentiment" not in (mapped.note or "")


def test_note_html_escapes_and_fingerprints_ignore_markup() -> None:
    content = note_html("a < b & c\nline two", "Heading")
    assert content == "<p><b>Heading</b></p><p>a &lt; b &amp; c<br>line two</p>"
    assert note_fingerprint(content) == note_fingerprint("<p><b>Heading</b></p>\n<p>a &lt; b &amp; c<br />line two</p>")
    assert PersonFieldMap().name_for("name") == "name"


@respx.mock(using="httpx", base_url=API)
def test_a_record_with_only_the_last_name_keeps_the_first_name(respx_mock: respx.MockRouter) -> None:
    respx_mock.get("/api/v2/persons").mock(return_value=ok([person()], {"next_cursor": None}))
    patch = respx_mock.patch("/api/v2/persons/7").mock(return_value=ok(person(name="Ana Lovelace")))
    records = [
        OutboundRecord(email="ana@example.com", fields={"last_name": "Lovelace"}, crm_id="7"),
        OutboundRecord(email="ana@example.com", fields={"first_name": "Ana", "last_name": "Silva"}, crm_id="7"),
    ]
    results = run_with(lambda a: a.upsert(RecordObject.CONTACT, records[:1]))
    unchanged = run_with(lambda a: a.upsert(RecordObject.CONTACT, records[1:]))
    assert sent_json(patch) == {"name": "Ana Lovelace"} and patch.call_count == 1
    assert (results[0].outcome, unchanged[0].outcome) == (RecordOutcome.UPDATED, RecordOutcome.UNCHANGED)


def test_a_blank_clears_a_date_or_number_field_with_null() -> None:
    """An undo putting back a field that was empty before the run sends a blank: Pipedrive's date and number fields
    take null as their empty value ("" is not a date, nor a number)."""
    date_key, number_key = "d" * 40, "e" * 40
    mapping = PersonFieldMap((CrmField(date_key, "First contact", "date", custom=True),
                              CrmField(number_key, "Social engagement score", "double", custom=True)))
    assert mapping.wire_value(date_key, "") is None and mapping.wire_value(date_key, "  ") is None
    assert mapping.wire_value(number_key, "") is None
    assert mapping.wire_value(date_key, " 2026-12-03 ") == "2026-12-03"
    assert mapping.wire_value(number_key, "4.5") == 4.5
    with pytest.raises(ValueError, match="is not a date"):
        mapping.wire_value(date_key, "03/12/2026")


def test_a_money_value_goes_as_amount_and_currency_and_reads_back_as_text() -> None:
    """v2 persons hold a monetary custom value as ``{value, currency}`` (crm-wire-facts, Pipedrive person fields)."""
    key = "f" * 40
    money = CrmField(key, "Lifetime value", "monetary", custom=True)
    mapping = PersonFieldMap((money,), currency="EUR")
    assert mapping.wire_value(key, "1500") == {"value": 1500, "currency": "EUR"}
    assert mapping.wire_value(key, 12.5) == {"value": 12.5, "currency": "EUR"}
    assert mapping.wire_value(key, "usd 99.90") == {"value": 99.9, "currency": "USD"}
    assert mapping.wire_value(key, "") is None
    assert mapping.read_value(key, {"value": 1500.0, "currency": "GBP"}) == "1500 GBP"
    assert mapping.read_value(key, {"value": None, "currency": "GBP"}) is None
    for bad in ("lots", "EUR 5 USD", "5 euros"):
        with pytest.raises(ValueError, match="is not an amount"):
            mapping.wire_value(key, bad)
    with pytest.raises(ValueError, match="no currency"):
        PersonFieldMap((money,)).wire_value(key, "1500")
    # The Field Mapping preview shows the amount checked, with the currency given.
    assert field_wire_value(money, "1500 eur") == "1500 EUR" and field_wire_value(money, "1500") == 1500


def test_delete_record_sends_delete_on_the_v2_person_or_the_v1_lead() -> None:
    with respx.mock(using="httpx", base_url=API) as mock:
        person = mock.delete("/api/v2/persons/42").mock(
            return_value=httpx.Response(200, json={"success": True, "data": {"id": 42}}))
        lead = mock.delete(f"/v1/leads/{LEAD_ID}").mock(return_value=httpx.Response(
            404, json={"success": False, "error": "Lead not found"}))

        async def both(adapter: PipedriveAdapter) -> tuple[bool, bool]:
            assert isinstance(adapter, DeletesRecords)
            return (await adapter.delete_record(RecordObject.CONTACT, "42"),
                    await adapter.delete_record(RecordObject.LEAD, LEAD_ID))

        assert run_with(both) == (True, False)
    assert person.call_count == 1 and lead.call_count == 1
    assert person.calls[0].request.headers["x-api-token"] == TOKEN
