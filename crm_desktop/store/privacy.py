"""The personal values the store holds (names, emails, phones, social usernames), so exports can redact them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from crm_desktop.store.database import Database
from crm_desktop.store.models import ContactRow, LeadRow, SocialIdentityRow, SocialProfileRow


def _profile_usernames(profiles: Any) -> Iterator[str]:
    for profile in profiles or []:
        if isinstance(profile, dict) and profile.get("username"):
            yield str(profile["username"])


def personal_values(database: Database) -> set[str]:
    """Every name, email, phone number and social username of the contacts, leads and social identities."""
    found: set[str] = set()
    with database.session() as session:
        for row in session.execute(select(ContactRow.email, ContactRow.first_name, ContactRow.last_name,
                                          ContactRow.phone)):
            found.update(str(value) for value in row if value)
        for row in session.execute(select(LeadRow.email, LeadRow.first_name, LeadRow.last_name,
                                          LeadRow.social_profiles)):
            *plain, profiles = row
            found.update(str(value) for value in plain if value)
            found.update(_profile_usernames(profiles))
        found.update(str(username) for username in session.scalars(select(SocialProfileRow.username)) if username)
        for row in session.execute(select(SocialIdentityRow.username, SocialIdentityRow.email,
                                          SocialIdentityRow.first_name, SocialIdentityRow.last_name)):
            found.update(str(value) for value in row if value)
    return found
