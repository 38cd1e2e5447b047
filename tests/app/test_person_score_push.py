"""A person who is both a contact and a lead sends one engagement score to the CRM: the person's, from both sides,
so a second sync neither writes it over with the contact's profile figures nor pulls that back into the lead; a
contact with no score and no profile engagement sends none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import (
    Contact,
    Lead,
    SocialPlatform,
    SocialProfile,
)
from crm_desktop.domain.social import EngagementEvent, EngagementUser
from crm_desktop.sandbox.hubspot import HubSpotSandbox

NAME = "hubspot-marketing"
ADA = "ada@example.com"


def crm_score(hubspot_sandbox: HubSpotSandbox, email: str = ADA) -> str | None:
    [person] = [r for r in hubspot_sandbox._records["contacts"].values() if r.properties.get("email") == email]
    return person.properties.get("social_engagement_score")


def test_a_contact_and_lead_of_one_person_send_the_same_score(
    hubspot_marketing: Workspace, hubspot_sandbox: HubSpotSandbox
) -> None:
    profile = SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=300)
    hubspot_marketing.contacts.save(
        Contact(email=ADA, first_name="Ada", last_name="Lovelace", social_profiles=[profile]))
    hubspot_marketing.leads.save(Lead(email=ADA, first_name="Ada", last_name="Lovelace", social_profiles=[profile]))
    hubspot_marketing.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.TWITTER, type=kind, timestamp=datetime.now(UTC) - timedelta(days=1),
        post_id="post-1", user=EngagementUser(email=ADA)) for kind in ("like", "comment", "share")])
    lead = hubspot_marketing.leads.find(ADA)
    assert lead is not None and lead.social_context is not None
    score = lead.social_context.engagement_score
    assert score, "the engagements scored the person"

    first = asyncio.run(hubspot_marketing.sync.sync(NAME))
    assert first.counts["failed"] == 0
    assert crm_score(hubspot_sandbox) == str(score)
    second = asyncio.run(hubspot_marketing.sync.sync(NAME))
    assert (second.counts["created"], second.counts["updated"]) == (0, 0)
    assert crm_score(hubspot_sandbox) == str(score)
    kept = hubspot_marketing.leads.find(ADA)
    assert kept is not None and kept.social_context is not None
    assert kept.social_context.engagement_score == score


def test_a_contact_never_scored_sends_no_made_up_zero(
    hubspot_marketing: Workspace, hubspot_sandbox: HubSpotSandbox
) -> None:
    # Followers known, engagement never given (stored as the profile's 0) and no activity recorded: the CRM's
    # engagement score stays empty; a profile's own engagement is still the fallback where there is one.
    hubspot_marketing.contacts.save(Contact(email=ADA, first_name="Ada", social_profiles=[
        SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=1200)]))
    hubspot_marketing.contacts.save(Contact(email="bo@example.com", first_name="Bo", social_profiles=[
        SocialProfile(platform=SocialPlatform.TWITTER, username="bo", followers=10, engagement=4.5)]))

    run = asyncio.run(hubspot_marketing.sync.sync(NAME))
    assert (run.counts["created"], run.counts["failed"]) == (2, 0)
    assert crm_score(hubspot_sandbox) is None
    assert crm_score(hubspot_sandbox, "bo@example.com") == "4.5"
    again = asyncio.run(hubspot_marketing.sync.sync(NAME))
    assert (again.counts["created"], again.counts["updated"]) == (0, 0)
