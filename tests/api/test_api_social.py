"""The three social event endpoints (idempotent: a re-delivered event changes nothing) and attribution."""

from __future__ import annotations

import asyncio

from crm_desktop.domain.models import Lead
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
        fields = {e["field"] for e in bad.json()["errors"]}
        assert {"startedAt", "participant"} <= fields, bad.json()
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

    asyncio.run(scenario())
