"""Reads and writes behind the Duplicates view: contacts sharing a phone or a social username, duplicates the CRMs
reported, and the local half of merging two contacts in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update

from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.store.database import Database
from crm_desktop.store.models import (
    AuditLogRow,
    ConflictRow,
    ConflictStatus,
    ContactRow,
    ConversationRow,
    ConversionRow,
    CrmLinkRow,
    IntegrationRow,
    LeadRow,
    SocialIdentityRow,
    SocialProfileRow,
    SyncRecordLogRow,
    SyncRunRow,
    TouchpointRow,
    audit_insert_row,
    utcnow,
)


@dataclass(frozen=True)
class ReportedDuplicate:
    """A record a CRM refused or flagged as a duplicate of one it already holds.

    Attributes:
        integration: the integration's name.
        email: the local record's email.
        local_id: the local contact's id (``None`` when it is gone).
        crm_id: the CRM id the log names, if any.
        message: the CRM's reason, as the sync logged it.
        at: when the sync logged it.
        holder_id, holder_email: the local contact linked to that CRM record in that integration, when another
            (the two the Duplicates dialog offers to merge).
    """

    integration: str
    email: str
    local_id: int | None
    crm_id: str | None
    message: str
    at: datetime
    holder_id: int | None = None
    holder_email: str | None = None


@dataclass(frozen=True)
class LinkMove:
    """What a merge does to one integration's link of the contact merged away.

    Attributes:
        integration_id: the integration.
        keep_crm_id: the CRM id the kept contact is linked to afterwards (``None``: leave its link as it is).
        take_over: the kept contact's own CRM record is gone: its link is dropped and it takes over the merged
            contact's link (and merge base), as when only the merged contact was linked.
    """

    integration_id: int
    keep_crm_id: str | None
    take_over: bool = False


class DuplicateStore:
    """Duplicate candidates and the merge's local writes; nothing here reads every row into memory at once."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def emails(self, batch: int = 10_000) -> Iterator[tuple[int, str]]:
        """Every contact's (id, email), streamed in id order a batch at a time."""
        after = 0
        while True:
            with self._db.session() as session:
                rows = session.execute(
                    select(ContactRow.id, ContactRow.email).where(ContactRow.id > after)
                    .order_by(ContactRow.id).limit(batch)
                ).all()
            if not rows:
                return
            for local_id, email in rows:
                yield int(local_id), str(email)
            after = int(rows[-1][0])

    def shared_phones(self, limit: int = 1000) -> list[tuple[str, list[int]]]:
        """Phones (E.164, as stored) held by more than one contact, with the contacts' ids."""
        with self._db.session() as session:
            phones = session.scalars(
                select(ContactRow.phone).where(ContactRow.phone.is_not(None), ContactRow.phone != "")
                .group_by(ContactRow.phone).having(func.count() > 1).order_by(ContactRow.phone).limit(limit)
            ).all()
            found: dict[str, list[int]] = {}
            if phones:
                for phone, local_id in session.execute(
                    select(ContactRow.phone, ContactRow.id).where(ContactRow.phone.in_(phones))
                    .order_by(ContactRow.phone, ContactRow.id)
                ):
                    found.setdefault(str(phone), []).append(int(local_id))
        return list(found.items())

    def shared_usernames(self, limit: int = 1000) -> list[tuple[str, str, list[int]]]:
        """(platform, username) pairs (case-insensitive) on profiles of more than one contact, with their ids."""
        username = func.lower(SocialProfileRow.username)
        with self._db.session() as session:
            groups = session.execute(
                select(SocialProfileRow.platform, username)
                .group_by(SocialProfileRow.platform, username)
                .having(func.count(func.distinct(SocialProfileRow.contact_id)) > 1)
                .order_by(SocialProfileRow.platform, username).limit(limit)
            ).all()
            found: list[tuple[str, str, list[int]]] = []
            for platform, name in groups:
                ids = session.scalars(
                    select(SocialProfileRow.contact_id).distinct()
                    .where(SocialProfileRow.platform == platform, username == name)
                    .order_by(SocialProfileRow.contact_id)
                ).all()
                found.append((platform.value, str(name), [int(i) for i in ids]))
        return found

    def reported_by_crms(self, limit: int = 500) -> list[ReportedDuplicate]:
        """The newest duplicate refusals the syncs logged for contacts, one per integration and email."""
        with self._db.session() as session:
            rows = session.execute(
                select(IntegrationRow.name, SyncRecordLogRow.record_key, SyncRecordLogRow.crm_id,
                       SyncRecordLogRow.message, SyncRecordLogRow.at, ContactRow.id)
                .join(SyncRunRow, SyncRunRow.id == SyncRecordLogRow.run_id)
                .join(IntegrationRow, IntegrationRow.id == SyncRunRow.integration_id)
                .outerjoin(ContactRow, ContactRow.email == SyncRecordLogRow.record_key)
                .where(SyncRecordLogRow.object == RecordObject.CONTACT,
                       SyncRecordLogRow.outcome == RecordOutcome.FAILED,
                       SyncRecordLogRow.error_category == ErrorCategory.DUPLICATE)
                .order_by(SyncRecordLogRow.id.desc()).limit(limit * 4)
            ).all()
        seen: set[tuple[str, str]] = set()
        found: list[ReportedDuplicate] = []
        for integration, email, crm_id, message, at, local_id in rows:
            if (integration, email) in seen:
                continue
            seen.add((integration, email))
            found.append(ReportedDuplicate(integration, email, local_id, crm_id, message or "", at))
        found = found[:limit]
        holders = self._holders({(r.integration, r.crm_id) for r in found if r.crm_id})
        return [replace(r, holder_id=held[0], holder_email=held[1])
                if (held := holders.get((r.integration, r.crm_id or ""))) and held[0] != r.local_id else r
                for r in found]

    def _holders(self, records: set[tuple[str, str | None]]) -> dict[tuple[str, str], tuple[int, str]]:
        """The local contact linked to each (integration name, CRM id), where one is."""
        if not records:
            return {}
        crm_ids = {crm_id for _, crm_id in records if crm_id}
        with self._db.session() as session:
            return {(str(name), str(crm_id)): (int(local_id), str(email)) for name, crm_id, local_id, email in
                    session.execute(
                        select(IntegrationRow.name, CrmLinkRow.crm_id, ContactRow.id, ContactRow.email)
                        .join(IntegrationRow, IntegrationRow.id == CrmLinkRow.integration_id)
                        .join(ContactRow, ContactRow.id == CrmLinkRow.local_id)
                        .where(CrmLinkRow.object == RecordObject.CONTACT, CrmLinkRow.crm_id.in_(crm_ids)))
                    if (str(name), str(crm_id)) in records}

    def contacts_by_id(self, ids: Sequence[int]) -> dict[int, str]:
        """The emails of these contacts (ids that are gone are left out)."""
        if not ids:
            return {}
        with self._db.session() as session:
            return {int(i): str(e) for i, e in session.execute(
                select(ContactRow.id, ContactRow.email).where(ContactRow.id.in_(list(ids))))}

    def links_of(self, local_ids: Sequence[int]) -> dict[int, dict[int, str]]:
        """Per integration id, the CRM ids of these contacts (local id -> CRM id)."""
        found: dict[int, dict[int, str]] = {}
        with self._db.session() as session:
            for integration_id, local_id, crm_id in session.execute(
                select(CrmLinkRow.integration_id, CrmLinkRow.local_id, CrmLinkRow.crm_id)
                .where(CrmLinkRow.object == RecordObject.CONTACT, CrmLinkRow.local_id.in_(list(local_ids)))
            ):
                found.setdefault(int(integration_id), {})[int(local_id)] = str(crm_id)
        return found

    def finish_merge(
        self, keep_id: int, merged_id: int, moves: Sequence[LinkMove], audit: Sequence[dict[str, Any]]
    ) -> None:
        """Delete the merged contact (its profiles go with it), point the kept contact's links where the CRMs'
        merges left them, drop the merged contact's links, close its waiting conflicts (resolution ``merged``), and
        record the audit rows: one transaction.

        The merged contact's social activity (touchpoints, conversations, conversions, and the usernames known to
        be theirs) moves to the kept contact's email, unless a lead still holds the merged email (the activity is
        that lead's too, and its attribution); a lead that pointed at the merged contact points at the kept one.
        """
        now = utcnow()
        links = cast(Table, CrmLinkRow.__table__)
        with self._db.session() as session:
            emails = {int(i): str(e) for i, e in session.execute(
                select(ContactRow.id, ContactRow.email).where(ContactRow.id.in_([keep_id, merged_id])))}
            keep_email, merged_email = emails.get(keep_id), emails.get(merged_id)
            if keep_email is not None and merged_email is not None and session.scalar(
                    select(LeadRow.id).where(LeadRow.email == merged_email)) is None:
                for row in (TouchpointRow, ConversationRow, ConversionRow, SocialIdentityRow):
                    table = cast(Table, row.__table__)
                    session.execute(update(table).where(table.c.email == merged_email).values(email=keep_email))
            leads = cast(Table, LeadRow.__table__)
            session.execute(update(leads).where(leads.c.contact_id == merged_id)
                            .values(contact_id=keep_id, updated_at=leads.c.updated_at))
            for move in moves:
                if move.keep_crm_id is None:
                    continue
                same = (links.c.integration_id == move.integration_id, links.c.object == RecordObject.CONTACT)
                if move.take_over:
                    session.execute(delete(links).where(*same, links.c.local_id == keep_id))
                if session.scalar(select(links.c.id).where(*same, links.c.local_id == keep_id)) is not None:
                    # The merged contact's link goes first: the survivor may carry the CRM id it was linked to.
                    session.execute(delete(links).where(*same, links.c.local_id == merged_id))
                    session.execute(update(links).where(*same, links.c.local_id == keep_id)
                                    .values(crm_id=move.keep_crm_id))
                else:
                    # Only the merged contact was linked: its link (and merge base) now belongs to the kept one,
                    # whose values the next sync compares with that base and sends, however long ago it changed.
                    session.execute(update(links).where(*same, links.c.local_id == merged_id)
                                    .values(local_id=keep_id, crm_id=move.keep_crm_id, local_synced_at=None))
            session.execute(delete(links).where(
                links.c.object == RecordObject.CONTACT, links.c.local_id == merged_id))
            # Its waiting conflicts have no record to be decided on any more: closed, said to be merged.
            conflicts = cast(Table, ConflictRow.__table__)
            session.execute(update(conflicts).where(
                conflicts.c.object == RecordObject.CONTACT, conflicts.c.local_id == merged_id,
                conflicts.c.status == ConflictStatus.OPEN,
            ).values(status=ConflictStatus.RESOLVED, resolution="merged", resolved_value=None, resolved_at=now))
            session.execute(delete(SocialProfileRow).where(SocialProfileRow.contact_id == merged_id))
            session.execute(delete(ContactRow).where(ContactRow.id == merged_id))
            if audit:
                session.execute(insert(cast(Table, AuditLogRow.__table__)), [
                    audit_insert_row({"at": now, "side": "local", "run_id": None, "integration_id": None, **row})
                    for row in audit
                ])


__all__ = ["DuplicateStore", "LinkMove", "ReportedDuplicate"]
