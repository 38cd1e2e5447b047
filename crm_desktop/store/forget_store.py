"""Erasing one person from the local store in one transaction, and the list of people forgotten at their request."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Text, delete, false, func, or_, select, update
from sqlalchemy import cast as cast_as
from sqlalchemy.orm import Session

from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.wording import FORGOTTEN_PERSON
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.models import (
    MERGED_FIELD,
    AlertRow,
    AuditLogRow,
    ConflictRow,
    ContactRow,
    ConversationRow,
    ConversionRow,
    CrmLinkRow,
    ForgottenPersonRow,
    LeadRow,
    MessageRow,
    OutboxRow,
    SocialIdentityRow,
    SocialProfileRow,
    SyncAttemptMetricsRow,
    SyncRecordLogRow,
    SyncRunRow,
    TouchpointRow,
    WorkflowEventRow,
    utc_from_store,
    utcnow,
)


def email_digest(email: str) -> str:
    """The key a forgotten person is kept under: SHA-256 (hex) of their normalised email, never the email itself."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


@dataclass
class ErasedRows:
    """What forgetting one person deleted (or redacted), table by table, and when they were forgotten.

    Attributes:
        contact_id, lead_id: the local records deleted, if there were any.
        counts: rows deleted per kind, in the order they are listed to the marketer.
        forgotten_at: when the person was recorded as forgotten.
    """

    contact_id: int | None = None
    lead_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    forgotten_at: datetime | None = None


def _texts(value: Any) -> list[str]:
    """Every string in a JSON value (keys and values), as written, not JSON-escaped: a line break before an email is
    not the letter ``n`` of ``\\n`` glued to it."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (str(key), *_texts(item))]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _count(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


class ForgetStore:
    """Forgets people and answers whether an email is one of theirs."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def holders(self, email: str) -> tuple[int | None, int | None]:
        """The local ids of the contact and of the lead with this (normalised) email, where there are."""
        with self._db.session() as session:
            return (session.scalar(select(ContactRow.id).where(ContactRow.email == email)),
                    session.scalar(select(LeadRow.id).where(LeadRow.email == email)))

    def crm_links(self, email: str) -> list[tuple[int, RecordObject, str]]:
        """The CRM records the contact and the lead with ``email`` are linked to: (integration id, kind, CRM id)."""
        contact_id, lead_id = self.holders(email)
        ours = [(obj, local_id) for obj, local_id in ((RecordObject.CONTACT, contact_id), (RecordObject.LEAD, lead_id))
                if local_id is not None]
        if not ours:
            return []
        with self._db.session() as session:
            return [(int(integration_id), RecordObject(obj), str(crm_id)) for integration_id, obj, crm_id in
                    session.execute(select(CrmLinkRow.integration_id, CrmLinkRow.object, CrmLinkRow.crm_id).where(
                        or_(false(), *((CrmLinkRow.object == obj) & (CrmLinkRow.local_id == local_id)
                                       for obj, local_id in ours)))
                    .order_by(CrmLinkRow.integration_id, CrmLinkRow.object))]

    def forget(self, email: str) -> ErasedRows:
        """Delete the contact and the lead with ``email`` and everything held about them, redact the person from
        other records' change history, and record them as forgotten: one transaction.

        Deleted: the records and their social profiles, their social identities, touchpoints, conversations and
        their messages, conversions, conflicts, CRM links, queued CRM writes and social events, each record's
        change history (so no undo writes them back) and its lines in the runs' record logs. The runs themselves,
        and their counts, stay.
        """
        now = utcnow()
        erased = ErasedRows(forgotten_at=now)
        counts = erased.counts
        with self._db.session() as session:
            contact_id = session.scalar(select(ContactRow.id).where(ContactRow.email == email))
            lead_id = session.scalar(select(LeadRow.id).where(LeadRow.email == email))
            erased.contact_id, erased.lead_id = contact_id, lead_id
            records = [(RecordObject.CONTACT, contact_id), (RecordObject.LEAD, lead_id)]
            ours = [(obj, local_id) for obj, local_id in records if local_id is not None]

            def of_records(table: Table) -> Any:
                """The rows of ``table`` (with ``object`` and ``local_id``) about the person's records."""
                return or_(false(), *((table.c.object == obj) & (table.c.local_id == local_id)
                                    for obj, local_id in ours))

            identities = session.execute(
                select(SocialIdentityRow.id, SocialIdentityRow.platform, SocialIdentityRow.username)
                .where(SocialIdentityRow.email == email)).all()
            identity_ids = [identity_id for identity_id, _, _ in identities]
            conversations = cast(Table, ConversationRow.__table__)
            theirs = or_(conversations.c.email == email, conversations.c.identity_id.in_(identity_ids))
            conversation_ids = list(session.scalars(select(conversations.c.conversation_id).where(theirs)))
            counts["contacts"] = 0 if contact_id is None else 1
            counts["leads"] = 0 if lead_id is None else 1
            counts["socialProfiles"] = 0
            if contact_id is not None:
                counts["socialProfiles"] = _count(session.execute(
                    delete(SocialProfileRow).where(SocialProfileRow.contact_id == contact_id)))
                leads = cast(Table, LeadRow.__table__)
                session.execute(update(leads).where(leads.c.contact_id == contact_id)
                                .values(contact_id=None, updated_at=leads.c.updated_at))
                session.execute(delete(ContactRow).where(ContactRow.id == contact_id))
            if lead_id is not None:
                session.execute(delete(LeadRow).where(LeadRow.id == lead_id))
            touchpoints = cast(Table, TouchpointRow.__table__)
            counts["touchpoints"] = _count(session.execute(delete(touchpoints).where(
                or_(touchpoints.c.email == email, touchpoints.c.identity_id.in_(identity_ids)))))
            counts["conversations"] = _count(session.execute(delete(conversations).where(theirs)))
            messages = cast(Table, MessageRow.__table__)
            counts["messages"] = 0
            for chunk in in_list_chunks(sorted(set(conversation_ids))):
                # A conversation id another platform's conversation (someone else's) also has keeps its messages.
                counts["messages"] += _count(session.execute(delete(messages).where(
                    messages.c.conversation_id.in_(chunk),
                    messages.c.conversation_id.not_in(select(conversations.c.conversation_id)))))
            counts["conversions"] = _count(session.execute(delete(ConversionRow).where(ConversionRow.email == email)))
            counts["socialIdentities"] = _count(session.execute(
                delete(SocialIdentityRow).where(SocialIdentityRow.id.in_(identity_ids)))) if identity_ids else 0
            counts["socialEvents"] = self._delete_workflow_events(
                session, email, {(platform, username) for _, platform, username in identities}, set(conversation_ids))
            conflicts = cast(Table, ConflictRow.__table__)
            counts["conflicts"] = _count(session.execute(delete(conflicts).where(
                or_(of_records(conflicts), conflicts.c.record_key == email))))
            links = cast(Table, CrmLinkRow.__table__)
            counts["crmLinks"] = _count(session.execute(delete(links).where(of_records(links))))
            outbox = cast(Table, OutboxRow.__table__)
            counts["crmWrites"] = _count(session.execute(delete(outbox).where(
                or_(of_records(outbox), outbox.c.email == email))))
            audit = cast(Table, AuditLogRow.__table__)
            counts["fieldChanges"] = _count(session.execute(delete(audit).where(or_(false(), *(
                (audit.c.entity == obj.value) & (audit.c.entity_id == str(local_id)) for obj, local_id in ours)))))
            # Another contact's history keeps that one was merged into it, without whose email it was.
            counts["fieldChanges"] += _count(session.execute(update(audit).where(
                audit.c.field == MERGED_FIELD, audit.c.old_value == email).values(old_value=None)))
            counts["runLogLines"] = _count(session.execute(
                delete(SyncRecordLogRow).where(SyncRecordLogRow.record_key == email)))
            # A run's or an alert's sentence may name the person ("edit of ann@example.com"): it keeps its words.
            counts["messagesRedacted"] = 0
            for row in (SyncRunRow, AlertRow, SyncAttemptMetricsRow, SyncRecordLogRow):
                table = cast(Table, row.__table__)
                counts["messagesRedacted"] += _count(session.execute(
                    update(table).where(table.c.message.contains(email, autoescape=True))
                    .values(message=func.replace(table.c.message, email, FORGOTTEN_PERSON))))
            key = email_digest(email)
            session.execute(delete(ForgottenPersonRow).where(ForgottenPersonRow.email_hash == key))
            session.add(ForgottenPersonRow(email_hash=key, forgotten_at=now))
        return erased

    @staticmethod
    def _delete_workflow_events(session: Session, email: str, usernames: set[tuple[SocialPlatform, str]],
                                conversation_ids: set[str]) -> int:
        """Delete the social events (queued or delivered) that name the person: by their email or a username linked
        to them (the person of a conversation or an engagement), by one of their conversations (a message, or an
        engagement with it), or that mention their email anywhere (a message's text). Found by the database in the
        events' JSON, not by reading every event."""
        table = cast(Table, WorkflowEventRow.__table__)
        payload = table.c.payload
        theirs = [payload["participant", "email"].as_string() == email, payload["user", "email"].as_string() == email]
        for platform in sorted({platform for platform, _ in usernames}):
            names = sorted({username for p, username in usernames if p == platform})
            for chunk in in_list_chunks(names):
                on_platform = payload["platform"].as_string() == platform.value
                theirs += [on_platform & func.lower(payload[person, "username"].as_string()).in_(chunk)
                           for person in ("participant", "user")]
        deleted = _count(session.execute(delete(table).where(or_(*theirs))))
        for chunk in in_list_chunks(sorted(conversation_ids)):
            deleted += _count(session.execute(delete(table).where(payload["conversationId"].as_string().in_(chunk))))
        # Anywhere else (a message's text), the email as an address of its own: ann@example.com is not in
        # joann@example.com. The database finds the few events whose text holds it; each is then read. Its longest
        # ASCII run is looked for: the JSON as stored writes an accented letter as an escape (\u00eb).
        mentioned = re.compile(rf"(?<![\w.+-]){re.escape(email)}(?![\w-]|\.\w)")
        clue = max(re.findall(r"[\x00-\x7f]+", email) or [""], key=len)
        doomed = [row_id for row_id, held in session.execute(
            select(table.c.id, payload).where(func.lower(cast_as(payload, Text)).contains(clue, autoescape=True)))
            if any(mentioned.search(text.lower()) for text in _texts(held))]
        for chunk in in_list_chunks(doomed):
            deleted += _count(session.execute(delete(table).where(table.c.id.in_(chunk))))
        return deleted

    def forgotten_among(self, emails: Sequence[str]) -> dict[str, datetime]:
        """Of these normalised emails, those of people forgotten: email -> when they were forgotten."""
        by_digest = {email_digest(email): email for email in set(emails)}
        found: dict[str, datetime] = {}
        if not by_digest:
            return found
        with self._db.session() as session:
            for chunk in in_list_chunks(sorted(by_digest)):
                for digest, at in session.execute(
                        select(ForgottenPersonRow.email_hash, ForgottenPersonRow.forgotten_at)
                        .where(ForgottenPersonRow.email_hash.in_(chunk))):
                    found[by_digest[str(digest)]] = utc_from_store(at)
        return found

    def unforget(self, email: str) -> datetime | None:
        """Lift a person's forgetting; when they had been forgotten (``None``: they were not)."""
        key = email_digest(email)
        with self._db.session() as session:
            at = session.scalar(select(ForgottenPersonRow.forgotten_at).where(ForgottenPersonRow.email_hash == key))
            if at is None:
                return None
            session.execute(delete(ForgottenPersonRow).where(ForgottenPersonRow.email_hash == key))
            return utc_from_store(at)

    def count(self) -> int:
        """How many people are forgotten."""
        with self._db.session() as session:
            return len(session.scalars(select(ForgottenPersonRow.email_hash)).all())


__all__ = ["ErasedRows", "ForgetStore", "email_digest"]
