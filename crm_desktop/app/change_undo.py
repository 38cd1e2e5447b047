"""Undoing one recorded change of one contact's or lead's field: the value from before it is put back locally, the
undo is audited as a run of its own, and the next sync pushes it to the CRMs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from crm_desktop.app.imports import field_values
from crm_desktop.app.record_files import FileRow, build_record, column_label
from crm_desktop.app.text import stored_text
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Lead, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.database import Database
from crm_desktop.store.import_log import AlreadyUndoneError, ImportLog, LocalRunOutcome
from crm_desktop.store.models import MERGED_FIELD, SyncRunStatus, SyncTrigger
from crm_desktop.store.people_store import PeopleStore
from crm_desktop.store.repositories import ContactStore, LeadStore
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.actions import UndoRefused
from crm_desktop.sync.mapping import apply_values, record_values, typed_custom_audit, with_custom_values

logger = logging.getLogger(__name__)


#: Recorded changes that are not a field value one undo can put back: the email (the record's key in every CRM; an
#: import or a pull that made the person records it as blank -> the email) and a merge's row.
NOT_UNDOABLE = frozenset({"email", MERGED_FIELD})


def undoable(field: str) -> bool:
    """Whether a recorded change of ``field`` is one :meth:`ChangeUndoService.undo` can put back (History offers
    Undo this change, and ``contacts history --json`` says ``undoable``, only for those)."""
    return field not in NOT_UNDOABLE


def change_undo_message(audit_id: int) -> str:
    """The message of the run that undoes recorded change ``audit_id``."""
    return f"undo of change {audit_id}"


class ChangeUndoRefused(UndoRefused):
    """A single change cannot be undone; the message says why (and whether forcing would help).

    Attributes:
        changed_since: the field holds another value than the change wrote (forcing puts the old one back anyway).
        unknown: there is no such recorded change of a contact or lead.
    """

    def __init__(self, message: str, *, changed_since: bool = False, unknown: bool = False) -> None:
        super().__init__(message)
        self.changed_since = changed_since
        self.unknown = unknown


@dataclass(frozen=True)
class ChangeUndoReport:
    """What undoing one change did.

    Attributes:
        run_id: the undo's own run (its audit row says field, before and after, source ``undo``).
        email: the record's email.
        field: the field as the marketer's columns name it.
        restored: the value put back.
        replaced: the value it replaced.
        obj: contact or lead.
        key: the field as the record's values name it (``company``, ``custom.segment``).
        blank_kept_in_crms: a blank was put back that no sync sends, so each CRM keeps its value (set by
            :meth:`PeopleService.undo_change`, which knows the mappings).
    """

    run_id: int
    email: str
    field: str
    restored: str | None
    replaced: str | None
    obj: RecordObject
    key: str
    blank_kept_in_crms: bool = False


#: What an undo that put back a blank no mapping sends says instead of "the next sync sends it".
BLANK_STAYS_HERE = "blank here only: a blank never clears a CRM's value, so the CRMs keep theirs"


def undone_text(report: ChangeUndoReport) -> str:
    """What undoing one change did, as the People panel and ``contacts undo-change`` say it, down to whether the
    next sync sends the value put back to the CRMs."""
    text = (f"{report.email}: {report.field} is {report.restored or '(blank)'} again (was "
            f"{report.replaced or '(blank)'}; run {report.run_id}); ")
    # A blank no mapping sends leaves the CRMs' values: promising to send it would be untrue.
    return text + (BLANK_STAYS_HERE if report.blank_kept_in_crms else "the next sync sends it to the CRMs")


class ChangeUndoService:
    """Undoes one audited field change of a contact or lead."""

    def __init__(self, database: Database) -> None:
        self._people = PeopleStore(database)
        self._store = SyncStore(database)
        self._contacts = ContactStore(database)
        self._leads = LeadStore(database)
        self._log = ImportLog(database)

    def undo(self, audit_id: int, *, force: bool = False) -> ChangeUndoReport:
        """Put back the value recorded change ``audit_id`` replaced.

        Args:
            force: undo even though the field changed again after that change (the newer value is lost).

        Raises:
            ChangeUndoRefused: no such change; not a field value; the record is gone; undone already (also by an
                undo from another process that committed first: this one then writes nothing and its run is
                removed, with or without ``force``); the field already holds the old value; or (without ``force``)
                the field changed since.
        """
        found = self._people.audit_entry(audit_id)
        if found is None:
            raise ChangeUndoRefused(f"there is no recorded change {audit_id} of a contact or lead", unknown=True)
        obj, local_id, change = found
        label = column_label(change.field)
        message, undoing = change_undo_message(audit_id), f"change {audit_id} ({label})"
        # The record is read before the look: an undo of this change committed before the read (its value and its
        # run are committed together) is seen by the look, and said so, rather than "already holds the old value".
        local = self._store.local_records(obj, [local_id]).get(local_id)
        undone = self._log.undo_with_message(message)
        if undone is not None:
            raise ChangeUndoRefused(str(AlreadyUndoneError(undoing, undone)))
        if local is None:
            raise ChangeUndoRefused(f"the {obj.value} of change {audit_id} is no longer in the local store")
        record = local.record
        by_import = field_values(record)
        by_sync = {name: stored_text(value) for name, value in record_values(record).items()}
        if change.field in by_import or change.field.startswith(("custom.", "social.")):
            current = by_import.get(change.field)
        elif change.field in by_sync and undoable(change.field):
            current = by_sync[change.field]
        else:
            raise ChangeUndoRefused(f"{record.email}: {label!r} is not a field value that can be put back")
        if current == change.before:
            raise ChangeUndoRefused(f"{record.email}: {label} already holds {change.before or '(blank)'!s}")
        if current != change.after and not force:
            raise ChangeUndoRefused(
                f"{record.email}: {label} changed since this change (it wrote {change.after or '(blank)'}, it is "
                f"now {current or '(blank)'}); nothing was undone. Undo anyway to put back "
                f"{change.before or '(blank)'} over the newer value", changed_since=True,
            )
        # The old value with its type where the audit kept it (a custom field's 42, true), else its text.
        exact = {change.field: change.before_value} if change.before_type is not None else {}
        try:
            self._restored(record, change.field, change.before, by_import, exact)
        except InvalidRecordError as exc:
            raise ChangeUndoRefused(f"{record.email}: {label}: the old value is not valid now: {exc}") from exc

        def put_back(now: Contact | Lead) -> Contact | Lead:
            """The old value laid over the record as stored when it is written (held from this read on): what a
            sync or an edit saved meanwhile stays, and a change of this very field meanwhile is not overwritten
            unless forced."""
            value_now = self._value_of(now, change.field)
            if value_now != current and not force:
                raise ChangeUndoRefused(
                    f"{record.email}: {label} changed while this change was being undone (it is now "
                    f"{value_now or '(blank)'}); nothing was undone", changed_since=True)
            return self._restored(now, change.field, change.before, field_values(now), exact)

        def outcome(found: tuple[Any, Any, Any]) -> LocalRunOutcome:
            before, after, _ = found
            audit_rows = typed_custom_audit([{"entity": obj.value, "entity_id": str(local_id), "field": change.field,
                                              "old_value": self._value_of(before, change.field),
                                              "new_value": change.before, "source": "undo"}], before, after)
            return LocalRunOutcome(SyncRunStatus.SUCCEEDED, audit_rows, counts=dict(updated=1, total=1))

        run_id = self._log.start(message, direction=SyncDirection.UNDO, trigger=SyncTrigger.EDIT)
        try:
            # The value and the undo's audit row are committed together. Another desktop on the team store may have
            # undone this change since the look above: the write asks again, in its transaction, once it holds the
            # record (every undo of this change writes this one record and holds it first: on SQLite that is the
            # database's write lock, taken before the look so that it sees what was committed; on PostgreSQL the
            # row's lock, which a second undo waits for until the first commits, then looks). So of two undos at
            # once one writes and the other sees it, before put_back judges the value it finds. The run that made
            # the change is not held: it may be gone (its audit rows keep no run then), and holding an import's run
            # would make an undo of that whole import wait on this one for nothing.
            written = self._store.change_local(obj, local_id, put_back, then=self._log.finishing(run_id, outcome),
                                               first=self._log.not_undone(message, undoing))
        except AlreadyUndoneError as exc:
            # Nothing of this undo was written: its run goes too, the change keeps one undo.
            self._log.discard(run_id)
            raise ChangeUndoRefused(str(exc)) from None
        except BaseException:
            self._log.finish(run_id, SyncRunStatus.FAILED, (), updated=0, failed=1, total=1)
            raise
        if written is None:
            self._log.finish(run_id, SyncRunStatus.FAILED, (), updated=0, failed=1, total=1)
            raise ChangeUndoRefused(f"the {obj.value} of change {audit_id} was deleted meanwhile")
        logger.info("undid change %s of %s %s (%s)", audit_id, obj.value, local_id, change.field)
        return ChangeUndoReport(run_id, record.email, label, change.before, current, obj, change.field)

    @staticmethod
    def _value_of(record: Contact | Lead, name: str) -> str | None:
        """The field's value as the audit tells it (an import's column or a mapped value)."""
        by_import = field_values(record)
        if name in by_import or name.startswith(("custom.", "social.")):
            return by_import.get(name)
        return stored_text(record_values(record).get(name))

    @staticmethod
    def _restored(record: Contact | Lead, name: str, value: str | None,
                  by_import: dict[str, str | None], exact: dict[str, Any]) -> Contact | Lead:
        if name in by_import or name.startswith(("custom.", "social.")):
            row = FileRow(0, record.email, {name: value})
            if isinstance(record, Contact):
                return with_custom_values(build_record(Contact, row, record, blank_clears=True).record, exact)
            return with_custom_values(build_record(Lead, row, record, blank_clears=True).record, exact)
        return apply_values(record, {name: value})


__all__ = ["BLANK_STAYS_HERE", "ChangeUndoRefused", "ChangeUndoReport", "ChangeUndoService", "RecordObject",
           "change_undo_message", "undone_text"]
