"""A person saved after their social activity was recorded (a file's import, a CRM's pull) has the score their
activity gives at once, in the People list as in ``social score``, not only after the daily rescore."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import EngagementEvent, EngagementUser, PersonRef
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import CONTACTS, HubSpotSandbox
from crm_desktop.store.people_store import PeopleQuery, PeopleStore
from tests.app.conftest import hubspot_workspace
from tests.support.memory_keyring import MemoryKeyring

NAME = "hubspot-marketing"
SAM = "sam@example.com"


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


def engaged(workspace: Workspace, email: str) -> float:
    """Two engagements of ``email`` recorded while nobody has that email: the score they give."""
    workspace.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.TWITTER, type=kind, timestamp=datetime.now(UTC) - timedelta(hours=2),
        post_id="post-1", user=EngagementUser(email=email)) for kind in ("like", "comment")])
    score = workspace.social.engagement_score(PersonRef(email=email)).score
    assert score > 0
    return score


def listed_score(workspace: Workspace, obj: RecordObject, email: str) -> float | None:
    [line] = [line for line in PeopleStore(workspace.database).page(PeopleQuery(obj=obj), None, 50)
              if line.email == email]
    return line.score


@pytest.mark.parametrize("obj", [RecordObject.CONTACT, RecordObject.LEAD])
def test_an_imported_person_gets_the_score_of_earlier_activity(
    workspace: Workspace, tmp_path: Path, obj: RecordObject
) -> None:
    score = engaged(workspace, SAM)
    people = tmp_path / "people.csv"
    people.write_text(f"email,firstName\n{SAM},Sam\nnobody@example.com,No\n", encoding="utf-8")
    report = workspace.sync.import_file(people, obj)
    assert report.created == 2
    assert listed_score(workspace, obj, SAM) == score
    assert listed_score(workspace, obj, "nobody@example.com") is None, "no activity, no score"
    assert PeopleStore(workspace.database).count(PeopleQuery(obj=obj, score_min=1)) == 1


def test_a_pulled_contact_gets_the_score_of_earlier_activity(workspace: Workspace, sandbox: HubSpotSandbox) -> None:
    score = engaged(workspace, SAM)
    sandbox._create(CONTACTS, {"email": SAM, "firstname": "Sam"}, None, inject_faults=False)
    result = asyncio.run(workspace.sync.sync(NAME, SyncDirection.PULL))
    assert result.counts["created"] >= 1, result.counts
    assert listed_score(workspace, RecordObject.CONTACT, SAM) == score
