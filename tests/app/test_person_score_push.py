"""A person who is both a contact and a lead sends one engagement score to the CRM: the person's, from both sides,
so a second sync neither writes it over with the contact's profile figures nor pulls that back into the lead."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import (
    Contact,
    Lead,
    SocialPlatform,
    SocialProfile,
)
from crm_desktop.domain.social import EngagementEvent, EngagementUser
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from tests.app.conftest import hubspot_workspace
from tests.support.memory_keyring import MemoryKeyring

NAME = "hubspot-marketing"
ADA = "ada@example.com"


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(SandboxConfig())


@pytest.fixture
def workspace(tmp_path: Path, memory_keyring: MemoryKeyring | None, sandbox: HubSpotSandbox) -> Iterator[Workspace]:
    assert memory_keyring is not None
    opened = hubspot_workspace(tmp_path / "data", memory_keyring, sandbox, NAME)
    try:
        yield opened
    finally:
        opened.close()


def crm_score(sandbox: HubSpotSandbox) -> str | None:
    [ada] = [r for r in sandbox._records["contacts"].values() if r.properties.get("email") == ADA]
    return ada.properties.get("social_engagement_score")


def test_a_contact_and_lead_of_one_person_send_the_same_score(
    workspace: Workspace, sandbox: HubSpotSandbox
) -> None:
    profile = SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=300)
    workspace.contacts.save(Contact(email=ADA, first_name="Ada", last_name="Lovelace", social_profiles=[profile]))
    workspace.leads.save(Lead(email=ADA, first_name="Ada", last_name="Lovelace", social_profiles=[profile]))
    workspace.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.TWITTER, type=kind, timestamp=datetime.now(UTC) - timedelta(days=1),
        post_id="post-1", user=EngagementUser(email=ADA)) for kind in ("like", "comment", "share")])
    lead = workspace.leads.find(ADA)
    assert lead is not None and lead.social_context is not None
    score = lead.social_context.engagement_score
    assert score, "the engagements scored the person"

    first = asyncio.run(workspace.sync.sync(NAME))
    assert first.counts["failed"] == 0
    assert crm_score(sandbox) == str(score)
    second = asyncio.run(workspace.sync.sync(NAME))
    assert (second.counts["created"], second.counts["updated"]) == (0, 0)
    assert crm_score(sandbox) == str(score)
    kept = workspace.leads.find(ADA)
    assert kept is not None and kept.social_context is not None
    assert kept.social_context.engagement_score == score
