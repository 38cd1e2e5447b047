"""Importing contacts and leads files into the local store, recorded as runs that ``runs undo`` can take back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from crm_desktop.app.record_files import (
    FileRow,
    RowProblem,
    RowWarning,
    build_record,
    column_label,
    read_rows,
)
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Lead
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.database import Database
from crm_desktop.store.import_log import UNDO_DIRECTION, ImportLog, undo_message
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import ContactStore, LeadStore, SavedRecord
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.actions import UndoReport

logger = logging.getLogger(__name__)

#: The audit field saying a record was created by the import (old value blank).
CREATED_FIELD = "email"


@dataclass(frozen=True)
class FieldChange:
    """One field an import changed: its name as the file's columns say it, and the values before and after."""

    field: str
    old: str | None
    new: str | None


@dataclass
class RecordChange:
    """What an import did to one record.

    Attributes:
        line: the file line.
        email: the record's email.
        outcome: ``created``, ``updated`` or ``unchanged``.
        changes: the fields changed (every field the file gave, for a created record).
    """

    line: int
    email: str
    outcome: str
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class ImportReport:
    """What importing a file into the local store did.

    Attributes:
        created, updated, unchanged: record counts.
        problems: refused rows (one per row).
        warnings: values of kept rows that were not kept (social columns without a username), by column.
        notices: about the whole file (empty, header only).
        records: per record, the fields changed (old -> new).
        run_id: the import's run (``runs undo`` takes it back); ``None`` when nothing was saved.
        blank_clears: whether empty cells erased stored values.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    records: list[RecordChange] = field(default_factory=list)
    run_id: int | None = None
    blank_clears: bool = False


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_values(record: Contact | Lead) -> dict[str, str | None]:
    """A record's fields as an import sees them (the keys :func:`build_record` takes), as text."""
    values: dict[str, str | None] = {
        "firstName": _text(record.first_name),
        "lastName": _text(record.last_name),
        "company": _text(record.company),
    }
    if isinstance(record, Contact):
        values["phone"] = _text(record.phone)
    else:
        context = record.social_context
        values.update(
            source=_text(record.source),
            status=_text(record.status),
            platform=_text(context.platform) if context else None,
            conversationId=_text(context.conversation_id) if context else None,
            sentiment=_text(context.sentiment) if context else None,
            engagementScore=_text(context.engagement_score) if context else None,
        )
    seen: set[str] = set()
    for profile in record.social_profiles:
        platform = _text(profile.platform) or ""
        if platform in seen:
            continue  # a file's columns reach the first profile of a network
        seen.add(platform)
        for part in ("username", "url", "followers", "engagement"):
            values[f"social.{platform}.{part}"] = _text(getattr(profile, part))
    for name, value in record.custom_fields.items():
        values[f"custom.{name}"] = _text(value)
    return values


def _changes(old: dict[str, str | None], new: dict[str, str | None]) -> dict[str, tuple[str | None, str | None]]:
    return {key: (old.get(key), new.get(key)) for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)}


class ImportUndoError(Exception):
    """An import run cannot be undone (not an import, still running, or undone already); the message says why."""


class ImportService:
    """Imports files into the local store; each import with a change is a run whose audit rows undo it."""

    def __init__(self, database: Database) -> None:
        self.contacts = ContactStore(database)
        self.leads = LeadStore(database)
        self.log = ImportLog(database)
        self.store = SyncStore(database)
        self._moved = False

    def _model(self, obj: RecordObject) -> type[Contact] | type[Lead]:
        return Contact if obj is RecordObject.CONTACT else Lead

    def _find_many(self, obj: RecordObject, emails: list[str]) -> dict[str, Contact] | dict[str, Lead]:
        return self.contacts.find_many(emails) if obj is RecordObject.CONTACT else self.leads.find_many(emails)

    def _save_many(self, obj: RecordObject, records: list[Any]) -> list[SavedRecord]:
        return self.contacts.save_many(records) if obj is RecordObject.CONTACT else self.leads.save_many(records)

    def import_file(self, path: Path, obj: RecordObject, *, blank_clears: bool = False) -> ImportReport:
        """Validate a CSV/JSONL file and lay its valid rows over the stored records (all at once).

        Only the columns the file has are written; an empty cell leaves the stored value unless ``blank_clears``.

        Raises:
            ValueError: for an unsupported file or a CSV without an email column.
            OSError: when the file cannot be read.
        """
        model = self._model(obj)
        rows = read_rows(path, model)
        report = ImportReport(problems=list(rows.problems), notices=list(rows.notices), blank_clears=blank_clears)
        existing: dict[str, Any] = dict(self._find_many(obj, [row.email for row in rows.rows]))
        built: list[tuple[FileRow, Any, dict[str, tuple[str | None, str | None]]]] = []
        for row in rows.rows:
            before = existing.get(row.email)
            try:
                made = build_record(model, row, before, blank_clears=blank_clears)
            except InvalidRecordError as exc:
                report.problems.append(RowProblem.of(row.line, row.email, exc.problems))
                continue
            report.warnings.extend(made.warnings)
            old = field_values(before) if before is not None else {}
            changes = _changes(old, field_values(made.record))
            if before is None:
                changes[CREATED_FIELD] = (None, row.email)
            built.append((row, made.record, changes))
        report.problems.sort(key=lambda p: p.line)
        if not built:
            return report
        run_id = self.log.start(f"import of {path.name}" + (" (blank cells clear)" if blank_clears else ""))
        status = SyncRunStatus.FAILED
        audit: list[dict[str, Any]] = []
        try:
            saved = self._save_many(obj, [record for _, record, _ in built])
            for (row, _, changes), item in zip(built, saved, strict=True):
                outcome = "created" if item.created else "updated" if changes else "unchanged"
                setattr(report, outcome, getattr(report, outcome) + 1)
                shown = [FieldChange(column_label(k), old, new) for k, (old, new) in changes.items()
                         if k != CREATED_FIELD]
                report.records.append(RecordChange(row.line, row.email, outcome, shown))
                audit.extend({"entity": obj.value, "entity_id": str(item.id), "field": key, "old_value": old,
                              "new_value": new} for key, (old, new) in changes.items())
            status = SyncRunStatus.PARTIAL if report.problems else SyncRunStatus.SUCCEEDED
            report.run_id = run_id
        finally:
            self.log.finish(run_id, status, audit, created=report.created, updated=report.updated,
                            unchanged=report.unchanged, failed=len(report.problems),
                            total=len(built) + len(report.problems))
        return report

    def undo(self, run_id: int) -> UndoReport:
        """Set back the local values import run ``run_id`` changed; the undo is an import run of its own.

        A field changed again since the import (by a sync, a conflict resolution or another import) keeps its
        current value and is listed; records the import created are kept and listed.

        Raises:
            ImportUndoError: when the run is not an import, is still running, or was undone already.
        """
        run = self.store.get_run(run_id)
        if run.trigger is not SyncTrigger.IMPORT:
            raise ImportUndoError(f"run {run_id} is not an import")
        if run.status is SyncRunStatus.RUNNING:
            raise ImportUndoError(f"run {run_id} is still running")
        undone = self.log.undone_by(run_id)
        if undone is not None:
            raise ImportUndoError(f"run {run_id} was already undone (by run {undone})")
        rows = self.store.audit_for_run(run_id)
        by_record: dict[tuple[str, int], dict[str, tuple[str | None, str | None]]] = {}
        for audit in rows:
            fields = by_record.setdefault((audit.entity, int(audit.entity_id)), {})
            fields.setdefault(audit.field, (audit.old_value, audit.new_value))  # the first change is the oldest
        self._moved = False
        undo_id = self.log.start(undo_message(run_id), direction=UNDO_DIRECTION)
        report = UndoReport(undo_id)
        audit_rows: list[dict[str, Any]] = []
        status = SyncRunStatus.FAILED
        restored_records = 0
        try:
            for (entity, local_id), fields in by_record.items():
                if self._undo_record(RecordObject(entity), local_id, fields, report, audit_rows):
                    restored_records += 1
            # Values changed since the import were kept: the undo is partial and may be tried again later.
            status = SyncRunStatus.PARTIAL if self._moved else SyncRunStatus.SUCCEEDED
        finally:
            self.log.finish(undo_id, status, audit_rows, updated=restored_records, total=len(by_record))
        return report

    def _undo_record(
        self, obj: RecordObject, local_id: int, fields: dict[str, tuple[str | None, str | None]],
        report: UndoReport, audit: list[dict[str, Any]],
    ) -> bool:
        local = self.store.local_records(obj, [local_id]).get(local_id)
        if local is None:
            report.kept.append(f"{obj.value} {local_id}: deleted since; nothing to restore")
            return False
        record = local.record
        email = record.email
        if CREATED_FIELD in fields and fields[CREATED_FIELD][0] is None:
            report.kept.append(f"{email}: created by the import; kept (delete it by hand)")
            return False
        current = field_values(record)
        restore: dict[str, str | None] = {}
        moved: list[str] = []
        for key, (old, new) in fields.items():
            if current.get(key) == old:
                continue
            if current.get(key) != new:
                moved.append(column_label(key))
                continue
            restore[key] = old
        if moved:
            self._moved = True
            report.kept.append(f"{email}: {', '.join(moved)} changed since the import; current value kept")
        if not restore:
            return False
        row = FileRow(0, email, dict(restore))
        restored: Contact | Lead
        if isinstance(record, Contact):
            restored = build_record(Contact, row, record, blank_clears=True).record
        else:
            restored = build_record(Lead, row, record, blank_clears=True).record
        self._save_many(obj, [restored])
        after = field_values(restored)
        report.restored_local += len(restore)
        audit.extend({"entity": obj.value, "entity_id": str(local_id), "field": key, "old_value": current.get(key),
                      "new_value": after.get(key), "source": "undo"} for key in restore)
        return True
