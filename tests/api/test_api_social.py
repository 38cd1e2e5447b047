"""The three social event endpoints (idempotent: a re-delivered event changes nothing) and attribution."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from typing import Any

import pytest

from crm_desktop.domain.models import Lead
from crm_desktop.domain.social import PersonRef
from crm_desktop.store.social_store import Person
from tests.api.conftest import LocalApi

CONVERSATION = {
    "conversationId": "tw-c-1",
    "platform": "twitter",
    "startedAt": "2026-11-20T10:00:00Z",
    "campaign": "black-friday",
    "participant": {"email": "Lea@Example.com", "firstName": "Lea", "username": "@leapark", "followers": 800},
}
MESSAGE = {"conversationId": "tw-c-1", "messageId": "m-1", "direction": "inbound", "sentAt": "2026-11-20T10:01:00Z",
           "text": "Do you ship to Lisbon?", "sentiment": "positive"}


def engagement(kind: str, at: str, campaign: str, user: dict[str, str]) -> dict[str, object]:
    return {"platform": "twitter", "type": kind, "timestamp": at, "postId": f"p-{kind}", "campaign": campaign,
            "user": user}


def test_events_are_recorded_once_however_often_they_are_delivered(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        first = await api.post("/api/social/conversations", CONVERSATION)
        assert first.status_code == 201, first.text
        assert first.json()["action"] == "created"
        assert first.json()["person"]["email"] == "lea@example.com"
        replay = await api.post("/api/social/conversations", CONVERSATION)
        assert replay.status_code == 200 and replay.json()["action"] == "unchanged"

        message = await api.post("/api/social/messages", MESSAGE)
        assert message.status_code == 201 and message.json()["action"] == "created"
        assert (await api.post("/api/social/messages", MESSAGE)).json()["action"] == "unchanged"

        # A username first, its email later: the earlier touchpoint is joined to the email.
        anonymous = engagement("like", "2026-11-21T09:00:00Z", "black-friday", {"username": "maxmoe"})
        assert (await api.post("/api/social/engagements", anonymous)).json()["person"] == {
            "platform": "twitter", "username": "maxmoe"}
        named = engagement("click", "2026-11-22T09:00:00Z", "black-friday",
                           {"username": "maxmoe", "email": "max@example.com"})
        joined = await api.post("/api/social/engagements", named)
        assert joined.status_code == 201 and joined.json()["linkedTouchpoints"] == 1
        assert (await api.post("/api/social/engagements", named)).json()["action"] == "unchanged"

        conversation = api.workspace.social.store.conversation("twitter", "tw-c-1")
        assert conversation is not None
        assert (conversation.messages_in, conversation.messages_out) == (1, 0)
        assert api.workspace.contacts.find("lea@example.com") is not None

    asyncio.run(scenario())


def test_event_bodies_are_refused_naming_each_field(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        bad = await api.post("/api/social/conversations", {**CONVERSATION, "startedAt": "2026-11-20T10:00:00",
                                                            "participant": {"firstName": "Nobody"}})
        assert bad.status_code == 422
        fields = {e["field"]: e["reason"] for e in bad.json()["errors"]}
        assert {"startedAt", "participant"} <= set(fields), bad.json()
        # A webhook must send a zone: only a file's zoneless times are read in the desktop's local zone.
        assert "needs a time zone" in fields["startedAt"]
        wrong = await api.post("/api/social/messages", {**MESSAGE, "direction": "sideways"})
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "direction"
        unknown = await api.post("/api/social/engagements", {"platform": "twitter", "type": "wink",
                                                             "timestamp": "2026-11-21T09:00:00Z",
                                                             "user": {"username": "x"}})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "type"
        nobody = await api.client.post("/api/social/messages", json=MESSAGE)
        assert nobody.status_code == 401
        assert api.workspace.social.store.conversation("twitter", "tw-c-1") is None

    asyncio.run(scenario())


def test_lead_attribution_by_crm_id_or_local_id_and_the_report(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        pushed = await api.post("/api/crm/integrations/crm/leads/sync",
                                Lead(email="lea@example.com", last_name="Park").to_wire())
        crm_id, local_id = pushed.json()["crmId"], pushed.json()["localId"]
        user = {"email": "lea@example.com"}
        for kind, at, campaign in (("post_view", "2026-11-20T09:00:00Z", "launch"),
                                   ("click", "2026-11-21T09:00:00Z", "launch"),
                                   ("comment", "2026-11-22T09:00:00Z", "black-friday")):
            assert (await api.post("/api/social/engagements", engagement(kind, at, campaign, user))).status_code \
                == 201

        by_crm = await api.get(f"/api/crm/integrations/crm/leads/{crm_id}/attribution",
                               params={"model": "position_based"})
        assert by_crm.status_code == 200, by_crm.text
        body = by_crm.json()
        assert body["leadId"] == local_id and body["model"] == "position_based"
        assert [round(t["credit"], 9) for t in body["touchpoints"]] == [0.4, 0.2, 0.4]
        assert [t["type"] for t in body["touchpoints"]] == ["post_view", "click", "comment"]
        by_local = await api.get(f"/api/crm/integrations/crm/leads/{local_id}/attribution",
                                 params={"model": "linear"})
        assert abs(sum(t["credit"] for t in by_local.json()["touchpoints"]) - 1) < 1e-9
        missing = await api.get("/api/crm/integrations/crm/leads/nobody@example.com/attribution")
        assert missing.status_code == 404
        bad_model = await api.get(f"/api/crm/integrations/crm/leads/{local_id}/attribution",
                                  params={"model": "last_click"})
        assert bad_model.status_code == 422 and bad_model.json()["errors"][0]["field"] == "model"

        report = await api.get("/api/attribution/report", params={"model": "linear", "since": "2026-11-01"})
        assert report.status_code == 200, report.text
        campaigns = {row["name"]: row for row in report.json()["byCampaign"]}
        assert campaigns["launch"]["touchpoints"] == 2 and campaigns["black-friday"]["touchpoints"] == 1
        ranged = await api.get("/api/attribution/report", params={"since": "2026-11-21", "until": "2026-11-22"})
        assert ranged.status_code == 200, ranged.text
        assert ranged.json()["until"] == "2026-11-22T00:00:00Z"
        assert [(row["name"], row["touchpoints"]) for row in ranged.json()["byCampaign"]] == [("launch", 1)]
        backwards = await api.get("/api/attribution/report", params={"since": "2026-11-22", "until": "2026-11-21"})
        assert backwards.status_code == 422, backwards.text
        assert backwards.json()["errors"] == [{"field": "until", "reason": "must be after since"}]
        for beyond in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            out_of_range = await api.get("/api/attribution/report", params={"since": beyond})
            assert out_of_range.status_code == 422, out_of_range.text
            assert out_of_range.json()["errors"][0]["field"] == "since"
            assert "out of range" in out_of_range.json()["errors"][0]["reason"], out_of_range.text

    asyncio.run(scenario())


def newest_note(api: LocalApi) -> str:
    """The text of the note the sandbox CRM received last."""
    sandbox: Any = api.sandbox
    if api.provider == "salesforce":
        return str(list(sandbox.records["Note"].values())[-1]["Body"])
    if api.provider == "hubspot":
        return str(list(sandbox._records["notes"].values())[-1].properties["hs_note_body"])
    return str(max(sandbox.notes.values(), key=lambda note: note.id).content)


def test_enrich_writes_profiles_and_the_history_note_to_the_crm_record(api: LocalApi) -> None:
    async def scenario() -> None:
        pushed = await api.post("/api/crm/integrations/crm/contacts/sync",
                                {"email": "lea@example.com", "firstName": "Lea"})
        crm_id = pushed.json()["crmId"]
        assert (await api.post("/api/social/conversations", CONVERSATION)).status_code == 201
        notes_before = api.sandbox.summary()
        enrich = {"contactId": crm_id, "includeHistory": True,
                  "socialProfiles": [{"platform": "twitter", "username": "leapark", "followers": 800,
                                      "url": "https://twitter.com/leapark"}]}
        answer = await api.post("/api/crm/integrations/crm/contacts/enrich", enrich)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["crmId"] == crm_id
        if api.provider == "pipedrive":
            # No default field carries social data in Pipedrive: the person's social note does, written over.
            assert body["action"] == "updated" and body["written"] == {}, body
        else:
            assert body["action"] == "updated" and body["written"], body
        assert body["engagementScore"] is not None and body["historyNoteId"]
        after = api.sandbox.summary()
        timeline = {"hubspot": "notes", "salesforce": "Note", "pipedrive": "notes"}[api.provider]
        # The history note asked for; on Pipedrive also the social note with the new profile.
        added = 2 if api.provider == "pipedrive" else 1
        assert after[timeline] == notes_before[timeline] + added, (notes_before, after)
        # The history note holds the engagement summary: the conversation and the sentiment so far.
        assert "Conversations: 1 (Twitter/X 1)" in newest_note(api)
        assert "Sentiment trend: no sentiment yet" in newest_note(api)
        # The network as the app spells it, and one interaction said as one.
        assert "Twitter/X: @leapark, 800 followers" in newest_note(api)
        assert "from 1 interaction and 800 followers" in newest_note(api)

        if api.provider != "pipedrive":
            read = await api.get("/api/crm/integrations/crm/contacts", params={"email": "lea@example.com"})
            profiles = {p["platform"]: p for p in read.json()["socialProfiles"]}
            assert profiles["twitter"]["username"] == "leapark"

        again = await api.post("/api/crm/integrations/crm/contacts/enrich", {**enrich, "includeHistory": False})
        assert again.json()["action"] == "unchanged" and again.json()["written"] == {}
        assert again.json()["historyNoteId"] is None and api.sandbox.summary()[timeline] == after[timeline]
        if api.provider == "pipedrive":
            more = await api.post("/api/crm/integrations/crm/contacts/enrich", {
                "email": "lea@example.com", "socialProfiles": [{"platform": "instagram", "username": "lea.ig"}]})
            # A new profile goes in the social note where no field carries it, written over in place (one note
            # per person, always current); no history was asked for.
            assert more.json()["action"] == "updated" and more.json()["historyNoteId"] is None, more.json()
            assert api.sandbox.summary()[timeline] == after[timeline]
            social = [n.content for n in api.sandbox.notes.values() if "Social data from CRM Desktop" in n.content]
            assert len(social) == 1 and "@lea.ig" in social[0]
        missing = await api.post("/api/crm/integrations/crm/contacts/enrich", {"email": "nobody@example.com"})
        assert missing.status_code == 404
        neither = await api.post("/api/crm/integrations/crm/contacts/enrich", {"includeHistory": True})
        assert neither.status_code == 422

    asyncio.run(scenario())


def test_enrich_scores_the_profiles_it_writes(hubspot_api: LocalApi) -> None:
    # The score was read before the new profiles were saved: the answer and the history note said "0 followers"
    # beside "Twitter/X: @leapark, 800 followers": the score left out the reach of the followers just sent.
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        await api.post("/api/crm/integrations/crm/contacts/sync", {"email": "lea@example.com", "firstName": "Lea"})
        answer = await api.post("/api/crm/integrations/crm/contacts/enrich", {
            "email": "lea@example.com", "includeHistory": True,
            "socialProfiles": [{"platform": "twitter", "username": "leapark", "followers": 800}]})
        assert answer.status_code == 200, answer.text
        note = newest_note(api)
        assert "Twitter/X: @leapark, 800 followers" in note
        assert "from 0 interactions and 800 followers" in note, note

    asyncio.run(scenario())


def test_a_local_id_as_the_api_answers_it_names_the_contact_or_lead(hubspot_api: LocalApi) -> None:
    # localId comes back as a JSON number; sent back as contactId or leadId it was refused: "must be a valid
    # string", though the reference names the local id as one way to say which record.
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        contact = (await api.post("/api/crm/integrations/crm/contacts/sync", {"email": "lea@example.com"})).json()
        enrich = await api.post("/api/crm/integrations/crm/contacts/enrich", {
            "contactId": contact["localId"], "socialProfiles": [{"platform": "instagram", "username": "lea.ig"}]})
        assert enrich.status_code == 200, enrich.text
        assert enrich.json()["localId"] == contact["localId"] and enrich.json()["crmId"] == contact["crmId"]
        lead = (await api.post("/api/crm/integrations/crm/leads/sync",
                               {"email": "lee@example.com", "lastName": "Park"})).json()
        touch = {"timestamp": "2026-11-20T09:00:00Z", "platform": "twitter", "type": "post_view"}
        recorded = await api.post("/api/crm/integrations/crm/leads/attribution",
                                  {"leadId": lead["localId"], "touchpoints": [touch]})
        assert recorded.status_code == 200, recorded.text
        assert recorded.json()["localId"] == lead["localId"] and recorded.json()["newTouchpoints"] == 1
        # A boolean is no id: still refused, naming the field.
        refused = await api.post("/api/crm/integrations/crm/contacts/enrich", {"contactId": True})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "contactId", refused.text

    asyncio.run(scenario())


def test_lead_touchpoints_are_recorded_once_and_the_crm_lead_updated(api: LocalApi) -> None:
    async def scenario() -> None:
        pushed = await api.post("/api/crm/integrations/crm/leads/sync",
                                {"email": "lea@example.com", "lastName": "Park",
                                 "socialContext": {"platform": "twitter"}})
        crm_id = pushed.json()["crmId"]
        body = {"leadId": crm_id, "campaign": "launch", "model": "first_touch", "touchpoints": [
            {"timestamp": "2026-11-20T09:00:00Z", "platform": "twitter", "type": "post_view", "postId": "p1"},
            {"timestamp": "2026-11-21T09:00:00Z", "platform": "twitter", "type": "comment", "postId": "p1",
             "campaign": "black-friday"},
        ]}
        first = await api.post("/api/crm/integrations/crm/leads/attribution", body)
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["crmId"] == crm_id and answer["newTouchpoints"] == 2
        assert answer["engagementScore"] > 0
        # The CRM gets the new score: in its field, or where Pipedrive's default lead mapping has none, in the
        # lead's social note, written over.
        assert answer["action"] == "updated", answer
        if api.provider == "pipedrive":
            assert f"Engagement score: {answer['engagementScore']:g}" in newest_note(api)
        credits = [(t["campaign"], t["credit"]) for t in answer["attribution"]["touchpoints"]]
        assert credits == [("launch", 1.0), ("black-friday", 0.0)]
        stored = api.workspace.leads.find("lea@example.com")
        assert stored is not None and stored.social_context is not None
        assert stored.social_context.engagement_score == answer["engagementScore"]

        replay = await api.post("/api/crm/integrations/crm/leads/attribution", body)
        assert replay.json()["newTouchpoints"] == 0 and replay.json()["action"] == "unchanged"
        unknown = await api.post("/api/crm/integrations/crm/leads/attribution", {**body, "leadId": "nobody"})
        assert unknown.status_code == 404
        bad = await api.post("/api/crm/integrations/crm/leads/attribution",
                             {**body, "touchpoints": [{"timestamp": "2026-11-20T09:00:00", "platform": "twitter",
                                                       "type": "post_view"}]})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "touchpoints.0.timestamp"
        blank_post = [body["touchpoints"][0], {"timestamp": "2026-11-22T09:00:00Z", "platform": "twitter",
                                               "type": "like", "postId": ""}]
        refused = await api.post("/api/crm/integrations/crm/leads/attribution", {**body, "touchpoints": blank_post})
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["touchpoints.1.postId"], refused.text

    asyncio.run(scenario())


def test_a_username_only_conversation_takes_its_messages_and_a_redelivery_keeps_its_campaign(
    hubspot_api: LocalApi,
) -> None:
    api = hubspot_api
    by_username = {**CONVERSATION, "conversationId": "ig-1", "platform": "instagram",
                   "participant": {"username": "leapark"}}

    async def scenario() -> None:
        assert (await api.post("/api/social/conversations", by_username)).status_code == 201
        message = await api.post("/api/social/messages", {**MESSAGE, "conversationId": "ig-1", "messageId": "ig-m1"})
        assert message.status_code == 201, message.text
        assert message.json()["person"] == {"platform": "instagram", "username": "leapark"}
        # Re-delivered without its (optional) campaign: the campaign stays.
        again = {key: value for key, value in by_username.items() if key != "campaign"}
        assert (await api.post("/api/social/conversations", again)).status_code == 200
        stored = api.workspace.social.store.conversation("instagram", "ig-1")
        assert stored is not None and stored.campaign == "black-friday"

    asyncio.run(scenario())


@pytest.mark.parametrize(("body", "kind"), [([MESSAGE, {**MESSAGE, "messageId": "m-2"}], "an array of 2"),
                                            ("m-1", "a string"), (None, "null")])
def test_a_body_that_is_not_one_event_says_so_in_json_words(hubspot_api: LocalApi, body: Any, kind: str) -> None:
    """A listening tool that batches its webhooks sends an array: the answer says one event per request, not
    pydantic's "a valid dictionary or instance of Message"."""
    api = hubspot_api

    async def scenario() -> None:
        answer = await api.client.post("/api/social/messages", content=json.dumps(body).encode(),
                                       headers={**api.auth, "Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json() == {
            "detail": f"the body must be a JSON object, one message per request (it is {kind})",
            "errors": [{"field": "(body)", "reason": "must be a JSON object"}]}
        assert api.workspace.social.store.counts()["messages"] == 0

    asyncio.run(scenario())


def test_a_nul_character_is_refused_naming_the_field(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        refused = await api.post("/api/social/engagements", engagement(
            "like", "2026-11-21T09:00:00Z", "black-friday", {"username": "a\u0000b"}))
        assert refused.status_code == 422
        assert [e["field"] for e in refused.json()["errors"]] == ["user.username"], refused.json()
        text = await api.post("/api/social/messages", {**MESSAGE, "text": "hello\u0000world"})
        assert text.status_code == 422 and text.json()["errors"][0]["field"] == "text"

    asyncio.run(scenario())


def test_a_too_long_or_blank_value_is_refused_in_plain_words(hubspot_api: LocalApi) -> None:
    """Lengths are told as `contacts import` tells them, in characters, never as pydantic's "items after
    validation"."""
    api = hubspot_api

    async def scenario() -> None:
        long_text = await api.post("/api/social/messages", {**MESSAGE, "text": "y" * 10_001})
        assert long_text.status_code == 422
        assert long_text.json()["errors"] == [{"field": "text", "reason": "must be at most 10000 characters"}]
        blank_id = await api.post("/api/social/conversations", {**CONVERSATION, "conversationId": ""})
        assert blank_id.status_code == 422
        assert blank_id.json()["errors"] == [{"field": "conversationId", "reason": "must not be blank"}]
        long_name = await api.post("/api/social/conversations", {
            **CONVERSATION, "campaign": "c" * 121,
            "participant": {**CONVERSATION["participant"], "username": "u" * 101, "firstName": "F" * 81}})  # type: ignore[dict-item]
        assert long_name.status_code == 422
        assert {e["field"]: e["reason"] for e in long_name.json()["errors"]} == {
            "campaign": "must be at most 120 characters",
            "participant.username": "must be at most 100 characters",
            "participant.firstName": "must be at most 80 characters",
        }, long_name.json()

    asyncio.run(scenario())


def test_a_resent_engagement_is_the_same_event_however_its_person_is_named(hubspot_api: LocalApi) -> None:
    """An engagement sent by username, then (its person linked to an email meanwhile) re-sent by email, or the other
    way round, is one event: one touchpoint, the score unchanged, attribution counting it once."""
    api = hubspot_api
    store = api.workspace.social.store
    max_ = Person(email="max@example.com")

    async def scenario() -> None:
        like = engagement("like", "2026-11-21T09:00:00Z", "black-friday", {"username": "maxmoe"})
        assert (await api.post("/api/social/engagements", like)).status_code == 201
        started = {**CONVERSATION, "conversationId": "tw-c-9", "participant": {"username": "maxmoe"}}
        assert (await api.post("/api/social/conversations", started)).status_code == 201
        message = {**MESSAGE, "conversationId": "tw-c-9", "messageId": "m-9"}
        assert (await api.post("/api/social/messages", message)).status_code == 201
        # Another engagement names the username with its email: the person is linked to the email.
        click = engagement("click", "2026-11-22T09:00:00Z", "black-friday",
                           {"username": "maxmoe", "email": "max@example.com"})
        linked = await api.post("/api/social/engagements", click)
        assert linked.status_code == 201 and linked.json()["linkedTouchpoints"] == 2, linked.text
        # A comment sent by email alone.
        comment = engagement("comment", "2026-11-23T09:00:00Z", "black-friday", {"email": "max@example.com"})
        assert (await api.post("/api/social/engagements", comment)).status_code == 201

        touches = len(store.interactions(max_)[0])
        score = api.workspace.social.engagement_score(PersonRef(email="max@example.com")).score
        report = (await api.get("/api/attribution/report")).json()

        # The sender re-sends its feed, now naming the person the other way.
        resent = [
            ("/api/social/engagements", {**like, "user": {"email": "max@example.com"}}),
            ("/api/social/engagements", {**like, "user": {"username": "MaxMoe", "email": "max@example.com"}}),
            ("/api/social/engagements", {**comment, "user": {"username": "maxmoe"}}),
            ("/api/social/engagements", {**click, "user": {"email": "max@example.com"}}),
            ("/api/social/conversations", {**started, "participant": {"email": "max@example.com"}}),
            ("/api/social/messages", message),
        ]
        for path, body in resent:
            again = await api.post(path, body)
            assert again.status_code == 200 and again.json()["action"] == "unchanged", (body, again.text)
            assert again.json()["person"]["email"] == "max@example.com"

        assert len(store.interactions(max_)[0]) == touches == 5  # like, dm, inbound message, click, comment
        assert api.workspace.social.engagement_score(PersonRef(email="max@example.com")).score == pytest.approx(
            score, rel=1e-4)
        assert (await api.get("/api/attribution/report")).json() == report

    asyncio.run(scenario())


def test_an_engagement_kept_under_both_names_is_kept_once_when_they_are_linked(hubspot_api: LocalApi) -> None:
    """Sent by email, then by a username not yet known to be that email's: two people then, so two touchpoints;
    once an event links the username to the email, they are one person's one engagement."""
    api = hubspot_api
    like = engagement("like", "2026-11-21T09:00:00Z", "black-friday", {"email": "max@example.com"})

    async def scenario() -> None:
        assert (await api.post("/api/social/engagements", like)).status_code == 201
        anonymous = await api.post("/api/social/engagements", {**like, "user": {"username": "maxmoe"}})
        assert anonymous.status_code == 201 and anonymous.json()["person"] == {"platform": "twitter",
                                                                                "username": "maxmoe"}
        click = engagement("click", "2026-11-22T09:00:00Z", "black-friday",
                           {"username": "maxmoe", "email": "max@example.com"})
        assert (await api.post("/api/social/engagements", click)).status_code == 201

        kinds = sorted(i.kind for i in api.workspace.social.store.interactions(Person(email="max@example.com"))[0])
        assert kinds == ["click", "like"]
        for user in ({"username": "maxmoe"}, {"email": "max@example.com"}):
            assert (await api.post("/api/social/engagements", {**like, "user": user})).json()["action"] == "unchanged"

    asyncio.run(scenario())


def test_the_model_is_read_in_any_case_and_a_campaign_whatever_its_case(hubspot_api: LocalApi) -> None:
    api = hubspot_api

    async def scenario() -> None:
        await api.add_integration()
        pushed = await api.post("/api/crm/integrations/crm/leads/sync", Lead(email="lea@example.com").to_wire())
        local_id = pushed.json()["localId"]
        user = {"email": "lea@example.com"}
        for kind, at in (("click", "2026-11-20T09:00:00Z"), ("comment", "2026-11-21T09:00:00Z")):
            sent = await api.post("/api/social/engagements", engagement(kind, at, "Winter Sale", user))
            assert sent.status_code == 201, sent.text

        # "Time Decay" was refused with 422, though platforms and types are read in any case.
        for model in ("Time Decay", "time-decay", "TIME_DECAY"):
            credits = await api.get(f"/api/crm/integrations/crm/leads/{local_id}/attribution",
                                    params={"model": model})
            assert credits.status_code == 200, credits.text
            assert credits.json()["model"] == "time_decay"
            report = await api.get("/api/attribution/report", params={"model": model})
            assert report.status_code == 200 and report.json()["model"] == "time_decay", report.text
        wrong = await api.get("/api/attribution/report", params={"model": "Time Travel"})
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "model"
        assert "time_decay" in wrong.json()["errors"][0]["reason"], wrong.text

        # "winter sale" reported nothing for the campaign stored as "Winter Sale".
        found = (await api.get("/api/attribution/report", params={"campaign": "winter sale"})).json()
        assert (found["campaign"], found["unknownCampaign"], found["closestCampaigns"]) == ("Winter Sale", False, [])
        assert [(row["name"], row["touchpoints"]) for row in found["byCampaign"]] == [("Winter Sale", 2)]
        unknown = await api.get("/api/attribution/report", params={"campaign": "Winter"})
        assert unknown.status_code == 200, unknown.text
        body = unknown.json()
        assert (body["campaign"], body["unknownCampaign"], body["closestCampaigns"]) == (
            "Winter", True, ["Winter Sale"])
        assert body["byCampaign"] == [] and body["byPlatform"] == []

    asyncio.run(scenario())


def test_an_event_dated_in_the_future_is_refused_and_nothing_moves(hubspot_api: LocalApi) -> None:
    """A time more than 24 hours ahead is refused (422 naming the field): an engagement of 2999 would count in
    full in the score for centuries, and a conversation's start would move after its own messages."""
    api = hubspot_api

    async def scenario() -> None:
        assert (await api.post("/api/social/conversations", CONVERSATION)).status_code == 201
        assert (await api.post("/api/social/messages", MESSAGE)).status_code == 201
        later = await api.post("/api/social/conversations", {**CONVERSATION, "startedAt": "2999-01-01T00:00:00Z"})
        assert later.status_code == 422, later.text
        [error] = later.json()["errors"]
        assert error["field"] == "startedAt" and "in the future" in error["reason"], error
        liked = await api.post("/api/social/engagements", engagement("like", "2999-01-01T00:00:00Z", "black-friday",
                                                                     {"email": "lea@example.com"}))
        assert liked.status_code == 422 and liked.json()["errors"][0]["field"] == "timestamp"
        sent = await api.post("/api/social/messages", {**MESSAGE, "messageId": "m-2",
                                                       "sentAt": "2999-01-01T00:00:00Z"})
        assert sent.status_code == 422 and sent.json()["errors"][0]["field"] == "sentAt"
        conversation = api.workspace.social.store.conversation("twitter", "tw-c-1")
        assert conversation is not None and conversation.started_at.isoformat() == "2026-11-20T10:00:00+00:00"
        assert api.workspace.social.store.counts()["touchpoints"] == 1
        assert api.workspace.social.store.counts()["messages"] == 1

    asyncio.run(scenario())


def test_a_conversation_resent_with_another_participant_email_is_refused(hubspot_api: LocalApi) -> None:
    """The conversation, its touchpoint and its messages stay with the participant they were with (the username
    stays linked to that email); the re-send is refused naming ``participant.email``."""
    api = hubspot_api

    async def scenario() -> None:
        assert (await api.post("/api/social/conversations", CONVERSATION)).status_code == 201
        assert (await api.post("/api/social/messages", MESSAGE)).status_code == 201
        other = {**CONVERSATION, "participant": {**cast_dict(CONVERSATION["participant"]), "email": "sam@example.com"}}
        moved = await api.post("/api/social/conversations", other)
        assert moved.status_code == 422, moved.text
        [error] = moved.json()["errors"]
        assert error["field"] == "participant.email" and "is with lea@example.com" in error["reason"], error
        social = api.workspace.social
        conversation = social.store.conversation("twitter", "tw-c-1")
        assert conversation is not None and conversation.participant.email == "lea@example.com"
        assert social.engagement_score(PersonRef(email="sam@example.com")).score == 0
        assert api.workspace.contacts.find("sam@example.com") is None

    asyncio.run(scenario())


def test_a_store_locked_past_the_wait_is_a_503_to_retry_and_the_retry_counts_once(hubspot_api: LocalApi) -> None:
    """Another program (an import, a sync from cron) holds the SQLite file's write lock longer than the store waits
    (10 s): the platform is told to send the event again (503, Retry-After), in the API's JSON, not a 500."""
    api = hubspot_api
    liked = engagement("like", "2026-11-21T09:00:00Z", "black-friday", {"email": "lea@example.com"})

    async def scenario() -> None:
        holder = sqlite3.connect(api.workspace.paths.data_dir / "crm-desktop.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            busy = await api.post("/api/social/engagements", liked)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert busy.status_code == 503, busy.text
        assert "database is locked" in busy.json()["detail"] and "try again" in busy.json()["detail"]
        assert int(busy.headers["retry-after"]) >= 1
        again = await api.post("/api/social/engagements", liked)
        assert again.status_code == 201, again.text
        assert api.workspace.social.store.counts()["touchpoints"] == 1

    asyncio.run(scenario())


def test_an_event_waiting_for_a_locked_store_leaves_the_loop_running(hubspot_api: LocalApi) -> None:
    """The API is served on the app's event loop, the window's: an event waiting for the store (another program
    writing to it) must not stop that loop (a frozen window), only its own request."""
    api = hubspot_api
    liked = engagement("like", "2026-11-21T09:00:00Z", "black-friday", {"email": "lea@example.com"})
    holder = sqlite3.connect(api.workspace.paths.data_dir / "crm-desktop.db", isolation_level=None,
                             check_same_thread=False)

    async def scenario() -> None:
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(2.0, lambda: holder.execute("ROLLBACK"))
        release.start()
        try:
            posting = asyncio.ensure_future(api.post("/api/social/engagements", liked))
            gaps: list[float] = []
            last = time.monotonic()
            while not posting.done():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            answer = await posting
        finally:
            release.join()
            holder.close()
        assert answer.status_code == 201, answer.text
        assert max(gaps) < 1.0, f"the loop stood still {max(gaps):.1f} s while the event waited for the store"
        assert sum(gaps) >= 1.5, "the event did wait for the lock"

    asyncio.run(scenario())


def cast_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return dict(value)
