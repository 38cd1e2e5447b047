"""Demo-like marketing data for the People and Attribution tests: contacts and leads with social profiles,
engagements on three campaigns, a conversation and conversions, recorded through the social service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from random import Random

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Lead, SocialPlatform, SocialProfile
from crm_desktop.domain.social import (
    ConversationEvent,
    Conversion,
    EngagementEvent,
    EngagementUser,
    Participant,
)

CAMPAIGNS = ("Black Friday", "Spring Launch", "Webinar Series")
PLATFORMS = (SocialPlatform.TWITTER, SocialPlatform.INSTAGRAM, SocialPlatform.LINKEDIN)
COMPANIES = ("Analytical Engines", "Babbage & Co", "Difference Labs", "Jacquard Looms")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Katherine", "Edsger", "Barbara", "Donald", "Margaret")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Johnson", "Dijkstra", "Liskov", "Knuth", "Hamilton")


def email_of(number: int) -> str:
    """The email of person ``number``."""
    return f"{FIRST_NAMES[number % 8].lower()}.{LAST_NAMES[(number // 8) % 8].lower()}{number}@example.com"


def seed_marketing(workspace: Workspace, people: int = 24, now: datetime | None = None) -> datetime:
    """Store ``people`` contacts (every third one also a lead) and their social activity over the 20 days
    before ``now``; returns ``now``."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    contacts = []
    leads = []
    for number in range(people):
        platform = PLATFORMS[number % 3]
        contact = Contact(
            email=email_of(number),
            first_name=FIRST_NAMES[number % 8],
            last_name=LAST_NAMES[(number // 8) % 8],
            company=COMPANIES[number % 4],
            social_profiles=[SocialProfile(platform=platform, username=f"user{number}", followers=150 * (number + 1))],
        )
        contacts.append(contact)
        if number % 3 == 0:
            leads.append(Lead(email=contact.email, first_name=contact.first_name, last_name=contact.last_name,
                              company=contact.company, source="social",
                              social_profiles=list(contact.social_profiles)))
    workspace.contacts.save_many(contacts)
    workspace.leads.save_many(leads)
    events = []
    spread = Random(2026)  # the same "random" activity on every run
    for number in range(people):
        for step in range(1 + number % 4):
            kind = ("post_view", "like", "click", "comment")[step]
            events.append(EngagementEvent(
                platform=PLATFORMS[(number + step) % 3],
                type=kind,  # type: ignore[arg-type]
                timestamp=now - timedelta(days=spread.randint(2, 20), hours=spread.randint(0, 23)),
                post_id=f"post-{step}",
                campaign=CAMPAIGNS[(number // 2 + step) % 3],
                user=EngagementUser(email=email_of(number)),
            ))
    workspace.social.record_engagements(events)
    workspace.social.record_conversation(ConversationEvent(
        conversation_id="dm-1", platform=SocialPlatform.TWITTER, started_at=now - timedelta(days=2),
        campaign=CAMPAIGNS[0], participant=Participant(email=email_of(0), username="user0"),
    ))
    workspace.social.record_conversions([
        Conversion(email=email_of(number), timestamp=now - timedelta(hours=1), value=Decimal(100 + 10 * number),
                   currency="EUR")
        for number in range(0, people, 3)
    ])
    return now
