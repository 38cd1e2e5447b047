"""Social events naming a person forgotten at their request are answered ``skipped`` with the reason, and neither
recorded nor queued for the CRMs."""

from __future__ import annotations

import asyncio

from crm_desktop.app.forget import ForgetService
from tests.api.conftest import LocalApi
from tests.api.test_api_social import CONVERSATION, engagement


def test_events_of_a_forgotten_person_are_skipped_saying_why(hubspot_api: LocalApi) -> None:
    api = hubspot_api
    forgetting = ForgetService(api.workspace.database)

    async def scenario() -> None:
        await api.add_integration()
        assert (await api.post("/api/social/conversations", CONVERSATION)).status_code == 201
        forgotten = forgetting.forget("lea@example.com")
        reason = f"forgotten on {forgotten.forgotten_at:%Y-%m-%d} at your request; not recorded"

        answer = await api.post("/api/social/conversations", CONVERSATION)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"action": "skipped", "linkedTouchpoints": 0, "reason": reason}
        liked = await api.post("/api/social/engagements", engagement(
            "like", "2026-11-21T09:00:00Z", "black-friday", {"username": "leapark", "email": "LEA@example.com"}))
        assert liked.status_code == 200 and liked.json()["action"] == "skipped"

        assert api.workspace.contacts.find("lea@example.com") is None
        assert api.workspace.social.store.conversation("twitter", "tw-c-1") is None
        assert api.workspace.social.store.touches("lea@example.com") == []

        forgetting.unforget("lea@example.com")
        assert (await api.post("/api/social/conversations", CONVERSATION)).status_code == 201
        assert api.workspace.contacts.find("lea@example.com") is not None

    asyncio.run(scenario())


def test_contacts_of_a_forgotten_person_are_neither_saved_nor_pushed(hubspot_api: LocalApi) -> None:
    api = hubspot_api
    forgotten = ForgetService(api.workspace.database).forget("gone@example.com")
    reason = f"forgotten on {forgotten.forgotten_at:%Y-%m-%d} at your request; not saved or pushed"

    async def scenario() -> None:
        await api.add_integration()
        one = await api.post("/api/crm/integrations/crm/contacts/sync", {"email": "Gone@Example.com"})
        assert one.status_code == 200, one.text
        assert one.json() == {"localId": None, "crmId": None, "action": "skipped", "reason": reason}

        batch = await api.post("/api/crm/integrations/crm/contacts/batch-sync",
                               [{"email": "kept@example.com", "firstName": "Kept"}, {"email": "gone@example.com"}])
        assert batch.status_code == 200, batch.text
        rows = batch.json()["results"]
        assert [(r["index"], r["action"]) for r in rows] == [(0, "created"), (1, "skipped")]
        assert rows[1]["reason"] == reason and rows[1]["localId"] is None
        assert batch.json()["summary"]["skipped"] == 1 and batch.json()["summary"]["created"] == 1

    asyncio.run(scenario())
    assert api.workspace.contacts.find("gone@example.com") is None
    assert api.workspace.contacts.find("kept@example.com") is not None
