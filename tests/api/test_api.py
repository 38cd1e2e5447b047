"""The seed's eight endpoints of the local API against each in-process sandbox CRM: happy paths, the token,
refused fields named as the CLI names them, replays that change nothing, and every error status."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyring.errors
import pytest

from crm_desktop.api import app as api_app
from crm_desktop.api.app import MAX_BATCH, MAX_BODY_BYTES
from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.record_files import read_records
from crm_desktop.domain.models import Contact, LeadStatus
from crm_desktop.domain.outcomes import RecordObject
from tests.api.conftest import LocalApi, integration_body
from tests.support.memory_keyring import MemoryKeyring

ANN = {
    "email": "Ann.Lee@Example.com",
    "firstName": "Ann",
    "lastName": "Lee",
    "company": "Acme",
    "socialProfiles": [{"platform": "twitter", "username": "annlee", "followers": 1200}],
}
LEA = {
    "email": "lea@example.com",
    "firstName": "Lea",
    "lastName": "Park",
    "company": "Globex",
    "source": "twitter_dm",
    "socialContext": {"platform": "twitter", "conversationId": "c-1", "sentiment": "positive",
                      "engagementScore": 72},
}


def count(api: LocalApi, kind: str) -> int:
    """Records of a kind in the sandbox CRM (read from the CRM, not from the API's answer)."""
    names = {"contact": {"hubspot": "contacts", "salesforce": "Contact", "pipedrive": "persons"},
             "lead": {"hubspot": "leads", "salesforce": "Lead", "pipedrive": "leads"}}
    return int(api.sandbox.summary()[names[kind][api.provider]])


async def finished(api: LocalApi, run_id: int) -> dict[str, Any]:
    """The run's report once it is no longer running (asked the way a client would, every 50 ms)."""
    for _ in range(600):
        report = dict((await api.get(f"/api/crm/runs/{run_id}")).json())
        if report["status"] != "running":
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} still running after 30 s")


def test_a_contact_is_created_then_unchanged_then_updated_in_the_crm(api: LocalApi) -> None:
    async def scenario() -> None:
        first = await api.post("/api/crm/integrations/crm/contacts/sync", ANN)
        assert first.status_code == 200, first.text
        created = first.json()
        assert created["action"] == "created" and created["crmId"] and created["localId"] >= 1

        # A replay changes nothing, here or in the CRM; the integration's id works as well as its name.
        integration_id = api.workspace.integrations.get("crm").id
        again = await api.post(f"/api/crm/integrations/{integration_id}/contacts/sync", ANN)
        assert again.status_code == 200, again.text
        assert again.json() == {**created, "action": "unchanged"}
        assert count(api, "contact") == 1

        changed = await api.post("/api/crm/integrations/crm/contacts/sync", {**ANN, "firstName": "Annie"})
        assert changed.json() == {**created, "action": "updated"}

        # Read back live from the CRM, in the app's Contact shape.
        read = await api.get("/api/crm/integrations/crm/contacts", params={"email": "ANN.LEE@example.com"})
        assert read.status_code == 200, read.text
        contact = read.json()
        assert contact["crmId"] == created["crmId"]
        assert contact["email"] == "ann.lee@example.com"
        assert (contact["firstName"], contact["lastName"]) == ("Annie", "Lee")
        Contact.model_validate({k: v for k, v in contact.items() if k not in {"crmId", "modifiedAt"}})
        assert count(api, "contact") == 1

    asyncio.run(scenario())


def test_a_contact_read_from_the_crm_has_the_followers_the_crm_holds(api: LocalApi) -> None:
    """A network's followers are push-only in the default mapping; the live read still gives the CRM's count,
    where the CRM has a field for it, rather than 0 (Pipedrive keeps them in a note: nothing to read)."""
    async def scenario() -> None:
        made = await api.post("/api/crm/integrations/crm/contacts/sync", ANN)
        assert made.status_code == 200, made.text
        read = await api.get("/api/crm/integrations/crm/contacts", params={"email": "ann.lee@example.com"})
        assert read.status_code == 200, read.text
        followers = {p["username"]: p["followers"] for p in read.json()["socialProfiles"]}
        if api.provider == "pipedrive":
            assert followers.get("annlee", 0) == 0
        else:
            assert followers == {"annlee": 1200}

    asyncio.run(scenario())


def test_a_lead_is_pushed_with_its_social_context(api: LocalApi) -> None:
    async def scenario() -> None:
        first = await api.post("/api/crm/integrations/crm/leads/sync", LEA)
        assert first.status_code == 200, first.text
        assert first.json()["action"] == "created" and first.json()["crmId"]
        again = await api.post("/api/crm/integrations/crm/leads/sync", LEA)
        assert again.json()["action"] == "unchanged"
        assert count(api, "lead") == 1
        stored = api.workspace.leads.find("lea@example.com")
        assert stored is not None and stored.social_context is not None
        assert stored.social_context.engagement_score == 72

    asyncio.run(scenario())


def test_a_body_changes_only_what_it_names(api: LocalApi) -> None:
    # A webhook that knows only a lead's name and source, or a contact's Instagram profile, must not wipe what the
    # marketer set: the company, the status, the first name, the Twitter profile, a custom value.
    async def scenario() -> None:
        first = await api.post("/api/crm/integrations/crm/leads/sync", LEA)
        assert first.status_code == 200, first.text
        stored = api.workspace.leads.find("lea@example.com")
        assert stored is not None
        api.workspace.leads.save(stored.model_copy(update={"status": LeadStatus.QUALIFIED}))
        partial = await api.post("/api/crm/integrations/crm/leads/sync",
                                 {"email": "LEA@example.com", "lastName": "Park-Lee", "source": "twitter_dm"})
        assert partial.status_code == 200, partial.text
        lead = api.workspace.leads.find("lea@example.com")
        assert lead is not None
        assert (lead.first_name, lead.last_name, lead.company) == ("Lea", "Park-Lee", "Globex")
        assert lead.status is LeadStatus.QUALIFIED and lead.social_context is not None
        cleared = await api.post("/api/crm/integrations/crm/leads/sync", {"email": "lea@example.com", "company": None})
        assert cleared.status_code == 200, cleared.text
        lead = api.workspace.leads.find("lea@example.com")
        assert lead is not None and lead.company is None and lead.first_name == "Lea"

        made = await api.post("/api/crm/integrations/crm/contacts/sync", {**ANN, "customFields": {"tier": "gold"}})
        assert made.status_code == 200, made.text
        batch = await api.post("/api/crm/integrations/crm/contacts/batch-sync", [
            {"email": "ann.lee@example.com", "customFields": {"visits": 3},
             "socialProfiles": [{"platform": "instagram", "username": "ann.pics", "followers": 40}]},
        ])
        assert batch.status_code == 200, batch.text
        contact = api.workspace.contacts.find("ann.lee@example.com")
        assert contact is not None
        assert (contact.first_name, contact.last_name, contact.company) == ("Ann", "Lee", "Acme")
        assert contact.custom_fields == {"tier": "gold", "visits": 3}
        assert sorted((p.platform.value, p.username) for p in contact.social_profiles) == [
            ("instagram", "ann.pics"), ("twitter", "annlee")]
        read = await api.get("/api/crm/integrations/crm/contacts", params={"email": "ann.lee@example.com"})
        assert read.status_code == 200, read.text
        assert (read.json()["firstName"], read.json()["lastName"]) == ("Ann", "Lee")

    asyncio.run(scenario())


def test_a_lead_resent_with_part_of_its_social_context_keeps_the_rest(hubspot_api: LocalApi) -> None:
    """A webhook that sends only the sentiment of a lead's conversation must not wipe its conversation id and
    engagement score: the context is laid over the stored one key by key, as a leads file's is."""
    api = hubspot_api
    path = "/api/crm/integrations/crm/leads/sync"

    async def scenario() -> None:
        await api.add_integration()
        assert (await api.post(path, LEA)).status_code == 200
        mood = await api.post(path, {"email": "lea@example.com",
                                     "socialContext": {"platform": "twitter", "sentiment": "negative"}})
        assert mood.status_code == 200, mood.text
        lead = api.workspace.leads.find("lea@example.com")
        assert lead is not None and lead.social_context is not None
        context = lead.social_context
        assert (context.conversation_id, context.sentiment, context.engagement_score) == ("c-1", "negative", 72)
        cleared = await api.post(path, {"email": "lea@example.com",
                                        "socialContext": {"platform": "twitter", "conversationId": None}})
        assert cleared.status_code == 200, cleared.text
        lead = api.workspace.leads.find("lea@example.com")
        assert lead is not None and lead.social_context is not None
        assert (lead.social_context.conversation_id, lead.social_context.engagement_score) == (None, 72)
        moved = await api.post(path, {"email": "lea@example.com",
                                      "socialContext": {"platform": "instagram", "conversationId": "ig-4"}})
        assert moved.status_code == 200, moved.text
        lead = api.workspace.leads.find("lea@example.com")
        assert lead is not None and lead.social_context is not None
        context = lead.social_context
        assert (context.platform, context.conversation_id, context.sentiment, context.engagement_score) == (
            "instagram", "ig-4", "negative", 72)

    asyncio.run(scenario())


def test_get_contact_answers_404_when_the_crm_has_none(api: LocalApi) -> None:
    async def scenario() -> None:
        missing = await api.get("/api/crm/integrations/crm/contacts", params={"email": "nobody@example.com"})
        assert missing.status_code == 404
        assert "nobody@example.com" in missing.json()["detail"]
        bad = await api.get("/api/crm/integrations/crm/contacts", params={"email": "not-an-email"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"

    asyncio.run(scenario())


def test_batch_sync_answers_each_row_in_order_and_a_replay_changes_nothing(api: LocalApi) -> None:
    rows: list[Any] = [
        {"email": "a1@example.com", "firstName": "A"},
        {"email": "not-an-email", "firstName": "B"},
        {"email": "a3@example.com", "socialProfiles": [{"platform": "twitter", "username": "x", "followers": -1}]},
        {"email": "A1@example.com"},
        "just a string",
        *({"email": f"bulk{i}@example.com", "lastName": f"N{i}"} for i in range(25)),
    ]

    async def scenario() -> None:
        answer = await api.post("/api/crm/integrations/crm/contacts/batch-sync", rows)
        assert answer.status_code == 200, answer.text
        report = answer.json()
        results = report["results"]
        assert [r["index"] for r in results] == list(range(len(rows)))
        assert results[0]["action"] == "created" and results[0]["crmId"]
        assert results[1]["action"] is None and results[1]["error"]["field"] == "email"
        assert results[2]["error"] == {"field": "socialProfiles.0.followers", "reason": "must be 0 or more"}
        assert results[3]["error"]["field"] == "email" and "row 0" in results[3]["error"]["reason"]
        assert results[4]["error"]["field"] == "(record)"
        assert all(r["action"] == "created" for r in results[5:])
        assert report["summary"] == {"total": 30, "created": 26, "updated": 0, "unchanged": 0, "failed": 0,
                                     "invalid": 4, "apiCalls": report["summary"]["apiCalls"], "skipped": 0}
        assert report["runId"] and count(api, "contact") == 26

        replay = await api.post("/api/crm/integrations/crm/contacts/batch-sync", rows)
        assert replay.json()["summary"]["created"] == 0 and replay.json()["summary"]["unchanged"] == 26
        assert count(api, "contact") == 26

    asyncio.run(scenario())


def test_a_batch_and_the_store_s_routes_are_served_off_the_event_loop(
    hubspot_api: LocalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API shares the window's event loop: a batch of 10,000 rows took seconds of it to validate, save, read
    back and answer, and the window froze meanwhile. Each of those steps must run on another thread, and so must
    the routes that only read or write the store or the keyring (a run's report, attribution, a new integration)."""
    api = hubspot_api
    threads: dict[str, set[int]] = {}

    def on_record(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            threads.setdefault(name, set()).add(threading.get_ident())
            return call(*args, **kwargs)
        return recorded

    monkeypatch.setattr(api_app, "validate_rows", on_record("validate", api_app.validate_rows))
    monkeypatch.setattr(api_app, "_batch_answer", on_record("answer", api_app._batch_answer))
    contacts = type(api.workspace.contacts)
    monkeypatch.setattr(contacts, "find_many", on_record("find", contacts.find_many))
    monkeypatch.setattr(contacts, "save_many", on_record("save", contacts.save_many))
    monkeypatch.setattr(type(api.workspace.sync), "run", on_record("read back", type(api.workspace.sync).run))
    social = type(api.workspace.social)
    monkeypatch.setattr(social, "attribution_report", on_record("attribution", social.attribution_report))
    integrations = type(api.workspace.integrations)
    monkeypatch.setattr(integrations, "add", on_record("add integration", integrations.add))
    rows = [{"email": f"bulk{i}@example.com", "lastName": f"N{i}"} for i in range(30)]

    async def scenario() -> int:
        await api.add_integration()
        answer = await api.post("/api/crm/integrations/crm/contacts/batch-sync", rows)
        assert answer.status_code == 200, answer.text
        assert answer.json()["summary"]["created"] == 30
        # A script polling the run's report (one row per record), and reading the attribution report.
        report = await api.get(f"/api/crm/runs/{answer.json()['runId']}")
        assert report.status_code == 200 and len(report.json()["records"]) == 30
        assert (await api.get("/api/attribution/report")).status_code == 200
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert set(threads) == {"validate", "find", "save", "read back", "answer", "attribution", "add integration"}
    assert all(loop_thread not in used for used in threads.values()), threads


def test_sync_from_crm_runs_in_the_background_and_is_reported(api: LocalApi) -> None:
    async def scenario() -> None:
        api.workspace.contacts.save(Contact(email="local@example.com", first_name="Lo"))
        started = await api.post("/api/crm/integrations/crm/sync-from-crm")
        assert started.status_code == 202, started.text
        run_id = started.json()["runId"]
        assert started.headers["location"] == f"/api/crm/runs/{run_id}"
        report = await finished(api, run_id)
        assert report["status"] == "succeeded", report
        assert report["integration"] == "crm" and report["direction"] == "both"
        assert report["trigger"] == "api", "not “manual”: no one pressed a button in the app"
        assert report["counts"]["created"] >= 1
        assert any(r["record"] == "local@example.com" and r["outcome"] == "created" for r in report["records"])
        assert (await api.get("/api/crm/runs/999999")).status_code == 404

    asyncio.run(scenario())


def test_a_run_of_an_edit_by_hand_is_reported_as_one(api: LocalApi) -> None:
    """Not as a run of a removed integration, nor as an import: it was People's Edit… (or `contacts set`)."""
    saved = api.workspace.contacts.save(Contact(email="ed@example.com", first_name="Ed"))
    assert saved.id is not None
    run_id = api.workspace.sync.imports.edit(RecordObject.CONTACT, saved.id, {"firstName": "Edd"}).run_id

    async def scenario() -> None:
        report = (await api.get(f"/api/crm/runs/{run_id}")).json()
        assert (report["integration"], report["trigger"], report["direction"]) == ("(edit by hand)", "edit", "edit")

    asyncio.run(scenario())


def test_a_second_sync_of_a_running_integration_is_refused_with_409(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        api.workspace.contacts.save_many([Contact(email=f"p{i}@example.com") for i in range(300)])
        api.sandbox.apply_config({"latency_ms": 30})
        started = await api.post("/api/crm/integrations/crm/sync-from-crm")
        assert started.status_code == 202
        second = await api.post("/api/crm/integrations/crm/sync-from-crm")
        assert second.status_code == 409 and "already running" in second.json()["detail"]
        push = await api.post("/api/crm/integrations/crm/contacts/sync", ANN)
        assert push.status_code == 409
        assert api.workspace.contacts.find("ann.lee@example.com") is None, "nothing saved when refused"
        assert (await finished(api, started.json()["runId"]))["status"] == "succeeded"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/crm/integrations", {"provider": "hubspot", "name": "x", "credentials": {}}),
        ("POST", "/api/crm/integrations/crm/contacts/sync", ANN),
        ("POST", "/api/crm/integrations/crm/leads/sync", LEA),
        ("GET", "/api/crm/integrations/crm/contacts?email=ann@example.com", None),
        ("POST", "/api/crm/integrations/crm/contacts/batch-sync", [ANN]),
        ("POST", "/api/crm/integrations/crm/sync-from-crm", None),
        ("GET", "/api/crm/runs/1", None),
    ],
)
def test_every_endpoint_refuses_a_missing_or_wrong_token(
    hubspot_api: LocalApi, method: str, path: str, body: Any
) -> None:
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": api.token},
                        {"Authorization": f"Basic {api.token}"}):
            answer = await api.client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, (headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
        assert api.workspace.contacts.count() == 0

    asyncio.run(scenario())


def test_a_rotated_token_locks_the_old_one_out_at_once(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        assert (await api.get("/api/crm/runs/1")).status_code == 404
        old = api.token
        api.token = ApiTokens(api.workspace.vault).rotate()
        assert api.token != old and len(api.token) >= 43
        assert (await api.client.get("/api/crm/runs/1", headers={"Authorization": f"Bearer {old}"})).status_code \
            == 401
        assert (await api.get("/api/crm/runs/1")).status_code == 404

    asyncio.run(scenario())


def test_refused_fields_are_named_as_the_cli_import_names_them(hubspot_api: LocalApi, tmp_path: Path) -> None:
    api = hubspot_api
    row = {"email": "ann@example.com", "phone": "12", "socialProfiles": [{"platform": "myspace", "username": "x"}],
           "nickname": "x"}
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    # A refused line of `contacts import` carries each of its field problems.
    expected = [{"field": f.field, "reason": f.reason}
                for p in read_records(path, Contact).problems for f in getattr(p, "problems", ()) or [p]]

    async def scenario() -> None:
        await api.add_integration()
        answer = await api.post("/api/crm/integrations/crm/contacts/sync", row)
        assert answer.status_code == 422
        assert answer.json()["errors"] == expected
        assert [e["field"] for e in expected] == ["phone", "socialProfiles.0.platform", "nickname"]
        bad_email = await api.post("/api/crm/integrations/crm/contacts/sync", {"email": "bad@"})
        assert bad_email.status_code == 422 and bad_email.json()["errors"][0]["field"] == "email"
        lead = await api.post("/api/crm/integrations/crm/leads/sync",
                              {"email": "x@example.com", "socialContext": {"platform": "twitter",
                                                                             "sentiment": "angry"}})
        assert lead.status_code == 422 and lead.json()["errors"][0]["field"] == "socialContext.sentiment"
        assert api.workspace.contacts.count() == 0 and api.workspace.leads.count() == 0

    asyncio.run(scenario())


def test_a_nested_custom_value_is_refused_in_the_words_of_contacts_import(hubspot_api: LocalApi,
                                                                          tmp_path: Path) -> None:
    api = hubspot_api
    reason = "must be text, a number, true/false or a date; not an object"
    row = {"email": "ann@example.com", "customFields": {"x": {"a": 1}}}
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert [(p.field, p.reason) for p in read_records(path, Contact).problems] == [("custom.x", reason)]

    async def scenario() -> None:
        await api.add_integration()
        for route in ("contacts/sync", "leads/sync"):
            answer = await api.post(f"/api/crm/integrations/crm/{route}", row)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"] == [{"field": "customFields.x", "reason": reason}], answer.text
            assert answer.json()["detail"].endswith(f"ann@example.com is invalid: customFields.x: {reason}")
        batch = await api.post("/api/crm/integrations/crm/contacts/batch-sync", [row])
        assert batch.json()["results"][0]["errors"] == [{"field": "customFields.x", "reason": reason}], batch.text
        assert api.workspace.contacts.count() == 0 and api.workspace.leads.count() == 0

    asyncio.run(scenario())


@pytest.mark.parametrize(("value", "kind"), [(["tier", "gold"], "a list"), ("tier=gold", "text"), (3, "a number")])
def test_custom_fields_of_the_wrong_type_are_refused_in_one_plain_sentence(hubspot_api: LocalApi, value: Any,
                                                                           kind: str) -> None:
    """Pydantic said "customFields: must be a valid dictionary", Python's word for what the sender wrote as JSON."""
    api = hubspot_api
    reason = f'must be an object of custom field names and their values, such as {{"tier": "gold"}}; not {kind}'

    async def scenario() -> None:
        await api.add_integration()
        for route in ("contacts/sync", "leads/sync"):
            answer = await api.post(f"/api/crm/integrations/crm/{route}", {**ANN, "customFields": value})
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"] == [{"field": "customFields", "reason": reason}], answer.text
            assert answer.json()["detail"].endswith(f"is invalid: customFields: {reason}"), answer.text
        batch = await api.post("/api/crm/integrations/crm/contacts/batch-sync", [{**ANN, "customFields": value}])
        assert batch.json()["results"][0]["errors"] == [{"field": "customFields", "reason": reason}], batch.text
        assert api.workspace.contacts.count() == 0 and api.workspace.leads.count() == 0

    asyncio.run(scenario())


def test_a_network_named_twice_is_refused_as_contacts_import_refuses_it(hubspot_api: LocalApi,
                                                                        tmp_path: Path) -> None:
    # The app holds one profile per network: the API used to keep the first twitter profile and drop the other
    # without a word (the enrich the last one), where the same row in a file is refused.
    api = hubspot_api
    twice = [{"platform": "twitter", "username": "ann_one", "followers": 10},
             {"platform": "twitter", "username": "ann_two", "followers": 20}]
    row = {"email": "ann@example.com", "socialProfiles": twice}
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    expected = [{"field": f.field, "reason": f.reason}
                for p in read_records(path, Contact).problems for f in getattr(p, "problems", ()) or [p]]
    assert expected == [{"field": "socialProfiles", "reason": "2 twitter profiles (ann_one, ann_two); a person "
                                                              "has one profile per network: keep one"}]

    async def scenario() -> None:
        await api.add_integration()
        one = await api.post("/api/crm/integrations/crm/contacts/sync", row)
        assert one.status_code == 422 and one.json()["errors"] == expected, one.text
        lead = await api.post("/api/crm/integrations/crm/leads/sync", row)
        assert lead.status_code == 422 and lead.json()["errors"] == expected, lead.text
        batch = await api.post("/api/crm/integrations/crm/contacts/batch-sync", [row, {"email": "bo@example.com"}])
        assert batch.status_code == 200, batch.text
        rows = batch.json()["results"]
        assert rows[0]["action"] is None and rows[0]["errors"] == expected, rows
        assert rows[1]["action"] == "created" and batch.json()["summary"]["invalid"] == 1
        assert api.workspace.contacts.count() == 1 and api.workspace.leads.count() == 0
        enrich = await api.post("/api/crm/integrations/crm/contacts/enrich",
                                {"email": "bo@example.com", "socialProfiles": twice})
        assert enrich.status_code == 422 and enrich.json()["errors"] == expected, enrich.text
        assert (found := api.workspace.contacts.find("bo@example.com")) is not None and found.social_profiles == []

    asyncio.run(scenario())


def test_bad_bodies_get_400_413_and_422_never_500(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        path = "/api/crm/integrations/crm/contacts/sync"
        headers = {**api.auth, "Content-Type": "application/json"}
        malformed = await api.client.post(path, content=b'{"email": ', headers=headers)
        assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["detail"]
        empty = await api.client.post(path, content=b"", headers=headers)
        assert empty.status_code == 422
        not_object = await api.post(path, [1, 2])
        assert not_object.status_code == 422
        big = b'{"email": "a@example.com", "company": "' + b"x" * MAX_BODY_BYTES + b'"}'
        too_large = await api.client.post(path, content=big, headers=headers)
        assert too_large.status_code == 413
        assert too_large.json() == {"detail": "the body is over 5 MB", "errors": []}, too_large.text

        async def chunks() -> Any:
            for _ in range(6):
                yield b" " * (1024 * 1024)

        streamed = await api.client.post(path, content=chunks(), headers=headers)
        assert streamed.status_code == 413 and streamed.json()["detail"] == "the body is over 5 MB", streamed.text
        too_many = await api.post("/api/crm/integrations/crm/contacts/batch-sync",
                                  [{"email": "a@example.com"}] * (MAX_BATCH + 1))
        assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "(body)"
        unknown = await api.post("/api/crm/integrations/nope/contacts/sync", ANN)
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        assert api.workspace.contacts.count() == 0

    asyncio.run(scenario())


def test_a_refused_query_or_path_value_is_explained_in_plain_words_in_detail_too(hubspot_api: LocalApi) -> None:
    # ``errors`` had the plain reason, while ``detail``, what a script prints, kept Pydantic's "Input should be".
    api = hubspot_api

    async def scenario() -> None:
        run = await api.get("/api/crm/runs/abc")
        assert run.status_code == 422
        assert run.json() == {"detail": "run_id: must be a whole number",
                              "errors": [{"field": "run_id", "reason": "must be a whole number"}]}
        report = await api.get("/api/attribution/report", params={"model": "bogus"})
        assert report.status_code == 422
        [error] = report.json()["errors"]
        assert report.json()["detail"] == f"model: {error['reason']}" and "Input should" not in report.text

    asyncio.run(scenario())


def test_create_integration_keeps_credentials_in_the_keyring_only(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        body = integration_body("hubspot", api.sandbox, "hubspot-prod")
        created = await api.post("/api/crm/integrations", body)
        assert created.status_code == 201, created.text
        answer = created.json()
        assert answer["name"] == "hubspot-prod" and answer["provider"] == "hubspot" and answer["hasCredentials"]
        secret = body["credentials"]["token"]
        assert secret not in created.text and "credentials" not in answer
        stored = api.workspace.integrations.get("hubspot-prod")
        assert api.workspace.integrations.credentials(stored) == {"token": secret}

        duplicate = await api.post("/api/crm/integrations", body)
        assert duplicate.status_code == 409
        bad = await api.post("/api/crm/integrations", {**body, "name": "other", "credentials": {"token": "x"}})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "credentials.token"
        assert "x" not in [e["reason"] for e in bad.json()["errors"]]
        wrong = await api.post("/api/crm/integrations", {**body, "name": "o2", "provider": "zoho"})
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "provider"
        assert [i.name for i in api.workspace.integrations.list()] == ["hubspot-prod"]

        salesforce = await api.post("/api/crm/integrations", {
            "provider": "salesforce", "name": "sf", "domain": "https://acme.my.salesforce.com",
            "credentials": {"clientId": "key", "accessToken": "00Dxx!token-value", "refreshToken": "refresh-tok",
                            "instanceUrl": "https://acme.my.salesforce.com"}})
        assert salesforce.status_code == 201, salesforce.text
        assert salesforce.json()["baseUrl"] == "https://acme.my.salesforce.com"

    asyncio.run(scenario())


@pytest.mark.parametrize(("name", "reason"), [
    ("EU/prod", "must not contain / or \\"),
    ("EU\\prod", "must not contain / or \\"),
    ("EU\nprod", "must not contain a line break, tab or other control character"),
])
def test_an_integration_name_is_refused_in_plain_words(hubspot_api: LocalApi, name: str, reason: str) -> None:
    """A name goes in the path of every other call: the reason says what to change, not a regular expression."""
    api = hubspot_api

    async def scenario() -> None:
        answer = await api.post("/api/crm/integrations", {**integration_body("hubspot", api.sandbox), "name": name})
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"] == [{"field": "name", "reason": reason}]
        assert api.workspace.integrations.list() == []

    asyncio.run(scenario())


def test_a_crm_refusing_the_credentials_is_a_502_saying_reconnect(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        body = integration_body("hubspot", api.sandbox)
        body["credentials"] = {"token": "pat-na1-00000000-0000-0000-0000-000000000000"}
        assert (await api.post("/api/crm/integrations", body)).status_code == 201
        answer = await api.post("/api/crm/integrations/crm/contacts/sync", ANN)
        assert answer.status_code == 502
        assert "reconnect the integration" in answer.json()["detail"]
        read = await api.get("/api/crm/integrations/crm/contacts", params={"email": "ann@example.com"})
        assert read.status_code == 502
        # The contact is kept locally and goes with the next sync once reconnected.
        assert api.workspace.contacts.find("ann.lee@example.com") is not None

    asyncio.run(scenario())


def test_concurrent_pushes_to_one_integration_take_turns(api: LocalApi) -> None:
    async def scenario() -> None:
        bodies = [{"email": f"c{i}@example.com", "firstName": f"C{i}"} for i in range(6)]
        answers = await asyncio.gather(*(api.post("/api/crm/integrations/crm/contacts/sync", b) for b in bodies))
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert {a.json()["action"] for a in answers} == {"created"}
        assert len({a.json()["crmId"] for a in answers}) == 6 and count(api, "contact") == 6

    asyncio.run(scenario())


def test_digits_that_are_not_ascii_name_nothing(hubspot_api: LocalApi) -> None:
    """'²' passes str.isdigit but is no id (found by the generated requests)."""
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        batch = await api.post("/api/crm/integrations/%C2%B2/contacts/batch-sync", [])
        assert batch.status_code == 404
        lead = await api.get("/api/crm/integrations/crm/leads/%C2%B2/attribution")
        assert lead.status_code == 404
        enrich = await api.post("/api/crm/integrations/crm/contacts/enrich", {"contactId": "²"})
        assert enrich.status_code == 404

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/social/conversations", {"conversationId": "0", "platform": "reddit",
                                       "startedAt": "0001-01-01T00:00:00+00:01",
                                       "participant": {"email": "a@example.com"}}, "startedAt"),
        ("/api/crm/integrations/crm/leads/attribution",
         {"leadId": "1", "touchpoints": [{"timestamp": "0001-01-01T00:00:00+01:00", "platform": "twitter",
                                          "type": "click"}]}, "touchpoints.0.timestamp"),
    ],
)
def test_a_time_before_the_first_instant_is_a_422(hubspot_api: LocalApi, path: str, body: Any, field: str) -> None:
    """An offset that takes the year 1 before its start once in UTC (found by the generated requests)."""
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        answer = await api.post(path, body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == field

    asyncio.run(scenario())


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/crm/integrations/crm/contacts/sync", ANN),
        ("/api/crm/integrations/crm/contacts/batch-sync", [ANN]),
        ("/api/social/engagements", {"platform": "twitter", "type": "like", "timestamp": "2026-11-20T09:00:00Z",
                                     "user": {"username": "annlee"}}),
    ],
)
def test_a_json_body_sent_as_another_content_type_is_a_415_saying_so(
    hubspot_api: LocalApi, content_type: str | None, path: str, body: Any
) -> None:
    """``curl -d`` sends a form's Content-Type: the answer names the header, not a 'dictionary' the body is not."""
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        headers = {**api.auth, **({"Content-Type": content_type} if content_type else {})}
        answer = await api.client.post(path, content=json.dumps(body).encode(), headers=headers)
        assert answer.status_code == 415, answer.text
        problem = answer.json()
        assert "Content-Type: application/json" in problem["detail"]
        assert problem["errors"] == [{"field": "Content-Type", "reason": "must be application/json"}]
        assert api.workspace.contacts.count() == 0
        assert api.workspace.social.store.counts()["touchpoints"] == 0

    asyncio.run(scenario())


def test_a_locked_keyring_is_a_503_saying_so_not_a_500(
    hubspot_api: LocalApi, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token is read from the keyring at every request: a keyring locked meanwhile is the documented 503."""
    api = hubspot_api

    def locked(service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("locked")

    async def scenario() -> None:
        with monkeypatch.context() as patch:
            patch.setattr(memory_keyring, "get_password", locked)
            answer = await api.get("/api/crm/runs/1")
        assert answer.status_code == 503, answer.text
        assert "keyring is locked" in answer.json()["detail"]
        assert (await api.get("/api/crm/runs/1")).status_code == 404

    asyncio.run(scenario())


def test_the_openapi_document_declares_what_the_routes_answer(hubspot_api: LocalApi) -> None:
    """A client generated from the document knows every answer it can get: 503 on every route (a rate-limiting CRM,
    a locked keyring, a busy store), 415 where a body is sent, and a batch's rows in the Contact shape."""
    api = hubspot_api

    async def scenario() -> None:
        document = (await api.client.get("/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                answers = set(operation["responses"])
                assert "503" in answers, (method, path)
                assert ("415" in answers) == ("requestBody" in operation), (method, path, answers)
        batch = document["paths"]["/api/crm/integrations/{integration}/contacts/batch-sync"]["post"]
        schema = batch["requestBody"]["content"]["application/json"]["schema"]
        assert schema["items"] == {"$ref": "#/components/schemas/Contact"}, schema

    asyncio.run(scenario())
