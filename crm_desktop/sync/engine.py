"""The sync engine: each pulled page and push batch is planned as a typed :class:`SyncPlan`, then applied.

A dry run computes the same plans and keeps their effects in memory (so the push side sees what the pull would
have left); a real run writes them: a pulled page in one transaction, a push batch through the crash-safe outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Integration, Lead, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.domain.wording import FORGOTTEN_PERSON, forgotten_reason
from crm_desktop.providers.contract import CrmAdapter, CrmRecord, EchoCheck, OutboundRecord, Quota, RecordResult
from crm_desktop.providers.errors import (
    AuthError,
    BudgetExhaustedError,
    PermissionRefusedError,
    ProviderError,
    TransientError,
)
from crm_desktop.store.conversion_store import ConversionPullStore
from crm_desktop.store.database import StoreUnavailableError
from crm_desktop.store.models import ConflictRule, SyncRunStatus, SyncTrigger
from crm_desktop.store.repositories import EmailTakenError
from crm_desktop.store.sync_store import Link, LocalRecord, OutboxItem, PulledWrite, RefusedWrite, SyncStore
from crm_desktop.sync.extras import PushExtras
from crm_desktop.sync.lock_refusal import SyncAlreadyRunning, take_lock
from crm_desktop.sync.mapping import (
    CLEARED,
    FieldMapping,
    apply_values,
    crm_holds,
    crm_text,
    from_crm,
    local_form,
    record_values,
    to_crm,
    typed_custom_audit,
    typed_push_audit,
    values_hash,
)
from crm_desktop.sync.plan import (
    SAMPLE_SIZE,
    ChangeAction,
    ConflictDecision,
    FieldChange,
    PlannedChange,
    Side,
    SyncPlan,
    Value,
)

logger = logging.getLogger(__name__)

Progress = Callable[["SyncProgress"], None]

__all__ = [
    "ChangeAction",
    "ConflictDecision",
    "FieldChange",
    "PlannedChange",
    "Side",
    "SyncAlreadyRunning",
    "SyncEngine",
    "SyncPlan",
    "SyncProgress",
    "SyncResult",
]


#: The message of a run cancelled before it finished ("Cancel", the app closed, Ctrl+C in the CLI); the next run
#: resumes from the cursor the cancelled one last saved.
CANCELLED_MESSAGE = "cancelled before it finished; the next run picks up where this one stopped"

#: Failed records a real run's result names; every one is counted, and listed in the run's record log.
FAILURE_SAMPLE = 1_000

#: The key of a link's merge base that keeps a fingerprint of the social note last written with the record, so a
#: note whose text changed (a new score or touchpoint on Pipedrive, where no field takes them) is written again.
NOTE_BASE_KEY = "(social note)"

#: Why a CRM refuses a record for its own data (a value too long, an invalid email, a 400 on a field): sent again
#: as it is, the record is refused again. A record whose newest write was refused for one of these is not sent by
#: the following runs until it changes (its values, or the mapping), each run reporting it as skipped; "Retry
#: failed" sends it on demand. Rate limits, server errors, the network, sign-in and permissions are not the
#: record's doing, and a duplicate depends on other records (merged or changed without this one changing): those
#: are sent again by the next run.
REFUSAL_CATEGORIES = frozenset({ErrorCategory.VALIDATION})

#: Triggers of a run that are not someone asking for it (a push of chosen records they start skips refused ones too).
UNATTENDED_TRIGGERS = frozenset({SyncTrigger.SCHEDULED, SyncTrigger.AUTO})

#: The ways a sync run goes (undo and import runs are recorded by other services).
SYNC_RUN_DIRECTIONS = frozenset({SyncDirection.PUSH, SyncDirection.PULL, SyncDirection.BOTH, SyncDirection.PUSH_NEW})


@dataclass
class SyncProgress:
    """Live progress of a run, for the Sync Monitor."""

    integration: str
    phase: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class RecordFailure:
    """A record that failed: its key, why (category) and the message naming field and reason."""

    email: str
    category: ErrorCategory
    message: str


@dataclass(frozen=True)
class LogEntry:
    """One line of a run's record log."""

    object: RecordObject
    key: str
    crm_id: str | None
    outcome: RecordOutcome
    category: ErrorCategory | None = None
    message: str | None = None


@dataclass
class SyncResult:
    """What a run did: its plan (applied, or only planned by a dry run), counts and failures.

    A real run's result holds exact counts and a bounded sample of its changes and failures, so it stays small
    whatever the number of records; each record's outcome and changes are in the store (the run's record log and
    audit). A dry run's result holds its whole plan and every failure.

    Attributes:
        run_id: the ``sync_runs`` row (``None`` for a dry run, which writes nothing).
        status: succeeded, partial or failed.
        counts: created / updated / unchanged / failed records, ``conflicts`` fields waiting for the marketer and
            ``decided`` fields their rule settled.
        api_calls: requests sent to the CRM.
        plan: the changes made (a real run's first :data:`SAMPLE_SIZE` worth showing, with counts of all), or,
            in a dry run, every change planned.
        failures: records that failed (a real run's first :data:`FAILURE_SAMPLE`; ``counts["failed"]`` has all).
        message: a sentence for a run that stopped early.
        auth_failed: the run stopped because the CRM refused the integration's credentials (reconnect it).
    """

    run_id: int | None
    status: SyncRunStatus
    counts: dict[str, int]
    api_calls: int
    plan: SyncPlan
    failures: list[RecordFailure]
    message: str | None = None
    duration: float = 0.0
    auth_failed: bool = False
    #: Custom fields (a file's other columns) the push did not send because no mapping gives them a CRM field:
    #: column -> records. They stay in the local store; they never fail a record.
    not_sent: dict[str, int] = field(default_factory=dict)
    #: The CRM's API budget as its last response reported it (the alerts warn when little is left).
    quota: Quota | None = None
    #: Why the run stopped early, as an error category (the Sync Monitor's health line: reconnect, rate-limited,
    #: offline...); ``None`` when it ran to the end.
    stopped_by: ErrorCategory | None = None
    #: CRM answers of 400 and above among ``api_calls``.
    api_errors: int = 0
    #: Failed records per error category, every one (``failures`` may list only the first of them).
    failed_by_category: dict[ErrorCategory, int] = field(default_factory=dict)

    @property
    def unlisted_failures(self) -> int:
        """Failed records ``failures`` does not list (they are in the run's record log)."""
        return max(0, sum(self.failed_by_category.values()) - len(self.failures))

    @property
    def changes(self) -> list[PlannedChange]:
        """The changes made or planned (records left unchanged are only counted)."""
        return self.plan.shown()


@dataclass(frozen=True)
class _PulledState:
    """What applying a pulled record leaves locally: a dry run's push phase reads it instead of the store."""

    record: Contact | Lead
    crm_id: str
    base: dict[str, Value]
    needs_push: bool


@dataclass
class _Run:
    """Bookkeeping of one run: the plan so far, failures, the record log not yet written, and what a dry run holds
    in memory.

    A real run's plan and failures keep counts and a bounded sample, and its record log is written page by page
    (:meth:`SyncEngine._write_log`), so what it holds does not grow with the number of records.
    """

    run_id: int | None
    dry_run: bool
    plan: SyncPlan = field(default_factory=SyncPlan)
    failures: list[RecordFailure] = field(default_factory=list)
    #: Failures ``failures`` keeps (``None``: all).
    failure_sample: int | None = None
    #: Failed records per category, every one.
    failed: dict[ErrorCategory, int] = field(default_factory=dict)
    #: Record log lines not yet written to the store.
    log: list[LogEntry] = field(default_factory=list)
    #: (object, local id) -> fields this run left to the marketer.
    held: dict[tuple[RecordObject, int], set[str]] = field(default_factory=dict)
    #: (object, local id) -> the pulled state a dry run did not write.
    pulled: dict[tuple[RecordObject, int], _PulledState] = field(default_factory=dict)
    #: Push only these local records (per object), when given.
    only: dict[RecordObject, list[int]] | None = None
    #: Custom fields left unsent for want of a mapped CRM field: column -> records pushed without it.
    not_sent: dict[str, int] = field(default_factory=dict)
    #: (object, local id) of writes the CRM refused in this run: the run does not send them again (a resumed
    #: write's refusal would otherwise be sent a second time by the push of a still unlinked record).
    refused: set[tuple[RecordObject, int]] = field(default_factory=set)
    #: Send records whose last write the CRM refused for their data though they have not changed since: someone
    #: asked for these very records ("Retry failed", a push of one person).
    resend_refused: bool = False

    @classmethod
    def sampled(cls, run_id: int | None, *, dry_run: bool, only: dict[RecordObject, list[int]] | None,
                trigger: SyncTrigger = SyncTrigger.MANUAL) -> _Run:
        """A run's bookkeeping: a dry run's keeps its whole plan (the preview lists it), and so does a push of
        chosen records (no larger than the caller's own list, whose report shows each record's values); a run
        over every changed record keeps counts and samples."""
        resend = only is not None and trigger not in UNATTENDED_TRIGGERS
        if dry_run or only is not None:
            return cls(run_id, dry_run, only=only, resend_refused=resend)
        return cls(run_id, dry_run, SyncPlan(sample=SAMPLE_SIZE), failure_sample=FAILURE_SAMPLE, only=only)

    def counts(self) -> dict[str, int]:
        counted = self.plan.counts()
        return {
            "created": counted.created,
            "updated": counted.updated,
            "unchanged": counted.unchanged,
            "failed": sum(self.failed.values()),
            "conflicts": counted.waiting,
            "decided": counted.decided,
        }

    def add_failure(self, failure: RecordFailure) -> None:
        self.failed[failure.category] = self.failed.get(failure.category, 0) + 1
        if self.failure_sample is None or len(self.failures) < self.failure_sample:
            self.failures.append(failure)

    def fail(self, obj: RecordObject, key: str, crm_id: str | None, category: ErrorCategory, message: str,
             logged: str | None = None) -> None:
        self.add_failure(RecordFailure(key, category, message))
        self.log.append(LogEntry(obj, key, crm_id, RecordOutcome.FAILED, category, logged or message))


def _skip(obj: RecordObject, key: str, crm_id: str | None, category: ErrorCategory | None, reason: str,
          side: Side) -> tuple[PlannedChange, LogEntry]:
    return (PlannedChange(obj, key, side, ChangeAction.SKIP, reason=reason),
            LogEntry(obj, key, crm_id, RecordOutcome.SKIPPED, category, reason))


def _decide(rule: ConflictRule, local: Value, crm: Value, local_at: datetime | None,
            crm_at: datetime | None) -> ConflictDecision:
    """How a field changed on both sides is settled under ``rule``."""
    crm_kept, local_kept = ConflictDecision.CRM_KEPT, ConflictDecision.LOCAL_KEPT
    if rule is ConflictRule.MANUAL:
        return ConflictDecision.WAITING
    if rule is ConflictRule.PREFER_CRM:
        return crm_kept
    if rule is ConflictRule.PREFER_LOCAL:
        return local_kept
    if rule is ConflictRule.PREFER_CRM_UNLESS_BLANK:
        return crm_kept if crm is not None else local_kept
    if rule is ConflictRule.PREFER_LOCAL_UNLESS_BLANK:
        return local_kept if local is not None else crm_kept
    if crm_at is None:
        return local_kept
    if local_at is None:
        return crm_kept
    return crm_kept if crm_at > local_at else local_kept


_RULE_WORDS = {
    ConflictRule.LAST_WRITE_WINS: "last change wins",
    ConflictRule.PREFER_CRM: "prefer CRM",
    ConflictRule.PREFER_LOCAL: "prefer local",
    ConflictRule.PREFER_CRM_UNLESS_BLANK: "prefer CRM unless blank",
    ConflictRule.PREFER_LOCAL_UNLESS_BLANK: "prefer local unless blank",
    ConflictRule.MANUAL: "ask me",
}


@dataclass
class _RecordPlan:
    """The plan of one pulled record: its changes, its writes, its log lines and the fields left waiting."""

    changes: list[PlannedChange] = field(default_factory=list)
    write: PulledWrite | None = None
    log: list[LogEntry] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    state: _PulledState | None = None


@dataclass(frozen=True)
class _Outgoing:
    """One local record the push phase sends: its CRM fields, the merge base after, and the fields it changes."""

    local: LocalRecord
    link: Link | None
    send: dict[str, Any]
    base_after: dict[str, Value]
    changed: dict[str, FieldChange]
    digest: str


class SyncEngine:
    """Runs syncs of one integration through its adapter, with everything durable in the store.

    Attributes:
        integration: the integration synced.
        adapter: its CRM adapter.
        mappings: field mappings per object.
        batch_size: records per push batch.
    """

    def __init__(
        self,
        store: SyncStore,
        integration: Integration,
        adapter: CrmAdapter,
        mappings: dict[RecordObject, list[FieldMapping]],
        *,
        batch_size: int = 200,
        progress: Progress | None = None,
        extras: PushExtras | None = None,
    ) -> None:
        assert integration.id is not None
        #: Values from outside the record (the engagement summary) and the note a pushed record carries.
        self.extras = extras
        self.store = store
        self._conversions = ConversionPullStore(store.db)
        self.integration = integration
        self.integration_id: int = integration.id
        self.adapter = adapter
        self.mappings = mappings
        self.batch_size = batch_size
        self._progress = progress

    def _report(self, phase: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(SyncProgress(self.integration.name, phase, done, total))

    # -- entry point ---------------------------------------------------------------------------
    async def run(
        self,
        direction: SyncDirection = SyncDirection.BOTH,
        trigger: SyncTrigger = SyncTrigger.MANUAL,
        *,
        dry_run: bool = False,
        objects: Sequence[RecordObject] = (RecordObject.CONTACT, RecordObject.LEAD),
        local_ids: dict[RecordObject, list[int]] | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> SyncResult:
        """Run one sync. A dry run computes the same plan against the CRM and writes nothing anywhere.

        Args:
            local_ids: push only these local records (per object) instead of every changed one.
            on_started: called with the run's id once it is recorded.

        Raises:
            SyncAlreadyRunning: when another run of this integration holds the lock.
            ValueError: for a direction a sync does not go (``undo``, ``import``, ``edit``).
        """
        if direction not in SYNC_RUN_DIRECTIONS:
            raise ValueError(f"a sync runs push, pull, both or push_new, not {direction.value}")
        started = time.monotonic()
        if dry_run:
            run = _Run.sampled(None, dry_run=True, only=local_ids, trigger=trigger)
            try:
                await self._run_objects(direction, objects, run)
            finally:
                await self.adapter.aclose()
            return self._result(run, SyncRunStatus.SUCCEEDED, None, started, auth_failed=False)
        try:
            take_lock(self.store, self.integration_id, self.integration.name)
        except SyncAlreadyRunning:
            await self.adapter.aclose()
            raise
        try:
            run = _Run.sampled(self.store.start_run(self.integration_id, trigger, direction), dry_run=False,
                               only=local_ids, trigger=trigger)
            assert run.run_id is not None
            if on_started is not None:
                on_started(run.run_id)
            status = SyncRunStatus.SUCCEEDED
            message: str | None = None
            auth_failed = False
            stopped_by: ErrorCategory | None = None
            try:
                self.store.heartbeat(self.integration_id, run.run_id)
                await self._run_objects(direction, objects, run)
            except AuthError as exc:
                status, message, auth_failed, stopped_by = SyncRunStatus.FAILED, str(exc), True, exc.category
            except BudgetExhaustedError as exc:
                status, message, stopped_by = SyncRunStatus.PARTIAL, str(exc), exc.category
            except ProviderError as exc:
                status, message, stopped_by = SyncRunStatus.FAILED, str(exc), exc.category
                if exc.category is ErrorCategory.NETWORK:
                    # Unreachable, not refused: nothing is wrong with the data, and what was not delivered is
                    # still owed (the outbox, the changes not yet pushed); the next run sends it.
                    status = SyncRunStatus.OFFLINE
                    waiting = sum(self.store.count_changed_local(self.integration_id, o) for o in objects)
                    message = (f"the CRM could not be reached ({exc}); {waiting:,} "
                               f"{'record waits' if waiting == 1 else 'records wait'} for the next run")
            except asyncio.CancelledError:
                # Cancelled, or the app was closed: nothing failed, and the next run resumes from the cursor.
                status, message = SyncRunStatus.CANCELLED, CANCELLED_MESSAGE
                raise
            except StoreUnavailableError as exc:
                # Its pages and writes so far are committed: "nothing was written" holds for the last one only.
                status, message = SyncRunStatus.FAILED, f"stopped: {exc.reason}"
                raise self._cut_off(run.run_id, exc) from exc
            except BaseException as exc:
                status, message = SyncRunStatus.FAILED, f"stopped: {type(exc).__name__}"
                raise
            finally:
                if status is SyncRunStatus.SUCCEEDED and run.failures:
                    status = SyncRunStatus.PARTIAL
                counts = run.counts()
                try:
                    self._write_log(run)
                    self.store.finish_run(
                        run.run_id,
                        status,
                        api_calls=self.adapter.api_calls,
                        message=message,
                        total=sum(counts[k] for k in ("created", "updated", "unchanged", "failed")),
                        created=counts["created"],
                        updated=counts["updated"],
                        unchanged=counts["unchanged"],
                        failed=counts["failed"],
                        conflicts=counts["conflicts"],
                        conflicts_decided=counts["decided"],
                    )
                except StoreUnavailableError as exc:
                    self.store.run_cut_off(run.run_id)
                    raise self._cut_off(run.run_id, exc) from exc
        finally:
            try:
                self.store.release_lock(self.integration_id)
            except StoreUnavailableError as exc:
                # Left held, the lock is this process's to take again, and goes stale for others by its heartbeat.
                logger.warning("the sync lock of %s was not let go: %s", self.integration.name, exc.reason)
            finally:
                await self.adapter.aclose()
        return self._result(run, status, message, started, auth_failed=auth_failed, stopped_by=stopped_by)

    def _cut_off(self, run_id: int, exc: StoreUnavailableError) -> StoreUnavailableError:
        """The error of a run the database went away under, saying what became of the run."""
        return StoreUnavailableError(
            f"{exc.reason}; the sync of {self.integration.name!r} stopped in run {run_id}: what it did before is "
            "kept, and the next sync picks up where it stopped", exc.reason)

    def _result(self, run: _Run, status: SyncRunStatus, message: str | None, started: float, *,
                auth_failed: bool, stopped_by: ErrorCategory | None = None) -> SyncResult:
        return SyncResult(run.run_id, status, run.counts(), self.adapter.api_calls, run.plan, run.failures, message,
                          time.monotonic() - started, auth_failed, dict(sorted(run.not_sent.items())),
                          self.adapter.quota(), stopped_by, self.adapter.api_errors, dict(run.failed))

    def _write_log(self, run: _Run) -> None:
        """Write the record log lines gathered so far (a dry run writes nothing and keeps none)."""
        if run.log and run.run_id is not None:
            self.store.add_record_outcomes(
                run.run_id, [(e.object, e.key, e.crm_id, e.outcome, e.category, e.message) for e in run.log])
        run.log.clear()

    async def _run_objects(self, direction: SyncDirection, objects: Sequence[RecordObject], run: _Run) -> None:
        for obj in objects:
            if not self.mappings.get(obj) or (run.only is not None and not run.only.get(obj)):
                continue
            if not run.dry_run:
                await self._resume_outbox(obj, run)
            if direction in (SyncDirection.PULL, SyncDirection.BOTH):
                await self._pull(obj, run)
            if direction is not SyncDirection.PULL:
                await self._push(obj, run, only_new=direction is SyncDirection.PUSH_NEW)

    # -- pull ----------------------------------------------------------------------------------
    async def _pull(self, obj: RecordObject, run: _Run) -> None:
        mappings = [m for m in self.mappings.get(obj, []) if m.direction.value != "off"]
        if not mappings:
            return
        cursor = self.store.get_cursor(self.integration_id, obj)
        done = 0
        async for page in self.adapter.changes_since(obj, cursor, echoes=self._echo_check(obj)):
            planned = self.plan_pull_page(obj, page.records, mappings, run.run_id)
            writes = [record_plan.write for _, record_plan in planned if record_plan.write is not None]
            if not run.dry_run:
                # Applied before the page is counted: a page whose transaction fails is in no count or log.
                try:
                    self.store.apply_record_writes(self.integration_id, obj, writes, cursor=page.cursor)
                except EmailTakenError:
                    # An import beside the sync saved one of the page's new people meanwhile: planned again, the
                    # page merges into that record instead of inserting it a second time.
                    planned = self.plan_pull_page(obj, page.records, mappings, run.run_id)
                    writes = [plan.write for _, plan in planned if plan.write is not None]
                    self.store.apply_record_writes(self.integration_id, obj, writes, cursor=page.cursor)
                self.store.heartbeat(self.integration_id, run.run_id)
            for local_id, record_plan in planned:
                run.plan.extend(record_plan.changes)
                run.log.extend(record_plan.log)
                # A real run's waiting conflicts are in the store by the push phase; a dry run's only here.
                if run.dry_run and local_id is not None and record_plan.held:
                    run.held.setdefault((obj, local_id), set()).update(record_plan.held)
                if run.dry_run and local_id is not None and record_plan.state is not None:
                    run.pulled[(obj, local_id)] = record_plan.state
            for entry in (e for _, p in planned for e in p.log if e.outcome is RecordOutcome.FAILED):
                run.add_failure(RecordFailure(entry.key, entry.category or ErrorCategory.VALIDATION,
                                              entry.message or "failed"))
            self._write_log(run)
            done += len(page.records)
            self._report(f"pulling {obj.value}s", done, done)

    def _echo_check(self, obj: RecordObject) -> EchoCheck:
        """What a pull tells its adapter: which changed records are our own writes' echoes, by their stamps alone."""

        def echoes(stamped: Sequence[tuple[str, datetime | None]]) -> set[str]:
            kept = self.store.link_stamps(self.integration_id, obj, [crm_id for crm_id, _ in stamped])
            return {crm_id for crm_id, stamp in stamped if _stamp_is_echo(stamp, kept.get(crm_id))}

        return echoes

    def plan_pull_page(
        self, obj: RecordObject, records: Sequence[CrmRecord], mappings: list[FieldMapping], run_id: int | None,
    ) -> list[tuple[int | None, _RecordPlan]]:
        """The plan of a pulled page, record by record (with each one's local id), from the store; writes nothing.

        A record whose change stamp is the one the CRM gave this app's own last write of it is that write's echo:
        the CRM holds what the link's base says, so it is passed over without loading or merging anything. Any
        later change (a salesperson's edit, a workflow) moves the stamp, and the record is merged as usual.
        """
        # Stamps to the millisecond decide alone, from two columns; the merge bases are read for the rest.
        stamps = self.store.link_stamps(self.integration_id, obj, [r.crm_id for r in records])
        records = [r for r in records if not _stamp_is_echo(r.modified_at, stamps.get(r.crm_id))]
        by_crm = self.store.links_for_crm(self.integration_id, obj, [r.crm_id for r in records]) if records else {}
        echoes = {r.crm_id for r in records if _is_echo(r, by_crm.get(r.crm_id), mappings)}
        if echoes:
            records = [r for r in records if r.crm_id not in echoes]
            by_crm = {crm_id: link for crm_id, link in by_crm.items() if crm_id not in echoes}
        linked_ids = [link.local_id for link in by_crm.values()]
        locals_by_id = self.store.local_records(obj, linked_ids) if linked_ids else {}
        unlinked_emails = [r.email for r in records if r.crm_id not in by_crm and r.email]
        locals_by_email = self.store.local_by_emails(obj, unlinked_emails) if unlinked_emails else {}
        email_links = self.store.links_for_local(
            self.integration_id, obj, [rec.id for rec in locals_by_email.values()]
        ) if locals_by_email else {}
        local_ids = [*locals_by_id, *(rec.id for rec in locals_by_email.values())]
        held = self.store.open_conflict_fields_of(self.integration_id, obj, local_ids) if local_ids else {}
        # People a merge folded into another, whose CRM record is still there (a CRM with no merge API).
        new_emails = [email for email in unlinked_emails if email not in locals_by_email]
        merged = self.store.merged_into(new_emails) if new_emails and obj is RecordObject.CONTACT else {}
        # People forgotten at their request (their links and records are gone): never pulled back.
        forgotten = self.store.forgotten_among(new_emails) if new_emails else {}
        # Emails the CRM changed on linked records: one another local record holds cannot be taken on.
        renamed = [r.email for r in records if r.email and (link := by_crm.get(r.crm_id)) is not None
                   and (linked := locals_by_id.get(link.local_id)) is not None and linked.record.email != r.email]
        taken = self.store.local_by_emails(obj, renamed) if renamed else {}
        planned: list[tuple[int | None, _RecordPlan]] = []
        claimed: set[int] = set()
        created: set[str] = set()
        for record in records:
            link = by_crm.get(record.crm_id)
            local = locals_by_id.get(link.local_id) if link else locals_by_email.get(record.email)
            duplicate = local is not None and link is None and (local.id in email_links or local.id in claimed)
            if duplicate or (local is None and record.email and record.email in created):
                # The local record is linked to another CRM record: a duplicate in the CRM. Keep the first link.
                change, entry = _skip(obj, record.email, record.crm_id, ErrorCategory.DUPLICATE,
                                      "another CRM record with this email is already linked", Side.LOCAL)
                planned.append((None, _RecordPlan([change], log=[entry])))
                continue
            if local is None and link is None and record.email in forgotten:
                change, entry = _skip(obj, FORGOTTEN_PERSON, record.crm_id, None,
                                      forgotten_reason(forgotten[record.email], "not pulled"), Side.LOCAL)
                planned.append((None, _RecordPlan([change], log=[entry])))
                continue
            if local is None and link is None and record.email in merged:
                change, entry = _skip(obj, record.email, record.crm_id, ErrorCategory.DUPLICATE,
                                      f"merged here into {merged[record.email]}: not pulled back; merge the two "
                                      "in the CRM as well", Side.LOCAL)
                planned.append((None, _RecordPlan([change], log=[entry])))
                continue
            other = taken.get(record.email) if local is not None else None
            if local is not None and other is not None and other.id != local.id:
                entry = LogEntry(obj, local.record.email, record.crm_id, RecordOutcome.FAILED, ErrorCategory.DUPLICATE,
                                 f"the CRM changed this record's email to {record.email}, which is another local "
                                 f"{obj.value}'s: nothing pulled. Merge the two in People (Duplicates), then sync")
                planned.append((None, _RecordPlan(log=[entry])))
                continue
            if local is not None:
                base = link.base_values if link is not None else {}
                record = _split_as_held(record, mappings, (base.get("firstName"), base.get("lastName")),
                                        (local.record.first_name, local.record.last_name))
            crm_values = {m.local_field: from_crm(m, record.fields.get(m.crm_field)) for m in mappings}
            if not crm_values.get("email") and record.email:
                crm_values["email"] = record.email
            try:
                record_plan = self._plan_record(obj, record, crm_values, local, link, mappings, run_id,
                                                 held.get(local.id, set()) if local else set())
            except InvalidRecordError as exc:
                problem = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems)
                key = record.email or record.crm_id
                entry = LogEntry(obj, key, record.crm_id, RecordOutcome.FAILED, ErrorCategory.VALIDATION,
                                 f"pulled values refused locally: {problem}")
                planned.append((None, _RecordPlan(log=[entry])))
                continue
            if local is not None:
                claimed.add(local.id)
            elif record_plan.write is not None and record_plan.write.record is not None:
                created.add(record_plan.write.record.email)
            planned.append((local.id if local else None, record_plan))
        return planned

    def _plan_record(
        self,
        obj: RecordObject,
        record: CrmRecord,
        crm_values: dict[str, Value],
        local: LocalRecord | None,
        link: Link | None,
        mappings: list[FieldMapping],
        run_id: int | None,
        open_fields: set[str],
    ) -> _RecordPlan:
        """The plan of one pulled record against its local record and merge base.

        Raises:
            InvalidRecordError: when the pulled values are not valid locally.
        """
        plan = _RecordPlan()
        key = crm_values.get("email") or record.email
        if local is None:
            if not key:
                change, entry = _skip(obj, record.crm_id, record.crm_id, None, "the CRM record has no email",
                                      Side.LOCAL)
                return _RecordPlan([change], log=[entry])
            pulled = {m.local_field: crm_values.get(m.local_field) for m in mappings if m.pulls}
            pulled["email"] = key
            empty: Contact | Lead = Contact(email=key) if obj is RecordObject.CONTACT else Lead(email=key)
            new_record = apply_values(empty, {k: v for k, v in pulled.items() if k != "email"})
            fields = {k: FieldChange(None, v, "new in the CRM") for k, v in pulled.items() if v is not None}
            plan.changes.append(PlannedChange(obj, key, Side.LOCAL, ChangeAction.CREATE, fields))
            plan.log.append(LogEntry(obj, key, record.crm_id, RecordOutcome.CREATED, None, "pulled from the CRM"))
            base = {m.local_field: crm_values.get(m.local_field) for m in mappings}
            plan.write = PulledWrite(None, new_record, record.crm_id, base, record.modified_at,
                                     audit=tuple(typed_custom_audit(_audit(run_id, obj, Side.LOCAL, "pull", fields),
                                                                    None, new_record)))
            return plan

        email = local.record.email
        local_values = record_values(local.record)
        base = dict(link.base_values) if link else {}
        new_base = dict(base)
        local_changes: dict[str, FieldChange] = {}
        needs_push = False
        conflicts: list[dict[str, Any]] = []
        for mapping in mappings:
            name = mapping.local_field
            crm_value, local_value = crm_values.get(name), local_values.get(name)
            # A base written before phones were read in one form may hold the CRM's way of writing the number.
            base_value = local_form(mapping, base.get(name)) if link else None
            raw = record.fields.get(mapping.crm_field)
            if crm_value == local_value or crm_holds(mapping, local_value, raw):
                new_base[name] = local_value
                continue
            if name in open_fields:
                continue  # waits for the marketer
            crm_changed = not link or (crm_value != base_value and not crm_holds(mapping, base_value, raw))
            local_changed = local_value != base_value or not link
            if not mapping.pulls:
                new_base[name] = crm_value  # push only: the local value goes out in the push phase
                needs_push = True
                continue
            decision: ConflictDecision | None = None
            if not mapping.pushes or (crm_changed and not local_changed):
                keep_crm = True
            elif local_changed and not crm_changed:
                keep_crm = False
            elif link is None and local_value is None:
                # A first link (a person imported by email, found in the CRM): a field blank here was never
                # cleared here, it was never known; the CRM's value fills it whatever the rule.
                keep_crm = True
            else:
                decision = _decide(mapping.conflict_rule, local_value, crm_value, local.updated_at,
                                   record.modified_at)
                if decision is ConflictDecision.WAITING:
                    # Shown as the CRM holds it (a phone as the salesperson typed it); resolving reads it back in
                    # the local form, so the decision is on the number, not on its spacing.
                    crm_shown = crm_text(mapping, raw)
                    conflicts.append(
                        {"run_id": run_id, "object": obj, "crm_id": record.crm_id, "record_key": email,
                         "field": name, "local_value": local_value,
                         "crm_value": crm_shown if local_form(mapping, crm_shown) == crm_value else crm_value,
                         "base_value": base_value, "local_changed_at": local.updated_at,
                         "crm_changed_at": record.modified_at}
                    )
                    plan.changes.append(PlannedChange(
                        obj, email, Side.LOCAL, ChangeAction.CONFLICT,
                        {name: FieldChange(local_value, crm_value, decision.sentence)}, decision.sentence, decision,
                    ))
                    plan.held.add(name)
                    plan.log.append(LogEntry(obj, email, record.crm_id, RecordOutcome.CONFLICT, None,
                                             f"{name}: changed on both sides; waits in Conflicts"))
                    continue
                keep_crm = decision is ConflictDecision.CRM_KEPT
            if keep_crm and crm_value is None and local_value is not None and not mapping.blank_wipes:
                # A blank never wipes a value: keep ours and send it back.
                new_base[name] = None
                needs_push = needs_push or mapping.pushes
                keep_crm = False
                if decision is not None:
                    decision = ConflictDecision.LOCAL_KEPT
            elif keep_crm:
                reason = decision.sentence if decision else "changed in the CRM"
                local_changes[name] = FieldChange(local_value, crm_value, reason)
                new_base[name] = crm_value
            else:
                # The push phase sends the local value. The base takes the CRM's value as it is now, so the push's
                # audit records what the CRM held before it (an undo puts that back, also on a first link) and a
                # push that fails leaves the CRM unchanged against its base: the next run sends the local value.
                new_base[name] = crm_value
                needs_push = True
            if decision is not None:
                rule = _RULE_WORDS[mapping.conflict_rule]
                side = Side.LOCAL if decision is ConflictDecision.CRM_KEPT else Side.CRM
                reason = f"{decision.sentence} ({rule})"
                plan.changes.append(PlannedChange(
                    obj, email, side, ChangeAction.CONFLICT,
                    {name: FieldChange(local_value, crm_value, reason)}, reason, decision,
                ))
                plan.log.append(LogEntry(obj, email, record.crm_id, RecordOutcome.CONFLICT, None,
                                         f"{name}: changed on both sides; {reason}"))
        updated: Contact | Lead | None = None
        if local_changes:
            updated = apply_values(local.record, {k: c.new for k, c in local_changes.items()})
            plan.changes.append(PlannedChange(obj, email, Side.LOCAL, ChangeAction.UPDATE, local_changes))
            plan.log.append(LogEntry(obj, email, record.crm_id, RecordOutcome.UPDATED, None,
                                     "pulled: " + ", ".join(sorted(local_changes))))
        plan.write = PulledWrite(
            local.id, updated, record.crm_id, new_base, record.modified_at, needs_push=needs_push,
            local_version=local.updated_at,
            audit=tuple(typed_custom_audit(_audit(run_id, obj, Side.LOCAL, "pull", local_changes), local.record,
                                           updated)),
            conflicts=tuple(conflicts),
        )
        plan.state = _PulledState(updated or local.record, record.crm_id, new_base, needs_push)
        return plan

    # -- push ----------------------------------------------------------------------------------
    def _outbound(
        self, local: LocalRecord, link: Link | None, mappings: list[FieldMapping], held: frozenset[str] = frozenset(),
        computed: dict[str, Value] | None = None, note: str | None = None,
    ) -> _Outgoing | None:
        """What the push sends for a record; ``None`` when nothing.

        ``held`` fields have an open conflict: they wait for the marketer and are never sent. ``note`` is the
        social note the record carries (Pipedrive's carrier of what no field takes): when its text changed since
        the last write, the record is sent though no mapped field changed, and the adapter adds the new note.
        """
        values = record_values(local.record)
        if computed:
            values.update(computed)
        pushable = [m for m in mappings if m.pushes]
        full = {m.crm_field: to_crm(m, values.get(m.local_field)) for m in pushable}
        digest = values_hash(full)
        base = dict(link.base_values) if link else {}
        send: dict[str, Any] = {}
        changed: dict[str, FieldChange] = {}
        new_base = dict(base)
        reason = "changed locally" if link is not None else "new locally"
        for mapping in pushable:
            name = mapping.local_field
            value = values.get(name)
            if (link is not None and value == local_form(mapping, base.get(name))) or name in held:
                continue
            outgoing = full[mapping.crm_field]
            if outgoing is None and not mapping.blank_wipes:
                continue  # a blank never wipes the CRM's value
            send[mapping.crm_field] = CLEARED if outgoing is None else outgoing
            changed[name] = FieldChange(base.get(name), value, reason)
            new_base[name] = value
        note_changed = False
        if note:
            noted = values_hash({"note": note})
            note_changed = base.get(NOTE_BASE_KEY) != noted
            new_base[NOTE_BASE_KEY] = noted
        if link is not None and not send and not note_changed:
            return None
        return _Outgoing(local, link, send, new_base, changed, digest)

    async def _push(self, obj: RecordObject, run: _Run, *, only_new: bool) -> None:
        mappings = self.mappings.get(obj, [])
        if not any(m.pushes for m in mappings):
            return
        after_id = 0
        done = 0
        if run.only is not None:
            chosen = sorted(set(run.only.get(obj, [])))
            for start in range(0, len(chosen), self.batch_size):
                await self._push_batch(obj, run, chosen[start : start + self.batch_size], mappings)
                self._write_log(run)
                done += len(chosen[start : start + self.batch_size])
                self._report(f"pushing {obj.value}s", done, len(chosen))
            return
        # The total gives the Sync Monitor a time left; a dry run's pulled records change it, so it has none.
        total = None if only_new or run.pulled else self.store.count_changed_local(self.integration_id, obj)
        while True:
            if only_new:
                page = self.store.unlinked_local_ids(self.integration_id, obj, after_id, self.batch_size)
            else:
                page = self.store.changed_local_ids(self.integration_id, obj, after_id, self.batch_size)
            ids = page
            last = len(page) < self.batch_size
            if run.pulled:
                upper = None if last else page[-1]
                ids = self._pulled_push_ids(obj, run, page, after_id, upper, only_new=only_new)
            if ids:
                await self._push_batch(obj, run, ids, mappings)
                self._write_log(run)
            if not page or (run.pulled and last):
                # A dry run's last page took every pulled record past it: another (empty) page would again.
                break
            after_id = page[-1]
            done += len(ids)
            self._report(f"pushing {obj.value}s", done, done if total is None else max(total, done))

    @staticmethod
    def _pulled_push_ids(obj: RecordObject, run: _Run, page: list[int], lower: int, upper: int | None, *,
                         only_new: bool) -> list[int]:
        """A dry run's push page as the store would hold it after the pull: pulled records are linked, marked
        synced unless they still have values to send."""
        states = {local_id: state for (o, local_id), state in run.pulled.items() if o is obj}
        if only_new:
            return [i for i in page if i not in states]
        kept = {i for i in page if i not in states or states[i].needs_push}
        kept.update(
            i for i, state in states.items()
            if state.needs_push and i > lower and (upper is None or i <= upper)
        )
        return sorted(kept)

    async def _push_batch(self, obj: RecordObject, run: _Run, ids: list[int], mappings: list[FieldMapping]) -> None:
        """Plan one batch of local records against the CRM, then (in a real run) send it through the outbox."""
        ids = [local_id for local_id in ids if (obj, local_id) not in run.refused]
        records = self.store.local_records(obj, ids)
        links = self.store.links_for_local(self.integration_id, obj, ids)
        for local_id in ids:
            state = run.pulled.get((obj, local_id))
            if state is None or local_id not in records:
                continue
            records[local_id] = replace(records[local_id], record=state.record)
            known = links.get(local_id)
            links[local_id] = Link(local_id, state.crm_id, dict(state.base), known.pushed_hash if known else None,
                                   known.crm_modified_at if known else None, None, False)
        held = self.store.open_conflict_fields_of(self.integration_id, obj, ids)
        computed = self.extras.values(obj, [r.record for r in records.values()]) if self.extras else {}
        for (held_obj, local_id), names in run.held.items():
            if held_obj is obj and local_id in records:
                held[local_id] = held.get(local_id, set()) | names
        outgoing: list[_Outgoing] = []
        unchanged: list[tuple[LocalRecord, Link]] = []
        noted: set[str] = set()  # the emails whose record carries a note
        refusals = {} if run.resend_refused else self.store.refused_writes(
            self.integration_id, obj, list(records), REFUSAL_CATEGORIES)
        converted = self._converted_leads(obj, records, links)
        for local_id in ids:
            local = records.get(local_id)
            if local is None:
                continue
            link = links.get(local_id)
            values = computed.get(local.record.email, {})
            note = self.extras.note(obj, local.record, values) if self.extras else None
            if note:
                noted.add(local.record.email)
            planned_out = self._outbound(local, link, mappings, frozenset(held.get(local_id, ())), values, note)
            if planned_out is None:
                assert link is not None
                unchanged.append((local, link))
            elif local.record.email in converted:
                change, entry = _skip(obj, local.record.email, link.crm_id if link else None, None,
                                      self._converted_reason(), Side.CRM)
                run.plan.add(change)
                run.log.append(entry)
            elif (refusal := refusals.get(local_id)) is not None and _refused_as_is(refusal, local, planned_out):
                change, entry = _skip(obj, local.record.email, link.crm_id if link else None, None,
                                      self._refused_reason(refusal), Side.CRM)
                run.plan.add(change)
                run.log.append(entry)
            else:
                outgoing.append(planned_out)
        _count_not_sent(run, outgoing, mappings)
        # A record never linked may already be in the CRM (same email): one search per batch tells a create from
        # an update, in a dry run and a real run alike.
        unlinked = [o.local.record.email for o in outgoing if o.link is None]
        found = await self.adapter.find_by_emails(obj, unlinked) if unlinked else {}
        planned: dict[str, PlannedChange] = {}
        sends: list[_Outgoing] = []
        matched: list[tuple[_Outgoing, str]] = []
        for out in outgoing:
            email = out.local.record.email
            match = found.get(email) if out.link is None else None
            if match is not None and match.email and match.email != email:
                # Pipedrive finds a person by any of their emails: linked, this person would be written over that
                # one, and the next pull would rename it to the other's primary email.
                run.fail(obj, email, match.crm_id, ErrorCategory.DUPLICATE,
                         f"the CRM holds {email} as another email of its record {match.crm_id}, whose email is "
                         f"{match.email}: not linked, so as not to write one person over another. Change the "
                         f"email here to {match.email} to sync them as one (or merge the two in People), or take "
                         f"{email} off that record in the CRM")
                continue
            if out.link is not None:
                planned[email] = PlannedChange(obj, email, Side.CRM, ChangeAction.UPDATE, out.changed,
                                               reason="" if out.changed else "its social note changed")
            elif match is None:
                planned[email] = PlannedChange(obj, email, Side.CRM, ChangeAction.CREATE, out.changed)
            else:
                differs = _differences(out, match, mappings)
                # The search shows fields, not notes: a match with a note to carry (Pipedrive's social note) is
                # written, and the adapter adds the note unless the person has it (a note refused before included).
                if not differs and email not in noted:
                    matched.append((out, match.crm_id))
                    continue
                planned[email] = PlannedChange(obj, email, Side.CRM, ChangeAction.UPDATE, differs,
                                               reason="" if differs else "found by email; its note is written")
            sends.append(out)
        same = [PlannedChange(obj, local.record.email, Side.CRM, ChangeAction.UNCHANGED) for local, _ in unchanged]
        same.extend(PlannedChange(obj, out.local.record.email, Side.CRM, ChangeAction.UNCHANGED) for out, _ in matched)
        run.plan.extend(same)
        if run.dry_run:
            run.plan.extend(planned.values())
            return
        self.store.mark_pushed(
            self.integration_id, obj,
            [(local.id, link.crm_id, None, None, local.updated_at) for local, link in unchanged]
            + [(out.local.id, crm_id, out.base_after, out.digest, out.local.updated_at) for out, crm_id in matched],
        )
        run.log.extend(LogEntry(obj, out.local.record.email, crm_id, RecordOutcome.UNCHANGED, None,
                                "already in the CRM with these values; linked") for out, crm_id in matched)
        if sends:
            items = [
                {
                    "object": obj,
                    "local_id": out.local.id,
                    "email": out.local.record.email,
                    "crm_id": out.link.crm_id if out.link else None,
                    "fields": out.send,
                    "base_after": out.base_after,
                    # Kept with the write: if the process dies after the CRM took it, the run that resumes it
                    # audits these, whether the record was linked or found by email.
                    "crm_old_values": _crm_old_values(planned[out.local.record.email]),
                    "values_hash": out.digest,
                    "local_version": out.local.updated_at,
                }
                for out in sends
            ]
            self.store.add_outbox(self.integration_id, run.run_id, items)
            sent = {out.local.record.email: out.local.record for out in sends}
            await self._send(obj, self.store.pending_outbox(self.integration_id, obj), run, planned, sent)
        self.store.heartbeat(self.integration_id, run.run_id)

    async def _resume_outbox(self, obj: RecordObject, run: _Run) -> None:
        """Send writes a crashed run recorded but never marked done; matching by CRM id or email avoids duplicates."""
        pending = self.store.pending_outbox(self.integration_id, obj)
        if pending:
            logger.info("resuming %d pending writes of %s", len(pending), self.integration.name)
            await self._send(obj, pending, run, {})
            self._write_log(run)

    async def _send(self, obj: RecordObject, pending: list[OutboxItem], run: _Run,
                    planned: dict[str, PlannedChange], sent: dict[str, Contact | Lead] | None = None) -> None:
        """Send outbox writes in batches and apply the CRM's answers; the run's plan gets what was really done.

        ``sent`` are the local records the planned writes were made from, by email: their audit rows keep each
        custom value's type (a write resumed after a crash has none, and is audited as text)."""
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start : start + self.batch_size]
            # Several intents for one record (a crash between two runs): only the newest is sent.
            newest: dict[int, OutboxItem] = {}
            superseded: list[tuple[OutboxItem, str]] = []
            for item in chunk:
                if item.local_id in newest:
                    superseded.append((newest[item.local_id], "superseded by a newer write"))
                newest[item.local_id] = item
            batch = list(newest.values())
            # A write resumed after a crash has no plan: its old values are those the outbox kept with it, or for a
            # write queued before the outbox kept them, the link's base (not yet moved).
            resumed = {i.local_id for i in batch if i.email not in planned}
            unkept = [i.local_id for i in batch if i.local_id in resumed and i.crm_old_values is None]
            old_bases = {
                local_id: link.base_values
                for local_id, link in self.store.links_for_local(self.integration_id, obj, unkept).items()
            } if unkept else {}
            notes = self._notes(obj, batch)
            outbound = [OutboundRecord(email=i.email, fields=i.fields, crm_id=i.crm_id, note=notes.get(i.local_id))
                        for i in batch]
            answers: list[RecordResult | None] = [None] * len(outbound)
            try:
                results = await self.adapter.upsert(obj, outbound, answers=answers)
            except BaseException as exc:
                # Stopped part-way (the daily budget spent, a cancel, a refused token or permission): the writes
                # the CRM answered for are this run's, counted and audited here; the rest stay owed in the outbox.
                refused = exc if isinstance(exc, PermissionRefusedError) else None
                try:
                    self._record_answers(obj, run, batch, answers, superseded, resumed, old_bases, planned, sent,
                                         refused=refused)
                except StoreUnavailableError as lost:
                    logger.warning("the answers of a stopped push batch were not recorded: %s", lost.reason)
                raise
            unreachable = self._record_answers(obj, run, batch, results, superseded, resumed, old_bases, planned,
                                               sent)
            if unreachable:
                first = unreachable[0]
                why = (first.message or "no answer").removeprefix(f"{first.email}: ")
                raise TransientError(why, category=ErrorCategory.NETWORK)

    def _record_answers(
        self,
        obj: RecordObject,
        run: _Run,
        batch: list[OutboxItem],
        answers: Sequence[RecordResult | None],
        superseded: list[tuple[OutboxItem, str]],
        resumed: set[int],
        old_bases: dict[int, dict[str, Any]],
        planned: dict[str, PlannedChange],
        sent: dict[str, Contact | Lead] | None,
        *,
        refused: PermissionRefusedError | None = None,
    ) -> list[RecordResult]:
        """Apply the CRM's answers for a sent batch: links, the run's plan and record log, audit rows, the outbox.

        A write with no answer (``None``: the push stopped before the CRM answered for it) stays in the outbox for
        the next run, unless ``refused`` stopped the push: a permission the CRM user lacks refuses it alike.

        Returns:
            The answers that were not delivered for want of a connection (they stay in the outbox too).
        """
        stamps: dict[int, datetime | None] = {}
        done: list[tuple[OutboxItem, str, datetime | None]] = []
        failed: list[tuple[OutboxItem, str]] = list(superseded)
        audit: list[dict[str, Any]] = []
        # A linked record the CRM answered for with another record (its own gone, found again by email): that
        # record may be linked to another local one, and two local records cannot share it.
        moved = [r.crm_id for i, r in zip(batch, answers, strict=True)
                 if r is not None and r.crm_id and i.crm_id and r.crm_id != i.crm_id
                 and r.outcome is not RecordOutcome.FAILED]
        held_by = self.store.links_for_crm(self.integration_id, obj, moved) if moved else {}
        unreachable: list[RecordResult] = []
        for item, result in zip(batch, answers, strict=True):
            if result is None:
                if refused is not None:
                    # Refused for a permission the CRM user lacks: a failed record (the Sync Monitor groups them).
                    failed.append((item, str(refused)))
                    run.fail(obj, item.email, item.crm_id, ErrorCategory.PERMISSION, str(refused))
                continue
            if result.outcome is RecordOutcome.FAILED and result.category is ErrorCategory.NETWORK:
                # Not refused, not delivered: the write stays owed in the outbox, and the run ends offline
                # (the next run sends it, or finds it by email if it landed after all).
                unreachable.append(result)
                continue
            holder = held_by.get(result.crm_id or "")
            if holder is not None and holder.local_id != item.local_id and item.crm_id != result.crm_id:
                message = (f"{item.email}: its CRM record {item.crm_id} is gone (merged or deleted), and the CRM "
                           f"took this write on record {result.crm_id}, which another local {obj.value} is linked "
                           "to: not linked here. If they are one person, merge the two in People (Duplicates)")
                failed.append((item, message))
                run.refused.add((obj, item.local_id))
                run.fail(obj, item.email, result.crm_id, ErrorCategory.DUPLICATE, message)
                continue
            if result.outcome is RecordOutcome.FAILED or not result.crm_id:
                failed.append((item, result.message or "failed"))
                run.refused.add((obj, item.local_id))
                self._push_failed(obj, item, result, run)
                continue
            outcome = result.outcome
            if item.local_id in resumed and _queued_as_create(item) and outcome in (
                    RecordOutcome.UNCHANGED, RecordOutcome.UPDATED):
                # A create sent by an earlier run that never heard back (its answer lost, or the run stopped
                # before linking it): the CRM holds the record that create made. Nobody counted it created yet,
                # so this run does, and the runs' counts add up to the records created.
                outcome = RecordOutcome.CREATED
            done.append((item, result.crm_id, item.local_version))
            stamps[item.id] = result.crm_modified_at
            run.log.append(LogEntry(obj, item.email, result.crm_id, outcome, result.category, result.message))
            plan = planned.get(item.email)
            changed = dict(plan.fields) if plan else _resumed_changes(item, old_bases.get(item.local_id))
            if outcome is RecordOutcome.UNCHANGED:
                run.plan.add(PlannedChange(obj, item.email, Side.CRM, ChangeAction.UNCHANGED))
            else:
                action = ChangeAction.CREATE if outcome is RecordOutcome.CREATED else ChangeAction.UPDATE
                run.plan.add(PlannedChange(obj, item.email, Side.CRM, action, changed))
            # A resumed write the CRM already holds was made by the crashed run: audit it, or undo cannot see it.
            if outcome is not RecordOutcome.UNCHANGED or (changed and item.local_id in resumed):
                record = (sent or {}).get(item.email) if plan else None
                audit.extend(typed_push_audit(
                    _audit(run.run_id, obj, Side.CRM, "push", changed, str(item.local_id)), record))
        # The audit rows go in the same transaction: a crash cannot leave a CRM write that undo cannot see.
        self.store.complete_outbox(self.integration_id, done, failed, audit, crm_stamps=stamps)
        return unreachable

    def _notes(self, obj: RecordObject, batch: list[OutboxItem]) -> dict[int, str]:
        """The note each write carries (from the records as they are now: a resumed write gets one too)."""
        if self.extras is None:
            return {}
        records = self.store.local_records(obj, [i.local_id for i in batch])
        computed = self.extras.values(obj, [r.record for r in records.values()])
        notes: dict[int, str] = {}
        for local_id, local in records.items():
            note = self.extras.note(obj, local.record, computed.get(local.record.email, {}))
            if note:
                notes[local_id] = note
        return notes

    def _converted_leads(self, obj: RecordObject, records: dict[int, LocalRecord], links: dict[int, Link]) -> set[str]:
        """The emails of the leads among ``records`` linked to a CRM lead this integration reported converted (a
        pull recorded the conversion): Salesforce refuses every write to a converted Lead."""
        if obj is not RecordObject.LEAD:
            return set()
        linked = {local.record.email: link.crm_id for local_id, local in records.items()
                  if (link := links.get(local_id)) is not None and not link.deleted_in_crm}
        return self._conversions.converted_leads(self.integration_id, linked)

    def _converted_reason(self) -> str:
        """Why a converted lead's changes are not sent, as the run's plan and record log say it."""
        crm = self.integration.provider.label
        return (f"converted in {crm}, which lets no one change a converted lead: not sent (the person's contact "
                f"is synced as a contact)")

    def _refused_reason(self, refusal: RefusedWrite) -> str:
        """Why a record the CRM refused is not sent again, as the run's plan and record log say it."""
        crm = self.integration.provider.label
        when = refusal.at.strftime("%Y-%m-%d %H:%M UTC")
        return (f"refused by {crm} on {when} (run {refusal.run_id}): {refusal.message}; it is sent again once it "
                f"changes, or when that run's failures are retried (Retry failed in the Sync Monitor, or "
                f"crm-desktop runs retry {refusal.run_id})")

    def _push_failed(self, obj: RecordObject, item: OutboxItem, result: RecordResult, run: _Run) -> None:
        if result.category is ErrorCategory.NOT_FOUND and item.crm_id:
            self.store.mark_deleted_in_crm(self.integration_id, obj, item.local_id)
            change, entry = _skip(obj, item.email, item.crm_id, ErrorCategory.NOT_FOUND,
                                  "deleted in the CRM; not re-created", Side.CRM)
            run.plan.add(change)
            run.log.append(entry)
            return
        # A refused update names the record it was meant for (the CRM answered with no id for it).
        run.fail(obj, item.email, result.crm_id or item.crm_id, result.category or ErrorCategory.SERVER,
                 result.message or "failed")


def _refused_as_is(refusal: RefusedWrite, local: LocalRecord, out: _Outgoing) -> bool:
    """Whether a record would go to the CRM just as it was when the CRM refused it: not changed locally since, and
    the same values under the same mapping."""
    return refusal.local_version == local.updated_at and refusal.values_hash == out.digest


def _stamp_is_echo(stamp: datetime | None, kept: datetime | None) -> bool:
    """Whether a CRM change stamp to the millisecond is the one kept from our own last write (decides alone)."""
    return stamp is not None and bool(stamp.microsecond) and stamp == kept


def _split_as_held(record: CrmRecord, mappings: list[FieldMapping], *splits: tuple[Any, Any]) -> CrmRecord:
    """``record`` with its first and last name as one of ``splits`` (the merge base's, then the local record's)
    when its full ``name`` is that split's two parts joined.

    Pipedrive keeps one full name and derives the parts itself, at the first space: "Mary Ann" and "van der Berg"
    come back as "Mary" and "Ann van der Berg", which would read as the salesperson's change.
    """
    first_field = next((m.crm_field for m in mappings if m.local_field == "firstName"), None)
    last_field = next((m.crm_field for m in mappings if m.local_field == "lastName"), None)
    whole = record.fields.get("name")
    if first_field is None or last_field is None or not isinstance(whole, str) or "name" in (first_field, last_field):
        return record
    said = " ".join(whole.split())
    for first, last in splits:
        parts = [" ".join(str(part).split()) for part in (first, last) if part]
        if parts and " ".join(parts) == said:
            held = (record.fields.get(first_field), record.fields.get(last_field))
            if held == (first, last):
                return record
            return replace(record, fields={**record.fields, first_field: first, last_field: last})
    return record


def _is_echo(record: CrmRecord, link: Link | None, mappings: list[FieldMapping]) -> bool:
    """Whether a pulled record is the echo of this app's own last write: the CRM stamp that write left.

    A stamp to the whole second (Pipedrive's v2 ``update_time``) cannot tell the write from an edit made in the
    same second, so such a record must also hold the merge base's values: only then is there nothing to merge.
    """
    if (
        link is None
        or link.deleted_in_crm
        or link.crm_modified_at is None
        or record.modified_at is None
        or record.modified_at != link.crm_modified_at
    ):
        return False
    return bool(record.modified_at.microsecond) or _holds_base(record, link, mappings)


def _holds_base(record: CrmRecord, link: Link, mappings: list[FieldMapping]) -> bool:
    """Whether the CRM record holds its merge base in every mapped field (as :meth:`SyncEngine._plan_record`
    compares them: nothing changed on the CRM's side)."""
    for mapping in mappings:
        raw = record.fields.get(mapping.crm_field)
        value = from_crm(mapping, raw)
        if mapping.local_field == "email" and not value:
            value = record.email or None
        base_value = link.base_values.get(mapping.local_field)
        if value != base_value and not crm_holds(mapping, base_value, raw):
            return False
    return True


def _count_not_sent(run: _Run, outgoing: list[_Outgoing], mappings: list[FieldMapping]) -> None:
    """Count the custom fields of records about to be sent that no mapping carries to the CRM."""
    mapped = {m.local_field.removeprefix("custom.") for m in mappings
              if m.pushes and m.local_field.startswith("custom.")}
    for out in outgoing:
        for column in out.local.record.custom_fields.keys() - mapped:
            run.not_sent[column] = run.not_sent.get(column, 0) + 1


def _audit(run_id: int | None, obj: RecordObject, side: Side, source: str, changes: dict[str, FieldChange],
           entity_id: str | None = None) -> list[dict[str, Any]]:
    """Audit rows of applied field changes (``entity_id`` filled by the store for a record it creates)."""
    rows: list[dict[str, Any]] = [
        {"run_id": run_id, "entity": obj.value, "field": name, "old_value": change.old,
         "new_value": change.new, "source": source, "side": side.value}
        for name, change in changes.items()
    ]
    if entity_id is not None:
        for row in rows:
            row["entity_id"] = entity_id
    return rows


def _differences(out: _Outgoing, match: CrmRecord, mappings: list[FieldMapping]) -> dict[str, FieldChange]:
    """The fields a record found in the CRM by email does not hold yet, as the CRM value -> the local value."""
    values = record_values(out.local.record)
    differs: dict[str, FieldChange] = {}
    for mapping in mappings:
        if mapping.crm_field not in out.send or mapping.local_field == "email":
            continue
        raw = match.fields.get(mapping.crm_field)
        value = values.get(mapping.local_field)
        if not crm_holds(mapping, value, raw):
            differs[mapping.local_field] = FieldChange(from_crm(mapping, raw), value, "differs in the CRM")
    return differs


def _queued_as_create(item: OutboxItem) -> bool:
    """Whether an outbox write was planned as a create: no CRM record linked or found by email (a write to a record
    found by email keeps the CRM's old values, if only ``{}``)."""
    return item.crm_id is None and item.crm_old_values is None


def _crm_old_values(planned: PlannedChange) -> dict[str, Value] | None:
    """What the CRM holds in the fields a planned push write changes; ``None`` for a create."""
    if planned.action is ChangeAction.CREATE:
        return None
    return {name: change.old for name, change in planned.fields.items()}


def _resumed_changes(item: OutboxItem, link_base: dict[str, Any] | None) -> dict[str, FieldChange]:
    """The fields a resumed write changed, from the CRM's values before it: those the outbox kept with the write;
    for a write queued before it kept them, the link's base; none at all (every field new) for a create."""
    reason = "resumed after an interrupted run"
    if item.crm_old_values is not None:
        return {k: FieldChange(old, item.base_after.get(k), reason) for k, old in item.crm_old_values.items()}
    if link_base is None:
        return {k: FieldChange(None, v, reason) for k, v in item.base_after.items() if v is not None}
    return {k: FieldChange(link_base.get(k), v, reason) for k, v in item.base_after.items()
            if link_base.get(k) != v}
