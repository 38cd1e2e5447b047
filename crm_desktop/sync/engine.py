"""The sync engine: pull, three-way merge per field, push through a crash-safe outbox, run history and dry runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Contact, Integration, Lead
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.providers.contract import CrmAdapter, CrmRecord, OutboundRecord, RecordResult
from crm_desktop.providers.errors import AuthError, BudgetExhaustedError, ProviderError
from crm_desktop.store.models import ConflictRule, SyncRunStatus, SyncTrigger
from crm_desktop.store.sync_store import Link, LocalRecord, OutboxItem, SyncStore
from crm_desktop.sync.mapping import (
    CLEARED,
    FieldMapping,
    Value,
    apply_values,
    crm_holds,
    from_crm,
    record_values,
    to_crm,
    values_hash,
)

logger = logging.getLogger(__name__)

Progress = Callable[["SyncProgress"], None]


class SyncDirectionChoice(StrEnum):
    """Which way a run goes: ``push_new`` is the hourly push of records never synced."""

    PUSH = "push"
    PULL = "pull"
    BOTH = "both"
    PUSH_NEW = "push_new"


class SyncAlreadyRunning(Exception):
    """Another run of the same integration holds the lock (in this or another process)."""


@dataclass
class SyncProgress:
    """Live progress of a run, for the Sync Monitor."""

    integration: str
    phase: str
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class PlannedChange:
    """One change a run makes (or, in a dry run, would make).

    Attributes:
        object: contact or lead.
        email: the record.
        side: ``crm`` (written to the CRM) or ``local`` (written to the local store).
        action: ``create``, ``update``, ``conflict`` or ``skip``.
        fields: field -> (old, new) values.
        reason: why a record is skipped or how a conflict was decided.
    """

    object: RecordObject
    email: str
    side: str
    action: str
    fields: dict[str, tuple[Value, Value]] = field(default_factory=dict)
    reason: str = ""


@dataclass
class SyncResult:
    """What a run did: counts, per-record outcomes, the plan of a dry run.

    Attributes:
        run_id: the ``sync_runs`` row (``None`` for a dry run, which writes nothing).
        status: succeeded, partial or failed.
        counts: created / updated / unchanged / failed / conflicts.
        api_calls: requests sent to the CRM.
        changes: every change made or planned.
        failures: (email, category, message) of failed records.
        message: a sentence for a run that stopped early.
        auth_failed: the run stopped because the CRM refused the integration's credentials (reconnect it).
    """

    run_id: int | None
    status: SyncRunStatus
    counts: dict[str, int]
    api_calls: int
    changes: list[PlannedChange]
    failures: list[tuple[str, str, str]]
    message: str | None = None
    duration: float = 0.0
    auth_failed: bool = False


class _Run:
    """Mutable bookkeeping of one run."""

    def __init__(self, run_id: int | None) -> None:
        self.run_id = run_id
        self.counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0, "conflicts": 0}
        self.changes: list[PlannedChange] = []
        self.failures: list[tuple[str, str, str]] = []
        self.outcomes: list[tuple[RecordObject, str, str | None, RecordOutcome, ErrorCategory | None, str | None]] = []
        #: (object, local id) -> fields this run left to the marketer (a dry run keeps them only here).
        self.held: dict[tuple[RecordObject, int], set[str]] = {}

    def skip(self, obj: RecordObject, key: str, crm_id: str | None, category: ErrorCategory | None, reason: str,
             *, side: str) -> None:
        """Record a skipped record in the log and in the plan (``side``: where it would have been written)."""
        self.outcomes.append((obj, key, crm_id, RecordOutcome.SKIPPED, category, reason))
        self.changes.append(PlannedChange(obj, key, side, "skip", reason=reason))


def _decide(rule: ConflictRule, local: Value, crm: Value, local_at: datetime | None, crm_at: datetime | None) -> str:
    """Which side wins a field changed on both sides: ``local``, ``crm`` or ``manual``."""
    if rule is ConflictRule.MANUAL:
        return "manual"
    if rule is ConflictRule.PREFER_CRM:
        return "crm"
    if rule is ConflictRule.PREFER_LOCAL:
        return "local"
    if rule is ConflictRule.PREFER_CRM_UNLESS_BLANK:
        return "crm" if crm is not None else "local"
    if rule is ConflictRule.PREFER_LOCAL_UNLESS_BLANK:
        return "local" if local is not None else "crm"
    if crm_at is None:
        return "local"
    if local_at is None:
        return "crm"
    return "crm" if crm_at > local_at else "local"


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
    ) -> None:
        assert integration.id is not None
        self.store = store
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
        direction: SyncDirectionChoice = SyncDirectionChoice.BOTH,
        trigger: SyncTrigger = SyncTrigger.MANUAL,
        *,
        dry_run: bool = False,
        objects: Sequence[RecordObject] = (RecordObject.CONTACT, RecordObject.LEAD),
    ) -> SyncResult:
        """Run one sync. A dry run computes the full plan against the CRM and writes nothing anywhere.

        Raises:
            SyncAlreadyRunning: when another run of this integration holds the lock.
        """
        started = time.monotonic()
        if dry_run:
            run = _Run(None)
            try:
                for obj in objects:
                    if direction in (SyncDirectionChoice.PULL, SyncDirectionChoice.BOTH):
                        await self._pull(obj, run, dry_run=True)
                    if direction is not SyncDirectionChoice.PULL:
                        await self._push(obj, run, dry_run=True, only_new=direction is SyncDirectionChoice.PUSH_NEW)
            finally:
                await self.adapter.aclose()
            return SyncResult(None, SyncRunStatus.SUCCEEDED, run.counts, self.adapter.api_calls, run.changes,
                              run.failures, duration=time.monotonic() - started)
        if not self.store.acquire_lock(self.integration_id):
            raise SyncAlreadyRunning(f"a sync of {self.integration.name!r} is already running")
        run_id = self.store.start_run(self.integration_id, trigger, direction.value)
        run = _Run(run_id)
        status = SyncRunStatus.SUCCEEDED
        message: str | None = None
        auth_failed = False
        try:
            self.store.heartbeat(self.integration_id, run_id)
            for obj in objects:
                if not self.mappings.get(obj):
                    continue
                await self._resume_outbox(obj, run)
                if direction in (SyncDirectionChoice.PULL, SyncDirectionChoice.BOTH):
                    await self._pull(obj, run, dry_run=False)
                if direction is not SyncDirectionChoice.PULL:
                    await self._push(obj, run, dry_run=False, only_new=direction is SyncDirectionChoice.PUSH_NEW)
        except AuthError as exc:
            status, message, auth_failed = SyncRunStatus.FAILED, str(exc), True
        except BudgetExhaustedError as exc:
            status, message = SyncRunStatus.PARTIAL, str(exc)
        except ProviderError as exc:
            status, message = SyncRunStatus.FAILED, str(exc)
        except BaseException as exc:
            status, message = SyncRunStatus.FAILED, f"stopped: {type(exc).__name__}"
            raise
        finally:
            if status is SyncRunStatus.SUCCEEDED and run.counts["failed"]:
                status = SyncRunStatus.PARTIAL
            self.store.add_record_outcomes(run_id, run.outcomes)
            self.store.finish_run(
                run_id,
                status,
                api_calls=self.adapter.api_calls,
                message=message,
                total=sum(run.counts[k] for k in ("created", "updated", "unchanged", "failed")),
                **run.counts,
            )
            self.store.release_lock(self.integration_id)
            await self.adapter.aclose()
        return SyncResult(run_id, status, run.counts, self.adapter.api_calls, run.changes, run.failures, message,
                          time.monotonic() - started, auth_failed)

    # -- pull ----------------------------------------------------------------------------------
    async def _pull(self, obj: RecordObject, run: _Run, *, dry_run: bool) -> None:
        mappings = [m for m in self.mappings.get(obj, []) if m.direction.value != "off"]
        if not mappings:
            return
        cursor = self.store.get_cursor(self.integration_id, obj)
        done = 0
        async for page in self.adapter.changes_since(obj, cursor):
            links, audit, conflicts = await self._merge_page(obj, page.records, mappings, run, dry_run=dry_run)
            if not dry_run:
                self.store.commit_pull_page(self.integration_id, obj, page.cursor, links, audit, conflicts)
                self.store.heartbeat(self.integration_id, run.run_id)
            done += len(page.records)
            self._report(f"pulling {obj.value}s", done, done)

    async def _merge_page(
        self,
        obj: RecordObject,
        records: Sequence[CrmRecord],
        mappings: list[FieldMapping],
        run: _Run,
        *,
        dry_run: bool,
    ) -> tuple[list[Any], list[dict[str, Any]], list[dict[str, Any]]]:
        links_out: list[Any] = []
        audit: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        by_crm = self.store.links_for_crm(self.integration_id, obj, [r.crm_id for r in records])
        linked_ids = [link.local_id for link in by_crm.values()]
        locals_by_id = self.store.local_records(obj, linked_ids) if linked_ids else {}
        unlinked_emails = [r.email for r in records if r.crm_id not in by_crm and r.email]
        locals_by_email = self.store.local_by_emails(obj, unlinked_emails) if unlinked_emails else {}
        email_links = self.store.links_for_local(
            self.integration_id, obj, [rec.id for rec in locals_by_email.values()]
        ) if locals_by_email else {}
        # Fields waiting for the marketer in Conflicts, for the whole page in one query.
        local_ids = [*locals_by_id, *(rec.id for rec in locals_by_email.values())]
        held = self.store.open_conflict_fields_of(self.integration_id, obj, local_ids) if local_ids else {}
        for record in records:
            link = by_crm.get(record.crm_id)
            local = locals_by_id.get(link.local_id) if link else locals_by_email.get(record.email)
            if link is None and local is not None and local.id in email_links:
                # The local record is linked to another CRM record: a duplicate in the CRM. Keep the first link.
                run.skip(obj, record.email, record.crm_id, ErrorCategory.DUPLICATE,
                         "another CRM record with this email is already linked", side="local")
                continue
            crm_values = {m.local_field: from_crm(m, record.fields.get(m.crm_field)) for m in mappings}
            if m_email := crm_values.get("email"):
                crm_values["email"] = m_email
            elif record.email:
                crm_values["email"] = record.email
            try:
                outcome = self._merge_record(obj, record, crm_values, local, link, mappings, run, dry_run,
                                             audit, conflicts, held.get(local.id, set()) if local else set())
            except InvalidRecordError as exc:
                problem = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems)
                run.counts["failed"] += 1
                run.failures.append((record.email, ErrorCategory.VALIDATION.value, problem))
                run.outcomes.append((obj, record.email or record.crm_id, record.crm_id, RecordOutcome.FAILED,
                                     ErrorCategory.VALIDATION, f"pulled values refused locally: {problem}"))
                continue
            if outcome is not None:
                links_out.append(outcome)
        return links_out, audit, conflicts

    def _merge_record(
        self,
        obj: RecordObject,
        record: CrmRecord,
        crm_values: dict[str, Value],
        local: LocalRecord | None,
        link: Link | None,
        mappings: list[FieldMapping],
        run: _Run,
        dry_run: bool,
        audit: list[dict[str, Any]],
        conflicts: list[dict[str, Any]],
        open_fields: set[str],
    ) -> tuple[int, str, dict[str, Any], datetime | None, datetime | None] | None:
        key = crm_values.get("email") or record.email
        if local is None:
            if not key:
                run.skip(obj, record.crm_id, record.crm_id, None, "the CRM record has no email", side="local")
                return None
            pulled = {m.local_field: crm_values.get(m.local_field) for m in mappings if m.pulls}
            pulled["email"] = key
            empty: Contact | Lead = Contact(email=key) if obj is RecordObject.CONTACT else Lead(email=key)
            created = apply_values(empty, {k: v for k, v in pulled.items() if k != "email"})
            changes: dict[str, tuple[Value, Value]] = {k: (None, v) for k, v in pulled.items() if v is not None}
            run.changes.append(PlannedChange(obj, key, "local", "create", changes))
            run.counts["created"] += 1
            run.outcomes.append((obj, key, record.crm_id, RecordOutcome.CREATED, None, "pulled from the CRM"))
            if dry_run:
                return None
            local_id, updated_at = self.store.save_local(obj, None, created)
            audit.extend(self._audit(run, obj, str(local_id), "local", "pull", changes))
            base = {m.local_field: crm_values.get(m.local_field) for m in mappings}
            return (local_id, record.crm_id, base, record.modified_at, updated_at)

        local_values = record_values(local.record)
        base = dict(link.base_values) if link else {}
        new_base = dict(base)
        local_changes: dict[str, Value] = {}
        needs_push = False
        decided: dict[str, tuple[Value, Value]] = {}
        for mapping in mappings:
            name = mapping.local_field
            crm_value, local_value = crm_values.get(name), local_values.get(name)
            base_value = base.get(name) if link else None
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
            if not mapping.pushes or (crm_changed and not local_changed):
                winner = "crm"
            elif local_changed and not crm_changed:
                winner = "local"
            else:
                winner = _decide(mapping.conflict_rule, local_value, crm_value, local.updated_at, record.modified_at)
                run.counts["conflicts"] += 1
                if winner == "manual":
                    conflicts.append(
                        {
                            "run_id": run.run_id,
                            "object": obj,
                            "local_id": local.id,
                            "crm_id": record.crm_id,
                            "record_key": local.record.email,
                            "field": name,
                            "local_value": local_value,
                            "crm_value": crm_value,
                            "base_value": base_value,
                            "local_changed_at": local.updated_at,
                            "crm_changed_at": record.modified_at,
                        }
                    )
                    run.changes.append(PlannedChange(obj, local.record.email, "local", "conflict",
                                                     {name: (local_value, crm_value)}, "waits for you (manual rule)"))
                    run.held.setdefault((obj, local.id), set()).add(name)
                    run.outcomes.append((obj, local.record.email, record.crm_id, RecordOutcome.CONFLICT, None,
                                         f"{name}: changed on both sides; waits in Conflicts"))
                    continue
                decided[name] = (local_value, crm_value)
            if winner == "crm":
                if crm_value is None and local_value is not None and not mapping.blank_wipes:
                    # A blank never wipes a value: keep ours and send it back.
                    new_base[name] = None
                    needs_push = needs_push or mapping.pushes
                    continue
                local_changes[name] = crm_value
                new_base[name] = crm_value
            else:
                needs_push = True  # the push phase sends the local value (base stays where it was)
        for name, (local_value, crm_value) in decided.items():
            side = "crm" if name in local_changes else "local"
            kept = f"decided by rule: {side} value kept"
            run.changes.append(
                PlannedChange(obj, local.record.email, side, "conflict", {name: (local_value, crm_value)}, kept)
            )
        synced_at: datetime | None = local.updated_at
        if local_changes:
            pulled_changes: dict[str, tuple[Value, Value]] = {
                k: (local_values.get(k), v) for k, v in local_changes.items()
            }
            run.changes.append(PlannedChange(obj, local.record.email, "local", "update", pulled_changes))
            run.counts["updated"] += 1
            run.outcomes.append((obj, local.record.email, record.crm_id, RecordOutcome.UPDATED, None,
                                 "pulled: " + ", ".join(sorted(local_changes))))
            if not dry_run:
                updated = apply_values(local.record, local_changes)
                _, synced_at = self.store.save_local(obj, local.id, updated)
                audit.extend(self._audit(run, obj, str(local.id), "local", "pull", pulled_changes))
        if dry_run:
            return None
        if needs_push:
            synced_at = None  # the push phase looks at this record
        return (local.id, record.crm_id, new_base, record.modified_at, synced_at)

    @staticmethod
    def _audit(run: _Run, obj: RecordObject, entity_id: str, side: str, source: str,
               changes: dict[str, tuple[Value, Value]]) -> list[dict[str, Any]]:
        return [
            {"run_id": run.run_id, "entity": obj.value, "entity_id": entity_id, "field": name,
             "old_value": old, "new_value": new, "source": source, "side": side}
            for name, (old, new) in changes.items()
        ]

    # -- push ----------------------------------------------------------------------------------
    def _outbound(
        self, local: LocalRecord, link: Link | None, mappings: list[FieldMapping], held: frozenset[str] = frozenset()
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, tuple[Value, Value]], str] | None:
        """(CRM fields to send, base after, changed fields, hash of all pushed values); ``None`` when nothing.

        ``held`` fields have an open conflict: they wait for the marketer and are never sent.
        """
        values = record_values(local.record)
        pushable = [m for m in mappings if m.pushes]
        full = {m.crm_field: to_crm(m, values.get(m.local_field)) for m in pushable}
        digest = values_hash(full)
        base = dict(link.base_values) if link else {}
        send: dict[str, Any] = {}
        changed: dict[str, tuple[Value, Value]] = {}
        new_base = dict(base)
        for mapping in pushable:
            name = mapping.local_field
            value = values.get(name)
            if (link is not None and value == base.get(name)) or name in held:
                continue
            outgoing = full[mapping.crm_field]
            if outgoing is None and not mapping.blank_wipes:
                continue  # a blank never wipes the CRM's value
            send[mapping.crm_field] = CLEARED if outgoing is None else outgoing
            changed[name] = (base.get(name), value)
            new_base[name] = value
        if link is not None and not send:
            return None
        return send, new_base, changed, digest

    async def _push(self, obj: RecordObject, run: _Run, *, dry_run: bool, only_new: bool) -> None:
        mappings = self.mappings.get(obj, [])
        if not any(m.pushes for m in mappings):
            return
        after_id = 0
        done = 0
        while True:
            if only_new:
                ids = self.store.unlinked_local_ids(self.integration_id, obj, after_id, self.batch_size)
            else:
                ids = self.store.changed_local_ids(self.integration_id, obj, after_id, self.batch_size)
            if not ids:
                break
            after_id = ids[-1]
            records = self.store.local_records(obj, ids)
            links = self.store.links_for_local(self.integration_id, obj, ids)
            held = self.store.open_conflict_fields_of(self.integration_id, obj, ids)
            for (held_obj, local_id), names in run.held.items():
                if held_obj is obj and local_id in records:
                    held[local_id] = held.get(local_id, set()) | names
            items: list[dict[str, Any]] = []
            unchanged: list[tuple[LocalRecord, Link]] = []
            plans: dict[str, dict[str, tuple[Value, Value]]] = {}
            for local_id in ids:
                local = records[local_id]
                link = links.get(local_id)
                outbound = self._outbound(local, link, mappings, frozenset(held.get(local_id, ())))
                if outbound is None:
                    assert link is not None
                    unchanged.append((local, link))
                    continue
                send, new_base, changed, digest = outbound
                plans[local.record.email] = changed
                items.append(
                    {
                        "object": obj,
                        "local_id": local.id,
                        "email": local.record.email,
                        "crm_id": link.crm_id if link else None,
                        "fields": send,
                        "base_after": new_base,
                        "values_hash": digest,
                        "local_version": local.updated_at,
                    }
                )
            run.counts["unchanged"] += len(unchanged)
            if dry_run:
                await self._plan_push(obj, items, plans, run)
            else:
                for local, link in unchanged:
                    self.store.save_link(self.integration_id, obj, local.id, link.crm_id,
                                         local_synced_at=local.updated_at)
                if items:
                    self.store.add_outbox(self.integration_id, run.run_id, items)
                    await self._send(obj, self.store.pending_outbox(self.integration_id, obj), run, plans)
                self.store.heartbeat(self.integration_id, run.run_id)
            done += len(ids)
            self._report(f"pushing {obj.value}s", done, done)

    async def _plan_push(
        self, obj: RecordObject, items: list[dict[str, Any]], plans: dict[str, dict[str, tuple[Value, Value]]],
        run: _Run,
    ) -> None:
        if not items:
            return
        existing = await self.adapter.find_by_emails(obj, [i["email"] for i in items])
        for item in items:
            found = existing.get(item["email"])
            if item["crm_id"] is None and found is None:
                run.counts["created"] += 1
                created: dict[str, tuple[Value, Value]] = {k: (None, v) for k, (_, v) in plans[item["email"]].items()}
                run.changes.append(PlannedChange(obj, item["email"], "crm", "create", created))
                continue
            current = found.fields if found else {}
            changes: dict[str, tuple[Value, Value]] = {}
            for crm_field, value in item["fields"].items():
                before = from_crm_plain(current.get(crm_field))
                if before != from_crm_plain(value):
                    changes[crm_field] = (before, from_crm_plain(value))
            if changes:
                run.counts["updated"] += 1
                run.changes.append(PlannedChange(obj, item["email"], "crm", "update", changes))
            else:
                run.counts["unchanged"] += 1

    async def _resume_outbox(self, obj: RecordObject, run: _Run) -> None:
        """Send writes a crashed run recorded but never marked done; matching by CRM id or email avoids duplicates."""
        pending = self.store.pending_outbox(self.integration_id, obj)
        if pending:
            logger.info("resuming %d pending writes of %s", len(pending), self.integration.name)
            await self._send(obj, pending, run, {})

    async def _send(
        self, obj: RecordObject, pending: list[OutboxItem], run: _Run,
        plans: dict[str, dict[str, tuple[Value, Value]]],
    ) -> None:
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
            # A write resumed after a crash has no plan: its old values are the link's base, not yet moved.
            resumed = {i.local_id for i in batch if i.email not in plans}
            old_bases = {
                local_id: link.base_values
                for local_id, link in self.store.links_for_local(self.integration_id, obj, list(resumed)).items()
            } if resumed else {}
            outbound = [OutboundRecord(email=i.email, fields=i.fields, crm_id=i.crm_id) for i in batch]
            results = await self.adapter.upsert(obj, outbound)
            done: list[tuple[OutboxItem, str, datetime | None]] = []
            failed: list[tuple[OutboxItem, str]] = list(superseded)
            audit: list[dict[str, Any]] = []
            for item, result in zip(batch, results, strict=True):
                self._count_push(obj, item, result, run)
                if result.outcome is RecordOutcome.FAILED or not result.crm_id:
                    failed.append((item, result.message or "failed"))
                    if result.category is ErrorCategory.NOT_FOUND and item.crm_id:
                        self.store.mark_deleted_in_crm(self.integration_id, obj, item.local_id)
                    continue
                done.append((item, result.crm_id, item.local_version))
                changed = plans.get(item.email) or _resumed_changes(item, old_bases.get(item.local_id))
                # A resumed write the CRM already holds was made by the crashed run: audit it, or undo cannot see it.
                if result.outcome is not RecordOutcome.UNCHANGED or (changed and item.local_id in resumed):
                    audit.extend(self._audit(run, obj, str(item.local_id), "crm", "push", changed))
                    action = "create" if result.outcome is RecordOutcome.CREATED else "update"
                    run.changes.append(PlannedChange(obj, item.email, "crm", action, changed))
            # The audit rows go in the same transaction: a crash cannot leave a CRM write that undo cannot see.
            self.store.complete_outbox(self.integration_id, done, failed, audit)

    def _count_push(self, obj: RecordObject, item: OutboxItem, result: RecordResult, run: _Run) -> None:
        outcome = result.outcome
        if outcome is RecordOutcome.FAILED and result.category is ErrorCategory.NOT_FOUND and item.crm_id:
            run.counts["unchanged"] += 0
            run.skip(obj, item.email, item.crm_id, ErrorCategory.NOT_FOUND, "deleted in the CRM; not re-created",
                     side="crm")
            return
        key = {RecordOutcome.CREATED: "created", RecordOutcome.UPDATED: "updated",
               RecordOutcome.UNCHANGED: "unchanged"}.get(outcome, "failed")
        run.counts[key] += 1
        if key == "failed":
            category = result.category or ErrorCategory.SERVER
            run.failures.append((item.email, category.value, result.message or "failed"))
        run.outcomes.append((obj, item.email, result.crm_id, outcome, result.category, result.message))


def _resumed_changes(item: OutboxItem, old_base: dict[str, Any] | None) -> dict[str, tuple[Value, Value]]:
    """The fields a resumed write changed: against the link's base when linked, all of them for a new record."""
    if old_base is None:
        return {k: (None, v) for k, v in item.base_after.items() if v is not None}
    return {k: (old_base.get(k), v) for k, v in item.base_after.items() if old_base.get(k) != v}


def from_crm_plain(value: Any) -> Value:
    """A CRM value as comparable text (dry-run diffs)."""
    from crm_desktop.sync.mapping import canonical

    return canonical(value)
