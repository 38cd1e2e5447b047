"""People and campaigns for the marketer's desk: paged lists of contacts and leads, one person's whole story, an
import preview, and the attribution report with its touchpoints-per-day series."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path

from crm_desktop.app.change_undo import (
    BLANK_STAYS_HERE,
    ChangeUndoRefused,
    ChangeUndoReport,
    ChangeUndoService,
    undone_text,
)
from crm_desktop.app.crm_web import CrmLinkUnavailable, CrmWebLinks
from crm_desktop.app.csv_export import inert_cell, spreadsheet_csv
from crm_desktop.app.duplicates import DuplicateService
from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.forget import ForgetOutcome, ForgetService
from crm_desktop.app.imports import (
    IMPORT_CHUNK,
    DuplicateRecordError,
    EditReport,
    ImportProgress,
    ImportProgressListener,
    ImportReport,
    editable_values,
    field_values,
    row_chunks,
)
from crm_desktop.app.record_files import (
    CONTACT_FIELDS,
    LEAD_CONTEXT_FIELDS,
    LEAD_FIELDS,
    PROFILE_PARTS,
    FileRows,
    RowProblem,
    RowWarning,
    build_record,
    column_key,
    count_rows,
    file_column,
    iter_rows,
)
from crm_desktop.app.social import SocialService, closest_names
from crm_desktop.app.sync_service import SyncService
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Lead, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.scoring import EngagementScore
from crm_desktop.domain.social import AttributionModel, AttributionReport, LeadAttribution, PersonRef
from crm_desktop.store.database import Database
from crm_desktop.store.models import SyncTrigger
from crm_desktop.store.people_store import (
    AuditLine,
    CrmLinkLine,
    Keyset,
    PeopleColumn,
    PeopleQuery,
    PeopleStore,
    PersonLine,
    ProfileLine,
    SyncState,
    TimelineEntry,
    TouchpointSeries,
)
from crm_desktop.store.repositories import ContactStore, LeadStore, NotFoundError
from crm_desktop.store.settings import WorkspaceSettingsStore
from crm_desktop.sync.mapping import sends_a_blank

logger = logging.getLogger(__name__)

__all__ = [
    "BLANK_STAYS_HERE",
    "AuditLine",
    "ChangeUndoRefused",
    "ChangeUndoReport",
    "CrmLinkLine",
    "CrmLinkUnavailable",
    "DuplicateRecordError",
    "EditReport",
    "FileFingerprint",
    "ImportFileChanged",
    "ImportPreview",
    "Keyset",
    "NotFoundError",
    "PeopleColumn",
    "PeopleQuery",
    "PeopleService",
    "PersonDetail",
    "PersonLine",
    "ProfileLine",
    "SyncOneResult",
    "SyncState",
    "TimelineEntry",
    "TouchpointSeries",
    "local_midnight",
    "period_start",
    "undone_text",
    "write_report_csv",
]


def local_midnight(day: date, zone: tzinfo | None = None) -> datetime:
    """The moment ``day`` starts in ``zone`` (the system's local time when ``None``), aware in UTC."""
    if zone is None:
        return datetime.combine(day, time()).astimezone().astimezone(UTC)
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def period_start(days: int, now: datetime, zone: tzinfo | None = None) -> datetime:
    """The start of "the last ``days`` days" at ``now``: midnight of the day ``days - 1`` days before today in
    ``zone`` (local time when ``None``), so that the period holds ``days`` calendar days, today included."""
    today = now.astimezone(zone).date()
    return local_midnight(today - timedelta(days=max(days, 1) - 1), zone)


#: People read per page by an export.
EXPORT_PAGE = 1000
#: An export's first columns (after the email), always written: the fields an import of that kind reads.
_EXPORT_FIELDS: dict[RecordObject, tuple[str, ...]] = {
    RecordObject.CONTACT: CONTACT_FIELDS,
    RecordObject.LEAD: LEAD_FIELDS + LEAD_CONTEXT_FIELDS,
}


def _profile_column_order(key: str) -> tuple[str, int]:
    """``social.twitter.username`` before ``social.twitter.followers``: by network, then as an import lists them."""
    _, platform, part = key.split(".", 2)
    return platform, PROFILE_PARTS.index(part) if part in PROFILE_PARTS else len(PROFILE_PARTS)


#: The detail pane's timeline holds a person's newest entries, this many.
TIMELINE_SHOWN = 500


@dataclass
class PersonDetail:
    """Everything the detail pane shows about one contact or lead.

    Attributes:
        obj, local_id, email, name, company: the record.
        profiles: its social profiles with follower counts.
        score: its engagement score with the parts it is made of (``None`` without social activity).
        timeline: touchpoints and conversations, newest first (the newest :data:`TIMELINE_SHOWN`).
        timeline_size: how many the whole timeline holds (more than ``timeline`` shows for a busy person).
        attribution: for a lead, its credits under each model.
        crm_links: per integration, the CRM record and its sync state.
        audit: recorded field changes, newest first.
        fields: the values the edit form offers, by field key (see :func:`editable_values`).
    """

    obj: RecordObject
    local_id: int
    email: str
    name: str
    company: str | None
    profiles: list[ProfileLine] = field(default_factory=list)
    score: EngagementScore | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_size: int = 0
    attribution: dict[AttributionModel, LeadAttribution] = field(default_factory=dict)
    crm_links: list[CrmLinkLine] = field(default_factory=list)
    audit: list[AuditLine] = field(default_factory=list)
    fields: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FileFingerprint:
    """A file's size, modification time and content hash: whether it is still the file that was previewed.

    Attributes:
        size: bytes.
        mtime_ns: modification time, in nanoseconds.
        sha256: the content's SHA-256 (an edit that keeps the size and the time is still seen).
    """

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileFingerprint:
        """The fingerprint of ``path`` now.

        Raises:
            OSError: when the file cannot be read.
        """
        digest = hashlib.sha256()
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        return cls(stat.st_size, stat.st_mtime_ns, digest.hexdigest())


class ImportFileChanged(ValueError):
    """The file changed after its preview: saving it would import rows the marketer never saw."""


@dataclass
class ImportPreview:
    """What importing a file would do, worked out before anything is saved.

    Attributes:
        path: the file.
        obj: contacts or leads.
        new, existing: valid rows that would create or update a record.
        problems: refused rows (line, field as the file names it, reason).
        warnings: values of valid rows that would not be kept (a network's columns without its username), by line.
        notices: about the whole file.
        custom_columns: the file's columns kept as custom fields (no field of the record goes by their names).
        fingerprint: the file as it was when the check began (Save refuses a file that differs from it).
        forgotten: rows of people forgotten at their request, which the import skips.
    """

    path: Path
    obj: RecordObject
    new: int = 0
    existing: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    custom_columns: list[str] = field(default_factory=list)
    fingerprint: FileFingerprint | None = None
    forgotten: int = 0

    @property
    def valid(self) -> int:
        """Rows that would be saved."""
        return self.new + self.existing

    def in_words(self, problem: RowProblem) -> tuple[str, str]:
        """A refused row's fields and reason with each field named as the marketer knows it (a file's ``phone``
        column: "Phone"); a column that is not one of the record's own fields keeps the file's name for it."""
        model: type[Contact] | type[Lead] = Contact if self.obj is RecordObject.CONTACT else Lead
        if not problem.problems:
            return problem.field, problem.reason
        names = []
        for bad in problem.problems:
            key = column_key(model, bad.field)
            names.append(local_field_label(self.obj, key) if key is not None else bad.field)
        if len(names) == 1:
            return names[0], problem.reason
        return ", ".join(names), "; ".join(f"{name}: {bad.reason}" for name, bad in zip(names, problem.problems,
                                                                                          strict=True))


@dataclass(frozen=True)
class SyncOneResult:
    """What pushing one record now did.

    Attributes:
        integration: the integration's name.
        outcome: created, updated, unchanged or failed.
        message: a sentence for the marketer (the CRM's reason when it failed).
        run_id: the push's run in the Sync Monitor.
    """

    integration: str
    outcome: str
    message: str
    run_id: int | None


class PeopleService:
    """The People panel's reads, imports and one-person actions, on the workspace's store and services.

    Attributes:
        store: the People reads.
        links: web addresses of CRM records.
        changes: undo of a single recorded change.
        duplicates: likely duplicates and merges.
        forgetting: forgetting a person at their request (with the CRM connections, for their CRM records).
    """

    def __init__(self, database: Database, social: SocialService, sync: SyncService) -> None:
        self.store = PeopleStore(database)
        self._contacts = ContactStore(database)
        self._leads = LeadStore(database)
        self._social = social
        self._sync = sync
        self.links = CrmWebLinks(sync.integrations, sync.actions, WorkspaceSettingsStore(database))
        self.changes = ChangeUndoService(database)
        self.duplicates = DuplicateService(database, sync)
        self.forgetting = ForgetService(database, sync.actions)

    # -- one person's CRM records ------------------------------------------------------------------------------

    async def forget_in_crms_first(self, email: str) -> ForgetOutcome:
        """Delete the person's linked CRM records, then forget them here only if every deletion went through (the
        path of ``contacts forget --in-crms``), on the sync worker when there is one: its CRM requests and store
        calls never hold up the GUI's loop."""
        return await self._sync.off_loop(self.forgetting.forget_in_crms_first(email))

    async def record_url(self, integration: str, obj: RecordObject, crm_id: str) -> str:
        """The CRM web UI's page of a linked record (see :class:`CrmWebLinks`)."""
        return await self.links.url(integration, obj, crm_id)

    async def sync_one(self, integration: str, obj: RecordObject, local_id: int) -> SyncOneResult:
        """Push this one record to the integration's CRM now, through the push service, as a recorded run.

        Raises:
            SyncAlreadyRunning: when a sync of the integration is going on.
            AuthError, ProviderError, VaultError: when the push cannot begin.
        """
        result = await self._sync.push_now(integration, {obj: [local_id]}, trigger=SyncTrigger.MANUAL)
        if result.failures:
            failure = result.failures[0]
            return SyncOneResult(integration, "failed", f"{integration}: failed: {failure.message}", result.run_id)
        if result.message and not any(result.counts.get(k) for k in ("created", "updated", "unchanged")):
            return SyncOneResult(integration, "failed", f"{integration}: {result.message}", result.run_id)
        for outcome in ("created", "updated"):
            if result.counts.get(outcome):
                return SyncOneResult(integration, outcome, f"{integration}: {outcome} in the CRM", result.run_id)
        return SyncOneResult(integration, "unchanged", f"{integration}: the CRM already holds these values",
                             result.run_id)

    def undo_change(self, audit_id: int, *, force: bool = False) -> ChangeUndoReport:
        """Put back the value one recorded change replaced (see :class:`ChangeUndoService`); a blank put back says
        whether any CRM is sent it."""
        report = self.changes.undo(audit_id, force=force)
        if report.restored:
            return report
        return replace(report, blank_kept_in_crms=bool(self.blanks_kept_in_crms(report.obj, (report.key,))))

    def history(self, obj: RecordObject, local_id: int, limit: int = 500) -> list[AuditLine]:
        """The person's recorded field changes, newest first, as the detail's History lists them (each with the
        audit id :meth:`undo_change` takes)."""
        return self.store.audit(obj, local_id, limit)

    def change(self, audit_id: int) -> tuple[RecordObject, int, AuditLine] | None:
        """One recorded change with the contact or lead it is about, or ``None`` when there is none."""
        return self.store.audit_entry(audit_id)

    def blanks_kept_in_crms(self, obj: RecordObject, fields: Iterable[str]) -> set[str]:
        """Those of ``fields`` whose blank no sync sends to any CRM, so each CRM keeps its value (a field a mapping
        lets a blank wipe, or fills with its default, is sent: see :func:`sends_a_blank`)."""
        kept = set(fields)
        for integration in self._sync.integrations.list():
            if integration.sync_config.direction is SyncDirection.PULL:
                continue
            kept -= {m.local_field for m in self._sync.mappings(integration, obj) if sends_a_blank(m)}
        return kept

    def page(
        self, query: PeopleQuery, after: Keyset | None = None, limit: int = 200, *, inclusive: bool = False
    ) -> list[PersonLine]:
        """The next page of people matching ``query`` (see :meth:`PeopleStore.page`)."""
        return self.store.page(query, after, limit, inclusive=inclusive)

    def keyset_at(
        self, query: PeopleQuery, offset: int, anchor: Keyset | None = None, *, backwards: bool = False
    ) -> Keyset | None:
        """Where a page ``offset`` rows from ``anchor`` starts (see :meth:`PeopleStore.keyset_at`)."""
        return self.store.keyset_at(query, offset, anchor, backwards=backwards)

    def count(self, query: PeopleQuery) -> int:
        """How many people match ``query``."""
        return self.store.count(query)

    def campaign_names(self) -> list[str]:
        """Campaign names for the filter."""
        return self.store.campaign_names()

    def campaign_named(self, asked: str) -> tuple[str, list[str] | None]:
        """The campaign a typed name means, as the attribution report reads it: the stored name itself, else the
        only one equal to it ignoring case, with ``None``; when there is no such one, ``asked`` and the stored
        names closest to it (at most 5; none when nothing is near)."""
        names = self.campaign_names()
        if asked in names:
            return asked, None
        same = [name for name in names if name.casefold() == asked.casefold()]
        if len(same) == 1:
            return same[0], None
        return asked, same or closest_names(asked, names)

    def detail(self, obj: RecordObject, local_id: int) -> PersonDetail:
        """One contact's or lead's profiles, score, timeline, attribution, CRM records and history.

        Raises:
            NotFoundError: when the record is gone.
        """
        email = self.store.email_of(obj, local_id)
        if email is None:
            raise NotFoundError(f"no {obj.value} {local_id} in the local store")
        record: Contact | Lead | None = (
            self._contacts.find(email) if obj is RecordObject.CONTACT else self._leads.find(email)
        )
        name = " ".join(p for p in ((record.first_name, record.last_name) if record else ()) if p)
        detail = PersonDetail(obj, local_id, email, name, record.company if record else None)
        detail.profiles = self.store.profiles(email)
        try:
            score = self._social.engagement_score(PersonRef(email=email))
            detail.score = score if score.interactions or score.followers else None
        except NotFoundError:
            detail.score = None
        detail.timeline = self.store.timeline(email, TIMELINE_SHOWN)
        detail.timeline_size = max(self.store.timeline_size(email), len(detail.timeline))
        if obj is RecordObject.LEAD:
            detail.attribution = {model: self._social.attribution(local_id, model) for model in AttributionModel}
        detail.crm_links = self.store.crm_links(obj, local_id, email)
        detail.audit = self.store.audit(obj, local_id)
        detail.fields = editable_values(obj, record) if record is not None else {}
        return detail

    def edit(self, obj: RecordObject, local_id: int, values: dict[str, str | None]) -> EditReport:
        """Save the marketer's edit of one person's fields (see :meth:`ImportService.edit`).

        Raises:
            InvalidRecordError: naming every refused field and the reason (nothing is written).
            NotFoundError: when the record is gone.
            ValueError: for a key that is not a field the form offers.
        """
        return self._sync.imports.edit(obj, local_id, values)

    def create(self, obj: RecordObject, email: str, values: dict[str, str | None]) -> EditReport:
        """Add one contact or lead typed by hand (see :meth:`ImportService.create`).

        Raises:
            InvalidRecordError: naming every refused field and the reason (nothing is written).
            DuplicateRecordError: when a record with that email is stored already.
        """
        return self._sync.imports.create(obj, email, values)

    # -- import --------------------------------------------------------------------------------------------

    def preview_import(self, path: Path, obj: RecordObject, *,
                       progress: ImportProgressListener | None = None) -> ImportPreview:
        """Validate a CSV/JSONL file as the import does, saving nothing.

        The file is read a chunk of rows at a time, as the import reads it; ``progress`` is told the rows read after
        each chunk, of those counted first (on the thread the check runs on).

        Raises:
            ValueError: for an unsupported file or a CSV without an email column.
            OSError: when the file cannot be read.
        """
        model: type[Contact] | type[Lead] = Contact if obj is RecordObject.CONTACT else Lead
        # Taken before the rows are read: a file edited while it is checked differs from it, and Save refuses it.
        fingerprint = FileFingerprint.of(path)
        total = count_rows(path) if progress is not None else None
        read = FileRows()
        preview = ImportPreview(path, obj, fingerprint=fingerprint)
        built_problems: list[RowProblem] = []
        seen: set[str] = set()
        rows_whole = 0
        for chunk in row_chunks(iter_rows(path, model, read), IMPORT_CHUNK):
            emails = [row.email for row in chunk]
            existing: dict[str, Contact] | dict[str, Lead] = (
                self._contacts.find_many(emails) if obj is RecordObject.CONTACT else self._leads.find_many(emails)
            )
            forgotten = self._sync.imports.store.forgotten_among([e for e in emails if e not in existing])
            for row in chunk:
                if row.email in forgotten:
                    preview.forgotten += 1  # the import skips them (see ImportService.import_file)
                    continue
                before = existing.get(row.email)
                try:
                    made = build_record(model, row, before)  # type: ignore[type-var]
                except InvalidRecordError as exc:
                    built_problems.append(RowProblem.of(row.line, row.email, exc.problems))
                    continue
                preview.warnings.extend(made.warnings)  # what the import would drop, named as the CLI names it
                if before is None and row.email not in seen:
                    preview.new += 1
                else:
                    preview.existing += 1
                seen.add(row.email)
            rows_whole += len(chunk)
            if progress is not None:
                done = rows_whole + len(read.problems)
                progress(ImportProgress(done, None if total is None else max(total, done)))
        preview.problems = sorted([*read.problems, *built_problems], key=lambda problem: problem.line)
        preview.notices = list(read.notices)
        preview.custom_columns = read.custom_columns
        return preview

    def import_file(self, path: Path, obj: RecordObject, *, previewed: FileFingerprint | None = None,
                    progress: ImportProgressListener | None = None) -> ImportReport:
        """Save the valid rows of a file (the same import as ``crm-desktop contacts import``).

        Args:
            previewed: the file's fingerprint when its preview was made: a file that changed since is refused, so
                Save never imports rows the preview did not show.
            progress: told how far the import is (see :class:`~crm_desktop.app.imports.ImportProgress`), on the
                thread the import runs on.

        Raises:
            ImportFileChanged: the file is no longer the one previewed (nothing is saved).
            ValueError, OSError: as :meth:`preview_import`.
        """
        if previewed is not None and FileFingerprint.of(path) != previewed:
            raise ImportFileChanged("it changed after the preview. Import it again to preview what it holds now.")
        return self._sync.import_file(path, obj, progress=progress)

    # -- export --------------------------------------------------------------------------------------------

    def export_csv(self, query: PeopleQuery, path: Path, *, page_size: int = EXPORT_PAGE) -> int:
        """Write everyone ``query`` lists, in its order, to a CSV file in the columns an import reads (email, the
        record's own fields, ``twitter_username``-style profile columns, custom fields by name), so the file can
        be edited and imported back. Cells a spreadsheet would run as a formula are kept inert. Returns the
        number of people written.

        The people are read a keyset page at a time, twice (once for the columns the file needs, once to write),
        so a large list is never held whole.

        Raises:
            OSError: when the file cannot be written.
        """
        model_fields = _EXPORT_FIELDS[query.obj]
        found: set[str] = set()
        for record in self._records_of(query, page_size):
            found.update(key for key, value in field_values(record).items() if value is not None)
        # A network's columns together, in the order an import names them; custom fields last, by name.
        extra = sorted((k for k in found if k.startswith("social.")), key=_profile_column_order) + sorted(
            k for k in found if k.startswith("custom."))
        keys = [*model_fields, *extra]
        written = 0
        with spreadsheet_csv(path) as writer:
            model = Contact if query.obj is RecordObject.CONTACT else Lead
            writer.writerow(["email", *(inert_cell(file_column(model, key)) for key in keys)])
            for record in self._records_of(query, page_size):
                values = field_values(record)
                writer.writerow([inert_cell(record.email), *(inert_cell(values.get(key)) for key in keys)])
                written += 1
        return written

    def _records_of(self, query: PeopleQuery, page_size: int) -> Iterator[Contact | Lead]:
        """The stored records ``query`` lists, in its order, read a page at a time."""
        after: Keyset | None = None
        while True:
            lines = self.store.page(query, after, page_size)
            emails = [line.email for line in lines]
            records: dict[str, Contact] | dict[str, Lead] = (
                self._contacts.find_many(emails) if query.obj is RecordObject.CONTACT else self._leads.find_many(emails)
            )
            for line in lines:
                record = records.get(line.email)
                if record is not None:  # gone since the page was read
                    yield record
            if len(lines) < page_size:
                return
            after = (lines[-1].sort_key, lines[-1].id)

    # -- attribution ---------------------------------------------------------------------------------------

    def attribution_report(self, model: AttributionModel, since: datetime | None,
                           until: datetime | None = None) -> AttributionReport:
        """The campaigns' and platforms' credit under ``model`` from ``since`` up to ``until`` (not included)."""
        return self._social.attribution_report(model, since, until=until)

    def attribution_inputs(self) -> tuple[object, ...]:
        """A cheap mark of what the attribution report depends on (see ``SocialService.attribution_inputs``)."""
        return self._social.attribution_inputs()

    def touchpoints_per_day(self, since: datetime | None, *, until: datetime | None = None,
                            before: datetime | None = None, zone: tzinfo | None = None) -> TouchpointSeries:
        """Touchpoints per day (in ``zone``, local time when ``None``) and platform, every day from ``since``'s to
        ``until``'s, for the chart; with ``before``, only those before it, to the day of the moment before it."""
        return self.store.touchpoints_per_day(since, until=until, before=before, zone=zone)



def write_report_csv(report: AttributionReport, path: Path) -> int:
    """Write the report's campaign and platform lines to a CSV file, with one value column per currency
    (``value_credited_EUR``...); returns the number of data lines.

    Raises:
        OSError: when the file cannot be written.
    """
    lines = [("campaign", row) for row in report.by_campaign] + [("platform", row) for row in report.by_platform]
    currencies = sorted({currency for _, row in lines for currency in row.value_credited} | set(report.value))
    # The period on every line, so that a file opened next month still says which one it covers (UTC, ISO 8601;
    # empty: from the first touchpoint, or up to the export).
    since, until = (f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if moment is not None else ""
                    for moment in (report.since, report.until))
    with spreadsheet_csv(path) as writer:
        writer.writerow(["model", "period_start", "period_end", "breakdown", "name", "touchpoints", "leads",
                         "conversions_credited", *(f"value_credited_{currency}" for currency in currencies)])
        for breakdown, row in lines:
            # A campaign's name comes from the events (the local API, a file): a spreadsheet must not run it.
            writer.writerow([report.model.value, since, until, breakdown, inert_cell(row.name), row.touchpoints,
                             row.leads,
                             f"{row.conversions_credited:.4f}",
                             *(f"{row.value_credited.get(currency, 0.0):.2f}" for currency in currencies)])
    return len(lines)
