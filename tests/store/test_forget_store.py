"""Forgetting one person deletes their rows in one transaction, on SQLite and PostgreSQL alike, and leaves only a
digest of their email; migration 0029 adds and drops the table that keeps it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select, text

from crm_desktop.domain.models import Contact, Lead
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import ConversationEvent, Message
from crm_desktop.store.database import Database, migrate_to
from crm_desktop.store.forget_store import ForgetStore, email_digest
from crm_desktop.store.models import AuditLogRow, Base, SyncRunRow
from crm_desktop.store.repositories import ContactStore, LeadStore
from crm_desktop.store.social_store import SocialStore

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
