"""A person saved after their social activity was recorded (a file's import, a CRM's pull) has the score their
activity gives at once, in the People list as in ``social score``, not only after the daily rescore."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import EngagementEvent, EngagementUser, PersonRef
from crm_desktop.sandbox.hubspot import CONTACTS, HubSpotSandbox
from crm_desktop.store.people_store import PeopleQuery, PeopleStore

NAME = "hubspot-marketing"
SAM = "sam@example.com"


def engaged(hubspot_marketing: Workspace, email: str) -> float:
    """Two engagements of ``email`` recorded while nobody has that email: the score they give."""
    hubspot_marketing.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.TWITTER, type=kind, timestamp=datetime.now(UTC) - timedelta(hours=2),
        post_id="post-1", user=EngagementUser(email=email)) for kind in ("like", "comment")])
    score = hubspot_marketing.social.engagement_score(PersonRef(email=email)).score
    assert score > 0
    return score


def listed_score(hubspot_marketing: Workspace, obj: RecordObject, email: str) -> float | None:
    [line] = [line for line in PeopleStore(hubspot_marketing.database).page(PeopleQuery(obj=obj), None, 50)
              if line.email == email]
    return line.score


@pytest.mark.parametrize("obj", [RecordObject.CONTACT, RecordObject.LEAD])
def test_an_imported_person_gets_the_score_of_earlier_activity(
    hubspot_marketing: Workspace, tmp_path: Path, obj: RecordObject
) -> None:
    score = engaged(hubspot_marketing, SAM)
    people = tmp_path / "people.csv"
    people.write_text(f"email,firstName\n{SAM},Sam\nnobody@example.com,No\n", encoding="utf-8")
    report = hubspot_marketing.sync.import_file(people, obj)
    assert report.created == 2
    assert listed_score(hubspot_marketing, obj, SAM) == score
    assert listed_score(hubspot_marketing, obj, "nobody@example.com") is None, "no activity, no score"
    assert PeopleStore(hubspot_marketing.database).count(PeopleQuery(obj=obj, score_min=1)) == 1


def test_a_pulled_contact_gets_the_score_of_earlier_activity(
    hubspot_marketing: Workspace, hubspot_sandbox: HubSpotSandbox
) -> None:
    score = engaged(hubspot_marketing, SAM)
    hubspot_sandbox._create(CONTACTS, {"email": SAM, "firstname": "Sam"}, None, inject_faults=False)
    result = asyncio.run(hubspot_marketing.sync.sync(NAME, SyncDirection.PULL))
    assert result.counts["created"] >= 1, result.counts
    assert listed_score(hubspot_marketing, RecordObject.CONTACT, SAM) == score
