"""Importing contacts and leads files into the local store, recorded as runs that ``runs undo`` can take back."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_desktop.app.record_files import (
    CONTACT_FIELDS,
    LEAD_FIELDS,
    FileRow,
    FileRows,
    RowProblem,
    RowWarning,
    as_text,
    build_record,
    column_label,
    count_rows,
    iter_rows,
)
from crm_desktop.domain.errors import FieldProblem, InvalidRecordError
from crm_desktop.domain.models import Contact, Lead, LeadStatus, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.wording import forgotten_reason
from crm_desktop.store.database import Database
from crm_desktop.store.import_log import AlreadyUndoneError, ImportLog, LocalRunOutcome, undo_message
from crm_desktop.store.models import LOCAL_TRIGGERS, SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import (
    AfterSave,
    ContactStore,
    EmailTakenError,
    LeadStore,
    NotFoundError,
    Relay,
    SavedRecord,
)
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.actions import ChangedSince, UndoRefused, UndoReport
from crm_desktop.sync.mapping import typed_custom_audit, with_custom_values
from crm_desktop.sync.plan import ChangeAction, PlannedChange, Side
from crm_desktop.sync.plan import FieldChange as PlanFieldChange

logger = logging.getLogger(__name__)

#: The audit field saying a record was created by the import (old value blank).
CREATED_FIELD = "email"
#: Rows looked up, laid over their stored records and compared together: an import holds one chunk of the file's
#: rows (and stored records) at a time, not the whole file.
IMPORT_CHUNK = 250


@dataclass(frozen=True)
class ImportProgress:
    """How far an import of a file is: its rows read and checked, of those the file holds, then their save.

    Attributes:
        rows_read: the rows read so far, refused ones included.
        total: the rows the file holds, counted before it is read (see :func:`count_rows`; ``None`` for a JSON
            array), and the rows read once all of them are.
        saving: every row is read and the valid ones are being saved, in one transaction (nothing is saved before).
    """

    rows_read: int
    total: int | None
    saving: bool = False

    def in_words(self) -> str:
        """The progress as the window and the command line say it ("50,000 of 200,000 rows read…")."""
        if self.saving:
            return f"all {self.rows_read:,} rows read; saving them…"
        if self.total is None:
            return f"{self.rows_read:,} rows read…"
        return f"{self.rows_read:,} of {self.total:,} rows read…"


#: Told how far an import is, from the thread the import runs on.
ImportProgressListener = Callable[[ImportProgress], None]


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
        custom_columns: the file's columns kept as custom fields, as the file names them.
        records: per record, the fields changed (old -> new), made when first read.
        run_id: the import's run (``runs undo`` takes it back); ``None`` when nothing was saved.
        blank_clears: whether empty cells erased stored values.
        skipped: rows of people forgotten at their request, not imported: (line, email, reason).
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    custom_columns: list[str] = field(default_factory=list)
    run_id: int | None = None
    blank_clears: bool = False
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    #: Per record, in file order: line, email, outcome and the changed fields as (field key, old, new). Plain
    #: tuples of text: a 100,000-row import keeps them all, and objects per field would cost the import more than
    #: its inserts (most callers never read them).
    outcomes: list[tuple[int, str, str, tuple[tuple[str, str | None, str | None], ...]]] = field(
        default_factory=list, repr=False)

    @functools.cached_property
    def records(self) -> list[RecordChange]:
        """Per record, the fields changed (old -> new) under the file's column names."""
        return [RecordChange(line, email, outcome, [FieldChange(column_label(key), old, new)
                                                     for key, old, new in changes])
                for line, email, outcome, changes in self.outcomes]


def field_values(record: Contact | Lead) -> dict[str, str | None]:
    """A record's fields as an import sees them (the keys :func:`build_record` takes), as text."""
    values: dict[str, str | None] = {
        "firstName": as_text(record.first_name),
        "lastName": as_text(record.last_name),
        "company": as_text(record.company),
    }
    if isinstance(record, Contact):
        values["phone"] = as_text(record.phone)
    else:
        context = record.social_context
        values.update(
            source=as_text(record.source),
            status=as_text(record.status),
            platform=as_text(context.platform) if context else None,
            conversationId=as_text(context.conversation_id) if context else None,
            sentiment=as_text(context.sentiment) if context else None,
            engagementScore=as_text(context.engagement_score) if context else None,
        )
    seen: set[str] = set()
    for profile in record.social_profiles:
        platform = as_text(profile.platform) or ""
        if platform in seen:
            continue  # a file's columns reach the first profile of a network
        seen.add(platform)
        for part in ("username", "url", "followers", "engagement"):
            values[f"social.{platform}.{part}"] = as_text(getattr(profile, part))
    for name, value in record.custom_fields.items():
        values[f"custom.{name}"] = as_text(value)
    return values


def _changes(old: dict[str, str | None], new: dict[str, str | None]) -> dict[str, tuple[str | None, str | None]]:
    return {key: (old.get(key), new.get(key)) for key in dict.fromkeys([*old, *new]) if old.get(key) != new.get(key)}


#: Fields changed, by key: old and new value.
Changes = dict[str, tuple[str | None, str | None]]
#: One record saved by hand: its id, the fields changed, and the record before and after (for an edit: their
#: custom values are audited with their types).
HandSave = tuple[int, Changes, tuple[Any, Any] | None]
#: Records a local run's outcome in the transaction of the save it tells (see ``ImportLog.finishing``).
Finisher = Callable[[Any, HandSave], None]


def _refused(obj: RecordObject, problems: list[RowProblem]) -> list[tuple[RecordObject, str, str]]:
    """Refused rows as a run's record log lists them: the record's email (or line) and why."""
    return [(obj, problem.record or f"line {problem.line}", f"line {problem.line}: {problem.why}")
            for problem in problems]


def row_chunks(rows: Iterable[FileRow], size: int) -> Iterator[list[FileRow]]:
    """A file's rows a list of ``size`` at a time (the last one shorter), as an import and its preview read them."""
    chunk: list[FileRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


#: The fields a person's edit form offers (their import keys), besides the custom fields the record holds.
EDITABLE_FIELDS: dict[RecordObject, tuple[str, ...]] = {
    RecordObject.CONTACT: CONTACT_FIELDS,
    RecordObject.LEAD: LEAD_FIELDS,
}


def editable_values(obj: RecordObject, record: Contact | Lead) -> dict[str, str | None]:
    """The values a person's edit form starts from: :data:`EDITABLE_FIELDS`, then the record's custom fields."""
    values = field_values(record)
    return {key: values.get(key) for key in values
            if key in EDITABLE_FIELDS[obj] or key.startswith("custom.")}


def _check_editable(obj: RecordObject, email: str, values: dict[str, str | None]) -> None:
    """Refuse a key the edit form does not offer (the email above all: it is the record's key)."""
    unknown = [key for key in values if key not in EDITABLE_FIELDS[obj] and not key.startswith("custom.")]
    if unknown:
        raise ValueError(f"{email}: not a field that can be edited here: {', '.join(unknown)}")


def edit_message(email: str) -> str:
    """The message of the run that records an edit of ``email`` made by hand."""
    return f"edit of {email}"


@dataclass(frozen=True)
class EditReport:
    """What saving one person's edit did.

    Attributes:
        email: the record's email.
        changes: the fields changed, by import key (``firstName``, ``custom.segment``), old and new.
        run_id: the edit's own run (its audit rows say ``edit``); ``None`` when nothing changed.
        local_id: the record's local id (known for a record added by hand).
    """

    email: str
    changes: tuple[FieldChange, ...]
    run_id: int | None
    local_id: int | None = None


class DuplicateRecordError(ValueError):
    """A record added by hand has the email of a stored one (the email is every record's key)."""


class ImportUndoError(UndoRefused):
    """An import run cannot be undone (not an import, still running, or undone already); the message says why."""


class ImportService:
    """Imports files into the local store; each import with a change is a run whose audit rows undo it."""

    def __init__(self, database: Database) -> None:
        self.contacts = ContactStore(database)
        self.leads = LeadStore(database)
        self.log = ImportLog(database)
        self.store = SyncStore(database)

    def _model(self, obj: RecordObject) -> type[Contact] | type[Lead]:
        return Contact if obj is RecordObject.CONTACT else Lead

    def _find_many(self, obj: RecordObject, emails: list[str]) -> dict[str, Contact] | dict[str, Lead]:
        return self.contacts.find_many(emails) if obj is RecordObject.CONTACT else self.leads.find_many(emails)

    def _save_many(self, obj: RecordObject, records: list[Any], relay: Relay | None = None,
                   after: AfterSave | None = None) -> list[SavedRecord]:
        if obj is RecordObject.CONTACT:
            return self.contacts.save_many(records, relay=relay, after=after)
        return self.leads.save_many(records, relay=relay, after=after)

    def import_file(self, path: Path, obj: RecordObject, *, blank_clears: bool = False,
                    progress: ImportProgressListener | None = None) -> ImportReport:
        """Validate a CSV/JSONL file and lay its valid rows over the stored records (all at once).

        Only the columns the file has are written; an empty cell leaves the stored value unless ``blank_clears``.
        ``progress`` is told the rows read after each chunk of them (of the rows counted first), the rows read and
        that total once all are, then that they are being saved (when any are).

        Raises:
            ValueError: for an unsupported file or a CSV without an email column.
            OSError: when the file cannot be read.
        """
        model = self._model(obj)
        read = FileRows()
        report = ImportReport(blank_clears=blank_clears)
        # The records to write and each one's place in report.outcomes (which holds its changes); by email, the
        # row each was built from (its line and values: every row of a file has the file's columns, read.columns)
        # and the record it was built over (laid again over the stored one if that changed before the write).
        # An import holds all of them until its one transaction, and every full garbage collection traverses each
        # object held that can refer to others: so parallel lists and dicts rather than a tuple or row object a
        # record (a row's values, plain text, are a dict the collector does not track).
        to_save: list[Any] = []
        places: list[int] = []
        line_of: dict[str, int] = {}
        values_of: dict[str, dict[str, Any]] = {}
        built_over: dict[str, Any] = {}
        total = count_rows(path) if progress is not None else None
        told: list[ImportProgress] = []

        def tell(step: ImportProgress) -> None:
            if progress is not None and step not in told[-1:]:  # the last chunk may end the file: told once
                told.append(step)
                progress(step)

        # The rows read: those read whole, and those refused as they were read (not those refused once built).
        read_whole = refused_built = 0
        for chunk in row_chunks(iter_rows(path, model, read), IMPORT_CHUNK):
            existing: dict[str, Any] = dict(self._find_many(obj, [row.email for row in chunk]))
            forgotten = self.store.forgotten_among([row.email for row in chunk if row.email not in existing])
            for row in chunk:
                if row.email in forgotten:
                    report.skipped.append((row.line, row.email, forgotten_reason(forgotten[row.email],
                                                                                 "not imported")))
                    continue
                before = existing.get(row.email)
                try:
                    made = build_record(model, row, before, blank_clears=blank_clears)
                except InvalidRecordError as exc:
                    read.problems.append(RowProblem.of(row.line, row.email, exc.problems))
                    refused_built += 1
                    continue
                report.warnings.extend(made.warnings)
                after = field_values(made.record)
                shown: tuple[tuple[str, str | None, str | None], ...]
                if before is None:
                    shown = tuple((key, None, new) for key, new in after.items() if new is not None)
                else:
                    shown = tuple((key, old, new) for key, (old, new) in _changes(field_values(before), after).items())
                    if not shown:
                        report.unchanged += 1
                        report.outcomes.append((row.line, row.email, "unchanged", ()))
                        continue
                # Created or updated is known once saved (blank until then).
                to_save.append(made.record)
                places.append(len(report.outcomes))
                line_of[row.email], values_of[row.email], built_over[row.email] = row.line, row.values, before
                report.outcomes.append((row.line, row.email, "", shown))
            read_whole += len(chunk)
            done = read_whole + len(read.problems) - refused_built
            tell(ImportProgress(done, None if total is None else max(total, done)))
        rows_read = read_whole + len(read.problems) - refused_built
        tell(ImportProgress(rows_read, rows_read))
        report.problems = sorted(read.problems, key=lambda p: p.line)
        report.notices = list(read.notices)
        report.custom_columns = read.custom_columns
        if not to_save and not report.unchanged:
            return report
        tell(ImportProgress(rows_read, rows_read, saving=True))
        run_id = self.log.start(f"import of {path.name}" + (" (blank cells clear)" if blank_clears else ""))
        relaid: dict[str, tuple[int, str, str, tuple[tuple[str, str | None, str | None], ...]] | None] = {}
        # The stored record and the one saved over it, of each row laid again (their custom values are audited
        # with their types).
        laid_again: dict[str, tuple[Any, Any]] = {}
        refused_over: dict[str, RowProblem] = {}

        def relay(record: Any, now: Any) -> Any:
            """The row laid again over the record as stored now, when a sync, an edit or an event changed it
            since it was read (the file's columns win; every other field keeps what was saved meanwhile)."""
            email = record.email
            row, before = FileRow(line_of[email], email, values_of[email], read.columns), built_over[email]
            if (now is None and before is None) or (
                    now is not None and before is not None and now.to_wire() == before.to_wire()):
                return record
            try:
                made = build_record(model, row, now, blank_clears=blank_clears)
            except InvalidRecordError as exc:
                # By email: a save made again (a contact inserted by another desktop meanwhile) relays it again.
                refused_over[record.email] = RowProblem.of(row.line, row.email, exc.problems)
                relaid[record.email] = None
                return None
            refused_over.pop(record.email, None)
            after = field_values(made.record)
            changes = ({key: (None, new) for key, new in after.items() if new is not None} if now is None
                       else _changes(field_values(now), after))
            relaid[record.email] = (row.line, row.email, "" if changes else "unchanged", tuple(
                (key, old, new) for key, (old, new) in changes.items()))
            laid_again[record.email] = (now, made.record)
            return made.record if changes else None

        read_problems, read_outcomes, read_unchanged = list(read.problems), list(report.outcomes), report.unchanged

        def outcome(saved_list: list[SavedRecord]) -> LocalRunOutcome:
            """The run's outcome, recorded in the save's own transaction (from what was read each time: a save
            made again, over a record another desktop inserted meanwhile, tells it again)."""
            saved = {item.email: item for item in saved_list}
            report.outcomes, report.unchanged = list(read_outcomes), read_unchanged
            report.created = report.updated = 0
            problems = [*read_problems, *refused_over.values()]
            audit: list[dict[str, Any]] = []
            for record, index in zip(to_save, places, strict=True):
                if record.email in relaid:
                    again = relaid[record.email]
                    report.outcomes[index] = again or (0, "", "refused", ())
                    if again is not None and again[2] == "unchanged":
                        report.unchanged += 1
                if record.email not in saved:
                    continue
                item = saved[record.email]
                line, email, _, shown = report.outcomes[index]
                done = "created" if item.created else "updated"
                setattr(report, done, getattr(report, done) + 1)
                report.outcomes[index] = (line, email, done, shown)
                # An undo keeps the records an import created, so their one audit row says only that.
                kept = ((CREATED_FIELD, None, email),) if item.created else shown
                laid_over, written = laid_again.get(record.email, (built_over[record.email], record))
                audit.extend(typed_custom_audit(
                    [{"entity": obj.value, "entity_id": str(item.id), "field": key, "old_value": old,
                      "new_value": new} for key, old, new in kept], laid_over, written))
            # A row refused when laid again over a record changed meanwhile is among the problems, not the outcomes.
            report.outcomes = [outcome for outcome in report.outcomes if outcome[2] != "refused"]
            report.problems = sorted(problems, key=lambda p: p.line)
            status = SyncRunStatus.PARTIAL if report.problems else SyncRunStatus.SUCCEEDED
            return LocalRunOutcome(status, audit, _refused(obj, report.problems), counts=dict(
                created=report.created, updated=report.updated, unchanged=report.unchanged,
                failed=len(report.problems), total=rows_read))

        try:
            # Unchanged records are not written: their rows (and updated_at, which a sync reads) stay as they are.
            # The values and the run's audit rows are committed together.
            self._save_many(obj, to_save, relay, self.log.finishing(run_id, outcome))
        except BaseException:
            report.created = report.updated = 0
            self.log.finish(run_id, SyncRunStatus.FAILED, (), refused=_refused(obj, report.problems),
                            unchanged=report.unchanged, failed=len(report.problems), total=rows_read)
            raise
        report.run_id = run_id
        return report

    def edit(self, obj: RecordObject, local_id: int, values: dict[str, str | None]) -> EditReport:
        """Save the marketer's edit of one stored contact or lead: ``values`` by field key (see
        :data:`EDITABLE_FIELDS`, ``custom.NAME``), a blank value clearing the field.

        The fields that changed are written together and audited as a run of their own (source ``edit``), which
        the History tab and ``runs undo`` take back; the next sync sends them to the CRMs. The edit is laid over
        the record as it is when it is written, found by its id: what a sync or an import saved meanwhile (another
        field, even a new email) stays.

        Raises:
            InvalidRecordError: naming every refused field and the reason (nothing is written).
            NotFoundError: when the record is not stored.
            ValueError: when a key is not a field that can be edited here (the email is the record's key).
        """
        _check_editable(obj, f"{obj.value} {local_id}", values)
        model = self._model(obj)

        def edited(before: Any) -> Any:
            made = build_record(model, FileRow(0, before.email, dict(values)), before, blank_clears=True)
            return made.record if _changes(field_values(before), field_values(made.record)) else None

        # Checked before a run is recorded: a refused edit, or one that changes nothing, leaves no trace.
        stored = self.store.local_records(obj, [local_id]).get(local_id)
        if stored is None:
            raise NotFoundError(f"no {obj.value} {local_id} in the local store")
        if obj is RecordObject.LEAD and "status" in values and not (values["status"] or "").strip():
            # An import keeps the status of a blank cell; a blank typed on purpose would seem to have been saved.
            raise InvalidRecordError(obj.value, stored.record.email, [FieldProblem(
                "status", "a lead always has a status: give one of " + ", ".join(s.value for s in LeadStatus))])
        if edited(stored.record) is None:
            return EditReport(stored.record.email, (), None, local_id=local_id)

        def write(finish: Finisher) -> HandSave:
            def changes_of(found: tuple[Any, Any, Any]) -> HandSave:
                before, after, _ = found
                if after is None:
                    return local_id, {}, None
                return local_id, _changes(field_values(before), field_values(after)), (before, after)

            found = self.store.change_local(obj, local_id, edited,
                                            then=lambda session, found: finish(session, changes_of(found)))
            if found is None:
                raise NotFoundError(f"{stored.record.email}: deleted from the local store meanwhile")
            return changes_of(found)

        _, run_id, changed = self._save_by_hand(obj, stored.record.email, write, created=False)
        logger.info("edited %s %s by hand (%s)", obj.value, local_id, ", ".join(changed))
        return EditReport(stored.record.email, tuple(FieldChange(key, old, new) for key, (old, new) in changed.items()),
                          run_id, local_id=local_id)

    def create(self, obj: RecordObject, email: str, values: dict[str, str | None]) -> EditReport:
        """Add one contact or lead typed by hand (the People panel's New…): checked as an import row is, recorded
        as a run whose audit row says it was created (``runs undo`` keeps a record it created, as for an import).
        It is only ever inserted: a record with that email saved meanwhile (by a sync, say) is not overwritten.

        Raises:
            InvalidRecordError: naming every refused field (the email included) and the reason (nothing is written).
            ValueError: when a key is not a field the form offers.
            DuplicateRecordError: when a record with that email is stored already.
        """
        _check_editable(obj, email, values)
        model = self._model(obj)
        made = build_record(model, FileRow(0, email.strip(), dict(values)), blank_clears=True)  # type: ignore[type-var]
        email = made.record.email
        taken = DuplicateRecordError(f"{email} is already a {obj.value}: pick them in the list and use Edit…")
        if self._find_many(obj, [email]).get(email) is not None:
            raise taken

        # As for an import, a record created has one audit row, saying so (an undo keeps it).
        created_row: Changes = {CREATED_FIELD: (None, email)}

        def write(finish: Finisher) -> HandSave:
            try:
                local_id = self.store.add_local(
                    obj, made.record, then=lambda session, new_id: finish(session, (new_id, created_row, None)))
            except EmailTakenError:
                raise taken from None
            return local_id, created_row, None

        local_id, run_id, _ = self._save_by_hand(obj, email, write, created=True)
        logger.info("added %s %s by hand", obj.value, local_id)
        given = {key: value for key, value in field_values(made.record).items() if value is not None}
        return EditReport(email, tuple(FieldChange(key, None, value) for key, value in given.items()), run_id,
                          local_id=local_id)

    def _save_by_hand(
        self, obj: RecordObject, email: str, write: Callable[[Finisher], HandSave], *, created: bool,
    ) -> tuple[int, int, Changes]:
        """Record ``write`` (which saves one record typed by hand, calling the finisher it is given in the save's
        transaction, and returns its id and the changes to audit) as a run of its own, its audit rows saying
        ``edit``; the record's id, the run's and the changes."""
        run_id = self.log.start(edit_message(email), direction=SyncDirection.EDIT, trigger=SyncTrigger.EDIT)

        def outcome(result: HandSave) -> LocalRunOutcome:
            local_id, changed, records = result
            audit = [{"entity": obj.value, "entity_id": str(local_id), "field": key, "old_value": old,
                      "new_value": new, "source": "edit"} for key, (old, new) in changed.items()]
            if records is not None:
                audit = typed_custom_audit(audit, *records)
            done = 1 if audit else 0
            return LocalRunOutcome(SyncRunStatus.SUCCEEDED, audit, counts=dict(
                created=done if created else 0, updated=0 if created else done, failed=0, total=1))

        try:
            local_id, changed, _ = write(self.log.finishing(run_id, outcome))
        except BaseException:
            self.log.finish(run_id, SyncRunStatus.FAILED, (), failed=1, total=1)
            raise
        return local_id, run_id, changed

    def undo(self, run_id: int, *, force: bool = False) -> UndoReport:
        """Set back the local values import run ``run_id`` changed; the undo is an import run of its own.

        Like the undo of a sync, it is refused when a value the import wrote changed since (by a sync, a conflict
        resolution or another import), listing them, unless ``force``. Records the import created are kept and listed.

        Raises:
            ImportUndoError: when the run is not an import, is still running, was undone already (also by an undo
                from another process that committed first: this one then writes nothing and its run is removed),
                or values it wrote changed since (without ``force``).
        """
        self.log.mark_interrupted()
        run = self.store.get_run(run_id)
        if run.trigger not in LOCAL_TRIGGERS:
            raise ImportUndoError(f"run {run_id} is not an import or an edit")
        if run.status is SyncRunStatus.RUNNING:
            raise ImportUndoError(f"run {run_id} is still running")
        undone = self.log.undone_by(run_id)
        if undone is not None:
            raise ImportUndoError(f"run {run_id} was already undone (by run {undone})")
        by_record: dict[tuple[str, int], dict[str, tuple[str | None, str | None]]] = {}
        # The old values whose type the audit kept (a custom field's 42, true): put back as they were.
        exact: dict[tuple[str, int], dict[str, Any]] = {}
        for audit in self.store.audit_for_run(run_id):
            fields = by_record.setdefault((audit.entity, int(audit.entity_id)), {})
            if audit.field in fields:
                continue  # the first change is the oldest
            fields[audit.field] = (audit.old_value, audit.new_value)
            if audit.old_type is not None:
                exact.setdefault((audit.entity, int(audit.entity_id)), {})[audit.field] = audit.old
        if not by_record:
            interrupted = " (it was interrupted before it saved anything)" if run.status is SyncRunStatus.FAILED else ""
            raise ImportUndoError(f"run {run_id} changed nothing{interrupted}: nothing to undo")
        kept: list[str] = []
        moved: list[ChangedSince] = []
        plans: list[_RecordUndo] = []
        for (entity, local_id), fields in by_record.items():
            planned = self._plan_record(RecordObject(entity), local_id, fields, exact.get((entity, local_id), {}),
                                        kept, moved)
            if planned is not None:
                plans.append(planned)
        if moved and not force:
            listed = "; ".join(str(item) for item in moved)
            made_by = "edit" if run.trigger is SyncTrigger.EDIT else "import"
            raise ImportUndoError(f"run {run_id}: values it wrote changed since: {listed}. Nothing was undone; "
                                  f"--force puts back the values from before the {made_by} anyway")
        undo_id = self.log.start(undo_message(run_id), direction=SyncDirection.UNDO, trigger=run.trigger)
        report = UndoReport(undo_id, kept=kept, overridden=moved)

        def outcome(_: list[SavedRecord]) -> LocalRunOutcome:
            """Recorded in the transaction of the restore (each planned record's changes are known by then)."""
            audit_rows = [row for planned in plans for row in typed_custom_audit(
                [{"entity": planned.obj.value, "entity_id": str(planned.local_id), "field": key,
                  "old_value": old, "new_value": new, "source": "undo"}
                 for key, (old, new) in planned.changes.items()], planned.laid_over, planned.restored)]
            return LocalRunOutcome(SyncRunStatus.SUCCEEDED, audit_rows,
                                   counts=dict(updated=len(plans), total=len(by_record)))

        # An import or an edit is of one object: its restore and the undo's own run commit together. Each
        # transaction asks again whether the run was undone (another desktop, or cron, may have undone it since the
        # look above), holding the run until it commits: of two undos at once, one writes and the other nothing.
        objects = [obj for obj in RecordObject if any(planned.obj is obj for planned in plans)]
        try:
            for place, obj in enumerate(objects, start=1):
                self._restore(obj, [planned for planned in plans if planned.obj is obj], kept, force=force,
                              after=self.log.undoing(run_id, undo_id, outcome if place == len(objects) else None))
            if not objects:
                self.log.finish_undo(run_id, undo_id, LocalRunOutcome(
                    SyncRunStatus.SUCCEEDED, counts=dict(updated=0, total=len(by_record))))
        except AlreadyUndoneError as exc:
            # Nothing of this undo was written: its run goes too, the run keeps one undo.
            self.log.discard(undo_id)
            raise ImportUndoError(str(exc)) from None
        except BaseException:
            self.log.finish(undo_id, SyncRunStatus.FAILED, (), updated=0, total=len(by_record))
            raise
        for planned in plans:
            if not planned.changes:
                continue
            report.restored_local += len(planned.changes)
            report.plan.add(PlannedChange(planned.obj, planned.email, Side.LOCAL, ChangeAction.UPDATE, {
                column_label(key): PlanFieldChange(old, new) for key, (old, new) in planned.changes.items()}))
        return report

    def _plan_record(
        self, obj: RecordObject, local_id: int, fields: dict[str, tuple[str | None, str | None]],
        exact: dict[str, Any], kept: list[str], moved: list[ChangedSince],
    ) -> _RecordUndo | None:
        """What undoing one record takes: its fields back to the values before the import (``None``: nothing);
        ``exact``: the old values the audit kept with their type, by field key."""
        local = self.store.local_records(obj, [local_id]).get(local_id)
        if local is None:
            merged = self.store.gone_by_merge(obj, local_id)
            kept.append(f"{merged[0]}: merged into {merged[1]} since; nothing to restore" if merged
                        else f"{obj.value} {local_id}: deleted since; nothing to restore")
            return None
        record = local.record
        email = record.email
        if CREATED_FIELD in fields and fields[CREATED_FIELD][0] is None:
            kept.append(f"{email}: created by the import; kept (delete it by hand)")
            return None
        current = field_values(record)
        restore: dict[str, str | None] = {}
        for key, (old, new) in fields.items():
            if current.get(key) == old:
                continue
            if current.get(key) != new:
                moved.append(ChangedSince(email, column_label(key), Side.LOCAL, new, current.get(key)))
            restore[key] = old
        if not restore:
            return None
        exact_restore = {key: exact[key] for key in restore if key in exact}
        restored = _restored(record, restore, exact_restore)
        after = field_values(restored)
        changes = {key: (current.get(key), after.get(key)) for key in restore}
        return _RecordUndo(obj, local_id, email, restored, changes, record, restore, exact_restore, record)

    def _restore(self, obj: RecordObject, plans: list[_RecordUndo], kept: list[str], *, force: bool,
                 after: AfterSave | None = None) -> None:
        """Save the restored records of ``obj`` in one transaction. A record saved meanwhile (by a sync, an edit
        in another window or desktop) gets the undone fields laid over it as it is now, its other fields kept; an
        undone field changed meanwhile keeps the newer value (listed in ``kept``) unless ``force``."""
        if not plans:
            return
        by_email = {planned.email: planned for planned in plans}

        def relay(record: Any, now: Any) -> Any:
            planned = by_email[record.email]
            if now is not None and now.to_wire() == planned.read.to_wire():
                return record
            if now is None:
                planned.changes = {}
                gone = f"{planned.email}: deleted meanwhile; nothing to restore"
                if gone not in kept:
                    kept.append(gone)
                return None
            current, read = field_values(now), field_values(planned.read)
            restore = {key: value for key, value in planned.restore.items()
                       if force or current.get(key) == read.get(key)}
            kept.extend(line for line in (f"{planned.email}: {column_label(key)} changed meanwhile; the newer value "
                                          "is kept" for key in planned.restore if key not in restore)
                        if line not in kept)  # a save made again relays again
            planned.restored = _restored(now, restore, {key: value for key, value in planned.exact.items()
                                                        if key in restore})
            planned.laid_over = now
            after = field_values(planned.restored)
            planned.changes = {key: (current.get(key), after.get(key)) for key in planned.restore
                               if current.get(key) != after.get(key)}
            return planned.restored

        self._save_many(obj, [planned.restored for planned in plans], relay, after)


@dataclass
class _RecordUndo:
    """One record's undo: the record with its old values, and each field's current -> restored value."""

    obj: RecordObject
    local_id: int
    email: str
    restored: Contact | Lead
    changes: dict[str, tuple[str | None, str | None]]
    #: The record as read when the undo was planned, and the values to put back by field key.
    read: Contact | Lead
    restore: dict[str, str | None]
    #: Of those, the values the audit kept with their type (a custom field's 42), put back exactly.
    exact: dict[str, Any]
    #: The record the restored values are laid over (as read, or as saved meanwhile).
    laid_over: Contact | Lead


def _restored(record: Contact | Lead, restore: dict[str, str | None], exact: dict[str, Any]) -> Contact | Lead:
    """``record`` with the values of ``restore`` put back (as an import lays a row's cells), those of ``exact``
    with their type."""
    row = FileRow(0, record.email, dict(restore))
    if isinstance(record, Contact):
        return with_custom_values(build_record(Contact, row, record, blank_clears=True).record, exact)
    return with_custom_values(build_record(Lead, row, record, blank_clears=True).record, exact)
