"""The social workflows' durable outbox: events waiting for each integration's CRM, claimed, delivered or failed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, func, select, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from crm_desktop.domain.models import SocialPlatform
from crm_desktop.store.database import Database, in_list_chunks
from crm_desktop.store.models import (
    LOCAL_TRIGGERS,
    ContactRow,
    ConversationRow,
    DeliveryStatus,
    LeadRow,
    SyncRunRow,
    SyncRunStatus,
    SyncTrigger,
    WorkflowEventKind,
    WorkflowEventRow,
    WorkspaceSettingRow,
    utcnow,
)


def conversation_never_arrived(conversation_id: str) -> str:
    """Why a message was given up: its conversation had not arrived after the wait (queued again if it comes)."""
    return f"conversation {conversation_id!r} never arrived"


@dataclass(frozen=True)
class QueuedEvent:
    """An event to deliver: which workflow, its idempotency key, and the event as received."""

    kind: WorkflowEventKind
    event_key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ClaimedEvent:
    """An event claimed for one delivery.

    Attributes:
        id: the outbox row.
        kind: which workflow it starts.
        payload: the event as received.
        attempts: deliveries tried before this one.
        received_at: when the app received it (latency is measured from here).
    """

    id: int
    kind: WorkflowEventKind
    payload: dict[str, Any]
    attempts: int
    received_at: datetime


@dataclass(frozen=True)
class ConversationFacts:
    """What delivery needs of a stored conversation: whose it is, where, and its CRM links."""

    conversation_id: str
    platform: SocialPlatform
    email: str | None
    campaign: str | None
    started_at: datetime
    crm_links: dict[str, Any]


@dataclass(frozen=True)
class DeliveredEvent:
    """A delivered event's times (for the latency figures)."""

    kind: WorkflowEventKind
    received_at: datetime
    delivered_at: datetime


class WorkflowStore:
    """SQL of the workflow outbox (one transaction per call)."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def enqueue(self, integration_ids: Sequence[int], events: Sequence[QueuedEvent]) -> int:
        """Queue each event for each integration, skipping (integration, key) pairs already queued; returns how
        many rows were added. A re-delivered event therefore adds nothing, whatever became of the first."""
        if not integration_ids or not events:
            return 0
        now = utcnow()
        rows = [
            {"integration_id": integration_id, "event_key": event.event_key, "kind": event.kind,
             "payload": event.payload, "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": now,
             "received_at": now}
            for integration_id in integration_ids
            for event in events
        ]
        # PostgreSQL's dialect is imported when a PostgreSQL store needs it: a start on SQLite does not load it.
        dialect = (import_module("sqlalchemy.dialects.postgresql")
                   if self.db.engine.url.get_backend_name() == "postgresql" else sqlite)
        table = cast(Table, WorkflowEventRow.__table__)
        keys = sorted({event.event_key for event in events})
        with self.db.session() as session:
            queued: set[tuple[int, str]] = set()
            for part in in_list_chunks(keys):
                queued.update((integration_id, key) for integration_id, key in session.execute(
                    select(table.c.integration_id, table.c.event_key).where(
                        table.c.integration_id.in_(integration_ids), table.c.event_key.in_(part))
                ))
            rows = [row for row in rows if (row["integration_id"], row["event_key"]) not in queued]
            # A concurrent request queuing the same event between the look-up and here is skipped by the key.
            statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["integration_id", "event_key"])
            for batch in in_list_chunks(rows):
                session.execute(statement, list(batch))
        return len(rows)

    def claim(self, integration_id: int, now: datetime, limit: int) -> list[ClaimedEvent]:
        """Claim up to ``limit`` pending events due by ``now``, oldest first (marked ``sending``); a claim another
        process made first is not taken again."""
        with self.db.session() as session:
            ids = list(session.scalars(
                select(WorkflowEventRow.id)
                .where(WorkflowEventRow.integration_id == integration_id,
                       WorkflowEventRow.status == DeliveryStatus.PENDING,
                       WorkflowEventRow.next_attempt_at <= now)
                .order_by(WorkflowEventRow.id)
                .limit(limit)
            ))
            if not ids:
                return []
            session.execute(
                update(WorkflowEventRow)
                .where(WorkflowEventRow.id.in_(ids), WorkflowEventRow.status == DeliveryStatus.PENDING)
                .values(status=DeliveryStatus.SENDING, claimed_at=now)
            )
            rows = session.scalars(
                select(WorkflowEventRow)
                .where(WorkflowEventRow.id.in_(ids), WorkflowEventRow.status == DeliveryStatus.SENDING,
                       WorkflowEventRow.claimed_at == now)
                .order_by(WorkflowEventRow.id)
            )
            return [ClaimedEvent(r.id, r.kind, dict(r.payload), r.attempts, r.received_at) for r in rows]

    def finish(
        self,
        done: Sequence[tuple[int, str | None, str | None]],
        failed: Sequence[tuple[int, str]],
        retry: Sequence[tuple[int, str, datetime]],
    ) -> None:
        """Settle claimed events in one transaction: done (with the CRM record and timeline entry), failed for good
        (with the reason), or back to pending until ``next_attempt_at`` (with why)."""
        now = utcnow()
        table = cast(Table, WorkflowEventRow.__table__)
        with self.db.session() as session:
            if done:
                session.execute(
                    update(table).where(table.c.id == bindparam("row_id")).values(
                        status=DeliveryStatus.DONE, crm_id=bindparam("done_crm_id"),
                        entry_id=bindparam("done_entry_id"), attempts=table.c.attempts + 1, delivered_at=now,
                        error=None, claimed_at=None,
                    ),
                    [{"row_id": i, "done_crm_id": c, "done_entry_id": e} for i, c, e in done],
                )
            if failed:
                session.execute(
                    update(table).where(table.c.id == bindparam("row_id")).values(
                        status=DeliveryStatus.FAILED, error=bindparam("why"), attempts=table.c.attempts + 1,
                        claimed_at=None,
                    ),
                    [{"row_id": i, "why": why[:2000]} for i, why in failed],
                )
            if retry:
                session.execute(
                    update(table).where(table.c.id == bindparam("row_id")).values(
                        status=DeliveryStatus.PENDING, error=bindparam("why"), attempts=table.c.attempts + 1,
                        next_attempt_at=bindparam("at"), claimed_at=None,
                    ),
                    [{"row_id": i, "why": why[:2000], "at": at} for i, why, at in retry],
                )

    def requeue_unreached_messages(self, integration_id: int, conversation_ids: Iterable[str]) -> int:
        """Queue again the messages of these conversations that were settled without reaching the CRM (their
        person had no email yet), or given up waiting for the conversation (it came later than that wait); how
        many. Once the conversation reaches a CRM record, they go to its timeline.

        Found by the database in the events' JSON (the conversation id as written), not by reading every settled
        event: a given-up message is taken only when its reason names its own conversation."""
        wanted = sorted(set(conversation_ids))
        table = cast(Table, WorkflowEventRow.__table__)
        conversation_id = table.c.payload["conversationId"].as_string()
        requeued = 0
        with self.db.session() as session:
            for chunk in in_list_chunks(wanted):
                unreached = (table.c.status == DeliveryStatus.DONE) & table.c.crm_id.is_(None) & conversation_id.in_(
                    chunk)
                gave_up = (table.c.status == DeliveryStatus.FAILED) & tuple_(conversation_id, table.c.error).in_(
                    [(wanted_id, conversation_never_arrived(wanted_id)) for wanted_id in chunk])
                result = session.execute(update(table).where(
                    table.c.integration_id == integration_id, table.c.kind == WorkflowEventKind.MESSAGE,
                    unreached | gave_up).values(status=DeliveryStatus.PENDING, next_attempt_at=utcnow(), error=None))
                requeued += max(cast(CursorResult[Any], result).rowcount or 0, 0)
        return requeued

    def requeue_unreached_conversations(self, emails: Iterable[str]) -> list[int]:
        """Queue again the conversation events settled without reaching a CRM (their participant was known by
        username alone) whose conversation is now the person's of one of these emails; the integrations they are
        queued for. Delivered again, they push that contact with its "Conversation started" entry.

        Found by the database, matching each event's platform and conversation id (as written, in its JSON) to the
        people's conversations, not by reading every settled event."""
        wanted = sorted(set(emails))
        table = cast(Table, WorkflowEventRow.__table__)
        conversations = cast(Table, ConversationRow.__table__)
        payload = table.c.payload
        unreached = ((table.c.kind == WorkflowEventKind.CONVERSATION) & (table.c.status == DeliveryStatus.DONE)
                     & table.c.crm_id.is_(None))
        found: list[tuple[int, int]] = []
        with self.db.session() as session:
            for chunk in in_list_chunks(wanted):
                theirs = select(conversations.c.id).where(
                    conversations.c.email.in_(chunk),
                    conversations.c.platform == payload["platform"].as_string(),
                    conversations.c.conversation_id == payload["conversationId"].as_string(),
                ).exists()
                found += [(row_id, integration_id) for row_id, integration_id in session.execute(
                    select(table.c.id, table.c.integration_id).where(unreached, theirs))]
            for ids in in_list_chunks(sorted({row_id for row_id, _ in found})):
                session.execute(update(table).where(table.c.id.in_(ids)).values(
                    status=DeliveryStatus.PENDING, next_attempt_at=utcnow(), error=None))
        return sorted({integration_id for _, integration_id in found})

    def release(self, ids: Sequence[int]) -> None:
        """Put claimed events back as pending, untouched (a delivery stopped before it sent them)."""
        if not ids:
            return
        with self.db.session() as session:
            for part in in_list_chunks(list(ids)):
                session.execute(
                    update(WorkflowEventRow)
                    .where(WorkflowEventRow.id.in_(part), WorkflowEventRow.status == DeliveryStatus.SENDING)
                    .values(status=DeliveryStatus.PENDING, claimed_at=None)
                )

    def release_stale(self, before: datetime) -> int:
        """Put back as pending the claims older than ``before`` (a process that stopped mid-delivery)."""
        with self.db.session() as session:
            result = cast(CursorResult[Any], session.execute(
                update(WorkflowEventRow)
                .where(WorkflowEventRow.status == DeliveryStatus.SENDING, WorkflowEventRow.claimed_at < before)
                .values(status=DeliveryStatus.PENDING, claimed_at=None)
            ))
            return max(result.rowcount or 0, 0)

    def next_attempt(self, integration_id: int) -> datetime | None:
        """When the integration's earliest pending event is due (``None``: none pending)."""
        return self._earliest_pending(integration_id, WorkflowEventRow.next_attempt_at)

    def counts(self, integration_id: int | None = None) -> dict[DeliveryStatus, int]:
        """Events per delivery status (of one integration, or of all)."""
        query = select(WorkflowEventRow.status, func.count()).group_by(WorkflowEventRow.status)
        if integration_id is not None:
            query = query.where(WorkflowEventRow.integration_id == integration_id)
        with self.db.session() as session:
            found = {status: count for status, count in session.execute(query)}
        return {status: int(found.get(status, 0)) for status in DeliveryStatus}

    def failures(self, integration_id: int, limit: int = 100) -> list[tuple[WorkflowEventKind, dict[str, Any], str]]:
        """Events the CRM refused for good, newest first: kind, event, reason."""
        with self.db.session() as session:
            rows = session.scalars(
                select(WorkflowEventRow)
                .where(WorkflowEventRow.integration_id == integration_id,
                       WorkflowEventRow.status == DeliveryStatus.FAILED)
                .order_by(WorkflowEventRow.id.desc())
                .limit(limit)
            )
            return [(r.kind, dict(r.payload), r.error or "") for r in rows]

    def delivered(self, integration_id: int | None = None) -> list[DeliveredEvent]:
        """Delivered events with their receive and delivery times, oldest first."""
        query = select(WorkflowEventRow.kind, WorkflowEventRow.received_at, WorkflowEventRow.delivered_at).where(
            WorkflowEventRow.status == DeliveryStatus.DONE
        )
        if integration_id is not None:
            query = query.where(WorkflowEventRow.integration_id == integration_id)
        with self.db.session() as session:
            return [
                DeliveredEvent(kind, received, delivered)
                for kind, received, delivered in session.execute(query.order_by(WorkflowEventRow.id))
                if delivered is not None
            ]

    def oldest_pending(self, integration_id: int) -> datetime | None:
        """When the integration's oldest waiting event arrived (``None``: none waits)."""
        return self._earliest_pending(integration_id, WorkflowEventRow.received_at)

    def _earliest_pending(self, integration_id: int, moment: InstrumentedAttribute[datetime]) -> datetime | None:
        """The earliest ``moment`` of the integration's pending events (``None``: none pending)."""
        with self.db.session() as session:
            return session.scalar(
                select(func.min(moment)).where(
                    WorkflowEventRow.integration_id == integration_id,
                    WorkflowEventRow.status == DeliveryStatus.PENDING,
                )
            )

    def last_sync_started(self, integration_id: int) -> datetime | None:
        """When the integration's last sync a person or the schedule started (not an automatic push), if it did
        not fail."""
        with self.db.session() as session:
            return session.scalar(
                select(func.max(SyncRunRow.started_at)).where(
                    SyncRunRow.integration_id == integration_id,
                    SyncRunRow.trigger.not_in([SyncTrigger.AUTO, *LOCAL_TRIGGERS]),
                    SyncRunRow.status.in_([SyncRunStatus.SUCCEEDED, SyncRunStatus.PARTIAL]),
                    SyncRunRow.dry_run.is_(False),
                )
            )

    def entries_written(self, integration_id: int) -> int:
        """How many distinct timeline entries the integration's delivered events wrote."""
        with self.db.session() as session:
            return int(session.scalar(
                select(func.count(func.distinct(WorkflowEventRow.entry_id))).where(
                    WorkflowEventRow.integration_id == integration_id, WorkflowEventRow.entry_id.is_not(None))
            ) or 0)

    # -- what delivery reads of the social data -----------------------------------------------------------------

    def conversations(self, conversation_ids: Iterable[str]) -> dict[str, list[ConversationFacts]]:
        """Stored conversations by conversation id (a message names none of the platform, so each platform's)."""
        wanted = sorted(set(conversation_ids))
        found: dict[str, list[ConversationFacts]] = {}
        with self.db.session() as session:
            for part in in_list_chunks(wanted):
                for row in session.scalars(select(ConversationRow).where(ConversationRow.conversation_id.in_(part))):
                    found.setdefault(row.conversation_id, []).append(ConversationFacts(
                        row.conversation_id, row.platform, row.email, row.campaign, row.started_at,
                        dict(row.crm_links or {}),
                    ))
        return found

    def contact_ids(self, emails: Iterable[str]) -> dict[str, int]:
        """Local contact ids by normalised email (emails with no contact are absent)."""
        wanted = sorted(set(emails))
        found: dict[str, int] = {}
        with self.db.session() as session:
            for part in in_list_chunks(wanted):
                found.update((email, contact_id) for email, contact_id in session.execute(
                    select(ContactRow.email, ContactRow.id).where(ContactRow.email.in_(part))))
        return found

    def fill_blank_names(self, emails: Iterable[str] = (), contact_ids: Iterable[int] = ()) -> int:
        """Fill the blank first and last names of these people's contacts and leads (by email, or by contact id)
        from the other record of the same email: the best name the app knows when their records are written to a
        CRM, rather than Salesforce's "(unknown)", a blank HubSpot name or the email as a Pipedrive person's name.
        A name is never overwritten, as social data never overwrites what the marketer or a CRM gave; how many
        names were filled."""
        wanted_emails = sorted(set(emails))
        wanted_ids = sorted(set(contact_ids))
        changed = 0
        with self.db.session() as session:
            pairs: list[tuple[ContactRow, LeadRow]] = []
            for column, wanted in ((ContactRow.email, wanted_emails), (ContactRow.id, wanted_ids)):
                for part in in_list_chunks(wanted):
                    pairs += [(contact, lead) for contact, lead in session.execute(
                        select(ContactRow, LeadRow).join(LeadRow, LeadRow.email == ContactRow.email).where(
                            column.in_(part),
                            (ContactRow.first_name.is_(None) | ContactRow.last_name.is_(None)
                             | LeadRow.first_name.is_(None) | LeadRow.last_name.is_(None))))]
            for contact, lead in pairs:
                for attribute in ("first_name", "last_name"):
                    mine, theirs = getattr(contact, attribute), getattr(lead, attribute)
                    if not mine and theirs:
                        setattr(contact, attribute, theirs)
                        changed += 1
                    elif mine and not theirs:
                        setattr(lead, attribute, mine)
                        changed += 1
        return changed

    def take_job_run(self, key: str, now: datetime, every: timedelta, mark: dict[str, Any]) -> dict[str, Any] | None:
        """Take a periodic job's run: when its mark (setting ``key``) says it last ran ``every`` or longer before
        ``now``, or never, set the mark to ``mark`` and return what it said before; ``None`` when the job is not due
        or another runner took this run first.

        A compare-and-set on the mark's change stamp (or its insert), so of runners racing in several processes for
        the same run exactly one gets it.
        """
        with self.db.session() as session:
            row = session.get(WorkspaceSettingRow, key)
            previous, stamp = (dict(row.value), row.updated_at) if row is not None else ({}, None)
        if previous.get("at") and now - datetime.fromisoformat(previous["at"]) < every:
            return None
        try:
            with self.db.session() as session:
                if stamp is None:
                    session.add(WorkspaceSettingRow(key=key, value=mark, updated_at=utcnow()))
                    session.flush()
                    return previous
                taken = session.execute(
                    update(WorkspaceSettingRow)
                    .where(WorkspaceSettingRow.key == key, WorkspaceSettingRow.updated_at == stamp)
                    .values(value=mark, updated_at=utcnow())
                )
                return previous if cast(CursorResult[Any], taken).rowcount == 1 else None
        except IntegrityError:
            return None  # another runner inserted the first mark

    def conversation_contacts_since(self, since: datetime | None, until: datetime) -> list[int]:
        """Local contacts of the conversations recorded in ``[since, until)`` (``since`` ``None``: all before)."""
        query = (
            select(ContactRow.id)
            .join(ConversationRow, ConversationRow.email == ContactRow.email)
            .where(ConversationRow.created_at < until)
            .distinct()
        )
        if since is not None:
            query = query.where(ConversationRow.created_at >= since)
        with self.db.session() as session:
            return sorted(session.scalars(query))
