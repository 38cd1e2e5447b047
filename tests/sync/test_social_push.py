"""Social data on a sync: the engagement summary field on every CRM, and Pipedrive's social note (never dropped)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_desktop.app.field_setup import FieldSetupService
from crm_desktop.domain.models import Contact, Provider, SocialPlatform, SocialProfile
from crm_desktop.domain.social import ConversationEvent, EngagementEvent, Message
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from tests.sync.conftest import SyncBench, person, scenario

EMAIL = "person1@example.com"


def record_history(bench: SyncBench) -> None:
    """Ada talks to the brand on Twitter (negative, then positive) and comments on an Instagram post."""
    social = bench.workspace.social
    social.record_conversation(ConversationEvent.model_validate({
        "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-01-10T09:00:00Z",
        "participant": {"email": EMAIL, "username": "ada1"},
    }))
    for number, (hour, sentiment) in enumerate([(9, "negative"), (12, "positive")], start=1):
        social.record_message(Message.model_validate({
            "conversationId": "c-1", "messageId": f"m-{number}", "direction": "inbound",
            "sentAt": f"2026-01-10T{hour:02d}:30:00Z", "text": "hello", "sentiment": sentiment,
        }))
    social.record_engagement(EngagementEvent.model_validate({
        "platform": "instagram", "type": "comment", "timestamp": "2026-01-11T08:00:00Z", "campaign": "spring",
        "user": {"email": EMAIL},
    }))


def ada() -> Contact:
    return person(1, social_profiles=[
        SocialProfile(platform=SocialPlatform.TWITTER, username="ada1", followers=101),
        SocialProfile(platform=SocialPlatform.TIKTOK, username="ada.dances", followers=5000),
    ])


@pytest.mark.parametrize("any_crm", [Provider.SALESFORCE, Provider.HUBSPOT], indirect=True, ids=lambda p: p.value)
@scenario
async def test_the_engagement_summary_reaches_salesforce_and_hubspot(any_crm: SyncBench) -> None:
    any_crm.save(ada())
    record_history(any_crm)
    result = await any_crm.sync()
    assert result.counts["failed"] == 0, result.failures
    sandbox = any_crm.sandbox
    if isinstance(sandbox, SalesforceSandbox):
        [record] = sandbox.records["Contact"].values()
        summary = record["social_touchpoints__c"]
    else:
        assert isinstance(sandbox, HubSpotSandbox)
        [contact] = sandbox._records["contacts"].values()
        summary = contact.properties["social_touchpoints"]
    assert summary.splitlines()[:3] == [
        "Conversations: 1 (Twitter/X 1)",
        "Last interaction: 2026-01-11 08:00 UTC (comment on Instagram)",
        "Sentiment trend: improving, latest positive (2 readings)",
    ]
    assert "- 2026-01-11 08:00 UTC Instagram comment (spring)" in summary


@pytest.mark.parametrize("any_crm", [Provider.PIPEDRIVE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_pipedrive_gets_the_social_fields_by_name_and_a_note_written_once(any_crm: SyncBench) -> None:
    sandbox = any_crm.sandbox
    assert isinstance(sandbox, PipedriveSandbox)
    report = await FieldSetupService(any_crm.workspace.crm).ensure_social_fields(any_crm.name)
    assert report.ok
    any_crm.save(ada())
    record_history(any_crm)
    result = await any_crm.sync()
    assert result.counts["failed"] == 0, result.failures
    keys = {f.name: f.key for f in sandbox.person_fields if f.custom}
    [ada_person] = sandbox.persons.values()
    assert ada_person.custom_fields[keys["twitter_username"]] == "ada1"
    [note] = sandbox.notes.values()
    assert note.person_id == ada_person.id
    # What no field carries is in the note: the TikTok profile, the company, the engagement history.
    assert "@ada.dances" in note.content and "Analytical Engines" in note.content
    assert "Engagement history:" in note.content and "Conversations: 1 (Twitter/X 1)" in note.content
    assert "@ada1" not in note.content  # the handle is in its own field
    # An unchanged person is not pushed again; a changed one keeps the one note while its text is the same.
    await any_crm.sync()
    any_crm.change(EMAIL, first_name="Adeline")
    result = await any_crm.sync()
    assert result.counts["failed"] == 0, result.failures
    assert len(sandbox.notes) == 1
    # New history and a push: the note is brought up to date in place (one current note, pinned, not a pile).
    any_crm.workspace.social.record_engagement(EngagementEvent.model_validate({
        "platform": "twitter", "type": "share", "timestamp": datetime(2026, 1, 12, tzinfo=UTC).isoformat(),
        "user": {"email": EMAIL},
    }))
    any_crm.change(EMAIL, first_name="Ada")
    await any_crm.sync()
    [current] = sandbox.notes.values()
    assert current.id == note.id and current.pinned == {"person": True}
    assert "Last interaction: 2026-01-12 00:00 UTC (share on Twitter/X)" in current.content


@pytest.mark.parametrize("any_crm", [Provider.SALESFORCE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_a_salesforce_pull_reads_every_mapped_field(any_crm: SyncBench) -> None:
    # twitter_url__c is in no fixed read list: only the mapping asks for it.
    any_crm.save(ada())
    first = await any_crm.sync()
    assert first.counts["failed"] == 0, first.failures
    [crm_id] = any_crm.sandbox.records["Contact"]  # type: ignore[attr-defined]
    await any_crm.edit(crm_id, {"twitter_url__c": "https://x.com/ada_lovelace"})
    result = await any_crm.sync()
    assert result.counts["failed"] == 0, result.failures
    twitter = next(p for p in any_crm.contact(EMAIL).social_profiles if p.platform is SocialPlatform.TWITTER)
    assert twitter.url == "https://x.com/ada_lovelace" and twitter.username == "ada1"


@pytest.mark.parametrize("any_crm", [Provider.PIPEDRIVE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_pipedrive_social_note_follows_a_change_no_field_carries(any_crm: SyncBench) -> None:
    # With no social fields in Pipedrive, the note is the only place the CRM sees followers and scores: a change of
    # them alone (no mapped field changed) must still bring the note up to date, once.
    sandbox = any_crm.sandbox
    assert isinstance(sandbox, PipedriveSandbox)
    any_crm.save(ada())
    first = await any_crm.sync()
    assert first.counts["failed"] == 0, first.failures
    [note] = sandbox.notes.values()
    assert "5,000 followers" in note.content
    grown = [p.model_copy(update={"followers": 7500, "engagement": 41.7}) if p.username == "ada.dances" else p
             for p in ada().social_profiles]
    any_crm.change(EMAIL, social_profiles=grown)
    preview = await any_crm.sync(dry_run=True)
    [update] = [c for c in preview.plan.changes if c.action.value == "update"]
    assert update.email == EMAIL and update.reason == "its social note changed"
    assert len(sandbox.notes) == 1  # a dry run writes nothing
    result = await any_crm.sync()
    assert result.counts["failed"] == 0, result.failures
    assert result.counts["updated"] == 1
    [current] = sandbox.notes.values()  # written over in place: one note, always current
    assert current.id == note.id and "7,500 followers, engagement score 41.7" in current.content
    # Nothing changed since: nothing is sent, and the note is left alone.
    stamp = current.update_time
    again = await any_crm.sync()
    assert again.counts["updated"] == 0 and len(sandbox.notes) == 1 and current.update_time == stamp


@pytest.mark.parametrize("any_crm", [Provider.PIPEDRIVE], indirect=True, ids=lambda p: p.value)
@scenario
async def test_undoing_a_run_that_filled_a_pipedrive_number_field_blanks_it_again(any_crm: SyncBench) -> None:
    # The undo sends the number field's old value, blank: the adapter read "" as a number and refused it, so the
    # undo failed both records ("'' is not a number") and put none of the run's values back.
    sandbox = any_crm.sandbox
    assert isinstance(sandbox, PipedriveSandbox)
    any_crm.save(person(1))
    record_history(any_crm)
    assert (await any_crm.sync()).counts["failed"] == 0
    # The fields are created after the first run: the next push of the person fills them.
    assert (await FieldSetupService(any_crm.workspace.crm).ensure_social_fields(any_crm.name)).ok
    any_crm.change(EMAIL, phone="+14155550999")
    filled = await any_crm.sync()
    assert filled.counts == {**filled.counts, "updated": 1, "failed": 0}, filled.failures
    keys = {f.name: f.key for f in sandbox.person_fields if f.custom}
    [crm_person] = sandbox.persons.values()
    assert crm_person.custom_fields[keys["twitter_username"]] == "ada1"
    assert crm_person.custom_fields[keys["social_engagement_score"]] is not None

    report = await any_crm.service.undo(filled.run_id or 0)
    undo_run, log = any_crm.service.run(report.run_id)
    assert undo_run.status.value == "succeeded", [entry.message for entry in log]
    assert report.restored_crm >= 3 and not report.kept, report.kept
    [crm_person] = sandbox.persons.values()
    assert not crm_person.custom_fields.get(keys["twitter_username"])  # a text field blank
    assert crm_person.custom_fields.get(keys["social_engagement_score"]) is None
