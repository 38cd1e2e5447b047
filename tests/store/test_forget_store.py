"""Forgetting one person deletes their rows in one transaction, on SQLite and PostgreSQL alike, and leaves only a
digest of their email; migration 0029 adds and drops the table that keeps it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select, text

from crm_desktop.domain.models import Contact, Integration, Lead
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import ConversationEvent, EngagementEvent, Message
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.forget_store import ForgetStore, email_digest
from crm_desktop.store.models import AuditLogRow, Base, SyncRunRow, WorkflowEventKind, WorkflowEventRow
from crm_desktop.store.repositories import ContactStore, IntegrationStore, LeadStore
from crm_desktop.store.social_store import SocialStore
from crm_desktop.store.workflow_store import QueuedEvent, WorkflowStore

ANN = "ann@example.com"


def _naming(database: Database, value: str) -> set[str]:
    """The tables with a row in which ``value`` appears."""
    found = set()
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if any(value in " ".join(map(str, row)) for row in connection.execute(select(table))):
                found.add(table.name)
    return found


def test_forget_deletes_the_person_and_keeps_only_a_digest(database: Database) -> None:
    ContactStore(database).save_many([Contact(email=ANN, first_name="Ann"), Contact(email="bob@example.com")])
    LeadStore(database).save(Lead(email=ANN, company="Acme"))
    social = SocialStore(database)
    social.record_conversations([ConversationEvent.model_validate({
        "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z",
        "participant": {"email": ANN, "username": "annlee"}})])
    social.record_messages([Message.model_validate({
        "conversationId": "c-1", "messageId": "m-1", "direction": "inbound", "sentAt": "2026-11-20T10:01:00Z",
        "text": "hello"})])
    forget = ForgetStore(database)
    contact_id, lead_id = forget.holders(ANN)
    with database.session() as session:
        run = SyncRunRow(trigger="edit", message=f"edit of {ANN}")
        session.add(run)
        session.flush()
        session.add(AuditLogRow(run_id=run.id, entity=RecordObject.CONTACT.value, entity_id=str(contact_id),
                                field="email", old_value=None, new_value=ANN, source="edit"))
    assert {"contacts", "leads", "conversations", "social_identities", "touchpoints", "sync_runs",
            "audit_log"} <= _naming(database, ANN)

    erased = forget.forget(ANN)

    assert (erased.contact_id, erased.lead_id) == (contact_id, lead_id)
    assert erased.counts["messages"] == 1 and erased.counts["messagesRedacted"] == 1
    assert _naming(database, ANN) == set() and _naming(database, "annlee") == set()
    assert forget.holders("bob@example.com")[0] is not None
    with database.session() as session:
        assert session.scalar(select(SyncRunRow.message)) == "edit of (a forgotten person)"  # the run stays
    assert forget.forgotten_among([ANN, "bob@example.com"]) == {ANN: erased.forgotten_at}
    assert forget.unforget(ANN) == erased.forgotten_at and forget.forgotten_among([ANN]) == {}


def test_0029_adds_the_forgotten_people_and_a_downgrade_drops_them(blank_database: Database) -> None:
    migrate_to(blank_database.engine, "0029")
    with blank_database.engine.begin() as connection:
        connection.execute(text("INSERT INTO forgotten_people (email_hash, forgotten_at) VALUES (:key, :at)"),
                           {"key": email_digest(ANN), "at": datetime(2026, 12, 7, tzinfo=UTC)})
    assert ForgetStore(blank_database).forgotten_among([ANN]) == {ANN: datetime(2026, 12, 7, tzinfo=UTC)}
    migrate_to(blank_database.engine, "0028", downgrade=True)
    assert "forgotten_people" not in inspect(blank_database.engine).get_table_names()


def _queued(kind: WorkflowEventKind, key: str, event: ConversationEvent | Message | EngagementEvent) -> QueuedEvent:
    return QueuedEvent(kind, key, event.to_wire())


def _engaged(key: str, user: dict[str, str], platform: str = "twitter") -> QueuedEvent:
    return _queued(WorkflowEventKind.ENGAGEMENT, key, EngagementEvent.model_validate({
        "platform": platform, "type": "like", "timestamp": "2026-11-21T09:00:00Z", "postId": "p-1", "user": user}))


def _said(key: str, conversation_id: str, text: str) -> QueuedEvent:
    return _queued(WorkflowEventKind.MESSAGE, key, Message.model_validate({
        "conversationId": conversation_id, "messageId": key, "direction": "inbound",
        "sentAt": "2026-11-20T10:01:00Z", "text": text}))


def test_forget_deletes_every_social_event_naming_the_person_and_no_one_else_s(database: Database) -> None:
    ContactStore(database).save(Contact(email=ANN))
    social = SocialStore(database)
    social.record_conversations([ConversationEvent.model_validate({
        "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z",
        "participant": {"email": ANN, "username": "annlee"}})])
    social.record_engagements([EngagementEvent.model_validate({
        "platform": "instagram", "type": "like", "timestamp": "2026-11-20T11:00:00Z",
        "user": {"email": ANN, "username": "ann_ig"}})])
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    hers = [
        _queued(WorkflowEventKind.CONVERSATION, "her-1", ConversationEvent.model_validate({
            "conversationId": "c-1", "platform": "twitter", "startedAt": "2026-11-20T10:00:00Z",
            "participant": {"email": ANN, "username": "annlee"}})),
        _said("her-2", "c-1", "hello"),
        _engaged("her-3", {"email": "Ann@Example.com"}),
        _engaged("her-4", {"username": "@AnnLee"}),  # a username linked to her, in another case
        _engaged("her-5", {"username": "ann_ig"}, platform="instagram"),
        _queued(WorkflowEventKind.CONVERSATION, "her-6", ConversationEvent.model_validate({
            "conversationId": "c-9", "platform": "twitter", "startedAt": "2026-11-22T10:00:00Z",
            "participant": {"username": "annlee"}})),
        _said("her-7", "c-8", f"please write to {ANN}."),  # someone else's message naming her email
    ]
    others = [
        *(_engaged(f"other-{n}", {"email": f"fan{n}@example.com", "username": f"fan{n}"}) for n in range(1500)),
        *(_said(f"other-m-{n}", f"c-fan-{n}", "hi") for n in range(500)),
        _engaged("other-joann", {"email": "joann@example.com"}),
        _engaged("other-annlee-on-instagram", {"username": "annlee"}, platform="instagram"),
        _engaged("other-annlee2", {"username": "annlee2"}),
        _said("other-mention", "c-8", "write to joann@example.com or ann@example.com.au"),
    ]
    WorkflowStore(database).enqueue([integration.id], [*hers, *others])

    erased = ForgetStore(database).forget(ANN)

    assert erased.counts["socialEvents"] == len(hers)
    with database.session() as session:
        left = set(session.scalars(select(WorkflowEventRow.event_key)))
    assert left == {event.event_key for event in others}


def test_forget_finds_her_email_in_a_message_after_a_line_break_or_tab(database: Database) -> None:
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    hers = [
        _said("her-newline", "c-1", f"My email:\n{ANN}"),
        _said("her-tab", "c-2", f"email\t{ANN.upper()}"),
        _said("her-return", "c-3", f"écrivez-moi\r\n{ANN}\nmerci"),
        _said("her-quoted", "c-4", f'"{ANN}"'),
    ]
    others = [_said("other-newline", "c-5", "My email:\njoann@example.com"),
              _said("other-tab", "c-6", f"email\tx.{ANN}")]
    WorkflowStore(database).enqueue([integration.id], [*hers, *others])

    erased = ForgetStore(database).forget(ANN)

    with database.session() as session:
        left = set(session.scalars(select(WorkflowEventRow.event_key)))
    assert left == {event.event_key for event in others}
    assert erased.counts["socialEvents"] == len(hers)


def test_forget_finds_an_email_with_accents_in_a_message_s_text(database: Database) -> None:
    zoe = "zoë@exämple.com"
    integration = IntegrationStore(database).add(Integration(provider="hubspot", name="hs", base_url="https://x"))
    assert integration.id is not None
    hers = [
        _engaged("her-engaged", {"email": zoe}),
        _said("her-said", "c-1", f"écrivez à {zoe} svp"),
        _said("her-shouted", "c-2", "écrivez à ZOË@EXÄMPLE.COM"),
    ]
    others = [_said("other-said", "c-3", "écrivez à chloë@exämple.com"),
              _engaged("other-engaged", {"email": "zoe@example.com"})]
    WorkflowStore(database).enqueue([integration.id], [*hers, *others])

    erased = ForgetStore(database).forget(zoe)

    with database.session() as session:
        left = set(session.scalars(select(WorkflowEventRow.event_key)))
    assert left == {event.event_key for event in others}
    assert erased.counts["socialEvents"] == len(hers)
