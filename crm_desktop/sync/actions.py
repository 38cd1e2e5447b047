"""Conflict resolution, undo of a run and the schedule: the sync actions besides a run itself."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from crm_desktop.domain.models import Contact, Integration, Lead, SyncDirection
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmAdapter, OutboundRecord, ReadsMappedFields
from crm_desktop.providers.errors import ProviderError
from crm_desktop.store.models import ConflictRow, ConflictStatus, SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.store.process_owner import UNDO, lock_owner
from crm_desktop.store.sync_store import Link, LocalRecord, PulledWrite, ResolutionWrites, SyncStore
from crm_desktop.sync.lock_refusal import take_lock
from crm_desktop.sync.mapping import (
    CLEARED,
    FieldMapping,
    Value,
    apply_values,
    crm_holds,
    from_crm,
    local_form,
    record_values,
    to_crm,
    typed_custom_audit,
    with_audit_types,
    with_custom_values,
)
from crm_desktop.sync.plan import ChangeAction, FieldChange, PlannedChange, Side, SyncPlan

logger = logging.getLogger(__name__)


class ConflictResolutionError(Exception):
    """A conflict cannot be resolved as asked; the message says why."""


class ConflictResolvedElsewhere(ConflictResolutionError):
    """Someone else came first: the conflict was resolved already (another window, desktop or script, or a merge),
    or is being resolved right now. Nothing was written; not a mistake in the request."""


#: How a resolution is told in words (``ConflictRow.resolution``).
_RESOLUTIONS = {"crm": "the CRM's value kept", "local": "the local value kept", "value": "a typed value kept",
                "merged": "closed by a merge of the person"}


def _resolved_already(conflict: ConflictRow) -> ConflictResolvedElsewhere:
    """The refusal of a conflict closed already: what was decided, the value kept and when."""
    how = _RESOLUTIONS.get(conflict.resolution or "", conflict.resolution or "resolved")
    kept = "" if conflict.resolution == "merged" else (
        f": {conflict.resolved_value!r}" if conflict.resolved_value is not None else ": (blank)")
    at = f" at {conflict.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if conflict.resolved_at is not None else ""
    return ConflictResolvedElsewhere(
        f"conflict {conflict.id} is already resolved ({conflict.resolution}){at}, in another window, on another "
        f"desktop or by a script ({how}{kept}); nothing was written")


async def resolve_conflict(
    store: SyncStore,
    adapter: CrmAdapter,
    integration: Integration,
    mappings: dict[RecordObject, list[FieldMapping]],
    conflict_id: int,
    *,
    take: str | None = None,
    value: str | None = None,
) -> Value:
    """Apply the marketer's decision to both sides, record it, and move the merge base; return the kept value.

    Args:
        take: ``crm`` (the CRM's value the conflict recorded) or ``local`` (the value the local record holds now,
            read again with the record held when the resolution is written, which may differ from the one recorded
            when the conflict was raised; a blank clears the CRM's field); or ``None`` with ``value`` for a typed
            value.
        value: the typed value (blank text means blank).

    Raises:
        ConflictResolutionError: when the conflict is closed, the decision is unclear, the local record is gone
            (``local`` or a typed value; ``crm`` then closes the conflict, writing nothing), or (``local``) its value
            changed while the CRM was being written (the conflict stays open).
        ProviderError: when the CRM refuses the write (the conflict stays open).
    """
    assert integration.id is not None
    conflict = store.get_conflict(conflict_id)
    if conflict.status is not ConflictStatus.OPEN:
        raise _resolved_already(conflict)
    if conflict.integration_id != integration.id:
        raise ConflictResolutionError(f"conflict {conflict_id} belongs to another integration")
    if take not in (None, "crm", "local") or (take is None) == (value is None):
        raise ConflictResolutionError("choose exactly one: take crm, take local, or a typed value")
    # Claimed before anything is written: two windows or desktops deciding it at once write the CRM once.
    if not store.claim_conflict(conflict_id):
        now = store.get_conflict(conflict_id)
        if now.status is not ConflictStatus.OPEN:
            raise _resolved_already(now)
        raise ConflictResolvedElsewhere(f"conflict {conflict_id} is being resolved right now in another window or on "
                                        "another desktop; look again in a moment (nothing was written here)")
    try:
        return await _resolve_claimed(store, adapter, integration, mappings, conflict, take, value)
    except BaseException:
        store.release_conflict(conflict_id)
        raise


@dataclass
class _Resolution:
    """A claimed conflict's decision worked out before anything is written: the value kept on both sides and what
    the CRM is given.

    Attributes:
        conflict: the conflict, claimed.
        take: ``crm``, ``local`` or ``None`` (a typed value).
        kept: the value both sides keep, in the local record's form.
        local: the local record as read when the decision was worked out; ``None`` when it was deleted since (the
            CRM's value is then kept by closing the conflict, writing nothing).
        link: the record's link to the CRM record, with the merge base.
        outbound: what the CRM is given; ``None`` when it holds the kept value already.
        crm_audit: the audit row of that CRM write.
    """

    conflict: ConflictRow
    take: str | None
    kept: Value
    local: LocalRecord | None
    link: Link | None
    outbound: OutboundRecord | None = None
    crm_audit: list[dict[str, Any]] = field(default_factory=list)


def _plan_resolution(
    mappings: dict[RecordObject, list[FieldMapping]],
    conflict: ConflictRow,
    take: str | None,
    value: str | None,
    local: LocalRecord | None,
    link: Link | None,
) -> _Resolution:
    """What resolving ``conflict`` writes, given its local record and link as read now; nothing is written.

    Raises:
        ConflictResolutionError: the field is no longer mapped, the record is gone (``local`` or a typed value), or
            it is no longer linked while the CRM must be written.
        InvalidRecordError: the kept value is not valid for the local field.
    """
    name = conflict.field
    obj = conflict.object
    mapping = next((m for m in mappings.get(obj, []) if m.local_field == name), None)
    if mapping is None:
        raise ConflictResolutionError(f"field {name} is no longer mapped; map it again to resolve")
    if local is None:
        if take == "crm":
            # Nothing to write on either side: the CRM holds its value, and the local record that disagreed is gone.
            return _Resolution(conflict, take, conflict.crm_value, None, link)
        if take == "local":
            raise ConflictResolutionError(
                f"{conflict.record_key} is no longer in the local store (deleted since the conflict was raised), so "
                f"there is no local value of {name} to keep; nothing was written (keep the CRM's value to close it)")
        raise ConflictResolutionError(
            f"the local record of conflict {conflict.id} was deleted, so a typed value has no record to go to here; "
            "nothing was written (keep the CRM's value to close it)")
    kept: Value
    if take == "crm":
        # In the form the local record keeps (a phone in E.164): the CRM keeps its own way of writing it.
        kept = local_form(mapping, conflict.crm_value)
    elif take == "local":
        # The value the record holds now, which the Conflicts view shows as the local one, not the one recorded
        # when the conflict was raised: another integration's conflict on this field resolved since, or an edit,
        # may have changed it. A blank now is kept as a blank: the field is cleared in the CRM too.
        kept = record_values(local.record).get(name)
    else:
        kept = (value or "").strip() or None
    # Validate (and normalise) the kept value locally before anything is written to either side.
    updated = apply_values(local.record, {name: kept})
    if take is None:
        kept = record_values(updated).get(name, kept)
    plan = _Resolution(conflict, take, kept, local, link)
    if kept != local_form(mapping, conflict.crm_value):
        if link is None:
            raise ConflictResolutionError("the record is not linked to the CRM any more")
        outgoing = to_crm(mapping, kept)
        fields = {mapping.crm_field: CLEARED if outgoing is None else outgoing}
        plan.outbound = OutboundRecord(local.record.email, fields, crm_id=link.crm_id)
        plan.crm_audit.append({"entity": obj.value, "entity_id": str(local.id), "field": name,
                               "old_value": conflict.crm_value, "new_value": kept, "source": f"conflict:{conflict.id}",
                               "side": "crm"})
    return plan


def _write_resolution(store: SyncStore, integration_id: int, plan: _Resolution) -> Value:
    """Record one planned resolution once the CRM holds its value (:func:`_write_resolutions`); return the kept value.

    Raises:
        ConflictResolutionError: (``local``) the record's value changed while the CRM was being written, or the
            record was deleted meanwhile (the conflict stays open).
    """
    kept, failed = _write_resolutions(store, integration_id, [plan])
    if plan.conflict.id in failed:
        raise failed[plan.conflict.id]
    return kept[plan.conflict.id]


def _write_resolutions(
    store: SyncStore, integration_id: int, plans: Sequence[_Resolution], released: Sequence[int] = ()
) -> tuple[dict[int, Value], dict[int, Exception]]:
    """Record planned resolutions once the CRM holds their values, in one transaction with their local records
    held: the records, the audit, the new merge bases, the conflicts closed. A conflict that cannot be recorded
    (see :func:`_recorded_resolution`) is let go, open, in that same transaction, with ``released``.

    Returns:
        The value kept by each conflict closed, and why each other one was not, by conflict id.
    """
    kept: dict[int, Value] = {}
    failed: dict[int, Exception] = {}

    def decide(held: dict[tuple[RecordObject, int], LocalRecord],
               held_links: dict[tuple[RecordObject, int], Link]) -> ResolutionWrites:
        kept.clear()
        failed.clear()
        writes = ResolutionWrites(released=list(released))
        records = dict(held)
        links: dict[tuple[RecordObject, int], Link | None] = dict(held_links)
        touched: set[tuple[RecordObject, int]] = set()
        for plan in plans:
            conflict_id = plan.conflict.id
            try:
                kept[conflict_id] = _recorded_resolution(integration_id, plan, records, links, touched, writes)
            except (ConflictResolutionError, ValueError) as exc:
                failed[conflict_id] = exc
                writes.released.append(conflict_id)
        return writes

    store.write_resolutions(integration_id, [(p.conflict.object, p.conflict.local_id) for p in plans
                                             if p.local is not None], decide)
    return kept, failed


def _recorded_resolution(
    integration_id: int,
    plan: _Resolution,
    records: dict[tuple[RecordObject, int], LocalRecord],
    links: dict[tuple[RecordObject, int], Link | None],
    touched: set[tuple[RecordObject, int]],
    writes: ResolutionWrites,
) -> Value:
    """Add to ``writes`` what recording one resolution writes, given the local records as held (and as the
    resolutions before it in the batch left them: ``records``, ``links``); return the kept value. Raising, it adds
    nothing.

    Raises:
        ConflictResolutionError: (``local``) the record's value changed while the CRM was being written, or the
            record was deleted meanwhile.
        ValueError: the kept value no longer fits the record.
    """
    conflict, take, kept = plan.conflict, plan.take, plan.kept
    if plan.local is None:
        # Closed, so that the conflict does not wait for a decision that can never be written.
        writes.resolved.append((conflict.id, "crm", conflict.crm_value))
        return conflict.crm_value
    obj, name = conflict.object, conflict.field
    key = (obj, conflict.local_id)
    # The link as read with the record held (a sync may have pulled into it while the CRM was being written), or
    # as the resolutions before this one in the batch left it.
    local, link = plan.local, links.get(key)
    if key in touched and key in records:
        # A second field of a record resolved in this batch: its sync mark as the first field's resolution left it,
        # as one resolution after the other would read it.
        local = records[key]
    touched.add(key)
    held = records.get(key)
    if held is None:
        raise ConflictResolutionError(f"the local record of conflict {conflict.id} was deleted meanwhile")
    before = held.record
    after: Contact | Lead | None
    if take == "local":
        # Kept locally as it is; but only if it is still the value the CRM was just given: an edit saved by
        # another window or desktop while the CRM answered would otherwise be recorded as a decision not made.
        value_now = record_values(before).get(name)
        if value_now != kept:
            raise ConflictResolutionError(
                f"{conflict.record_key} {name} changed here to {shown(value_now)} while the CRM was being given "
                f"{shown(kept)}; the conflict stays open: look at it again and decide")
        after = None
    else:
        # Judged by the local record now, not by the value the conflict recorded: an edit, or another integration's
        # conflict on this field resolved first, may have changed it since, and the kept value goes to both sides.
        # Laid over the record as it is when written, the row held: an edit saved by another window or desktop
        # while the CRM answered keeps its other fields.
        after = apply_values(before, {name: kept})
        if after == before:
            after = None
    audit = list(plan.crm_audit)
    # Local edits made since the last sync must still be pushed: the sync mark moves past this write only when
    # nothing else waits to be pushed (nor was saved meanwhile).
    synced_at = link.local_synced_at if link is not None else None
    if after is not None:
        saved_at = utcnow()
        if synced_at is not None and synced_at >= local.updated_at and before == local.record:
            synced_at = saved_at
        audit.extend(typed_custom_audit([{"entity": obj.value, "entity_id": str(local.id), "field": name,
                                          "old_value": record_values(before).get(name), "new_value": kept,
                                          "source": f"conflict:{conflict.id}", "side": "local"}], before, after))
        records[key] = replace(held, record=after, updated_at=saved_at)
        writes.records[key] = (after, saved_at)
    if link is not None:
        link = replace(link, base_values={**link.base_values, name: kept}, local_synced_at=synced_at)
        links[key] = link
        writes.links[key] = (link.crm_id, {"base_values": link.base_values, "local_synced_at": synced_at})
    writes.audit.extend(audit)
    writes.resolved.append((conflict.id, take or "value", kept))
    return kept


async def _resolve_claimed(
    store: SyncStore,
    adapter: CrmAdapter,
    integration: Integration,
    mappings: dict[RecordObject, list[FieldMapping]],
    conflict: ConflictRow,
    take: str | None,
    value: str | None,
) -> Value:
    """The body of :func:`resolve_conflict`, run once the conflict is claimed."""
    assert integration.id is not None
    obj = conflict.object
    local = store.local_records(obj, [conflict.local_id]).get(conflict.local_id)
    link = store.links_for_local(integration.id, obj, [conflict.local_id]).get(conflict.local_id)
    plan = _plan_resolution(mappings, conflict, take, value, local, link)
    if plan.outbound is not None:
        [result] = await adapter.upsert(obj, [plan.outbound])
        if result.outcome is RecordOutcome.FAILED:
            raise ProviderError(f"the CRM refused the value: {result.message}", category=result.category)
    return _write_resolution(store, integration.id, plan)


class ResolutionStatus(StrEnum):
    """How one conflict of a bulk resolution ended."""

    RESOLVED = "resolved"
    #: Resolved by another window, desktop or script (or a merge) first: nothing written here.
    ALREADY_RESOLVED = "already_resolved"
    #: Being resolved by another window, desktop or script right now: nothing written here; it may stay open.
    BEING_RESOLVED = "being_resolved"
    #: Not resolved: the CRM refused the value, or it cannot be kept (the reason says which); it stays open.
    FAILED = "failed"
    #: Not tried: the bulk resolution was stopped, or the CRM could not be reached; it stays open.
    NOT_TRIED = "not_tried"


@dataclass(frozen=True)
class ConflictOutcome:
    """One conflict of a bulk resolution.

    Attributes:
        conflict: the conflict as read before it was resolved.
        status: how it ended.
        kept: the value kept on both sides (``RESOLVED``).
        reason: why it was not resolved (the CRM's reason when it refused); the conflict names the record and field.
    """

    conflict: ConflictRow
    status: ResolutionStatus
    kept: Value = None
    reason: str = ""


#: Conflicts claimed and written at a time in a bulk resolution: a CRM batch (HubSpot writes 100 a request,
#: Salesforce 200), and few enough that each batch is written well inside a claim's five minutes.
BULK_CHUNK = 200


async def resolve_conflicts(
    store: SyncStore,
    adapter: CrmAdapter,
    integration: Integration,
    mappings: dict[RecordObject, list[FieldMapping]],
    conflicts: Sequence[ConflictRow],
    *,
    take: str,
    progress: Callable[[ConflictOutcome], None] | None = None,
    stopped: Callable[[], bool] | None = None,
) -> list[ConflictOutcome]:
    """Resolve many conflicts of one integration the same way, writing the CRM in its own batches.

    Each conflict is claimed, decided and recorded as :func:`resolve_conflict` does; the values the CRM must take
    go out together (one ``upsert`` per :data:`BULK_CHUNK` conflicts), and once the CRM answered, the batch's local
    writes, conflicts closed and audit rows commit in one transaction. One conflict's failure (the CRM refused its
    value, another window resolved it first) leaves the others to be resolved.

    Args:
        take: ``crm`` or ``local`` (a typed value is for one conflict at a time).
        progress: told each conflict's outcome, a batch at a time once it is committed.
        stopped: asked between batches; once it says so, the conflicts not yet claimed are left ``NOT_TRIED``.

    Returns:
        One outcome per conflict, in the order given.

    A CRM that cannot be written at all (credentials refused, quota used up) fails the batch it was given, and
    leaves the batches after it ``NOT_TRIED``, with its reason.
    """
    assert integration.id is not None
    if take not in ("crm", "local"):
        raise ConflictResolutionError("choose take crm or take local for many conflicts at once")
    outcomes: dict[int, ConflictOutcome] = {}

    def told(outcome: ConflictOutcome) -> None:
        outcomes[outcome.conflict.id] = outcome
        if progress is not None:
            progress(outcome)

    cut_off: str | None = None
    for start in range(0, len(conflicts), BULK_CHUNK):
        batch = conflicts[start:start + BULK_CHUNK]
        if cut_off is not None or (stopped is not None and stopped()):
            reason = ("not tried: the resolution was stopped" if cut_off is None else
                      f"not tried, as the CRM could not be written: {cut_off}")
            for conflict in conflicts[start:]:
                told(ConflictOutcome(conflict, ResolutionStatus.NOT_TRIED, reason=reason))
            break
        cut_off = await _resolve_batch(store, adapter, integration.id, mappings, batch, take, told)
    return [outcomes[c.id] for c in conflicts]


async def _resolve_batch(
    store: SyncStore,
    adapter: CrmAdapter,
    integration_id: int,
    mappings: dict[RecordObject, list[FieldMapping]],
    batch: Sequence[ConflictRow],
    take: str,
    told: Callable[[ConflictOutcome], None],
) -> str | None:
    """Claim, plan, write to the CRM in one batch per object, then record the whole ``batch`` in one transaction
    and tell each conflict's outcome; return why the CRM could not be written at all, if so."""
    cut_off: str | None = None
    now = store.conflicts_by_id([c.id for c in batch])
    candidates: list[ConflictRow] = []
    for conflict in batch:
        current = now.get(conflict.id, conflict)
        if current.status is not ConflictStatus.OPEN:
            told(ConflictOutcome(conflict, ResolutionStatus.ALREADY_RESOLVED, reason=str(_resolved_already(current))))
        elif current.integration_id != integration_id:
            told(ConflictOutcome(conflict, ResolutionStatus.FAILED,
                                 reason=f"conflict {conflict.id} belongs to another integration"))
        else:
            candidates.append(current)
    # Claimed before anything is written, as one conflict is: two windows deciding them at once write each once.
    won = store.claim_conflicts([c.id for c in candidates])
    claimed: list[ConflictRow] = []
    for conflict in candidates:
        if conflict.id not in won:
            again = store.get_conflict(conflict.id)
            if again.status is not ConflictStatus.OPEN:
                told(ConflictOutcome(conflict, ResolutionStatus.ALREADY_RESOLVED,
                                     reason=str(_resolved_already(again))))
            else:
                told(ConflictOutcome(conflict, ResolutionStatus.BEING_RESOLVED, reason=(
                    f"conflict {conflict.id} is being resolved right now in another window or on another desktop; "
                    "look again in a moment (nothing was written here)")))
        else:
            claimed.append(conflict)
    plans: list[_Resolution] = []
    # Told once the batch is committed: a conflict is never said resolved before its writes are in the store.
    failed: dict[int, str] = {}
    written: set[int] = set()
    try:
        by_object: dict[RecordObject, list[ConflictRow]] = {}
        for conflict in claimed:
            by_object.setdefault(conflict.object, []).append(conflict)
        for obj, ones in by_object.items():
            ids = sorted({c.local_id for c in ones})
            locals_ = store.local_records(obj, ids)
            links = store.links_for_local(integration_id, obj, ids)
            for conflict in ones:
                try:
                    plans.append(_plan_resolution(mappings, conflict, take, None, locals_.get(conflict.local_id),
                                                  links.get(conflict.local_id)))
                except (ConflictResolutionError, ValueError) as exc:
                    failed[conflict.id] = str(exc)
        for obj in by_object:
            sending = [plan for plan in plans if plan.conflict.object is obj and plan.outbound is not None]
            if not sending:
                continue
            try:
                results = await adapter.upsert(obj, [plan.outbound for plan in sending if plan.outbound is not None])
            except ProviderError as exc:
                # The CRM could not be written at all (credentials refused, out of quota, unreachable): this batch
                # fails with its reason, and the batches after it are not tried.
                cut_off = str(exc)
                for plan in sending:
                    failed[plan.conflict.id] = f"not written to the CRM: {exc}"
                continue
            for plan, result in zip(sending, results, strict=True):
                if result.outcome is RecordOutcome.FAILED:
                    failed[plan.conflict.id] = f"the CRM refused the value: {result.message}"
        # The batch's local writes, conflicts closed and audit rows in one transaction, with the claims of the
        # conflicts left open let go: all of them, or (an exception) none.
        kept, unrecorded = _write_resolutions(store, integration_id,
                                              [plan for plan in plans if plan.conflict.id not in failed],
                                              released=list(failed))
        failed.update((conflict_id, str(exc)) for conflict_id, exc in unrecorded.items())
        written.update(c.id for c in claimed)
    except BaseException:
        for conflict in claimed:
            if conflict.id not in written:
                store.release_conflict(conflict.id)
        raise
    for conflict in claimed:
        if conflict.id in failed:
            told(ConflictOutcome(conflict, ResolutionStatus.FAILED, reason=failed[conflict.id]))
        else:
            told(ConflictOutcome(conflict, ResolutionStatus.RESOLVED, kept=kept[conflict.id]))
    return cut_off


class UndoRefused(ConflictResolutionError):
    """An undo that would be wrong: the run was undone already, or values it wrote changed since.

    Attributes:
        changed: the values that changed after the run (empty when it was undone already).
    """

    def __init__(self, message: str, changed: Sequence[ChangedSince] = ()) -> None:
        super().__init__(message)
        self.changed = list(changed)


@dataclass(frozen=True)
class ChangedSince:
    """A value a run wrote that changed after it (by a later run, a conflict resolution or an edit)."""

    email: str
    field: str
    side: Side
    run_left: Value
    now: Value

    def __str__(self) -> str:
        where = "in the CRM" if self.side is Side.CRM else "locally"
        return f"{self.email} {self.field} ({where}): the run left {shown(self.run_left)}, now {shown(self.now)}"


@dataclass
class UndoReport:
    """What undoing a run did, counted from what was written, record by record.

    Attributes:
        run_id: the undo's own run.
        plan: the undo's plan as applied (per record and side, field: current -> restored).
        restored_local: local field values set back.
        restored_crm: CRM field values the run had written, set back.
        aligned_crm: CRM field values the run had only pulled, written so both sides hold the restored value.
        kept: records the undo left as they are, with the reason.
        overridden: values changed after the run that ``force`` overwrote.
        failed: records the CRM refused to take back (the run may be undone again to put them back).
    """

    run_id: int
    plan: SyncPlan = field(default_factory=SyncPlan)
    restored_local: int = 0
    restored_crm: int = 0
    aligned_crm: int = 0
    kept: list[str] = field(default_factory=list)
    overridden: list[ChangedSince] = field(default_factory=list)
    failed: int = 0


def shown(value: Value) -> str:
    return "(blank)" if value is None else repr(value)


@dataclass
class _AuditedRecord:
    """One record's fields a run changed: the oldest old value and the newest new value, per side."""

    obj: RecordObject
    local_id: int
    local: dict[str, tuple[Value, Value]] = field(default_factory=dict)
    crm: dict[str, tuple[Value, Value]] = field(default_factory=dict)
    #: The local side's old values whose type the audit kept (a custom field's 42, true), by field.
    exact: dict[str, Any] = field(default_factory=dict)
    #: The CRM side's old values whose type the audit kept (what the CRM held before a push), by field.
    crm_exact: dict[str, Any] = field(default_factory=dict)
    #: The CRM side's newest values whose type the audit kept (what the run wrote there), by field.
    crm_written: dict[str, Any] = field(default_factory=dict)


@dataclass
class _RecordUndo:
    """The undo plan of one record."""

    audited: _AuditedRecord
    local: LocalRecord
    link: Link | None
    local_changes: dict[str, FieldChange]
    crm_send: dict[str, Any]
    crm_changes: dict[str, FieldChange]
    new_base: dict[str, Any]
    #: The restored values whose type the audit kept, by field: the local side's where the run changed it there,
    #: else the CRM side's (what the CRM held before a push).
    exact: dict[str, Any] = field(default_factory=dict)
    #: Fields blank here again whose value the CRM keeps (an undo sends no blank it did not write), with that value.
    left_in_crm: dict[str, Any] = field(default_factory=dict)


def _audited_records(store: SyncStore, run_id: int) -> tuple[list[_AuditedRecord], int]:
    """The run's changes per record (streamed from its audit rows), and the id of its last audit row."""
    records: dict[tuple[str, str], _AuditedRecord] = {}
    last_id = 0
    for row in store.iter_audit_for_run(run_id):
        last_id = max(last_id, row.id)
        if not row.entity_id.isdigit() or row.entity not in {o.value for o in RecordObject}:
            continue
        audited = records.setdefault((row.entity, row.entity_id),
                                     _AuditedRecord(RecordObject(row.entity), int(row.entity_id)))
        changes = audited.crm if row.side == Side.CRM.value else audited.local
        first = changes.get(row.field)
        changes[row.field] = (first[0] if first else row.old_value, row.new_value)
        if changes is audited.local:
            if first is None and row.old_type is not None:
                audited.exact[row.field] = row.old
            continue
        if first is None and row.old_type is not None:
            audited.crm_exact[row.field] = row.old
        if row.new_type is not None:
            audited.crm_written[row.field] = row.new
        else:
            audited.crm_written.pop(row.field, None)
    return list(records.values()), last_id


def _refuse_if_undone(store: SyncStore, run_id: int) -> None:
    """Refuse the undo of a run that an undo took back already (in whole: one the CRM refused in part, down or
    refusing some records, may be run again to put back the rest)."""
    earlier = store.undo_of(run_id)
    if earlier is not None:
        raise UndoRefused(f"run {run_id} was already undone (by run {earlier})")


async def undo_run(
    store: SyncStore,
    adapter: CrmAdapter,
    integration: Integration,
    mappings: dict[RecordObject, list[FieldMapping]],
    run_id: int,
    *,
    trigger: SyncTrigger = SyncTrigger.MANUAL,
    force: bool = False,
    batch_size: int = 200,
) -> UndoReport:
    """Put back the values a run changed, on both sides, from its audit rows; the undo is a run of its own.

    The undo is planned first (per record and side: current value -> the value before the run), then the CRM
    values go out in the CRM's batches and the local values are written in one transaction. Values changed after
    the run are not overwritten unless ``force``.

    Raises:
        UndoRefused: when the run was undone already, or (without ``force``) values it wrote changed since.
        ConflictResolutionError: when the run belongs to another integration or is still running.
        SyncAlreadyRunning: when a sync, push, undo or removal of the integration holds its lock (named).
    """
    assert integration.id is not None
    target = store.get_run(run_id)
    if target.integration_id != integration.id:
        raise ConflictResolutionError(f"run {run_id} belongs to another integration")
    if target.status is SyncRunStatus.RUNNING:
        raise ConflictResolutionError(f"run {run_id} is still running")
    _refuse_if_undone(store, run_id)
    undoer = lock_owner(UNDO)  # named: a refusal says an undo holds the lock, and this process's sync is another
    take_lock(store, integration.id, integration.name, undoer, "is running", "undo it afterwards")
    try:
        # Asked again under the lock: another desktop or the CLI may have undone the run between the look above
        # and the lock (its undo run is finished before it lets the lock go), and the CRM must get the undo once.
        _refuse_if_undone(store, run_id)
        audited, last_audit_id = _audited_records(store, run_id)
        plans, kept, changed = _plan_undo(store, integration.id, mappings, audited, last_audit_id)
        # A salesperson's edit in the CRM since the run is not in the store until a pull: read the records the undo
        # writes, so it is not overwritten unasked (the report then says what the CRM held, not the run's value).
        changed += await _changed_in_crm(adapter, mappings, plans, batch_size)
        if changed and not force:
            listed = "; ".join(str(c) for c in changed)
            raise UndoRefused(
                f"run {run_id} was not undone: {len(changed)} value(s) it wrote changed after it: {listed}. "
                "Undo with --force to put back the values from before the run anyway",
                changed,
            )
        undo_id = store.start_run(integration.id, trigger, SyncDirection.UNDO, message=f"undo of run {run_id}",
                                  undoes_run_id=run_id)
        report = UndoReport(undo_id, kept=[k for _, k in kept], overridden=changed)
        log: list[tuple[RecordObject, str, str | None, RecordOutcome, ErrorCategory | None, str | None]] = [
            (obj, key, None, RecordOutcome.SKIPPED, None, reason.split(": ", 1)[-1])
            for (obj, key), reason in kept
        ]
        status = SyncRunStatus.SUCCEEDED
        message = f"undo of run {run_id}"
        failed: set[int] = set()
        written: set[int] = set()
        sent = False
        try:
            await _send_undo(adapter, plans, batch_size, report, log, failed, written)
            sent = True
            if failed:
                status = SyncRunStatus.PARTIAL
                report.failed = len(failed)
            _write_undo(store, integration.id, undo_id, run_id, [p for p in plans if id(p) not in failed],
                        written, report, log)
            report.kept.extend(
                f"{p.local.record.email}: {name} is blank here again; {integration.name} keeps {shown(value)} "
                "(an undo sends no blank the run did not write there)"
                for p in plans if id(p) not in failed for name, value in p.left_in_crm.items()
            )
        except BaseException as exc:
            status = SyncRunStatus.FAILED
            if not sent:
                # The CRM went away (down, the token refused, the app quitting) after taking some batches: what it
                # took is written here too, so both sides and the history agree, and undoing again does the rest.
                message += (f"; stopped ({exc or type(exc).__name__}) with {len(written)} "
                            f"record{'' if len(written) == 1 else 's'} put back on both sides: undo it again to put "
                            "back the rest")
                _write_undo(store, integration.id, undo_id, run_id, [p for p in plans if id(p) in written],
                            written, report, log)
            raise
        finally:
            outcomes = [entry[3] for entry in log]
            store.add_record_outcomes(undo_id, log)
            store.finish_run(undo_id, status, updated=outcomes.count(RecordOutcome.UPDATED),
                             unchanged=outcomes.count(RecordOutcome.UNCHANGED),
                             failed=outcomes.count(RecordOutcome.FAILED), total=len(outcomes),
                             api_calls=adapter.api_calls, message=message)
    finally:
        store.release_lock(integration.id, undoer)
    return report


def _plan_undo(
    store: SyncStore,
    integration_id: int,
    mappings: dict[RecordObject, list[FieldMapping]],
    audited: list[_AuditedRecord],
    last_audit_id: int,
) -> tuple[list[_RecordUndo], list[tuple[tuple[RecordObject, str], str]], list[ChangedSince]]:
    """Plan the undo of each audited record; returns the plans, the records kept (with why) and the values that
    changed after the run. Reads the store a batch of records at a time; writes nothing."""
    plans: list[_RecordUndo] = []
    kept: list[tuple[tuple[RecordObject, str], str]] = []
    changed: list[ChangedSince] = []
    for obj in RecordObject:
        of_obj = [a for a in audited if a.obj is obj]
        by_local = {m.local_field: m for m in mappings.get(obj, [])}
        for start in range(0, len(of_obj), 500):
            chunk = of_obj[start : start + 500]
            ids = [a.local_id for a in chunk]
            records = store.local_records(obj, ids)
            links = store.links_for_local(integration_id, obj, ids)
            later = store.audit_changes_after(obj.value, [str(i) for i in ids], last_audit_id, integration_id)
            for item in chunk:
                local = records.get(item.local_id)
                if local is None:
                    merged = store.gone_by_merge(obj, item.local_id)
                    kept.append(((obj, merged[0] if merged else f"{obj.value} {item.local_id}"),
                                 f"{merged[0]}: merged into {merged[1]} since; nothing to restore" if merged
                                 else f"{obj.value} {item.local_id}: deleted since; nothing to restore"))
                    continue
                email = local.record.email
                link = links.get(item.local_id)
                if "email" in item.local and item.local["email"][0] is None:
                    kept.append(((obj, email), f"{email}: created locally by the run; kept (delete it by hand)"))
                    continue
                # A record the run created in the CRM has its email among the values written (an update's fields
                # may all have been blank before, and it is still an update to take back).
                if "email" in item.crm and item.crm["email"][0] is None and not item.local:
                    kept.append(((obj, email), f"{email}: created in the CRM by the run; kept (sync never deletes)"))
                    continue
                current = record_values(local.record)
                base = dict(link.base_values) if link is not None else {}
                touched_later = later.get(str(item.local_id), set())
                # A value that holds what the undo puts back (an earlier undo of this run that the CRM let through
                # only in part restored it) is no newer value to keep.
                for name, (old, new) in item.local.items():
                    if current.get(name) == old != new:
                        continue
                    if current.get(name) != new or (name, Side.LOCAL.value) in touched_later:
                        changed.append(ChangedSince(email, name, Side.LOCAL, new, current.get(name)))
                for name, (old, new) in item.crm.items():
                    if link is not None and base.get(name) == old != new:
                        continue
                    if (name, Side.CRM.value) in touched_later or (link is not None and base.get(name) != new):
                        changed.append(ChangedSince(email, name, Side.CRM, new, base.get(name)))
                restore = {name: old for name, (old, _) in {**item.crm, **item.local}.items()}
                # The same values with their type where the audit kept it: a local old value wins, as in restore.
                exact = {name: v for name, v in item.crm_exact.items() if name not in item.local}
                exact.update(item.exact)
                local_changes = {
                    name: FieldChange(current.get(name), value, "value before the run")
                    for name, value in restore.items() if current.get(name) != value
                }
                crm_send: dict[str, Any] = {}
                crm_changes: dict[str, FieldChange] = {}
                new_base = dict(base)
                # Fields the CRM keeps a value of that the undo blanks locally: their base stays the CRM's value,
                # or the next sync would take that value for a new change in the CRM and pull it back.
                crm_kept: dict[str, Any] = {}
                if link is not None and not link.deleted_in_crm:
                    for name, value in restore.items():
                        mapping = by_local.get(name)
                        if mapping is None or not mapping.pushes or base.get(name) == value:
                            continue
                        # The CRM gets what a push of this value sends, its text: the CRM field gives it its type
                        # (Salesforce stores a number field's text as a number, the Pipedrive adapter sends it as
                        # one, and Pipedrive's text fields take only text). The base stays the text the engine
                        # compares; the kept type goes to the local record (see _write_undo).
                        outgoing = to_crm(mapping, value)
                        if outgoing is None and name not in item.crm:
                            crm_kept[name] = base.get(name)
                            continue  # the run did not write this field to the CRM: a blank does not wipe it there
                        crm_send[mapping.crm_field] = CLEARED if outgoing is None else outgoing
                        reason = "value before the run" if name in item.crm else "both sides hold the restored value"
                        crm_changes[name] = FieldChange(base.get(name), value, reason)
                        new_base[name] = value
                elif item.crm:
                    kept.append(((obj, email), f"{email}: no longer linked to the CRM; CRM values kept"))
                new_base.update({name: value for name, value in restore.items()
                                 if base.get(name) == current.get(name) and name not in crm_kept})
                plans.append(_RecordUndo(item, local, link, local_changes, crm_send, crm_changes, new_base, exact,
                                         crm_kept))
    return plans, kept, changed


async def _changed_in_crm(
    adapter: CrmAdapter,
    mappings: dict[RecordObject, list[FieldMapping]],
    plans: list[_RecordUndo],
    batch_size: int,
) -> list[ChangedSince]:
    """The values the undo would write to the CRM that changed there since the run left them (read from the CRM
    in its batches, by email); each plan's change then starts from the CRM's value now. A record not found by its
    email (deleted or given another one there) is not checked: its write says what the CRM makes of it."""
    changed: list[ChangedSince] = []
    for obj in RecordObject:
        outgoing = [p for p in plans if p.audited.obj is obj and p.crm_send and p.link is not None]
        if not outgoing:
            continue
        by_local = {m.local_field: m for m in mappings.get(obj, [])}
        if isinstance(adapter, ReadsMappedFields):
            adapter.read_mapped_fields(obj, sorted({by_local[name].crm_field for p in outgoing
                                                    for name in p.crm_changes if name in by_local}))
        for start in range(0, len(outgoing), batch_size):
            chunk = outgoing[start : start + batch_size]
            found = await adapter.find_by_emails(obj, [p.local.record.email for p in chunk])
            for plan in chunk:
                record = found.get(plan.local.record.email)
                if record is None or plan.link is None or record.crm_id != plan.link.crm_id:
                    continue
                for name, change in list(plan.crm_changes.items()):
                    mapping = by_local.get(name)
                    if mapping is None or name == "email":
                        continue
                    raw = record.fields.get(mapping.crm_field)
                    now = from_crm(mapping, raw)
                    if now == change.old or crm_holds(mapping, change.old, raw):
                        continue  # the CRM holds what the run left there
                    if now == change.new or crm_holds(mapping, change.new, raw):
                        continue  # the CRM holds the value the undo puts back already
                    changed.append(ChangedSince(plan.local.record.email, name, Side.CRM, change.old, now))
                    plan.crm_changes[name] = FieldChange(now, change.new, change.reason)
    return changed


async def _send_undo(
    adapter: CrmAdapter,
    plans: list[_RecordUndo],
    batch_size: int,
    report: UndoReport,
    log: list[tuple[RecordObject, str, str | None, RecordOutcome, ErrorCategory | None, str | None]],
    failed: set[int],
    written: set[int],
) -> None:
    """Send the CRM side of the undo in the CRM's batches; adds to ``failed`` the plans (by ``id``) the CRM refused,
    and to ``written`` those it wrote, batch by batch (so that they hold what went through when a batch raises)."""
    for obj in RecordObject:
        outgoing = [p for p in plans if p.audited.obj is obj and p.crm_send and p.link is not None]
        for start in range(0, len(outgoing), batch_size):
            chunk = outgoing[start : start + batch_size]
            # The email is the record's key on the wire, and an adapter writes it from there: one the undo puts
            # back goes as the key too, or the CRM would be sent the email the undo takes away.
            records = [OutboundRecord(_email_after(p), p.crm_send, crm_id=p.link.crm_id if p.link else None)
                       for p in chunk]
            results = await adapter.upsert(obj, records)
            for plan, result in zip(chunk, results, strict=True):
                email = plan.local.record.email
                if result.outcome is RecordOutcome.FAILED:
                    failed.add(id(plan))
                    report.kept.append(f"{email}: the CRM refused the old values ({result.message}); nothing restored")
                    log.append((obj, email, plan.link.crm_id if plan.link else None, RecordOutcome.FAILED,
                                result.category, f"the CRM refused the old values: {result.message}"))
                    continue
                if result.outcome is RecordOutcome.UNCHANGED:
                    continue  # the CRM held these values already: nothing was written there
                written.add(id(plan))
                report.plan.add(PlannedChange(obj, email, Side.CRM, ChangeAction.UPDATE, plan.crm_changes))
                report.restored_crm += sum(1 for name in plan.crm_changes if name in plan.audited.crm)
                report.aligned_crm += sum(1 for name in plan.crm_changes if name not in plan.audited.crm)


def _email_after(plan: _RecordUndo) -> str:
    """The email the CRM record is to hold after the undo."""
    restored = plan.crm_changes.get("email")
    return str(restored.new) if restored is not None and restored.new else plan.local.record.email


def _write_undo(
    store: SyncStore,
    integration_id: int,
    undo_id: int,
    run_id: int,
    plans: list[_RecordUndo],
    written: set[int],
    report: UndoReport,
    log: list[tuple[RecordObject, str, str | None, RecordOutcome, ErrorCategory | None, str | None]],
) -> None:
    """Write the local side of the undo, its links and audit rows, one transaction per object."""
    for obj in RecordObject:
        writes: list[PulledWrite] = []
        for plan in (p for p in plans if p.audited.obj is obj):
            email, local = plan.local.record.email, plan.local
            crm_written = plan.crm_changes if id(plan) in written else {}
            record = None
            if plan.local_changes:
                # Values the audit kept with their type (a custom field's 42) go back as they were, not as text.
                exact = {k: plan.exact[k] for k in plan.local_changes if k in plan.exact}
                record = with_custom_values(
                    apply_values(local.record, {k: c.new for k, c in plan.local_changes.items()}), exact)
            audit = typed_custom_audit([
                {"run_id": undo_id, "entity": obj.value, "field": name, "old_value": change.old,
                 "new_value": change.new, "source": "undo", "side": Side.LOCAL.value}
                for name, change in plan.local_changes.items()
            ], local.record, record) + [
                with_audit_types({"run_id": undo_id, "entity": obj.value, "field": name, "old_value": change.old,
                                  "new_value": change.new, "source": "undo", "side": Side.CRM.value},
                                 plan.audited.crm_written.get(name), plan.exact.get(name))
                for name, change in crm_written.items()
            ]
            if plan.link is None:
                if record is not None:
                    store.save_local(obj, local.id, record)
                    store.add_audit(integration_id, [{**row, "entity_id": str(local.id)} for row in audit])
            else:
                # Local edits made since the last sync must still be pushed: marked synced only if none wait.
                waiting = plan.link.local_synced_at is None or plan.link.local_synced_at < local.updated_at
                writes.append(PulledWrite(local.id, record, plan.link.crm_id, plan.new_base,
                                          plan.link.crm_modified_at, needs_push=waiting,
                                          local_version=plan.link.local_synced_at, audit=tuple(audit)))
            if plan.local_changes:
                report.plan.add(PlannedChange(obj, email, Side.LOCAL, ChangeAction.UPDATE, plan.local_changes))
                report.restored_local += len(plan.local_changes)
            sides = [name + " (local)" for name in plan.local_changes]
            sides += [name + " (CRM)" for name in crm_written]
            log.append((obj, email, plan.link.crm_id if plan.link else None,
                        RecordOutcome.UPDATED if sides else RecordOutcome.UNCHANGED, None,
                        f"undo of run {run_id}: " + (", ".join(sides) if sides else "nothing to put back")))
        if writes:
            store.apply_record_writes(integration_id, obj, writes)


@dataclass(frozen=True)
class DueSync:
    """A scheduled sync that is due.

    Attributes:
        integration: the integration.
        direction: ``push_new`` (hourly push of new contacts) or the integration's sync direction.
        due_since: when it fell due (``None`` when it never ran).
    """

    integration: Integration
    direction: SyncDirection
    due_since: datetime | None


#: Runs that push new records: any of them resets the hourly push of new contacts.
PUSHING_DIRECTIONS = (SyncDirection.PUSH_NEW, SyncDirection.PUSH, SyncDirection.BOTH)


def due_syncs(store: SyncStore, integrations: list[Integration], now: datetime) -> list[DueSync]:
    """The scheduled syncs due at ``now``, computed from the last successful runs in the store.

    Runs missed while the app was closed or the machine slept are caught up once, not once per missed slot. An
    integration whose sign-in the CRM refused waits for a reconnect (:func:`waiting_for_reconnect`).
    """
    due: list[DueSync] = []
    for integration in integrations:
        config = integration.sync_config
        if integration.id is None or not config.auto_sync:
            continue
        held = waiting_for_reconnect(store, integration)
        if held is not None and now < held:
            continue
        full = config.direction
        last_full = store.last_successful_run(integration.id, [full, SyncDirection.BOTH])
        next_full = last_full + timedelta(minutes=config.sync_interval) if last_full else None
        if next_full is None or now >= next_full:
            due.append(DueSync(integration, full, next_full))
            continue
        if config.direction is not SyncDirection.PULL:
            last_push = store.last_successful_run(integration.id, PUSHING_DIRECTIONS)
            next_push = last_push + timedelta(minutes=config.push_new_interval) if last_push else None
            if next_push is None or now >= next_push:
                due.append(DueSync(integration, SyncDirection.PUSH_NEW, next_push))
    return due


def waiting_for_reconnect(store: SyncStore, integration: Integration) -> datetime | None:
    """Until when the integration's scheduled syncs wait because the CRM refused its sign-in; ``None``: they don't.

    Each try would be refused the same way (a sign-in request, a notification, every minute while the app is open
    and every cron tick), so the schedule waits until its credentials are set again (a reconnect, ``integration
    update``, a Salesforce sign-in), or a sync by hand gets through, or one full sync interval has passed since the
    refusal (a CRM that refused by mistake is tried again then).
    """
    if integration.id is None:
        return None
    refused = store.sign_in_refused_at(integration.id)
    if refused is None or (integration.keys_set_at is not None and integration.keys_set_at >= refused):
        return None
    return refused + timedelta(minutes=integration.sync_config.sync_interval)


def next_due_at(store: SyncStore, integration: Integration) -> datetime | None:
    """When the integration's next scheduled sync falls due (``None``: auto-sync off)."""
    config = integration.sync_config
    if integration.id is None or not config.auto_sync:
        return None
    full = config.direction
    times = []
    last_full = store.last_successful_run(integration.id, [full, SyncDirection.BOTH])
    times.append(last_full + timedelta(minutes=config.sync_interval) if last_full else None)
    if config.direction is not SyncDirection.PULL:
        last_push = store.last_successful_run(integration.id, PUSHING_DIRECTIONS)
        times.append(last_push + timedelta(minutes=config.push_new_interval) if last_push else None)
    known = [t for t in times if t is not None]
    soonest = utcnow() if len(known) < len(times) else min(known)  # a sync that never ran is due now
    held = waiting_for_reconnect(store, integration)
    return max(soonest, held) if held is not None else soonest
