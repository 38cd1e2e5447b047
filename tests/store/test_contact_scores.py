"""A contact's own engagement score: written when its person's events are recorded, lead or not, without counting
as a change of the contact; and migration 0014, which starts each contact's score at its lead's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from crm_desktop.app.social import SocialService
from crm_desktop.domain.models import Contact, Lead, SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import (
    ConversationEvent,
    EngagementEvent,
    EngagementUser,
    Message,
    PersonRef,
    ScoringSettings,
    TouchpointType,
)
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.people_store import PeopleColumn, PeopleQuery, PeopleStore
from crm_desktop.store.repositories import ContactStore, LeadStore

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def like(email: str, hours_ago: int) -> EngagementEvent:
    return EngagementEvent(platform=SocialPlatform.INSTAGRAM, type=TouchpointType.LIKE,
                           timestamp=NOW - timedelta(hours=hours_ago), post_id=f"post-{hours_ago}",
                           user=EngagementUser(email=email))


def updated_at(database: Database) -> dict[str, object]:
    with database.engine.connect() as connection:
        return {email: when for email, when in connection.execute(text("SELECT email, updated_at FROM contacts"))}


def test_a_contact_without_a_lead_gets_the_score_its_detail_shows(database: Database) -> None:
    ContactStore(database).save_many([Contact(email="ada@example.com", first_name="Ada"),
                        Contact(email="grace@example.com", first_name="Grace")])
    updated_before = updated_at(database)
    social = SocialService(database, clock=lambda: NOW)
    social.record_engagements([like("ada@example.com", hours) for hours in (1, 2, 3)])

    lines = {line.email: line for line in PeopleStore(database).page(PeopleQuery(), None, 10)}
    shown = social.engagement_score(PersonRef(email="ada@example.com")).score
    assert shown > 0 and lines["ada@example.com"].score == shown
    assert lines["grace@example.com"].score is None, "no activity, no score"
    assert updated_at(database) == updated_before, "a score is not an edit"

    social.record_engagements([like("ada@example.com", 0)])  # more activity, a higher score
    again = PeopleStore(database).page(PeopleQuery(sort=PeopleColumn.SCORE, descending=True), None, 10)
    assert again[0].email == "ada@example.com" and again[0].score is not None and again[0].score > shown
    assert PeopleStore(database).count(PeopleQuery(score_min=shown)) == 1


def test_a_person_who_is_both_has_one_score_in_both_lists(database: Database) -> None:
    ContactStore(database).save_many([Contact(email="alan@example.com")])
    LeadStore(database).save_many([Lead(email="alan@example.com")])
    SocialService(database, clock=lambda: NOW).record_engagements([like("alan@example.com", 5)])
    people = PeopleStore(database)
    [contact] = people.page(PeopleQuery(obj=RecordObject.CONTACT), None, 5)
    [lead] = people.page(PeopleQuery(obj=RecordObject.LEAD), None, 5)
    assert contact.score is not None and contact.score == lead.score


def test_0014_starts_each_contact_at_its_leads_score(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0013")
    # The rows as version 0013 of the schema holds them (the models already have the new column).
    with blank_database.engine.begin() as connection:
        for email in ("lead@example.com", "only@example.com"):
            connection.execute(text(
                "INSERT INTO contacts (email, custom_fields, created_at, updated_at) "
                f"VALUES ('{email}', '{{}}', '2026-12-01 10:00:00', '2026-12-01 10:00:00')"))
        connection.execute(text(
            "INSERT INTO leads (email, status, social_profiles, custom_fields, engagement_score, created_at, "
            "updated_at) VALUES ('lead@example.com', 'new', '[]', '{}', 42.5, '2026-12-01 10:00:00', "
            "'2026-12-01 10:00:00')"))
    blank_database.migrate()
    with blank_database.engine.connect() as connection:
        scores = dict(connection.execute(text("SELECT email, engagement_score FROM contacts")).all())
    assert scores == {"lead@example.com": 42.5, "only@example.com": None}
    migrate_to(blank_database.engine, "0013", downgrade=True)
    with blank_database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM contacts")).scalar() == 2


def stored_scores(database: Database) -> dict[str, float | None]:
    with database.engine.connect() as connection:
        contacts = dict(connection.execute(text("SELECT email, engagement_score FROM contacts")).all())
        leads = dict(connection.execute(text("SELECT email, engagement_score FROM leads")).all())
    return {**{f"contact {e}": s for e, s in contacts.items()}, **{f"lead {e}": s for e, s in leads.items()}}


def test_a_rescore_brings_every_stored_score_to_what_the_detail_shows_now(database: Database) -> None:
    """Scores decay and follow the weights: the stored ones (the People list's) are recomputed a page at a time,
    for everyone with activity, the same as one person's score is worked out; a CRM's score is left alone."""
    people = [f"p{n}@example.com" for n in range(7)]
    ContactStore(database).save_many([Contact(email=email) for email in people[:5]])
    LeadStore(database).save_many([Lead(email=email) for email in people[3:]])
    LeadStore(database).save_many([Lead.model_validate({
        "email": "from-crm@example.com",
        "socialContext": {"platform": "twitter", "engagementScore": 64.0}})])
    clock = [NOW]
    social = SocialService(database, clock=lambda: clock[0])
    social.record_engagements([like(email, hours) for n, email in enumerate(people) for hours in range(n + 1)])
    social.record_conversations([ConversationEvent.model_validate({
        "conversationId": "ig-1", "platform": "instagram", "startedAt": (NOW - timedelta(hours=2)).isoformat(),
        "participant": {"email": people[0], "username": "p0", "followers": 25_000}})])
    social.record_messages([Message.model_validate({
        "conversationId": "ig-1", "messageId": f"m-{n}", "direction": "inbound" if n % 2 else "outbound",
        "sentAt": (NOW - timedelta(minutes=90 - n)).isoformat(), "text": "Hi"}) for n in range(4)])
    contacts_updated = updated_at(database)

    def shown() -> dict[str, float | None]:
        expected: dict[str, float | None] = {}
        for email in people:
            score = social.engagement_score(PersonRef(email=email)).score
            if email in people[:5]:
                expected[f"contact {email}"] = score
            if email in people[3:]:
                expected[f"lead {email}"] = score
        return {**expected, "lead from-crm@example.com": 64.0}

    assert stored_scores(database) == shown(), "as of each person's latest event"
    before = stored_scores(database)

    clock[0] = NOW + timedelta(days=20)  # twenty days on: every score has decayed
    assert social.rescore_everyone(page_size=2) == 7
    after = stored_scores(database)
    assert after == shown()
    assert all(after[k] < before[k] for k in after if k != "lead from-crm@example.com")  # type: ignore[operator]

    social.set_scoring_settings(ScoringSettings.model_validate({**social.scoring_settings().to_wire(),
                                                                "weights": {"like": 9}}))
    assert social.rescore_everyone(page_size=3) == 7
    assert stored_scores(database) == shown() != after
    assert updated_at(database) == contacts_updated, "a rescore is not an edit of the contacts"
