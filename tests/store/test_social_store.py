"""Social data in the store: identity stitching (username first, email later), idempotent replay, messages before
their conversation, conversions kept once; on SQLite and, in CI's second pass, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from crm_desktop.domain.models import Contact, Lead, SocialPlatform
from crm_desktop.domain.social import (
    Campaign,
    ConversationEvent,
    Conversion,
    EngagementEvent,
    EventAction,
    Message,
)
from crm_desktop.store.database import Database, _alembic_config
from crm_desktop.store.models import ConversationRow, SocialIdentityRow, TouchpointRow
from crm_desktop.store.repositories import ContactStore, LeadStore, NotFoundError
from crm_desktop.store.social_store import Person, SocialStore

pytestmark = pytest.mark.postgres


def engagement(username: str | None = None, email: str | None = None, **fields: Any) -> EngagementEvent:
    user = {k: v for k, v in {"username": username, "email": email}.items() if v is not None}
    body = {"platform": "instagram", "type": "like", "timestamp": "2026-11-20T10:00:00Z", "user": user, **fields}
    return EngagementEvent.model_validate(body)


def conversation(participant: dict[str, Any], conversation_id: str = "ig-1", **fields: Any) -> ConversationEvent:
    body = {"conversationId": conversation_id, "platform": "instagram", "startedAt": "2026-11-22T09:00:00Z",
            "participant": participant, **fields}
    return ConversationEvent.model_validate(body)


def message(message_id: str, direction: str = "inbound", **fields: Any) -> Message:
    body = {"conversationId": "ig-1", "messageId": message_id, "direction": direction,
            "sentAt": "2026-11-22T09:05:00Z", "text": "Do you ship to Lisbon?", **fields}
    return Message.model_validate(body)


def touchpoint_people(database: Database) -> list[tuple[str | None, str]]:
    with database.session() as session:
        rows = session.execute(
            select(TouchpointRow.email, TouchpointRow.type).order_by(TouchpointRow.timestamp, TouchpointRow.id)
        ).all()
        return [(email, kind.value) for email, kind in rows]


def test_username_first_email_later_moves_the_earlier_touchpoints(database: Database) -> None:
    store = SocialStore(database)
    first = store.record_engagements([
        engagement("@Ana.Lopez", timestamp="2026-11-18T10:00:00Z", campaign="Winter Sale"),
        engagement("ana.lopez", type="comment", timestamp="2026-11-19T10:00:00Z", postId="p-9"),
    ])
    assert [r.person.email for r in first] == [None, None]
    assert first[0].person.identity_id == first[1].person.identity_id  # one anonymous person, case ignored
    assert touchpoint_people(database) == [(None, "like"), (None, "comment")]

    started = store.record_conversations(
        [conversation({"email": "Ana@Example.com", "username": "ana.lopez", "firstName": "Ana", "followers": 870})]
    )

    assert started[0].action is EventAction.CREATED
    assert started[0].person.email == "ana@example.com"
    assert started[0].linked_touchpoints == 2
    assert touchpoint_people(database) == [("ana@example.com", "like"), ("ana@example.com", "comment"),
                                           ("ana@example.com", "dm")]
    contact = ContactStore(database).find("ana@example.com")
    assert contact is not None and contact.first_name == "Ana"
    assert [(p.platform, p.username, p.followers) for p in contact.social_profiles] == [
        (SocialPlatform.INSTAGRAM, "ana.lopez", 870)
    ]
    # Later events by username alone now belong to Ana.
    later = store.record_engagements([engagement("ANA.LOPEZ", type="share", timestamp="2026-11-25T10:00:00Z")])
    assert later[0].person.email == "ana@example.com"


def test_a_conversation_by_a_username_already_linked_upserts_that_persons_contact(database: Database) -> None:
    # The engagement links the username to the email first; the conversation names the username alone. It was
    # recorded under the email with no local contact: nothing for the workflows or the hourly job to push.
    store = SocialStore(database)
    store.record_engagements([engagement("carl_m", email="carl@example.com")])

    [started] = store.record_conversations(
        [conversation({"username": "@Carl_M", "firstName": "Carl", "lastName": "Marx", "followers": 300})])

    assert started.person.email == "carl@example.com"
    contact = ContactStore(database).find("carl@example.com")
    assert contact is not None and (contact.first_name, contact.last_name) == ("Carl", "Marx")
    assert [(p.platform, p.username, p.followers) for p in contact.social_profiles] == [
        (SocialPlatform.INSTAGRAM, "carl_m", 300)]


def test_a_username_on_a_contact_s_profile_is_that_contact(database: Database) -> None:
    ContactStore(database).save(
        Contact.model_validate(
            {"email": "bo@example.com", "socialProfiles": [{"platform": "instagram", "username": "BoBuilds"}]}
        )
    )
    store = SocialStore(database)

    [recorded] = store.record_engagements([engagement("@bobuilds")])

    assert recorded.person.email == "bo@example.com"
    assert touchpoint_people(database) == [("bo@example.com", "like")]


def test_a_contacts_import_that_gives_the_username_links_the_anonymous_person(database: Database) -> None:
    store = SocialStore(database)
    store.record_engagements([engagement("cy_runs"), engagement("cy_runs", type="click")])
    assert touchpoint_people(database) == [(None, "like"), (None, "click")]
    ContactStore(database).save(
        Contact.model_validate(
            {"email": "cy@example.com", "socialProfiles": [{"platform": "instagram", "username": "Cy_Runs"}]}
        )
    )

    assert store.link_identities_from_profiles() == 2

    assert touchpoint_people(database) == [("cy@example.com", "like"), ("cy@example.com", "click")]
    assert store.link_identities_from_profiles() == 0


def test_an_engagement_by_email_of_a_lead_needs_no_contact(database: Database) -> None:
    LeadStore(database).save(Lead(email="dee@example.com"))
    store = SocialStore(database)

    store.record_engagements([engagement(email="DEE@example.com")])

    assert touchpoint_people(database) == [("dee@example.com", "like")]
    assert ContactStore(database).count() == 0
    assert [t.type.value for t in store.touches("dee@example.com")] == ["like"]


def test_re_delivered_events_change_nothing(database: Database) -> None:
    store = SocialStore(database)
    events = [engagement("eve"), engagement("eve", type="share", campaign="Launch")]
    chat = conversation({"username": "eve", "email": "eve@example.com"}, campaign="Launch")
    messages = [message("m-1", sentiment="positive"), message("m-2", "outbound", sentAt="2026-11-22T09:06:00Z")]
    assert {r.action for r in store.record_engagements(events)} == {EventAction.CREATED}
    assert store.record_conversations([chat])[0].action is EventAction.CREATED
    assert {r.action for r in store.record_messages(messages)} == {EventAction.CREATED}
    counts = store.counts()

    again = [
        *store.record_engagements(events),
        *store.record_conversations([chat]),
        *store.record_messages(messages),
        # the same engagement re-delivered with the email added is still the same engagement
        *store.record_engagements([engagement("eve", email="eve@example.com")]),
    ]

    assert {r.action for r in again} == {EventAction.UNCHANGED}
    assert store.counts() == counts == {
        "identities": 1, "conversations": 1, "messages": 2, "touchpoints": 3, "campaigns": 1, "conversions": 0
    }


def test_an_edited_message_is_updated_and_counts_follow(database: Database) -> None:
    store = SocialStore(database)
    store.record_conversations([conversation({"username": "fay"})])
    store.record_messages([message("m-1"), message("m-2", "outbound", sentAt="2026-11-22T10:00:00Z")])

    [edited] = store.record_messages([message("m-1", text="Do you ship to Porto?", sentiment="mixed")])

    assert edited.action is EventAction.UPDATED
    stored = store.conversation(SocialPlatform.INSTAGRAM, "ig-1")
    assert stored is not None
    assert (stored.messages_in, stored.messages_out) == (1, 1)
    assert stored.last_message_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert stored.latest_sentiment is not None and stored.latest_sentiment.value == "mixed"


def test_messages_before_their_conversation_are_kept_and_counted_when_it_arrives(database: Database) -> None:
    store = SocialStore(database)
    early = store.record_messages([message("m-1", sentiment="negative"), message("m-2")])
    assert [r.person for r in early] == [Person(None), Person(None)]

    store.record_conversations([conversation({"email": "gil@example.com"})])

    stored = store.conversation(SocialPlatform.INSTAGRAM, "ig-1")
    assert stored is not None
    assert (stored.messages_in, stored.messages_out, stored.latest_sentiment) == (2, 0, "negative")
    assert stored.participant.email == "gil@example.com"


def test_many_usernames_linked_in_one_batch_each_take_their_own_earlier_rows(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linking is done a few statements per chunk of identities: with chunks of 3, seven people span three chunks.
    monkeypatch.setattr("crm_desktop.store.database.IN_LIST_SIZE", 3)
    store = SocialStore(database)
    people = [f"fan{n}" for n in range(7)]
    store.record_engagements([
        engagement(name, type=kind, timestamp=f"2026-11-{10 + n:02d}T10:00:00Z", postId=f"p-{n}")
        for number, name in enumerate(people) for n, kind in enumerate(["like", "conversion", "share"][:1 + number % 3])
    ] + [engagement("stranger", timestamp="2026-11-09T10:00:00Z")])
    store.record_conversations([conversation({"username": name}, conversation_id=f"ig-{name}") for name in people[:4]])

    linked = store.record_engagements([engagement(name, email=f"{name}@example.com", type="click", postId="x")
                                       for name in people])

    # Each linking event moved its own person's earlier touchpoints (engagements, and the conversation's dm).
    assert [r.linked_touchpoints for r in linked] == [1 + n % 3 + (n < 4) for n in range(7)]
    with database.session() as session:
        rows = session.execute(select(SocialIdentityRow.username, TouchpointRow.email, TouchpointRow.type)
                               .join(TouchpointRow, TouchpointRow.identity_id == SocialIdentityRow.id)).all()
        assert {(name, email) for name, email, _ in rows} == {
            *((name, f"{name}@example.com") for name in people), ("stranger", None)}
        assert sorted(session.execute(select(ConversationRow.conversation_id, ConversationRow.email)).all()) == [
            (f"ig-{name}", f"{name}@example.com") for name in people[:4]]
    # A conversion engagement recorded by username becomes that person's conversion once linked, once.
    assert sorted(c.email for c in store.conversions()) == [f"{people[n]}@example.com" for n in (1, 2, 4, 5)]
    assert store.link_identities_from_profiles() == 0 and len(store.conversions()) == 4


def test_a_batch_of_conversations_reads_its_people_once_and_keeps_each_event_s_effect(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Conversations, contacts and touchpoints are read for the whole batch a chunk at a time (chunks of 2 here):
    # later events of the batch must still see what earlier ones wrote.
    monkeypatch.setattr("crm_desktop.store.database.IN_LIST_SIZE", 2)
    ContactStore(database).save(Contact(email="kai@example.com", first_name="Kai"))
    store = SocialStore(database)
    store.record_messages([message("m-0", conversationId="ig-5", sentiment="negative")])
    store.record_engagements([engagement("lia", email="lia@example.com")])
    events = [
        conversation({"email": "kai@example.com", "lastName": "Kato", "username": "kai_k"}, "ig-1",
                     campaign="Autumn", platform="twitter"),
        conversation({"email": "new@example.com", "firstName": "Nia"}, "ig-2", campaign="Autumn"),
        conversation({"email": "new@example.com", "firstName": "Other", "lastName": "Nash"}, "ig-3"),
        conversation({"username": "@LIA", "firstName": "Lia", "followers": 40}, "ig-4"),
        conversation({"username": "kai_k"}, "ig-5", platform="twitter"),
        conversation({"email": "kai@example.com", "username": "kai_k"}, "ig-1", platform="twitter",
                     startedAt="2026-11-22T08:00:00Z"),
    ]

    recorded = store.record_conversations(events)

    assert [(r.action, r.person.email) for r in recorded] == [
        (EventAction.CREATED, "kai@example.com"), (EventAction.CREATED, "new@example.com"),
        (EventAction.CREATED, "new@example.com"), (EventAction.CREATED, "lia@example.com"),
        (EventAction.CREATED, "kai@example.com"), (EventAction.UPDATED, "kai@example.com")]
    people = ContactStore(database).find_many(["kai@example.com", "new@example.com", "lia@example.com"])
    assert {email: (c.first_name, c.last_name) for email, c in people.items()} == {
        "kai@example.com": ("Kai", "Kato"), "new@example.com": ("Nia", "Nash"), "lia@example.com": ("Lia", None)}
    assert [(p.platform.value, p.username) for p in people["kai@example.com"].social_profiles] == [
        ("twitter", "kai_k")]
    assert [(p.username, p.followers) for p in people["lia@example.com"].social_profiles] == [("lia", 40)]
    assert [(c.name, c.platform) for c in store.campaigns()] == [("Autumn", SocialPlatform.TWITTER)]
    first = store.conversation(SocialPlatform.TWITTER, "ig-1")
    assert first is not None and first.started_at == datetime(2026, 11, 22, 8, tzinfo=UTC)
    late = store.conversation(SocialPlatform.TWITTER, "ig-5")
    assert late is not None and (late.participant.username, late.messages_in, late.latest_sentiment) == (
        "kai_k", 1, "negative")
    assert store.counts()["touchpoints"] == 6 and store.counts()["conversations"] == 5
    assert [t.timestamp for t in store.touches("kai@example.com")] == [
        datetime(2026, 11, 22, 8, tzinfo=UTC), datetime(2026, 11, 22, 9, tzinfo=UTC)]


def test_a_conversation_of_an_anonymous_participant_joins_the_email_later(database: Database) -> None:
    store = SocialStore(database)
    store.record_conversations([conversation({"username": "hal"})])
    with database.session() as session:
        assert session.scalars(select(ConversationRow.email)).all() == [None]

    store.record_engagements([engagement("hal", email="hal@example.com")])

    with database.session() as session:
        assert session.scalars(select(ConversationRow.email)).all() == ["hal@example.com"]
        identity = session.scalars(select(SocialIdentityRow)).one()
        assert (identity.username, identity.email) == ("hal", "hal@example.com")


def test_conversions_are_kept_once_per_external_id_and_follow_its_value(database: Database) -> None:
    store = SocialStore(database)
    won = {"email": "ivy@example.com", "timestamp": "2026-11-28T15:00:00Z", "value": "1200.50", "currency": "eur",
           "source": "crm_pull", "externalId": "deal-7", "integration": "Pipedrive"}
    assert store.record_conversions([Conversion.model_validate(won)])[0].action is EventAction.CREATED
    assert store.record_conversions([Conversion.model_validate(won)])[0].action is EventAction.UNCHANGED

    [edited] = store.record_conversions([Conversion.model_validate({**won, "value": "1500"})])

    assert edited.action is EventAction.UPDATED
    [stored] = store.conversions()
    assert (stored.email, str(stored.value), stored.currency) == ("ivy@example.com", "1500.00", "EUR")


def test_a_batch_is_all_or_nothing(database: Database) -> None:
    store = SocialStore(database)
    good = conversation({"username": "jo"}, conversation_id="ig-2")
    # Built without validation, a message with a naive time reaches the store, which refuses it: the
    # conversation recorded before it in the same batch is rolled back with it.
    bad = Message.model_construct(conversation_id="ig-2", message_id="m-1", direction="inbound",
                                  sent_at=datetime(2026, 11, 22), text="x", sentiment=None)

    with pytest.raises(StatementError, match="naive datetime"):
        store.record_all([good], [bad], [])

    assert store.counts() == dict.fromkeys(store.counts(), 0)


def test_migration_0004_carries_old_touchpoints_over_by_the_contact_s_email(blank_database: Database) -> None:
    config = _alembic_config(blank_database.engine)
    with blank_database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(
            text("INSERT INTO contacts (email, custom_fields, created_at, updated_at) "
                 "VALUES ('kim@example.com', '{}', :at, :at)"),
            {"at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
        connection.execute(text(
            "INSERT INTO touchpoints (contact_id, timestamp, platform, type, campaign) "
            "SELECT id, :at, 'linkedin', 'comment', 'Webinar' FROM contacts"
        ), {"at": datetime(2026, 11, 2, 8, tzinfo=UTC)})

    blank_database.migrate()

    [touch] = SocialStore(blank_database).touches("kim@example.com")
    assert (touch.timestamp, touch.platform.value, touch.type.value, touch.campaign) == (
        datetime(2026, 11, 2, 8, tzinfo=UTC), "linkedin", "comment", "Webinar"
    )


def test_a_conversation_remembers_its_crm_record_per_integration(database: Database) -> None:
    store = SocialStore(database)
    store.record_conversations([conversation({"email": "lou@example.com"})])

    assert store.link_conversation(SocialPlatform.INSTAGRAM, "ig-1", 3, "0035g00000XyZ")
    assert not store.link_conversation(SocialPlatform.INSTAGRAM, "ig-1", 3, "0035g00000XyZ")
    assert store.link_conversation(SocialPlatform.INSTAGRAM, "ig-1", 7, "901")

    stored = store.conversation(SocialPlatform.INSTAGRAM, "ig-1")
    assert stored is not None and stored.crm_links == {"3": "0035g00000XyZ", "7": "901"}
    with pytest.raises(NotFoundError):
        store.link_conversation(SocialPlatform.TWITTER, "ig-1", 3, "x")


def test_campaigns_are_created_on_first_mention_and_kept_by_name(database: Database) -> None:
    store = SocialStore(database)
    store.record_engagements([engagement("mo", campaign="Spring"), engagement("mo", type="share", campaign="Spring")])
    assert [(c.name, c.platform) for c in store.campaigns()] == [("Spring", SocialPlatform.INSTAGRAM)]

    spring = Campaign(name="Spring", platform="instagram", startsAt="2026-03-01T00:00:00Z", tags=["q1", "retail"])
    assert store.save_campaign(spring) is EventAction.UPDATED
    assert store.save_campaign(spring) is EventAction.UNCHANGED
    assert store.campaigns()[0].tags == ["q1", "retail"]


def test_many_conversions_in_one_batch_are_each_kept_once_and_follow_their_values(database: Database) -> None:
    """More conversions than one read holds, in one call: stored ones updated or left, new ones created, and the
    same conversion twice in the batch created once (then left, or updated to the later value)."""
    store = SocialStore(database)

    def won(n: int, value: str = "100") -> Conversion:
        return Conversion.model_validate({
            "email": f"buyer{n}@example.com", "timestamp": f"2026-11-{1 + n % 28:02d}T15:00:00Z", "value": value,
            "currency": "eur", "source": "crm_pull", "externalId": f"deal-{n}", "integration": "Pipedrive"})

    def walk_in(n: int) -> Conversion:
        return Conversion.model_validate({"email": f"walkin{n}@example.com", "timestamp": "2026-11-20T10:00:00Z",
                                          "value": "20", "currency": "usd", "source": "api"})

    assert {r.action for r in store.record_conversions([won(n) for n in range(300)])} == {EventAction.CREATED}
    batch = [won(n, "150" if n % 2 else "100") for n in range(300)] + [won(n) for n in range(300, 1200)]
    batch += [won(1200), won(1200), won(1201), won(1201, "175")] + [walk_in(n) for n in range(100)] + [walk_in(0)]

    results = store.record_conversions(batch)

    assert [r.action for r in results] == (
        [EventAction.UPDATED if n % 2 else EventAction.UNCHANGED for n in range(300)] + [EventAction.CREATED] * 900
        + [EventAction.CREATED, EventAction.UNCHANGED, EventAction.CREATED, EventAction.UPDATED]
        + [EventAction.CREATED] * 100 + [EventAction.UNCHANGED])
    assert [r.person.email for r in results] == [c.email for c in batch]
    stored = {(c.email, str(c.value)) for c in store.conversions()}
    assert len(store.conversions()) == 1202 + 100
    assert stored == {(f"buyer{n}@example.com", "150.00" if n < 300 and n % 2 else "175.00" if n == 1201
                       else "100.00") for n in range(1202)} | {(f"walkin{n}@example.com", "20.00") for n in range(100)}


def test_many_conversion_engagements_in_one_batch_are_each_one_conversion(database: Database) -> None:
    """More conversion engagements than one read holds: each person known by email gets one conversion, whether
    the engagement is new, re-delivered from an earlier batch or twice in this one; one by username alone gets its
    conversion when a later event of the batch links the username."""
    store = SocialStore(database)

    def converted(n: int, **user: str) -> EngagementEvent:
        return EngagementEvent.model_validate({
            "platform": "instagram", "type": "conversion", "timestamp": f"2026-11-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
            "postId": f"p-{n}", "campaign": "Black Friday",
            "user": user or {"email": f"buyer{n}@example.com"}})

    store.record_engagements([converted(n) for n in range(100)])
    assert len(store.conversions()) == 100
    batch = [converted(n) for n in range(1200)] + [converted(500), converted(1300, username="anon")]
    batch += [converted(1301, username="later"),
              engagement("later", email="later@example.com", type="click", postId="x")]

    results = store.record_engagements(batch)

    assert [r.action for r in results] == ([EventAction.UNCHANGED] * 100 + [EventAction.CREATED] * 1100
                                           + [EventAction.UNCHANGED] + [EventAction.CREATED] * 3)
    conversions = store.conversions()
    assert sorted(c.email for c in conversions) == sorted(
        [f"buyer{n}@example.com" for n in range(1200)] + ["later@example.com"])
    assert {c.value for c in conversions} == {None}
    again = store.record_engagements(batch)
    assert {r.action for r in again} == {EventAction.UNCHANGED} and len(store.conversions()) == 1201
