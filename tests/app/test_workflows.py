"""The three social workflows end to end: events posted to the local API over loopback reach sandbox CRMs served
over loopback, through the durable outbox, once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app import workflows
from crm_desktop.app.record_intake import RecordIntake
from crm_desktop.app.social import SocialService
from crm_desktop.app.sync_monitor import MetricsRange
from crm_desktop.app.sync_service import SyncTrigger
from crm_desktop.app.workflows import HOURLY_SETTING, SocialWorkflows
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli.common import ExitCode
from crm_desktop.domain.models import Integration, Lead, SocialContext, SyncConfig, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import ConversationEvent, PersonRef
from crm_desktop.providers.contract import AdapterOptions
from crm_desktop.sandbox.core import FaultKind, FaultRule, Sandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.database import Database
from crm_desktop.store.models import DeliveryStatus
from crm_desktop.store.people_store import PeopleQuery, PeopleStore
from crm_desktop.store.repositories import ContactStore
from crm_desktop.store.workflow_store import WorkflowStore
from tests.support.cli_runs import cli_workspace_on_sandbox, credentials_of, make_sandbox, run_json, workspace_at

PROVIDERS = ["salesforce", "hubspot", "pipedrive"]

CONVERSATION = {
    "conversationId": "tw-c-1",
    "platform": "twitter",
    "startedAt": "2026-11-20T10:00:00Z",
    "campaign": "black-friday",
    "participant": {"email": "Lea@Example.com", "firstName": "Lea", "lastName": "Park", "username": "@leapark",
                    "followers": 800},
}


def message(number: int, direction: str = "inbound") -> dict[str, Any]:
    return {"conversationId": "tw-c-1", "messageId": f"m-{number}", "direction": direction,
            "sentAt": f"2026-11-20T10:{number // 60 + 1:02d}:{number % 60:02d}Z", "text": f"Message {number}",
            "sentiment": "positive"}


@dataclass
class Desk:
    """The app serving its local API on loopback, with one integration ``crm`` on a sandbox served on loopback."""

    workspace: Workspace
    server: LocalApiServer
    sandbox: Sandbox
    served: SandboxServer
    provider: str
    client: httpx.AsyncClient

    async def post(self, path: str, body: Any) -> httpx.Response:
        answer = await self.client.post(path, json=body)
        assert answer.status_code in (200, 201), answer.text
        return answer

    def counts(self) -> dict[DeliveryStatus, int]:
        return self.server.workflows.store.counts()

    async def settled(self, within: float = 20.0) -> dict[DeliveryStatus, int]:
        """Wait until nothing is pending or in flight."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            counts = self.counts()
            if counts[DeliveryStatus.PENDING] == 0 and counts[DeliveryStatus.SENDING] == 0:
                return counts
            await asyncio.sleep(0.05)
        raise AssertionError(f"events still waiting after {within} s: {self.counts()}")

    def api_requests(self) -> int:
        return sum(1 for r in self.sandbox.requests if "/__sandbox__" not in r.path)


def crm_people(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    """The contacts/persons the sandbox holds, as email and id."""
    if provider == "salesforce":
        return [{"id": r["Id"], "email": r.get("Email")} for r in sandbox.records["Contact"].values()]  # type: ignore[attr-defined]
    if provider == "hubspot":
        return [{"id": r.id, "email": r.properties.get("email")}
                for r in sandbox._records["contacts"].values() if not r.archived]  # type: ignore[attr-defined]
    return [{"id": str(p.id), "email": p.emails[0]["value"] if p.emails else None}
            for p in sandbox.persons.values()]  # type: ignore[attr-defined]


def crm_timeline(sandbox: Sandbox, provider: str) -> list[tuple[str, str]]:
    """(record id, subject or body) of every timeline entry the sandbox holds."""
    if provider == "salesforce":
        return [(t["WhoId"], f"{t['Subject']}\n{t.get('Description')}")
                for t in sandbox.records["Task"].values()]  # type: ignore[attr-defined]
    if provider == "hubspot":
        return [(next(iter(n.associations.get("contacts", {})), ""), n.properties["hs_note_body"])
                for n in sandbox._records["notes"].values()]  # type: ignore[attr-defined]
    return [(str(a.person_id), f"{a.subject}\n{a.note}") for a in sandbox.activities.values()]  # type: ignore[attr-defined]


def run_desk(tmp_path: Path, provider: str, scenario: Callable[[Desk], Awaitable[None]], *,
             auto_sync: bool = True, sandbox_config: dict[str, Any] | None = None) -> Sandbox:
    sandbox = make_sandbox(provider, **(sandbox_config or {}))
    served = SandboxServer([sandbox])
    served.start()
    desks: list[Desk] = []
    try:
        workspace = Workspace.open(tmp_path / "data")
        # One try per request: a CRM that is down fails the delivery at once, and the outbox retries it.
        workspace.crm.options = AdapterOptions(max_attempts=1, timeout=5.0)
        workspace.integrations.add(
            Integration(provider=provider, name="crm", base_url=sandbox.base_url, domain="acme",
                        sync_config=SyncConfig(auto_sync=auto_sync)),
            credentials_of(provider, sandbox),
        )

        async def main() -> None:
            server = LocalApiServer(workspace, 0)
            url = await server.start()
            token = server.tokens.current()
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                         timeout=30) as client:
                desks.append(Desk(workspace, server, sandbox, served, provider, client))
                try:
                    await scenario(desks[0])
                finally:
                    await server.stop()

        try:
            asyncio.run(main())
        finally:
            workspace.close()
    finally:
        served.stop()
        for desk in desks:  # a scenario that served the CRM again on its address left that server to stop
            desk.served.stop()
    return sandbox


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


def test_a_new_conversation_becomes_one_crm_contact_with_a_timeline_entry(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 1 and counts[DeliveryStatus.FAILED] == 0
        # Re-delivered by the platform: nothing new is queued, nothing changes in the CRM.
        before = desk.api_requests()
        await desk.post("/api/social/conversations", CONVERSATION)
        # Re-delivered again with the username's case and the follower count changed: the same conversation.
        participant = {**CONVERSATION["participant"], "username": "@LeaPark", "followers": 801}
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": participant})
        await asyncio.sleep(0.3)
        assert desk.counts()[DeliveryStatus.DONE] == 1 and desk.api_requests() == before
        conversation = desk.workspace.social.conversation("twitter", "tw-c-1")
        assert conversation is not None
        people = crm_people(desk.sandbox, provider)
        assert [p["email"] for p in people] == ["lea@example.com"]
        assert conversation.crm_links == {"1": people[0]["id"]} or list(conversation.crm_links.values()) == [
            people[0]["id"]]
        # The Sync Monitor's "average event -> CRM latency" counts the delivery: received to confirmed.
        points = [p for p in desk.workspace.monitor.metrics(MetricsRange.DAY).points if p.average_latency is not None]
        assert len(points) == 1 and 0 <= points[0].average_latency < 20  # type: ignore[operator]
        [hour] = [h for h in desk.workspace.monitor.store.hourly(datetime.now(UTC) - timedelta(hours=2))
                  if h.latency_events]
        assert hour.latency_events == 1, "the replayed event was not delivered again, so not counted again"

    sandbox = run_desk(tmp_path, provider, scenario)
    timeline = crm_timeline(sandbox, provider)
    assert len(timeline) == 1
    who, text = timeline[0]
    assert who == crm_people(sandbox, provider)[0]["id"]
    assert "Conversation started on Twitter/X" in text and "black-friday" in text


def test_an_existing_crm_contact_is_updated_not_duplicated(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        # The contact is in the CRM already (pushed earlier by a sync): the conversation finds it by email.
        await desk.post("/api/crm/integrations/crm/contacts/sync", {"email": "lea@example.com", "lastName": "Park"})
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, scenario)
    assert [p["email"] for p in crm_people(sandbox, provider)] == ["lea@example.com"]
    assert len(crm_timeline(sandbox, provider)) == 1


def test_a_burst_of_messages_is_a_handful_of_crm_calls(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        before = desk.api_requests()
        await asyncio.gather(*(desk.post("/api/social/messages", message(n)) for n in range(50)))
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 51 and counts[DeliveryStatus.FAILED] == 0
        calls = desk.api_requests() - before
        # Group commit: the first message goes alone, the rest pile up behind it and go together. How many go in
        # each delivery depends on how fast the 50 arrive (they are recorded on worker threads, in parallel with the
        # deliveries): up to 19 calls seen, where a delivery per message would take 50 or more.
        assert calls <= 25, f"{calls} CRM calls for 50 messages"
        # Replaying the burst queues nothing and calls the CRM no more.
        for n in range(50):
            await desk.post("/api/social/messages", message(n))
        await asyncio.sleep(0.3)
        assert desk.api_requests() - before == calls

    sandbox = run_desk(tmp_path, provider, scenario)
    timeline = crm_timeline(sandbox, provider)
    text = "\n".join(t for _, t in timeline)
    assert all(f"Message {n}" in text for n in range(50))  # every message is on the timeline, once
    assert sum(text.count(f"Message {n}]") + text.count(f"Message {n}\n") for n in range(50)) <= 50
    assert len(timeline) <= 8


def test_a_burst_longer_than_a_crm_entry_holds_is_written_whole_in_several(tmp_path: Path, provider: str) -> None:
    """Eighty long messages waiting together (the CRM was down, the app closed) are more text than a Salesforce
    Task's Description takes (32,000 characters): the CRM would cut the entry, losing the last messages."""
    words = "lorem ipsum dolor sit amet " * 18

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        await desk.server.workflows.stop()  # the messages wait, to go together in one delivery
        for n in range(80):
            await desk.post("/api/social/messages", {**message(n), "text": f"Message {n}: {words}"})
        desk.server.workflows.start()
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 81 and counts[DeliveryStatus.FAILED] == 0

    sandbox = run_desk(tmp_path, provider, scenario)
    entries = [text for _, text in crm_timeline(sandbox, provider) if "Conversation started" not in text]
    assert 2 <= len(entries) <= 4, [text[:60] for text in entries]
    assert all(len(text) < 32_000 for text in entries)
    text = "\n".join(entries)
    assert all(text.count(f"Message {n}: lorem") == 1 for n in range(80))  # every message, whole, once


def test_an_event_of_a_contact_deleted_in_the_crm_fails_saying_so(tmp_path: Path) -> None:
    """The engine does not re-create a record deleted in the CRM: the event is kept as failed with that reason,
    not with "no field of it maps to the CRM", which would send the marketer to the field mapping."""
    provider = "hubspot"

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        [person] = crm_people(desk.sandbox, provider)
        token = credentials_of(provider, desk.sandbox)["token"]
        async with httpx.AsyncClient(base_url=desk.sandbox.base_url) as crm:
            deleted = await crm.delete(f"/crm/v3/objects/contacts/{person['id']}",
                                       headers={"Authorization": f"Bearer {token}"})
            assert deleted.status_code == 204, deleted.text
        await desk.post("/api/social/messages", message(1))
        await desk.post("/api/social/engagements", {"platform": "twitter", "type": "like", "postId": "p-1",
                                                    "timestamp": "2026-11-21T09:00:00Z",
                                                    "user": {"email": "lea@example.com"}})
        counts = await desk.settled()
        assert counts[DeliveryStatus.FAILED] == 2, counts
        reasons = [why for _, _, why in desk.server.workflows.store.failures(1)]
        assert len(reasons) == 2 and all("deleted in the CRM" in why for why in reasons), reasons

    run_desk(tmp_path, provider, scenario)


def test_messages_raise_the_contact_engagement_score_in_the_crm(tmp_path: Path, provider: str) -> None:
    scores: list[float] = []

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        for n in range(3):
            await desk.post("/api/social/messages", message(n))
        await desk.settled()
        contact = desk.workspace.contacts.find("lea@example.com")
        assert contact is not None
        scores.extend(p.engagement for p in contact.social_profiles)
        found = await desk.workspace.crm.get_record("crm", RecordObject.CONTACT, "lea@example.com")
        assert found is not None
        mapped = {"salesforce": "social_engagement_score__c", "hubspot": "social_engagement_score"}.get(provider)
        if mapped is not None:  # Pipedrive's default carrier of social data is the person's note
            assert float(found.fields[mapped]) == pytest.approx(max(scores), abs=0.1)

    run_desk(tmp_path, provider, scenario)
    assert scores and max(scores) > 0


def test_an_engagement_of_a_lead_updates_the_crm_lead(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        lead = Lead(email="max@example.com", first_name="Max", last_name="Moe", company="Moe GmbH",
                    social_context=SocialContext(platform="twitter"))
        synced = await desk.post("/api/crm/integrations/crm/leads/sync", lead.to_wire())
        before = desk.api_requests()
        await desk.post("/api/social/engagements", {
            "platform": "twitter", "type": "share", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
            "campaign": "black-friday", "user": {"email": "max@example.com"}})
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 1
        assert desk.api_requests() > before  # the lead was pushed with its new score
        stored = desk.workspace.leads.find("max@example.com")
        assert stored is not None and stored.social_context is not None
        assert (stored.social_context.engagement_score or 0) > 0
        found = await desk.workspace.crm.get_record("crm", RecordObject.LEAD, "max@example.com")
        assert found is not None and found.crm_id == synced.json()["crmId"]
        # Someone the CRM knows nothing of: the touchpoint is stored, the CRM is not called.
        quiet = desk.api_requests()
        await desk.post("/api/social/engagements", {
            "platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:05:00Z", "user": {"username": "anon"}})
        await desk.settled()
        assert desk.api_requests() == quiet

    run_desk(tmp_path, provider, scenario)


def test_an_engagement_of_a_lead_converted_in_salesforce_updates_its_contact(tmp_path: Path) -> None:
    """A converted Lead is read-only in Salesforce (CANNOT_UPDATE_CONVERTED_LEAD): once a pull has recorded the
    conversion, the person's engagement goes to the contact the Lead became, not to the Lead."""

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        lead = Lead(email="lea@example.com", first_name="Lea", last_name="Park", company="Park AG",
                    social_context=SocialContext(platform="twitter"))
        await desk.post("/api/crm/integrations/crm/leads/sync", lead.to_wire())
        await desk.settled()
        async with httpx.AsyncClient() as rep:
            converted = await rep.post(f"{desk.sandbox.base_url}/__sandbox__/salesperson/convert-lead",
                                       json={"email": "lea@example.com"})
            assert converted.status_code == 200, converted.text
        pulled = await desk.workspace.sync.conversions.pull("crm")
        assert pulled.created == 1
        await desk.post("/api/social/engagements", {
            "platform": "twitter", "type": "share", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
            "campaign": "black-friday", "user": {"email": "lea@example.com"}})
        counts = await desk.settled()
        assert counts[DeliveryStatus.FAILED] == 0, desk.server.workflows.store.failures(1)
        score = desk.workspace.social.engagement_score(PersonRef(email="lea@example.com")).score
        [contact] = [r for r in desk.sandbox.records["Contact"].values()  # type: ignore[attr-defined]
                     if r.get("Email") == "lea@example.com"]
        assert contact["social_engagement_score__c"] == score

    run_desk(tmp_path, "salesforce", scenario)


def test_an_engagement_of_a_lead_only_the_crm_has_updates_that_lead_once(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        # The lead is put in the CRM by another workspace: this app has no lead, contact or link of that person.
        seeder = Workspace.open(tmp_path / "seeder")
        try:
            seeder.integrations.add(
                Integration(provider=provider, name="crm", base_url=desk.sandbox.base_url, domain="acme"),
                credentials_of(provider, desk.sandbox))
            seeded = await RecordIntake(seeder.integrations, seeder.sync, seeder.crm, seeder.contacts, seeder.leads,
                                        seeder.social).push_one("crm", Lead(email="ivy@example.com", first_name="Ivy",
                                                                            last_name="Lo", company="Lo Ltd"))
        finally:
            seeder.close()
        assert seeded.crm_id is not None and desk.workspace.leads.find("ivy@example.com") is None
        before = await desk.workspace.crm.get_record("crm", RecordObject.LEAD, "ivy@example.com")
        assert before is not None
        engagement = {"platform": "twitter", "type": "share", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-2",
                      "campaign": "black-friday", "user": {"email": "Ivy@example.com"}}
        await desk.post("/api/social/engagements", engagement)
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 1 and counts[DeliveryStatus.FAILED] == 0
        stored = desk.workspace.leads.find("ivy@example.com")
        assert stored is not None and (stored.first_name, stored.last_name) == ("Ivy", "Lo")
        assert stored.social_context is not None and (stored.social_context.engagement_score or 0) > 0
        integration = desk.workspace.integrations.get("crm")
        assert integration.id is not None
        local_id = desk.workspace.social.store.lead_by_email("ivy@example.com")
        assert local_id is not None
        link = desk.workspace.sync.store.links_for_local(integration.id, RecordObject.LEAD, [local_id[0]])
        assert link[local_id[0]].crm_id == seeded.crm_id
        found = await desk.workspace.crm.get_record("crm", RecordObject.LEAD, "ivy@example.com")
        assert found is not None and found.crm_id == seeded.crm_id  # updated, not duplicated
        named = {k for k, v in before.fields.items() if v in ("Ivy", "Lo", "Lo Ltd")}
        assert named and {k for k in named if found.fields.get(k) == before.fields[k]} == named  # the CRM's values kept
        mapped = {"salesforce": "social_engagement_score__c", "hubspot": "social_engagement_score"}.get(provider)
        if mapped is not None:  # Pipedrive's leads carry no score field: the score goes on the local lead only
            assert float(found.fields[mapped]) == pytest.approx(stored.social_context.engagement_score, abs=0.1)
        # The same event again: nothing queued, nothing sent.
        quiet = desk.api_requests()
        await desk.post("/api/social/engagements", engagement)
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 1 and desk.api_requests() == quiet

    sandbox = run_desk(tmp_path, provider, scenario)
    assert crm_lead_count(sandbox, provider) == 1


def crm_lead_count(sandbox: Sandbox, provider: str) -> int:
    """How many leads the sandbox holds."""
    if provider == "salesforce":
        return len(sandbox.records["Lead"])  # type: ignore[attr-defined]
    if provider == "hubspot":
        return sum(1 for r in sandbox._records["leads"].values() if not r.archived)  # type: ignore[attr-defined]
    return len(sandbox.leads)  # type: ignore[attr-defined]


def test_a_crm_down_during_an_event_gets_it_once_when_back(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        port = int(desk.sandbox.base_url.rsplit(":", 1)[1])
        desk.served.stop()  # the CRM is down: connections are refused
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.post("/api/social/messages", message(1))
        await asyncio.sleep(1.0)
        counts = desk.counts()
        assert counts[DeliveryStatus.DONE] == 0 and counts[DeliveryStatus.FAILED] == 0
        # Owed, not failed: waiting for the next try, or in one (on a loaded host a try may still be under way).
        assert counts[DeliveryStatus.PENDING] + counts[DeliveryStatus.SENDING] == 2
        # Back on the same address: the queued events go, once.
        restarted = SandboxServer([desk.sandbox], ports=[port])
        restarted.start()
        desk.served = restarted
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.DONE] == 2

    sandbox = run_desk(tmp_path, provider, scenario)
    assert len(crm_people(sandbox, provider)) == 1
    assert len(crm_timeline(sandbox, provider)) == 2


def test_events_queued_while_the_app_was_closed_go_at_the_next_start(tmp_path: Path) -> None:
    provider = "hubspot"

    async def first(desk: Desk) -> None:
        await desk.server.workflows.stop()  # the app is closing: events are kept, not sent
        await desk.post("/api/social/conversations", CONVERSATION)
        await asyncio.sleep(0.3)
        assert desk.counts()[DeliveryStatus.PENDING] == 1
        assert crm_people(desk.sandbox, provider) == []
        desk.server.workflows.start()  # the next start
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, first)
    assert len(crm_people(sandbox, provider)) == 1 and len(crm_timeline(sandbox, provider)) == 1


def test_with_auto_sync_off_events_wait_for_a_sync(tmp_path: Path) -> None:
    provider = "pipedrive"

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await asyncio.sleep(1.5)
        assert desk.counts()[DeliveryStatus.PENDING] == 1
        assert crm_people(desk.sandbox, provider) == []
        # A sync the marketer starts (here the command line's, as another process would record it).
        result = await desk.workspace.sync.sync("crm", SyncDirection.PUSH, SyncTrigger.CLI)
        assert result.run_id is not None
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.DONE] == 1

    sandbox = run_desk(tmp_path, provider, scenario, auto_sync=False)
    assert len(crm_people(sandbox, provider)) == 1 and len(crm_timeline(sandbox, provider)) == 1


def test_stopping_while_an_event_wakes_the_idle_worker_still_stops_it(tmp_path: Path) -> None:
    """An event arriving in the very loop step the app stops in (a quit while a feed posts) must not keep the
    delivery worker going: Python 3.11's ``asyncio.wait_for`` swallows a cancel when what it waits for is done in
    that step, and the app then never quit."""
    stopped: list[bool] = []

    async def scenario(desk: Desk) -> None:
        workflows = desk.server.workflows
        crm = desk.workspace.integrations.get("crm")
        assert crm.id is not None
        await asyncio.sleep(0.5)  # nothing queued: the worker waits for a wake-up
        workflows.notify([crm.id])  # an event came in...
        try:
            async with asyncio.timeout(10):
                await workflows.stop()  # ...and the app quits in the same step
            stopped.append(True)
        except TimeoutError:
            stopped.append(False)

    run_desk(tmp_path, "hubspot", scenario)
    assert stopped == [True], "the delivery worker went on after it was stopped"


def test_the_hourly_job_pushes_contacts_of_new_conversations_once(tmp_path: Path) -> None:
    provider = "salesforce"

    async def scenario(desk: Desk) -> None:
        workflows = desk.server.workflows
        await workflows.stop()
        # Conversations that came in without the API (a file import): nothing was queued for them.
        desk.workspace.social.record_conversations([ConversationEvent.model_validate(CONVERSATION)])
        assert workflows.hourly_due()
        outcomes = await workflows.push_conversation_contacts()
        assert [(name, getattr(o, "counts", {}).get("created")) for name, o in outcomes] == [("crm", 1)]
        assert not workflows.hourly_due()
        assert await workflows.push_conversation_contacts() == []  # nothing new since its last run

    sandbox = run_desk(tmp_path, provider, scenario)
    assert [p["email"] for p in crm_people(sandbox, provider)] == ["lea@example.com"]


def test_sync_due_runs_the_hourly_push_with_no_api_and_not_twice_an_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    sandbox = cli_workspace_on_sandbox(data_dir, "salesforce", monkeypatch)
    code, first = run_json(data_dir, ["sync", "--due"], capsys)  # the scheduled sync; the hourly job finds nobody
    assert code == ExitCode.OK and len(first["results"]) == 1
    with workspace_at(data_dir) as workspace:
        workspace.social.record_conversations([ConversationEvent.model_validate(CONVERSATION)])
        # The last hourly run was more than an hour ago (before the conversation came in).
        hour_ago = (datetime.now(UTC) - timedelta(minutes=61)).isoformat()
        workspace.social.store.put_setting(HOURLY_SETTING, {"at": hour_ago, "since": hour_ago, "done": True})
    code, second = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK
    [pushed] = second["results"]
    assert pushed["trigger"] == "scheduled" and pushed["counts"]["created"] == 1
    assert [p["email"] for p in crm_people(sandbox, "salesforce")] == ["lea@example.com"]
    code, third = run_json(data_dir, ["sync", "--due"], capsys)
    assert code == ExitCode.OK and third == {"results": []}  # the same hour: nothing again


def test_of_runners_racing_for_the_hourly_run_exactly_one_takes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    Database(url).migrate()
    now = datetime.now(UTC)
    start = threading.Barrier(6)

    def runner() -> dict[str, Any] | None:
        database = Database(url)
        try:
            start.wait()
            return WorkflowStore(database).take_job_run("workflows.hourly_push", now, timedelta(hours=1),
                                                        {"at": now.isoformat()})
        finally:
            database.close()

    for _ in range(2):  # the first mark is an insert, later ones an update
        with ThreadPoolExecutor(6) as pool:
            taken = [r for r in pool.map(lambda _: runner(), range(6)) if r is not None]
        assert len(taken) == 1
        now += timedelta(hours=1)


def test_a_rate_limited_crm_gets_the_event_once_after_the_wait(tmp_path: Path) -> None:
    provider = "hubspot"

    async def scenario(desk: Desk) -> None:
        # The CRM answers 429 to the next three requests: the delivery stops, the event waits and goes again.
        desk.sandbox.faults.add(FaultRule(FaultKind.RATE_LIMIT, at=[desk.sandbox.request_count + n for n in (1, 2, 3)]))
        await desk.post("/api/social/conversations", CONVERSATION)
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.DONE] == 1
        assert sum(desk.sandbox.faults.fired.values()) >= 1

    sandbox = run_desk(tmp_path, provider, scenario)
    assert len(crm_people(sandbox, provider)) == 1 and len(crm_timeline(sandbox, provider)) == 1


def test_the_daily_rescore_runs_once_a_day_whichever_runner_asks(tmp_path: Path) -> None:
    """Stored scores decay: the app's scheduler, ``serve`` and ``sync --due`` recompute them once a day, and two
    runners asking at the same moment recompute them once."""
    with workspace_at(tmp_path / "D") as workspace:
        clock = [datetime(2026, 11, 21, 9, 0, tzinfo=UTC)]
        social = SocialService(workspace.database, clock=lambda: clock[0])
        workflows = [SocialWorkflows(workspace.database, workspace.integrations, workspace.sync, workspace.crm,
                                     social, clock=lambda: clock[0]) for _ in range(2)]
        social.record_conversations([ConversationEvent.model_validate(CONVERSATION)])
        stored = social.store.contacts_among({"lea@example.com"})
        assert stored == {"lea@example.com"}

        def score_in_list() -> float | None:
            [line] = PeopleStore(workspace.database).page(PeopleQuery(text="lea@"), None, 5)
            return line.score

        first = score_in_list()
        assert first is not None and first > 0
        assert all(w.rescore_due() for w in workflows)

        async def both() -> list[int | None]:
            return list(await asyncio.gather(*(w.run_rescore_if_due() for w in workflows)))

        assert sorted(asyncio.run(both()), key=str) == [1, None], "one runner takes the day's rescore"
        assert not any(w.rescore_due() for w in workflows)

        clock[0] += timedelta(hours=23)
        assert asyncio.run(workflows[0].run_rescore_if_due()) is None, "not a day yet"
        assert score_in_list() == first
        clock[0] += timedelta(hours=2)
        assert workflows[1].periodic_due()
        asyncio.run(workflows[1].run_periodic_if_due())
        later = score_in_list()
        assert later is not None and later < first, "a day older, a lower score"
        assert later == social.engagement_score(PersonRef(email="lea@example.com")).score


def test_a_conversation_redelivered_naming_its_person_anew_has_one_timeline_entry(
    tmp_path: Path, provider: str
) -> None:
    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        # The platform sends it again without the email, then without the username: the same conversation.
        participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": {
            key: value for key, value in participant.items() if key != "email"}})
        await desk.settled()
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": {
            key: value for key, value in participant.items() if key != "username"}})
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, scenario)
    assert [p["email"] for p in crm_people(sandbox, provider)] == ["lea@example.com"]
    assert len(crm_timeline(sandbox, provider)) == 1


def test_messages_before_the_persons_email_reach_the_timeline_once_it_is_known(tmp_path: Path, provider: str) -> None:
    async def scenario(desk: Desk) -> None:
        participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
        by_username = {key: value for key, value in participant.items() if key != "email"}
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": by_username})
        for number in (1, 2, 3):
            await desk.post("/api/social/messages", message(number))
        await desk.settled()
        # The platform learns the email (a form filled in) and sends the conversation again with it.
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, scenario)
    [person] = crm_people(sandbox, provider)
    timeline = crm_timeline(sandbox, provider)
    assert len(timeline) == 2 and {who for who, _ in timeline} == {person["id"]}
    assert any("3 Twitter/X messages" in text for _, text in timeline), timeline


def test_a_message_given_up_waiting_for_its_conversation_reaches_the_timeline_when_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for a late conversation is over at the first try here (20 tries, about an hour, in the app).
    monkeypatch.setattr(workflows, "MESSAGE_WAITS_FOR_CONVERSATION", 1)

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/messages", message(1))
        assert (await desk.settled())[DeliveryStatus.FAILED] == 1
        await desk.post("/api/social/conversations", CONVERSATION)
        assert (await desk.settled())[DeliveryStatus.FAILED] == 0

    sandbox = run_desk(tmp_path, "hubspot", scenario)
    [person] = crm_people(sandbox, "hubspot")
    timeline = crm_timeline(sandbox, "hubspot")
    assert {who for who, _ in timeline} == {person["id"]}
    assert any("Message 1" in text for _, text in timeline), timeline


def test_a_participant_whose_email_comes_by_an_engagement_becomes_the_crm_contact(
    tmp_path: Path, provider: str
) -> None:
    """A conversation by username and its message, then a like naming that username with an email, all waiting
    for a sync: the person is now known by email, so the conversation's participant is a local contact (with the
    names the conversation gave), pushed to the CRM with its "Conversation started" entry, rather than failed as
    "not pushed: no field of it maps to the CRM" (there was no local contact to push)."""
    participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
    by_username = {key: value for key, value in participant.items() if key != "email"}

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": by_username})
        await desk.post("/api/social/messages", message(1))
        await desk.post("/api/social/engagements", {
            "platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
            "user": {"email": " LEA@example.com", "username": "LeaPark"}})
        await desk.workspace.sync.sync("crm", SyncDirection.PUSH, SyncTrigger.CLI)
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.FAILED] == 0, desk.server.workflows.store.failures(1)
        contact = ContactStore(desk.workspace.database).find("lea@example.com")
        assert contact is not None and (contact.first_name, contact.last_name) == ("Lea", "Park")
        assert [(p.platform.value, p.username) for p in contact.social_profiles] == [("twitter", "leapark")]

    sandbox = run_desk(tmp_path, provider, scenario, auto_sync=False)
    [person] = crm_people(sandbox, provider)
    assert person["email"] == "lea@example.com"
    timeline = crm_timeline(sandbox, provider)
    assert {who for who, _ in timeline} == {person["id"]}
    assert any("Conversation started" in text for _, text in timeline), timeline


def test_one_conversation_sent_again_while_waiting_for_a_sync_has_one_timeline_entry(
    tmp_path: Path, provider: str
) -> None:
    """A conversation sent by username, again with the email the platform learnt, and again with its start
    corrected, all waiting for a sync (auto-sync off): one delivery, one "Conversation started" entry."""
    participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
    by_username = {key: value for key, value in participant.items() if key != "email"}

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": by_username})
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.post("/api/social/conversations", {**CONVERSATION, "startedAt": "2026-11-20T09:30:00Z"})
        await desk.workspace.sync.sync("crm", SyncDirection.PUSH, SyncTrigger.CLI)
        counts = await desk.settled(within=30)
        assert counts[DeliveryStatus.DONE] == 3 and counts[DeliveryStatus.FAILED] == 0

    sandbox = run_desk(tmp_path, provider, scenario, auto_sync=False)
    [person] = crm_people(sandbox, provider)
    timeline = crm_timeline(sandbox, provider)
    assert [who for who, _ in timeline] == [person["id"]], timeline
    assert "2026-11-20 09:30 UTC" in timeline[0][1]


def test_a_conversation_by_username_reaches_the_crm_once_an_engagement_gives_the_email(
    tmp_path: Path, provider: str
) -> None:
    """Auto-sync on: a conversation by username and its message reach no CRM record (no email yet). A like naming
    that username with an email makes the person known: the conversation goes again, so the CRM gets the contact,
    its "Conversation started" entry and the message, once each."""
    participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
    by_username = {key: value for key, value in participant.items() if key != "email"}

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": by_username})
        await desk.post("/api/social/messages", message(1))
        await desk.settled()
        assert crm_people(desk.sandbox, provider) == []
        like = {"platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
                "user": {"email": "Lea@Example.com", "username": "leapark"}}
        await desk.post("/api/social/engagements", like)
        await desk.settled()
        await desk.post("/api/social/engagements", like)  # sent again: nothing more
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, scenario)
    [person] = crm_people(sandbox, provider)
    assert person["email"] == "lea@example.com"
    timeline = crm_timeline(sandbox, provider)
    assert {who for who, _ in timeline} == {person["id"]} and len(timeline) == 2, timeline
    assert any("Conversation started" in text for _, text in timeline), timeline


def test_an_engagement_resent_by_email_alone_is_not_queued_again(tmp_path: Path) -> None:
    """A like by username and email, then sent again by the email alone: the API says ``unchanged``, and the
    outbox holds one row for the CRM, not two (the CRM would get the lead's update twice)."""
    like = {"platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
            "user": {"email": "lea@example.com", "username": "leapark"}}

    async def scenario(desk: Desk) -> None:
        assert (await desk.post("/api/social/engagements", like)).status_code == 201
        again = await desk.post("/api/social/engagements", {**like, "user": {"email": "Lea@Example.com"}})
        assert again.json()["action"] == "unchanged"
        by_username = await desk.post("/api/social/engagements", {**like, "user": {"username": "LeaPark"}})
        assert by_username.json()["action"] == "unchanged"
        assert sum(desk.counts().values()) == 1, desk.counts()

    run_desk(tmp_path, "hubspot", scenario, auto_sync=False)


def test_a_file_linking_a_username_sends_its_earlier_conversation_to_the_crm(tmp_path: Path) -> None:
    """A conversation by username posted to the API reaches no CRM record (no email yet). A `social import` file
    then links that username to an email: as after an API event, the conversation is queued again, and the next
    delivery gives the CRM the contact and its "Conversation started" entry."""
    participant: dict[str, Any] = dict(cast(dict[str, Any], CONVERSATION["participant"]))
    by_username = {key: value for key, value in participant.items() if key != "email"}
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"platform": "twitter", "type": "like", "timestamp": "2026-11-21T09:00:00Z",
                                "postId": "p-1", "user": {"email": "lea@example.com", "username": "leapark"}}) + "\n",
                    encoding="utf-8")

    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", {**CONVERSATION, "participant": by_username})
        await desk.settled()
        assert crm_people(desk.sandbox, "hubspot") == []
        report = await asyncio.to_thread(desk.workspace.social.import_file, feed)
        assert report.linked_touchpoints == 1
        assert desk.counts()[DeliveryStatus.PENDING] == 1
        assert report.requeued_conversations == 1
        await desk.server.workflows.deliver_waiting("crm")
        assert (await desk.settled())[DeliveryStatus.FAILED] == 0

    sandbox = run_desk(tmp_path, "hubspot", scenario)
    [person] = crm_people(sandbox, "hubspot")
    assert person["email"] == "lea@example.com"
    timeline = crm_timeline(sandbox, "hubspot")
    assert [who for who, _ in timeline] == [person["id"]] and "Conversation started" in timeline[0][1], timeline


def crm_names(sandbox: Sandbox, provider: str) -> list[str]:
    """The name of each contact/person the sandbox holds, as the CRM shows it."""
    if provider == "salesforce":
        return [f"{r.get('FirstName') or ''} {r.get('LastName') or ''}".strip()
                for r in sandbox.records["Contact"].values()]  # type: ignore[attr-defined]
    if provider == "hubspot":
        return [f"{r.properties.get('firstname') or ''} {r.properties.get('lastname') or ''}".strip()
                for r in sandbox._records["contacts"].values() if not r.archived]  # type: ignore[attr-defined]
    return [p.name for p in sandbox.persons.values()]  # type: ignore[attr-defined]


def test_a_conversation_with_a_nameless_participant_gives_the_contact_its_leads_name(
    tmp_path: Path, provider: str
) -> None:
    """The platform sends the participant by email alone; the app knows that email's name from a lead (given after
    the conversation, before its delivery). The CRM contact gets that name (not Salesforce's "(unknown)", nor
    HubSpot's blank or Pipedrive's email for a name), and so does the local contact."""
    nameless = {**CONVERSATION, "participant": {"email": "max@example.com", "username": "@maxmoe"}}

    async def scenario(desk: Desk) -> None:
        await desk.server.workflows.stop()  # the conversation waits: the lead comes before its delivery
        await desk.post("/api/social/conversations", nameless)
        lead = Lead(email="max@example.com", first_name="Max", last_name="Moe", company="Moe GmbH")
        desk.workspace.leads.save(lead)
        desk.server.workflows.start()
        counts = await desk.settled()
        assert counts[DeliveryStatus.FAILED] == 0, desk.server.workflows.store.failures(1)
        contact = desk.workspace.contacts.find("max@example.com")
        assert contact is not None and (contact.first_name, contact.last_name) == ("Max", "Moe")

    sandbox = run_desk(tmp_path, provider, scenario)
    assert crm_names(sandbox, provider) == ["Max Moe"]


def test_an_engagement_of_a_nameless_lead_gives_the_crm_lead_its_contacts_name(tmp_path: Path) -> None:
    """The mirror case: a lead known by email alone, whose contact (a conversation's participant) has the name;
    the engagement that pushes the lead writes it with that name, not Salesforce's "(unknown)"."""
    async def scenario(desk: Desk) -> None:
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.settled()
        desk.workspace.leads.save(Lead(email="lea@example.com", company="Park Ltd"))
        await desk.post("/api/social/engagements", {
            "platform": "twitter", "type": "share", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1",
            "user": {"email": "lea@example.com"}})
        counts = await desk.settled()
        assert counts[DeliveryStatus.FAILED] == 0, desk.server.workflows.store.failures(1)

    sandbox = run_desk(tmp_path, "salesforce", scenario)
    leads = list(sandbox.records["Lead"].values())  # type: ignore[attr-defined]
    assert [(lead.get("FirstName"), lead["LastName"]) for lead in leads] == [("Lea", "Park")]


def test_a_conversation_resent_with_a_later_start_keeps_its_earliest_start(tmp_path: Path, provider: str) -> None:
    """A platform re-delivers a conversation with a later ``startedAt`` (its clock, a retry stamped anew): the
    conversation keeps the earliest start it was sent with, so it never starts after its own messages, on the
    People pane or in the CRM; the re-delivery is ``unchanged`` and calls no CRM. An earlier start is taken."""
    later = {**CONVERSATION, "startedAt": "2026-11-20T11:30:00Z"}

    async def scenario(desk: Desk) -> None:
        # Sent twice before its delivery (the worker stopped): the entry says the earliest start.
        await desk.server.workflows.stop()
        await desk.post("/api/social/conversations", CONVERSATION)
        await desk.post("/api/social/messages", message(1))
        again = await desk.post("/api/social/conversations", later)
        assert again.json()["action"] == "unchanged"
        desk.server.workflows.start()
        counts = await desk.settled()
        assert counts[DeliveryStatus.DONE] == 2 and counts[DeliveryStatus.FAILED] == 0, counts
        before = desk.api_requests()
        again = await desk.post("/api/social/conversations", later)  # and once more after it
        assert again.json()["action"] == "unchanged"
        await asyncio.sleep(0.3)
        assert sum(desk.counts().values()) == 2 and desk.api_requests() == before
        stored = desk.workspace.social.conversation("twitter", "tw-c-1")
        assert stored is not None and stored.started_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
        earlier = await desk.post("/api/social/conversations", {**CONVERSATION, "startedAt": "2026-11-20T09:45:00Z"})
        assert earlier.json()["action"] == "updated"
        stored = desk.workspace.social.conversation("twitter", "tw-c-1")
        assert stored is not None and stored.started_at == datetime(2026, 11, 20, 9, 45, tzinfo=UTC)
        await desk.settled()

    sandbox = run_desk(tmp_path, provider, scenario)
    started = [text for _, text in crm_timeline(sandbox, provider) if "Conversation started" in text]
    assert len(started) == 1 and "2026-11-20 10:00 UTC" in started[0], started
