"""Conflict resolution, undo of a run and the schedule: the sync actions besides a run itself."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crm_desktop.domain.models import Integration, SyncDirection
from crm_desktop.domain.outcomes import RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmAdapter, OutboundRecord
from crm_desktop.providers.errors import ProviderError
from crm_desktop.store.models import ConflictStatus, SyncRunStatus, SyncTrigger, utcnow
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.sync.engine import SyncAlreadyRunning, SyncDirectionChoice
from crm_desktop.sync.mapping import CLEARED, FieldMapping, Value, apply_values, record_values, to_crm

logger = logging.getLogger(__name__)


class ConflictResolutionError(Exception):
    """A conflict cannot be resolved as asked; the message says why."""


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
        take: ``crm`` or ``local``; or ``None`` with ``value`` for a typed value.
        value: the typed value (blank text means blank).

    Raises:
        ConflictResolutionError: when the conflict is closed, or the decision is unclear.
        ProviderError: when the CRM refuses the write (the conflict stays open).
    """
    assert integration.id is not None
    conflict = store.get_conflict(conflict_id)
    if conflict.status is not ConflictStatus.OPEN:
        raise ConflictResolutionError(f"conflict {conflict_id} is already resolved ({conflict.resolution})")
    if conflict.integration_id != integration.id:
        raise ConflictResolutionError(f"conflict {conflict_id} belongs to another integration")
    if take not in (None, "crm", "local") or (take is None) == (value is None):
        raise ConflictResolutionError("choose exactly one: take crm, take local, or a typed value")
    obj = conflict.object
    mapping = next((m for m in mappings.get(obj, []) if m.local_field == conflict.field), None)
    if mapping is None:
        raise ConflictResolutionError(f"field {conflict.field} is no longer mapped; map it again to resolve")
    kept: Value
    if take == "crm":
        kept = conflict.crm_value
    elif take == "local":
        kept = conflict.local_value
    else:
        kept = (value or "").strip() or None
    local = store.local_records(obj, [conflict.local_id]).get(conflict.local_id)
    if local is None:
        raise ConflictResolutionError(f"the local record of conflict {conflict_id} was deleted")
    # Validate (and normalise) the kept value locally before anything is written to either side.
    updated = apply_values(local.record, {conflict.field: kept})
    if take is None:
        kept = record_values(updated).get(conflict.field, kept)
    link = store.links_for_local(integration.id, obj, [conflict.local_id]).get(conflict.local_id)
    audit: list[dict[str, Any]] = []
    source = f"conflict:{conflict_id}"
    if kept != conflict.crm_value:
        if link is None:
            raise ConflictResolutionError("the record is not linked to the CRM any more")
        outgoing = to_crm(mapping, kept)
        fields = {mapping.crm_field: CLEARED if outgoing is None else outgoing}
        outbound = OutboundRecord(local.record.email, fields, crm_id=link.crm_id)
        [result] = await adapter.upsert(obj, [outbound])
        if result.outcome is RecordOutcome.FAILED:
            raise ProviderError(f"the CRM refused the value: {result.message}", category=result.category)
        audit.append({"entity": obj.value, "entity_id": str(local.id), "field": conflict.field,
                      "old_value": conflict.crm_value, "new_value": kept, "source": source, "side": "crm"})
    # Local edits made since the last sync must still be pushed: the sync mark moves only if none are waiting.
    synced_at = link.local_synced_at if link is not None else None
    if kept != conflict.local_value:
        _, saved_at = store.save_local(obj, local.id, updated)
        if synced_at is not None and synced_at >= local.updated_at:
            synced_at = saved_at
        audit.append({"entity": obj.value, "entity_id": str(local.id), "field": conflict.field,
                      "old_value": conflict.local_value, "new_value": kept, "source": source, "side": "local"})
    if link is not None:
        base = dict(link.base_values)
        base[conflict.field] = kept
        store.save_link(integration.id, obj, local.id, link.crm_id, base_values=base, local_synced_at=synced_at)
    store.add_audit(integration.id, audit)
    store.resolve_conflict(conflict_id, take or "value", kept)
    return kept


@dataclass
class UndoReport:
    """What undoing a run restored.

    Attributes:
        run_id: the undo's own run.
        restored_local: local fields set back.
        restored_crm: CRM fields set back.
        kept: records the undo could not take back, with the reason.
    """

    run_id: int
    restored_local: int = 0
    restored_crm: int = 0
    kept: list[str] = field(default_factory=list)


async def undo_run(
    store: SyncStore,
    adapter: CrmAdapter,
    integration: Integration,
    mappings: dict[RecordObject, list[FieldMapping]],
    run_id: int,
) -> UndoReport:
    """Restore the values a run changed, on both sides, from its audit rows; the undo is a run of its own.

    Raises:
        ConflictResolutionError: when the run belongs to another integration or is still running.
        SyncAlreadyRunning: when a sync of the integration is running.
    """
    assert integration.id is not None
    target = store.get_run(run_id)
    if target.integration_id != integration.id:
        raise ConflictResolutionError(f"run {run_id} belongs to another integration")
    if target.status is SyncRunStatus.RUNNING:
        raise ConflictResolutionError(f"run {run_id} is still running")
    rows = store.audit_for_run(run_id)
    if not store.acquire_lock(integration.id):
        raise SyncAlreadyRunning(f"a sync of {integration.name!r} is running; undo it afterwards")
    undo_id = store.start_run(integration.id, SyncTrigger.MANUAL, "undo", message=f"undo of run {run_id}")
    report = UndoReport(undo_id)
    status = SyncRunStatus.SUCCEEDED
    try:
        # The oldest value of each field wins: a run may touch one field twice (pull, then conflict).
        local_old: dict[tuple[str, str], dict[str, Value]] = defaultdict(dict)
        crm_old: dict[tuple[str, str], dict[str, Value]] = defaultdict(dict)
        for row in reversed(rows):
            target_map = local_old if row.side == "local" else crm_old
            target_map[(row.entity, row.entity_id)][row.field] = row.old_value
        audit: list[dict[str, Any]] = []
        for entity, entity_id in dict.fromkeys([*local_old, *crm_old]):
            restored = await _undo_record(
                store, adapter, integration.id, mappings, undo_id, RecordObject(entity), int(entity_id),
                local_old.get((entity, entity_id), {}), crm_old.get((entity, entity_id), {}), report, audit,
            )
            if not restored:
                status = SyncRunStatus.PARTIAL
        store.add_audit(integration.id, audit)
    except BaseException:
        status = SyncRunStatus.FAILED
        raise
    finally:
        store.finish_run(undo_id, status, updated=report.restored_local + report.restored_crm,
                         api_calls=adapter.api_calls, message=f"undo of run {run_id}")
        store.release_lock(integration.id)
    return report


async def _undo_record(
    store: SyncStore,
    adapter: CrmAdapter,
    integration_id: int,
    mappings: dict[RecordObject, list[FieldMapping]],
    undo_id: int,
    obj: RecordObject,
    local_id: int,
    pulled: dict[str, Value],
    pushed: dict[str, Value],
    report: UndoReport,
    audit: list[dict[str, Any]],
) -> bool:
    """Give one record's fields the values they had before the run, on both sides; ``False`` when the CRM refused.

    A pulled field gets back its old local value, a pushed one the value both sides agreed on before; both sides
    and the merge base then hold it, so the next sync neither redoes the run nor writes anything.
    """
    local = store.local_records(obj, [local_id]).get(local_id)
    if local is None:
        report.kept.append(f"{obj.value} {local_id}: deleted since; nothing to restore")
        return True
    email = local.record.email
    if "email" in pulled and pulled["email"] is None:
        report.kept.append(f"{email}: created locally by the run; kept (delete it by hand)")
        return True
    if pushed and not pulled and all(value is None for value in pushed.values()):
        report.kept.append(f"{email}: created in the CRM by the run; kept (sync never deletes)")
        return True
    restore = {**pushed, **pulled}
    by_local = {m.local_field: m for m in mappings.get(obj, [])}
    link = store.links_for_local(integration_id, obj, [local_id]).get(local_id)
    base = dict(link.base_values) if link is not None else {}
    send: dict[str, Any] = {}
    sent: dict[str, Value] = {}
    if link is not None and not link.deleted_in_crm:
        for name, value in restore.items():
            mapping = by_local.get(name)
            if mapping is None or not mapping.pushes or base.get(name) == value:
                continue
            outgoing = to_crm(mapping, value)
            if outgoing is None and name not in pushed:
                continue  # the run did not write this field to the CRM: a blank does not wipe it there
            send[mapping.crm_field] = CLEARED if outgoing is None else outgoing
            sent[name] = value
    elif pushed:
        report.kept.append(f"{email}: no longer linked to the CRM; CRM values kept")
    if send and link is not None:
        [result] = await adapter.upsert(obj, [OutboundRecord(email, send, crm_id=link.crm_id)])
        if result.outcome is RecordOutcome.FAILED:
            report.kept.append(f"{email}: the CRM refused the old values ({result.message}); nothing restored")
            return False
        report.restored_crm += len(send)
        audit.extend({"run_id": undo_id, "entity": obj.value, "entity_id": str(local_id), "field": name,
                      "old_value": base.get(name), "new_value": value, "source": "undo", "side": "crm"}
                     for name, value in sent.items())
    current = record_values(local.record)
    local_changes = {name: value for name, value in restore.items() if current.get(name) != value}
    synced_at = link.local_synced_at if link is not None else None
    if local_changes:
        _, updated_at = store.save_local(obj, local_id, apply_values(local.record, local_changes))
        report.restored_local += len(local_changes)
        audit.extend({"run_id": undo_id, "entity": obj.value, "entity_id": str(local_id), "field": name,
                      "old_value": current.get(name), "new_value": value, "source": "undo", "side": "local"}
                     for name, value in local_changes.items())
        if synced_at is not None and synced_at >= local.updated_at:
            synced_at = updated_at  # nothing else was waiting to be pushed
    if link is not None:
        base.update(sent)
        base.update({name: value for name, value in restore.items() if base.get(name) == current.get(name)})
        store.save_link(integration_id, obj, local_id, link.crm_id, base_values=base, local_synced_at=synced_at)
    return True


@dataclass(frozen=True)
class DueSync:
    """A scheduled sync that is due.

    Attributes:
        integration: the integration.
        direction: ``push_new`` (hourly push of new contacts) or the integration's sync direction.
        due_since: when it fell due (``None`` when it never ran).
    """

    integration: Integration
    direction: SyncDirectionChoice
    due_since: datetime | None


_CONFIG_DIRECTION = {
    SyncDirection.PUSH: SyncDirectionChoice.PUSH,
    SyncDirection.PULL: SyncDirectionChoice.PULL,
    SyncDirection.BIDIRECTIONAL: SyncDirectionChoice.BOTH,
}


def due_syncs(store: SyncStore, integrations: list[Integration], now: datetime) -> list[DueSync]:
    """The scheduled syncs due at ``now``, computed from the last successful runs in the store.

    Runs missed while the app was closed or the machine slept are caught up once, not once per missed slot.
    """
    due: list[DueSync] = []
    for integration in integrations:
        config = integration.sync_config
        if integration.id is None or not config.auto_sync:
            continue
        full = _CONFIG_DIRECTION[config.direction]
        last_full = store.last_successful_run(integration.id, [full.value, "both"])
        next_full = last_full + timedelta(minutes=config.sync_interval) if last_full else None
        if next_full is None or now >= next_full:
            due.append(DueSync(integration, full, next_full))
            continue
        if config.direction is not SyncDirection.PULL:
            last_push = store.last_successful_run(integration.id, ["push_new", "push", "both"])
            next_push = last_push + timedelta(minutes=config.push_new_interval) if last_push else None
            if next_push is None or now >= next_push:
                due.append(DueSync(integration, SyncDirectionChoice.PUSH_NEW, next_push))
    return due


def next_due_at(store: SyncStore, integration: Integration) -> datetime | None:
    """When the integration's next scheduled sync falls due (``None``: auto-sync off)."""
    config = integration.sync_config
    if integration.id is None or not config.auto_sync:
        return None
    full = _CONFIG_DIRECTION[config.direction]
    times = []
    last_full = store.last_successful_run(integration.id, [full.value, "both"])
    times.append(last_full + timedelta(minutes=config.sync_interval) if last_full else None)
    if config.direction is not SyncDirection.PULL:
        last_push = store.last_successful_run(integration.id, ["push_new", "push", "both"])
        times.append(last_push + timedelta(minutes=config.push_new_interval) if last_push else None)
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return utcnow()  # a sync that never ran is due now
    return min(known)
