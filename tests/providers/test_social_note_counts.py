"""The social notes each CRM is sent count followers as they are said: "1 follower", "2 followers"."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crm_desktop.domain.models import Contact, SocialPlatform, SocialProfile
from crm_desktop.providers import hubspot_records, pipedrive_records, salesforce_records
from crm_desktop.providers.contract import OutboundRecord

NOTE_BUILDERS: dict[str, Callable[[Contact], OutboundRecord]] = {
    "salesforce": salesforce_records.default_contact_record,
    "hubspot": hubspot_records.default_contact_record,
    "pipedrive": pipedrive_records.default_contact_record,
}


@pytest.mark.parametrize("crm", sorted(NOTE_BUILDERS))
def test_one_follower_is_one_follower_in_the_crm_note(crm: str) -> None:
    contact = Contact(email="ada@example.com", first_name="Ada", social_profiles=[
        SocialProfile(platform=SocialPlatform.TIKTOK, username="adadances", followers=1, engagement=3.0),
        SocialProfile(platform=SocialPlatform.PINTEREST, username="adapins", followers=1_200, engagement=1.0),
    ])
    note = NOTE_BUILDERS[crm](contact).note
    assert note is not None
    assert "1 follower" in note and "1 followers" not in note, note
    assert "1,200 followers" in note, note
