"""The Pipedrive sandbox behaves like Pipedrive: auth, persons, search, paging, leads, notes, fields, limits, faults."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.data import generate_people
from crm_desktop.sandbox.pipedrive import (
    DAILY_BUDGET_HEADER,
    DEFAULT_BURST_LIMIT,
    DEFAULT_SEARCH_BURST_LIMIT,
    SOCIAL_PERSON_FIELDS,
    PipedriveSandbox,
)

HASH_KEY = re.compile(r"^[0-9a-f]{40}$")
ENVELOPE_KEYS = {"success", "error", "error_info", "data", "additional_data"}


class PipedriveApi:
    """Synchronous calls to a sandbox, one event loop per call (pytest-asyncio is not used here)."""

    def __init__(self, sandbox: PipedriveSandbox, token: str | None = None, *, use_query: bool = False) -> None:
        self.sandbox = sandbox
        self.token = token if token is not None else sandbox.credentials()["apiToken"]
        self.use_query = use_query

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        params = dict(kwargs.pop("params", {}))
        if self.token:
            if self.use_query:
                params["api_token"] = self.token
            else:
                headers["x-api-token"] = self.token

        async def send() -> httpx.Response:
            async with self.sandbox.client() as client:
                return await client.request(method, path, headers=headers, params=params, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.request("DELETE", path)

    def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        async def send() -> httpx.Response:
            async with self.sandbox.client() as client:
                return await client.request(method, f"/__sandbox__/{path}", json=body)

        return asyncio.run(send())


def roomy_sandbox(**kwargs: Any) -> PipedriveSandbox:
    """A sandbox whose burst window does not get in the way of tests about other things."""
    kwargs.setdefault("burst_limit", 10_000)
    kwargs.setdefault("search_burst_limit", 10_000)
    return PipedriveSandbox(**kwargs)


@pytest.fixture
def sandbox() -> PipedriveSandbox:
    return roomy_sandbox()


@pytest.fixture
def api(sandbox: PipedriveSandbox) -> PipedriveApi:
    return PipedriveApi(sandbox)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= ENVELOPE_KEYS
    assert body["success"] is False
    assert body["data"] is None and body["additional_data"] is None
    for fragment in fragments:
        assert fragment.lower() in body["error"].lower(), body["error"]
    return body


def create_person(api: PipedriveApi, name: str, email: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, **extra}
    if email:
        body["emails"] = [{"value": email, "primary": True, "label": "work"}]
    response = api.post("/api/v2/persons", body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def parse_v2_time(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.fromisoformat(text)


# -- auth ------------------------------------------------------------------------------------------------------


def test_the_token_is_accepted_in_the_header_and_in_the_query(sandbox: PipedriveSandbox) -> None:
    by_header = PipedriveApi(sandbox).get("/v1/users/me")
    by_query = PipedriveApi(sandbox, use_query=True).get("/v1/users/me")
    assert by_header.status_code == 200
    assert by_query.status_code == 200
    me = by_header.json()["data"]
    credentials = sandbox.credentials()
    assert set(credentials) == {"apiToken", "companyDomain"}
    assert me["company_domain"] == credentials["companyDomain"]
    assert me["id"] == 1 and me["name"] and "@" in me["email"]


def test_a_missing_or_unknown_token_gets_401_in_the_error_envelope(sandbox: PipedriveSandbox) -> None:
    assert_error(PipedriveApi(sandbox, token="").get("/api/v2/persons"), 401, "authorized")
    unknown = PipedriveApi(sandbox, token="0" * 40).get("/api/v2/persons")
    assert_error(unknown, 401, "unauthorized")
    assert "x-ratelimit-limit" not in unknown.headers


def test_the_request_log_never_holds_the_token(sandbox: PipedriveSandbox) -> None:
    token = sandbox.credentials()["apiToken"]
    PipedriveApi(sandbox, use_query=True).get("/api/v2/persons", limit=1)
    PipedriveApi(sandbox).get("/api/v2/persons", limit=1)
    logged = [f"{entry.query} {entry.headers}" for entry in sandbox.requests]
    assert len(logged) == 2
    assert all(token not in line for line in logged)
    assert "api_token=<redacted>" in logged[0]


def test_the_token_expiry_fault_answers_401_once(api: PipedriveApi) -> None:
    assert api.control("PUT", "faults", {"spec": "expire@2"}).status_code == 200
    assert api.get("/v1/users/me").status_code == 200
    assert_error(api.get("/v1/users/me"), 401, "unauthorized")
    assert api.get("/v1/users/me").status_code == 200


def test_expiring_tokens_revokes_the_old_token_and_issues_a_new_one(sandbox: PipedriveSandbox) -> None:
    old = PipedriveApi(sandbox)
    assert old.control("POST", "expire-tokens").status_code == 200
    assert_error(old.get("/v1/users/me"), 401)
    assert sandbox.credentials()["apiToken"] != old.token
    assert PipedriveApi(sandbox).get("/v1/users/me").status_code == 200


# -- persons ---------------------------------------------------------------------------------------------------


def test_person_create_get_patch_delete(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    org_id = sandbox.add_organization("Northwind Labs")
    created = create_person(
        api,
        "Ada Lovelace",
        "ada@northwind.example",
        org_id=org_id,
        phones=[{"value": "+14155550100", "label": "mobile"}],
    )
    assert created["first_name"] == "Ada" and created["last_name"] == "Lovelace"
    assert created["emails"] == [{"value": "ada@northwind.example", "primary": True, "label": "work"}]
    assert created["phones"] == [{"value": "+14155550100", "primary": True, "label": "mobile"}]
    assert created["org_id"] == org_id and created["owner_id"] == 1
    assert created["add_time"] == created["update_time"]

    fetched = api.get(f"/api/v2/persons/{created['id']}")
    assert fetched.json() == {"success": True, "data": created}

    sandbox.clock.advance(5)
    patched = api.patch(
        f"/api/v2/persons/{created['id']}",
        {"emails": [{"value": "ada@work.example", "primary": True}, {"value": "ada@home.example", "label": "home"}]},
    ).json()["data"]
    assert [e["value"] for e in patched["emails"]] == ["ada@work.example", "ada@home.example"]
    assert patched["name"] == "Ada Lovelace"
    assert parse_v2_time(patched["update_time"]) > parse_v2_time(created["update_time"])
    assert patched["add_time"] == created["add_time"]

    deleted = api.delete(f"/api/v2/persons/{created['id']}")
    assert deleted.json() == {"success": True, "data": {"id": created["id"]}}
    assert_error(api.get(f"/api/v2/persons/{created['id']}"), 404, "not found")
    assert api.get("/api/v2/persons").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"emails": [{"value": "a@b.example"}]}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "A", "email": "a@b.example"}, "unknown field"),
        ({"name": "A", "job_title": "CMO"}, "contact sync"),
        (
            {"name": "A", "emails": [{"value": "a@b.example", "primary": True}, {"value": "c@d.e", "primary": True}]},
            "primary",
        ),
        ({"name": "A", "emails": "a@b.example"}, "emails"),
        ({"name": "A", "org_id": 999}, "organization 999"),
        ({"name": "A", "owner_id": 42}, "user 42"),
        ({"name": "A", "custom_fields": {"0" * 40: "x"}}, "unknown custom field"),
    ],
)
def test_person_writes_are_validated(api: PipedriveApi, body: dict[str, Any], fragment: str) -> None:
    assert_error(api.post("/api/v2/persons", body), 400, fragment)
    assert api.get("/api/v2/persons").json()["data"] == []


def test_patching_an_unknown_person_is_404(api: PipedriveApi) -> None:
    assert_error(api.patch("/api/v2/persons/77", {"name": "X"}), 404, "person not found")


def test_search_by_exact_email_finds_only_that_person(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    org_id = sandbox.add_organization("Lumen Studio")
    wanted = create_person(api, "Grace Hopper", "grace@lumen.example", org_id=org_id)
    create_person(api, "Grace Other", "grace@lumen.example.org")
    create_person(api, "Someone Else", "else@lumen.example")

    exact = api.get("/api/v2/persons/search", term="GRACE@lumen.example", fields="email", exact_match="true")
    assert exact.status_code == 200
    items = exact.json()["data"]["items"]
    assert len(items) == 1
    assert items[0]["result_score"] == 1.0
    item = items[0]["item"]
    assert item["id"] == wanted["id"] and item["type"] == "person" and item["name"] == "Grace Hopper"
    assert item["emails"] == ["grace@lumen.example"]
    assert item["organization"] == {"id": org_id, "name": "Lumen Studio"}
    assert exact.json()["additional_data"] == {"next_cursor": None}

    loose = api.get("/api/v2/persons/search", term="grace@lumen", fields="email").json()["data"]["items"]
    assert {i["item"]["name"] for i in loose} == {"Grace Hopper", "Grace Other"}
    by_name = api.get("/api/v2/persons/search", term="else", fields="name").json()["data"]["items"]
    assert [i["item"]["name"] for i in by_name] == ["Someone Else"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"term": "g"}, "2 characters"), ({"term": "grace", "fields": "twitter"}, "fields"), ({}, "term")],
)
def test_search_parameters_are_checked(api: PipedriveApi, params: dict[str, str], fragment: str) -> None:
    assert_error(api.get("/api/v2/persons/search", **params), 400, fragment)


@pytest.mark.parametrize(("count", "pages_expected"), [(23, 3), (20, 2)])
def test_cursor_paging_walks_every_person_once(count: int, pages_expected: int) -> None:
    seeded = roomy_sandbox(config=SandboxConfig(contacts=count, seed=3))
    api = PipedriveApi(seeded)
    for sort_by, direction in (("id", "asc"), ("update_time", "desc")):
        seen: list[int] = []
        pages = 0
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 10, "sort_by": sort_by, "sort_direction": direction}
            if cursor:
                params["cursor"] = cursor
            body = api.get("/api/v2/persons", **params).json()
            pages += 1
            assert body["data"], "a cursor must never lead to an empty page"
            seen.extend(person["id"] for person in body["data"])
            cursor = body["additional_data"]["next_cursor"]
            if cursor is None:
                break
        assert pages == pages_expected
        ids = list(range(1, count + 1))
        # Seeded in id order, one clock tick apart: update_time order is id order.
        assert seen == (ids if direction == "asc" else ids[::-1])


def test_page_limits_and_bad_cursors_are_refused(api: PipedriveApi) -> None:
    assert_error(api.get("/api/v2/persons", limit=501), 400, "limit")
    assert_error(api.get("/api/v2/persons", cursor="not-a-cursor"), 400, "cursor")
    assert_error(api.get("/api/v2/persons", sort_by="name"), 400, "sort_by")
    assert api.get("/api/v2/persons", limit=500).status_code == 200


def test_updated_since_finds_a_salespersons_edit() -> None:
    seeded = roomy_sandbox(config=SandboxConfig(contacts=5))
    api = PipedriveApi(seeded)
    before = api.get("/api/v2/persons/3").json()["data"]
    seeded.clock.advance(60)
    mark = seeded.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    seeded.clock.advance(1)

    edited = api.control("PATCH", "records/persons/3", {"name": "Renamed By Sales"})
    assert edited.status_code == 200
    assert edited.json()["name"] == "Renamed By Sales"
    assert parse_v2_time(edited.json()["update_time"]) > parse_v2_time(before["update_time"])

    changed = api.get("/api/v2/persons", updated_since=mark, sort_by="update_time").json()["data"]
    assert [p["id"] for p in changed] == [3]
    assert changed[0]["name"] == "Renamed By Sales"
    assert len(api.get("/api/v2/persons", updated_until=mark).json()["data"]) == 4
    assert_error(api.get("/api/v2/persons", updated_since="yesterday"), 400, "updated_since")


def test_control_edits_are_validated(api: PipedriveApi) -> None:
    create_person(api, "Edit Me")
    assert api.control("PATCH", "records/persons/1", {"org_id": 5}).status_code == 400
    assert api.control("PATCH", "records/persons/99", {"name": "X"}).status_code == 404
    assert api.control("PATCH", "records/planets/1", {"name": "X"}).status_code == 404


# -- leads -----------------------------------------------------------------------------------------------------


def test_lead_needs_a_title_and_a_person_or_organization(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    person = create_person(api, "Lead Person")
    assert_error(api.post("/v1/leads", {"person_id": person["id"]}), 400, "title")
    assert_error(api.post("/v1/leads", {"title": "Orphan"}), 400, "person_id or organization_id")
    assert_error(api.post("/v1/leads", {"title": "Ghost", "person_id": 404}), 400, "person 404")
    by_org = api.post("/v1/leads", {"title": "Org lead", "organization_id": sandbox.add_organization("Acme")})
    assert by_org.status_code == 201


def test_lead_lifecycle_with_uuid_ids(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    person = create_person(api, "Lead Person")
    created = api.post("/v1/leads", {"title": "From a DM", "person_id": person["id"]})
    assert created.status_code == 201
    lead = created.json()["data"]
    assert uuid.UUID(lead["id"]).version == 4
    assert lead["title"] == "From a DM" and lead["person_id"] == person["id"]
    assert lead["organization_id"] is None and lead["value"] is None and lead["is_archived"] is False

    assert api.get(f"/v1/leads/{lead['id']}").json()["data"] == lead
    sandbox.clock.advance(1)
    patched = api.patch(f"/v1/leads/{lead['id']}", {"title": "Qualified", "value": {"amount": 500, "currency": "EUR"}})
    assert patched.json()["data"]["title"] == "Qualified"
    assert patched.json()["data"]["update_time"] > lead["update_time"]
    assert_error(api.patch(f"/v1/leads/{lead['id']}", {"person_id": None}), 400, "person_id or an organization_id")
    assert_error(api.patch(f"/v1/leads/{lead['id']}", {"value": {"amount": 5}}), 400, "value")

    assert api.delete(f"/v1/leads/{lead['id']}").json() == {"success": True, "data": {"id": lead["id"]}}
    assert_error(api.get(f"/v1/leads/{lead['id']}"), 404, "lead not found")
    assert_error(api.get("/v1/leads/12"), 400, "uuid")


def test_leads_are_paged_with_start_and_limit(api: PipedriveApi) -> None:
    person = create_person(api, "Many Leads")
    ids = [
        api.post("/v1/leads", {"title": f"Lead {n}", "person_id": person["id"]}).json()["data"]["id"] for n in range(5)
    ]
    first = api.get("/v1/leads", start=0, limit=2).json()
    assert [lead["id"] for lead in first["data"]] == ids[:2]
    assert first["additional_data"]["pagination"] == {
        "start": 0,
        "limit": 2,
        "more_items_in_collection": True,
        "next_start": 2,
    }
    last = api.get("/v1/leads", start=4, limit=2).json()
    assert [lead["id"] for lead in last["data"]] == ids[4:]
    assert last["additional_data"]["pagination"]["more_items_in_collection"] is False
    assert "next_start" not in last["additional_data"]["pagination"]
    assert len(api.get("/v1/leads", person_id=person["id"]).json()["data"]) == 5


# -- notes -----------------------------------------------------------------------------------------------------


def test_a_note_targets_exactly_one_record(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    person = create_person(api, "Noted Person")
    lead = api.post("/v1/leads", {"title": "L", "person_id": person["id"]}).json()["data"]
    assert_error(api.post("/v1/notes", {"content": "<p>hi</p>"}), 400, "exactly one")
    assert_error(
        api.post("/v1/notes", {"content": "<p>hi</p>", "person_id": person["id"], "lead_id": lead["id"]}),
        400,
        "exactly one",
    )
    assert_error(api.post("/v1/notes", {"person_id": person["id"]}), 400, "content")
    assert_error(api.post("/v1/notes", {"content": "x", "deal_id": 9}), 400, "deal 9")

    on_person = api.post("/v1/notes", {"content": "<p>Followers: <b>1,200</b></p>", "person_id": person["id"]})
    assert on_person.status_code == 200
    note = on_person.json()["data"]
    assert note["person_id"] == person["id"] and note["person"] == {"name": "Noted Person"}
    assert note["content"] == "<p>Followers: <b>1,200</b></p>"
    assert "lead_id" not in note
    assert api.post("/v1/notes", {"content": "<p>lead</p>", "lead_id": lead["id"]}).status_code == 200

    listed = api.get("/v1/notes", person_id=person["id"]).json()
    assert [n["id"] for n in listed["data"]] == [note["id"]]
    assert listed["additional_data"]["pagination"]["more_items_in_collection"] is False
    assert len(api.get("/v1/notes").json()["data"]) == 2


def test_v1_lists_and_activities_filter_by_update_time_and_lead(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    person = create_person(api, "Filtered Person")
    old_lead = api.post("/v1/leads", {"title": "Old", "person_id": person["id"]}).json()["data"]
    api.post("/v1/notes", {"content": "<p>old</p>", "person_id": person["id"]})
    sandbox.clock.advance(60)
    mark = sandbox.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    new_lead = api.post("/v1/leads", {"title": "New", "person_id": person["id"]}).json()["data"]
    on_lead = api.post("/v1/notes", {"content": "<p>new</p>", "lead_id": new_lead["id"]}).json()["data"]
    activity = api.post("/api/v2/activities", {"subject": "Call", "lead_id": new_lead["id"]}).json()["data"]
    api.post("/api/v2/activities", {"subject": "Other", "lead_id": old_lead["id"]})

    assert [lead["id"] for lead in api.get("/v1/leads", updated_since=mark).json()["data"]] == [new_lead["id"]]
    assert [n["id"] for n in api.get("/v1/notes", updated_since=mark).json()["data"]] == [on_lead["id"]]
    assert [n["id"] for n in api.get("/v1/notes", lead_id=new_lead["id"]).json()["data"]] == [on_lead["id"]]
    assert len(api.get("/v1/notes", lead_id="").json()["data"]) == 2
    by_lead = api.get("/api/v2/activities", lead_id=new_lead["id"]).json()["data"]
    assert [a["id"] for a in by_lead] == [activity["id"]]
    assert_error(api.get("/v1/leads", updated_since="yesterday"), 400, "updated_since")
    assert_error(api.get("/v1/notes", updated_since="yesterday"), 400, "updated_since")


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/api/v2/persons/999", "Person not found"),
        ("PATCH", "/api/v2/persons/999", "Person not found"),
        ("DELETE", "/api/v2/persons/999", "Person not found"),
        ("GET", "/v1/notes/999", "Note not found"),
        ("DELETE", "/v1/notes/999", "Note not found"),
        ("GET", "/api/v2/activities/999", "Activity not found"),
        ("GET", "/api/v2/deals/999", "Deal not found"),
        ("GET", "/api/v2/pipelines/999", "Pipeline not found"),
    ],
)
def test_an_unknown_id_in_the_path_is_a_404_naming_the_record_type(
    api: PipedriveApi, method: str, path: str, message: str
) -> None:
    body = {"name": "X"} if method == "PATCH" else None
    body = assert_error(api.request(method, path, json=body), 404)
    assert body["error"] == message


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v2/persons", {}, "Validation failed: name: Parameter 'name' is required"),
        ("/api/v2/persons", {"name": "  "}, "Validation failed: name: must be a non-empty string"),
        ("/api/v2/persons", {"name": "X", "owner_id": 99}, "Validation failed: owner_id: user 99 not found"),
        ("/api/v2/persons", {"name": "X", "owner_id": "1"}, "Validation failed: owner_id: must be a positive integer"),
        ("/api/v2/persons", {"name": "X", "visible_to": 2}, "Validation failed: visible_to: must be one of 1, 3, 5, 7"),
        ("/v1/leads", {}, "Validation failed: title: Parameter 'title' is required"),
        ("/v1/leads", {"title": "L", "owner_id": 99}, "Validation failed: owner_id: user 99 not found"),
        ("/v1/notes", {}, "Validation failed: content: Parameter 'content' is required"),
        ("/v1/notes", {"content": ""}, "Validation failed: content: must be a non-empty string"),
        ("/v1/personFields", {}, "Validation failed: name: Parameter 'name' is required"),
        ("/v1/personFields", {"name": "F"}, "Validation failed: field_type: Parameter 'field_type' is required"),
        ("/api/v2/activities", {"owner_id": 99}, "Validation failed: owner_id: user 99 not found"),
        ("/api/v2/deals", {}, "Validation failed: title: Parameter 'title' is required"),
        ("/api/v2/deals", {"title": "D", "owner_id": 99}, "Validation failed: owner_id: user 99 not found"),
        (
            "/api/v2/deals",
            {"title": "D", "visible_to": "3"},
            "Validation failed: visible_to: must be one of 1, 3, 5, 7",
        ),
    ],
)
def test_a_missing_or_refused_parameter_is_named_in_pipedrives_words(
    api: PipedriveApi, path: str, body: dict[str, Any], message: str
) -> None:
    assert assert_error(api.post(path, body), 400)["error"] == message


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "/api/v2/persons", {"name": "X", "org_id": 77}, "org_id: organization 77 not found"),
        ("POST", "/v1/leads", {"title": "L", "person_id": 77}, "person_id: person 77 not found"),
        ("POST", "/v1/leads", {"title": "L", "organization_id": 77}, "organization_id: organization 77 not found"),
        ("POST", "/v1/notes", {"content": "x", "person_id": 77}, "person_id: person 77 not found"),
        ("POST", "/v1/notes", {"content": "x", "deal_id": 77}, "deal_id: deal 77 not found"),
        ("POST", "/v1/notes", {"content": "x", "org_id": 77}, "org_id: organization 77 not found"),
        ("POST", "/v1/notes", {"content": "x", "org_id": None, "deal_id": "7"}, "deal_id: must be a positive integer"),
        ("POST", "/api/v2/activities", {"deal_id": 77}, "deal_id: deal 77 not found"),
        ("POST", "/api/v2/activities", {"org_id": 77}, "org_id: organization 77 not found"),
        ("POST", "/api/v2/activities", {"participants": [{"person_id": 77}]}, "person_id: person 77 not found"),
        ("POST", "/api/v2/activities", {"participants": [{"primary": True}]}, "person_id: must be a positive integer"),
        ("POST", "/api/v2/deals", {"title": "D", "person_id": 77}, "person_id: person 77 not found"),
        ("POST", "/api/v2/deals", {"title": "D", "org_id": 0}, "org_id: must be a positive integer"),
    ],
)
def test_a_link_to_a_record_the_company_lacks_is_refused_naming_the_field(
    api: PipedriveApi, method: str, path: str, body: dict[str, Any], message: str
) -> None:
    assert assert_error(api.request(method, path, json=body), 400)["error"] == f"Validation failed: {message}"


def test_links_may_be_cleared_with_null(api: PipedriveApi) -> None:
    person = create_person(api, "Linked")
    lead = api.post("/v1/leads", {"title": "L", "person_id": person["id"]}).json()["data"]
    deal = api.post("/api/v2/deals", {"title": "D", "person_id": None, "org_id": None}).json()["data"]
    assert "person_id" not in deal and "org_id" not in deal
    cleared = api.patch(f"/api/v2/persons/{person['id']}", {"org_id": None})
    assert cleared.status_code == 200 and cleared.json()["data"].get("org_id") is None
    assert_error(api.patch(f"/v1/leads/{lead['id']}", {"person_id": None}), 400, "person_id or an organization_id")


def test_a_note_by_another_user_is_refused_as_an_unknown_owner(api: PipedriveApi) -> None:
    person = create_person(api, "Noted")
    refused = api.post("/v1/notes", {"content": "x", "person_id": person["id"], "user_id": 99})
    assert assert_error(refused, 400)["error"] == "Validation failed: owner_id: user 99 not found"
    own = api.post("/v1/notes", {"content": "x", "person_id": person["id"], "user_id": 1}).json()["data"]
    assert own["user_id"] == 1


# -- person fields ---------------------------------------------------------------------------------------------


def test_person_fields_have_short_standard_keys_and_no_social_fields_by_default(api: PipedriveApi) -> None:
    fields = api.get("/v1/personFields", limit=500).json()["data"]
    keys = {f["key"] for f in fields}
    assert {"name", "email", "phone", "org_id", "owner_id"} <= keys
    assert not any(HASH_KEY.match(key) for key in keys)
    names = {f["name"] for f in fields}
    assert not {name for name, _, _ in SOCIAL_PERSON_FIELDS} & names


def test_a_new_person_field_gets_a_hash_key_usable_on_persons(api: PipedriveApi) -> None:
    created = api.post("/v1/personFields", {"name": "Twitter handle", "field_type": "varchar"})
    assert created.status_code == 200
    key = created.json()["data"]["key"]
    assert HASH_KEY.match(key)
    assert created.json()["data"]["name"] == "Twitter handle"

    person = create_person(api, "Has Handle", custom_fields={key: "hashhandle"})
    assert person["custom_fields"] == {key: "hashhandle"}
    assert_error(api.patch(f"/api/v2/persons/{person['id']}", {"custom_fields": {key: 12}}), 400, "string")
    cleared = api.patch(f"/api/v2/persons/{person['id']}", {"custom_fields": {key: None}}).json()["data"]
    assert cleared["custom_fields"] == {key: None}

    # v2 holds an amount with its currency as one object; a bare number is refused.
    money = api.post("/v1/personFields", {"name": "Lifetime value", "field_type": "monetary"}).json()["data"]["key"]
    rich = create_person(api, "Rich", custom_fields={money: {"value": 1500, "currency": "EUR"}})
    assert rich["custom_fields"][money] == {"value": 1500, "currency": "EUR"}
    assert_error(api.patch(f"/api/v2/persons/{rich['id']}", {"custom_fields": {money: 1500}}), 400, "currency")

    assert_error(api.post("/v1/personFields", {"name": "No type"}), 400, "field_type")
    assert_error(api.post("/v1/personFields", {"field_type": "varchar"}), 400, "name")
    assert_error(api.post("/v1/personFields", {"name": "Mood", "field_type": "enum"}), 400, "option")
    assert_error(api.post("/v1/personFields", {"name": "Mood", "field_type": "emoji"}), 400, "field_type")


def test_person_fields_are_paged_with_start_and_limit(api: PipedriveApi) -> None:
    everything = api.get("/v1/personFields").json()["data"]
    first = api.get("/v1/personFields", start=0, limit=4).json()
    second = api.get("/v1/personFields", start=4, limit=4).json()
    assert [f["key"] for f in first["data"] + second["data"]] == [f["key"] for f in everything[:8]]
    assert first["additional_data"]["pagination"]["next_start"] == 4


def test_the_social_fields_option_creates_hashed_social_fields() -> None:
    sandbox = roomy_sandbox(social_fields=True)
    api = PipedriveApi(sandbox)
    fields = {f["name"]: f for f in api.get("/v1/personFields").json()["data"]}
    for name, field_type, _ in SOCIAL_PERSON_FIELDS:
        assert HASH_KEY.match(fields[name]["key"]) and fields[name]["field_type"] == field_type
    sentiment = fields["social_sentiment"]
    assert [o["label"] for o in sentiment["options"]] == ["positive", "neutral", "negative", "mixed"]
    negative = next(o["id"] for o in sentiment["options"] if o["label"] == "negative")
    person = create_person(api, "Sour", custom_fields={sentiment["key"]: negative})
    assert person["custom_fields"][sentiment["key"]] == negative
    assert_error(api.post("/api/v2/persons", {"name": "X", "custom_fields": {sentiment["key"]: 99}}), 400, "option")


# -- activities and deals --------------------------------------------------------------------------------------


def test_activities_and_deals_link_to_persons(api: PipedriveApi) -> None:
    person = create_person(api, "Busy Person")
    other = create_person(api, "Other Person")
    activity = api.post(
        "/api/v2/activities",
        {"subject": "Replied to DM", "type": "call", "person_id": person["id"], "due_date": "2026-02-01", "done": True},
    )
    assert activity.status_code == 200
    data = activity.json()["data"]
    assert data["person_id"] == person["id"] and data["participants"] == [{"person_id": person["id"], "primary": True}]
    assert data["done"] is True and "marked_as_done_time" in data
    assert api.get(f"/api/v2/activities/{data['id']}").json()["data"] == data
    api.post("/api/v2/activities", {"subject": "Other", "person_id": other["id"]})
    assert [a["id"] for a in api.get("/api/v2/activities", person_id=person["id"]).json()["data"]] == [data["id"]]
    assert_error(api.post("/api/v2/activities", {"type": "dance"}), 400, "type")
    assert_error(api.post("/api/v2/activities", {"person_id": 999}), 400, "person 999")

    deal = api.post(
        "/api/v2/deals", {"title": "Annual plan", "person_id": person["id"], "value": 1200, "currency": "EUR"}
    )
    assert deal.status_code == 200
    deal_data = deal.json()["data"]
    assert deal_data["person_id"] == person["id"] and deal_data["value"] == 1200 and deal_data["status"] == "open"
    assert api.get(f"/api/v2/deals/{deal_data['id']}").json()["data"] == deal_data
    assert [d["id"] for d in api.get("/api/v2/deals", person_id=person["id"]).json()["data"]] == [deal_data["id"]]
    assert_error(api.post("/api/v2/deals", {"value": 5}), 400, "title")
    assert_error(api.get("/api/v2/deals/55"), 404, "deal not found")
    note = api.post("/v1/notes", {"content": "deal note", "deal_id": deal_data["id"]}).json()["data"]
    assert note["deal"] == {"title": "Annual plan"}


# -- rate limits -----------------------------------------------------------------------------------------------


def test_burst_limit_answers_429_then_recovers_after_the_window() -> None:
    sandbox = PipedriveSandbox()
    api = PipedriveApi(sandbox)
    remaining = []
    for _ in range(DEFAULT_BURST_LIMIT):
        response = api.get("/v1/users/me")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == str(DEFAULT_BURST_LIMIT)
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == list(range(DEFAULT_BURST_LIMIT - 1, -1, -1))

    refused = api.get("/v1/users/me")
    body = assert_error(refused, 429, "over limit")
    assert body["error_info"]
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-limit"] == str(DEFAULT_BURST_LIMIT)
    assert 1 <= int(refused.headers["x-ratelimit-reset"]) <= 2
    assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset"]

    sandbox.clock.advance(2)
    recovered = api.get("/v1/users/me")
    assert recovered.status_code == 200
    assert recovered.headers["x-ratelimit-remaining"] == str(DEFAULT_BURST_LIMIT - 1)


def test_search_has_its_own_lower_burst_limit() -> None:
    sandbox = PipedriveSandbox(burst_limit=100)
    api = PipedriveApi(sandbox)
    for _ in range(DEFAULT_SEARCH_BURST_LIMIT):
        assert api.get("/api/v2/persons/search", term="someone").status_code == 200
    assert_error(api.get("/api/v2/persons/search", term="someone"), 429)
    assert api.get("/api/v2/persons").status_code == 200
    sandbox.clock.advance(2)
    assert api.get("/api/v2/persons/search", term="someone").status_code == 200


def test_the_burst_limit_can_be_raised_at_run_time() -> None:
    sandbox = PipedriveSandbox()
    api = PipedriveApi(sandbox)
    assert api.control("PATCH", "config", {"burst_limit": 25}).status_code == 200
    statuses = [api.get("/v1/users/me").status_code for _ in range(26)]
    assert statuses == [200] * 25 + [429]
    assert sandbox.burst_limit == 25


def test_the_daily_token_budget_is_charged_per_operation_and_then_refused() -> None:
    sandbox = roomy_sandbox(daily_token_budget=30)
    api = PipedriveApi(sandbox)
    left = [int(api.get("/api/v2/persons").headers[DAILY_BUDGET_HEADER])]  # list: 10
    left.append(int(api.post("/api/v2/persons", {"name": "P"}).headers[DAILY_BUDGET_HEADER]))  # create: 5
    left.append(int(api.get("/api/v2/persons/1").headers[DAILY_BUDGET_HEADER]))  # get: 1
    left.append(int(api.get("/v1/leads").headers[DAILY_BUDGET_HEADER]))  # v1 list: 20 > 14 left
    assert left == [20, 15, 14, 14]

    spent = api.get("/v1/leads")
    assert_error(spent, 429, "daily", "budget")
    assert spent.headers[DAILY_BUDGET_HEADER] == "14"
    assert int(spent.headers["retry-after"]) <= 86_400
    assert api.delete("/api/v2/persons/1").status_code == 200  # delete: 3 still fits

    sandbox.clock.advance(86_400)
    assert api.get("/v1/leads").status_code == 200
    assert sandbox.tokens_spent == 20


# -- faults ----------------------------------------------------------------------------------------------------


def test_server_error_fault_answers_5xx_in_the_envelope(api: PipedriveApi) -> None:
    api.control("PUT", "faults", {"spec": "5xx@1"})
    failed = api.get("/api/v2/persons")
    assert failed.status_code in {500, 503}
    assert_error(failed, failed.status_code)
    assert api.get("/api/v2/persons").status_code == 200


def test_rate_limit_fault_answers_429_with_rate_headers(api: PipedriveApi) -> None:
    api.control("PUT", "faults", {"spec": "429@1"})
    limited = api.get("/api/v2/persons")
    assert_error(limited, 429, "over limit")
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert {"x-ratelimit-limit", "x-ratelimit-reset", "retry-after"} <= set(limited.headers)


def test_reset_fault_drops_the_connection(api: PipedriveApi) -> None:
    api.control("PUT", "faults", {"spec": "reset@1"})
    with pytest.raises(httpx.ReadError):
        api.get("/api/v2/persons")
    assert api.get("/api/v2/persons").status_code == 200


def test_invalid_record_fault_refuses_that_write_only(api: PipedriveApi, sandbox: PipedriveSandbox) -> None:
    api.control("PUT", "faults", {"spec": "invalid@2"})
    create_person(api, "First")
    assert_error(api.post("/api/v2/persons", {"name": "Second"}), 400, "validation failed")
    create_person(api, "Third")
    assert [p["name"] for p in api.get("/api/v2/persons").json()["data"]] == ["First", "Third"]
    assert sandbox.faults.fired == {"invalid": 1}


def test_unknown_paths_get_the_404_envelope(api: PipedriveApi) -> None:
    assert_error(api.get("/v1/planets"), 404, "unknown method")


# -- seed and summary ------------------------------------------------------------------------------------------


def test_seeded_people_become_persons_notes_and_leads() -> None:
    people = generate_people(30, seed=9)
    sandbox = roomy_sandbox(config=SandboxConfig(contacts=30, seed=9))
    summary = sandbox.summary()
    assert summary["persons"] == 30 and summary["notes"] == 30
    assert summary["leads"] == sum(1 for p in people if p.is_lead) > 0
    assert summary["customPersonFields"] == 0

    api = PipedriveApi(sandbox)
    first = people[0]
    found = api.get("/api/v2/persons/search", term=first.email, fields="email", exact_match="true").json()
    person = found["data"]["items"][0]["item"]
    assert person["name"] == f"{first.first_name} {first.last_name}"
    assert person["phones"] == [first.phone]
    note = api.get("/v1/notes", person_id=person["id"]).json()["data"][0]
    assert first.social_profiles[0].username in note["content"]
    assert first.lead_source in note["content"] and note["content"].startswith("<p>")
    lead_owner = next(p for p in people if p.is_lead)
    lead_person = api.get("/api/v2/persons/search", term=lead_owner.email, fields="email", exact_match="true").json()[
        "data"
    ]["items"][0]["item"]
    leads = api.get("/v1/leads", person_id=lead_person["id"]).json()["data"]
    assert len(leads) == 1 and leads[0]["organization_id"] == lead_person["organization"]["id"]


def test_seeding_with_social_fields_fills_them() -> None:
    people = generate_people(3, seed=4)
    sandbox = roomy_sandbox(config=SandboxConfig(contacts=3, seed=4), social_fields=True)
    keys = {f.name: f.key for f in sandbox.person_fields if f.custom}
    person = PipedriveApi(sandbox).get("/api/v2/persons/1").json()["data"]
    assert person["custom_fields"][keys["social_followers"]] == sum(p.followers for p in people[0].social_profiles)
    assert person["custom_fields"][keys["lead_source_detail"]] == people[0].lead_source
    assert sandbox.summary()["customPersonFields"] == len(SOCIAL_PERSON_FIELDS)


def test_timestamps_are_rfc3339_in_utc(api: PipedriveApi) -> None:
    person = create_person(api, "Clocked")
    added = parse_v2_time(person["add_time"])
    assert added.tzinfo == UTC
    assert abs((datetime.now(UTC) - added).total_seconds()) < 60
